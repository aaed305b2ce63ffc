"""Experiments: one module per paper reproduction (a plan and an analysis), the quick tour, and
the runner behind ``iclreg reproduce`` and ``iclreg demo``."""

from . import demystified, multihead, newton, softmax_limit, testtime, tour  # noqa: F401  (register the reproductions)
from .base import REPRODUCTIONS, Experiment, Reproduction, Runs, Section
from .claims import AtLeast, AtMost, Between, Check, Claim, Falls, Near, Rises
from .runner import demo, reproduce, write_report

__all__ = [
    "REPRODUCTIONS", "AtLeast", "AtMost", "Between", "Check", "Claim", "Experiment", "Falls", "Near",
    "Reproduction", "Rises", "Runs", "Section", "demo", "reproduce", "write_report",
]
