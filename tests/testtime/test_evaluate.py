"""evaluate against independent per-prompt computations: closed-form GD for the squared query
error, a numpy GD + top-k loop for support recovery, and numpy intervals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclreg import tasks
from iclreg.errors import UsageError
from iclreg.testtime import DECODERS, NOISES, TECHNIQUES, evaluate
from iclreg.testtime.evaluate import CHUNK


def _prompts(task, prompts: int, seed: int):
    """The prompts evaluate draws: chunks of CHUNK from (seed, chunk), n + 1 pairs each."""
    out = []
    for chunk in range(-(-prompts // CHUNK)):
        batch = min(CHUNK, prompts - chunk * CHUNK)
        p = task.sample(batch, seed, chunk, n=task.n + 1, dtype=torch.float64)
        out += [(p.x[b].numpy(), p.y[b].numpy(), p.w[b].numpy()) for b in range(batch)]
    return out


def _gd(X: np.ndarray, Y: np.ndarray, lr: float, steps: int) -> np.ndarray:
    S = X.T @ X
    d = S.shape[0]
    M = np.linalg.matrix_power(np.eye(d) - lr * S, steps)
    return (np.eye(d) - M) @ np.linalg.solve(S, X.T @ Y)


def _interval(values: np.ndarray) -> tuple[float, list[float]]:
    m, s = values.mean(), values.std(ddof=1)
    half = 1.96 * s / np.sqrt(len(values))
    return m, [m - half, m + half]


def test_greedy_query_error_and_interval_match_closed_form_gd(seed: int):
    task = tasks.build("gaussian:d=3,n=8,noise_std=0.5")
    lr, steps, prompts = 0.03, 12, CHUNK + 44  # two chunks
    out = evaluate(task, DECODERS.build(f"gd:lr={lr}"), NOISES.build("greedy"),
                   TECHNIQUES.build("mean"), steps, [4, 1], prompts, seed)
    errors = np.array([
        ((_gd(X[:-1], Y[:-1], lr, steps) @ X[-1]) - Y[-1]) ** 2
        for X, Y, _ in _prompts(task, prompts, seed)
    ])
    mean, ci = _interval(errors)
    assert out["N"] == [1, 4] and out["metric"] == "mse" and out["steps"] == steps
    result = out["results"]["mean"]
    np.testing.assert_allclose(result["mse"], [mean, mean], rtol=1e-9)
    np.testing.assert_allclose(result["ci95"], [ci, ci], rtol=1e-9)
    assert out["task"] == task.describe() and out["prompts"] == prompts and out["seed"] == seed


def test_greedy_top_k_recovery_matches_a_numpy_loop(seed: int):
    task = tasks.build("binary01:d=8,n=10,k=3,noise_std=0.3")
    lr, steps, prompts = 0.1, 5, 200
    out = evaluate(task, DECODERS.build(f"gd:lr={lr},mean=true"),
                   NOISES.build("support:k=3,temperature=0"), TECHNIQUES.build("vote"),
                   steps, [1, 3], prompts, seed)
    hits = []
    for X, Y, W in _prompts(task, prompts, seed):
        X, Y, w = X[:-1], Y[:-1], np.zeros(8)
        for _ in range(steps):
            f = np.maximum(w - lr / 10 * X.T @ (X @ w - Y), 1e-10)
            w = np.zeros(8)
            w[np.argsort(-f, kind="stable")[:3]] = 1.0
        hits.append(float(np.array_equal(w != 0, W != 0)))
    mean, ci = _interval(np.array(hits))
    assert out["metric"] == "recovery"
    assert 0.05 < mean < 0.95  # neither trivial nor hopeless: the comparison can fail
    np.testing.assert_allclose(out["results"]["vote"]["recovery"], [mean, mean], rtol=1e-12)
    np.testing.assert_allclose(out["results"]["vote"]["ci95"], [ci, ci], rtol=1e-12)


def test_sampled_vote_is_reproducible_and_improves_with_n():
    task = tasks.build("binary01:d=10,n=15,k=3,noise_std=0.01")
    args = (DECODERS.build("gd:lr=0.066,mean=true"), NOISES.build("support:k=3,temperature=1"),
            TECHNIQUES.build("vote"), 20, [1, 32], 160, 3)
    first, second = evaluate(task, *args), evaluate(task, *args)
    assert first == second
    low, high = first["results"]["vote"]["ci95"]
    assert high[0] > low[1]  # N = 64 beats N = 1 by more than both intervals


def test_best_label_and_bad_input():
    task = tasks.build("gaussian:d=2,n=4")
    out = evaluate(task, DECODERS.build("gd:lr=0.1"), NOISES.build("additive:std=0.1"),
                   TECHNIQUES.build("best:reward=residual"), 3, [2], 8, 0,
                   dtype=torch.float32)
    assert list(out["results"]) == ["best:reward=residual"]
    with pytest.raises(UsageError, match="samples must be"):
        evaluate(task, DECODERS.build("gd"), NOISES.build("greedy"), TECHNIQUES.build("mean"),
                 3, [0], 8, 0)
    with pytest.raises(UsageError, match="prompts must be at least 2"):
        evaluate(task, DECODERS.build("gd"), NOISES.build("greedy"), TECHNIQUES.build("mean"),
                 3, [1], 1, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_matches_cpu_for_greedy():
    task = tasks.build("gaussian:d=3,n=8,noise_std=0.5")
    args = (DECODERS.build("gd:lr=0.03"), NOISES.build("greedy"), TECHNIQUES.build("mean"), 10,
            [1, 2], 64, 0)
    cpu, gpu = evaluate(task, *args), evaluate(task, *args, device="cuda")
    np.testing.assert_allclose(cpu["results"]["mean"]["mse"], gpu["results"]["mean"]["mse"],
                               rtol=1e-8)
