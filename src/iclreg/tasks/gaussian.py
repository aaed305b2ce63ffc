"""Gaussian linear regression: w ~ N(w_mean, w_std^2 I), the standard task (Garg et al.,
arXiv 2208.01066), with a prior mean for Cui et al.'s "prior knowledge" scenario."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check
from .base import TASKS, GaussianPrior, Task


@TASKS.register("gaussian")
@dataclass(frozen=True)
class GaussianTask(Task):
    """w ~ N(w_mean, w_std^2 I).

    Attributes:
        w_mean: prior mean of w: one number for every coordinate, or a list of d numbers.
    """

    w_mean: float | tuple[float, ...] = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.w_mean, tuple):
            check(
                len(self.w_mean) == self.d,
                f"gaussian: w_mean must be one number or a list of d={self.d} numbers, "
                f"got {len(self.w_mean)}",
            )

    def _mean(self, **opts: Any) -> Tensor:
        return torch.as_tensor(self.w_mean, **opts).expand(self.d)

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        w = self.w_std * torch.randn(batch, self.d, **opts)
        return w + self._mean(device=opts["device"], dtype=opts["dtype"])

    def priors(self) -> list[GaussianPrior]:
        mean = self._mean(dtype=torch.float64).clone()
        cov = self.w_std**2 * torch.eye(self.d, dtype=torch.float64)
        return [GaussianPrior(mean, cov, self.noise_std)]
