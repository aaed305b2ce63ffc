"""Reproduction of Cui, Ren, He, Tang, Xing, "Superiority of multi-head attention" (arXiv
2401.17426, AISTATS 2025): ``iclreg reproduce multihead``.

Single-layer softmax attention (He et al.'s parameterisation) with one head against several,
in-context linear regression with D examples (papers.md section 4):

1. Loss against D: trained models (one ensemble per (D, H)), the best H-head softmax kernel
   predictor at that D (``iclreg.analysis.kernel_family``), our exact large-D expansion
   (``iclreg.theory.multihead``: sigma^2 + C_H / D) and He et al.'s approximate loss; fitted
   O(1/D) slopes and constants.
2. Scenarios: noisy labels, local examples, correlated features, prior knowledge; single
   against multi-head, theory against trained (one ensemble per H over all scenarios).
3. Embedding dimension: the constants' ratio C_1 / C_2 against d, and more heads than two.

The parts: ``multihead_setup`` (task, scenarios, sizes, constants), ``multihead_measure``
(excess risks), ``multihead_claims`` (the claims), this module (the plan and the report's
sections). Only the paper's abstract could be retrieved, not its formulas: every formula used
here is our derivation (``iclreg.theory.multihead``), and the report says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

from ..report.format import format_value
from ..report.palette import PALETTE
from ..report.plots import Plot
from ..report.references import CUI_2024, HE_2025
from ..train import ExperimentConfig
from . import multihead_claims as claims
from . import multihead_measure as measure
from .base import REPRODUCTIONS, Experiment, Runs, Section
from .multihead_controls import CONTROLS
from .multihead_setup import (
    D_IN,
    DIMENSION_FIGURE,
    FULL,
    HEADS,
    LOSS_FIGURE,
    NOISE_VAR,
    OMEGAS,
    QUICK,
    SCENARIO_FIGURE,
    SCENARIOS,
    TEST_SEED,
    TOY,
    Scenario,
    Sizes,
    approximate_optimum,
    constants,
    run_name,
    task_spec,
    theory_ratio,
)

__all__ = ["CONTROLS", "D_IN", "FULL", "NOISE_VAR", "OMEGAS", "QUICK", "SCENARIOS", "TOY", "Multihead",
           "Scenario", "Sizes", "approximate_optimum", "constants", "run_name", "task_spec"]
DIMS = (2, 3, 5, 10, 20, 50, 100, 1000)  # input dimensions of the theory's C_1 / C_2 curve
SEED_SPREAD = 1.5  # a configuration whose seeds differ more than this (largest / smallest excess) is named


@REPRODUCTIONS.register("multihead")
@dataclass(frozen=True)
class Multihead(Experiment[Sizes]):
    """Cui et al.: multi-head softmax attention has the smaller O(1/D) constant."""

    title = ("Cui et al., superiority of multi-head attention in in-context linear regression "
             "(arXiv 2401.17426)")
    modes = {"quick": QUICK, "full": FULL}
    toy = TOY
    references = (CUI_2024, HE_2025)
    controls = CONTROLS

    # --- training -------------------------------------------------------------------------------
    def plan(self, sizes: Sizes) -> dict[str, ExperimentConfig]:
        """One run per (scenario, d, D, H, seed); members sharing (d, D, H) train as one
        ensemble (the scenarios and seeds at the scenario D are one ensemble per H)."""
        base, D = SCENARIOS[0], sizes.scenario_D
        shapes = {run_name(base.key, D_IN, L, h): (base.spec.format(n=L + 1), h)
                  for L in sizes.lengths for h in (1, 2)}
        shapes |= {run_name(s.key, D_IN, D, h): (s.spec.format(n=D + 1), h)
                   for s in SCENARIOS[1:] for h in (1, 2)}
        shapes[run_name(base.key, D_IN, D, 4)] = (base.spec.format(n=D + 1), 4)
        shapes |= {run_name(base.key, d, D, h): (task_spec(D + 1, d=d), h)
                   for d in sizes.dims for h in (1, 2)}
        return {f"{prefix}/seed{seed}": self._config(sizes, spec, heads, seed)
                for prefix, (spec, heads) in shapes.items() for seed in range(sizes.seeds)}

    def _config(self, sizes: Sizes, spec: str, heads: int, seed: int) -> ExperimentConfig:
        init = "aligned_small_id" if heads == 1 else "oppo_small_id"
        return self.config(spec, f"softmax_attention:heads={heads},init={init}",
                           optimizer={"name": "adam", "lr": sizes.lr},
                           schedule={"name": "cosine", "min_lr_ratio": 0.05},
                           train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
                           eval={"samples": 64, "estimators": []},
                           # a checkpoint each tenth of the steps (two kept): a stopped full run
                           # loses at most a tenth of a loop (its D = 1000 loops: 1.5 h each on the CPU)
                           run={"checkpoint_every": max(sizes.steps // 10, 1), "keep": 2,
                                "log_every": max(sizes.steps // 50, 1)})

    def excess(self, runs: Runs, sizes: Sizes,
               record: dict[str, list[float]] | None = None) -> measure.Excess:
        """The trained runs' excess risk by run prefix (``multihead_measure.seed_excess``), each
        seed's kept in ``record``."""
        return partial(measure.seed_excess, runs, sizes=sizes, device=self.device, record=record)

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        seeds: dict[str, list[float]] = {}
        excess = self.excess(runs, sizes, seeds)
        sections = [loss_section(measure.loss_vs_D(excess, sizes, self.device), sizes),
                    scenario_section(measure.scenarios(excess, sizes, self.device), sizes.scenario_D),
                    dimension_section(measure.heads(excess, sizes, self.device),
                                      measure.dimension(excess, sizes), sizes.scenario_D)]
        return [*sections, *([seeds_section(seeds)] if sizes.seeds > 1 else []), notes(sizes)]


