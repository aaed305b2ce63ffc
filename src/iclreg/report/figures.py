"""Figures of evaluation results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402


def error_curves_figure(
    k: list[int],
    results: Mapping[str, Mapping[str, Any]],
    noise_floor: float | None = None,
    title: str = "",
    ylabel: str = "mean squared error",
    logy: bool = True,
) -> Figure:
    """Error against the number of examples k, one line per predictor with its 95% band.

    Args:
        k: the x axis.
        results: label -> {"mse": [...], "ci95": [[low, high], ...]} (``compare``'s shape).
        noise_floor: drawn as a dashed line when positive.
    """
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    bottom = None
    finite = sorted(v for c in results.values() for v in c["mse"] if v > 0)
    if logy and finite:
        # OLS's variance diverges at k = d and its noiseless error falls to round-off:
        # show six decades below the bulk of the curves.
        top = min(finite[-1], 20 * finite[int(0.9 * (len(finite) - 1))]) * 1.5
        bottom = max(min(finite + ([noise_floor] if noise_floor else [])) / 2, top * 1e-6)
        ax.set_yscale("log")
        ax.set_ylim(bottom, top)
    for label, curve in results.items():
        mse = curve["mse"]
        (line,) = ax.plot(k, [max(v, bottom) for v in mse] if bottom else mse, label=label, lw=1.6)
        if "ci95" in curve:
            low = [max(lo, bottom) if bottom else lo for lo, _ in curve["ci95"]]
            high = [max(hi, bottom) if bottom else hi for _, hi in curve["ci95"]]
            ax.fill_between(k, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if noise_floor:
        ax.axhline(noise_floor, color="0.3", ls="--", lw=1, label="noise floor")
    ax.set_xlabel("number of in-context examples k")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def loss_figure(steps: list[int], losses: list[float], title: str = "training loss") -> Figure:
    """Training loss against step, log scale."""
    fig = Figure(figsize=(6, 3.8))
    ax = fig.subplots()
    ax.plot(steps, losses, lw=1.4)
    if losses and min(losses) > 0:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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
) -> Figure:
    """One line per label from (x, y) lists; optional labelled horizontal reference lines,
    colours and line styles (``"--"``, ``":"``) per label."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, label=label, lw=1.4, color=(colors or {}).get(label),
                ls=(styles or {}).get(label, "-"))
    for label, value in (hlines or {}).items():
        ax.axhline(value, ls="--", lw=1, color="0.4")
        ax.annotate(label, (0.01, value), xycoords=("axes fraction", "data"), fontsize=7,
                    va="bottom", color="0.3")
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(series) <= 16:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def bars_figure(labels: list[str], groups: Mapping[str, list[float]], ylabel: str, title: str = "",
                reference: float | None = 1.0) -> Figure:
    """Grouped bars: one group per label, one bar per entry of ``groups``; a dashed reference line."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(groups)
    for i, (name, values) in enumerate(groups.items()):
        ax.bar([j + i * width for j in range(len(labels))], values, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))], labels, rotation=20, ha="right",
                  fontsize=7)
    if reference is not None:
        ax.axhline(reference, color="0.4", lw=1, ls="--")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def heads_figure(kq: Any, ov: Any, title: str = "") -> Figure:
    """Heat maps of each head's KQ matrix (top row) and OV vector (bottom row).

    Args:
        kq: (H, p, p) array-like; ov: (H, p) array-like.
    """
    H = len(kq)
    fig = Figure(figsize=(2.3 * H + 1, 4.6))
    axes = fig.subplots(2, H, squeeze=False, gridspec_kw={"height_ratios": [4, 1]})
    kq_lim = max(float(abs(k).max()) for k in kq) or 1.0
    ov_lim = max(float(abs(o).max()) for o in ov) or 1.0
    for h in range(H):
        im = axes[0, h].imshow(kq[h], cmap="RdBu_r", vmin=-kq_lim, vmax=kq_lim)
        axes[0, h].set_title(f"head {h + 1}: KQ", fontsize=9)
        ov_im = axes[1, h].imshow([list(ov[h])], cmap="RdBu_r", vmin=-ov_lim, vmax=ov_lim)
        axes[1, h].set_title("OV", fontsize=9)
        for ax in (axes[0, h], axes[1, h]):
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[0, :].tolist(), shrink=0.8)
    fig.colorbar(ov_im, ax=axes[1, :].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def similarity_figure(similarity: Any, steps: list[int], title: str, floor: float | None = None) -> Figure:
    """Heat map of layer x algorithm-step similarity with each layer's best step marked.

    Up to 40 steps get one labelled column each; a longer sweep (every GD step 1..1300) is
    drawn on a logarithmic step axis.

    Args:
        similarity: (layers, steps) array-like.
    """
    import numpy as np

    sim = np.asarray(similarity)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    best = sim.argmax(1)
    if len(steps) <= 40:
        im = ax.imshow(sim, aspect="auto", cmap="viridis", origin="lower")
        ax.scatter(best, range(len(best)), marker="x", color="red", s=30, label="best step")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels([str(s) for s in steps], fontsize=7, rotation=90)
    else:
        x = np.asarray(steps, float)
        edges = np.concatenate([[x[0] / 1.5], np.sqrt(x[1:] * x[:-1]), [x[-1] * 1.2]])
        rows = np.arange(len(sim) + 1) - 0.5
        im = ax.pcolormesh(edges, rows, sim, cmap="viridis", shading="flat")
        ax.scatter(x[best], range(len(best)), marker="x", color="red", s=30, label="best step")
        ax.set_xscale("log", base=2)
    ax.set_xlabel("algorithm step")
    ax.set_ylabel("layer")
    suffix = f" (zero-predictor floor {floor:.3f})" if floor is not None else ""
    ax.set_title(title + suffix, fontsize=10)
    fig.colorbar(im, ax=ax, label="mean residual cosine")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def probe_figures(result: Mapping[str, Any]) -> dict[str, Figure]:
    """The figures of ``iclreg probe``: per-layer probe error (suffix ""), and the layer x step
    similarity to Newton ("_newton") and GD ("_gd")."""
    series = {f"layer {i}": (result["k"], m) for i, m in enumerate(result["probe_mse"])}
    series["least squares"] = (result["k"], result["ols_mse"])
    return {
        "": lines_figure(series, "number of examples k", "probe MSE", "per-layer read-out", logy=True),
        "_newton": similarity_figure(result["newton"]["similarity"], result["newton"]["steps"],
                                     "layers vs Newton steps", result["floor"]),
        "_gd": similarity_figure(result["gd"]["similarity"], result["gd"]["steps"], "layers vs GD steps"),
    }
