"""Classical in-context predictors, all-prefix and batched, one family per module.

``build(SPEC, task=...)`` returns a callable ``(x (B, n, d), y (B, n)) -> (B, n)``.
"""

from . import iterative, kernel, least_squares, simple, sparse_bayes  # noqa: F401  (register the estimators)
from .base import ESTIMATORS, Estimator, build, prefix_moments
from .iterative import gd_trajectory, gd_weights, newton_weights
from .kernel import kernel_predict
from .least_squares import ols_predict, ridge_predict

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "build",
    "gd_trajectory",
    "gd_weights",
    "kernel_predict",
    "newton_weights",
    "ols_predict",
    "prefix_moments",
    "ridge_predict",
]
