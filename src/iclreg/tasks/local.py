"""Local examples: context inputs drawn around the query.

Our construction of Cui et al.'s "local examples" scenario (arXiv 2401.17426; their exact
sampler is not public): the last point of a prompt is the query x_q ~ N(0, Sigma), and every
earlier point is x_i = x_q + r g_i with g_i ~ N(0, Sigma). Only the last position is a
"local" query; earlier positions are ordinary predictions inside the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import check
from .gaussian import TASKS, GaussianTask


@TASKS.register("local")
@dataclass(frozen=True)
class LocalTask(GaussianTask):
    """Gaussian regression whose context points lie within radius ~ r of the query.

    Attributes:
        r: spread of the context around the query (r > 0).
    """

    r: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.r > 0, f"local: r must be positive, got {self.r}")

    def sample_x(self, batch: int, n: int, opts: dict[str, Any]) -> Tensor:
        query = self._transform(torch.randn(batch, 1, self.d, **opts))  # (B, 1, d)
        spread = self._transform(torch.randn(batch, n - 1, self.d, **opts))  # (B, n-1, d)
        return torch.cat([query + self.r * spread, query], dim=1)  # (B, n, d)
