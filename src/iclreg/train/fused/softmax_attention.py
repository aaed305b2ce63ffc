"""Hand-derived query-loss gradients of He et al.'s multi-head attention (arXiv 2503.12734).

At the query loss only the query's attention row matters. With the m = n - 1 examples
z_j = (x_j, y_j) in R^p (p = d + K), the query x_q, and per head h the effective forms

    A_h = K_h^T Q_h / sqrt(p)   (p x p; only its first d columns meet the query (x_q, 0)),
    u_h = O_h V_h               (K x p),

the prediction is  y_hat = sum_h sum_j a_hj u_h z_j  with  s_hj = z_j^T A_h x_q  and
a_h = softmax_j(s_h) (or s_h / c for linear attention, c = m or the fixed ``linear_scale``).
For the loss mean_{b,k} (y_hat - y_q)^2 and g = dL/dy_hat, the backward pass is

    dL/du_h = sum_{b,j} a_hj g z_j^T,      dL/da_hj = g . (u_h z_j),
    dL/ds_h = a_h * (dL/da_h - <a_h, dL/da_h>)   (softmax;  dL/da_h / c  linear),
    dL/dA_h[:, :d] = sum_b (sum_j dL/ds_hj z_j) x_q^T,
    dL/dQ_h = K_h dL/dA_h / sqrt(p),  dL/dK_h = Q_h dL/dA_h^T / sqrt(p),
    dL/dO_h = dL/du_h V_h^T,          dL/dV_h = O_h^T dL/du_h,

two small batched products per prompt (the scores and dL/dA's row) and two per member
(u_h z_j over all examples, and dL/du). It computes the same function as
``SoftmaxAttention.stacked_forward(last_only=True)`` in another order of operations (A_h
before the scores), so the two agree to round-off (float64 tests).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ...models.softmax_attention import SoftmaxAttentionConfig
from .base import FAMILIES, Gradients, Workspace, per_member


@FAMILIES.register(SoftmaxAttentionConfig, losses=("query",))
def query_gradients(config: SoftmaxAttentionConfig, params: dict[str, Tensor], x: Tensor,
                    y: Tensor, workspace: Workspace | None = None) -> Gradients:
    """Per-member query losses (E,) and their gradients.

    Args:
        params: Q, K, V (E, H, p, p) and O (E, K, H, p).
        x: (E, B, n, d); y: (E, B, n) or (E, B, n, K), n >= 2.
        workspace: where the large intermediates live from call to call (a new one if None).
    Returns:
        losses (E,) and a gradient per parameter, shaped as the parameter.
    """
    Q, Km, V, O = params["Q"], params["K"], params["V"], params["O"]
    labels = y.unsqueeze(-1) if y.dim() == 3 else y  # (E, B, n, K)
    E, B, n, d = x.shape
    m, p, K, H = n - 1, config.width, config.labels, config.heads
    scale = 1 / math.sqrt(p)
    ws = workspace or Workspace()
    # contiguous operands throughout: a strided one makes torch copy it inside every bmm
    Z = torch.cat([x[:, :, :m], labels[:, :, :m]], -1, out=ws.get("Z", (E, B, m, p), x))  # examples
    xq, yq = x[:, :, m], labels[:, :, m]  # (E, B, d), (E, B, K)
    A = (Km.transpose(-1, -2) @ Q[..., :d]) * scale  # (E, H, p, d): A_h's query columns
    t = xq @ A.permute(0, 3, 1, 2).reshape(E, d, H * p)  # (E, B, H p): A_h x_q
    u = O.permute(0, 2, 1, 3) @ V  # (E, H, K, p): u_h = O_h V_h
    ZT = Z.transpose(-1, -2)
    s = torch.matmul(t.view(E, B, H, p), ZT, out=ws.get("s", (E, B, H, m), x))  # the scores
    rows = u.reshape(E, 1, H * K, p).expand(E, B, H * K, p).contiguous()
    v = torch.matmul(rows, ZT, out=ws.get("v", (E, B, H * K, m), x)).view(E, B, H, K, m)  # u_hk z_j
    c = config.linear_scale or m  # linear attention's divisor
    a = ws.get("a", (E, B, H, m), x)  # (E, B, H, m)
    if config.activation == "softmax":
        torch.ops.aten._softmax.out(s, -1, False, out=a)
    else:
        torch.div(s, c, out=a)
    o = (a.unsqueeze(3) * v).sum(-1)  # (E, B, H, K): each head's output
    err = o.sum(2) - yq  # (E, B, K)
    losses = err.square().mean((1, 2))
    g = err * (2 / (B * K))  # (E, B, K): dL/dy_hat
    # the backward pass writes both left factors of its product with Z into one buffer
    left = ws.get("left", (E, B, H * (1 + K), m), x)
    gs, weights = left[:, :, :H], left[:, :, H:].view(E, B, H, K, m)
    torch.mul(a.unsqueeze(3), g[:, :, None, :, None], out=weights)  # a_hj g_k
    if K == 1 and config.activation == "softmax":  # dL/ds = a g (v - o), one pass fewer
        torch.sub(v[:, :, :, 0], o, out=gs).mul_(weights[:, :, :, 0])
    else:
        ga = (g[:, :, None, :, None] * v).sum(3)  # (E, B, H, m): dL/da
        if config.activation == "softmax":
            torch.mul(a, ga - (g.unsqueeze(2) * o).sum(-1, keepdim=True), out=gs)
        else:
            torch.div(ga, c, out=gs)
    back = torch.matmul(left, Z, out=ws.get("back", (E, B, H * (1 + K), p), x))  # (E, B, H + H K, p)
    gt, gu = back[:, :, :H], back[:, :, H:].sum(1).view(E, H, K, p)  # dL/d(A_h x_q), dL/du_h
    gA = torch.zeros(E, H, p, p, dtype=x.dtype, device=x.device)
    gA[..., :d] = per_member(gt.reshape(E, B, H * p).transpose(1, 2), xq).view(E, H, p, d) * scale
    return losses, {
        "Q": Km @ gA,
        "K": Q @ gA.transpose(-1, -2),
        "V": O.permute(0, 2, 3, 1) @ gu,  # (E, H, p, p): O_h^T dL/du_h
        "O": (gu @ V.transpose(-1, -2)).permute(0, 2, 1, 3),  # (E, K, H, p)
    }
