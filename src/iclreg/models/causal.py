"""The in-context mask: query i reads the examples j < i, and their normalisation.

Every predictor here follows the prefix contract (``out[:, i]`` uses x_1..x_i and y_1..y_{i-1}),
so the prediction at position i attends to the k_i = i examples before it. Given scores
s_ij (query i, example j), the attention weights are

    softmax:  a_ij = exp(s_ij) / sum_{j' < i} exp(s_ij')   for j < i, else 0
    linear:   a_ij = s_ij / max(k_i, 1)                     for j < i, else 0
    linear with a fixed scale c:  a_ij = s_ij / c           for j < i, else 0

(He et al., arXiv 2503.12734; Boursier & Boyer's linear attention, arXiv 2512.11784). With a
fixed scale (c = the training length) the sum over examples is not renormalised at other
lengths, so the output grows like k / c. Position 0 has no example: its weights are all 0, so
it predicts 0. The models and the kernel estimators use these functions; unnormalised sums
over j < i use :func:`causal_mask` and :func:`example_counts` directly. Without autograd,
:func:`causal_attention` computes the weights and their product with the values block by block
(the same numbers, in cache).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Normalisation = Literal["softmax", "linear"]
Rows = slice | Tensor | None  # which queries: a slice or an index tensor of positions; None = all


def causal_mask(n: int, device: torch.device | str | None = None, rows: Rows = None) -> Tensor:
    """Which examples each query reads: True where j < i.

    Args:
        n: prompt length.
        device: the mask's device.
        rows: the query positions i kept (all n by default).
    Returns:
        (n_q, n) bool, row q for query position ``rows[q]``.
    """
    mask = torch.ones(n, n, dtype=torch.bool, device=device).tril(-1)  # (n, n): j < i
    return mask if rows is None else mask[rows]


def example_counts(
    n: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None,
    rows: Rows = None,
) -> Tensor:
    """The number of examples k_i = i before each query, at least 1 (position 0 divides by 1).

    Returns:
        (n_q,) in ``dtype``.
    """
    counts = torch.arange(n, device=device).clamp_min(1)  # (n,)
    counts = counts if rows is None else counts[rows]
    return counts.to(dtype or torch.get_default_dtype())


def causal_weights(
    scores: Tensor, normalisation: Normalisation, rows: Rows = None, scale: float | None = None
) -> Tensor:
    """Attention weights of each query over the examples before it (module docstring).

    Args:
        scores: (..., n_q, n), entry (q, j) the score of example j for query position
            ``rows[q]`` (all n positions by default, n_q = n). Scores at j >= i are ignored
            (they may be anything, inf or nan included).
        normalisation: ``softmax`` over the examples j < i, or ``linear`` (divided by k_i).
        rows: the query positions of the rows of ``scores``.
        scale: ``linear`` only: divide by this fixed number instead of k_i.
    Returns:
        (..., n_q, n) weights, 0 at j >= i; rows without an example are all 0.
    """
    n = scores.shape[-1]
    mask = causal_mask(n, scores.device, rows)  # (n_q, n)
    if scale is not None and normalisation != "linear":
        raise ValueError(f"causal_weights: a fixed scale needs linear weights, not '{normalisation}'")
    if normalisation == "softmax":
        attn = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)  # nan in empty rows
        return torch.where(mask.any(-1, keepdim=True), attn, 0.0)
    if normalisation == "linear" and scale is not None:
        return torch.where(mask, scores, 0.0) / scale
    if normalisation == "linear":
        counts = example_counts(n, scores.device, scores.dtype, rows).view(-1, 1)  # (n_q, 1)
        return torch.where(mask, scores, 0.0) / counts
    raise ValueError(f"causal_weights: normalisation must be softmax or linear, got '{normalisation}'")


# the scores of one block of causal_attention: a few MiB stay in the CPU caches (1-4 MiB measured
# alike, 84 MiB 2x slower, 1.3 GB 5x slower: H = 8, n = 201, one thread)
BLOCK_BYTES = 4 * 2**20


def block_size(items: int, item_bytes: int, device: torch.device) -> int:
    """How many of ``items`` (n_q, n) score matrices of ``item_bytes`` each one block holds: as
    many as fit in :data:`BLOCK_BYTES` on the CPU (at least one), all of them elsewhere."""
    if device.type != "cpu":
        return max(items, 1)
    return max(1, min(items, BLOCK_BYTES // max(item_bytes, 1)))


def causal_attention(
    q: Tensor, k: Tensor, v: Tensor, normalisation: Normalisation, divisor: float,
    rows: Rows = None, scale: float | None = None,
) -> Tensor:
    """``causal_weights(q @ k^T / divisor, normalisation, rows, scale) @ v`` without autograd,
    block by block over the leading axes.

    Each (n_q, n) matrix goes through the same operations as in the expression above (its
    scores, mask, normalisation and product with v), so the result is the same bit for bit; a
    block of them is a few MiB, so the scores and weights stay in cache instead of passing
    through memory whole (one 1024-prompt chunk of 8 heads at n = 201 holds 1.3 GB of
    weights). On the CPU this is about 5x faster. Inference only: the scores are modified in
    place.

    Args:
        q: (..., n_q, p) queries of the positions ``rows``; k: (..., n, p) keys; v: (..., n, p_v)
            values, with the same leading axes (no broadcasting).
        divisor: the scores are q k^T / divisor.
    Returns:
        (..., n_q, p_v).
    """
    if normalisation not in ("softmax", "linear"):
        raise ValueError(f"causal_attention: normalisation must be softmax or linear, got '{normalisation}'")
    if scale is not None and normalisation != "linear":
        raise ValueError(f"causal_attention: a fixed scale needs linear weights, not '{normalisation}'")
    if q.device.type == "meta":  # a dry run (shapes only): the expression unblocked, no CPU mask
        return causal_weights(q @ k.transpose(-1, -2) / divisor, normalisation, rows, scale) @ v
    lead, (n_q, n), p_v = q.shape[:-2], (q.shape[-2], k.shape[-2]), v.shape[-1]
    q, k, v = q.reshape(-1, n_q, q.shape[-1]), k.reshape(-1, n, k.shape[-1]), v.reshape(-1, n, p_v)
    read = causal_mask(n, q.device, rows)  # (n_q, n): True where j < i
    # the queries without an example, found on the CPU (meta tensors, the dry runs, have no nonzero)
    on_cpu = causal_mask(n, "cpu", rows.cpu() if isinstance(rows, Tensor) else rows)
    empty = (~on_cpu.any(-1)).nonzero().squeeze(-1).to(q.device)
    fill = torch.tensor(float("-inf") if normalisation == "softmax" else 0.0, dtype=q.dtype,
                        device=q.device)  # at j >= i: -inf before a softmax, 0 for linear weights
    divide = example_counts(n, q.device, q.dtype, rows).view(-1, 1) if scale is None else scale
    out = q.new_empty(q.shape[0], n_q, p_v)
    step = block_size(q.shape[0], n_q * n * q.element_size(), q.device)
    with torch.no_grad():
        for start in range(0, q.shape[0], step):
            part = slice(start, start + step)
            scores = torch.matmul(q[part], k[part].transpose(-1, -2)).div_(divisor)  # (m, n_q, n)
            torch.where(read, scores, fill, out=scores)  # as masked_fill, in place
            if normalisation == "softmax":
                attn = torch.softmax(scores, -1).index_fill_(1, empty, 0.0)  # empty rows: nan -> 0
            else:
                attn = scores.div_(divide)
            torch.matmul(attn, v[part], out=out[part])
    return out.view(*lead, n_q, p_v)
