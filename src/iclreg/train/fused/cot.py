"""Hand-derived chain-of-thought loss gradients of the CoT transformer (``models/cot.py``).

The loss is teacher-forced on the prompt's GD path w_0..w_T: with C = sum_i [x_i, y_i]^T
[x_i, y_i] over the n pairs, qk = W_qk[thought, context] ((d+1) x (d+1)), ov = W_ov[context,
w] ((d+1) x d) and the thought map Q = qk C ov / n, the residual of thought t is
e_t = w_t + [w_t, 1] Q - w_{t+1} and the loss is mean_{b,t,i} e_t^2. With G = dL/dQ =
sum_t [w_t, 1]^T (2 e_t / (B T d)):

    dL/dqk = sum_b G_b ov^T C_b / n,     dL/dov = sum_b C_b qk^T G_b / n,

and every other entry of W_qk and W_ov has zero gradient (it multiplies a zero of the
tokens). The same function as ``ChainOfThought.stacked_chain_loss`` (float64 tests).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...models.cot import ChainOfThoughtConfig, emit, gd_chain, transfer
from ...models.layouts import stack
from .base import FAMILIES, Gradients, Workspace


@FAMILIES.register(ChainOfThoughtConfig, losses=("chain",))
def chain_gradients(config: ChainOfThoughtConfig, params: dict[str, Tensor], x: Tensor,
                    y: Tensor, workspace: Workspace | None = None) -> Gradients:
    """Per-member chain losses (E,) and gradients; W_qk, W_ov (E, D, D), D = 2d + 2;
    x (E, B, n, d), y (E, B, n)."""
    W_qk, W_ov = params["W_qk"], params["W_ov"]
    E, B, n, d = x.shape
    T = config.steps
    path = gd_chain(x, y, config.lr, T)  # (E, B, T + 1, d)
    z = stack(x, y)
    C = z.transpose(-1, -2) @ z  # (E, B, d+1, d+1)
    q = transfer(W_qk, W_ov, C, n)  # (E, B, d+1, d)
    e = emit(path[:, :, :-1], q.unsqueeze(2)) - path[:, :, 1:]  # (E, B, T, d)
    losses = e.square().flatten(1).mean(1)
    ge = e * (2 / (B * T * d))
    w1 = torch.cat([path[:, :, :-1], torch.ones_like(path[:, :, :-1, :1])], -1)  # (E, B, T, d+1)
    G = w1.transpose(-1, -2) @ ge  # (E, B, d+1, d)
    qk = W_qk[:, d + 1:, : d + 1]  # (E, d+1, d+1)
    ov = W_ov[:, : d + 1, d + 1: 2 * d + 1]  # (E, d+1, d)
    g_qk = torch.einsum("ebid,ejd,ebjk->eik", G, ov, C) / n
    g_ov = torch.einsum("ebij,ekj,ebkd->eid", C, qk, G) / n
    grad_qk, grad_ov = torch.zeros_like(W_qk), torch.zeros_like(W_ov)
    grad_qk[:, d + 1:, : d + 1] = g_qk
    grad_ov[:, : d + 1, d + 1: 2 * d + 1] = g_ov
    return losses, {"W_qk": grad_qk, "W_ov": grad_ov}
