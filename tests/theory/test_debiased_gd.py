"""The closed-form risks of one-step GD and debiased GD (iclreg.theory.debiased_gd) against
Monte Carlo of the ``gd`` and ``debiased_gd`` estimators on prompts drawn here in float64.

Each Monte Carlo uses enough prompts that 4 standard errors are below 2% of the risk, so an
error of 2% in the formula (a wrong Wishart moment, a missing noise term) would be caught.
"""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.estimators import build as build_estimator
from iclreg.theory.debiased_gd import debiased_gd_optimal_lr, debiased_gd_risk, gd_optimal_lr, gd_risk

F64 = torch.float64


def monte_carlo(specs: list[str], d: int, n: int, noise_std: float, w_std: float, prompts: int,
                seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per estimator: mean and standard error of (y_hat_k - y_k)^2 at every position k = 0..n-1
    (k examples), on the same prompts."""
    estimators = [build_estimator(spec) for spec in specs]
    gen = torch.Generator().manual_seed(seed)
    total, squares = torch.zeros(len(specs), n, dtype=F64), torch.zeros(len(specs), n, dtype=F64)
    for start in range(0, prompts, 50_000):
        B = min(50_000, prompts - start)
        x = torch.randn(B, n, d, generator=gen, dtype=F64)
        w = w_std * torch.randn(B, d, generator=gen, dtype=F64)
        y = (x @ w.unsqueeze(-1)).squeeze(-1) + noise_std * torch.randn(B, n, generator=gen, dtype=F64)
        for i, estimator in enumerate(estimators):
            err = (estimator(x, y) - y).square()  # (B, n)
            total[i] += err.sum(0)
            squares[i] += err.square().sum(0)
    mean = total / prompts
    se = ((squares / prompts - mean.square()) / (prompts - 1)).sqrt()
    return list(zip(mean, se, strict=True))


@pytest.mark.parametrize("d, n, noise_std, w_std, lr", [
    (5, 41, math.sqrt(0.1), 1 / math.sqrt(5), 2 * 0.13 * 3.45),  # He et al.'s task
    (3, 16, 0.5, 1.0, 0.6),
])
def test_risks_match_monte_carlo(d, n, noise_std, w_std, lr):
    """Within 4 SE at k = 1, 2, 3, 5, n/4, n/2, n-1; from k = 8 on, 4 SE are below 2% of the
    risk (at k <= 5 the squared errors are heavier-tailed: there 4 SE reach 2-6%)."""
    specs = {"debiased GD": (f"debiased_gd:lr={lr}", debiased_gd_risk),
             "GD": (f"gd:steps=1,lr={lr},mean=true", gd_risk)}
    results = monte_carlo([spec for spec, _ in specs.values()], d, n, noise_std, w_std, 200_000, seed=d)
    for (label, (_, risk)), (mean, se) in zip(specs.items(), results, strict=True):
        for k in sorted({1, 2, 3, 5, n // 4, n // 2, n - 1}):
            exact = risk(d, k, noise_std, w_std, lr)
            if k >= 8:
                assert 4 * se[k] < 0.02 * exact, f"{label}, k={k}: too few prompts to catch a 2% error"
            assert abs(mean[k] - exact) < 4 * se[k], f"{label}, k={k}: {mean[k]:.5f}, formula {exact:.5f}"


def test_no_example_and_one_example():
    """No example: both predict 0. One example: debiased GD still predicts 0 (x_1 - x_bar = 0),
    GD does not (E ||v - w||^2 = tau^2 d (1 - 2c + c^2 (d + 2)) + sigma^2 c^2 d at L = 1)."""
    d, s, t, c = 4, 0.3, 0.7, 0.5
    prior = s**2 + d * t**2
    assert debiased_gd_risk(d, 0, s, t, c) == gd_risk(d, 0, s, t, c) == pytest.approx(prior, rel=1e-15)
    assert debiased_gd_risk(d, 1, s, t, c) == pytest.approx(prior, rel=1e-15)
    x, y = torch.randn(3, 2, d, dtype=F64), torch.randn(3, 2, dtype=F64)
    assert torch.equal(build_estimator(f"debiased_gd:lr={c}")(x, y)[:, 1], torch.zeros(3, dtype=F64))
    by_hand = s**2 + t**2 * d * (1 - 2 * c + c**2 * (d + 2)) + s**2 * c**2 * d
    assert gd_risk(d, 1, s, t, c) == pytest.approx(by_hand, rel=1e-14)


def test_large_L_limit_and_he_table():
    """R -> sigma^2 + d tau^2 (1 - c)^2; at L = 10, 20, 40 the formula gives He et al.'s debiased
    GD row (0.614, 0.369, 0.243, their Monte Carlo) within 0.01 (papers.md section 5)."""
    d, s, t, c = 5, math.sqrt(0.1), 1 / math.sqrt(5), 2 * 0.13 * 3.45
    assert debiased_gd_risk(d, 10**7, s, t, c) == pytest.approx(0.1 + d * t**2 * (1 - c) ** 2, rel=1e-5)
    for L, published in ((10, 0.614), (20, 0.369), (40, 0.243)):
        assert debiased_gd_risk(d, L, s, t, c) == pytest.approx(published, abs=0.01)


@pytest.mark.parametrize("d, L, s, t", [(5, 40, math.sqrt(0.1), 1 / math.sqrt(5)), (3, 7, 0.5, 1.2)])
def test_optimal_lr_minimises_the_gd_risk(d, L, s, t):
    """gd_risk is a parabola in c: its minimiser, found numerically on a fine grid, is gd_optimal_lr."""
    grid = torch.linspace(0.01, 2.0, 20_001, dtype=F64).tolist()
    numeric = min(grid, key=lambda c: gd_risk(d, L, s, t, c))
    assert gd_optimal_lr(d, L, s, t) == pytest.approx(numeric, abs=1e-4)


@pytest.mark.parametrize("d, L, s, t", [(5, 40, math.sqrt(0.1), 1 / math.sqrt(5)), (3, 7, 0.5, 1.2)])
def test_optimal_lr_minimises_the_debiased_gd_risk(d, L, s, t):
    grid = torch.linspace(0.01, 2.0, 20_001, dtype=F64).tolist()
    numeric = min(grid, key=lambda c: debiased_gd_risk(d, L, s, t, c))
    assert debiased_gd_optimal_lr(d, L, s, t) == pytest.approx(numeric, abs=1e-4)


def test_refitted_debiased_gd_is_bayes_up_to_a_constant_factor():
    """He et al.'s setting: excess risk over the Bayes excess tends to 1 + (d + 1) tau^2 / sigma^2
    = 13 with the step refitted at each L; with the step fixed at L = 40 it grows (31.9 at L = 1000)."""
    from iclreg.theory import bayes_risk

    d, s, t = 5, math.sqrt(0.1), 1 / math.sqrt(5)
    fixed = debiased_gd_optimal_lr(d, 40, s, t)
    assert fixed == pytest.approx(8 / 9.1, rel=1e-12)

    def excess_ratio(L, lr):
        return (debiased_gd_risk(d, L, s, t, lr) - s**2) / (bayes_risk(d, L, s, t) - s**2)

    refit = [excess_ratio(L, debiased_gd_optimal_lr(d, L, s, t)) for L in (40, 1000, 10**5)]
    assert refit[0] == pytest.approx(9.88, abs=0.01) and refit[-1] == pytest.approx(13, abs=0.01)
    assert excess_ratio(1000, 2 * 0.13 * 3.45) == pytest.approx(31.86, abs=0.01)
    assert excess_ratio(1000, fixed) > 2 * refit[1]
