"""Least squares, ridge and the Bayes posterior mean, for every prefix at once.

Two exact forms, chosen by cost:

* primal: w_i = (S_i + lam I)^{-1} b_i with prefix moments S_i = X_i^T X_i, b_i = X_i^T y_i;
  one batched d x d Cholesky solve per position, O(n d^3) per prompt.
* kernel: with K = X X^T + lam I = L L^T (one n x n Cholesky per prompt), the prediction at
  position i is K[i, :i] K[:i, :i]^{-1} y[:i] = L[i, :i] z[:i] with z = L^{-1} y, because
  the prefix blocks of a Cholesky factor are the factors of the prefix blocks. All n
  prefixes cost one factorisation, O(n^3) per prompt (the Gaussian-process posterior mean).

Minimum-norm least squares uses the kernel form with lam = 0 while i < d (X_i X_i^T is then
invertible) and the primal form from i = d on; prompts whose Gram matrices are singular fall
back to the pseudo-inverse. ``bayes`` is ridge with lam = sigma^2 on x' = x P^{1/2} and
labels y - <x, m>, the posterior mean under w ~ N(m, P) (DESIGN.md's estimator contract).

Precision: both forms solve normal equations, whose condition number is kappa(X_i)^2. Near
i = d it is large: over 1,024 Gaussian prompts at d = 20, kappa(X_20) has median 70 and
maximum 9e4, so in float32 (eps 6e-8) the answer can be wrong in its first digit, where a QR
solver such as ``torch.linalg.lstsq`` loses only kappa eps. The solvers therefore accumulate
the moments and factorise in float64 (:data:`SOLVE_DTYPE`) whatever the input dtype (error
~ kappa^2 1.1e-16, below float32 QR's) and return the input dtype; float32 data is exact in
float64, so the result is the exact answer for the data, rounded once. On float32 prompts
(1,280 x 41 x 20, CPU) this costs ols nothing (its moments start at position d) and ridge
about 1.3-1.5x the float32 time, far within the all-prefix speed-ups of
benchmarks/estimators.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..errors import check
from ..tasks.covariance import sqrt_psd
from .base import ESTIMATORS, Estimator, causal_mask, dot_query, prefix_moments

SOLVE_DTYPE = torch.float64  # what the solvers accumulate and factorise in (module docstring)


def kernel_is_cheaper(n: int, d: int) -> bool:
    """Flop model: n^3/3 + n^2 d (kernel) against n d^3/3 + n d^2 (primal)."""
    return n * n * (n / 3 + d) < n * d * d * (d / 3 + 1)


def _kernel_form(x: Tensor, y: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """Prefix predictions from the Cholesky factor of X X^T + lam I: ((B, n), info (B,))."""
    gram = x @ x.transpose(-1, -2)  # (B, n, n)
    gram.diagonal(dim1=-2, dim2=-1).add_(lam)
    chol, info = torch.linalg.cholesky_ex(gram)
    z = torch.linalg.solve_triangular(chol, y.unsqueeze(-1), upper=False)  # (B, n, 1)
    # L[i, :i] z[:i] as a masked sum, so that a later non-finite label cannot leak backwards
    # (y_i - L_ii z_i is equal and cheaper, but cancels when |pred_i| << |y_i|, large lam)
    terms = (chol * z.transpose(-1, -2)).masked_fill_(~causal_mask(x.shape[1], x.device), 0.0)
    return terms.sum(-1), info  # (B, n), (B,)


def _primal_form(x: Tensor, y: Tensor, lam: float, start: int = 0) -> tuple[Tensor, Tensor]:
    """Predictions at positions start..n-1 from (S_i + lam I)^{-1} b_i, and info (B,)."""
    S, b = prefix_moments(x, y, start)  # (B, m, d, d), (B, m, d) with m = n - start
    S.diagonal(dim1=-2, dim2=-1).add_(lam)
    chol, info = torch.linalg.cholesky_ex(S)
    w = torch.cholesky_solve(b.unsqueeze(-1), chol).squeeze(-1)  # (B, m, d)
    return dot_query(x[:, start:], w), info.amax(dim=1)


def _pinv_form(x: Tensor, y: Tensor, lam: float = 0.0) -> Tensor:
    """Prefix predictions via the pseudo-inverse of S_i + lam I (robust, slower)."""
    S, b = prefix_moments(x, y)
    S.diagonal(dim1=-2, dim2=-1).add_(lam)
    w = (torch.linalg.pinv(S, hermitian=True) @ b.unsqueeze(-1)).squeeze(-1)
    return dot_query(x, w)


def ridge_predict(x: Tensor, y: Tensor, lam: float, method: str = "auto") -> Tensor:
    """Ridge predictions for every prefix, w_i = (X_i^T X_i + lam I)^{-1} X_i^T y_i.

    Solved in float64 (:data:`SOLVE_DTYPE`) whatever the input dtype.

    Args:
        x: (B, n, d); y: (B, n); lam: > 0, or 0 for minimum-norm least squares.
        method: ``kernel``, ``primal`` or ``auto`` (the cheaper by :func:`kernel_is_cheaper`).
    Returns:
        (B, n) predictions in x's dtype; position i uses the first i pairs.
    """
    if lam == 0:
        return ols_predict(x, y)
    dtype, x, y = x.dtype, x.to(SOLVE_DTYPE), y.to(SOLVE_DTYPE)
    n, d = x.shape[1], x.shape[2]
    use_kernel = method == "kernel" or (method == "auto" and kernel_is_cheaper(n, d))
    pred, info = _kernel_form(x, y, lam) if use_kernel else _primal_form(x, y, lam)
    bad = info > 0  # only when lam is at the round-off level of the Gram matrix
    if bool(bad.any()):
        pred[bad] = _pinv_form(x[bad], y[bad], lam)
    return pred.to(dtype)


def ols_predict(x: Tensor, y: Tensor) -> Tensor:
    """Minimum-norm least-squares predictions for every prefix: (B, n, d), (B, n) -> (B, n).

    Solved in float64 (:data:`SOLVE_DTYPE`) whatever the input dtype; returns x's dtype.
    """
    dtype, x, y = x.dtype, x.to(SOLVE_DTYPE), y.to(SOLVE_DTYPE)
    n, d = x.shape[1], x.shape[2]
    m = min(n, d)
    head, info = _kernel_form(x[:, :m], y[:, :m], 0.0)  # positions 0..m-1: X_i X_i^T invertible
    parts = [head]
    if n > d:
        tail, tail_info = _primal_form(x, y, 0.0, start=d)  # positions d..n-1: S_i invertible
        parts.append(tail)
        info = torch.maximum(info, tail_info)
    pred = torch.cat(parts, dim=1)
    bad = info > 0
    if bool(bad.any()):
        pred[bad] = _pinv_form(x[bad], y[bad])
    return pred.to(dtype)


@ESTIMATORS.register("ols")
@dataclass(frozen=True)
class OLS(Estimator):
    """Minimum-norm least squares, w = pinv(X) y."""

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        return ols_predict(x, y)


@ESTIMATORS.register("ridge")
@dataclass(frozen=True)
class Ridge(Estimator):
    """Ridge regression, w = (X^T X + lam I)^{-1} X^T y (unnormalised sums).

    Attributes:
        lam: regularisation lambda >= 0 (0 gives minimum-norm least squares).
        method: ``auto``, ``kernel`` or ``primal`` (see the module docstring).
    """

    lam: float = 1.0
    method: Literal["auto", "kernel", "primal"] = "auto"

    def __post_init__(self) -> None:
        check(self.lam >= 0, f"ridge: lam must be >= 0, got {self.lam}")

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        return ridge_predict(x, y, self.lam, self.method)



@ESTIMATORS.register("bayes")
@dataclass(frozen=True)
class Bayes(Estimator):
    """Posterior mean of y_q under the task's Gaussian prior w ~ N(m, P) and noise sigma.

    E[w | X, y] = m + P X^T (X P X^T + sigma^2 I)^{-1} (y - X m), computed as ridge with
    lam = sigma^2 on x' = x P^{1/2}. For tasks whose prior is not Gaussian (binary, sparse)
    this uses the prior's mean and covariance: the best estimator linear in y, not the exact
    posterior mean.
    """

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        prior = self._need_task().priors()[slot]
        dtype, x, y = x.dtype, x.to(SOLVE_DTYPE), y.to(SOLVE_DTYPE)  # as ridge_predict
        mean = prior.mean.to(device=x.device, dtype=x.dtype)
        root = sqrt_psd(prior.cov).to(device=x.device, dtype=x.dtype)
        offset = x @ mean  # (B, n)
        return (offset + ridge_predict(x @ root, y - offset, prior.noise_std**2)).to(dtype)
