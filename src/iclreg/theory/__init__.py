"""Closed-form theory for in-context linear regression.

- ``softmax_limit``: softmax attention becomes linear attention as L -> infinity for Gaussian
  tokens, and the reduced population risk R(A, b) (Boursier & Boyer, arXiv 2512.11784).
- ``demystified``: the multi-head kernel predictor's approximate loss, its optimal heads and
  the asymptotic ridge risk (He, Pan, Chen, Yang, arXiv 2503.12734).
- ``bayes_risk``: the exact finite-k Bayes risk of the isotropic Gaussian task.
"""

from . import debiased_gd as debiased_gd  # exact risks of one-step GD and debiased GD (arXiv 2503.12734)
from . import testtime as testtime  # test-time computing theory (arXiv 2508.07571, ours)
from .demystified import approximate_loss, asymptotic_ridge_risk, optimal_mu, single_head_optimum
from .exact_bayes import bayes_risk, expected_resolvent_trace, wishart_linear_statistic
from .softmax_limit import (
    gaussian_softmax_limit,
    gradient_flow,
    limit_mse,
    population_risk,
    population_risk_grad,
    regression_token_moments,
    softmax_attention,
)

__all__ = [
    "approximate_loss",
    "asymptotic_ridge_risk",
    "bayes_risk",
    "expected_resolvent_trace",
    "gaussian_softmax_limit",
    "gradient_flow",
    "limit_mse",
    "optimal_mu",
    "population_risk",
    "population_risk_grad",
    "regression_token_moments",
    "single_head_optimum",
    "softmax_attention",
    "wishart_linear_statistic",
]
