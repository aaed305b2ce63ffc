"""Where averaging helps: the spectral risks equal ``gd_weight_risk``, and the sign of the advantage
follows label noise and T as the theory says; against Monte Carlo of GD and ridge-GD."""

from __future__ import annotations

import pytest
import torch

from iclreg.theory import regimes
from iclreg.theory import testtime as tt


def _designs(b: int = 256, n: int = 8, d: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_spectral_risk_is_gd_weight_risk():
    x = _designs()
    for lam in (0.0, 1.0):
        assert torch.allclose(regimes.weight_risk(regimes.spectrum(x), 40, 0.02, lam, 0.7, 0.5),
                              tt.gd_weight_risk(x, 40, 0.02, lam, 0.7, 0.5), rtol=1e-10)


def test_advantage_against_monte_carlo_of_both_estimators():
    x = _designs(b=2000, seed=1)
    gen = torch.Generator().manual_seed(2)
    w = 0.7 * torch.randn(2000, 10, generator=gen, dtype=torch.float64)
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + 0.9 * torch.randn(2000, 8, generator=gen, dtype=torch.float64)
    errs = []
    for lam in (0.0, 1.0):
        v = torch.zeros_like(w)
        for _ in range(300):
            v = v - 0.02 * ((x.transpose(-1, -2) @ ((x @ v.unsqueeze(-1)).squeeze(-1) - y).unsqueeze(-1))
                            .squeeze(-1) + lam * v)
        errs.append((v - w).square().sum(-1))
    diff = errs[0] - errs[1]
    exact = regimes.averaging_advantage(regimes.spectrum(x), 300, 0.02, 1.0, 0.7, 0.9)
    se = (diff - exact).std().item() / 2000**0.5
    assert abs((diff - exact).mean().item()) < 4 * se
    # negative control: the theory at the wrong label noise is many SEs off
    wrong = regimes.averaging_advantage(regimes.spectrum(x), 300, 0.02, 1.0, 0.7, 0.3)
    assert abs((diff - wrong).mean().item()) > 10 * se


@pytest.mark.parametrize(("noise", "steps", "helps"),
                         [(0.05, 300, False), (1.0, 3000, True), (1.0, 3, False)])
def test_averaging_helps_with_label_noise_and_long_chains(noise, steps, helps):
    """n < d: GD fits the label noise as T grows; ridge-GD (sigma = 1) does not."""
    eigs = regimes.spectrum(_designs())
    adv = regimes.averaging_advantage(eigs, steps, 0.02, 1.0, 1.0, noise).mean().item()
    assert (adv > 0) == helps
