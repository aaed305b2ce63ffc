"""Trainable in-context predictors, one registered model per module.

``build(SPEC)`` returns an ``nn.Module`` with ``forward(x (B, n, d), y (B, n)) -> (B, n)``.
"""

from . import cot, gpt2, linear_attention, lstm, reduced_attention, softmax_attention  # noqa: F401  (register the models)
from .base import MODELS, ModelConfig, Predictor, StackedPredictor, build
from .ensemble import Ensemble
from .garg import load_garg_checkpoint
from .layouts import interleave, stack, x_positions

__all__ = [
    "MODELS", "Ensemble", "ModelConfig", "Predictor", "StackedPredictor", "build", "interleave",
    "load_garg_checkpoint", "stack",
    "x_positions",
]
