"""Tests for iclreg.theory.softmax_limit (Boursier & Boyer, arXiv 2512.11784).

Monte Carlo standard errors come from the delta method for the self-normalised average
T_L = sum_i z_i e^{a.z_i} / sum_i e^{a.z_i}: Cov(T_L) ~ (1/L) E[u^2 (z - mu_a)(z - mu_a)^T] with
u = e^{a.z} / E e^{a.z}, mu_a = E[u z]. For z ~ N(m, G): E u^2 = e^{a^T G a} and under the
2a-tilted law z - mu_a ~ N(G a, G), so Cov(T_L) ~ e^{a^T G a} (G + G a a^T G) / L.
"""

import math

import torch

from iclreg.theory import (
    gaussian_softmax_limit,
    population_risk,
    population_risk_grad,
    regression_token_moments,
    softmax_attention,
)

F64 = torch.float64


def _problem(gen: torch.Generator, p: int = 4, q: int = 3):
    """Random weights, a query with a^T G a ~ 1, and a Gaussian token law N(m, G)."""
    V = torch.randn(q, p, generator=gen, dtype=F64)
    K = torch.randn(p, p, generator=gen, dtype=F64) / p
    Q = torch.randn(p, p, generator=gen, dtype=F64) / p
    B = torch.randn(p, p, generator=gen, dtype=F64) / math.sqrt(p)
    G = B @ B.T + 0.5 * torch.eye(p, dtype=F64)
    m = 0.3 * torch.randn(p, generator=gen, dtype=F64)
    z = torch.randn(p, generator=gen, dtype=F64)
    a = K.T @ Q @ z
    return V, K, Q, m, G, z, a


def _gaussian_tokens(gen, m, G, shape):
    chol = torch.linalg.cholesky(G)
    eps = torch.randn(*shape, m.shape[0], generator=gen, dtype=F64)
    return m + eps @ chol.T


def test_finite_L_converges_to_gaussian_limit():
    gen = torch.Generator().manual_seed(0)
    V, K, Q, m, G, z, a = _problem(gen)
    L = 200_000
    Z = _gaussian_tokens(gen, m, G, (L,))
    out = softmax_attention(V, K, Q, Z, z)
    # limit written out: V (m + G a), a = K^T Q z
    limit = V @ (m + G @ a)
    assert torch.allclose(gaussian_softmax_limit(V, K, Q, m, G, z), limit, atol=1e-12)
    Ga = G @ a
    cov = math.exp(a @ Ga) * (G + torch.outer(Ga, Ga)) / L
    se = torch.sqrt(torch.diagonal(V @ cov @ V.T))
    assert ((out - limit).abs() / se).max() < 4.0  # measured max |z-score| ~ 1.3


def test_error_shrinks_like_inverse_sqrt_L():
    gen = torch.Generator().manual_seed(1)
    V, K, Q, m, G, z, a = _problem(gen, p=3, q=2)
    limit = V @ (m + G @ a)
    Ga = G @ a
    pred_mse = torch.trace(V @ (math.exp(a @ Ga) * (G + torch.outer(Ga, Ga))) @ V.T)
    rms = {}
    for L, reps in [(1_000, 256), (10_000, 64), (100_000, 24)]:
        Z = _gaussian_tokens(gen, m, G, (reps, L))  # (reps, L, p)
        out = softmax_attention(V, K, Q, Z, z.expand(reps, -1))  # (reps, q)
        rms[L] = ((out - limit) ** 2).sum(-1).mean().sqrt()
        # RMS error agrees with the delta-method prediction sqrt(tr(V Cov V^T)) within 30%
        assert abs(rms[L] / torch.sqrt(pred_mse / L) - 1) < 0.3
    slope = math.log(rms[100_000] / rms[1_000]) / math.log(100.0)
    assert abs(slope + 0.5) < 0.1  # measured ~ -0.5


