"""Iterative solvers run on every prefix at once: GD, preconditioned GD, Newton-Schulz.

All start from the prefix moments S_i = X_i^T X_i and b_i = X_i^T y_i (unnormalised sums, as
in the papers' code) and iterate on a (B, n, d) stack of weight vectors, one per prefix.

* GD (von Oswald et al., arXiv 2212.07677): w_0 = 0, w <- w - lr (S w - b); with
  ``mean=true`` the gradient is averaged over the k examples (lr / k).
* Preconditioned GD (Ahn et al., arXiv 2306.00297): w <- w - lr P (S w - b), run as plain
  GD on the features x P^{1/2} (P symmetric positive definite).
* Iterative Newton / Newton-Schulz (Fu et al., arXiv 2310.17086): M_0 = S / ||S S^T||,
  M <- 2 M - M S M, w = M b; ``scale=fro`` uses the Frobenius norm (the authors' code),
  ``scale=spectral`` the 2-norm.

GD from 0 converges on a prefix only when lr lambda_max(S) < 2 (each eigendirection of S is
multiplied by 1 - lr lambda per step); past that bound it diverges geometrically. ``gd`` and
``pgd`` warn (:class:`DivergenceWarning`, once per estimator object: the first batch that shows
it) when their iteration grew on the prompts given, and name the largest stable lr.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import check
from ..resources import MAX_STEPS
from .base import ESTIMATORS, Estimator, dot_query, prefix_moments


class DivergenceWarning(RuntimeWarning):
    """An iterative estimator that grew instead of converging (its step size is too large)."""


def gd_weights(S: Tensor, b: Tensor, steps: int, lr: Tensor | float) -> Tensor:
    """Weights after ``steps`` GD steps from 0 for every prefix.

    Args:
        S: (B, n, d, d) prefix Gram matrices; b: (B, n, d) prefix moments X^T y.
        lr: step size, a number or a tensor broadcastable to (B, n, 1).
    Returns:
        (B, n, d) weights.
    """
    w = torch.zeros_like(b)
    for _ in range(steps):
        w = w - lr * (torch.einsum("bnij,bnj->bni", S, w) - b)  # (B, n, d)
    return w


def gd_trajectory(x: Tensor, y: Tensor, steps: list[int], lr: float) -> Tensor:
    """Predictions of GD from 0 after each of ``steps`` (sorted), from one run of max(steps).

    Args:
        x: (B, n, d); y: (B, n); lr: step on the summed loss.
    Returns:
        (len(steps), B, n).
    """
    S, b = prefix_moments(x, y)
    w = torch.zeros_like(b)
    out, wanted, done = [], sorted(set(steps)), 0
    for t in range(wanted[-1] + 1):
        while done < len(wanted) and wanted[done] == t:
            out.append(dot_query(x, w))
            done += 1
        w = w - lr * (torch.einsum("bnij,bnj->bni", S, w) - b)
    by_step = dict(zip(wanted, out, strict=True))
    return torch.stack([by_step[s] for s in steps])


@ESTIMATORS.register("gd")
@dataclass(frozen=True)
class GD(Estimator):
    """Gradient descent on the in-context least-squares loss, from w = 0.

    Attributes:
        steps: number of steps (>= 0).
        lr: step size on the summed loss, w <- w - lr X^T (X w - y).
        mean: average the gradient over the k examples (step lr / k) instead of summing.
    """

    steps: int = 1
    lr: float = 0.01
    mean: bool = False

    def __post_init__(self) -> None:
        check(self.steps >= 0, f"{self.name}: steps must be >= 0, got {self.steps}")
        check(self.steps <= MAX_STEPS, f"{self.name}: steps must be at most {MAX_STEPS:,} "
                                       f"(a bound on the run time), got {self.steps:,}")
        check(self.lr > 0, f"{self.name}: lr must be positive, got {self.lr}")

    def step_size(self, n: int, like: Tensor) -> Tensor | float:
        if not self.mean:
            return self.lr
        k = torch.arange(n, device=like.device, dtype=like.dtype).clamp_min(1)
        return (self.lr / k).view(1, n, 1)

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        S, b = prefix_moments(x, y)
        lr = self.step_size(x.shape[1], x)
        w = gd_weights(S, b, self.steps, lr)
        if self.steps >= 2:
            self.check_growth(S, b, w, lr)
        return dot_query(x, w)

    def check_growth(self, S: Tensor, b: Tensor, w: Tensor, lr: Tensor | float) -> None:
        """Warn (:class:`DivergenceWarning`) when the iteration grew instead of converging.

        The step from w_t is u_t = lr (b - S w_t) = (I - lr S)^t u_0, no longer than u_0 while
        lr lambda_max(S) <= 2; the warning fires when the step after the last one is over twice
        the first (or w is not finite) on some prefix, and names the largest stable lr on these
        prompts, 2 / lambda_max(S) (2 k / lambda_max(S_k) with ``mean``). On meta tensors (a
        dry run measuring memory, ``resources.py``) it allocates what the real check does.

        Args:
            S: (B, n, d, d) prefix Gram matrices; b: (B, n, d); w: (B, n, d) the final weights;
            lr: the step per prefix (a number or (1, n, 1)).
        """
        first = (lr * b).norm(dim=-1)  # (B, n)
        last = (lr * (torch.einsum("bnij,bnj->bni", S, w) - b)).norm(dim=-1)  # (B, n)
        grew = ~torch.isfinite(w).all(-1) | ~torch.isfinite(last) | (last > 2 * first)  # (B, n)
        if grew.is_meta or getattr(self, "_warned", False) or not bool(grew.any()):
            return
        object.__setattr__(self, "_warned", True)  # once per estimator, not once per chunk of prompts
        spec = f"{self.name}:steps={self.steps},lr={self.lr:g}" + (",mean=true" if self.mean else "")
        growth = (last / first)[grew & torch.isfinite(last)]
        size = f"{growth.max().item():.1e}-fold" if growth.numel() else "to inf/nan"
        stable = self.stable_lr(S)
        warnings.warn(
            f"{spec} diverges on these prompts (from k = {int(grew.any(0).nonzero()[0])} on, its step "
            f"grew {size} over {self.steps} steps): lr exceeds the stability bound 2/lambda_max(X^T X); "
            f"lr below {stable:.3g} is stable on every prefix here (e.g. lr={0.5 * stable:.2g}), or "
            "use fewer steps", DivergenceWarning, stacklevel=4,  # the caller of the estimator (gd)
        )

    def stable_lr(self, S: Tensor) -> float:
        """The largest lr that converges on every prefix of these prompts: min over k of
        2 / lambda_max(S_k), or 2 k / lambda_max(S_k) with ``mean`` (S: (B, n, d, d)).

        Without ``mean`` the last prefix decides: S_{k+1} = S_k + x_k x_k^T, so lambda_max
        grows with k. With it every prefix is checked, one position at a time (a (B, d, d)
        copy each: this runs once, on the warning's path)."""
        n = S.shape[1]
        positions = range(1, n) if self.mean else range(n - 1, n)
        tops = [torch.linalg.eigvalsh(S[:, k].double())[:, -1].max().item() for k in positions]
        return min((2 * (k if self.mean else 1) / top for k, top in zip(positions, tops, strict=True)
                    if top > 0), default=float("inf"))


@ESTIMATORS.register("pgd")
@dataclass(frozen=True)
class PreconditionedGD(GD):
    """Preconditioned GD, w <- w - lr P X^T (X w - y).

    Attributes:
        precond: ``inverse_cov`` (P = Sigma^{-1} of the task's x), ``identity``, or a list of
            d numbers for a diagonal P.
    """

    precond: str | tuple[float, ...] = "inverse_cov"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(
            not isinstance(self.precond, str) or self.precond in ("inverse_cov", "identity"),
            f"pgd: precond must be inverse_cov, identity or a list of d numbers, "
            f"got '{self.precond}'",
        )
        check(
            isinstance(self.precond, str) or all(p > 0 for p in self.precond),
            f"pgd: a diagonal precond needs positive numbers, got {list(self.precond)}",
        )

    def root(self, d: int) -> Tensor:
        """P^{1/2}, the symmetric square root of the preconditioner: (d, d) float64."""
        if self.precond == "identity":
            return torch.eye(d, dtype=torch.float64)
        if self.precond == "inverse_cov":
            evals, evecs = torch.linalg.eigh(self._need_task().covariance)
            return (evecs * evals.rsqrt()) @ evecs.T
        check(len(self.precond) == d, f"pgd: precond needs d={d} numbers, got {len(self.precond)}")
        return torch.diag(torch.tensor(self.precond, dtype=torch.float64).sqrt())

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        # With w = P^{1/2} u the update w <- w - lr P (S w - b) is plain GD on u for the
        # features x' = x P^{1/2}, and <w, x> = <u, x'>.
        root = self.root(x.shape[-1]).to(device=x.device, dtype=x.dtype)
        return super().predict(x @ root, y, slot)


def newton_weights(S: Tensor, b: Tensor, steps: int, scale: str = "fro") -> Tensor:
    """Newton-Schulz weights w = M_steps b for every prefix.

    The iteration M_{j+1} = 2 M_j - (M_j S) M_j keeps its self-correcting matrix form; two
    products are saved by algebra alone: M_0 S = c S^2 reuses the S^2 of the norm, and the
    last step acts on a vector, M_k b = 2 M b - (M S)(M b).

    Args:
        S: (..., d, d) symmetric PSD Gram matrices; b: (..., d).
        scale: ``fro`` (M_0 = S / ||S S^T||_F) or ``spectral`` (M_0 = S / ||S S^T||_2).
    Returns:
        (..., d) weights; prefixes with S = 0 get w = 0.
    """
    shape = b.shape
    d = shape[-1]
    S = S.reshape(-1, d, d)  # (N, d, d)
    b = b.reshape(-1, d, 1)  # (N, d, 1)
    SS = torch.bmm(S, S)  # S S^T, S symmetric
    if scale == "fro":
        norm = torch.linalg.matrix_norm(SS)
    else:
        norm = torch.linalg.eigvalsh(S).amax(-1).square()
    c = 1 / norm.clamp_min(torch.finfo(S.dtype).tiny)[:, None, None]
    M, MS = c * S, c * SS  # M_0 and M_0 S
    for _ in range(steps - 1):
        M = torch.baddbmm(M, MS, M, beta=2, alpha=-1)  # 2M - (M S) M
        MS = torch.bmm(M, S)
    Mb = torch.bmm(M, b)
    if steps > 0:
        Mb = 2 * Mb - torch.bmm(MS, Mb)
    return Mb.reshape(shape)


@ESTIMATORS.register("newton")
@dataclass(frozen=True)
class Newton(Estimator):
    """Iterative Newton's method (Newton-Schulz on S = X^T X), w = M_steps X^T y.

    Attributes:
        steps: number of iterations after M_0 (>= 0).
        scale: ``fro`` or ``spectral``, the norm in M_0 = S / ||S S^T||.
    """

    steps: int = 5
    scale: Literal["fro", "spectral"] = "fro"

    def __post_init__(self) -> None:
        check(self.steps >= 0, f"newton: steps must be >= 0, got {self.steps}")
        check(self.steps <= MAX_STEPS,
              f"newton: steps must be at most {MAX_STEPS:,} (a bound on the run time), got {self.steps:,}")

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        S, b = prefix_moments(x, y)
        return dot_query(x, newton_weights(S, b, self.steps, self.scale))
