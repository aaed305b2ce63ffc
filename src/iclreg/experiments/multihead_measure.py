"""The measurements of ``iclreg reproduce multihead`` (Cui et al., arXiv 2401.17426): excess
risks of trained attention and of the best softmax kernel predictors, as plain numbers.

Every error is the excess risk E (y_hat - w^T x_q)^2 = risk - sigma^2, measured against the
noiseless query label (``iclreg.analysis.query``); the best H-head kernel predictor at D comes
from ``iclreg.analysis.kernel_family.best_heads`` on the score grid ``OMEGAS``. A trained
model's excess is read through an :data:`Excess` (run prefix, task -> its seeds' mean), so the
claims' tests can substitute measured values without training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..analysis.kernel_family import best_heads
from ..analysis.query import query_error
from ..tasks import Task
from ..tasks import build as build_task
from .base import Runs
from .multihead_setup import D_IN, OMEGAS, SCENARIOS, TEST_SEED, Sizes, run_name, task_spec, theory_ratio

Excess = Callable[[str, Task], float]  # run prefix, its task -> excess risk averaged over its seeds


def seed_excess(runs: Runs, prefix: str, task: Task, sizes: Sizes, device: str,
                record: dict[str, list[float]] | None = None) -> float:
    """E (y_hat - w^T x_q)^2 = risk - sigma^2 of the runs ``prefix/seed<s>``, averaged over seeds;
    each seed's value is kept in ``record[prefix]`` when a record is given."""
    errors = [query_error(runs.model(f"{prefix}/seed{s}"), task, sizes.test_prompts, seed=TEST_SEED,
                          target="noiseless", device=device) for s in range(sizes.seeds)]
    if record is not None:
        record[prefix] = errors
    return sum(errors) / len(errors)


@dataclass(frozen=True)
class LossVsD:
    """Excess risks against D, by number of heads H: H -> D -> excess."""

    kernel: dict[int, dict[int, float]]  # the best kernel predictor, at ``family_lengths``
    trained: dict[int, dict[int, float]]  # trained attention, at ``lengths``
    best: dict[int, dict[str, Any]]  # the best kernel heads at the largest family D (``best_heads``)


def loss_vs_D(excess: Excess, sizes: Sizes, device: str) -> LossVsD:
    """Section 1: the base scenario's excess risks against D, one and two heads."""
    base, Ds, Fs = SCENARIOS[0], list(sizes.lengths), list(sizes.family_lengths)
    family = {D: best_heads(base.task(D), OMEGAS, (1, 2), sizes.family_prompts, seed=D, device=device)
              for D in Fs}
    kernel = {h: {D: family[D][h]["excess"] for D in Fs} for h in (1, 2)}
    trained = {h: {D: excess(run_name(base.key, D_IN, D, h), base.task(D)) for D in Ds} for h in (1, 2)}
    return LossVsD(kernel, trained, family[Fs[-1]])


@dataclass(frozen=True)
class ScenarioRisks:
    """One scenario's excess risks at the scenario D by H: trained, best kernel and C_H / D."""

    trained: dict[int, float]
    kernel: dict[int, float]
    theory: dict[int, float]

    @property
    def ratio(self) -> float:
        """Trained single / two heads (above 1: two heads are better)."""
        return self.trained[1] / self.trained[2]

    @property
    def theory_ratio(self) -> float:
        return self.theory[1] / self.theory[2]


def scenarios(excess: Excess, sizes: Sizes, device: str) -> dict[str, ScenarioRisks]:
    """Section 2: scenario label -> its excess risks at ``scenario_D``. The kernel predictor of
    correlated features scores omega x_i^T S^-1 x_q (the score matrix attention can learn)."""
    D, out = sizes.scenario_D, {}
    for s in SCENARIOS:
        task = s.task(D)
        P = torch.linalg.inv(task.covariance) if s.kind == "toeplitz" else None
        trained = {h: excess(run_name(s.key, D_IN, D, h), task) for h in (1, 2)}
        found = best_heads(task, OMEGAS, (1, 2), sizes.family_prompts, seed=D, P=P, device=device)
        out[s.label] = ScenarioRisks(trained, {h: found[h]["excess"] for h in (1, 2)},
                                     {h: s.constant(h) / D for h in (1, 2)})
    return out


def heads(excess: Excess, sizes: Sizes, device: str) -> tuple[dict[int, float], dict[int, float]]:
    """Section 3: at the scenario D, the best kernel predictor's excess with H = 1, 2, 3 heads and
    trained attention's with H = 1, 2, 4."""
    D, base = sizes.scenario_D, SCENARIOS[0]
    task = build_task(task_spec(D + 1))
    found = best_heads(task, OMEGAS, (1, 2, 3), sizes.family_prompts, seed=D, device=device)
    trained = {h: excess(run_name(base.key, D_IN, D, h), task) for h in (1, 2, 4)}
    return {h: found[h]["excess"] for h in (1, 2, 3)}, trained


def dimension(excess: Excess, sizes: Sizes) -> tuple[dict[str, float], dict[str, float]]:
    """Section 3: trained excess single / two heads and our theory's C_1 / C_2 by input dimension
    (``"d=<d>"``), at the scenario D."""
    D, key = sizes.scenario_D, SCENARIOS[0].key
    trained, theory = {}, {}
    for d in (D_IN, *sizes.dims):
        task = build_task(task_spec(D + 1, d=d))
        trained[f"d={d}"] = excess(run_name(key, d, D, 1), task) / excess(run_name(key, d, D, 2), task)
        theory[f"d={d}"] = theory_ratio(d)
    return trained, theory
