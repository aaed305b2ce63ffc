"""Evaluation of predictors: error against the number of in-context examples."""

from .compare import compare, error_curves

__all__ = ["compare", "error_curves"]
