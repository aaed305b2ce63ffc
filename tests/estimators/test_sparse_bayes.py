"""``sparse_bayes``, the exact posterior mean under the sparse prior (enumerated supports),
against computations that share nothing with it: importance sampling from the task's own prior
sampler, the brute-force loop over supports of reference.py, the exact noiseless recovery, the
Gaussian case s = d; and negative controls (a wrong s, the best linear predictor) that lose."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from iclreg import estimators, tasks
from iclreg.analysis.score import measure, paired_difference
from iclreg.analysis.score_suite import Base, Capability
from iclreg.errors import UsageError

from .reference import reference_predict


def importance(task, x: Tensor, y: Tensor, k: int, draws: int = 400_000) -> tuple[Tensor, Tensor]:
    """E[<w, x_k> | first k pairs] by self-normalised importance sampling from the task's own
    prior sampler, and the effective sample size of the weights: (B,), (B,)."""
    gen = torch.Generator().manual_seed(1)
    w = task.sample_w(draws, {"generator": gen, "device": "cpu", "dtype": torch.float64})  # (M, d)
    resid = y[:, None, :k] - torch.einsum("bkd,md->bmk", x[:, :k], w)  # (B, M, k)
    weights = torch.softmax(-0.5 * resid.square().sum(-1) / task.noise_std**2, dim=-1)  # (B, M)
    return (weights * (x[:, k] @ w.T)).sum(-1), 1 / weights.square().sum(-1)


@pytest.mark.parametrize("spec", ["sparse:d=4,n=7,s=2,noise_std=0.5", "sparse:d=5,n=6,s=3,noise_std=0.6"])
def test_the_posterior_mean_by_importance_sampling_from_the_prior(spec, seed):
    """Compared where the importance weights keep an effective sample of 2,000 draws or more (a
    concentrated posterior leaves few: there the brute force below is the check)."""
    task = tasks.build(spec)
    p = task.sample(6, seed, 0, dtype=torch.float64)
    out = estimators.build("sparse_bayes", task=task)(p.x, p.y)
    checked = 0
    for k in (1, 2, 3, 4):
        mc, ess = importance(task, p.x, p.y, k)
        keep = ess >= 2000
        torch.testing.assert_close(out[keep, k], mc[keep], atol=0.03, rtol=0.03)
        checked += int(keep.sum())
    assert checked >= 12  # of 24


@pytest.mark.parametrize("noise", [0.3, 0.0])
def test_brute_force_over_supports_at_d4_s2(noise, seed):
    task = tasks.build(f"sparse:d=4,n=9,s=2,noise_std={noise}")
    est = estimators.build("sparse_bayes", task=task)
    p = task.sample(6, seed, 1, dtype=torch.float64)
    ref = torch.from_numpy(reference_predict(est, task, p.x.numpy(), p.y.numpy()))
    torch.testing.assert_close(est(p.x, p.y), ref, rtol=1e-9, atol=1e-9)


def test_noiseless_prompts_are_recovered_exactly_from_s_plus_one_examples(seed):
    task = tasks.build("sparse:d=8,n=10,s=3")
    p = task.sample(16, seed, 2, dtype=torch.float64)
    out = estimators.build("sparse_bayes", task=task)(p.x, p.y)
    torch.testing.assert_close(out[:, 4:], p.y[:, 4:], rtol=0, atol=1e-9)  # k >= s + 1 = 4
    assert (out[:, 3] - p.y[:, 3]).abs().max() > 1e-3  # k = s: not yet identified


def test_s_equal_to_d_is_the_gaussian_posterior_mean(seed):
    for noise in (0.4, 0.0):
        task = tasks.build(f"gaussian:d=3,n=8,noise_std={noise},w_std=0.8")
        p = task.sample(5, seed, 3, dtype=torch.float64)
        sparse = estimators.build("sparse_bayes", task=task)(p.x, p.y)  # s = d: one support
        gaussian = estimators.build("bayes", task=task)(p.x, p.y)
        torch.testing.assert_close(sparse, gaussian, rtol=1e-8, atol=1e-8)


def test_chunked_supports_give_the_same_answer(monkeypatch, seed):
    from iclreg.estimators import sparse_bayes

    task = tasks.build("sparse:d=7,n=12,s=3,noise_std=0.2")
    p = task.sample(8, seed, 4, dtype=torch.float64)
    whole = estimators.build("sparse_bayes", task=task)(p.x, p.y)
    monkeypatch.setattr(sparse_bayes, "BLOCK", 1)  # one support per chunk
    torch.testing.assert_close(estimators.build("sparse_bayes", task=task)(p.x, p.y), whole,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("wrong", ["sparse_bayes:s=1", "sparse_bayes:s=5", "bayes"])
def test_a_wrong_prior_has_a_measurably_larger_risk(wrong):
    """On sparse-3 prompts (d = 8, noisy) the exact reference beats a wrong s and the best
    linear predictor, paired on the same prompts (their excess interval lies above 0)."""
    capability = Capability("sparse-3", task="sparse:s=3", reference="sparse_bayes")
    base = Base(d=8, n=12, w_std=1.0, noise_std=0.3)
    model = estimators.build(wrong, task=capability.build(base))
    measured = measure({"wrong": model}, capability, base, 512, 0)
    assert measured.capability.exact()
    excess = (measured.errors["wrong"] - measured.baselines["reference"]).mean(1)
    low = float(excess.mean()) - 3 * float(excess.std()) / excess.numel() ** 0.5
    assert low > 0, (wrong, float(excess.mean()))
    assert paired_difference(measured, "wrong", "wrong")["excess_difference"] == 0


def test_too_many_supports_is_one_line():
    task = tasks.build("sparse:d=40,n=5,s=10")
    p = task.sample(2, 0, 0)
    with pytest.raises(UsageError, match="supports is more than"):
        estimators.build("sparse_bayes", task=task)(p.x, p.y)
    small = tasks.build("sparse:d=8,n=5")
    p = small.sample(2, 0, 0)
    with pytest.raises(UsageError, match="s must lie in"):
        estimators.build("sparse_bayes:s=9", task=small)(p.x, p.y)