def test_rademacher_tokens_give_tanh_not_linear_limit():
    gen = torch.Generator().manual_seed(2)
    p, q, L = 4, 3, 200_000
    V = torch.randn(q, p, generator=gen, dtype=F64)
    K = torch.eye(p, dtype=F64)
    Q = torch.diag(torch.tensor([1.5, -1.0, 0.7, 2.0], dtype=F64))
    z = torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=F64)
    a = K.T @ Q @ z
    Z = 2.0 * torch.randint(0, 2, (L, p), generator=gen).to(F64) - 1.0
    out = softmax_attention(V, K, Q, Z, z)
    # Independent coordinates: E[z_j e^{a.z}] / E[e^{a.z}] = (e^{a_j} - e^{-a_j}) /
    # (e^{a_j} + e^{-a_j}) = tanh(a_j).
    exact = V @ torch.tanh(a)
    # Delta method as above with mu = tanh(a): Cov = E[u^2 (z - mu)(z - mu)^T] / L, E[u^2 ...]
    # factorises over coordinates: cosh(2a)/cosh(a)^2 per coordinate times the tilted
    # second moment, diag 1 - 2 tanh(a) tanh(2a) + tanh(a)^2, off-diag
    # (tanh(2a_i) - tanh(a_i))(tanh(2a_j) - tanh(a_j)).
    t1, t2 = torch.tanh(a), torch.tanh(2 * a)
    scale = torch.prod(torch.cosh(2 * a) / torch.cosh(a) ** 2)
    c = t2 - t1
    cov = torch.outer(c, c)
    cov.diagonal().copy_(1 - 2 * t1 * t2 + t1**2)
    se = torch.sqrt(torch.diagonal(V @ (scale * cov / L) @ V.T))
    assert ((out - exact).abs() / se).max() < 4.0
    # The Gaussian formula with the same mean 0 and covariance I would give V a instead.
    linear = gaussian_softmax_limit(V, K, Q, torch.zeros(p, dtype=F64), torch.eye(p, dtype=F64), z)
    assert torch.allclose(linear, V @ a)
    assert ((out - linear).abs() / se).max() > 50.0


def test_regression_token_moments_match_samples():
    gen = torch.Generator().manual_seed(3)
    d, sigma, n = 3, 0.4, 400_000
    B = torch.randn(d, d, generator=gen, dtype=F64)
    S = B @ B.T / d + 0.3 * torch.eye(d, dtype=F64)
    w = torch.randn(d, generator=gen, dtype=F64)
    mean, G = regression_token_moments(S, w, sigma)
    x = torch.randn(n, d, generator=gen, dtype=F64) @ torch.linalg.cholesky(S).T
    y = x @ w + sigma * torch.randn(n, generator=gen, dtype=F64)
    z = torch.cat([x, y[:, None]], dim=1)
    assert torch.equal(mean, torch.zeros(d + 1, dtype=F64))
    emp = z.T @ z / n
    # entrywise sd of the empirical second moment: sqrt((G_ii G_jj + G_ij^2) / n)
    sd = torch.sqrt((torch.outer(G.diagonal(), G.diagonal()) + G**2) / n)
    assert ((emp - G).abs() / sd).max() < 4.5


def test_population_risk_matches_monte_carlo_and_vanishes_at_bayes_optimum():
    gen = torch.Generator().manual_seed(4)
    d, n = 3, 400_000
    B = torch.randn(d, d, generator=gen, dtype=F64)
    S = B @ B.T / d + 0.5 * torch.eye(d, dtype=F64)
    A = torch.randn(d, d, generator=gen, dtype=F64) / d
    b = 1.3
    # R = 1/2 E (b w^T S A x - w^T x)^2, w ~ N(0, I), x ~ N(0, S): the noiseless squared error
    # of the linear-limit prediction b w^T S A x (derivation in population_risk's docstring).
    w = torch.randn(n, d, generator=gen, dtype=F64)
    x = torch.randn(n, d, generator=gen, dtype=F64) @ torch.linalg.cholesky(S).T
    err = 0.5 * (b * ((w @ S @ A) * x).sum(1) - (w * x).sum(1)) ** 2
    mc, se = err.mean(), err.std() / math.sqrt(n)
    assert abs(population_risk(A, b, S) - mc) < 4 * se  # measured ~1 se
    A_star = torch.linalg.inv(S) / b
    assert abs(population_risk(A_star, b, S)) < 1e-12
    # A = 0: R = 1/2 tr(S)
    assert torch.isclose(population_risk(torch.zeros(d, d, dtype=F64), b, S), 0.5 * torch.trace(S))


def test_population_risk_grad_matches_autograd():
    gen = torch.Generator().manual_seed(5)
    d = 4
    B = torch.randn(d, d, generator=gen, dtype=F64)
    S = B @ B.T / d + 0.2 * torch.eye(d, dtype=F64)
    A = torch.randn(d, d, generator=gen, dtype=F64).requires_grad_()
    b = torch.tensor(0.7, dtype=F64, requires_grad=True)
    eye = torch.eye(d, dtype=F64)
    M = b * S @ A - eye
    (0.5 * torch.trace(M @ S @ M.T)).backward()
    gA, gb = population_risk_grad(A.detach(), b.detach(), S)
    assert torch.allclose(gA, A.grad, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gb, b.grad, rtol=1e-12, atol=1e-12)


