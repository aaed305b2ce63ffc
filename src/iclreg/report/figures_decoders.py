"""Figures of decoders against N or T (the test-time reproduction, Chen, Lu, Wu, Zou, arXiv
2508.07571): both decoders, exact GD and the trained chain-of-thought transformer, on one axis,
and the maps of where averaging helps.

Where the trained model has learned GD the two decoders' curves lie on top of each other, so
each decoder has its own look (:data:`LOOKS`): GD thick, hollow and underneath, the trained model
thin, with another colour, marker and dash, drawn over it; where they coincide both stay
visible. Each function takes the measurements of ``experiments.testtime_measure`` and returns a
figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .figures import add_legend
from .style import PALETTE, SINGLE, WIDE, styled

LineStyle = str | tuple[int, tuple[int, ...]]  # a matplotlib line style: a name or (offset, dashes)


@dataclass(frozen=True)
class Look:
    """How one decoder's series are drawn: colour, markers (measured, theory), line styles
    (measured, theory, greedy: within a decoder they tell the series apart), marker size, line
    width, whether the markers are hollow, and the drawing order (higher on top)."""

    color: str
    marker: str
    theory_marker: str
    line: LineStyle
    theory_line: LineStyle
    greedy_line: LineStyle
    size: float
    width: float
    hollow: bool
    z: float

    def kwargs(self, marker: str, line: LineStyle) -> dict[str, Any]:
        """matplotlib keywords of one series of this decoder."""
        face = "none" if self.hollow else self.color
        return {"color": self.color, "marker": marker, "ls": line, "ms": self.size, "lw": self.width,
                "mfc": face, "mew": 1.6 if self.hollow else 1.2, "zorder": self.z}


LOOKS = {  # GD underneath (thick, hollow, large), the trained model thin on top of it
    "GD": Look(PALETTE[0], "o", "s", "-", "--", ":", 9.0, 3.2, True, 2.0),
    "trained CoT": Look(PALETTE[1], "x", "+", (0, (6, 2)), (0, (2, 2)), (0, (1, 3)), 6.0, 1.3, False, 3.0),
}


def _look(label: str) -> Look:
    return LOOKS.get(label, LOOKS["trained CoT"])


def _log_n_axis(ax: Axes, ylabel: str, title: str) -> None:
    ax.set(xlabel="$N$", ylabel=ylabel, title=title)
    add_legend(ax, inside_up_to=6)


@styled
def averaging_figure(res: Mapping[str, Mapping[str, Any]], samples: Sequence[int]) -> Figure:
    """Claim 2: the excess of the N-average over the mean trajectory against N, measured (points)
    and the exact V_T / N (lines), per decoder. ``res``: decoder label -> ``measure.averaging``."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    for label, r in res.items():
        look = _look(label)
        ax.loglog(samples, [v[0] for v in r["excess"].values()], label=f"{label} (measured)",
                  **look.kwargs(look.marker, "none"))
        ax.loglog(samples, list(r["theory"].values()), label=f"{label} $V_T/N$ (exact)",
                  **look.kwargs("none", look.line))
    _log_n_axis(ax, r"$E\,\|\mathrm{avg}_N - m_T\|^2$", "Averaging noisy decodes")
    return fig


@styled
def thoughts_figure(res: Mapping[str, Mapping[str, Any]], ts: Sequence[int], exact: Sequence[float],
                    ridge: Sequence[float], n_avg: int) -> Figure:
    """Claim 3: greedy and N-average errors against T per decoder, with exact GD and ridge-GD."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    ax.semilogx(ts, exact, color="0.35", ls="-", lw=1.2, marker="none", label="GD (exact)", zorder=1)
    ax.semilogx(ts, ridge, color="0.35", ls="--", lw=1.2, marker="none", label="ridge-GD (exact)", zorder=1)
    for label, r in res.items():
        look = _look(label)
        ax.semilogx(ts, r["greedy"], label=f"{label} greedy", **look.kwargs(look.marker, "none"))
        ax.semilogx(ts, r["noisy"], label=f"{label} {n_avg}-average",
                    **look.kwargs(look.theory_marker, "none"))
    ax.set(xlabel="$T$", ylabel=r"$E\,\|w_T - w^*\|^2$", title="More thoughts under label noise")
    add_legend(ax, inside_up_to=6)
    return fig


@styled
def vote_figure(res: Mapping[str, Mapping[str, Any]], ns: Sequence[int]) -> Figure:
    """Claim 5: majority-vote recovery against N, the exact vote rate at the same N (on the first
    ``theory prompts`` prompts) and greedy top-k, per decoder. ``res``: label -> ``measure.votes``."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    for label, r in res.items():
        look = _look(label)
        ax.semilogx(ns, r["vote"], label=f"{label} vote", **look.kwargs(look.marker, look.line))
        ax.semilogx(list(r["theory"]), list(r["theory"].values()), label=f"{label} exact rate",
                    **look.kwargs(look.theory_marker, look.theory_line))
        ax.axhline(r["greedy"], label=f"{label} greedy top-k", **look.kwargs("none", look.greedy_line))
    _log_n_axis(ax, "exact support recovery", "Binary coefficients")
    return fig


@styled
def regime_maps_figure(data: Mapping[str, Any], stars: Sequence[Sequence[tuple[float, float]]],
                       titles: Sequence[str]) -> Figure:
    """Two maps of the exact advantage A of averaging (left: by label noise, right: by T, log x):
    green where averaging helps, red where not, the boundary A = 0 and the measured points
    (``stars``: (x, sigma) per map). ``data``: ``testtime_regime.maps``."""
    fig = Figure(figsize=WIDE, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, xs, key, xlabel, points in ((axes[0], data["label noise"], "A by label noise",
                                         "label-noise std $s_y$", stars[0]),
                                        (axes[1], data["T"], "A by T", "$T$", stars[1])):
        grid = np.array(data[key])
        ax.contourf(xs, data["sigma"], np.sign(grid), levels=[-1.5, 0, 1.5], colors=["C3", "C2"], alpha=0.3)
        if grid.min() < 0 < grid.max():
            ax.contour(xs, data["sigma"], grid, levels=[0.0], colors="k")
        ax.plot(*zip(*points, strict=True), "k*", ms=10)
        ax.set(xlabel=xlabel, ylabel=r"noise std $\sigma$")
    axes[0].set_title(titles[0])
    axes[1].set(xscale="log", title=titles[1])
    return fig


__all__ = ["LOOKS", "Look", "averaging_figure", "regime_maps_figure", "thoughts_figure", "vote_figure"]