# --- 1. loss against D --------------------------------------------------------------------------
def loss_section(m: measure.LossVsD, sizes: Sizes) -> Section:
    Fs = list(sizes.family_lengths)
    rows = {label: values for h in (1, 2) for label, values in
            ((f"trained, {HEADS[h]}", m.trained[h]), (f"best kernel predictor, {HEADS[h]}", m.kernel[h]))}
    (c1, c2), (a1, a2) = constants()["exact"].values(), constants()["approximate"].values()
    text = [rf"Exact large-$D$ constants (our derivation, $d = {D_IN}$, $\sigma^2 = {NOISE_VAR}$): "
            rf"$C_1 = {c1:.3f}$ (single head), $C_2 = {c2:.3f}$ (two heads, reached as $\omega \to 0$: the "
            f"debiased-GD limit), ratio {c1 / c2:.3f}. He et al.'s approximate loss gives {a1:.2f} and "
            rf"{a2:.2f}, ratio $e$: its $e^{{d \omega^2}}$ replaces "
            r"$\mathbb{E}\, e^{\omega^2 \|x_q\|^2} = (1 - 2 \omega^2)^{-d/2}$ and it drops the fluctuation "
            r"of the softmax ratio's normaliser; the exact ratio tends to $e$ only as $d \to \infty$.", "",
            rf"Best kernel predictors at $D = {Fs[-1]}$: one head $\omega$ = "
            rf"{format_value(m.best[1]['omega'])}, two heads $\omega$ = {format_value(m.best[2]['omega'])} "
            r"(the two-head constant is reached only as $\omega \to 0$, so at finite $D$ the best pair sits "
            r"at a finite $\omega$ and $D \times$ excess stays above $C_2$).", "",
            "| excess risk | " + " | ".join(f"$D = {D}$" for D in Fs) + " |", "|---|" + "---:|" * len(Fs),
            *(f"| {k} | " + " | ".join(f"{v[D]:.4f}" if D in v else "" for D in Fs) + " |"
              for k, v in rows.items())]
    data = {k: {f"D={D}": x for D, x in v.items()} for k, v in rows.items()}
    section_claims = [*claims.order_claims(m.kernel, sizes), claims.trained_claim(m.trained, m.kernel)]
    return Section("1. Loss against D", text, section_claims, {LOSS_FIGURE: loss_figure(m)}, data)


