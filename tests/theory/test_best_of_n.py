"""Best-of-N with the norm reward: the theory against Monte Carlo of real additive (Gaussian) and
multiplicative noisy GD decodes."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.experiments import testtime_measure as measure
from iclreg.testtime import TECHNIQUES, GDDecoder
from iclreg.theory import best_of_n as bon
from iclreg.theory import testtime as tt


def test_expected_max_normal():
    assert bon.expected_max_normal(1) == 0.0
    assert bon.expected_max_normal(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-8)
    gen = torch.Generator().manual_seed(0)
    draws = torch.randn(200_000, 16, generator=gen, dtype=torch.float64).max(-1).values
    assert bon.expected_max_normal(16) == pytest.approx(draws.mean().item(), abs=4 * draws.std().item() / 447)


def test_additive_moments_are_those_of_the_decodes():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    dec = GDDecoder(lr=0.05)
    m, cov = bon.additive_decode_moments(*dec.affine(x, y), 15, 0.1)
    ws = measure.chains(x, y, dec, "additive:std=0.1", [15], 40_000, gen)[15]  # (N, B, d)
    assert torch.allclose(ws.mean(0), m, atol=4 * 0.1 * 4 / 200)
    emp = torch.einsum("nbi,nbj->bij", ws - m, ws - m) / ws.shape[0]
    assert torch.allclose(emp, cov, atol=0.03 * cov.abs().max().item())


@pytest.mark.parametrize("noise", ["multiplicative", "additive"])
def test_noisy_gd_decodes_match_the_formula(noise: str):
    """Real decodes (additive: exactly Gaussian; multiplicative: non-Gaussian, exact moments) of 96
    prompts, N = 1..64, 20 repetitions."""
    gen = torch.Generator().manual_seed(3)
    d, n, eta, steps = 8, 6, 0.02, 100
    x = torch.randn(96, n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(96, d, generator=gen, dtype=torch.float64) / 2
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + 0.7 * torch.randn(96, n, generator=gen, dtype=torch.float64)
    dec = GDDecoder(lr=eta)
    p, b = dec.affine(x, y)
    spec, (m, cov) = (("multiplicative:std=1.0", tt.affine_noisy_decode_moments(p, b, steps, eta, 1.0))
                      if noise == "multiplicative" else
                      (f"additive:std={eta}", bon.additive_decode_moments(p, b, steps, eta)))
    best = TECHNIQUES.build("best:reward=norm2")
    base = bon.best_of_n_error(m, cov, w, 1)  # = ||m - w*||^2 + tr Sigma, exact
    for size in (1, 8, 64):
        err = torch.stack([(best(measure.chains(x, y, dec, spec, [steps], size, gen)[steps], x, y) - w)
                           .square().sum(-1) for _ in range(20)]).mean(0)  # (B,)
        theory = bon.best_of_n_error(m, cov, w, size)
        diff = err - theory
        tol = 4 * diff.std().item() / math.sqrt(diff.numel()) + 0.03 * err.mean().item()
        assert abs(diff.mean().item()) < tol, (size, diff.mean().item(), tol)
        if size == 64:  # negative control: the selection's effect with its sign flipped
            assert abs((err - (2 * base - theory)).mean().item()) > tol
