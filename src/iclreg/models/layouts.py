"""Token layouts: how a prompt of (x, y) pairs becomes a sequence of tokens.

* interleaved (Garg et al., arXiv 2208.01066): x_1, [y_1, 0, ..., 0], x_2, [y_2, 0, ...],
  ... — 2n tokens of width d; the prediction of y_i is read at the token of x_i (index 2i),
  which under a causal mask sees the first i pairs and x_i.
* stacked (the theory papers): z_i = (x_i, y_i) in R^{d+1}; the query token is (x_q, 0).
"""

from __future__ import annotations

import torch
from torch import Tensor


def interleave(x: Tensor, y: Tensor) -> Tensor:
    """Interleaved tokens: (B, n, d), (B, n) -> (B, 2n, d)."""
    B, n, d = x.shape
    y_tokens = torch.zeros_like(x)
    y_tokens[..., 0] = y  # (B, n, d): [y_i, 0, ..., 0]
    return torch.stack([x, y_tokens], dim=2).reshape(B, 2 * n, d)  # x_1, y_1, x_2, ...


def x_positions(tokens: Tensor) -> Tensor:
    """The outputs at the x tokens of an interleaved sequence: (B, 2n, ...) -> (B, n, ...)."""
    return tokens[:, ::2]


def stack(x: Tensor, y: Tensor) -> Tensor:
    """Stacked tokens z_i = (x_i, y_i): (B, n, d), (B, n) -> (B, n, d + 1)."""
    return torch.cat([x, y.unsqueeze(-1)], dim=-1)
