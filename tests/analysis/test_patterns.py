"""Head patterns read off hand-built attention weights with known (omega_h, mu_h)."""

from __future__ import annotations

import math

import torch

from iclreg.analysis.patterns import head_patterns
from iclreg.estimators import build as build_estimator
from iclreg.models import build


def hand_built(d: int, omegas: list[float], mus: list[float]):
    """Q_h = sqrt(d+1) omega_h on the x-block, K = I, V = e_y e_y^T, O_h = mu_h: the head computes
    mu_h sum_i y_i softmax(omega_h <x_i, x_q>)."""
    H, p = len(omegas), d + 1
    model = build(f"softmax_attention:d={d},heads={H}").double()
    with torch.no_grad():
        for h, (w, m) in enumerate(zip(omegas, mus, strict=True)):
            model.Q[h] = torch.zeros(p, p, dtype=torch.float64)
            model.Q[h, :d, :d] = math.sqrt(p) * w * torch.eye(d, dtype=torch.float64)
            model.K[h] = torch.eye(p, dtype=torch.float64)
            model.V[h] = torch.zeros(p, p, dtype=torch.float64)
            model.V[h, d, d] = 1.0
            model.O[0, h] = torch.zeros(p, dtype=torch.float64)
            model.O[0, h, d] = m
    return model


def test_patterns_of_a_hand_built_model():
    model = hand_built(5, [0.13, -0.13, 0.02], [3.45, -3.45, 0.1])
    p = head_patterns(model)
    torch.testing.assert_close(p.omega, torch.tensor([0.13, -0.13, 0.02], dtype=torch.float64))
    torch.testing.assert_close(p.mu, torch.tensor([3.45, -3.45, 0.1], dtype=torch.float64))
    assert float(p.offdiag_ratio.max()) == 0 and float(p.diag_spread.max()) == 0
    assert float(p.ov_ratio.max()) == 0
    strength = torch.tensor([0.4485, 0.4485, 0.002], dtype=torch.float64)
    torch.testing.assert_close(p.contribution, strength / strength.sum())


def test_hand_built_model_equals_the_kernel_estimator():
    """The pattern (omega_h I, mu_h e_y) is exactly He et al.'s multi-head kernel estimator."""
    model = hand_built(4, [0.2, -0.3], [1.5, -2.0])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 12, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(8, 12, generator=gen, dtype=torch.float64)
    kernel = build_estimator("kernel:omega=[0.2,-0.3],mu=[1.5,-2.0]")
    with torch.no_grad():
        torch.testing.assert_close(model(x, y), kernel(x, y), rtol=1e-12, atol=1e-12)


def test_perturbations_show_in_the_measures():
    model = hand_built(3, [0.1, -0.1], [2.0, -2.0])
    with torch.no_grad():
        model.Q[0, 0, 1] = math.sqrt(4) * 0.05  # an off-diagonal entry of head 1's KQ block
        model.V[1, 3, 0] = 0.25  # head 2's value mixes x_1 into the label entry: OV = -2 (0.25, 0, 0, 1)
    p = head_patterns(model)
    assert p.offdiag_ratio[0] > 0.05 and p.offdiag_ratio[1] == 0
    assert abs(float(p.ov_ratio[1]) - 0.25) < 1e-12 and p.ov_ratio[0] == 0