def loss_figure(m: measure.LossVsD) -> Plot:
    """Excess risk against D by H: trained, best kernel predictor, C_H / D and He et al.'s loss."""
    series, styles, colors = {}, {}, {}
    exact = constants()["exact"]
    for heads, color in ((1, PALETTE[1]), (2, PALETTE[0])):
        name, Fs, Ds = HEADS[heads], list(m.kernel[heads]), list(m.trained[heads])
        for label, xs, ys, style in (
                (f"trained, {name}", Ds, list(m.trained[heads].values()), "-"),
                (f"best kernel predictor, {name}", Fs, list(m.kernel[heads].values()), "--"),
                (f"exact large-$D$ theory $C_{heads} / D$, {name}", Fs, [exact[heads] / D for D in Fs], ":"),
                (f"He et al. approximate loss, {name}", Fs,
                 [approximate_optimum(D, heads) for D in Fs], "-.")):
            series[label], styles[label], colors[label] = (xs, ys), style, color
    return Plot("lines", series, "number of examples $D$", r"excess risk (risk $-\ \sigma^2$)",
                "single vs multi-head: loss against $D$", logx=True, logy=True, colors=colors, styles=styles)


# --- 2. scenarios -------------------------------------------------------------------------------
def scenario_section(risks: dict[str, measure.ScenarioRisks], D: int) -> Section:
    rows = [f"| {label} | {r.trained[1]:.4f} | {r.trained[2]:.4f} | {r.kernel[1]:.4f} | {r.kernel[2]:.4f} | "
            f"{r.theory[1]:.4f} | {r.theory[2]:.4f} |" for label, r in risks.items()]
    ratios = {label: r.ratio for label, r in risks.items()}
    theory = {label: r.theory_ratio for label, r in risks.items()}
    figure = Plot("bars", list(ratios), {"trained": list(ratios.values()),
                                                  "large-$D$ theory": list(theory.values())},
                  "excess risk, single / two heads", f"multi-head advantage by scenario ($D = {D}$)")
    text = [r"Excess risk (risk $- \sigma^2$) of trained attention, of the best softmax kernel predictor "
            r"(scores $\omega\, x_i^\top P x_q$, $P = S^{-1}$ for correlated features) and of our large-$D$ "
            r"theory $C_H / D$.", "",
            "| scenario | trained $H = 1$ | trained $H = 2$ | kernel $H = 1$ | kernel $H = 2$ "
            "| theory $H = 1$ | theory $H = 2$ |",
            "|---|---:|---:|---:|---:|---:|---:|", *rows, "",
            "Theory ratios $C_1 / C_2$: " + ", ".join(f"{k}: {v:.2f}" for k, v in theory.items()) + ". "
            "Claim 2-scenarios asks for strict superiority (two heads' excess below one head's) in "
            "every scenario; the theory gives local examples no advantage, so a tie there misses it."]
    return Section(f"2. Scenarios (D = {D})", text, claims.scenario_claims(risks, D),
                   {SCENARIO_FIGURE: figure}, {"trained ratio": ratios, "theory ratio": theory})


