"""The quick tour that opens ``iclreg demo``: estimator comparisons on the CPU, no training.

1. He et al.'s setup (arXiv 2503.12734; d = 5, sigma^2 = 0.1, w ~ N(0, I/d)): the attention
   kernel estimators, GD, debiased GD, ridge/Bayes and OLS, with the published estimator
   table at L = 10, 20, 40 beside our Monte Carlo numbers, and the exact finite-k Bayes risk
   (``theory.bayes_risk``) beside the Bayes estimator's Monte Carlo error. With noise, OLS's
   expected error is infinite at k = d - 1, d, d + 1 (E tr W^{-1} of a Wishart W with as many
   degrees of freedom as rows, or one more or fewer): the figure marks those points as clipped.
2. Garg et al.'s standard setup (arXiv 2208.01066; d = 20, n = 41, noiseless): OLS,
   Newton-Schulz and GD steps (Fu et al., arXiv 2310.17086), averaging, 3-NN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis import compare
from ..estimators import build as build_estimator
from ..report import markdown_table
from ..report.plots import Plot
from ..report.references import FU_2024, GARG_2022, HE_2025
from ..tasks import build as build_task
from ..theory import bayes_risk
from .base import REPRODUCTIONS, Experiment, Runs, Section
from .claims import AtMost, Check, Claim, Falls, Near
from .demystified import ESTIMATORS, HE_LR, PUBLISHED
from .demystified import TASK as HE_TASK

GARG_TASK = "gaussian:d=20,n=41"
GARG_ESTIMATORS = ["ols", "newton:steps=3", "newton:steps=6", "newton:steps=12", "gd:steps=100,lr=0.01",
                   "averaging", "knn:k=3", "zero"]
BAYES_KS = (2, 5, 10, 20, 40)
NEWTON_STEPS = ("newton:steps=3", "newton:steps=6", "newton:steps=12")
HE_D = 5  # He et al.'s dimension


CONTROLS = {
    "bayes-exact": "ridge with 10 x the Bayes lambda in place of the posterior mean",
    "newton-converges": "GD steps (lr 0.01) in place of Newton-Schulz steps",
}


def exact_bayes_risk() -> dict[int, float]:
    """k -> the exact finite-k Bayes risk in He et al.'s setup (noise floor included)."""
    return {k: bayes_risk(d=5, k=k, noise_std=math.sqrt(0.1), w_std=1 / math.sqrt(5)) for k in BAYES_KS}


def bayes_claim(curve: dict[str, list], exact: dict[int, float]) -> Claim:
    """bayes-exact: an error curve (``mse``, ``ci95`` by k) within 3 SE of the exact risk at each k."""
    se = {k: (curve["ci95"][k][1] - curve["ci95"][k][0]) / (2 * 1.96) for k in exact}
    return Claim.of(
        "bayes-exact", "Monte Carlo error of the `bayes` estimator against the exact finite-k Bayes "
        f"risk, k = {', '.join(map(str, exact))}", {f"k = {k}": v for k, v in exact.items()},
        {f"k = {k}": curve["mse"][k] for k in exact},
        *(Check(f"k = {k}", curve["mse"][k], Near(exact[k], se=se[k], k=3)) for k in exact),
        figure="he_estimators.png")


def newton_claim(curves: dict[str, dict], last: int) -> Claim:
    """newton-converges: Newton-Schulz's error at k = ``last`` over the zero predictor's falls with
    the steps and is at most 1e-3 after 12 (``curves``: spec -> curve, as ``compare`` returns)."""
    zero = curves["zero"]["mse"][last]
    relative = {spec: curves[spec]["mse"][last] / zero for spec in NEWTON_STEPS}
    return Claim.of(
        "newton-converges", f"Newton-Schulz's error at k = {last} relative to the zero predictor's, "
        "after 3, 6 and 12 steps", "Fu et al.: Iterative Newton converges to least squares "
        "(error 0 for k >= d)", relative,
        Check("by steps", list(relative.values()), Falls()),
        Check("after 12 steps", relative["newton:steps=12"], AtMost(1e-3)),
        figure="standard_estimators.png")


def ols_unbounded(d: int) -> list[int]:
    """The k at which OLS's expected error on noisy labels is infinite: d - 1, d, d + 1. Its
    noise term is sigma^2 E tr W^{-1} for a Wishart W of size min(k, d) with max(k, d) degrees of
    freedom, whose mean inverse exists only when they differ by at least 2."""
    return [d - 1, d, d + 1]


