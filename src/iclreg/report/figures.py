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
