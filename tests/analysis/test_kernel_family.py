"""The best multi-head kernel predictor from Gram moments, against the kernel estimator."""

from __future__ import annotations

import torch

from iclreg.analysis.kernel_family import best_heads, head_outputs
from iclreg.estimators import build as build_estimator
from iclreg.tasks import build as build_task

TASK = "gaussian:d=3,n=21,noise_std=0.3,w_std=0.57735"


def _risk(task, omega, mu, samples=20_000, seed=11):
    est = build_estimator(f"kernel:omega=[{','.join(map(str, omega))}],mu=[{','.join(map(str, mu))}]")
    p = task.sample(samples, seed=seed, step=0, dtype=torch.float64)
    err = (est.predict(p.x, p.y)[:, -1] - p.y[:, -1]).square()
    return float(err.mean()), float(err.std()) / samples**0.5


def test_head_outputs_match_a_loop():
    task = build_task(TASK)
    p = task.sample(3, seed=0, step=0, dtype=torch.float64)
    omegas = torch.tensor([0.1, -0.4], dtype=torch.float64)
    r = head_outputs(p.x, p.y, omegas)
    for b in range(3):
        for g, om in enumerate(omegas):
            w = torch.softmax(om * (p.x[b, :-1] @ p.x[b, -1]), 0)
            assert torch.isclose(r[b, g], (w * p.y[b, :-1]).sum(), rtol=1e-12)


def test_best_heads_is_what_the_kernel_estimator_scores_and_beats_perturbations():
    task = build_task(TASK)
    grid = torch.linspace(-0.6, 0.6, 13)
    found = best_heads(task, grid, (1, 2), samples=20_000, seed=5)
    for heads in (1, 2):
        best = found[heads]
        omega, mu = best["omega"].tolist(), best["mu"].tolist()
        direct, se = _risk(task, omega, mu)
        # an independent implementation on independent prompts agrees within Monte Carlo error
        assert abs(direct - best["risk"]) < 4 * 2**0.5 * se
        assert abs(best["risk"] - best["excess"] - 0.09) < 1e-12  # sigma^2 = 0.3^2
        for scale in (0.8, 1.25):  # mu is the least-squares optimum: scaling it costs
            assert _risk(task, omega, [m * scale for m in mu])[0] > direct
    assert found[2]["risk"] < found[1]["risk"] - 0.01  # two opposite heads beat one (Cui et al.)
