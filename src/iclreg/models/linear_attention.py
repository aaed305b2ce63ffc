"""Linear self-attention in the theory parameterisation (von Oswald et al., arXiv 2212.07677;
Ahn et al., arXiv 2306.00297).

Tokens are columns z_j = (x_j, y_j) in R^{d+1} and the query is (x_q, 0). Each layer is

    f(Z) = Z + (1/k) W^PV Z M Z^T W^KQ Z,

with M the mask that keeps the query out of the sum (Z M Z^T = sum over the k examples of
z_j z_j^T) and k the number of examples. Every token, examples included, is updated; the
prediction is y_hat = -[Z_L]_{d+1, query} (Ahn et al.'s sign convention). With
W^KQ = [[I, 0], [0, 0]] and W^PV = [[0, 0], [0, -eta]] one layer is one step of gradient
descent with the mean gradient and step eta, and L such layers are L steps (``init=gd``).

The model evaluates every prefix at once: for the query at position i the context is the
first i pairs. One layer needs only prefix sums of z_j z_j^T; deeper models carry one copy
of the prefix per query, (B, n, n, d+1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from .base import MODELS, ModelConfig, StackedPredictor
from .causal import causal_mask, example_counts
from .layouts import stack


@MODELS.register("linear_attention")
@dataclass(frozen=True)
class LinearAttentionConfig(ModelConfig):
    """Linear self-attention, theory parameterisation.

    Attributes:
        layers: number of layers L.
        init: ``default`` (N(0, init_scale^2) entries) or ``gd`` (the construction that
            equals L steps of GD with step ``lr``).
        init_scale: standard deviation of the ``default`` initialisation.
        lr: GD step eta of the ``gd`` initialisation.
    """

    member_fields = ("init", "init_scale", "lr")
    layers: int = 1
    init: Literal["default", "gd"] = "default"
    init_scale: float = 0.02
    lr: float = 1.0

    def __post_init__(self) -> None:
        check(self.d >= 1, f"linear_attention: d must be at least 1, got {self.d}")
        check(self.layers >= 1, f"linear_attention: layers must be at least 1, got {self.layers}")
        check(self.init_scale >= 0, f"linear_attention: init_scale must be >= 0, got {self.init_scale}")

    def build(self, generator: torch.Generator | None = None) -> LinearAttention:
        return LinearAttention(self, generator)


class LinearAttention(StackedPredictor):
    """L layers of linear self-attention; parameters ``W_kq``, ``W_pv``: (L, d+1, d+1), drawn
    from ``generator`` (W_kq first) under ``init=default``."""

    def __init__(self, config: LinearAttentionConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        p = config.d + 1
        if config.init == "gd":
            kq = torch.zeros(config.layers, p, p)
            kq[:, : config.d, : config.d] = torch.eye(config.d)
            pv = torch.zeros(config.layers, p, p)
            pv[:, -1, -1] = -config.lr
        else:
            kq = config.init_scale * torch.randn(config.layers, p, p, generator=generator)
            pv = config.init_scale * torch.randn(config.layers, p, p, generator=generator)
        self.W_kq = nn.Parameter(kq)
        self.W_pv = nn.Parameter(pv)

    @staticmethod
    def stacked_forward(
        config: LinearAttentionConfig, params: dict[str, Tensor], x: Tensor, y: Tensor,
        last_only: bool = False,
    ) -> Tensor:
        """Predictions for every prefix of E models: W_kq, W_pv (E, L, p, p); x (E, B, n, d),
        y (E, B, n) -> (E, B, n), or (E, B, 1) for the last position only."""
        if config.layers == 1:
            out = _one_layer(params["W_kq"][:, 0], params["W_pv"][:, 0], x, y)
            return out[:, :, -1:] if last_only else out
        if last_only:  # the last query's prefix alone: one copy of the prompt
            return _deep(params["W_kq"], params["W_pv"], x.unsqueeze(2), y.unsqueeze(2),
                         queries=[x.shape[2] - 1])
        return _deep(params["W_kq"], params["W_pv"], x, y)


def _one_layer(W_kq: Tensor, W_pv: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """One layer needs only the prefix sums C_i = sum_{j<i} z_j z_j^T."""
    n = x.shape[2]
    z = stack(x, y)  # (E, B, n, p)
    outer = z.unsqueeze(-1) * z.unsqueeze(-2)  # (E, B, n, p, p)
    C = outer.cumsum(2) - outer  # sum over the j < i examples
    k = example_counts(n, x.device, x.dtype).view(1, 1, n, 1)
    query = stack(x, torch.zeros_like(y))  # (E, B, n, p)
    update = torch.einsum("epq,ebnq->ebnp", W_kq, query)  # W^KQ z_q
    update = torch.einsum("ebnpq,ebnq->ebnp", C, update)
    update = torch.einsum("epq,ebnq->ebnp", W_pv, update) / k
    return -update[..., -1]


def _deep(
    W_kq: Tensor, W_pv: Tensor, x: Tensor, y: Tensor, queries: list[int] | None = None
) -> Tensor:
    """L layers: every query carries its own copy of the prefix, (E, B, n_q, n, p).

    x (E, B, n, d) and y (E, B, n) give one copy per query; with ``queries`` (positions) x is
    (E, B, 1, n, d) and y (E, B, 1, n), one copy per listed query.
    """
    if queries is None:
        E, B, n, _ = x.shape
        queries = list(range(n))
        Z = stack(x, y).unsqueeze(2).expand(E, B, n, n, -1).clone()  # (E, B, query i, token j, p)
    else:
        Z = stack(x, y).expand(-1, -1, len(queries), -1, -1).clone()
        n = Z.shape[3]
    rows = torch.tensor(queries, device=x.device)
    Z[:, :, torch.arange(len(queries), device=x.device), rows, -1] = 0.0  # query i's label is hidden
    mask = causal_mask(n, x.device, rows).to(x.dtype)  # (n_q, n): examples j < i
    k = example_counts(n, x.device, x.dtype, rows).view(1, 1, -1, 1, 1)
    for layer in range(W_kq.shape[1]):
        C = torch.einsum("ebijp,ij,ebijq->ebipq", Z, mask, Z)  # (E, B, n, p, p)
        M = W_pv[:, layer, None, None] @ C @ W_kq[:, layer, None, None]  # (E, B, n, p, p)
        Z = Z + torch.einsum("ebipq,ebijq->ebijp", M, Z) / k
    return -Z[:, :, torch.arange(len(queries), device=x.device), rows, -1]  # (E, B, n_q)
