"""Multi-task regression with K label slots (He et al., arXiv 2503.12734, authors' code).

Task k uses the coordinates in ``subsets[k]`` (0-based; subsets may overlap): w_k ~ N(0,
w_std^2 I) on those coordinates and 0 elsewhere, and its label y_{i,k} = <w_k, x_i> +
sqrt(d_k) sigma eps_{i,k} with d_k = |subsets[k]|. Labels have shape (B, n, K).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check
from .base import TASKS, GaussianPrior, Task


@TASKS.register("multitask")
@dataclass(frozen=True)
class MultiTask(Task):
    """K linear tasks on coordinate subsets, read from K label slots.

    Attributes:
        subsets: one list of 0-based coordinates per task, e.g. [[0,1,2,3],[2,3,4,5]].
    """

    d: int = 6
    subsets: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3), (2, 3, 4, 5))

    def __post_init__(self) -> None:
        super().__post_init__()
        check(len(self.subsets) >= 1, "multitask: subsets must name at least one task")
        for sub in self.subsets:
            check(len(sub) >= 1, "multitask: every subset needs at least one coordinate")
            check(
                all(0 <= j < self.d for j in sub),
                f"multitask: subset {list(sub)} has coordinates outside 0..{self.d - 1}",
            )
            check(len(set(sub)) == len(sub), f"multitask: subset {list(sub)} repeats a coordinate")

    @property
    def num_labels(self) -> int:
        return len(self.subsets)

    def _mask(self, **opts: Any) -> Tensor:
        mask = torch.zeros(self.d, self.num_labels, **opts)  # (d, K)
        for k, sub in enumerate(self.subsets):
            mask[list(sub), k] = 1.0
        return mask

    def _noise_stds(self) -> list[float]:
        return [math.sqrt(len(sub)) * self.noise_std for sub in self.subsets]

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        w = self.w_std * torch.randn(batch, self.d, self.num_labels, **opts)  # (B, d, K)
        return w * self._mask(device=opts["device"], dtype=opts["dtype"])

    def labels(self, x: Tensor, w: Tensor, opts: dict[str, Any]) -> Tensor:
        y = torch.einsum("bnd,bdk->bnk", x, w)  # (B, n, K)
        if self.noise_std > 0:
            std = torch.tensor(self._noise_stds(), device=opts["device"], dtype=opts["dtype"])
            y = y + std * torch.randn(y.shape, **opts)
        return y

    def priors(self) -> list[GaussianPrior]:
        mask = self._mask(dtype=torch.float64)
        return [
            GaussianPrior(
                torch.zeros(self.d, dtype=torch.float64),
                self.w_std**2 * torch.diag(mask[:, k]),
                std,
            )
            for k, std in enumerate(self._noise_stds())
        ]