def test_gradient_flow_conserves_frobenius_minus_b_squared():
    """d/dt(||A||^2 - b^2) = -2 <A, grad_A R> + 2 b dR/db = 0 because <A, b S M S> = b <A, S M S>.

    Holds for R(A, b) as written (R depends only on b A). One Euler step changes the quantity by
    h^2 (||grad_A||^2 - (dR/db)^2), so the drift after time T is O(h): halving h halves it, and
    the Richardson extrapolation 2 drift(h/2) - drift(h) is ~0, while ||A||^2 and b^2 each
    move by ~0.31 (measured drift 0.0054 at h = 2e-3, 0.0027 at h = 1e-3).
    """
    gen = torch.Generator().manual_seed(6)
    d, T = 3, 4.0
    B = torch.randn(d, d, generator=gen, dtype=F64)
    S = B @ B.T / d + 0.5 * torch.eye(d, dtype=F64)
    A0 = 0.3 * torch.randn(d, d, generator=gen, dtype=F64)
    b0 = torch.tensor(0.5, dtype=F64)
    drift = {}
    for h in (2e-3, 1e-3):
        A, b = A0.clone(), b0.clone()
        for _ in range(int(round(T / h))):
            gA, gb = population_risk_grad(A, b, S)
            A, b = A - h * gA, b - h * gb
        drift[h] = ((A**2).sum() - b**2) - ((A0**2).sum() - b0**2)
    change = (A**2).sum() - (A0**2).sum()
    assert change.abs() > 0.1 and (b**2 - b0**2).abs() > 0.1  # both terms moved a lot
    assert population_risk(A, b, S) < 0.5 * population_risk(A0, b0, S)  # and the risk fell
    assert abs(drift[1e-3] / drift[2e-3] - 0.5) < 0.05  # O(h) Euler drift
    assert abs(2 * drift[1e-3] - drift[2e-3]) < 1e-4 * change  # extrapolates to 0 as h -> 0


def test_gradient_flow_solver_matches_fine_euler_and_conserves():
    """The RK45 flow of the MSE agrees with a fine explicit Euler loop on population_risk_grad,
    keeps ||A||^2 - b^2 to 1e-8 and ends at the Bayes-optimal set b S A = I."""
    from iclreg.theory.softmax_limit import gradient_flow, limit_mse

    gen = torch.Generator().manual_seed(8)
    d, w_var = 3, 0.5
    B = torch.randn(d, d, generator=gen, dtype=F64)
    S = B @ B.T / d + 0.5 * torch.eye(d, dtype=F64)
    A0 = 0.4 * torch.randn(d, d, generator=gen, dtype=F64)
    At, bt = gradient_flow(A0, 0.6, S, [0.0, 1.0, 400.0], w_var=w_var)
    A, b, h = A0.clone(), torch.tensor(0.6, dtype=F64), 1e-4
    for _ in range(10_000):  # Euler to t = 1 on dR/dtheta, the MSE flow being 2 w_var times faster
        gA, gb = population_risk_grad(A, b, S)
        A, b = A - h * 2 * w_var * gA, b - h * 2 * w_var * gb
    assert torch.allclose(At[1], A, atol=2e-4) and abs(float(bt[1] - b)) < 2e-4
    assert (At[1] - At[0]).abs().max() > 0.05  # it moved
    conserved = (At**2).sum((-2, -1)) - bt**2
    assert (conserved - conserved[0]).abs().max() < 1e-8
    assert (bt[-1] * S @ At[-1] - torch.eye(d, dtype=F64)).abs().max() < 1e-6
    noise = 0.1
    assert abs(float(limit_mse(At[-1], bt[-1], S, w_var, noise)) - noise) < 1e-10


def test_limit_mse_matches_monte_carlo_of_trained_form():
    """b sum_j y_j softmax_j(x_j^T A x_q) at large L, averaged over w, x, noise: the MSE
    w_var tr(M S M^T) + sigma^2 of the limit within Monte Carlo and 1/L error."""
    from iclreg.models import build
    from iclreg.theory.softmax_limit import limit_mse

    torch.manual_seed(2)
    d, L, w_var, noise = 3, 4000, 1 / 3, 0.2
    model = build(f"reduced_attention:d={d},init_scale=0.8").double()
    S = torch.tensor([[1.0, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 1.0]], dtype=F64)
    root = torch.linalg.cholesky(S)
    gen = torch.Generator().manual_seed(9)
    B = 400
    x = torch.randn(B, L + 1, d, generator=gen, dtype=F64) @ root.T
    w = torch.randn(B, d, generator=gen, dtype=F64) * w_var**0.5
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + noise**0.5 * torch.randn(B, L + 1, generator=gen, dtype=F64)
    with torch.no_grad():
        err = (model.predict_last(x, y) - y[:, -1]).square()
    expected = float(limit_mse(model.A.detach(), model.b.detach()[0], S, w_var, noise))
    assert abs(float(err.mean()) - expected) < 3 * float(err.std()) / B**0.5 + 0.02
