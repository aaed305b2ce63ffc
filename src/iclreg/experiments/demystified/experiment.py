"""Reproduction of He, Pan, Chen, Yang, "In-context linear regression demystified"
(ICML 2025, arXiv 2503.12734): ``iclreg reproduce demystified``.

Setup (papers.md section 5): d = 5, L = 40 context pairs (n = 41), sigma^2 = 0.1,
w ~ N(0, I/d); one softmax attention layer with H heads in the paper's parameterisation.

1. The estimator table at L = 10, 20, 40, by Monte Carlo.
2. Training H in {1, 2, 4, 8} from the default initialisation, several seeds (one ensemble
   per H): final losses, loss curves, the fraction of seeds that leave the single-head
   plateau.
3. Emergent patterns: diagonal homogeneous KQ, OV on the label entry only, opposite-sign
   head pairs, dummy heads beyond two. Our omega_h is the score scale (KQ = K^T Q / sqrt(d+1),
   as their attention scales scores); the published |omega| ~ 0.13 is read off their figures,
   which divide K^T Q by sqrt(d+2), so ours is converted to that normalisation before the
   comparison (``theory.demystified.figure_omega``: times sqrt(6/7) at d = 5).
4. Mechanism: prediction agreement of H = 1 with the single-head estimator and of H >= 2
   with debiased GD rather than plain GD (``mechanism``), and the extracted
   (omega_h, mu_h) against the optimum of the approximate loss. 5. Length generalisation beyond
   L = 40. Every claim has a negative control (``controls``).

This module plans the runs and wires the analysis; the H sweep's measurements are in ``sweep``,
its claims in ``sweep_claims``, ``heads`` and ``mechanism``, its text in ``sweep_text``; the
second half's parts (``PARTS``) each plan, measure and state their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ...report.references import HE_2025
from ...train import ExperimentConfig
from ..base import REPRODUCTIONS, Experiment, Runs, Section
from . import aniso, multitask, sweep
from . import length as length_part
from .aniso import AnisoSizes
from .controls import CONTROLS as CONTROLS  # every claim's negative control (re-exported)
from .length import LengthSizes
from .multitask import MultitaskSizes
from .setup import FULL, OWN_RUNS, QUICK, TASK, TOY, Sizes, best
from .sweep_text import (
    estimators_section,
    lengths_section,
    mechanism_section,
    notes_section,
    patterns_section,
    training_section,
)

PARTS = (length_part, aniso, multitask)  # the second half: length and near-Bayes, anisotropic, multi-task
PartSizes = LengthSizes | AnisoSizes | MultitaskSizes


def parts(sizes: Sizes) -> list[tuple[ModuleType, PartSizes]]:
    """(module, its sizes) of every part of the second half, at the scale of ``sizes``."""
    return [(m, getattr(m, sizes.scale.upper())) for m in PARTS]


@REPRODUCTIONS.register("demystified")
@dataclass(frozen=True)
class Demystified(Experiment[Sizes]):
    """He et al. 2025: multi-head softmax attention learns debiased GD."""

    title = "He et al. 2025, In-context linear regression demystified (arXiv 2503.12734)"
    modes = {"quick": QUICK, "full": FULL}
    toy = TOY
    references = (HE_2025, OWN_RUNS)
    controls = CONTROLS

    def plan(self, sizes: Sizes) -> dict[str, ExperimentConfig]:
        """One run per (H, seed); the seeds of one H share a shape and train as one ensemble; then
        the runs of the second half's parts."""
        runs = {f"H{heads}/seed{seed}": self.config(
            TASK, f"softmax_attention:heads={heads}",
            optimizer={"name": "adam", "lr": sizes.lr}, schedule=sizes.schedule,
            train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
            eval={"samples": 2000, "estimators": []},
            run={"checkpoint_every": sizes.steps // 10, "keep": 11, "log_every": max(sizes.steps // 100, 1)})
            for heads, seeds in sizes.seeds.items() for seed in range(seeds)}
        for module, part_sizes in parts(sizes):
            runs.update(module.plan(self, part_sizes))
        return runs

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        """Sections 1-5 of the H sweep, the second half's parts, the notes."""
        long_task = sweep.long_task()
        stats = sweep.trained_runs(self, runs, sizes, long_task)  # the references' prompts (seed 12)
        softmax = {"softmax H=2": best(stats[2]).curve}
        extra = [section for module, part_sizes in parts(sizes)
                 for section in module.sections(self, runs, part_sizes, softmax_curves=softmax)]
        sections = [
            estimators_section(sweep.estimator_curves(self, sizes), sizes),
            training_section(sweep.loss_curves(runs, stats), stats),
            patterns_section(stats, sweep.trajectory(runs, f"H2/seed{best(stats[2]).seed}"),
                             sweep.head_splits(runs, stats)),
            mechanism_section(sweep.mechanism(self, sizes, stats), sizes),
            lengths_section(stats, sweep.length_references(self, long_task, sizes)),
            *extra]
        return [*sections, notes_section(sizes, self.quick)]
