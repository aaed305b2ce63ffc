"""Figures of attention heads and their training: the loss curves of many seeds grouped by H
(``learning_curves``), per-head KQ/OV blocks over several H (``head_blocks``) and a grid of
matrices on one colour scale (``matrix_grid``). Each takes measurements and returns a figure;
He et al. (arXiv 2503.12734) draws all three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .figures import REFERENCE_STYLES, add_legend, token_names
from .style import LINESTYLES, PALETTE, REFERENCE_COLOR, WIDE, styled


@styled
def learning_curves_figure(curves: Mapping[int, Sequence[tuple[Sequence[int], Sequence[float]]]],
                       references: Mapping[str, float], title: str = "loss curves") -> Figure:
    """Training loss against step on a log axis: one colour and dash per H, its seeds drawn alike
    (one legend entry per H), and labelled horizontal reference lines, named in the legend so that
    no curve covers their labels.

    Args:
        curves: H -> one (steps, losses) pair per seed.
        references: label -> value of a horizontal line (published losses).
    """
    # wide: the legend (one entry per H and per reference line) sits beside a full-size axes
    fig = Figure(figsize=WIDE, layout="constrained")
    ax = fig.subplots()
    for i, (heads, runs) in enumerate(curves.items()):
        for j, (steps, losses) in enumerate(runs):
            seeds = f" ({len(runs)} seeds)" if len(runs) > 1 else ""
            ax.plot(steps, losses, color=PALETTE[i % len(PALETTE)], ls=LINESTYLES[i % len(LINESTYLES)],
                    marker="none", lw=1.2, alpha=0.85, label=f"$H = {heads}${seeds}" if j == 0 else "_seed")
    for k, (label, value) in enumerate(references.items()):
        ax.axhline(value, color=REFERENCE_COLOR, lw=1.2, ls=REFERENCE_STYLES[k % len(REFERENCE_STYLES)],
                   label=label, zorder=1)
    ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="training loss (query)", title=title)
    add_legend(ax)
    return fig


def _label_axes(kq_ax: Any, ov_ax: Any, d: int, outputs: int, first: bool) -> None:
    """Tick labels: x_1..x_d on the KQ x-block (rows: key, columns: query), the token entries
    x_1..x_d, y_1..y_K under the OV map, its outputs at the left of the first column."""
    xs = token_names(d + 1)[:-1]
    entries = xs + [f"$y_{{{k + 1}}}$" for k in range(outputs)]
    kq_ax.set_xticks(range(d), xs)
    kq_ax.set_yticks(range(d), xs if first else [])
    ov_ax.set_xticks(range(d + outputs), entries)
    ov_ax.set_yticks(range(outputs), [f"out {k + 1}" for k in range(outputs)] if first else [])
    for ax in (kq_ax, ov_ax):
        ax.grid(False)
        ax.spines[:].set_visible(True)
        ax.tick_params(length=2, pad=1.5, labelsize=8)


@styled
def head_blocks_figure(best: Mapping[int, tuple[int, Any, Any, Sequence[str]]], d: int) -> Figure:
    """Per H (one row each, heads from the left; no empty axes): each head's KQ x-block (d x d)
    over its OV map (K outputs x d + K token entries) of the best seed, titled with the head's
    role; one colour scale per kind, each with its colour bar.

    Args:
        best: H -> (seed, kq (H, d, d), ov (H, K, d + K), roles), array-likes.
    """
    rows = sorted(best)
    cols = max(rows)
    outputs = len(best[rows[0]][2][0])
    fig = Figure(figsize=(1.7 * cols + 1.6, 2.6 * len(rows) + 1.4), layout="constrained")
    grid = fig.add_gridspec(2 * len(rows), cols, height_ratios=[d, outputs + 0.8] * len(rows))
    kq_lim = max(float(abs(best[h][1]).max()) for h in rows) or 1.0
    ov_lim = max(float(abs(best[h][2]).max()) for h in rows) or 1.0
    kq_axes, ov_axes, kq_im, ov_im = [], [], None, None
    for i, h in enumerate(rows):
        seed, kq, ov, roles = best[h]
        for j in range(h):
            top, bottom = fig.add_subplot(grid[2 * i, j]), fig.add_subplot(grid[2 * i + 1, j])
            kq_im = top.imshow(kq[j], cmap="RdBu_r", vmin=-kq_lim, vmax=kq_lim)
            ov_im = bottom.imshow(ov[j], cmap="RdBu_r", vmin=-ov_lim, vmax=ov_lim, aspect="auto")
            top.set_title(f"head {j + 1}: {roles[j]}", fontsize=9)
            _label_axes(top, bottom, d, outputs, first=j == 0)
            if j == 0:
                top.set_ylabel(f"$H = {h}$ (seed {seed})")
            kq_axes.append(top)
            ov_axes.append(bottom)
    fig.colorbar(kq_im, ax=kq_axes, shrink=0.6, label="KQ entry ($x$-block)")
    fig.colorbar(ov_im, ax=ov_axes, location="bottom", shrink=0.5, aspect=40, label="OV entry")
    fig.suptitle("multi-task heads (best seed per $H$): KQ $x$-block and OV map\n"
                 "(outputs by token entries; the last columns are the label slots)")
    return fig


@styled
def matrix_grid_figure(rows: Mapping[str, Sequence[Any]], titles: Sequence[str], suptitle: str) -> Figure:
    """Heat maps of square matrices, one row per label of ``rows`` and one column per entry of
    ``titles``, each row on one symmetric colour scale, ticks x_1..x_d, one colour bar."""
    fig = Figure(figsize=(7.0, 2.4 * len(rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    im = None
    for row, (label, mats) in enumerate(rows.items()):
        mats = [np.asarray(m) for m in mats]
        lim = max(float(abs(m).max()) for m in mats)
        names = token_names(len(mats[0]) + 1)[:-1]  # x_1 .. x_d
        for col, (mat, title) in enumerate(zip(mats, titles, strict=True)):
            ax = axes[row, col]
            im = ax.imshow(mat, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.set_title(title)
            ax.set_xticks(range(len(names)), names)
            ax.set_yticks(range(len(names)), names)
            ax.grid(False)
            ax.spines[:].set_visible(True)
        axes[row, 0].set_ylabel(label)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    fig.suptitle(suptitle)
    return fig


__all__ = ["learning_curves_figure", "matrix_grid_figure", "head_blocks_figure"]
