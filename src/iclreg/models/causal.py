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
over j < i use :func:`causal_mask` and :func:`example_counts` directly.
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
