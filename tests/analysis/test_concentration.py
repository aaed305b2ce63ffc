"""Concentration on the infinite-prompt limit, against the Gaussian identity and tanh."""

from __future__ import annotations

import torch

from iclreg.analysis.concentration import limit_errors, loglog_slope, rademacher_limit_gap
from iclreg.tasks.covariance import build


def test_squared_errors_fall_like_one_over_L():
    cov, _ = build("toeplitz", 4, rho=0.5)
    lengths = [32, 128, 512, 2048]
    errors = limit_errors(cov, lengths, draws=8, reps=8, seed=3)
    for key in ("output", "gradient"):
        slope = loglog_slope(lengths, errors[key])
        assert -1.3 < slope < -0.7, (key, slope)
    assert errors["output"][-1] < errors["output"][0] / 20


def test_loglog_slope_of_a_power_law():
    xs = [1.0, 10.0, 100.0]
    assert abs(loglog_slope(xs, [3 * x**-0.5 for x in xs]) + 0.5) < 1e-12


def test_rademacher_tokens_converge_to_tanh_not_to_the_linear_formula():
    gap = rademacher_limit_gap([256, 16384], p=4, reps=32, seed=1)
    assert gap["vs_tanh"][1] < gap["vs_tanh"][0] / 10 and gap["vs_tanh"][1] < 0.01
    assert min(gap["vs_linear"]) > 0.3


def test_limit_errors_are_deterministic_in_the_seed():
    cov = torch.eye(3, dtype=torch.float64)
    a = limit_errors(cov, [16, 64], draws=2, reps=2, seed=5)
    b = limit_errors(cov, [16, 64], draws=2, reps=2, seed=5)
    assert a == b
