"""Evaluation of predictors: error against the number of in-context examples."""

from .compare import best_curves, compare, error_curves
from .evaluate import evaluate
from .query import query_error

__all__ = ["best_curves", "compare", "error_curves", "evaluate", "query_error"]
