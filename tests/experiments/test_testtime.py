"""Tests of the test-time reproduction's helpers and (slow) of its quick run's claims."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.experiments import testtime as tt
from iclreg.testtime import NOISES, GDDecoder, decode
from iclreg.theory import testtime as theory


def test_first_crossing_and_interior_min():
    assert tt.first_crossing([1, 4, 16], [0.1, 0.3, 0.5], 0.2) == 4
    assert tt.first_crossing([1, 4, 16], [0.1, 0.2, 0.2], 0.2) is None
    assert tt.interior_min([3.0, 1.0, 2.0]) and not tt.interior_min([1.0, 2.0, 3.0])
    assert not tt.interior_min([3.0, 2.0, 1.0])


def test_mean_se_matches_numbers():
    mean, se = tt.mean_se(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(math.sqrt(((4 + 1 + 0 + 9) / 3) / 4))


def test_chains_records_the_same_iterates_as_decode():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    out = tt.chains(x, y, 0.05, "multiplicative:std=0.5", [2, 7], 6, torch.Generator().manual_seed(1))
    ref = decode(x, y, GDDecoder(lr=0.05), NOISES.build("multiplicative:std=0.5"), 7, 6,
                 torch.Generator().manual_seed(1), trajectory=True)
    assert torch.equal(out[7], ref[:, :, 7]) and torch.equal(out[2], ref[:, :, 2])


def test_support_frequencies_counts_distinct_supports():
    w = torch.tensor([[1.0, 0.0, 1.0]])
    ws = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0]], [[1.0, 1.0, 0.0]]])
    p, true = tt.support_frequencies(ws, w, 0)
    assert sorted(p) == [0.25, 0.25, 0.5] and p[true] == 0.5
    assert tt.support_frequencies(ws[1:2], w, 0)[1] == -1
    # plug-in theory: one prompt, N = 1 -> the true support's frequency
    assert tt.support_vote_theory(ws, w, [1])[1] == pytest.approx(0.5)
    assert tt.predicted_limit(ws, w) == 1.0


def test_noisy_average_risk_matches_monte_carlo():
    """ridge risk + E V_T / N against N-averages of simulated decodes over w* and label noise."""
    gen = torch.Generator().manual_seed(3)
    d, n, steps, eta, sigma, noise, samples, reps = 3, 4, 20, 0.05, 0.8, 0.5, 3, 40_000
    x = torch.randn(1, n, d, generator=gen, dtype=torch.float64)
    exact = tt.noisy_average_risk(x, steps, eta, sigma, noise, samples)
    xs = x.expand(reps, n, d)
    w = torch.randn(reps, d, generator=gen, dtype=torch.float64)
    y = (xs @ w.unsqueeze(-1)).squeeze(-1) + noise * torch.randn(reps, n, generator=gen, dtype=torch.float64)
    ws = tt.chains(xs, y, eta, f"multiplicative:std={sigma}", [steps], samples, gen)[steps]
    err = (ws.mean(0) - w).square().sum(-1)
    mean, se = tt.mean_se(err)
    assert abs(mean - exact) < 4 * se
    greedy = theory.gd_weight_risk(x, steps, eta, 0.0, 1.0, noise).item()
    assert abs(greedy - exact) > 4 * se  # the check can tell the noisy average from GD


@pytest.mark.slow
def test_quick_run_claims(tmp_path):
    result = tt.TestTime(mode="quick").run(tmp_path)
    holds = {c.id: c.holds for c in result.claims}
    for cid in ("2-average-to-ridge", "3-more-thoughts", "5-vote-overtakes-greedy", "6-noise-level",
                "7-compute-split", "8-extrapolate"):
        assert holds[cid], cid
    assert not holds["1-cot-emits-gd"]
