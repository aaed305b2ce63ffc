"""He et al. (arXiv 2503.12734), two claims of ``iclreg reproduce demystified``: linear against
softmax attention beyond the training length, and the trained error against the Bayes error.

1. Linear attention, H = 2 heads, trained at L = 40 on the same task and budget as the softmax
   models, in two normalisations of its scores: divided by the number of examples L at the
   evaluation length (``activation=linear``), or by the training length 40 at every length
   (``linear_scale=40``). Both read only k = 40 in training (the query loss), where both divide
   by 40: they train to the same weights, bit for bit (full and toy sizes train both and show
   it; quick trains the first and evaluates its weights under both normalisations, which halves
   its cost). They differ in the estimator they implement at other lengths. One linear layer
   computes (1/L) sum_j (v^T z_j)(z_j^T A x_q); its useful part is a GD step
   (c/L) sum_i y_i x_i^T x_q (a product of two sums, x_bar times y_bar, is out of its reach, so
   no debiasing), consistent as L grows. Divided by 40 instead, the same sum is GD with step
   c L / 40: it undershoots below 40 and overshoots beyond (five times at L = 200). Exact risks:
   ``theory.debiased_gd.gd_risk``. The claim checks linear / L, the linear self-attention of the
   works the paper compares with (scores over the prompt's number of examples); linear / 40 fails
   by its normalisation alone, so it is reported beside it and not checked.
2. "Nearly achieves Bayesian optimality up to a proportional factor", on excess risk
   (MSE - sigma^2): the trained softmax H = 2 excess over the exact Bayes excess
   (``theory.bayes_risk``) at the training length and below, against the factor
   1 + (d + 1) tau^2 / sigma^2 of debiased GD with its step refitted at each L
   (``theory.debiased_gd.debiased_gd_optimal_lr``). A model trained at one length keeps its step,
   and its ratio grows without bound beyond that length: reported, not checked.

This module plans the runs and measures them; the claims and the exact risks are in
``length_claims``, the text and figures in ``length_text``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...analysis import error_curves
from ...errors import check
from ...tasks import build as build_task
from ...train import ExperimentConfig
from ..base import Experiment, Runs, Section
from .length_claims import (
    FACTOR,
    LENGTHS,
    MARGIN,
    NEAR,
    SOFTMAX,
    TRACK,
    VARIANTS,
    Theory,
    linear_claim,
    near_bayes_claim,
)
from .length_text import bayes_section, linear_section
from .setup import FULL as HE_FULL
from .setup import QUICK as HE_QUICK
from .setup import TASK, L, Schedule
from .setup import TOY as HE_TOY
from .setup import Sizes as HeSizes


@dataclass(frozen=True)
class LengthSizes:
    """The softmax models' training budget, seeds per linear variant, evaluation prompts, and
    whether the fixed-scale variant trains on its own (``train_fixed``) or takes the weights of
    the scaled run of the same seed (the same weights: module docstring)."""

    steps: int
    batch: int
    lr: float
    schedule: Schedule
    seeds: int
    eval_samples: int
    train_fixed: bool = True


def _sizes(he: HeSizes, seeds: int, train_fixed: bool, eval_samples: int | None = None) -> LengthSizes:
    samples = he.eval_samples if eval_samples is None else eval_samples
    return LengthSizes(he.steps, he.batch, he.lr, he.schedule, seeds, samples, train_fixed)


# quick: 4 x 1024 prompts, the first four chunks of the softmax models' 8000 (analysis.compare.CHUNK)
QUICK = _sizes(HE_QUICK, 2, train_fixed=False, eval_samples=4096)
FULL, TOY = _sizes(HE_FULL, 4, train_fixed=True), _sizes(HE_TOY, 1, train_fixed=True)


def plan(exp: Experiment[HeSizes], sizes: LengthSizes) -> dict[str, ExperimentConfig]:
    """``linear/<variant>/seed<s>`` (``fixed`` only with ``train_fixed``): the seeds of one variant
    train as one ensemble."""
    return {f"linear/{variant}/seed{seed}": exp.config(
        TASK, spec, optimizer={"name": "adam", "lr": sizes.lr}, schedule=sizes.schedule,
        train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
        eval={"samples": 2000, "estimators": []},
        run={"checkpoint_every": max(sizes.steps // 10, 1), "keep": 2,
             "log_every": max(sizes.steps // 100, 1)})
        for variant, (_, spec) in VARIANTS.items() for seed in range(sizes.seeds)
        if variant == "scaled" or sizes.train_fixed}


def sections(exp: Experiment[HeSizes], runs: Runs, sizes: LengthSizes,
             softmax_curves: dict[str, Sequence[float]] | None = None, **_: object) -> list[Section]:
    """The two sections; ``softmax_curves[SOFTMAX]``: the best trained softmax H = 2 model's MSE
    at k = 0..200 examples, on the same prompts (``error_curves`` of the n = 201 task, seed 12)."""
    k_max = max(LENGTHS)
    softmax = list((softmax_curves or {}).get(SOFTMAX, []))
    check(len(softmax) > k_max, f"demystified length: softmax_curves['{SOFTMAX}'] must give the MSE at "
          f"k = 0..{k_max} (got {len(softmax)} values): evaluate the H=2 model on n = {k_max + 1}")
    long_task = build_task(TASK.replace(f"n={L + 1}", f"n={k_max + 1}"))
    models = {}
    for seed in range(sizes.seeds):
        scaled = models[f"linear/scaled/seed{seed}"] = runs.model(f"linear/scaled/seed{seed}")
        models[f"linear/fixed/seed{seed}"] = (runs.model(f"linear/fixed/seed{seed}") if sizes.train_fixed
                                              else with_fixed_scale(scaled, L))
    curves = error_curves(long_task, models, sizes.eval_samples, seed=12, device=exp.device,
                          dtype=torch.float32)
    linear = {name: curves[name]["mse"] for name in models}
    theory = Theory.at(k_max)
    return [linear_section(linear, softmax, theory, sizes), bayes_section(softmax, theory)]


def with_fixed_scale(model: torch.nn.Module, scale: int) -> torch.nn.Module:
    """The same weights with the linear scores divided by ``scale`` at every length."""
    config = dataclasses.replace(model.config, linear_scale=scale)
    fixed = config.build(torch.Generator()).to(next(model.parameters()).device)  # weights replaced below
    fixed.load_state_dict(model.state_dict())
    return fixed.eval()


__all__ = ["FACTOR", "FULL", "LENGTHS", "MARGIN", "NEAR", "QUICK", "SOFTMAX", "TOY", "TRACK", "VARIANTS",
           "LengthSizes", "Theory", "linear_claim", "near_bayes_claim", "plan", "sections",
           "with_fixed_scale"]
