"""Concentration on the infinite-prompt limit, against the Gaussian identity and tanh."""

from __future__ import annotations

import torch

from iclreg.analysis.concentration import limit_errors, rademacher_limit_gap
from iclreg.analysis.fit import loglog_slope
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


def test_reduced_attention_gaps_match_autograd_and_shrink_with_L():
    """The closed-form Jacobians agree with autograd through the model, and both gaps fall
    about like 1/L (Monte Carlo rate of the squared errors)."""
    from iclreg.analysis.concentration import reduced_attention_gaps
    from iclreg.models import build
    from iclreg.tasks import build as build_task

    torch.manual_seed(1)
    model = build("reduced_attention:d=3,init_scale=0.7").double()
    A, b = model.A.detach(), model.b.detach()[0]
    gaps = {}
    for L in (64, 1024):
        task = build_task(f"gaussian:d=3,n={L + 1},cov=toeplitz,rho=0.5")
        p = task.sample(256, seed=3, step=L, dtype=torch.float64)
        Sigma = task.covariance
        gaps[L] = reduced_attention_gaps(A, b, p.x, p.y, p.w, Sigma)
        if L == 64:  # autograd through the model on the first prompt: d f_L / d(A, b)
            out = model.predict_last(p.x[:1], p.y[:1])[0]
            gA, gb = torch.autograd.grad(out, [model.A, model.b])
            ctx, ys, q = p.x[0, :-1], p.y[0, :-1], p.x[0, -1]
            pr = torch.softmax(ctx @ A @ q, 0)
            pooled = (pr * ys).sum()
            manual = b * ((pr * (ys - pooled)).unsqueeze(-1) * ctx).sum(0).unsqueeze(-1) * q
            torch.testing.assert_close(gA, manual, rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(gb[0], pooled, rtol=1e-10, atol=1e-12)
    for key in ("output", "gradient"):
        ratio = gaps[64][key] / gaps[1024][key]
        assert 6 < ratio < 40, (key, gaps)  # 1/L would give 16
