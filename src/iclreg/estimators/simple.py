"""Baselines that solve nothing: zero, averaging, k nearest neighbours (Garg et al.,
arXiv 2208.01066).

averaging: y_hat = <x_q, (1/k) sum_i y_i x_i>; knn: the mean label of the k nearest
examples in Euclidean distance (all of them while fewer than k are available).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import check
from .base import ESTIMATORS, Estimator, causal_mask, dot_query, exclusive_cumsum


@ESTIMATORS.register("zero")
@dataclass(frozen=True)
class Zero(Estimator):
    """Predicts 0 everywhere (the prior mean of a centred task)."""

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        return torch.zeros_like(y)


@ESTIMATORS.register("averaging")
@dataclass(frozen=True)
class Averaging(Estimator):
    """y_hat = <x_q, mean_i y_i x_i> (0 with no examples)."""

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        n = x.shape[1]
        k = torch.arange(n, device=x.device, dtype=x.dtype).clamp_min(1).view(1, n, 1)
        return dot_query(x, exclusive_cumsum(y.unsqueeze(-1) * x) / k)


@ESTIMATORS.register("knn")
@dataclass(frozen=True)
class KNN(Estimator):
    """Mean label of the k nearest earlier examples.

    Attributes:
        k: number of neighbours (>= 1).
    """

    k: int = 3

    def __post_init__(self) -> None:
        check(self.k >= 1, f"knn: k must be at least 1, got {self.k}")

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        n = x.shape[1]
        dist = torch.cdist(x, x)  # (B, n, n)
        dist = dist.masked_fill(~causal_mask(n, x.device), float("inf"))
        kk = min(self.k, max(n - 1, 1))
        near, idx = dist.topk(kk, dim=-1, largest=False)  # (B, n, kk)
        valid = torch.isfinite(near).to(y.dtype)
        labels = torch.gather(y.unsqueeze(1).expand(-1, n, -1), 2, idx)  # (B, n, kk)
        return torch.where(valid > 0, labels, 0.0).sum(-1) / valid.sum(-1).clamp_min(1)
