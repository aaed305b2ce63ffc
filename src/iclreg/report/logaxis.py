"""Log axes of the reports' figures (``report.figures``), which follow three rules.

Values at machine precision (at most ``EXACT_RELATIVE`` times the curves' scale, or zero: least
squares past k = d without noise, about 1e-14) are no data: they are drawn as "exact", hollow
triangles on a shaded floor below the data with a legend entry, never as a line falling to the
axis' edge. Spikes are kept (OLS's variance diverges at k = d): the top of the axis rises to
include a peak up to ``SPIKE_DECADES`` decades above the bulk of the curves; a higher peak is
clipped and marked, one label per run of neighbouring clipped points. A 95% band is drawn only
where its lower edge is positive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation  # noqa: E402

from .style import EXACT_MARKER  # noqa: E402

EXACT_RELATIVE = 1e-9  # "exact": at most this times the curves' scale (their 90th percentile)
SPIKE_DECADES = 3.0  # a peak up to this many decades above the bulk raises the top of the axis


@dataclass(frozen=True)
class LogFrame:
    """The y range of a log axis: values at most ``exact`` are drawn at ``floors[i]`` (one level
    per series holding such values), data from ``bottom`` up to ``top``; ``separator`` bounds the
    shaded "exact" region (None: no value is exact)."""

    exact: float
    bottom: float
    top: float
    separator: float | None
    floors: tuple[float, ...]


def log_frame(series: Sequence[Sequence[float]], extra: Iterable[float] = (),
              clip_spikes: bool = True) -> LogFrame:
    """The log-axis frame of ``series`` (each a list of values; ``extra``: reference lines)."""
    values = sorted(v for s in series for v in s if math.isfinite(v) and v > 0)
    scale = values[int(0.9 * (len(values) - 1))] if values else 1.0
    exact = 10.0 ** math.floor(math.log10(EXACT_RELATIVE * scale))
    data = [v for v in values if v > exact] or [scale]
    bulk = min(data[-1], 20 * data[int(0.9 * (len(data) - 1))])
    spiky = clip_spikes and data[-1] > bulk * 10**SPIKE_DECADES
    refs = [v for v in extra if v > 0]
    top, bottom = max([bulk if spiky else data[-1], *refs]) * 1.6, min(data + refs) / 2
    with_exact = sum(any(is_exact(v, exact) for v in s) for s in series)
    if not with_exact:
        return LogFrame(exact, bottom, top, None, ())
    floors = tuple(bottom / (2.2 * 1.5**i) for i in range(with_exact))
    return LogFrame(exact, floors[-1] / 1.8, top, bottom / 1.4, floors)


def is_exact(value: float, exact: float) -> bool:
    """At machine precision: |value| at most ``exact`` (a tiny negative is round-off too)."""
    return abs(value) <= exact


def _exact_label(frame: LogFrame) -> str:
    return rf"exact ($<10^{{{round(math.log10(frame.exact))}}}$)"


def plot_on_log(ax: Axes, xs: Sequence[float], ys: Sequence[float], frame: LogFrame, floor: int | None,
                **kwargs: Any) -> Line2D:
    """Plot one series on a log axis: values above ``frame.exact`` as a line, the exact ones as
    hollow triangles at ``frame.floors[floor]``, peaks above ``frame.top`` marked with their value."""
    shown = [v if v > frame.exact else math.nan for v in ys]
    if not any(math.isfinite(v) for v in shown):  # matplotlib's markevery fails on an empty path
        kwargs.pop("markevery", None)
    (line,) = ax.plot(xs, shown, **kwargs)
    exact = [x for x, v in zip(xs, ys, strict=True) if is_exact(v, frame.exact)]
    if exact and floor is not None:
        # every cycled property given: auxiliary artists must not advance the style cycle
        ax.plot(exact, [frame.floors[floor]] * len(exact), ls="none", marker=EXACT_MARKER, mfc="white",
                color=line.get_color(), ms=6, mew=1.2, markevery=1)
    _mark_peaks(ax, xs, ys, frame.top, line.get_color())
    return line


def _mark_peaks(ax: Axes, xs: Sequence[float], ys: Sequence[float], top: float, color: str) -> None:
    """Values above ``top`` (clipped): a triangle at the top per point and one label per run of
    neighbouring clipped points (``k = 1-3: up to 1.3e+24``), so labels never print on top of each
    other; a second series' labels sit lower (one text line per series already labelled)."""
    runs: list[list[int]] = []
    for i, v in enumerate(ys):
        if v > top:
            if runs and runs[-1][-1] == i - 1:
                runs[-1].append(i)
            else:
                runs.append([i])
    if not runs:
        return
    row = getattr(ax, "_iclreg_peak_rows", 0)
    ax._iclreg_peak_rows = row + 1  # type: ignore[attr-defined]
    ax.plot([xs[i] for r in runs for i in r], [top / 1.25] * sum(map(len, runs)), marker="^", ms=7,
            color=color, ls="none", markevery=1)
    for r in runs:
        peak = max(ys[i] for i in r)
        value = "infinite" if math.isinf(peak) else f"{peak:.2g}"  # an expected error without a mean
        text = f"peak {value}" + ("" if len(r) == 1 else f" (clipped at {xs[r[0]]:g}-{xs[r[-1]]:g})")
        ax.annotate(text, (xs[r[0]], top / 1.25), xytext=(5, -3 - 11 * row), textcoords="offset points",
                    fontsize=8, color=color, va="top")


class _DataTicks(LogFormatterSciNotation):
    """Log tick labels above ``below`` only: no value is read off the "exact" region."""

    def __init__(self, below: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.below = below

    def __call__(self, x: float, pos: int | None = None) -> str:
        return "" if x < self.below else super().__call__(x, pos)


def apply_log_frame(ax: Axes, frame: LogFrame) -> list[Any]:
    """Set the limits; shade the "exact" region and label it. Returns the legend handles to add."""
    ax.set_yscale("log")
    ax.set_ylim(frame.bottom, frame.top)
    if frame.separator is None:
        return []
    ax.axhspan(frame.bottom, frame.separator, color="0.92", lw=0, zorder=0)
    ax.axhline(frame.separator, color="0.6", lw=0.8, ls=":")
    ax.yaxis.set_major_formatter(_DataTicks(frame.separator))
    ax.yaxis.set_minor_formatter(_DataTicks(frame.separator, labelOnlyBase=False))
    ax.annotate("exact", (-0.01, math.sqrt(frame.bottom * frame.separator)), ha="right", va="center",
                xycoords=("axes fraction", "data"), fontsize=9, color="0.25")
    return [Line2D([], [], ls="none", marker=EXACT_MARKER, mfc="white", mec="0.2", ms=6,
                   label=_exact_label(frame))]


def _floor_index(values: Sequence[Sequence[float]], frame: LogFrame) -> list[int | None]:
    """Each series' level in ``frame.floors`` (None: no exact value)."""
    out, i = [], 0
    for s in values:
        has = any(is_exact(v, frame.exact) for v in s)
        out.append(i if has else None)
        i += has
    return out
