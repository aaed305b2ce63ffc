"""Binary coefficients: w uniform on w_std * {-1, +1}^d (Chen et al., arXiv 2508.07571)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .base import TASKS, GaussianPrior, Task


@TASKS.register("binary")
@dataclass(frozen=True)
class BinaryTask(Task):
    """w_j = w_std * s_j with independent signs s_j uniform on {-1, +1}.

    ``priors`` gives the matching Gaussian moments (mean 0, covariance w_std^2 I): ``bayes``
    on this task is the Gaussian-prior posterior mean, not the exact discrete posterior.
    """

    coefficients = "sign"

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        u = torch.rand(batch, self.d, **opts)
        return self.w_std * (2.0 * (u < 0.5).to(u.dtype) - 1.0)

    def priors(self) -> list[GaussianPrior]:
        cov = self.w_std**2 * torch.eye(self.d, dtype=torch.float64)
        return [GaussianPrior(torch.zeros(self.d, dtype=torch.float64), cov, self.noise_std)]
