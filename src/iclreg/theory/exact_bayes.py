r"""Exact finite-k Bayes risk of isotropic Gaussian in-context linear regression.

Task (papers.md, "Common data model"): x ~ N(0, I_d), w ~ N(0, tau^2 I_d),
y = <w, x> + sigma eps. Given k examples X (k, d), y (k,), the posterior of w is Gaussian with
covariance sigma^2 (X^T X + lam I)^{-1}, lam = sigma^2 / tau^2, and mean the ridge estimator.
The Bayes (posterior-mean) prediction of a fresh noisy label therefore has risk

.. math::
    R_k = \sigma^2 + \mathbb{E}\, x_q^\top \mathrm{Cov}(w \mid X, y)\, x_q
        = \sigma^2 + \sigma^2\, \mathbb{E}\,\mathrm{tr}\big((X^\top X + \lambda I)^{-1}\big).

With m = min(k, d) and n = max(k, d), X^T X has d - m zero eigenvalues and m non-zero ones
s_1..s_m, distributed as the real Wishart (Laguerre orthogonal) ensemble

.. math::
    p(s) \propto \prod_i s_i^{(n-m-1)/2} e^{-s_i/2} \prod_{i<j} |s_i - s_j|,

so E tr((X^T X + lam)^{-1}) = (d - m)/lam + E sum_i g(s_i) with g(s) = 1/(s + lam).
The linear statistic is computed exactly (up to quadrature error ~1e-12) with de Bruijn's
Pfaffian formula, E prod_i f(s_i) = Pf A[f] / Pf A[1], where, for basis functions psi_i
(polynomial of degree i-1 times the weight),

.. math::
    A[f]_{ij} = \iint \mathrm{sign}(t-s)\, \psi_i(s)\psi_j(t) f(s) f(t)\, ds\, dt,

bordered by the column int psi_i f when m is odd. Differentiating log Pf A[1 + t g] at t = 0
gives E sum_i g(s_i) = (1/2) tr(A^{-1} A'), A'_{ij} = B(g psi_i, psi_j) + B(psi_i, g psi_j)
with B(a, b) = iint sign(t - s) a(s) b(t). No Monte Carlo is involved: integrals use a
composite Gauss-Legendre rule in u = sqrt(s) (which removes the s^{-1/2} singularity of k = d)
with panels graded geometrically towards 0 (for small lam), and the inner (cumulative)
integrals of the sign kernel use the exact spectral integration matrix on each panel.
Basis: psi_i(s) = l_{i-1}(s) s^{-1/2}, l_j the orthonormal Laguerre functions of parameter
n - m, which keeps A well conditioned (m <= 20 tested, d = 20, k = 60).

Reference: the Bayes estimator is the ridge estimator of He et al. (arXiv 2503.12734) with
lam = sigma^2 d when tau^2 = 1/d; its large-(d, k) limit is ``asymptotic_ridge_risk``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
from numpy.polynomial import legendre
from scipy.special import eval_genlaguerre, gammaln

from ..errors import check

__all__ = ["bayes_risk", "expected_resolvent_trace", "wishart_linear_statistic"]

_NODES_PER_PANEL = 20


@lru_cache(maxsize=4)
def _panel_rule(p: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes x (p,), weights w (p,) on [-1, 1] and the integration matrix
    S (p, p) with S[r, q] = int_{-1}^{x_r} ell_q, ell_q the Lagrange basis at the nodes."""
    x, w = legendre.leggauss(p)
    # ell_q = sum_k c[k, q] P_k with c[k, q] = (2k+1)/2 P_k(x_q) w_q (discrete orthogonality)
    vander = legendre.legvander(x, p - 1)  # (p, p): P_k(x_r)
    coef = (vander * w[:, None]).T * (np.arange(p)[:, None] + 0.5)  # (k, q)
    # int_{-1}^{x_r} P_k for each k
    ints = np.empty((p, p))
    for k in range(p):
        e = np.zeros(p)
        e[k] = 1.0
        ints[:, k] = legendre.legval(x, legendre.legint(e, lbnd=-1))
    return x, w, ints @ coef


