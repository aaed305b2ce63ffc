r"""Exact Bayes for sparse coefficients: the posterior mean by enumerating the supports.

The prior of ``tasks.sparse`` (Garg et al., arXiv 2208.01066): a support T drawn uniformly from
the C(d, s) subsets of size s, w_T ~ N(0, tau^2 I_s) and w = 0 off T; y_i = <w, x_i> + sigma eps_i.
Given T everything is Gaussian, so the posterior is a mixture over supports:

.. math::
    E[\langle w, x_q\rangle \mid X, y] = \sum_T \pi_T \langle \mu_T, x_{q,T}\rangle, \qquad
    \pi_T \propto N(y; 0, \tau^2 X_T X_T^\top + \sigma^2 I),

mu_T = (X_T^T X_T + lam I)^{-1} X_T^T y with lam = sigma^2 / tau^2 (the Gaussian posterior
mean on T). The weights are normalised in log space (a running logsumexp over chunks of
supports, so memory stays bounded). Two exact forms of log pi_T, both all-prefix and batched
over prompts and supports:

- k <= s examples (the kernel form): C_T = tau^2 X_T X_T^T + sigma^2 I on the first s
  positions, C_T = L L^T, z = L^{-1} y; the prefix of k pairs has log-likelihood
  -1/2 sum_{j<k} z_j^2 - sum_{j<k} log L_jj (+ terms common to all T), and predicts the
  query from L^{-1} applied to its covariance with the examples. It holds for sigma = 0 too,
  where C_T (k <= s) is still non-singular.
- k > s (the weight form): with S_T, b_T the prefix moments restricted to T,
  A_T = S_T + lam I = L L^T and u = L^{-1} b_T,
  log pi_T = ||u||^2 / (2 sigma^2) - sum log L_jj + const (the matrix determinant lemma).
  At sigma = 0 the posterior is a point mass on the support that interpolates the examples:
  the one of largest ||u||^2, the smallest residual.

Everything is computed in float64 (as ``bayes``) and returned in the input dtype. ``s=d``
is the Gaussian prior N(0, tau^2 I): one support, ``bayes`` on a centred isotropic task.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import check
from .base import ESTIMATORS, Estimator, prefix_moments
from .least_squares import SOLVE_DTYPE

MAX_SUPPORTS = 100_000  # C(d, s) beyond this is refused (C(20, 3) = 1,140; C(30, 5) = 142,506)
BLOCK = 2**22  # elements of the largest per-chunk tensor (32 MiB in float64)


@ESTIMATORS.register("sparse_bayes")
@dataclass(frozen=True)
class SparseBayes(Estimator):
    """Posterior mean of y_q under the sparse prior (module docstring) with the task's tau =
    ``w_std`` and the label slot's noise sigma.

    Attributes:
        s: non-zero coordinates of w; by default the task's ``s`` (a ``sparse`` task), else d.
    """

    s: int | None = None

    def __post_init__(self) -> None:
        check(self.s is None or self.s >= 1, f"sparse_bayes: s must be at least 1, got {self.s}")

    def predict(self, x: Tensor, y: Tensor, slot: int = 0) -> Tensor:
        task = self._need_task()
        d = x.shape[-1]
        s = self.s if self.s is not None else min(task.nonzeros, d)
        check(s <= d, f"sparse_bayes: s must lie in [1, d={d}], got {s}")
        count = math.comb(d, s)
        check(count <= MAX_SUPPORTS, f"sparse_bayes: C(d={d}, s={s}) = {count:,} supports is more than "
                                     f"{MAX_SUPPORTS:,}; use a smaller d or s")
        tau, sigma = float(task.w_std), float(task.priors()[slot].noise_std)
        dtype, x, y = x.dtype, x.to(SOLVE_DTYPE), y.to(SOLVE_DTYPE)
        out = torch.zeros_like(y)  # k = 0: the prior mean
        n = x.shape[1]
        if tau == 0 or n == 1:
            return out.to(dtype)
        supports = torch.tensor(list(itertools.combinations(range(d), s)), device=x.device)  # (U, s)
        m = min(s, n - 1)
        out[:, 1 : m + 1] = _kernel_form(x[:, : m + 1], y[:, :m], supports, tau, sigma)
        if n - 1 > s:
            out[:, s + 1 :] = _weight_form(x, y, supports, s + 1, tau, sigma)
        return out.to(dtype)


class _Mixture:
    r"""The running sum_T softmax(logw)_T f_T over chunks of supports (logsumexp in pieces);
    with ``hard``, f of the support of largest logw (the sigma -> 0 limit)."""

    def __init__(self, hard: bool) -> None:
        self.hard = hard
        self.top: Tensor | None = None  # (B, m) running max of logw
        self.total: Tensor | None = None  # (B, m) sum exp(logw - top)
        self.acc: Tensor | None = None  # (B, m) sum exp(logw - top) f (or the argmax's f)

    def add(self, logw: Tensor, f: Tensor) -> None:
        """One chunk: logw, f (B, m, U)."""
        top = logw.amax(-1)
        if self.hard:
            best = f.gather(-1, logw.argmax(-1, keepdim=True)).squeeze(-1)
            if self.top is None:
                self.top, self.acc = top, best
            else:
                better = top > self.top
                self.top, self.acc = torch.where(better, top, self.top), torch.where(better, best, self.acc)
            return
        new = top if self.top is None else torch.maximum(self.top, top)
        new = new.clamp_min(torch.finfo(new.dtype).min)  # all -inf so far: exp(-inf) = 0, not nan
        e = torch.exp(logw - new.unsqueeze(-1))  # (B, m, U)
        total, acc = e.sum(-1), (e * f).sum(-1)
        if self.top is not None:
            scale = torch.exp(self.top - new)
            total, acc = total + scale * self.total, acc + scale * self.acc
        self.top, self.total, self.acc = new, total, acc

    def value(self) -> Tensor:
        assert self.acc is not None
        return self.acc if self.hard else self.acc / self.total


def _chunks(supports: Tensor, per_support: int) -> tuple[Tensor, ...]:
    """The supports in chunks whose largest tensor holds about :data:`BLOCK` elements."""
    return supports.split(max(1, BLOCK // max(per_support, 1)))


def _kernel_form(x: Tensor, y: Tensor, supports: Tensor, tau: float, sigma: float) -> Tensor:
    """Predictions at positions 1..m from the first m <= s pairs: x (B, m+1, d), y (B, m) -> (B, m)."""
    B, m = y.shape
    before = torch.ones(m, m, dtype=torch.bool, device=x.device).triu()  # [j, c]: example j < query c + 1
    mixture = _Mixture(hard=False)
    for chunk in _chunks(supports, B * (m + 1) ** 2):
        xs = x[..., chunk].permute(0, 2, 1, 3)  # (B, U, m+1, s)
        K = tau**2 * xs @ xs.mT  # (B, U, m+1, m+1): prior covariance of <w, x_i> and <w, x_j>
        C = K[..., :m, :m] + sigma**2 * torch.eye(m, dtype=x.dtype, device=x.device)
        L, info = torch.linalg.cholesky_ex(C)  # (B, U, m, m)
        z = torch.linalg.solve_triangular(L, y[:, None, :, None].expand(-1, L.shape[1], -1, -1),
                                          upper=False).squeeze(-1)  # (B, U, m)
        V = torch.linalg.solve_triangular(L, K[..., :m, 1:], upper=False)  # (B, U, m, m)
        f = (V.masked_fill(~before, 0.0) * z.unsqueeze(-1)).sum(-2)  # (B, U, m): query c + 1
        logw = -0.5 * z.square().cumsum(-1) - L.diagonal(dim1=-2, dim2=-1).log().cumsum(-1)
        # a singular leading minor (sigma = 0, degenerate x) has no density: weight 0
        ok = (info == 0).unsqueeze(-1) | (torch.arange(1, m + 1, device=x.device) < info.unsqueeze(-1))
        mixture.add(logw.masked_fill(~ok, -math.inf).mT, f.masked_fill(~ok, 0.0).mT)
    return mixture.value()


def _solve_small(A: dict[tuple[int, int], Tensor], b: list[Tensor]) -> tuple[list[Tensor], Tensor, Tensor]:
    """Cholesky A = L L^T of many small s x s systems held entry by entry (each entry a tensor
    over the batch: s(s+1)/2 elementwise passes beat LAPACK's per-matrix calls at s = 3).

    Args:
        A: (i, j) -> A_ij for j <= i, each (...), overwritten; b: s tensors (...).
    Returns:
        (w = A^{-1} b as s tensors, ||L^{-1} b||^2, sum_j log L_jj); nan where A is not
        positive definite.
    """
    s = len(b)
    L: dict[tuple[int, int], Tensor] = {}
    for j in range(s):  # the entries of A are fresh tensors: updated in place
        for k in range(j):
            A[j, j].addcmul_(L[j, k], L[j, k], value=-1)
        L[j, j] = A[j, j].sqrt_()  # nan where A is not positive definite
        for i in range(j + 1, s):
            for k in range(j):
                A[i, j].addcmul_(L[i, k], L[j, k], value=-1)
            L[i, j] = A[i, j].div_(L[j, j])
    u = [v.clone() for v in b]
    for i in range(s):  # L u = b
        for k in range(i):
            u[i].addcmul_(L[i, k], u[k], value=-1)
        u[i].div_(L[i, i])
    w = [v.clone() for v in u]
    for i in reversed(range(s)):  # L^T w = u
        for k in range(i + 1, s):
            w[i].addcmul_(L[k, i], w[k], value=-1)
        w[i].div_(L[i, i])
    q = u[0].square()
    half_logdet = L[0, 0].log()
    for i in range(1, s):
        q.addcmul_(u[i], u[i])
        half_logdet.add_(L[i, i].log())
    return w, q, half_logdet


def _weight_form(x: Tensor, y: Tensor, supports: Tensor, start: int, tau: float, sigma: float) -> Tensor:
    """Predictions at positions start..n-1 (k >= s + 1 examples): x (B, n, d), y (B, n) -> (B, n - start)."""
    S, b = prefix_moments(x, y, start)  # (B, m, d, d), (B, m, d)
    B, m, _ = b.shape
    s = supports.shape[1]
    lam = sigma**2 / tau**2
    xq = x[:, start:]  # (B, m, d)
    mixture = _Mixture(hard=sigma == 0)
    for chunk in _chunks(supports, B * m):
        cols = chunk.T  # (s, U): cols[i] is the i-th coordinate of each support
        A = {(i, j): S[:, :, cols[i], cols[j]] for i in range(s) for j in range(i + 1)}  # (B, m, U) each
        for i in range(s):
            A[i, i].add_(lam)
        w, q, half_logdet = _solve_small(A, [b[:, :, c] for c in cols])
        f = w[0].mul_(xq[:, :, cols[0]])  # (B, m, U): <mu_T, x_q,T>
        for i in range(1, s):
            f.addcmul_(w[i], xq[:, :, cols[i]])
        logw = q if sigma == 0 else q / (2 * sigma**2) - half_logdet
        bad = logw.isnan()  # A_T singular (degenerate x): no density
        mixture.add(logw.masked_fill(bad, -math.inf), f.masked_fill(bad, 0.0))
    return mixture.value()
