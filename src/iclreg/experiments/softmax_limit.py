"""Reproduction of Boursier & Boyer, softmax attention as linear attention in the
large-prompt regime (arXiv 2512.11784): ``iclreg reproduce softmax-limit``.

1. The infinite-prompt limit: linear for Gaussian tokens with isotropic, Toeplitz and rotated
   anisotropic covariances, not linear for Rademacher tokens (whose exact limit is
   V tanh(K^T Q z)).
2. Concentration of the output and of the gradients with respect to the attention weights,
   with fitted log-log slopes and Monte Carlo 95% bands.
3. Training at finite L: attention in the paper's reduced parameters (A, b)
   (``reduced_attention``), softmax and linear from the same weights, seeds per
   (L, activation) trained as one ensemble, against the gradient flow of the infinite-L risk
   R(A, b) from the same start (``iclreg.theory.gradient_flow``); ||A||_F^2 - b^2 along the
   flow; its end point.
4. Stability along training: output and gradient gaps between finite and infinite L at every
   checkpoint of the softmax runs.

The parts: ``softmax_limit_setup`` (covariances, task, sizes), ``softmax_limit_measure``
(errors, trajectories, the flow), ``softmax_limit_claims``, ``softmax_limit_controls``, and this
module (the plan and the report's sections).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..report.format import format_value
from ..report.palette import PALETTE
from ..report.plots import Plot
from ..report.references import BOURSIER_BOYER
from ..tasks import build as build_task
from ..train import ExperimentConfig
from . import softmax_limit_claims as claims
from . import softmax_limit_measure as measure
from .base import REPRODUCTIONS, Experiment, Runs, Section
from .softmax_limit_controls import CONTROLS
from .softmax_limit_setup import (
    ACTIVATIONS,
    CONCENTRATION_FIGURE,
    COVARIANCES,
    FULL,
    GAP_SOURCE,
    NOISE_VAR,
    QUICK,
    RADEMACHER_FIGURE,
    SLOPES_SOURCE,
    STABILITY_FIGURE,
    TOY,
    TRAIN_TASK,
    TRAINING_FIGURE,
    W_VAR,
    D,
    P,
    Sizes,
    by_length,
    conserved,
    max_drift,
    mean,
)

__all__ = ["CONTROLS", "D", "FULL", "NOISE_VAR", "QUICK", "TOY", "TRAIN_TASK", "W_VAR", "P", "Sizes",
           "SoftmaxLimit", "conserved", "max_drift", "mean"]
Z95 = 1.96  # the bands: mean +- 1.96 standard errors
DASHES = ("-", "--", ":")  # one per covariance: the three curves of one quantity overlap


@REPRODUCTIONS.register("softmax-limit")
@dataclass(frozen=True)
class SoftmaxLimit(Experiment[Sizes]):
    """Boursier & Boyer: finite-L softmax attention concentrates on a linear limit."""

    title = ("Boursier & Boyer, softmax attention as linear attention in the large-prompt regime "
             "(arXiv 2512.11784)")
    modes = {"quick": QUICK, "full": FULL}
    toy = TOY
    references = (BOURSIER_BOYER, SLOPES_SOURCE, GAP_SOURCE)
    controls = CONTROLS

    # --- the plan: one run per (L, activation, seed); the seeds of one (L, activation) share
    # shapes and train as one ensemble, and the same seed gives the same start at every L -------
    def plan(self, sizes: Sizes) -> dict[str, ExperimentConfig]:
        return {f"L{L}_{activation}/seed{seed}": self._train_config(sizes, L, activation, seed)
                for L in sizes.train_lengths for activation in ACTIVATIONS for seed in range(sizes.seeds)}

    def _train_config(self, sizes: Sizes, L: int, activation: str, seed: int) -> ExperimentConfig:
        return self.config(
            TRAIN_TASK.format(n=L + 1), f"reduced_attention:activation={activation}",
            optimizer={"name": "sgd", "lr": sizes.lr},
            train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
            eval={"samples": 64, "estimators": []},
            run={"checkpoint_every": sizes.steps // 20, "keep": 21, "log_every": max(sizes.steps // 100, 1)})

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        Sigma = build_task(TRAIN_TASK.format(n=2)).covariance
        traj = measure.trajectories(runs, sizes, Sigma)
        return [concentration_section(sizes), training_section(sizes, traj, Sigma),
                stability_section(sizes, traj), self._notes(sizes)]

    def _notes(self, sizes: Sizes) -> Section:
        lines = ["- The squared error of the output at random weights falls like $1/L$ (claim 2), so "
                 "claim 1 asks for the fall over the lengths rather than a level at one $L$ (the level at "
                 f"the largest $L$, {sizes.lengths[-1]}, is in the claim's row).",
                 "- Training uses the paper's reduced parameterisation (value reads the label, key-query "
                 "acts on $x$), whose infinite-$L$ risk is exactly $R(A, b)$; the authors' experiment trains "
                 "full $V, K, Q$ matrices. Test risks are measured on "
                 f"{sizes.test_prompts} fixed prompts per $L$, averaged over seeds."]
        if self.quick:
            lines.append(f"- Quick mode: $L$ = {format_value(sizes.train_lengths)}, {sizes.steps} SGD "
                         f"steps at lr {sizes.lr}, flow time {sizes.steps * sizes.lr:g} (full mode, as the "
                         f"authors: {FULL.steps} steps at {FULL.lr:g}, flow time {FULL.steps * FULL.lr:g}).")
        return Section("Notes", lines)


# --- 1-2. the limit and concentration at random weights --------------------------------------------
def concentration_section(sizes: Sizes) -> Section:
    m = measure.concentration(sizes)
    gaussian, slopes = claims.concentration_claims(m)
    gap = measure.rademacher(sizes)
    text = [rf"Token width $p = {P}$, centred tokens; $V$ has $N(0, 1/p)$ entries and $K, Q$ have "
            r"$N(0, 0.09/p)$ entries, so the scores stay $O(1)$; gradients are with respect to $(V, K, Q)$ "
            rf"of the output's sum, per prompt. {sizes.draws} weight draws $\times$ {sizes.reps} prompts per "
            rf"length; the bands are 95% intervals over the weight draws (mean $\pm {Z95}$ standard errors).",
            "", overlap_text(m)]
    figures = {CONCENTRATION_FIGURE: concentration_figure(m), RADEMACHER_FIGURE: rademacher_figure(gap)}
    return Section("1-2. Limit and concentration at random weights", text,
                   [gaussian, claims.rademacher_claim(gap), slopes], figures, {"slopes": m.slopes})


def overlap_text(m: measure.Concentration) -> str:
    """Where the covariances' curves coincide: within their Monte Carlo error, or not."""
    words = []
    for quantity in measure.QUANTITIES:
        spread, L = m.spread(quantity)
        apart = m.apart(quantity, Z95)
        words.append(f"the {quantity} errors coincide within their bands at every $L$ (they differ by at "
                     f"most {spread:.0%}, at $L = {L}$)" if not apart else
                     f"the {quantity} errors differ beyond their bands at $L$ = {format_value(apart)}")
    return ("Across the three covariances " + "; ".join(words) + ". Each covariance has its own colour "
            "and dash and each curve its own marker, so curves lying on top of one another stay visible.")


