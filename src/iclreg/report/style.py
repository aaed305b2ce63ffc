"""One figure style for every plot of iclreg: readable on a page and in a paper.

A matplotlib rc context (:func:`style`) holds the fonts (tick labels 9 pt, never below 8 pt;
mathtext for formulas such as ``$\\sigma^2$``), line widths, the Okabe-Ito colour-blind-safe
palette (Okabe & Ito, "Color Universal Design", 2008) zipped with a cycle of markers and line
styles, so that lines lying on top of each other stay distinguishable in colour, marker and
dash, also in grey print. :func:`styled` applies it to a figure function: the rc must be active
while the figure's artists are created, and the figure is laid out once inside it so that the
ticks matplotlib creates lazily take the style too (``files.save_figure`` saves under it as well).

Sizes (inches, at ``DPI``): ``SINGLE`` for one panel, ``WIDE`` for a row of panels; about
900 and 1200 pixels wide, shown at most 1000 px wide on a page.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import matplotlib

matplotlib.use("Agg")

from cycler import cycler  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .palette import PALETTE  # noqa: E402 (Okabe-Ito; public here too)

MARKERS = ("o", "s", "^", "D", "P", "X", "h", "*")  # "v" is kept for values drawn as "exact"
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)), (0, (3, 1, 1, 1)))
# markers every tenth of the axes' diagonal, staggered per line so overlapping lines show both;
# not in the cycle (a markers-only series, ``plot(x, y, "o")``, must keep every point): figure
# functions pass ``markevery=MARKEVERY[i]`` for their i-th line
MARKEVERY = tuple((i * 0.1 / len(PALETTE), 0.1) for i in range(len(PALETTE)))
EXACT_MARKER = "v"
REFERENCE_COLOR = "0.35"  # reference lines (noise floor, published values, training length)
SINGLE = (6.4, 4.0)
WIDE = (9.0, 4.0)
DPI = 140
MIN_FONT_PT = 8.0

RC: dict[str, Any] = {
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 8.5,
    "figure.titlesize": 11.0,
    "mathtext.fontset": "dejavusans",
    "mathtext.default": "it",
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "axes.linewidth": 0.8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": (cycler(color=list(PALETTE)) + cycler(marker=list(MARKERS))
                        + cycler(linestyle=list(LINESTYLES))),
    "legend.framealpha": 0.85,
    "figure.figsize": SINGLE,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "image.cmap": "viridis",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The rc context of iclreg's figures: create (and save) figures inside it."""
    with matplotlib.rc_context(RC):
        yield


P = ParamSpec("P")
R = TypeVar("R")


def styled(build: Callable[P, R]) -> Callable[P, R]:
    """Decorate a function that builds figures: it runs under :func:`style`, and a
    :class:`Figure` it returns is laid out once inside the style (ticks are created lazily)."""

    @functools.wraps(build)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with style():
            out = build(*args, **kwargs)
            if isinstance(out, Figure):
                out.draw_without_rendering()
                # the layout is final: saving it (PNG, PDF, each drawn twice for the tight bounding
                # box) need not solve it again, which cost four fifths of a run's figure time
                out.set_layout_engine("none")
        return out

    return wrapper
