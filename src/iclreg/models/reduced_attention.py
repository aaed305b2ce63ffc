"""Single-head attention in Boursier & Boyer's reduced parameters (A, b) (arXiv 2512.11784).

With examples (x_j, y_j) and the query x_q, the prediction is

    y_hat = b sum_j y_j softmax_j(x_j^T A x_q)            (activation=softmax)
    y_hat = b (1/k) sum_j y_j x_j^T A x_q                 (activation=linear)

over the k examples before the query: the value reads the label only (value row (0, b)) and
the key-query form acts on the inputs only (block A). Both activations have the same
infinite-prompt limit b w^T S A x_q for x ~ N(0, S), y = <w, x> + noise, whose risk is the
paper's R(A, b) (``iclreg.theory.limit_mse``). A is initialised with N(0, init_scale^2 / d)
entries and b = init_scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from .base import MODELS, ModelConfig, StackedPredictor
from .causal import causal_weights


@MODELS.register("reduced_attention")
@dataclass(frozen=True)
class ReducedAttentionConfig(ModelConfig):
    """Boursier & Boyer's reduced single-head attention.

    Attributes:
        activation: ``softmax`` or ``linear`` (scores / k).
        init_scale: b at initialisation and the scale of A's entries (times 1/sqrt(d)).
    """

    member_fields = ("init_scale",)
    activation: Literal["softmax", "linear"] = "softmax"
    init_scale: float = 0.5

    def __post_init__(self) -> None:
        check(self.d >= 1, f"reduced_attention: d must be at least 1, got {self.d}")
        check(self.init_scale > 0, f"reduced_attention: init_scale must be positive, got {self.init_scale}")

    def build(self, generator: torch.Generator | None = None) -> ReducedAttention:
        return ReducedAttention(self, generator)


class ReducedAttention(StackedPredictor):
    """Parameters ``A``: (d, d), drawn from ``generator``, and ``b``: (1,)."""

    def __init__(self, config: ReducedAttentionConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        A = torch.randn(config.d, config.d, generator=generator) * config.init_scale / math.sqrt(config.d)
        self.A = nn.Parameter(A)
        self.b = nn.Parameter(torch.full((1,), config.init_scale))

    @staticmethod
    def stacked_forward(
        config: ReducedAttentionConfig, params: dict[str, Tensor], x: Tensor, y: Tensor,
        last_only: bool = False,
    ) -> Tensor:
        """Predictions for every prefix of E models: A (E, d, d), b (E, 1); x (E, B, n, d),
        y (E, B, n) -> (E, B, n), or (E, B, 1) for the last position only."""
        A, b = params["A"], params["b"].view(-1, 1, 1)
        if last_only:  # the examples are the first n - 1 pairs: no mask needed
            q = x[:, :, -1:] @ A.transpose(-1, -2).unsqueeze(1)  # (E, B, 1, d): A x_q
            scores = q @ x[:, :, :-1].transpose(-1, -2)  # (E, B, 1, n - 1)
            k = x.shape[2] - 1
            attn = torch.softmax(scores, -1) if config.activation == "softmax" else scores / max(k, 1)
            return b * (attn @ y[:, :, :-1].unsqueeze(-1)).squeeze(-1)  # (E, B, 1)
        q = x @ A.transpose(-1, -2).unsqueeze(1)  # (E, B, n, d): A x_i for every query i
        scores = q @ x.transpose(-1, -2)  # (E, B, n, n): x_j^T A x_i
        attn = causal_weights(scores, config.activation)  # over the examples j < i
        return b * (attn @ y.unsqueeze(-1)).squeeze(-1)  # (E, B, n)
