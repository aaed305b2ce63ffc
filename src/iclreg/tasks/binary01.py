"""Binary 0/1 coefficients with exactly k ones: w* in {0, 1}^d (Chen, Lu, Wu, Zou,
arXiv 2508.07571; the setup of the authors' early code, our reading of it).

The support of w* is uniform over the k-subsets of {1..d}; the task of test-time decoding is to
recover it exactly from the prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check
from .base import TASKS, GaussianPrior, Task


@TASKS.register("binary01")
@dataclass(frozen=True)
class Binary01Task(Task):
    """w_j = w_std on a uniformly random support of exactly k coordinates, 0 elsewhere.

    With the default ``w_std = 1``, w* lies in {0, 1}^d with k ones.

    Attributes:
        k: number of ones, 1 <= k <= d.

    ``priors`` gives the exact first two moments of w (Gaussian moments, not the discrete
    prior): with p = k/d and q = k(k-1)/(d(d-1)) (the chance that two given coordinates are
    both in the support), E w = w_std p 1 and Cov w = w_std^2 ((p - q) I + (q - p^2) 1 1^T).
    """

    coefficients = "binary01"
    metric = "recovery"
    k: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.k <= self.d, f"binary01: k must lie in [1, d={self.d}], got {self.k}")

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        rank = torch.rand(batch, self.d, **opts).argsort(dim=-1).argsort(dim=-1)  # (B, d)
        return self.w_std * (rank < self.k).to(opts["dtype"])

    def priors(self) -> list[GaussianPrior]:
        d, k = self.d, self.k
        p = k / d
        q = k * (k - 1) / (d * (d - 1)) if d > 1 else 0.0
        eye = torch.eye(d, dtype=torch.float64)
        ones = torch.ones(d, d, dtype=torch.float64)
        cov = self.w_std**2 * ((p - q) * eye + (q - p * p) * ones)
        mean = self.w_std * p * torch.ones(d, dtype=torch.float64)
        return [GaussianPrior(mean, cov, self.noise_std)]
