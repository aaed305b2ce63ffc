"""The model registry and the predictor contract for trainable models.

A model is an ``nn.Module`` whose ``forward(x (B, n, d), y (B, n)) -> (B, n)`` follows the
same contract as the estimators: ``out[:, i]`` predicts ``y[:, i]`` from ``x[:, i]`` and the
first ``i`` pairs only. Models are registered as frozen config dataclasses; ``build(SPEC)``
constructs the config, validates it, and returns ``config.build()``, a module that keeps its
config in ``.config`` (checkpoints carry it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from torch import Tensor, nn

from ..registry import Registry

MODELS: Registry[ModelConfig] = Registry("model")
Layout = Literal["interleaved", "stacked"]


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model config: the input dimension and how prompts become tokens."""

    name: ClassVar[str]
    layout: ClassVar[Layout]
    d: int = 5

    def build(self) -> Predictor:
        raise NotImplementedError


class Predictor(nn.Module):
    """Base of trainable predictors: ``forward(x, y) -> (B, n)`` under the prefix contract."""

    config: ModelConfig

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def build(spec: str, **ctx: Any) -> Predictor:
    """Build a model from a SPEC such as ``softmax_attention:d=5,heads=2``."""
    return MODELS.build(spec, **ctx).build()
