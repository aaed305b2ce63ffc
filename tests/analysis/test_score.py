"""Tests of ``iclreg.analysis.score``: the Bayes references against Monte Carlo and the exact risk,
the Bayes predictor scoring 1 and zero scoring 0, negative controls, paired differences."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from iclreg.analysis.score import PerTask, mean_ci, measure, paired_difference, ratio_ci, score, summary
from iclreg.analysis.score_suite import Base, Capability, load_suite
from iclreg.estimators import build as build_estimator
from iclreg.models import build as build_model
from iclreg.tasks import Task
from iclreg.theory.exact_bayes import bayes_risk

BASE = Base(d=3, n=7, w_std=1.0, noise_std=0.3)
SUITE = load_suite("standard")
# the exact Bayes predictor of every standard-v2 capability
BAYES = PerTask(lambda task: build_estimator("sparse_bayes" if task.name == "sparse" else "bayes", task=task))


def importance_posterior_mean(task: Task, x: Tensor, y: Tensor, k: int, draws: int = 400_000) -> Tensor:
    """E[<w, x_k> | first k pairs] by self-normalised importance sampling from the task's prior
    (w drawn by the task itself), independent of the estimators: (B,) for prompts x (B, n, d)."""
    gen = torch.Generator().manual_seed(1)
    w = task.sample_w(draws, {"generator": gen, "device": "cpu", "dtype": torch.float64})  # (M, d)
    sigma = task.noise_std
    resid = y[:, None, :k] - torch.einsum("bkd,md->bmk", x[:, :k], w)  # (B, M, k)
    logw = -0.5 * resid.square().sum(-1) / sigma**2  # (B, M)
    weights = torch.softmax(logw, dim=-1)
    return (weights * (x[:, k] @ w.T)).sum(-1)  # (B,)


@pytest.mark.parametrize("name", ["noise-high", "toeplitz", "shifted-mean", "cond-100"])
def test_the_bayes_reference_is_the_posterior_mean_by_importance_sampling(name):
    capability = next(c for c in SUITE.capabilities if c.name == name)
    task = capability.build(Base(d=2, n=5, w_std=1.0, noise_std=0.5))
    assert capability.exact()
    prompts = task.sample(4, 3, 0, dtype=torch.float64)
    reference = build_estimator(capability.reference, task=task)(prompts.x, prompts.y)
    for k in (1, 3):
        mc = importance_posterior_mean(task, prompts.x, prompts.y, k)
        torch.testing.assert_close(reference[:, k], mc, atol=0.03, rtol=0.02)


def test_the_bayes_reference_risk_is_the_exact_bayes_risk(seed):
    """The reference's Monte Carlo error curve against theory.exact_bayes (de Bruijn's formula)."""
    capability = next(c for c in SUITE.capabilities if c.name == "noise-high")
    measured = measure({"zero": build_estimator("zero")}, capability, BASE, 4000, seed)
    task = measured.task
    errors = measured.baselines["reference"]  # (N, n)
    for k in range(measured.n):
        mean, (low, high) = mean_ci(errors[:, k])
        exact = bayes_risk(task.d, k, task.noise_std, task.w_std)
        half = (high - low) / 2
        assert abs(mean - exact) < 2.5 * half, (k, mean, exact)


def test_bayes_scores_one_and_zero_scores_zero_with_exact_intervals(seed):
    results, _ = score({"bayes": BAYES, "zero": build_estimator("zero")}, SUITE.capabilities, BASE, 64, seed)
    for name, row in results["bayes"].items():
        assert row["applicable"], name
        assert row["excess"] == 0 and row["normalised"] == 1
        assert row["normalised_ci95"][0] <= 1 <= row["normalised_ci95"][1]
    for name, row in results["zero"].items():
        assert row["normalised"] == pytest.approx(0, abs=1e-12), name
        assert row["normalised_ci95"][0] <= 0 <= row["normalised_ci95"][1]
        assert row["icl_regression_score"] == pytest.approx(0, abs=1e-12)


def test_negative_controls_score_clearly_below_one(seed):
    """Ridge with a wrong lambda (too large: it over-shrinks; too small: near least squares, it
    chases the noise) falls clearly short of Bayes on noisy labels. (Least squares itself has an
    infinite expected error at k = d and d + 1 on noisy labels, so its Monte Carlo mean is not a
    number to test against.)"""
    caps = tuple(c for c in SUITE.capabilities if c.name in ("noise-low", "noise-high"))
    models = {"over": build_estimator("ridge:lam=30"), "under": build_estimator("ridge:lam=0.01"),
              "ols": build_estimator("ols")}
    results, _ = score(models, caps, BASE, 512, seed)
    for label, name in [("over", "noise-low"), ("over", "noise-high"), ("under", "noise-high")]:
        assert results[label][name]["normalised_ci95"][1] < 0.6, (label, name)
        assert results[label][name]["excess_ci95"][0] > 0
    assert results["ols"]["noise-high"]["icl_regression_score"] == 1.0  # its own baseline


def test_a_capability_the_model_cannot_take_is_not_applicable():
    """sparse-3 at d = 2 cannot be built; a GPT-2 with positions for n pairs cannot take 2n."""
    base = Base(d=2, n=4)
    model = build_model("gpt2:d=2,layers=1,width=8,heads=1,max_n=4").eval()
    results, _ = score({"gpt2": model}, SUITE.capabilities, base, 8, 0)
    rows = results["gpt2"]
    assert not rows["sparse-3"]["applicable"] and "s must lie in [1, d=2]" in rows["sparse-3"]["reason"]
    assert not rows["long-2x"]["applicable"] and "max_n=4" in rows["long-2x"]["reason"]
    assert rows["isotropic"]["applicable"] and rows["isotropic"]["mse_at_2train_n"] is None
    wrong_d = Capability("d5", task="gaussian:d=5")
    other, _ = score({"gpt2": model}, (wrong_d,), base, 8, 0)
    assert not other["gpt2"]["d5"]["applicable"] and "d=2" in other["gpt2"]["d5"]["reason"]


class _Noisy(torch.nn.Module):
    """The Bayes predictor plus independent Gaussian noise of std c (its own generator)."""

    def __init__(self, task_bayes, c: float, seed: int) -> None:
        super().__init__()
        self.bayes, self.c, self.gen = task_bayes, c, torch.Generator().manual_seed(seed)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return self.bayes(x, y) + self.c * torch.randn(y.shape, generator=self.gen, dtype=y.dtype)


def test_paired_difference_is_significant_only_where_the_models_differ():
    cap = Capability("isotropic")
    base = Base(d=3, n=7, w_std=1.0, noise_std=0.3)
    task = cap.build(base)
    bayes = build_estimator("bayes", task=task)
    models = {"a": _Noisy(bayes, 0.3, 1), "b": _Noisy(bayes, 0.3, 2),
              "ridge": build_estimator("ridge:lam=30")}
    measured = measure(models, cap, base, 256, 0)
    same = paired_difference(measured, "a", "b")
    low, high = same["excess_difference_ci95"]
    assert not same["significant"] and low < 0 < high
    worse = paired_difference(measured, "ridge", "a")
    assert worse["significant"] and worse["excess_difference_ci95"][0] > 0
    assert worse["normalised_difference"] < 0
    a, r = summary(measured, "a", base.n), summary(measured, "ridge", base.n)
    assert worse["normalised_difference"] == pytest.approx(r["normalised"] - a["normalised"])


def test_ratio_interval_is_the_delta_method():
    gen = torch.Generator().manual_seed(0)
    b = 1 + torch.rand(10_000, generator=gen, dtype=torch.float64)
    a = 0.5 * b + 0.1 * torch.randn(10_000, generator=gen, dtype=torch.float64)
    r, (low, high) = ratio_ci(a, b)
    assert r == pytest.approx(float(a.mean() / b.mean()))
    se = float((a - r * b).std()) / math.sqrt(a.numel()) / float(b.mean())
    assert (high - low) / 2 == pytest.approx(1.959964 * se, rel=1e-6)
