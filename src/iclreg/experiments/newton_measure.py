"""The measurements of Fu et al.'s reproduction (``iclreg reproduce newton``, arXiv 2310.17086):
arrays and numbers, no claims and no text.

Errors are divided by $d$ (Fu et al.'s normalisation): error/d at the last position ``n - 1``.
The depth measurements read the layers as Newton iterations: layer $l$ is worth $k(l)$ Newton
steps, the fewest whose error is at most the layer's probe error; the best-matching Newton step
grows linearly with depth (the slope over the active layers) and the best GD step exponentially
(the growth factor per layer, of the steps and of their increments).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..analysis import error_curves
from ..analysis.fit import growth_factor, loglog_slope, slope
from ..estimators import build as build_estimator
from ..report.plots import COINCIDE, coincide
from ..tasks import build as build_task
from .base import Runs

if TYPE_CHECKING:
    from .newton import Sizes


def active_layers(best_newton: list[int]) -> list[int]:
    """The layers that compute something: from the first whose best Newton step exceeds 1 to the
    last (only the last layer when none does)."""
    active = [i for i, s in enumerate(best_newton) if s > 1]
    return list(range(active[0] if active else len(best_newton) - 1, len(best_newton)))


def newton_equivalent(layer_err: list[float], steps: list[int], newton_err: list[float]) -> list[int | None]:
    """For each layer, the fewest Newton iterations (of ``steps``) whose error is at most the
    layer's probe error; None when no iteration of ``steps`` is that accurate."""
    return [next((s for s, e in zip(steps, newton_err, strict=True) if e <= err), None) for err in layer_err]


def coinciding_layers(curves: list[list[float]], tol: float = COINCIDE) -> list[tuple[int, int]]:
    """Pairs (l, l + 1) of neighbouring layers whose curves (one value per k) agree within ``tol``
    relative at every k: drawn alike, the upper one would hide the lower."""
    return [(i, i + 1) for i in range(len(curves) - 1) if coincide(curves[i], curves[i + 1], tol)]


def learning_errors(runs: Runs, task: str, sizes: Sizes, device: str) -> dict[str, list[float]]:
    """Error/d by k (0 .. n - 1) of the transformer, the LSTM, least squares and 3 Newton steps, on
    ``sizes.samples`` prompts of ``task`` (seed 21)."""
    curves = error_curves(build_task(task),
                          {"transformer": runs.model("gpt2"), "LSTM": runs.model("lstm"),
                           "least squares": build_estimator("ols"),
                           "newton:steps=3": build_estimator("newton:steps=3")},
                          sizes.samples, seed=21, device=device, dtype=torch.float32)
    return {name: [v / sizes.d for v in c["mse"]] for name, c in curves.items()}


def training_series(runs: Runs, sizes: Sizes) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (steps, error/d at the last k) from each run's periodic evaluations."""
    last, series = sizes.n - 1, {}
    for label, name in (("transformer", "gpt2"), ("LSTM", "lstm")):
        evals = runs.metrics(name, "eval")
        series[label] = ([r["step"] for r in evals], [r["eval"]["model"][last] / sizes.d for r in evals])
    return series


def second_half_rate(steps: list[int], errs: list[float]) -> float:
    """The log-log slope of the error against the step over the second half of training."""
    half = [(s, e) for s, e in zip(steps, errs, strict=True) if s >= steps[-1] / 2]
    return loglog_slope([s for s, _ in half], [e for _, e in half])


def last_errors(probes: dict, sizes: Sizes) -> list[float]:
    """Each layer's probe error/d at the last k."""
    return [m[sizes.n - 1] / sizes.d for m in probes["probe_mse"]]


@dataclass(frozen=True)
class Depth:
    """How the layers grow as algorithm steps: over the active layers ``layers``, the slope of the
    best Newton step, the growth factor of the best GD step and of its increments (0 when they do
    not all grow); each layer's error/d at the last k and the Newton iterations it is worth."""

    layers: list[int]
    newton_slope: float
    gd_factor: float
    gd_acceleration: float
    layer_err: list[float]
    steps: list[int]  # the Newton iterations of the probe
    newton_err: list[float]  # their error/d at the last k
    matched: list[int | None]


def depth(probes: dict, sizes: Sizes) -> Depth:
    """The depth measurements of a ``probe_model`` result at ``sizes``."""
    best_newton, best_gd = probes["newton"]["best"], probes["gd"]["best"]
    layers = active_layers(best_newton)  # a fit over fewer than 2 layers is 0: a miss
    # exponential growth multiplies the increments too; linear growth (Newton's) keeps them constant
    increments = [best_gd[i] - best_gd[i - 1] for i in layers[1:]]
    d, last = sizes.d, sizes.n - 1
    layer_err = last_errors(probes, sizes)
    steps, newton_err = probes["newton"]["steps"], [m[last] / d for m in probes["newton"]["mse"]]
    return Depth(layers, slope(layers, [best_newton[i] for i in layers]),
                 growth_factor(layers, [best_gd[i] for i in layers]),
                 growth_factor(layers[1:], increments) if min(increments, default=0) > 0 else 0.0,
                 layer_err, steps, newton_err, newton_equivalent(layer_err, steps, newton_err))


def gd_slowdown(isotropic: dict, ill: dict) -> tuple[int, float]:
    """On ill-conditioned prompts: the largest shift of the best Newton step over the layers, and
    the sum over layers of log2 of the best GD step, ill-conditioned minus isotropic."""
    shift = max(abs(a - b) for a, b in zip(isotropic["newton"]["best"], ill["newton"]["best"], strict=True))
    gd_well = sum(math.log2(s) for s in isotropic["gd"]["best"])
    gd_ill = sum(math.log2(s) for s in ill["gd"]["best"])
    return shift, gd_ill - gd_well
