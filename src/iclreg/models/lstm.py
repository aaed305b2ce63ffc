"""An LSTM baseline on the interleaved layout (Fu et al.'s comparison, arXiv 2310.17086).

A linear read-in to the hidden width, a multi-layer LSTM over x_1, [y_1, 0..], x_2, ...,
and a linear read-out at the x tokens; recurrence makes it causal by construction. Weights
follow PyTorch's default initialisation, drawn from an explicit generator (``init.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import check
from .base import MODELS, ModelConfig, Predictor
from .init import default_init_, uninitialised
from .layouts import interleave, x_positions


@MODELS.register("lstm")
@dataclass(frozen=True)
class LSTMConfig(ModelConfig):
    """Attributes:
    hidden: LSTM width.
    layers: number of stacked LSTM layers.
    """

    d: int = 20
    hidden: int = 256
    layers: int = 3

    def __post_init__(self) -> None:
        check(self.d >= 1, f"lstm: d must be at least 1, got {self.d}")
        check(self.hidden >= 1, f"lstm: hidden must be at least 1, got {self.hidden}")
        check(self.layers >= 1, f"lstm: layers must be at least 1, got {self.layers}")

    def build(self, generator: torch.Generator | None = None) -> LSTMRegressor:
        return LSTMRegressor(self, generator)


class LSTMRegressor(Predictor):
    """Read-in, LSTM, read-out; PyTorch's default initialisation drawn from ``generator``."""

    def __init__(self, config: LSTMConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        with uninitialised(self):
            self.read_in = nn.Linear(config.d, config.hidden)
            self.lstm = nn.LSTM(config.hidden, config.hidden, config.layers, batch_first=True)
            self.read_out = nn.Linear(config.hidden, 1)
        default_init_(self, generator)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """(B, n, d), (B, n) -> (B, n)."""
        h, _ = self.lstm(self.read_in(interleave(x, y)))  # (B, 2n, hidden)
        return self.read_out(x_positions(h)).squeeze(-1)  # (B, n)