def concentration_figure(m: measure.Concentration) -> Plot:
    """The squared errors against L, output and gradient for each covariance, with 95% bands."""
    series, bands, colors, styles = {}, {}, {}, {}
    for quantity in measure.QUANTITIES:
        for i, cov in enumerate(COVARIANCES):
            errors, label = m.errors[cov.key], f"{quantity}, {cov.label}"
            series[label] = (m.lengths, errors[quantity])
            bands[label] = [[y - Z95 * se, y + Z95 * se]
                            for y, se in zip(errors[quantity], errors[f"{quantity}_se"], strict=True)]
            colors[label], styles[label] = PALETTE[i], DASHES[i]
    return Plot("lines", series, "context length $L$", "mean squared error against the limit",
                "concentration on the infinite-prompt limit", logy=True, logx=True, colors=colors,
                styles=styles, bands=bands)


def rademacher_figure(gap: dict[str, list[float]]) -> Plot:
    series = {r"against $V K^\top Q z$ (linear)": (gap["L"], gap["vs_linear"]),
              r"against $V \tanh(K^\top Q z)$": (gap["L"], gap["vs_tanh"])}
    return Plot("lines", series, "context length $L$", "relative squared error", "Rademacher tokens",
                logy=True, logx=True)


# --- 3. training at finite L against the infinite-L flow -------------------------------------------
def training_section(sizes: Sizes, traj: measure.Trajectories, Sigma: Tensor) -> Section:
    lengths = list(sizes.train_lengths)
    m = measure.training(sizes, traj, Sigma)
    section_claims = [*claims.training_claims(m, lengths),
                      *claims.flow_claims(measure.flow_end(m.flows, Sigma), m.horizon)]
    final_gap, max_gap = by_length({L: m.final_gap(L) for L in lengths}), by_length(
        {L: m.max_gap(L) for L in lengths})
    sgd = {f"L = {L}": max_drift(conserved(traj[(L, "softmax")][0])) for L in lengths}  # seed 0
    text = [r"Attention in the reduced parameters $(A, b)$: "
            r"$\hat y = b \sum_j y_j\, \mathrm{softmax}_j(x_j^\top A x_q)$, and linear attention (scores "
            f"$/ L$) from the same weights; SGD lr {sizes.lr}, batch {sizes.batch}, {sizes.steps} steps, "
            f"{sizes.seeds} seeds per ($L$, activation), each an ensemble. The flow integrates "
            r"$d(A, b)/dt = -\nabla R(A, b)$, the gradient of the infinite-$L$ risk, from each seed's "
            r"start; SGD step $t$ is flow time $\mathrm{lr} \cdot t$. Final risk gaps to the flow "
            f"{format_value(final_gap)}; largest gap along training {format_value(max_gap)}. SGD at a "
            r"finite step does not conserve $\|A\|_F^2 - b^2$ (max drift of seed 0 by $L$: "
            f"{format_value(sgd)}); the flow does."]
    data = {"final_gap": final_gap, "max_gap": max_gap, "sgd_drift": sgd}
    figures = {TRAINING_FIGURE: risk_figure(m, lengths)}
    return Section("3. Training at finite L", text, section_claims, figures, data)


