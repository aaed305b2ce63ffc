"""The squared error at the query, against a loop over prompts and against closed forms."""

from __future__ import annotations

import pytest
import torch

from iclreg.analysis.query import query_error, query_prediction
from iclreg.errors import UsageError
from iclreg.estimators import build as build_estimator
from iclreg.models import build as build_model
from iclreg.tasks import build as build_task

TASK = "gaussian:d=3,n=8,noise_std=0.3,w_std=0.57735"


def _reference(predictor, task, samples, seed, target):
    """One prompt at a time, the full forward's last position, w^T x_q as an explicit sum."""
    p = task.sample(samples, seed=seed, step=0)
    total = 0.0
    for b in range(samples):
        with torch.no_grad():
            pred = float(predictor(p.x[b:b + 1], p.y[b:b + 1])[0, -1])
        if target == "noisy":
            goal = float(p.y[b, -1])
        else:
            goal = sum(float(p.w[b, j]) * float(p.x[b, -1, j]) for j in range(task.d))
        total += (pred - goal) ** 2
    return total / samples


@pytest.mark.parametrize("target", ["noisy", "noiseless"])
def test_model_and_estimator_match_a_loop_over_prompts(target):
    task = build_task(TASK)
    torch.manual_seed(0)
    model = build_model("softmax_attention:d=3,heads=2").eval()
    estimator = build_estimator("ridge:lam=0.5")
    for predictor in (model, estimator):
        ours = query_error(predictor, task, 64, seed=7, target=target)
        assert ours == pytest.approx(_reference(predictor, task, 64, 7, target), rel=1e-5)
    # the two targets differ: the noisy one carries the query's noise
    noisy, noiseless = (query_error(estimator, task, 64, seed=7, target=t) for t in ("noisy", "noiseless"))
    assert noisy != noiseless


def test_predict_last_is_used_when_present():
    class Both(torch.nn.Module):
        def forward(self, x, y):
            return torch.zeros(y.shape)

        def predict_last(self, x, y):
            return torch.full(y.shape[:1], 2.0)

    x, y = torch.zeros(5, 4, 3), torch.zeros(5, 4)
    assert torch.equal(query_prediction(Both(), x, y), torch.full((5,), 2.0))
    task = build_task("gaussian:d=3,n=4,noise_std=0.0,w_std=0.0")  # every label and target is 0
    assert query_error(Both(), task, 16) == 4.0


@pytest.mark.parametrize("target", ["noisy", "noiseless"])
def test_zero_predictor_error_is_the_signal_variance(target):
    """E (w^T x)^2 = w_std^2 tr(Sigma) for w ~ N(0, w_std^2 I) independent of x ~ N(0, Sigma);
    the noisy label adds sigma^2."""
    spectrum, w_std, noise_std = (0.5, 1.0, 2.0), 0.7, 0.4
    task = build_task(f"gaussian:d=3,n=2,noise_std={noise_std},w_std={w_std},cov=spectrum,"
                      f"spectrum=[{','.join(map(str, spectrum))}]")
    samples = 100_000
    exact = w_std**2 * sum(spectrum) + (noise_std**2 if target == "noisy" else 0.0)
    p = task.sample(samples, seed=3, step=0)
    goal = p.y[:, -1] if target == "noisy" else (p.x[:, -1] * p.w).sum(-1)
    se = float(goal.square().std()) / samples**0.5
    ours = query_error(build_estimator("zero"), task, samples, seed=3, target=target)
    assert abs(ours - exact) < 4 * se
    assert ours == pytest.approx(float(goal.square().mean()), rel=1e-6)  # the same prompts


def test_bad_target_and_multi_label_noiseless_are_refused():
    with pytest.raises(UsageError, match="target must be one of noisy, noiseless"):
        query_error(build_estimator("zero"), build_task(TASK), 4, target="clean")
    multi = build_task("multitask:d=6,n=4")  # two label slots
    with pytest.raises(UsageError, match="single-label"):
        query_error(build_estimator("zero"), multi, 4)


def test_prompts_in_chunks_give_the_one_call_error():
    """With room for 3 prompts of n = 8 positions per call, 64 prompts go through in 22 calls
    (the last one short) and give the one-call error; a predictor whose output depends on its
    batch (the negative control) shows the chunks are real: its error changes."""
    task = build_task(TASK)
    torch.manual_seed(0)
    model = build_model("softmax_attention:d=3,heads=2").eval()
    whole = query_error(model, task, 64, seed=7)
    assert query_error(model, task, 64, seed=7, positions=24) == pytest.approx(whole, rel=1e-6)
    assert query_error(model, task, 64, seed=7, positions=64 * 8) == whole  # one chunk: one call

    class BatchSize(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sizes: list[int] = []

        def forward(self, x, y):
            self.sizes.append(x.shape[0])
            return torch.full(y.shape, float(x.shape[0]))

    control = BatchSize()
    assert query_error(control, task, 64, seed=7) != query_error(control, task, 64, seed=7, positions=24)
    assert control.sizes == [64] + [3] * 21 + [1]
