"""Figures of evaluation results, in the style of ``report.style``.

Log axes follow three rules. Values at machine precision (at most ``EXACT_RELATIVE`` times the
curves' scale, or zero: least squares past k = d without noise, about 1e-14) are no data: they
are drawn as "exact", hollow triangles on a shaded floor below the data with a legend entry,
never as a line falling to the axis' edge. Spikes are kept (OLS's variance diverges at k = d):
the top of the axis rises to include a peak up to ``SPIKE_DECADES`` decades above the bulk of
the curves; a higher peak is clipped and marked with its value. A 95% band is drawn only where
its lower edge is positive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation  # noqa: E402

from .style import EXACT_MARKER, MARKEVERY, REFERENCE_COLOR, SINGLE, styled  # noqa: E402

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
    for x, v in zip(xs, ys, strict=True):
        if v > frame.top:
            ax.plot([x], [frame.top / 1.25], marker="^", ms=7, color=line.get_color(), ls="none",
                    markevery=1)
            ax.annotate(f"peak {v:.2g}", (x, frame.top / 1.25), xytext=(5, -3), textcoords="offset points",
                        fontsize=8, color=line.get_color(), va="top")
    return line


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


def add_legend(ax: Axes, extra: Sequence[Any] = (), inside_up_to: int = 4) -> None:
    """The legend of ``ax`` with ``extra`` handles: inside the axes for a few entries, else to
    the right of them, where it hides no data."""
    handles, _ = ax.get_legend_handles_labels()
    handles = [*handles, *extra]
    if not handles:
        return
    if len(handles) <= inside_up_to:
        ax.legend(handles=handles)
    else:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _band(ax: Axes, k: Sequence[float], curve: Mapping[str, Any], color: str, frame: LogFrame | None) -> None:
    """The 95% band; on a log axis only where its lower edge and the mean are positive data."""
    low = [lo for lo, _ in curve["ci95"]]
    high = [hi for _, hi in curve["ci95"]]
    if frame is None:  # an error is never negative: the band stops at zero
        ax.fill_between(k, [max(lo, 0.0) for lo in low], high, color=color, alpha=0.2, lw=0)
        return
    where = [lo > 0 and m > frame.exact for lo, m in zip(low, curve["mse"], strict=True)]
    ax.fill_between(k, [lo if w else 1.0 for lo, w in zip(low, where, strict=True)], high, where=where,
                    color=color, alpha=0.2, lw=0)


@styled
def error_curves_figure(
    k: list[int],
    results: Mapping[str, Mapping[str, Any]],
    noise_floor: float | None = None,
    title: str = "",
    ylabel: str = "mean squared error",
    logy: bool = True,
    train_n: int | None = None,
) -> Figure:
    """Error against the number of examples k, one line per predictor with its 95% band.

    Args:
        k: the x axis.
        results: label -> {"mse": [...], "ci95": [[low, high], ...]} (``compare``'s shape).
        noise_floor: drawn as a dashed line when positive.
        train_n: the training prompt length; when k runs past it (length generalisation) a
            vertical line between k = n - 1, the last position trained, and k = n.
    """
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    curves = [c["mse"] for c in results.values()]
    frame = log_frame(curves, [noise_floor or 0]) if logy else None
    floors = _floor_index(curves, frame) if frame else [None] * len(curves)
    for i, ((label, curve), floor) in enumerate(zip(results.items(), floors, strict=True)):
        every = MARKEVERY[i % len(MARKEVERY)]
        if frame:
            line = plot_on_log(ax, k, curve["mse"], frame, floor, label=label, markevery=every)
        else:
            (line,) = ax.plot(k, curve["mse"], label=label, markevery=every)
        if "ci95" in curve:
            _band(ax, k, curve, line.get_color(), frame)
    if noise_floor:
        ax.axhline(noise_floor, color=REFERENCE_COLOR, ls="--", lw=1, label="noise floor")
    if train_n is not None and k and max(k) > train_n - 1:
        ax.axvline(train_n - 0.5, color=REFERENCE_COLOR, ls="-.", lw=1.2,
                   label=f"training length n = {train_n}")
    extra = apply_log_frame(ax, frame) if frame else []
    ax.set_xlabel("number of in-context examples $k$")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    add_legend(ax, extra)
    return fig


@styled
def loss_figure(steps: list[int], losses: list[float], title: str = "training loss") -> Figure:
    """Training loss against step, log scale."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, losses, marker="none")
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    return fig


@styled
def lines_figure(
    series: Mapping[str, tuple[list[float], list[float]]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    logy: bool = False,
    logx: bool = False,
    hlines: Mapping[str, float] | None = None,
    colors: Mapping[str, str] | None = None,
    styles: Mapping[str, str] | None = None,
    vlines: Mapping[str, float] | None = None,
) -> Figure:
    """One line per label from (x, y) lists; optional labelled horizontal reference lines,
    labelled vertical lines (``vlines``: label -> x, e.g. the training length), colours and
    line styles (``"--"``, ``":"``) per label. On a log y axis values at machine precision are
    drawn as "exact" (module docstring)."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    ys = [y for _, y in series.values()]
    frame = log_frame(ys, (hlines or {}).values(), clip_spikes=False) if logy else None
    floors = _floor_index(ys, frame) if frame else [None] * len(ys)
    for i, ((label, (xs, y)), floor) in enumerate(zip(series.items(), floors, strict=True)):
        kwargs = {k: v[label] for k, v in (("color", colors), ("ls", styles)) if v and label in v}
        kwargs["markevery"] = MARKEVERY[i % len(MARKEVERY)]
        if frame:
            plot_on_log(ax, xs, y, frame, floor, label=label, **kwargs)
        else:
            ax.plot(xs, y, label=label, **kwargs)
    for label, value in (hlines or {}).items():
        ax.axhline(value, ls="--", lw=1, color=REFERENCE_COLOR)
        ax.annotate(label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=8,
                    va="bottom", color="0.25")
    for label, value in (vlines or {}).items():
        ax.axvline(value, ls="-.", lw=1.2, color=REFERENCE_COLOR, label=label)
    extra = apply_log_frame(ax, frame) if frame else []
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(series) <= 16:
        add_legend(ax, extra)
    return fig


@styled
def bars_figure(labels: list[str], groups: Mapping[str, list[float]], ylabel: str, title: str = "",
                reference: float | None = 1.0) -> Figure:
    """Grouped bars: one group per label, one bar per entry of ``groups``; a dashed reference line.
    Labels are turned only when they would not fit side by side."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for i, (name, values) in enumerate(groups.items()):
        ax.bar([j + i * width for j in range(len(labels))], values, width, label=name)
    turn = sum(len(s) for s in labels) > 70
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20 if turn else 0,
                  ha="right" if turn else "center")
    ax.grid(axis="x", visible=False)
    if reference is not None:
        ax.axhline(reference, color=REFERENCE_COLOR, lw=1, ls="--")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend()
    return fig


HEADS_PER_ROW = 4


def token_names(p: int) -> list[str]:
    """Tick labels of the entries of a token z = (x, y) in R^p: $x_1$ .. $x_{p-1}$, $y$."""
    return [f"$x_{{{i + 1}}}$" for i in range(p - 1)] + ["$y$"]


@styled
def heads_figure(kq: Any, ov: Any, title: str = "", names: Sequence[str] | None = None) -> Figure:
    """Heat maps of each head's KQ matrix (rows: key entry, columns: query entry; the score of
    example z for query z_q is z^T KQ z_q) and, under it, its OV vector; at most
    ``HEADS_PER_ROW`` heads per row.

    Args:
        kq: (H, p, p) array-like; ov: (H, p) array-like.
        names: the p token entries (default x_1 .. x_{p-1}, y).
    """
    H, p = len(kq), len(kq[0])
    names = list(names or token_names(p))
    cols, rows = min(H, HEADS_PER_ROW), math.ceil(H / HEADS_PER_ROW)
    fig = Figure(figsize=(1.45 * cols + 1.1, 2.2 * rows + 0.6 + (0.3 if title else 0)), layout="constrained")
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[p, 1.2] * rows)
    kq_lim = max(float(abs(k).max()) for k in kq) or 1.0
    ov_lim = max(float(abs(o).max()) for o in ov) or 1.0
    kq_axes, ov_axes = [], []
    for h in range(H):
        r, c = divmod(h, cols)
        top, bottom = fig.add_subplot(grid[2 * r, c]), fig.add_subplot(grid[2 * r + 1, c])
        im = top.imshow(kq[h], cmap="RdBu_r", vmin=-kq_lim, vmax=kq_lim)
        ov_im = bottom.imshow([list(ov[h])], cmap="RdBu_r", vmin=-ov_lim, vmax=ov_lim)
        _label_head(top, bottom, h, names, first=c == 0)
        kq_axes.append(top)
        ov_axes.append(bottom)
    fig.colorbar(im, ax=kq_axes, shrink=0.6, label="KQ entry")
    fig.colorbar(ov_im, ax=ov_axes, location="bottom", shrink=0.5, aspect=40, label="OV entry")
    if title:
        fig.suptitle(title)
    return fig