def risk_figure(m: measure.Training, lengths: list[int]) -> Plot:
    """Mean test risk along training, softmax (solid) and linear (dashed) by L, and the flow."""
    series, styles, colors = {}, {}, {}
    for i, L in enumerate(lengths):
        soft, lin = f"softmax, $L = {L}$", f"linear, $L = {L}$"
        series[soft], series[lin] = (m.steps, m.risks[(L, "softmax")]), (m.steps, m.risks[(L, "linear")])
        styles[soft], styles[lin] = "-", "--"
        colors[soft] = colors[lin] = PALETTE[i % len(PALETTE)]
    series["infinite-$L$ flow"] = (m.steps, m.flow_risk)
    colors["infinite-$L$ flow"], styles["infinite-$L$ flow"] = "black", ":"
    return Plot("lines", series, "SGD step", "test risk at the training $L$",
                "finite-$L$ training against the infinite-$L$ gradient flow", logy=True,
                hlines={r"Bayes risk at infinite $L$ ($\sigma^2$)": NOISE_VAR}, colors=colors, styles=styles)


# --- 4. stability along training -------------------------------------------------------------------
def stability_section(sizes: Sizes, traj: measure.Trajectories) -> Section:
    gaps = measure.stability(sizes, traj)
    steps = traj[(sizes.train_lengths[0], "softmax")][0]["step"]
    series, colors, styles = {}, {}, {}
    for i, L in enumerate(sizes.train_lengths):
        for key in measure.QUANTITIES:
            label = f"{key}, $L = {L}$"
            series[label], colors[label] = (steps, gaps[(L, key)]), PALETTE[i % len(PALETTE)]
            styles[label] = "-" if key == "output" else "--"
    figure = Plot("lines", series, "SGD step", "relative squared gap to the infinite-$L$ limit",
                  "finite vs infinite $L$ along softmax training", logy=True, colors=colors, styles=styles)
    claim = claims.stability_claim(gaps, sizes.train_lengths[-1])
    return Section("4. Stability along training", [], [claim], {STABILITY_FIGURE: figure})
