"""Tests of the test-time reproduction's measurements and (slow) of its quick run's claims."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.experiments import testtime as tt
from iclreg.experiments import testtime_measure as measure
from iclreg.testtime import NOISES, GDDecoder, decode, decode_path


def test_first_crossing_and_interior_min():
    assert measure.first_crossing([1, 4, 16], [0.1, 0.3, 0.5], 0.2) == 4
    assert measure.first_crossing([1, 4, 16], [0.1, 0.2, 0.2], 0.2) is None
    assert measure.interior_min([3.0, 1.0, 2.0]) and not measure.interior_min([1.0, 2.0, 3.0])
    assert not measure.interior_min([3.0, 2.0, 1.0])


def test_mean_se_matches_numbers():
    mean, se = measure.mean_se(torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(math.sqrt(((4 + 1 + 0 + 9) / 3) / 4))


def test_chains_records_the_same_iterates_as_decode():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    dec = GDDecoder(lr=0.05)
    out = measure.chains(x, y, dec, "multiplicative:std=0.5", [2, 7], 6, torch.Generator().manual_seed(1))
    noise = NOISES.build("multiplicative:std=0.5")
    ref = decode_path(x, y, dec, noise, 7, 6, torch.Generator().manual_seed(1))
    assert torch.equal(out[7], ref[:, :, 7]) and torch.equal(out[2], ref[:, :, 2])
    final = decode(x, y, dec, NOISES.build("multiplicative:std=0.5"), 7, 6, torch.Generator().manual_seed(1))
    assert torch.equal(final, ref[:, :, 7])


def test_affine_map_of_gd_is_its_step():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 5, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    for dec in (GDDecoder(lr=0.05), GDDecoder(lr=0.3, mean=True)):
        p, b = dec.affine(x, y)
        assert torch.allclose(torch.einsum("bij,sbj->sbi", p, w) + b, dec(x, y, w), atol=1e-13)


def test_support_frequencies_counts_distinct_supports():
    w = torch.tensor([[1.0, 0.0, 1.0]])
    ws = torch.tensor([[[1.0, 0.0, 1.0]], [[0.0, 1.0, 1.0]], [[1.0, 0.0, 1.0]], [[1.0, 1.0, 0.0]]])
    p, true = measure.support_frequencies(ws, w, 0)
    assert sorted(p) == [0.25, 0.25, 0.5] and p[true] == 0.5
    assert measure.support_frequencies(ws[1:2], w, 0)[1] == -1
    # exact subset rate: one prompt, N = 1 -> the true support's frequency; N = 4: all four decodes,
    # the true support (2 votes) beats the two others (1 vote each)
    rate, bound = measure.support_vote_theory(ws, w, [1, 4])
    assert rate[1].item() == pytest.approx(0.5) and rate[4].item() == pytest.approx(1.0) and bound[4] < 1e-12


def test_average_theory_matches_monte_carlo_given_the_prompt():
    """||m_T - w*||^2 + tr Sigma_T / N against N-averages of simulated decodes of one prompt."""
    gen = torch.Generator().manual_seed(3)
    d, n, steps, eta, sigma, samples, reps = 3, 4, 20, 0.05, 0.8, 3, 30_000
    x = torch.randn(1, n, d, generator=gen, dtype=torch.float64)
    w = torch.randn(1, d, generator=gen, dtype=torch.float64)
    y = (x @ w.unsqueeze(-1)).squeeze(-1) + 0.5 * torch.randn(1, n, generator=gen, dtype=torch.float64)
    dec = GDDecoder(lr=eta)
    exact = measure.average_theory(dec, x, y, w, steps, sigma, samples).item()
    ws = measure.chains(x.expand(reps, n, d), y.expand(reps, n), dec, f"multiplicative:std={sigma}",
                        [steps], samples, gen)[steps]
    mean, se = measure.mean_se((ws.mean(0) - w).square().sum(-1))
    assert abs(mean - exact) < 4 * se
    greedy = (decode(x, y, dec, NOISES.build("greedy"), steps, 1)[0] - w).square().sum().item()
    assert abs(greedy - exact) > 4 * se  # the check can tell the noisy average from GD


@pytest.mark.slow
def test_quick_run_claims(tmp_path):
    result = tt.TestTime(mode="quick").run(tmp_path)
    failed = [c.id for c in result.claims if not c.holds]
    assert not failed, failed


def test_full_mode_on_the_cpu_runs_every_decoder_claim_and_lists_the_trained_ones(tmp_path, monkeypatch):
    """The d = 50 decoder-only path (one decoder per setting) at toy sizes: every GD claim is
    measured, every trained-CoT claim is listed as not run with the GPU command."""
    monkeypatch.setattr(tt, "FULL", tt.TOY)
    monkeypatch.setattr(tt, "CPU_PROMPTS", 8)
    experiment = tt.TestTime(mode="full", device="cpu")
    assert experiment.decoder_only and experiment.plan(experiment.resolved_sizes) == {}
    result = experiment.run(tmp_path)
    unmeasured = [c for c in result.claims if c.id.endswith("-cot") or c.id == "1-cot-emits-gd"]
    assert len(unmeasured) == 8 and all(not c.holds for c in unmeasured)
    assert all("--device cuda" in c.reason for c in unmeasured)
    measured = {c.id for c in result.claims} - {c.id for c in unmeasured}
    assert {"5-vote-overtakes-greedy", "3-exact-gd-overfits", "7-compute-split"} <= measured
