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


class StackedPredictor(Predictor):
    """A predictor whose forward pass is written for E stacked parameter sets at once.

    Subclasses implement :meth:`stacked_forward` with every parameter carrying a leading
    ensemble axis E and inputs (E, B, n, d); the single-model ``forward`` is the same code at
    E = 1, so a model trained alone and member e of an ensemble compute alike
    (``iclreg.models.Ensemble``).
    """

    @staticmethod
    def stacked_forward(
        config: Any, params: dict[str, Tensor], x: Tensor, y: Tensor, last_only: bool = False
    ) -> Tensor:
        """(E, B, n, d), (E, B, n[, K]) -> (E, B, n[, K]) for parameters stacked along E;
        with ``last_only`` only the last position is predicted: (E, B, 1[, K]) (training on
        the query's loss needs no other)."""
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        params = {name: p.unsqueeze(0) for name, p in self.named_parameters()}
        return self.stacked_forward(self.config, params, x.unsqueeze(0), y.unsqueeze(0)).squeeze(0)

    def predict_last(self, x: Tensor, y: Tensor) -> Tensor:
        """The prediction at the last position only, (B, n, d), (B, n[, K]) -> (B[, K]): what
        long prompts need (every prefix of a length-n prompt costs n times more)."""
        params = {name: p.unsqueeze(0) for name, p in self.named_parameters()}
        out = self.stacked_forward(self.config, params, x.unsqueeze(0), y.unsqueeze(0), last_only=True)
        return out[0, :, 0]


def build(spec: str, **ctx: Any) -> Predictor:
    """Build a model from a SPEC such as ``softmax_attention:d=5,heads=2``."""
    return MODELS.build(spec, **ctx).build()
