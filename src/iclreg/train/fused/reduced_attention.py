"""Hand-derived query-loss gradients of Boursier & Boyer's reduced attention (arXiv 2512.11784).

With the m = n - 1 examples (x_j, y_j) and the query x_q, the prediction is
y_hat = b r, r = sum_j a_j y_j, with scores s_j = x_j^T A x_q and a = softmax(s) (or s / m).
For the loss mean_b (y_hat - y_q)^2 and g = dL/dy_hat:

    dL/db = sum_b g r,    dL/da_j = g b y_j,
    dL/ds = a * (dL/da - <a, dL/da>)   (softmax;  dL/da / m  linear),
    dL/dA = sum_b (sum_j dL/ds_j x_j) x_q^T.

The same function as ``ReducedAttention.stacked_forward(last_only=True)``, in the same order of
operations up to the gradient (float64 tests).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...models.reduced_attention import ReducedAttentionConfig
from .base import FAMILIES, Gradients, Workspace, per_member


@FAMILIES.register(ReducedAttentionConfig, losses=("query",))
def query_gradients(config: ReducedAttentionConfig, params: dict[str, Tensor], x: Tensor,
                    y: Tensor, workspace: Workspace | None = None) -> Gradients:
    """Per-member query losses (E,) and gradients; A (E, d, d), b (E, 1); x (E, B, n, d),
    y (E, B, n), n >= 2."""
    A, b = params["A"], params["b"]
    E, B, n, d = x.shape
    m = n - 1
    X, xq, ys, yq = x[:, :, :m], x[:, :, m], y[:, :, :m], y[:, :, m]  # (E,B,m,d) (E,B,d) (E,B,m) (E,B)
    t = (A.unsqueeze(1) @ xq.unsqueeze(-1)).squeeze(-1)  # (E, B, d): A x_q
    s = (X @ t.unsqueeze(-1)).squeeze(-1)  # (E, B, m)
    a = torch.softmax(s, -1) if config.activation == "softmax" else s / max(m, 1)
    r = (a * ys).sum(-1)  # (E, B)
    err = b * r - yq
    losses = err.square().mean(1)
    g = err * (2 / B)  # (E, B)
    ga = (g * b).unsqueeze(-1) * ys  # (E, B, m)
    gs = a * (ga - (a * ga).sum(-1, keepdim=True)) if config.activation == "softmax" else ga / max(m, 1)
    gt = (gs.unsqueeze(-2) @ X).squeeze(-2)  # (E, B, d)
    return losses, {"A": per_member(gt.transpose(-1, -2), xq), "b": (g * r).sum(1, keepdim=True)}