def _grid(s_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre rule in u = sqrt(s) on [0, sqrt(s_max)]: panels graded
    geometrically from 1e-9 to 1, then of width 1/2.

    Returns nodes u (N,), weights (N,) and the panel half-widths (P,), N = P * p.
    """
    u_max = np.sqrt(s_max)
    graded = np.geomspace(1e-9, 1.0, 37)  # ratio ~1.78: resolves 1/(u^2 + lam) down to lam ~ 1e-16
    uniform = np.arange(1.0, u_max + 0.5, 0.5)[1:]
    edges = np.concatenate([[0.0], graded, uniform])
    x, w, _ = _panel_rule(_NODES_PER_PANEL)
    half = np.diff(edges) / 2  # (P,)
    mid = (edges[1:] + edges[:-1]) / 2
    u = (mid[:, None] + half[:, None] * x[None, :]).ravel()  # (P * p,)
    weights = (half[:, None] * w[None, :]).ravel()
    return u, weights, half


def _cumulative(h: np.ndarray, half: np.ndarray) -> np.ndarray:
    """C[..., q] = int_0^{u_q} h du for samples h (..., P * p) on the grid of ``_grid``."""
    _, w, smat = _panel_rule(_NODES_PER_PANEL)
    hp = h.reshape(*h.shape[:-1], half.size, _NODES_PER_PANEL)  # (..., P, p)
    within = np.einsum("rq,...Pq->...Pr", smat, hp) * half[:, None]  # (..., P, p)
    totals = (hp @ w) * half  # (..., P)
    before = np.cumsum(totals, axis=-1) - totals  # integral over earlier panels
    return (within + before[..., None]).reshape(h.shape)


def wishart_linear_statistic(m: int, n: int, g: Callable[[np.ndarray], np.ndarray]) -> float:
    r"""E sum_{i=1}^m g(s_i) for the m non-zero eigenvalues of X^T X, X an (n, m) standard
    Gaussian matrix (n >= m >= 1), computed exactly by de Bruijn's Pfaffian formula.

    Args:
        m: number of eigenvalues (min(k, d)).
        n: number of degrees of freedom (max(k, d)).
        g: vectorised function of s >= 0 (numpy array in, array out); it must be integrable
            against s^{(n-m-1)/2} e^{-s/2} (e.g. 1/(s + lam), lam >= 0 when n - m >= 2).

    Returns:
        The expectation as a Python float.
    """
    check(1 <= m <= n, f"wishart_linear_statistic needs 1 <= m <= n, got m={m}, n={n}")
    beta = n - m
    s_max = 4.0 * m + 2.0 * beta + 60.0 + 12.0 * np.sqrt(4.0 * m + 2.0 * beta + 1.0)
    u, weights, half = _grid(s_max)
    s = u * u
    # h_i(u) = psi_i(s) ds/du = 2 l_{i-1}(u^2) with l_j(s) = L_j^{(beta)}(s) s^{beta/2} e^{-s/2}
    # / sqrt(Gamma(j + beta + 1) / j!): the orthonormal Laguerre functions.
    j = np.arange(m)[:, None]
    log_s = np.log(s)  # Gauss nodes are interior: s > 0
    log_env = 0.5 * beta * log_s - 0.5 * s - 0.5 * (gammaln(j + beta + 1) - gammaln(j + 1))
    h = 2.0 * eval_genlaguerre(j, beta, s[None, :]) * np.exp(log_env)  # (m, N)
    gh = h * g(s)[None, :]  # (m, N)
    total = h @ weights  # (m,): int psi_i ds
    inner = total[:, None] - 2.0 * _cumulative(h, half)  # (m, N): int sign(t - s) psi_j(t) dt
    # einsum, not BLAS matmul: these products are tiny, and a threaded BLAS sharing the
    # process with torch's thread pool was measured 100x slower on 2 cores.
    mat = np.einsum("iq,jq->ij", h * weights, inner)  # B(psi_i, psi_j)
    mat_g = np.einsum("iq,jq->ij", gh * weights, inner)  # B(g psi_i, psi_j)
    a = (mat - mat.T) / 2
    da = mat_g - mat_g.T  # B(g psi_i, psi_j) + B(psi_i, g psi_j), by antisymmetry of B
    if m % 2 == 1:  # border with the single integrals (de Bruijn, odd m)
        a = np.block([[a, total[:, None]], [-total[None, :], np.zeros((1, 1))]])
        border = gh @ weights
        da = np.block([[da, border[:, None]], [-border[None, :], np.zeros((1, 1))]])
    return 0.5 * float(np.trace(np.linalg.solve(a, da)))


def expected_resolvent_trace(d: int, k: int, lam: float) -> float:
    r"""E tr((X^T X + lam I_d)^{-1}) for X a (k, d) standard Gaussian matrix, exactly.

    lam = 0 is allowed when k >= d + 2 (then it equals d / (k - d - 1), the inverse-Wishart
    mean); otherwise lam must be positive.
    """
    check(d >= 1 and k >= 0, f"expected_resolvent_trace needs d >= 1, k >= 0, got d={d}, k={k}")
    check(lam > 0 or k >= d + 2, f"lam must be > 0 unless k >= d + 2 (got lam={lam}, k={k})")
    m, n = min(k, d), max(k, d)
    zero_part = (d - m) / lam if d > m else 0.0
    if m == 0:
        return zero_part
    return zero_part + wishart_linear_statistic(m, n, lambda s: 1.0 / (s + lam))


def bayes_risk(d: int, k: int, noise_std: float, w_std: float) -> float:
    r"""Exact Bayes risk (MSE on a noisy label, noise floor included) after k examples.

    R_k = sigma^2 + sigma^2 E tr((X^T X + lam I)^{-1}), lam = sigma^2 / tau^2, for
    x ~ N(0, I_d), w ~ N(0, tau^2 I_d), y = <w, x> + sigma eps. Special cases: k = 0 gives
    sigma^2 + d tau^2; sigma = 0 gives tau^2 max(d - k, 0).

    Args:
        d: input dimension.
        k: number of in-context examples (>= 0).
        noise_std: sigma >= 0.
        w_std: tau > 0.
    """
    check(noise_std >= 0 and w_std > 0, f"need noise_std >= 0, w_std > 0, got {noise_std}, {w_std}")
    sigma2, tau2 = float(noise_std) ** 2, float(w_std) ** 2
    if sigma2 == 0.0:
        return tau2 * max(d - k, 0)
    if k == 0:
        return sigma2 + d * tau2
    return sigma2 + sigma2 * expected_resolvent_trace(d, k, sigma2 / tau2)