def clip_unbounded(curves: dict[str, dict], label: str, ks: list[int]) -> dict[str, dict]:
    """``curves`` for a figure, with ``label``'s mean at ``ks`` infinite (drawn as a clipped peak at
    the top of the axis, which the other curves then fill), no 95% band there (``nan``) and the
    legend saying so."""
    curve = dict(curves[label])
    curve["mse"] = [math.inf if k in ks else v for k, v in enumerate(curve["mse"])]
    curve["ci95"] = [[math.nan, math.nan] if k in ks else band for k, band in enumerate(curve["ci95"])]
    shown = rf"{label} (mean $\infty$ at $k$ = {ks[0]}-{ks[-1]})"
    return {shown if name == label else name: curve if name == label else c for name, c in curves.items()}


@dataclass(frozen=True)
class Sizes:
    """The prompts of He et al.'s setup; the standard setup uses a tenth (at least 256)."""

    samples: int


@REPRODUCTIONS.register("tour")
@dataclass(frozen=True)
class Tour(Experiment[Sizes]):
    """Estimator comparisons in He et al.'s and Garg et al.'s setups."""

    title = "iclreg quick tour: estimators against the published tables and the exact Bayes risk"
    modes = {"quick": Sizes(samples=20_000), "full": Sizes(samples=200_000)}
    toy = Sizes(samples=512)
    references = (HE_2025, GARG_2022, FU_2024)
    controls = CONTROLS

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        return [self._he(sizes.samples), self._standard(max(sizes.samples // 10, 256))]

    def _he(self, samples: int) -> Section:
        task = build_task(HE_TASK)
        specs = {**ESTIMATORS, "ols": "ols"}
        result = compare(task, {label: build_estimator(spec, task=task) for label, spec in specs.items()},
                         samples, seed=1, device=self.device, progress=self.progress)
        curves = result["results"]
        rows = ["| $L$ | estimator | SPEC | published | ours (95% CI) | difference |",
                "|---:|---|---|---:|---:|---:|"]
        for i, L in enumerate((10, 20, 40)):
            for label, published in PUBLISHED.items():
                mse, (lo, hi) = curves[label]["mse"][L], curves[label]["ci95"][L]
                rows.append(f"| {L} | {label} | `{specs[label]}` | {published[i]:.3f} | {mse:.3f} "
                            f"({lo:.3f}-{hi:.3f}) | {mse - published[i]:+.3f} |")
        exact = exact_bayes_risk()
        claim = bayes_claim(curves["ridge"], exact)  # ``bayes``: the posterior mean
        unbounded = ols_unbounded(HE_D)
        spike = ", ".join(f"{curves['ols']['mse'][k]:.3g}" for k in unbounded)
        text = [f"Task `{HE_TASK}`, {samples} prompts; the error is against the noisy label (noise floor "
                rf"$\sigma^2 = 0.1$ included). GD and debiased GD use the step $2 \omega \mu = {HE_LR:.4f}$; "
                r"the single head uses $\mu$ fitted at $L = 40$ at every length, as in the published table.",
                "", *rows, "",
                "Exact finite-$k$ Bayes risk (`iclreg.theory.bayes_risk`, no sampling) against the Monte "
                "Carlo error of the `bayes` estimator: claim bayes-exact.", "",
                rf"OLS's expected error is infinite at $k = d - 1, d, d + 1$ ($k$ = "
                f"{', '.join(map(str, unbounded))}; Monte Carlo means {spike}, which only say how heavy "
                "the tail is): the figure marks these points as clipped peaks at the top of its axis."]
        figure = Plot("error_curves", result["k"], clip_unbounded(curves, "ols", unbounded),
                      result["noise_floor"], r"He et al. setup: $d=5$, $\sigma^2=0.1$, $w \sim N(0, I/d)$")
        return Section("1. He et al. (arXiv 2503.12734): estimators at L = 10, 20, 40", text, [claim],
                       {"he_estimators.png": figure}, {"he": result, "exact_bayes_risk": exact})

    def _standard(self, samples: int) -> Section:
        task = build_task(GARG_TASK)
        result = compare(task, {s: build_estimator(s, task=task) for s in GARG_ESTIMATORS}, samples,
                         seed=2, device=self.device, progress=self.progress)
        curves = result["results"]
        claim = newton_claim(curves, task.n - 1)
        rows = [5, 10, 15, 19, 20, 21, 25, 30, 40]
        text = ["Newton-Schulz reaches least squares in a few steps; unnormalised GD with step size 0.01 "
                f"needs many more at $k$ near $d$. {samples} prompts.", "",
                markdown_table(result["k"], curves, rows)]
        figure = Plot("error_curves", result["k"], curves, None, "Standard setup: $d=20$, noiseless")
        return Section("2. Standard setup (Garg et al., arXiv 2208.01066): d = 20, n = 41, noiseless", text,
                       [claim], {"standard_estimators.png": figure}, {"standard": result})
