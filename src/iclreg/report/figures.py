"""Figures of evaluation results, in the style of ``report.style``.

Log axes (``report.logaxis``): values at machine precision drawn as "exact", spikes clipped and
labelled, 95% bands only where their lower edge is positive. Titles and legends show no raw SPEC
(``report.labels``); axes that count (k, N, steps) have integer ticks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .labels import readable, set_title  # noqa: E402
from .logaxis import (  # noqa: E402, F401 (EXACT_RELATIVE, log_frame: public here too)
    EXACT_RELATIVE,
    LogFrame,
    _floor_index,
    apply_log_frame,
    log_frame,
    plot_on_log,
)
from .plots import coincide  # noqa: E402
from .style import MARKEVERY, REFERENCE_COLOR, SINGLE, WIDE, styled  # noqa: E402

REFERENCE_STYLES = ("--", ":", (0, (6, 2, 1, 2)), (0, (1, 1)))  # labelled horizontal lines; "-." marks vlines


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
        fig = ax.get_figure()
        if fig is not None and len(fig.axes) == 1:  # a one-panel figure widens for it: the axes
            fig.set_figwidth(max(fig.get_figwidth(), WIDE[0]))  # keep their width beside it


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
            line = plot_on_log(ax, k, curve["mse"], frame, floor, label=readable(label), markevery=every)
        else:
            (line,) = ax.plot(k, curve["mse"], label=readable(label), markevery=every)
        if "ci95" in curve:
            _band(ax, k, curve, line.get_color(), frame)
    if noise_floor:
        ax.axhline(noise_floor, color=REFERENCE_COLOR, ls="--", lw=1, label="noise floor")
    if train_n is not None and k and max(k) > train_n - 1:
        ax.axvline(train_n - 0.5, color=REFERENCE_COLOR, ls="-.", lw=1.2,
                   label=f"training length n = {train_n}")
    extra = apply_log_frame(ax, frame) if frame else []
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # k counts examples: no tick at 2.5
    ax.set_xlabel("number of in-context examples $k$")
    ax.set_ylabel(ylabel)
    set_title(ax, title)
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
    bands: Mapping[str, Sequence[Sequence[float]]] | None = None,
    integer_x: bool = False,
) -> Figure:
    """One line per label from (x, y) lists; optional labelled horizontal reference lines
    (``hlines``: label -> y, named in the legend with one dash each, where no curve covers the
    label), labelled vertical lines (``vlines``: label -> x, e.g. the training length), colours and
    line styles (``"--"``, ``":"``) per label, 95% bands (``bands``: label -> [low, high] per x;
    the axis includes them, so a zoomed axis never hides how wide they are) and integer ticks
    (``integer_x``: x counts examples, steps or layers). On a log y axis values at machine
    precision are drawn as "exact" (module docstring). A series that a later one coincides with
    (within 2% at every x) is drawn thick, with hollow markers, underneath it, so both show."""
    fig = Figure(figsize=SINGLE, layout="constrained")
    ax = fig.subplots()
    ys = [y for _, y in series.values()]
    frame = log_frame(ys, (hlines or {}).values(), clip_spikes=False) if logy else None
    floors = _floor_index(ys, frame) if frame else [None] * len(ys)
    pairs = list(series.values())  # a series that a later one coincides with (within 2% at every x)
    under = {i for i, (xa, ya) in enumerate(pairs) for xb, yb in pairs[i + 1:]
             if list(xa) == list(xb) and coincide(ya, yb)}
    for i, ((label, (xs, y)), floor) in enumerate(zip(series.items(), floors, strict=True)):
        kwargs = {k: v[label] for k, v in (("color", colors), ("ls", styles)) if v and label in v}
        kwargs["markevery"] = MARKEVERY[i % len(MARKEVERY)]
        if i in under:  # thick, hollow and underneath: it shows around the one drawn on top of it
            kwargs.update(lw=3.6, ms=8, mfc="none", mew=1.4, zorder=1.9)
        if frame:
            line = plot_on_log(ax, xs, y, frame, floor, label=readable(label), **kwargs)
        else:
            (line,) = ax.plot(xs, y, label=readable(label), **kwargs)
        if bands and label in bands:
            _band(ax, xs, {"mse": y, "ci95": bands[label]}, line.get_color(), frame)
    for j, (label, value) in enumerate((hlines or {}).items()):  # named in the legend: no curve hides it
        ax.axhline(value, ls=REFERENCE_STYLES[j % len(REFERENCE_STYLES)], lw=1.2, color=REFERENCE_COLOR,
                   label=label, zorder=1.5)
    for label, value in (vlines or {}).items():
        ax.axvline(value, ls="-.", lw=1.2, color=REFERENCE_COLOR, label=label)
    extra = apply_log_frame(ax, frame) if frame else []
    if logx:
        ax.set_xscale("log")
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    set_title(ax, title)
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
    bar = fig.colorbar(im, ax=ax, label="mean residual cosine")
    if floor is not None:  # the zero predictor's similarity: values below it mean nothing
        bar.ax.axhline(floor, color="#D55E00", lw=2)
        bar.ax.annotate("floor", (0, floor), xytext=(-3, 0), textcoords="offset points", ha="right",
                        va="center", fontsize=8, color="#D55E00", annotation_clip=False)
    ax.legend(loc="upper left")
    return fig


def probe_figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of ``iclreg probe``: per-layer probe error (suffix ""), and the layer x step
    similarity to Newton ("_newton") and GD ("_gd")."""
    series = {f"layer {i}": (result["k"], m) for i, m in enumerate(result["probe_mse"])}
    series["least squares"] = (result["k"], result["ols_mse"])
    return {"": lines_figure(series, "number of examples $k$", "probe MSE", "per-layer read-out", logy=True,
                             integer_x=True),
            "_newton": similarity_figure(result["newton"]["similarity"], result["newton"]["steps"],
                                         "layers vs Newton steps", result["floor"]),
            "_gd": similarity_figure(result["gd"]["similarity"], result["gd"]["steps"], "layers vs GD steps")}


__all__ = ["REFERENCE_STYLES", "bars_figure", "error_curves_figure", "heads_figure", "lines_figure",
           "loss_figure", "probe_figures", "similarity_figure"]
