"""Tests for iclreg.theory.exact_bayes: exact finite-k Bayes risk of the isotropic Gaussian task.

Every reference below is computed without the Pfaffian code: closed forms, scipy quadrature of
the eigenvalue density (m <= 2), or Monte Carlo in float64.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special

from iclreg.theory import bayes_risk, expected_resolvent_trace, wishart_linear_statistic

F64 = torch.float64


@pytest.mark.parametrize("d, tau", [(1, 1.0), (5, 0.3), (20, 2.0)])
def test_no_examples_gives_prior_predictive_variance(d, tau):
    sigma = 0.7
    assert bayes_risk(d, 0, sigma, tau) == pytest.approx(sigma**2 + d * tau**2, rel=1e-15)


@pytest.mark.parametrize("d, k", [(5, 0), (5, 3), (5, 5), (5, 9), (20, 60)])
def test_noiseless_risk_is_unexplained_prior_variance(d, k):
    assert bayes_risk(d, k, 0.0, 0.5) == 0.25 * max(d - k, 0)


@pytest.mark.parametrize("d, k", [(1, 3), (3, 6), (5, 40), (20, 22), (20, 23), (20, 60), (19, 60)])
def test_inverse_wishart_mean_at_small_lam(d, k):
    """E tr((X^T X)^{-1}) = d / (k - d - 1) for k > d + 1 (inverse-Wishart mean).

    At lam > 0 the trace is smaller by lam E tr(W^{-1}(W + lam)^{-1}); near s = 0 the smallest
    eigenvalue's density is ~ s^{(k-d-1)/2}, so the gap is O(sqrt(lam)) for k = d + 2 and
    O(lam log lam) for k >= d + 3 (measured: 1.7e-6 relative at lam = 1e-12 for k = d + 2).
    """
    exact = d / (k - d - 1)
    assert expected_resolvent_trace(d, k, 0.0) == pytest.approx(exact, rel=1e-12)
    rel = 1e-5 if k == d + 2 else 1e-9
    assert expected_resolvent_trace(d, k, 1e-12) == pytest.approx(exact, rel=rel)
    # through bayes_risk: lam = sigma^2 / tau^2 = 1e-12, (R - sigma^2) / sigma^2 -> d / (k - d - 1)
    sigma = 0.5
    r = bayes_risk(d, k, sigma, sigma * 1e6)
    assert (r - sigma**2) / sigma**2 == pytest.approx(exact, rel=rel)


@pytest.mark.parametrize("m, n", [(1, 1), (2, 2), (3, 7), (20, 20), (19, 21), (20, 60)])
def test_trace_moments_of_wishart(m, n):
    """E tr W = m n and E tr W^2 = m n (m + n + 1) for W = X^T X, X (n, m) Gaussian."""
    assert wishart_linear_statistic(m, n, lambda s: s) == pytest.approx(m * n, rel=1e-12)
    second = wishart_linear_statistic(m, n, lambda s: s * s)
    assert second == pytest.approx(m * n * (m + n + 1), rel=1e-12)


@pytest.mark.parametrize("m, n", [(1, 1), (2, 2), (7, 8), (20, 20), (19, 21), (20, 60)])
def test_log_determinant_of_wishart(m, n):
    """E log det W = m log 2 + sum_{i<m} digamma((n - i)/2): a log singularity at s = 0
    when n = m (measured relative error <= 3e-12)."""
    exact = m * math.log(2) + sum(special.digamma((n - i) / 2) for i in range(m))
    assert wishart_linear_statistic(m, n, np.log) == pytest.approx(exact, rel=1e-10)


@pytest.mark.parametrize("n, lam", [(1, 0.3), (4, 1e-3), (9, 2.0)])
def test_one_eigenvalue_is_chi_square(n, lam):
    """m = 1: the eigenvalue is chi^2_n; d = 1 (k = n) and k = 1 (d = n) both reduce to it."""

    def f(s):
        return math.exp((n / 2 - 1) * math.log(s) - s / 2 - special.gammaln(n / 2)) / (
            2 ** (n / 2) * (s + lam)
        )

    ref = sum(
        integrate.quad(f, a, b, epsabs=0, epsrel=1e-13, limit=200)[0]
        for a, b in [(0, 1), (1, 20), (20, np.inf)]
    )
    assert expected_resolvent_trace(1, n, lam) == pytest.approx(ref, rel=1e-10)
    assert expected_resolvent_trace(n, 1, lam) == pytest.approx((n - 1) / lam + ref, rel=1e-10)


@pytest.mark.parametrize("n, lam", [(2, 0.5), (5, 0.5), (4, 0.05)])
def test_two_eigenvalues_by_direct_integration(n, lam):
    """m = 2: integrate the joint density s1^a s2^a e^{-(s1+s2)/2} (s2 - s1) over s1 < s2 with
    scipy (a = (n-3)/2), substituting s = u^2 to remove s^{-1/2} when n = 2."""

    def dens(u2, u1):  # density in (u1, u2), u1 < u2, including the Jacobian 4 u1 u2
        s1, s2 = u1 * u1, u2 * u2
        return 4 * (u1 * u2) ** (n - 2) * math.exp(-(s1 + s2) / 2) * (s2 - s1)

    def run(fn):
        return integrate.dblquad(fn, 0, 12, lambda u1: u1, 12, epsabs=1e-14, epsrel=1e-12)[0]

    z = run(dens)
    num = run(lambda u2, u1: dens(u2, u1) * (1 / (u1 * u1 + lam) + 1 / (u2 * u2 + lam)))
    assert wishart_linear_statistic(2, n, lambda s: 1 / (s + lam)) == pytest.approx(num / z, rel=1e-9)


@pytest.mark.parametrize(
    "d, k, sigma, tau",
    [(4, 2, 0.5, 1.0), (4, 4, 0.3, 0.8), (3, 9, 0.8, 0.6)],
)
def test_matches_monte_carlo_of_the_bayes_predictor(d, k, sigma, tau):
    """End to end: sample tasks and prompts, predict with the posterior mean (ridge,
    lam = sigma^2/tau^2) and score against the noisy query label; 200k draws, 4 s.e."""
    gen = torch.Generator().manual_seed(d * 100 + k)
    n = 200_000
    lam = sigma**2 / tau**2
    w = tau * torch.randn(n, d, generator=gen, dtype=F64)
    X = torch.randn(n, k, d, generator=gen, dtype=F64)
    y = (X @ w[:, :, None]).squeeze(-1) + sigma * torch.randn(n, k, generator=gen, dtype=F64)
    xq = torch.randn(n, d, generator=gen, dtype=F64)
    yq = (w * xq).sum(-1) + sigma * torch.randn(n, generator=gen, dtype=F64)
    inv = torch.linalg.inv(X.transpose(1, 2) @ X + lam * torch.eye(d, dtype=F64))  # (n, d, d)
    w_hat = (inv @ (X.transpose(1, 2) @ y[:, :, None])).squeeze(-1)  # posterior mean
    err = (yq - (w_hat * xq).sum(-1)) ** 2
    mc, se = err.mean().item(), err.std().item() / math.sqrt(n)
    assert abs(bayes_risk(d, k, sigma, tau) - mc) < 4 * se
    # sharper: the trace itself, E tr((X^T X + lam I)^{-1})
    tr = inv.diagonal(dim1=1, dim2=2).sum(-1)
    mc_tr, se_tr = tr.mean().item(), tr.std().item() / math.sqrt(n)
    assert abs(expected_resolvent_trace(d, k, lam) - mc_tr) < 4 * se_tr


def test_matches_published_ridge_value_and_is_fast():
    """He et al. (arXiv 2503.12734): d = 5, L = 40, sigma^2 = 0.1, w ~ N(0, I/d): ridge MSE
    0.115 (Monte Carlo, 3 digits). The largest supported size runs in well under a second."""
    import time

    assert bayes_risk(5, 40, math.sqrt(0.1), 1 / math.sqrt(5)) == pytest.approx(0.115, abs=1e-3)
    start = time.perf_counter()
    value = bayes_risk(20, 60, 0.5, 1.0)
    assert time.perf_counter() - start < 0.5
    assert 0.25 < value < 0.25 + 0.25 * 20 / (60 - 20 - 1)  # between the floor and lam -> 0
