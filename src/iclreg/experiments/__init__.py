"""Experiments: one module per paper reproduction, and the quick tour (``demo``)."""

from . import demystified, multihead, newton, softmax_limit  # noqa: F401  (register the reproductions)
from .base import REPRODUCTIONS, Claim, Experiment, Reproduction, write_report

__all__ = ["REPRODUCTIONS", "Claim", "Experiment", "Reproduction", "write_report"]
