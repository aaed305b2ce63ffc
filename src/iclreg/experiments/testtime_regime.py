"""Section 2b of the test-time reproduction: where averaging noisy decodes helps, and where not.

The N-average of multiplicative-noise decodes tends to ridge-GD with lambda = sigma^2, so it
beats greedy decoding (GD-T) where ridge-GD's exact risk is below GD-T's
(:mod:`iclreg.theory.regimes`): the map of that sign over (label noise, sigma) at claim 2's
design and T, and over (T, sigma) at claim 3's, with measured points on both sides.
Chen, Lu, Wu, Zou (arXiv 2508.07571); the theory is ours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..report.plots import Plot
from ..testtime import GDDecoder
from ..theory import regimes
from . import testtime_claims as build
from . import testtime_measure as measure
from .base import Section
from .testtime_sections import public

if TYPE_CHECKING:
    from .testtime import Sizes, TestTime

GRID = 41  # points per axis of the regime maps


def advantage_map(eigs: torch.Tensor, steps: list[int], eta: float, sigmas: np.ndarray, tau: float,
                  noises: list[float]) -> np.ndarray:
    """Mean over designs of the exact advantage A (len(sigmas), len(steps) * len(noises))."""
    return np.array([[regimes.averaging_advantage(eigs, t, eta, float(g), tau, sy).mean().item()
                      for t in steps for sy in noises] for g in sigmas])


def points(exp: TestTime, s: Sizes, sigma: float, shuffle: bool = False) -> dict[str, measure.Measurements]:
    """Measured points: claim 2's setting at sigma and at the largest sigma of claim 6, claim 3's
    at its largest T; ``shuffle``: the theory of each prompt with another's w* (a negative control)."""
    out = {}
    for key, setting, steps, g, seed in (("A", s.avg, s.steps, sigma, 11),
                                         ("A'", s.avg, s.steps, max(s.sigmas), 12),
                                         ("B", s.over, max(s.thoughts), sigma, 13)):
        x, y, w = exp.prompts(setting, s.prompts, seed=seed)
        out[f"{key}: n={setting.n}, T={steps}, sigma={g}"] = measure.average_vs_greedy(
            GDDecoder(lr=setting.eta), x, y, w, steps, g, min(max(s.samples), 64), exp.gen(seed), shuffle)
    return out


def maps(exp: TestTime, s: Sizes) -> dict[str, list]:
    """The exact advantage over (sigma, label noise) at claim 2's design and T, and over
    (sigma, T) at claim 3's design and label noise."""
    a, o = s.avg, s.over
    sigmas = np.linspace(0.05, max(s.sigmas) * 1.2, GRID)
    noises = np.linspace(0.0, 1.5, GRID).tolist()
    ts = sorted({int(t) for t in np.geomspace(max(1, min(s.thoughts) // 4), 2 * max(s.thoughts), GRID)})
    eigs_a = regimes.spectrum(exp.prompts(a, s.prompts, seed=11)[0])
    eigs_o = regimes.spectrum(exp.prompts(o, s.prompts, seed=13)[0])
    return {"sigma": sigmas.tolist(), "label noise": noises, "T": ts,
            "A by label noise": advantage_map(eigs_a, [s.steps], a.eta, sigmas, a.tau, noises).tolist(),
            "A by T": advantage_map(eigs_o, ts, o.eta, sigmas, o.tau, [o.noise]).tolist()}


def section(exp: TestTime, s: Sizes, sigma: float) -> Section:
    """Claim 2b with its maps."""
    pts, data = points(exp, s, sigma), maps(exp, s)
    text = [r"Exact advantage $A = R_{\mathrm{GD}}(T) - R_{\mathrm{ridge}}(\sigma^2, T)$ "
            f"(`iclreg.theory.regimes`), averaged over the {s.prompts} prompts' designs: green where the "
            "large-$N$ average beats greedy, red where it does not; black line: the boundary $A = 0$; stars: "
            f"the measured points (the $N$-average of {min(max(s.samples), 64)} GD decodes, paired with "
            "greedy on the same prompts). Averaging helps when the label noise is large against the prior "
            r"and GD runs long enough to fit it, with $\sigma$ below a limit that grows with both; with "
            "little noise or few steps the shrinkage only adds bias."]
    return Section("2b. Where averaging helps", text, [build.where_averaging_helps(pts)],
                   {"regimes.png": _figure(data, s, sigma)}, {**data, "points": public(pts)})


def _figure(data: dict[str, list], s: Sizes, sigma: float) -> Plot:
    """The two maps with the measured points (``report.figures_decoders.regime_maps_figure``)."""
    stars = ([(s.avg.noise, sigma), (s.avg.noise, max(s.sigmas))], [(max(s.thoughts), sigma)])
    return Plot("regime_maps", data, stars, (f"claim 2's design, T = {s.steps}: green = averaging helps",
                                             f"claim 3's design, $s_y$ = {s.over.noise}"))