# --- 3. embedding dimension and more heads ------------------------------------------------------
def dimension_section(heads: tuple[dict[int, float], dict[int, float]],
                      dimension: tuple[dict[str, float], dict[str, float]], D: int) -> Section:
    """``heads``: the best kernel's excess by H = 1, 2, 3 and trained attention's by H = 1, 2, 4;
    ``dimension``: trained and theory single / two-head ratios by input dimension."""
    ratio = [theory_ratio(d) for d in DIMS]
    figure = Plot("lines", {"exact large-$D$ theory": (list(DIMS), ratio)}, "input dimension $d$",
                  "$C_1 / C_2$", "single / multi-head constant against dimension", logx=True,
                  hlines={"$e$ (He et al.'s approximate loss)": math.e})
    text = ["Large-$D$ theory, $C_1 / C_2$ by input dimension: " + ", ".join(
        f"$d = {d}$: {r:.3f}" for d, r in zip(DIMS, ratio, strict=True)) + "."]
    section_claims = [claims.heads_claim(*heads, D), claims.dimension_claim(*dimension, D)]
    return Section("3. Embedding dimension and number of heads", text, section_claims,
                   {DIMENSION_FIGURE: figure}, {"d": list(DIMS), "C_1 / C_2": ratio})


def seeds_section(seeds: dict[str, list[float]]) -> Section:
    """Each trained configuration's excess risk seed by seed: the tables above average them, and
    a seed that stopped on a higher plateau moves its configuration's mean."""
    spread = {prefix: max(v) / min(v) for prefix, v in seeds.items()}
    apart = [prefix for prefix, r in spread.items() if r > SEED_SPREAD]
    rows = [f"| {prefix} | " + ", ".join(f"{v:.4f}" for v in values) + f" | {spread[prefix]:.2f} |"
            for prefix, values in sorted(seeds.items())]
    text = ["Excess risk of every trained configuration, seed by seed (the sections above give their "
            f"mean). Largest over smallest seed above {SEED_SPREAD:g}: "
            + (", ".join(apart) if apart else "none") + ".", "",
            "| configuration | excess risk, seeds 0, 1, ... | largest / smallest |", "|---|---|---:|", *rows]
    return Section("Seeds", text, [], {}, {"excess by seed": seeds, "largest / smallest": spread})


def notes(sizes: Sizes) -> Section:
    return Section("Notes", [
        "- Formulas: only the abstract of Cui et al. could be retrieved; the large-$D$ constants are our "
        "derivation (delta method on the softmax ratio and Gaussian tilting; `iclreg.theory.multihead`, "
        "checked by Monte Carlo in `tests/theory/test_multihead.py`).",
        rf"- Data: $d = {D_IN}$, $w \sim N(0, I/d)$, $\sigma^2 = {NOISE_VAR}$ unless the scenario says "
        r"otherwise; the prior-knowledge scenario keeps $\mathbb{E}\|w\|^2 = 1$. 'local' is iclreg's "
        r"construction ($x_i = x_q + r g_i$). The embedding dimension is the token width $d + 1$ of "
        "He et al.'s parameterisation.",
        r"- Training: He et al.'s single-layer attention, $H = 1$ from small identity with Q's sign "
        r"that of the head's OV label entry (so $\omega \mu > 0$ from the start: a head started with "
        r"$\omega \mu < 0$ can stay at the saddle $\omega = \mu = 0$ for the whole run) and $H \ge 2$ "
        "from opposite-sign small identity (V and O at the default init, as in the authors' code; the "
        "two-head solution is then found without the long single-head plateau), Adam "
        f"{sizes.lr} with cosine decay, batch {sizes.batch}, {sizes.steps} steps, loss at the query, "
        f"{sizes.seeds} seed(s) per configuration; test risks on {sizes.test_prompts} prompts "
        rf"(seed {TEST_SEED}), against $w^\top x_q$.",
        rf"- The kernel family is searched on a grid of {len(OMEGAS)} scores $\omega \in "
        rf"[{float(OMEGAS[0]):.2f}, {float(OMEGAS[-1]):.2f}]$ with $\mu$ fitted in closed form on "
        f"{sizes.family_prompts} prompts and the risk measured on as many fresh ones."])
