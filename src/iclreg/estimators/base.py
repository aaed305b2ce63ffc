"""The predictor contract and the estimator registry.

A predictor maps ``x: (B, n, d)`` and ``y: (B, n)`` to ``(B, n)`` predictions, where
``out[:, i]`` predicts ``y[:, i]`` from ``x[:, i]`` and the first ``i`` pairs only (k = i
in-context examples; position 0 has none). Estimators compute every prefix at once with
batched linear algebra: there is no Python loop over prompts or positions. Labels with K
slots, ``y: (B, n, K)``, are predicted slot by slot (slot k uses the task's k-th prior).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import check
from ..models.causal import causal_mask as causal_mask  # the estimators' mask, re-exported
from ..registry import Registry, context
from ..tasks.base import Task

ESTIMATORS: Registry[Estimator] = Registry("estimator")


@dataclass(frozen=True)
class Estimator:
    """Base class: subclasses implement :meth:`predict` for one label slot.

    Attributes:
        task: the task the estimator is evaluated on, when it needs the task's prior or
            covariance (filled by ``build(spec, task=...)``, not a SPEC key).
    """

    name: ClassVar[str]
    task: Task | None = context()

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Predictions for every prefix: (B, n), or (B, n, K) when y is (B, n, K)."""
        check(x.dim() == 3, f"x must be (B, n, d), got shape {tuple(x.shape)}")
        check(
            y.shape[:2] == x.shape[:2] and y.dim() in (2, 3),
            f"y must be (B, n) or (B, n, K) matching x {tuple(x.shape)}, got {tuple(y.shape)}",
        )
        if y.dim() == 2:
            return self.predict(x, y, slot=0)
        return torch.stack([self.predict(x, y[..., k], slot=k) for k in range(y.shape[-1])], -1)

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        """Predictions (B, n) for one label slot; see the module docstring."""
        raise NotImplementedError

    def _need_task(self) -> Task:
        check(
            self.task is not None,
            f"estimator '{self.name}' needs the task it is evaluated on; build it with a task",
        )
        return self.task  # type: ignore[return-value]


def build(spec: str, task: Task | None = None, **ctx: Any) -> Estimator:
    """Build an estimator from a SPEC such as ``ridge:lam=0.1`` or ``gd:steps=5,lr=0.01``."""
    return ESTIMATORS.build(spec, task=task, **ctx)


# --- prefix statistics shared by the estimators ------------------------------------------
def exclusive_cumsum(t: Tensor, dim: int = 1) -> Tensor:
    """Sums over strictly earlier positions: out[:, i] = sum_{j < i} t[:, j]."""
    out = t.cumsum(dim)
    head = torch.zeros_like(out.narrow(dim, 0, 1))
    return torch.cat([head, out.narrow(dim, 0, t.shape[dim] - 1)], dim)


def prefix_moments(x: Tensor, y: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
    """Unnormalised prefix moments S_i = sum_{j<i} x_j x_j^T and b_i = sum_{j<i} y_j x_j at the
    positions i = start..n-1 (all of them by default).

    S_start is one matmul and the later positions add x_j x_j^T cumulatively, so skipping the
    positions before ``start`` saves their (d, d) blocks; x_{n-1} and y_{n-1} are never read.
    The terms are written into the output and summed in place (no (B, n, d, d) temporaries;
    not differentiable).

    Args:
        x: (B, n, d); y: (B, n); start: first position, 0 <= start < n.
    Returns:
        S: (B, n - start, d, d); b: (B, n - start, d).
    """
    B, n, d = x.shape
    head, rest = x[:, :start], x[:, start:-1]  # (B, start, d), (B, n - 1 - start, d)
    S = x.new_empty(B, n - start, d, d)
    b = x.new_empty(B, n - start, d)
    torch.matmul(head.mT, head, out=S[:, 0])
    torch.mul(rest.unsqueeze(-1), rest.unsqueeze(-2), out=S[:, 1:])
    torch.matmul(head.mT, y[:, :start].unsqueeze(-1), out=b[:, 0].unsqueeze(-1))
    torch.mul(y[:, start:-1].unsqueeze(-1), rest, out=b[:, 1:])
    return S.cumsum_(1), b.cumsum_(1)


def dot_query(x: Tensor, w: Tensor) -> Tensor:
    """Predictions <w_i, x_i> for per-position weights w: (B, n, d) -> (B, n)."""
    return (x * w).sum(-1)

