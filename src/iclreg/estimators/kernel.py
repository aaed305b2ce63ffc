"""Attention-kernel estimators of He, Pan, Chen, Yang (arXiv 2503.12734).

Written as prompt -> prediction with the k examples X = (x_1..x_k) and labels y:

* multi-head kernel:  y_hat = sum_h mu_h * sum_i y_i softmax_i(omega_h <x_i, x_q>)
* single head:        the kernel with H = 1, omega = 1/sqrt(d) and the closed-form optimum
                      mu = sqrt(d) / (1 + (1 + sigma^2) d e / L) of the approximate loss
* debiased GD:        y_hat = (lr / k) sum_i y_i <x_i - x_bar, x_q>, the small-omega limit
                      of two opposite heads with lr = 2 omega mu (x_bar: mean of the x_i)

He et al.'s "GD" row is ``gd:steps=1,lr=<2 omega mu>,mean=true``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import check
from ..models.causal import block_size, causal_mask, causal_weights, example_counts
from .base import ESTIMATORS, Estimator, dot_query, exclusive_cumsum


def kernel_predict(x: Tensor, y: Tensor, omega: Tensor, mu: Tensor) -> Tensor:
    """Multi-head softmax-kernel predictions for every prefix.

    Computed in blocks of prompts whose (H, n, n) weights fit in the CPU caches
    (``models.causal.block_size``); the prompts do not interact, so the numbers are those of
    one batch, bit for bit, at a fraction of the memory traffic.

    Args:
        x: (B, n, d); y: (B, n); omega, mu: (H,).
    Returns:
        (B, n); position 0 (no examples) predicts 0.
    """
    B, n = x.shape[:2]
    step = block_size(B, omega.numel() * n * n * x.element_size(), x.device)
    if step >= B:
        return _kernel_block(x, y, omega, mu)
    return torch.cat([_kernel_block(x[s:s + step], y[s:s + step], omega, mu) for s in range(0, B, step)])


def _kernel_block(x: Tensor, y: Tensor, omega: Tensor, mu: Tensor) -> Tensor:
    """:func:`kernel_predict` on one batch at once: (B, n, d), (B, n), (H,), (H,) -> (B, n)."""
    n = x.shape[1]
    inner = x @ x.transpose(-1, -2)  # (B, n, n): <x_i, x_j>
    scores = omega.view(1, -1, 1, 1) * inner.unsqueeze(1)  # (B, H, n, n)
    attn = causal_weights(scores, "softmax")  # (B, H, n, n): over the examples j < i
    mask = causal_mask(n, x.device)
    # where(), not a product with 0: a later non-finite label must not reach earlier rows
    weighted = torch.where(mask, attn * y.view(y.shape[0], 1, 1, n), 0.0)  # (B, H, n, n)
    return (mu.view(1, -1, 1) * weighted.sum(-1)).sum(1)


def _as_heads(values: float | tuple[float, ...]) -> tuple[float, ...]:
    return values if isinstance(values, tuple) else (values,)


@ESTIMATORS.register("kernel")
@dataclass(frozen=True)
class Kernel(Estimator):
    """Multi-head softmax kernel with per-head (omega_h, mu_h).

    Attributes:
        omega: per-head inverse temperatures, a number or a list (H values).
        mu: per-head output weights, same length as omega.
    """

    omega: float | tuple[float, ...] = (0.13, -0.13)
    mu: float | tuple[float, ...] = (3.45, -3.45)

    def __post_init__(self) -> None:
        check(
            len(_as_heads(self.omega)) == len(_as_heads(self.mu)),
            f"kernel: omega and mu need one value per head, got {len(_as_heads(self.omega))} "
            f"and {len(_as_heads(self.mu))}",
        )

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        omega = torch.tensor(_as_heads(self.omega), dtype=x.dtype, device=x.device)
        mu = torch.tensor(_as_heads(self.mu), dtype=x.dtype, device=x.device)
        return kernel_predict(x, y, omega, mu)


@ESTIMATORS.register("single_head")
@dataclass(frozen=True)
class SingleHead(Estimator):
    """One softmax head at He et al.'s closed-form optimum.

    Attributes:
        L: the context length mu is fitted at (He et al.'s table uses the training length
            40 at every evaluation length); by default mu is refitted at each k.
        noise_std: label-noise sigma in the formula; by default the task's.
    """

    L: int | None = None
    noise_std: float | None = None

    def __post_init__(self) -> None:
        check(self.L is None or self.L >= 1, f"single_head: L must be at least 1, got {self.L}")
        check(
            self.noise_std is None or self.noise_std >= 0,
            f"single_head: noise_std must be >= 0, got {self.noise_std}",
        )

    def _noise_var(self, slot: int) -> float:
        if self.noise_std is not None:
            return self.noise_std**2
        return self._need_task().priors()[slot].noise_std ** 2

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        n, d = x.shape[1], x.shape[2]
        noise_var = self._noise_var(slot)
        if self.L is None:
            L = example_counts(n, x.device, x.dtype)  # k at each position
        else:
            L = torch.full((n,), float(self.L), dtype=x.dtype, device=x.device)
        mu = math.sqrt(d) / (1 + (1 + noise_var) * d * math.e / L)  # (n,)
        omega = torch.tensor([1 / math.sqrt(d)], dtype=x.dtype, device=x.device)
        one = torch.ones(1, dtype=x.dtype, device=x.device)
        return kernel_predict(x, y, omega, one) * mu


@ESTIMATORS.register("debiased_gd")
@dataclass(frozen=True)
class DebiasedGD(Estimator):
    """One mean-gradient step on centred inputs: y_hat = (lr/k) sum_i y_i <x_i - x_bar, x_q>.

    Attributes:
        lr: step size (He et al.'s 2 omega mu; 0.897 for omega = 0.13, mu = 3.45).
    """

    lr: float = 1.0

    def __post_init__(self) -> None:
        check(self.lr > 0, f"debiased_gd: lr must be positive, got {self.lr}")

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        n = x.shape[1]
        k = example_counts(n, x.device, x.dtype).view(1, n, 1)
        sum_yx = exclusive_cumsum(y.unsqueeze(-1) * x)  # (B, n, d)
        sum_x = exclusive_cumsum(x)
        sum_y = exclusive_cumsum(y).unsqueeze(-1)  # (B, n, 1)
        centred = sum_yx - sum_y * sum_x / k  # sum_i y_i (x_i - x_bar)
        return dot_query(x, self.lr * centred / k)
