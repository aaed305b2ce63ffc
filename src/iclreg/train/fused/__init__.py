"""Fused training: forward, backward and optimiser step of E members as a few batched
operations, with hand-derived gradients (``FAMILIES``) and a flat Adam (``adam.py``)."""

from . import cot, reduced_attention, softmax_attention  # noqa: F401  (register the families)
from .base import FAMILIES, Family

__all__ = ["FAMILIES", "Family"]
