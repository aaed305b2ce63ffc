"""Tests for iclreg.theory.testtime against independent computations.

References are written here from scratch: explicit GD loops on sampled (w*, eps, xi), brute-force
plurality votes on sampled answers, and exact enumeration of multinomial count vectors.
Monte Carlo comparisons allow 4.5 standard errors.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from iclreg.theory import testtime as tt

F64 = torch.float64
Z = 4.5


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _design(n, d, seed):
    return torch.randn(n, d, generator=_gen(seed), dtype=F64)


def _run_gd(x, y, steps, eta, lam, sigma=0.0, gen=None):
    """Explicit (noisy) GD on a batch of samples: x (n, d), y (R, n) -> w_T (R, d)."""
    w = torch.zeros(y.shape[0], x.shape[1], dtype=F64)
    for _ in range(steps):
        grad = (w @ x.T - y) @ x + lam * w
        if sigma > 0:
            xi = sigma * torch.randn(w.shape, generator=gen, dtype=F64)
            grad = grad + (xi * w).sum(-1, keepdim=True) * xi
        w = w - eta * grad
    return w


def _sample_task(x, reps, tau, noise_std, gen):
    w_star = tau * torch.randn(reps, x.shape[1], generator=gen, dtype=F64)
    y = w_star @ x.T + noise_std * torch.randn(reps, x.shape[0], generator=gen, dtype=F64)
    return w_star, y


def test_filter_equals_explicit_matrix_sum():
    x = _design(7, 4, 0)
    s_mat = x.T @ x
    eta, lam, steps = 0.03, 0.4, 25
    b = torch.eye(4, dtype=F64) - eta * (s_mat + lam * torch.eye(4, dtype=F64))
    a_mat = sum(torch.linalg.matrix_power(b, j) * eta for j in range(steps))
    s, u = torch.linalg.eigh(s_mat)
    a = tt.gd_filter(s, steps, eta, lam)
    assert torch.allclose(u @ torch.diag(a) @ u.T, a_mat, atol=1e-12)
    assert tt.gd_filter(torch.zeros(1, dtype=F64), 9, 0.1)[0].item() == pytest.approx(0.9)


@pytest.mark.parametrize("lam, steps", [(0.0, 40), (0.7, 40), (0.0, 3)])
def test_gd_risks_match_monte_carlo(lam, steps):
    n, d, eta, tau, noise = 6, 4, 0.05, 0.8, 0.5
    x, gen = _design(n, d, 1), _gen(2)
    w_star, y = _sample_task(x, 20000, tau, noise, gen)
    err = _run_gd(x, y, steps, eta, lam) - w_star
    sq = (err**2).sum(-1)
    exact = tt.gd_weight_risk(x[None], steps, eta, lam, tau, noise).item()
    assert abs(sq.mean().item() - exact) < Z * sq.std().item() / math.sqrt(sq.numel())
    x_q = torch.randn(err.shape, generator=gen, dtype=F64)
    q = ((err * x_q).sum(-1) - noise * torch.randn(sq.shape, generator=gen, dtype=F64)) ** 2
    exact_q = tt.gd_query_risk(x[None], steps, eta, lam, tau, noise).item()
    assert abs(q.mean().item() - exact_q) < Z * q.std().item() / math.sqrt(q.numel())


def test_gd_long_run_tends_to_least_squares_and_overfits():
    x = _design(12, 5, 3)
    tau, noise = 1.0, 0.7
    ls_risk = noise**2 * torch.linalg.inv(x.T @ x).trace().item()  # E||w_ls - w*||^2
    risk = tt.gd_weight_risk(x[None], 200000, 0.01, 0.0, tau, noise).item()
    assert risk == pytest.approx(ls_risk, rel=1e-9)
    curve = [tt.gd_weight_risk(x[None], t, 0.01, 0.0, tau, noise).item() for t in range(0, 3000, 10)]
    assert min(curve) < curve[-1] < curve[0]  # falls, then rises towards least squares


def test_design_average_matches_joint_monte_carlo():
    n, d, steps, eta, lam, tau, noise = 5, 3, 15, 0.05, 0.2, 1.0, 0.4
    mean, se = tt.gd_weight_risk_mc(n, d, steps, eta, lam, tau, noise, 4000, _gen(4))
    gen, reps = _gen(5), 20000
    x = torch.randn(reps, n, d, generator=gen, dtype=F64)
    w_star = tau * torch.randn(reps, d, generator=gen, dtype=F64)
    y = (x @ w_star.unsqueeze(-1)).squeeze(-1) + noise * torch.randn(reps, n, generator=gen, dtype=F64)
    w = torch.zeros(reps, d, dtype=F64)
    for _ in range(steps):
        resid = (x @ w.unsqueeze(-1)).squeeze(-1) - y
        w = w - eta * ((x.transpose(1, 2) @ resid.unsqueeze(-1)).squeeze(-1) + lam * w)
    sq = ((w - w_star) ** 2).sum(-1)
    se_mc = sq.std().item() / math.sqrt(reps)
    assert abs(mean - sq.mean().item()) < Z * math.hypot(se, se_mc)


def test_noisy_decode_mean_and_variance_match_simulation():
    n, d, steps, eta, sigma = 8, 3, 30, 0.04, 0.9
    x, gen = _design(n, d, 6), _gen(7)
    y = torch.randn(n, generator=gen, dtype=F64)
    reps = 40000
    w = _run_gd(x, y.expand(reps, n), steps, eta, 0.0, sigma, gen)  # (R, d)
    ridge = _run_gd(x, y[None], steps, eta, sigma**2)[0]
    m, cov = tt.noisy_decode_covariance(x[None], y[None], steps, eta, sigma)
    assert torch.allclose(m[0], ridge, atol=1e-12)
    se_mean = w.std(0) / math.sqrt(reps)
    assert ((w.mean(0) - ridge).abs() < Z * se_mean).all()
    dev = ((w - ridge) ** 2).sum(-1)  # per-sample ||w - m||^2, mean V_T
    v = tt.noisy_decode_variance(x[None], y[None], steps, eta, sigma).item()
    assert v == pytest.approx(cov[0].trace().item(), rel=1e-12)
    se = dev.std().item() / math.sqrt(reps)
    assert abs(dev.mean().item() - v) < Z * se
    assert Z * se < 0.05 * v  # the check would catch a 5% error
    # N-average excess over ridge-GD is V_T / N
    n_avg, w_star = 4, torch.randn(d, generator=gen, dtype=F64)
    avg = w.reshape(-1, n_avg, d).mean(1)
    excess = ((avg - w_star) ** 2).sum(-1) - ((ridge - w_star) ** 2).sum()
    assert abs(excess.mean().item() - v / n_avg) < Z * excess.std().item() / math.sqrt(len(excess))


def test_expected_variance_matches_average_over_tasks():
    n, d, steps, eta, sigma, tau, noise = 6, 3, 25, 0.05, 0.8, 1.2, 0.6
    x, gen = _design(n, d, 8), _gen(9)
    _, y = _sample_task(x, 20000, tau, noise, gen)
    v = tt.noisy_decode_variance(x.expand(len(y), n, d), y, steps, eta, sigma)
    expected = tt.noisy_decode_variance_expected(x[None], steps, eta, sigma, tau, noise).item()
    assert abs(v.mean().item() - expected) < Z * v.std().item() / math.sqrt(len(v))


def test_leading_order_in_eta():
    x, gen = _design(7, 3, 10), _gen(11)
    y = torch.randn(1, 7, generator=gen, dtype=F64)
    sigma, time = 0.8, 2.0
    rel = []
    for eta in (1e-2, 1e-3):
        steps = round(time / eta)
        exact = tt.noisy_decode_variance(x[None], y, steps, eta, sigma).item()
        lead = tt.noisy_decode_variance_leading(x[None], y, steps, eta, sigma).item()
        rel.append(abs(exact / lead - 1))
    assert rel[1] < 0.02 and rel[1] < rel[0] / 5  # error O(eta)
    # u -> inf: (eta sigma^4 / 2) (||m||^2 tr K^-1 + m^T K^-1 m), m = K^-1 X^T y
    k_mat = x.T @ x + sigma**2 * torch.eye(3, dtype=F64)
    m = torch.linalg.solve(k_mat, x.T @ y[0])
    k_inv = torch.linalg.inv(k_mat)
    stat = 0.5 * 1e-3 * sigma**4 * ((m @ m) * k_inv.trace() + m @ k_inv @ m).item()
    lead = tt.noisy_decode_variance_leading(x[None], y, 10**6, 1e-3, sigma).item()
    assert lead == pytest.approx(stat, rel=1e-9)


def _enumerated_vote(p, true_index, n, ties):
    """Exact rate by enumerating all count vectors (multinomial pmf), independent of the DP."""
    k, total = len(p), 0.0
    for counts in itertools.product(range(n + 1), repeat=k - 1):
        last = n - sum(counts)
        if last < 0:
            continue
        c = list(counts) + [last]
        log_pmf = math.lgamma(n + 1) + sum(
            ci * math.log(pi) - math.lgamma(ci + 1) if pi > 0 else (0.0 if ci == 0 else -math.inf)
            for ci, pi in zip(c, p, strict=True)
        )
        rival = max(c[j] for j in range(k) if j != true_index)
        won = c[true_index] > rival or (ties == "win" and c[true_index] == rival)
        total += math.exp(log_pmf) * won
    return total


@pytest.mark.parametrize("ties", ["lose", "win"])
@pytest.mark.parametrize("n", [1, 2, 5, 12])
def test_vote_rate_equals_enumeration(n, ties):
    p = [0.3, 0.45, 0.15, 0.1]
    for true_index in (0, 1, 3):
        got = tt.vote_rate(p, true_index, n, ties)
        assert got == pytest.approx(_enumerated_vote(p, true_index, n, ties), abs=1e-12)


def test_vote_rate_matches_brute_force_votes():
    p, n, reps = torch.tensor([0.28, 0.25, 0.2, 0.15, 0.12], dtype=F64), 15, 40000
    draws = torch.multinomial(p.expand(reps, 5), n, replacement=True, generator=_gen(12))
    counts = torch.nn.functional.one_hot(draws, 5).sum(1)  # (R, 5)
    top = counts.max(-1).values
    n_top = (counts == top[:, None]).sum(-1)
    for true_index in (0, 2):
        is_top = counts[:, true_index] == top
        for ties, won in (("lose", is_top & (n_top == 1)), ("win", is_top)):
            rate = won.double().mean().item()
            se = math.sqrt(rate * (1 - rate) / reps)
            assert abs(tt.vote_rate(p, true_index, n, ties) - rate) < Z * se


def test_vote_limit_bound_and_crossing():
    p = [0.4, 0.35, 0.25]
    assert tt.vote_limit(p, 0) == 1.0 and tt.vote_limit(p, 1) == 0.0
    assert tt.vote_limit([0.4, 0.4, 0.2], 1) == 0.5
    q = [0.5, 0.3, 0.2]  # rate rises towards 1 for the mode, falls towards 0 otherwise
    assert tt.vote_rate(q, 0, 5) < tt.vote_rate(q, 0, 80) > 0.95
    assert tt.vote_rate(q, 1, 5) > tt.vote_rate(q, 1, 80) and tt.vote_rate(q, 1, 80) < 0.05
    for n in (1, 10, 40, 80):
        exact = tt.vote_rate(p, 0, n)
        bound = tt.vote_rate_lower_bound(p, 0, n)
        assert bound <= exact + 1e-12
    assert tt.vote_rate_lower_bound([0.9, 0.05, 0.05], 0, 40) > 0.99 * tt.vote_rate([0.9, 0.05, 0.05], 0, 40)
    # crossing: vote (true answer the unique mode at p = 0.4) overtakes a greedy rate of 0.5 (at N = 22)
    n_star = tt.votes_to_beat(p, 0, 0.5, n_max=60)
    assert n_star is not None
    assert _enumerated_vote(p, 0, n_star, "lose") > 0.5
    assert all(_enumerated_vote(p, 0, n, "lose") <= 0.5 for n in range(1, n_star))
    assert tt.votes_to_beat(p, 1, 0.2) is None


def test_fit_inverse_n_recovers_law_and_extrapolates():
    n = torch.tensor([1.0, 2, 4, 8, 16], dtype=F64)
    a, b = tt.fit_inverse_n(n, 1.3 + 0.8 / n)
    assert a == pytest.approx(1.3, abs=1e-12) and b == pytest.approx(0.8, abs=1e-12)
    noise = 1e-3 * torch.randn(5, generator=_gen(13), dtype=F64)
    coef = tt.fit_inverse_n(n, 1.3 + 0.8 / n + noise)
    pred = tt.predict_inverse_n(coef, [256.0, 1024.0])
    assert torch.allclose(pred, 1.3 + 0.8 / torch.tensor([256.0, 1024.0], dtype=F64), atol=3e-3)


def test_fit_inverse_n_is_least_squares_and_bit_stable():
    """The closed form equals numpy's least-squares line on 1 / N, and the same numbers give the same
    bits whatever else the process allocated (offset copies of the inputs)."""
    n = torch.tensor([1.0, 2, 4, 8, 16], dtype=F64)
    e = torch.rand(5, generator=_gen(5), dtype=F64) + 2.0 / n
    b, a = np.polyfit(1.0 / n.numpy(), e.numpy(), 1)
    assert tt.fit_inverse_n(n, e) == pytest.approx((a, b), rel=1e-12)
    for offset in range(1, 9):
        buf = torch.zeros(offset + 5, dtype=F64)
        buf[offset:] = e
        assert tt.fit_inverse_n(n, buf[offset:]) == tt.fit_inverse_n(n, e)
    with pytest.raises(ValueError, match="two distinct"):
        tt.fit_inverse_n([4.0, 4.0], [1.0, 2.0])


def test_affine_moments_match_simulation_of_a_nonsymmetric_step():
    """A trained model's emitted map F(w) = P w + b need not be a symmetric GD step: sample the
    noisy decode of a random (P, b) directly and compare mean, covariance and its trace."""
    d, steps, eta, sigma, reps = 3, 25, 0.05, 0.8, 40000
    gen = _gen(11)
    p = torch.eye(d, dtype=F64) - 0.08 * torch.randn(d, d, generator=gen, dtype=F64)
    b = 0.1 * torch.randn(d, generator=gen, dtype=F64)
    w = torch.zeros(reps, d, dtype=F64)
    for _ in range(steps):
        xi = sigma * torch.randn(reps, d, generator=gen, dtype=F64)
        w = w @ p.T + b - eta * (xi * w).sum(-1, keepdim=True) * xi
    m, cov = tt.affine_noisy_decode_moments(p[None], b[None], steps, eta, sigma)
    se_mean = w.std(0) / math.sqrt(reps)
    assert ((w.mean(0) - m[0]).abs() < Z * se_mean).all()
    centred = w - m[0]
    sample_cov = centred.T @ centred / reps
    prods = centred.unsqueeze(-1) * centred.unsqueeze(-2)
    se_cov = prods.std(0) / math.sqrt(reps)
    assert ((sample_cov - cov[0]).abs() < Z * se_cov).all()
    assert Z * se_cov.diagonal().sum() < 0.05 * cov[0].trace()  # the check would catch a 5% error


def test_affine_moments_of_the_gd_step_are_the_eigenbasis_recursion():
    x, y = _design(7, 4, 12)[None], torch.randn(1, 7, generator=_gen(13), dtype=F64)
    eta, sigma, steps = 0.03, 0.7, 30
    s = x.transpose(-1, -2) @ x
    g = (x.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1)
    m, cov = tt.affine_noisy_decode_moments(torch.eye(4, dtype=F64) - eta * s, eta * g, steps, eta, sigma)
    m_ref, cov_ref = tt.noisy_decode_covariance(x, y, steps, eta, sigma)
    assert torch.allclose(m, m_ref, atol=1e-13) and torch.allclose(cov, cov_ref, atol=1e-13)