def _label_head(kq_ax: Axes, ov_ax: Axes, h: int, names: Sequence[str], first: bool) -> None:
    """Ticks and labels of head ``h``'s KQ map (query index on top, key index at the left of the
    first column) and OV strip (the entries below)."""
    p = len(names)
    kq_ax.set_title(f"head {h + 1}: KQ", fontsize=10)
    kq_ax.xaxis.tick_top()
    kq_ax.xaxis.set_label_position("top")
    kq_ax.set_xlabel("query index", fontsize=8.5)
    kq_ax.set_yticks(range(p), names)
    if first:
        kq_ax.set_ylabel("key index")
    ov_ax.set_yticks([0], ["OV"])
    for ax in (kq_ax, ov_ax):
        ax.set_xticks(range(p), names)
        ax.grid(False)
        ax.spines[:].set_visible(True)
        ax.tick_params(length=2, pad=1.5)


@styled
def similarity_figure(similarity: Any, steps: list[int], title: str, floor: float | None = None) -> Figure:
    """Heat map of layer x algorithm-step similarity with each layer's best step marked.

    Up to 40 steps get one column each (at most 14 labelled, upright); a longer sweep (every
    GD step 1..1300) is drawn on a logarithmic step axis.

    Args:
        similarity: (layers, steps) array-like.
    """
    import numpy as np

    sim = np.asarray(similarity)
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    best = sim.argmax(1)
    if len(steps) <= 40:
        im = ax.imshow(sim, aspect="auto", cmap="viridis", origin="lower")
        ax.scatter(best, range(len(best)), marker="x", color="#D55E00", s=30, label="best step")
        every = math.ceil(len(steps) / 14)
        ax.set_xticks(range(0, len(steps), every), [str(s) for s in steps[::every]])
    else:
        x = np.asarray(steps, float)
        edges = np.concatenate([[x[0] / 1.5], np.sqrt(x[1:] * x[:-1]), [x[-1] * 1.2]])
        rows = np.arange(len(sim) + 1) - 0.5
        im = ax.pcolormesh(edges, rows, sim, cmap="viridis", shading="flat")
        ax.scatter(x[best], range(len(best)), marker="x", color="#D55E00", s=30, label="best step")
        ax.set_xscale("log", base=2)
    ax.set_yticks(range(len(sim)))
    ax.grid(False)
    ax.set_xlabel("algorithm step")
    ax.set_ylabel("layer")
    suffix = f" (zero-predictor floor {floor:.3f})" if floor is not None else ""
    ax.set_title(title + suffix)
    fig.colorbar(im, ax=ax, label="mean residual cosine")
    ax.legend(loc="upper left")
    return fig


def probe_figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of ``iclreg probe``: per-layer probe error (suffix ""), and the layer x step
    similarity to Newton ("_newton") and GD ("_gd")."""
    series = {f"layer {i}": (result["k"], m) for i, m in enumerate(result["probe_mse"])}
    series["least squares"] = (result["k"], result["ols_mse"])
    return {"": lines_figure(series, "number of examples $k$", "probe MSE", "per-layer read-out", logy=True),
            "_newton": similarity_figure(result["newton"]["similarity"], result["newton"]["steps"],
                                         "layers vs Newton steps", result["floor"]),
            "_gd": similarity_figure(result["gd"]["similarity"], result["gd"]["steps"], "layers vs GD steps")}


__all__ = ["bars_figure", "error_curves_figure", "heads_figure", "lines_figure", "loss_figure",
           "probe_figures", "similarity_figure"]
