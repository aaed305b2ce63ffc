"""Sparse coefficients: w with s non-zero N(0, w_std^2) coordinates at random places
(Garg et al., arXiv 2208.01066)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check
from .base import TASKS, GaussianPrior, Task


@TASKS.register("sparse")
@dataclass(frozen=True)
class SparseTask(Task):
    """w_j = w_std g_j on a uniformly random support of size s, 0 elsewhere.

    Attributes:
        s: number of non-zero coordinates, 1 <= s <= d.

    ``priors`` gives the matching Gaussian moments (mean 0, covariance (s/d) w_std^2 I).
    """

    s: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.s <= self.d, f"sparse: s must lie in [1, d={self.d}], got {self.s}")

    @property
    def nonzeros(self) -> int:
        return self.s

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        w = self.w_std * torch.randn(batch, self.d, **opts)
        rank = torch.rand(batch, self.d, **opts).argsort(dim=-1).argsort(dim=-1)
        return w * (rank < self.s).to(w.dtype)

    def priors(self) -> list[GaussianPrior]:
        cov = (self.s / self.d) * self.w_std**2 * torch.eye(self.d, dtype=torch.float64)
        return [GaussianPrior(torch.zeros(self.d, dtype=torch.float64), cov, self.noise_std)]
