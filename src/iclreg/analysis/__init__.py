"""Evaluation of predictors: error against the number of in-context examples."""

from .compare import compare, error_curves
from .query import query_error

__all__ = ["compare", "error_curves", "query_error"]
