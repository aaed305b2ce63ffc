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
    dL/dO_h = dL/du_h V_h^T,          dL/dV_h = O_h^T dL/du_h.

Per prompt it forms the rows r = [A_h x_q; u_hk] (one product for all prompts, x_q extended
by a 1), then two small products with the examples: the scores and values r Z^T, and, with
left = [e_h; e_h * v_hk] (softmax, e = 2^(s log2 e), a = e / sum_j e) or [s_h; v_hk] (linear),

    back = [Z^T; 1] left^T:   sum_j e_hj z_j,  sum_j e_hj v_hkj z_j  and their sums without z,

from which come the denominators, the outputs o_hk, and

    dL/d(A_h x_q) = (1 / norm_h) (sum_k g_k sum_j e_hj v_hkj z_j - <g, o_h> sum_j e_hj z_j),
    dL/du_hk      = sum_b (g_k / norm_h) sum_j e_hj z_j

(softmax; linear: e = s, e v replaced by v, norm = c, and no <g, o> term),

summed over prompts by one product per member with (x_q, 1). So every pass over the (B, H, m)
intermediates is one of four: two products, exp2 and e * v (these two in place of the first
product's output, so a chunk holds one such intermediate). The exponent is not shifted by
the row's max unless some denominator leaves the middle of the dtype's range (then it is
recomputed with the shift), and members go through in chunks whose intermediates stay in the
cache (the per-member maps A_h, u_h and the parameter gradients are formed once, for all).
It computes the same function as ``SoftmaxAttention.stacked_forward(last_only=True)``
in another order of operations, so the two agree to round-off (float64 tests).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ...models.softmax_attention import SoftmaxAttentionConfig
from .base import FAMILIES, Gradients, Workspace, per_member

LOG2E = 1 / math.log(2)
# members per chunk on the CPU: about this many elements in each (B, rows, m) intermediate,
# 2.5 MB in float32 (measured fastest on the 2-core machine among 1/4x to 2x of it)
CHUNK_ELEMENTS = 655_360


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
    p, K, H = config.width, config.labels, config.heads
    R = H * (1 + K)  # rows per prompt: H query rows, H K value rows
    scale = 1 / math.sqrt(p)
    ws = workspace or Workspace()
    # softmax scores in base 2 (exp2 is the faster kernel): A is scaled by log2(e)
    A = (Km.transpose(-1, -2) @ Q[..., :d]) * (scale * (LOG2E if config.activation == "softmax" else 1))
    u = O.permute(0, 2, 1, 3) @ V  # (E, H, K, p): u_h = O_h V_h
    W = ws.get("W", (E, d + 1, R * p), x)  # xq1 W: every prompt's rows [A_h x_q; u_hk]
    W.zero_()
    W[:, :d, :H * p] = A.permute(0, 3, 1, 2).reshape(E, d, H * p)
    W[:, d, H * p:] = u.reshape(E, H * K * p)
    losses = torch.empty(E, dtype=x.dtype, device=x.device)
    sums = torch.empty(E, d + 1, p, R, dtype=x.dtype, device=x.device)  # sum_b (x_q, 1) G_b
    chunk = max(1, CHUNK_ELEMENTS // (B * R * (n - 1))) if x.device.type == "cpu" else E
    for e in range(0, E, chunk):
        part = slice(e, e + chunk)
        losses[part], sums[part] = _chunk(config, W[part], x[part], labels[part], ws)
    gA = torch.zeros(E, H, p, p, dtype=x.dtype, device=x.device)
    gA[..., :d] = sums[:, :d, :, :H].permute(0, 3, 2, 1) * scale
    gu = sums[:, d, :, H:].reshape(E, p, H, K).permute(0, 2, 3, 1)  # (E, H, K, p): dL/du_h
    return losses, {
        "Q": Km @ gA,
        "K": Q @ gA.transpose(-1, -2),
        "V": O.permute(0, 2, 3, 1) @ gu,  # (E, H, p, p): O_h^T dL/du_h
        "O": (gu @ V.transpose(-1, -2)).permute(0, 2, 1, 3),  # (E, K, H, p)
    }


def _chunk(config: SoftmaxAttentionConfig, W: Tensor, x: Tensor, labels: Tensor,
           ws: Workspace) -> tuple[Tensor, Tensor]:
    """A chunk of members' losses (E,) and sums over their prompts sum_b (x_q, 1) G_b
    (E, d + 1, p, R), from their row maps W (E, d + 1, R p)."""
    E, B, n, d = x.shape
    m, p, K, H = n - 1, config.width, config.labels, config.heads
    R = H * (1 + K)
    softmax = config.activation == "softmax"
    ZT, xq1 = _examples(x, labels, ws)
    yq = labels[:, :, m]  # (E, B, K)
    sv, back = _products(config, W, ZT, xq1, ws)
    Ze, Zev = back[:, :, :p, :H], back[:, :, :p, H:].view(E, B, p, H, K)
    if softmax:
        norm = back[:, :, p, :H]  # (E, B, H): sum_j e_hj
        o = back[:, :, p, H:].view(E, B, H, K) / norm.unsqueeze(-1)  # each head's output
    else:
        norm = torch.full((1, 1, 1), float(config.linear_scale or m), dtype=x.dtype, device=x.device)
        s, v = sv[:, :, :H], sv[:, :, H:].view(E, B, H, K, m)  # the scores, u_hk z_j
        o = (s.unsqueeze(3) * v).sum(-1) / norm.unsqueeze(-1)
    err = o.sum(2) - yq  # (E, B, K)
    losses = err.square().mean((1, 2))
    g = err * (2 / (B * K))  # (E, B, K): dL/dy_hat
    c = g.unsqueeze(2) / norm.unsqueeze(-1)  # (E, B, H, K): g_k / norm_h
    # G = [dL/d(A_h x_q) (H columns); the terms of dL/du_hk (H K columns)], p rows per prompt
    G = ws.get("G", (E, B, p, R), x)
    gt, gu_terms = G[..., :H], G[..., H:].view(E, B, p, H, K)
    terms = gt.unsqueeze(-1) if K == 1 else gu_terms  # K = 1: straight into dL/d(A_h x_q)
    if softmax:  # (sum_j e_hj (v_hkj - o_hk) z_j) g_k / norm_h: the difference before the scaling,
        # so a one-hot row (o = v exactly) gives exactly 0, as the elementwise form does
        torch.mul(Ze.unsqueeze(-1), o.unsqueeze(2), out=terms)
        torch.sub(Zev, terms, out=terms).mul_(c.unsqueeze(2))
    else:  # (sum_j v_hkj z_j) g_k / c
        torch.mul(Zev, c.unsqueeze(2), out=terms)
    if K > 1:
        torch.sum(gu_terms, -1, out=gt)
    torch.mul(Ze.unsqueeze(-1), c.unsqueeze(2), out=gu_terms)  # g_k / norm_h sum_j e_hj z_j
    # one product per member sums over its prompts
    return losses, per_member(xq1.transpose(1, 2), G.view(E, B, p * R)).view(E, d + 1, p, R)


def _examples(x: Tensor, labels: Tensor, ws: Workspace) -> tuple[Tensor, Tensor]:
    """The examples transposed with a row of ones, (E, B, p + 1, m): each prompt's [Z^T; 1],
    whose products give sums over the examples with and without z_j; and the queries extended
    by a 1, (E, B, d + 1)."""
    E, B, n, d = x.shape
    m, p = n - 1, d + labels.shape[-1]
    ZT = ws.get("ZT", (E, B, p + 1, m), x)
    _copy(ZT[:, :, :d], x[:, :, :m].transpose(-1, -2))
    _copy(ZT[:, :, d:p], labels[:, :, :m].transpose(-1, -2))
    ZT[:, :, p] = 1
    xq1 = ws.get("xq1", (E, B, d + 1), x)
    xq1[..., :d] = x[:, :, m]
    xq1[..., d] = 1
    return ZT, xq1


def _products(config: SoftmaxAttentionConfig, W: Tensor, ZT: Tensor, xq1: Tensor,
              ws: Workspace) -> tuple[Tensor, Tensor]:
    """The two per-prompt products: sv = [s; v] (E, B, R, m), the scores s_hj and the values
    v_hkj = u_hk z_j (each prompt's rows x_q1 W times its examples), and back = [Z^T; 1] left^T
    (E, B, p + 1, R). For softmax, left = [e; e v] (e = 2^s) is formed in sv's place, which
    halves the chunk's large intermediates; the exponent is shifted by the row's max only when
    some denominator leaves the dtype's middle range (then sv is formed again and shifted). For
    linear attention left = sv. Returns (sv, back)."""
    E, B, p1, m = ZT.shape
    p, H, K = p1 - 1, config.heads, config.labels
    R = H * (1 + K)
    rows = torch.matmul(xq1, W, out=ws.get("rows", (E, B, R * p), xq1)).view(E, B, R, p)
    sv, back = ws.get("sv", (E, B, R, m), xq1), ws.get("back", (E, B, p + 1, R), xq1)
    s, v = sv[:, :, :H], sv[:, :, H:].view(E, B, H, K, m)
    softmax = config.activation == "softmax"
    for shift in (False, True):
        torch.matmul(rows, ZT[:, :, :p], out=sv)
        if softmax:  # [s; v] -> [e; e v] with e = 2^(s - shift), a = e / sum_j e
            if shift:
                s.sub_(s.amax(-1, keepdim=True))
            torch.exp2(s, out=s)
            v.mul_(s.unsqueeze(3))
        # per prompt, (Z^T; 1) left^T: the sums over examples of left's rows times z_j, and alone
        torch.matmul(ZT, sv.transpose(-1, -2), out=back)
        if not softmax or shift or _in_range(back[:, :, p, :H]):
            break
    return sv, back


def _in_range(sums: Tensor) -> bool:
    """Whether every softmax denominator sum_j 2^s_hj lies well inside the dtype's range, so
    the numerators 2^s need no shift by the row's max (one pass instead of three)."""
    bound = math.sqrt(torch.finfo(sums.dtype).max)
    low, high = (t.item() for t in torch.aminmax(sums))
    return 1 / bound < low and high < bound  # False for NaN


def _copy(dst: Tensor, src: Tensor) -> None:
    """dst[...] = src, a transposing copy: through NumPy on the CPU (twice torch's speed),
    except inside ``torch.compile``, which cannot trace NumPy's writes into a tensor."""
    if dst.device.type == "cpu" and not torch.compiler.is_compiling():
        np.copyto(dst.numpy(), src.numpy())
    else:
        dst.copy_(src)
