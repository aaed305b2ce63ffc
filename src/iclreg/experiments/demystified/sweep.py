"""He et al. (arXiv 2503.12734), the measurements of the H sweep of ``iclreg reproduce demystified``
(softmax attention with H in {1, 2, 4, 8} heads trained at L = 40, several seeds per H): numbers
only. Every trained run evaluated on long prompts (k <= LONGEST), the estimator table's Monte Carlo
curves, the training losses, the heads over the checkpoints, the prediction agreements of the
mechanism claims and the reference curves beyond the training length.

The claims on these numbers: ``sweep_claims``, ``heads``, ``mechanism``; the text and the figures:
``sweep_text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...analysis import best_curves, error_curves
from ...analysis.patterns import head_patterns
from ...estimators import build as build_estimator
from ...tasks import Task
from ...tasks import build as build_task
from ...theory import optimal_mu, single_head_optimum
from ..base import Experiment, Runs
from .heads import exact_minimisers, head_split
from .mechanism import debiased_measures, disagreement
from .setup import ESTIMATORS, LONGEST, NOISE_VAR, TASK, D, L, Sizes, Trained

Curves = dict[str, dict[str, Any]]  # ``analysis.error_curves``: label -> {"mse": [...], "ci95": [...], ...}
LossCurves = dict[int, list[tuple[list[int], list[float]]]]  # H -> (steps, losses) of each seed
Split = tuple[int, float, float]  # (step, mean |omega_h| in the figures' normalisation, mean |mu_h|)


def long_task() -> Task:
    """The task with n = LONGEST + 1 pairs: the trained models and references read at k <= LONGEST."""
    return build_task(TASK.replace(f"n={L + 1}", f"n={LONGEST + 1}"))


def trained_runs(exp: Experiment[Sizes], runs: Runs, sizes: Sizes, task: Task) -> dict[int, list[Trained]]:
    """H -> its seeds, each evaluated on ``sizes.eval_samples`` prompts of ``task`` (seed 12, the
    references' prompts) at k <= L; the best seed of each H at every k <= LONGEST."""
    stats: dict[int, list[Trained]] = {}
    for heads, seeds in sizes.seeds.items():
        models = {f"{seed}": runs.model(f"H{heads}/seed{seed}") for seed in range(seeds)}
        _, curves = best_curves(task, models, sizes.eval_samples, seed=12, at=L, device=exp.device,
                                dtype=torch.float32)  # only the best seed of an H is shown beyond L
        stats[heads] = [Trained(heads, int(s), m, curves[s], head_patterns(m)) for s, m in models.items()]
    return stats


def estimator_curves(exp: Experiment[Sizes], sizes: Sizes) -> Curves:
    """The MSE of every estimator of the table (``ESTIMATORS``) at k <= L: Monte Carlo, seed 11."""
    task = build_task(TASK)
    return error_curves(task, {k: build_estimator(s, task=task) for k, s in ESTIMATORS.items()},
                        sizes.mc_samples, seed=11, device=exp.device, progress=exp.progress)


def loss_curves(runs: Runs, stats: dict[int, list[Trained]]) -> LossCurves:
    """The logged training loss of every run, by H."""
    curves: LossCurves = {}
    for heads, trained in stats.items():
        for r in trained:
            records = runs.metrics(f"H{heads}/seed{r.seed}", "loss")
            curves.setdefault(heads, []).append(([x["step"] for x in records], [x["loss"] for x in records]))
    return curves


def trajectory(runs: Runs, name: str) -> tuple[list[int], list[list[float]], list[list[float]]]:
    """(steps, omega_h by step, mu_h by step) of run ``name`` at each of its checkpoints."""
    steps, omegas, mus = [], [], []
    for step, model in runs.checkpoints(name):
        p = head_patterns(model)
        steps.append(step)
        omegas.append(p.omega.tolist())
        mus.append(p.mu.tolist())
    return steps, omegas, mus


def head_splits(runs: Runs, stats: dict[int, list[Trained]]) -> dict[int, list[Split]]:
    """Seed -> (step, |omega|, |mu|) at each checkpoint, for the H = 2 seeds off the plateau."""
    return {r.seed: [(step, *head_split(model, D)) for step, model in runs.checkpoints(f"H2/seed{r.seed}")]
            for r in stats[2] if r.escaped}


@dataclass(frozen=True)
class Mechanism:
    """What the mechanism claims read (``mechanism``, ``heads``), on fresh prompts (seed 13)."""

    h1: list[float]  # each H = 1 run's disagreement with the single-head estimator at L
    debiased: dict[str, dict[str, float]]  # H >= 2 run off the plateau -> ``debiased_measures``
    pairs: dict[str, dict[str, list[float]]]  # H = 2 seed -> {"mu": [...], "mu*(omega)": [...]}
    extracted: list[tuple[float, float]]  # each H = 1 run's (omega, mu)
    optimum: tuple[float, float]  # the approximate loss's H = 1 minimiser at L
    exact: dict[int, tuple[float, float]]  # length -> the exact risk's H = 1 minimiser (Monte Carlo)
    approx: dict[int, tuple[float, float]]  # length -> the approximate loss's H = 1 minimiser


def mechanism(exp: Experiment[Sizes], sizes: Sizes, stats: dict[int, list[Trained]]) -> Mechanism:
    """Agreement of predictions on fresh prompts, and the extracted heads beside the theory's."""
    prompts = build_task(TASK).sample(sizes.eval_samples, seed=13, step=0, device=exp.device)
    omega1, mu1 = single_head_optimum(D, L, NOISE_VAR)
    h1 = []
    for r in stats[1]:  # the loss is symmetric under (omega, mu) -> (-omega, -mu)
        sign = 1.0 if float(r.patterns.omega[0]) >= 0 else -1.0
        single = build_estimator(f"kernel:omega={sign * omega1:.6f},mu={sign * mu1:.6f}")
        with torch.no_grad():
            f, g = r.model(prompts.x, prompts.y)[:, L], single(prompts.x, prompts.y)[:, L]
        h1.append(disagreement(f, g))
    dgd, pairs = {}, {}
    for r in (r for trained in stats.values() for r in trained if r.heads >= 2 and r.escaped):
        lr = float((r.patterns.omega * r.patterns.mu).sum())  # sum_h omega_h mu_h = 2 omega mu for a pair
        dgd[f"H={r.heads} seed {r.seed}"] = debiased_measures(r.model, lr, prompts.x, prompts.y, L)
        if r.heads == 2:
            mu_star = optimal_mu(r.patterns.omega, D, L, NOISE_VAR)
            pairs[f"seed {r.seed}"] = {"mu": r.patterns.mu.tolist(), "mu*(omega)": mu_star.tolist()}
    extracted = [(float(r.patterns.omega[0]), float(r.patterns.mu[0])) for r in stats[1]]
    exact = exact_minimisers(D, (L, 4 * L, 16 * L), NOISE_VAR, min(10 * sizes.mc_samples, 200_000))
    approx = {n: single_head_optimum(D, n, NOISE_VAR) for n in exact}
    return Mechanism(h1, dgd, pairs, extracted, (omega1, mu1), exact, approx)


def length_references(exp: Experiment[Sizes], task: Task, sizes: Sizes) -> Curves:
    """Debiased GD and the single-head estimator at k <= LONGEST, on the trained runs' prompts."""
    refs = {"debiased GD": build_estimator(ESTIMATORS["debiased GD"], task=task),
            "single head": build_estimator("single_head:L=40", task=task)}
    return error_curves(task, refs, sizes.eval_samples, seed=12, device=exp.device, dtype=torch.float32)
