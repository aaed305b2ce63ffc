"""The table and the figure of ``iclreg score``, drawn from its ``--json`` object (``iclreg.score_targets``).

One line per capability: the mean excess risk over the reference across the n predictions of a
prompt, the fraction of the zero-to-Bayes gap closed (1 = Bayes, 0 = zero, negative = worse
than zero), each with its 95% interval, and the model's error at the training length n (k = n-1)
and at twice it (k = 2n-1, on the capabilities whose prompts reach it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

from ..report.style import REFERENCE_COLOR, SINGLE, styled


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _interval(value: float | None, ci: list[float | None], digits: int = 3) -> str:
    """``value [low, high]``; a number that is not finite (null in the JSON) prints as inf."""
    a, low, high = ("inf" if v is None else f"{v:.{digits}g}" for v in (value, *ci))
    return f"{a} [{low}, {high}]"


def _block(title: str, rows: Mapping[str, Mapping[str, Any]], caps: Mapping[str, Any],
           seeds: bool) -> list[str]:
    lines = [title, f"  {'capability':<14}{'n':>5}  {'excess over reference (95%)':<32}"
                    f"{'gap closed (95%)':<28}{'mse@n':>9}{'mse@2n':>9}  reference"]
    for name, row in rows.items():
        n = caps[name]["n"]
        if not row["applicable"]:
            lines.append(f"  {name:<14}{n:>5}  not applicable: {row['reason']}")
            continue
        tail = "" if seeds else f"{_num(row['mse_at_train_n']):>9}{_num(row['mse_at_2train_n']):>9}"
        ref = caps[name]["reference_label"] + ("; DIVERGES (not finite)" if row.get("diverges") else "")
        lines.append(f"  {name:<14}{n:>5}  {_interval(row['excess'], row['excess_ci95']):<32}"
                     f"{_interval(row['normalised'], row['normalised_ci95']):<28}{tail or ' ' * 18}  {ref}")
    return lines


def _differences(diff: Mapping[str, Any]) -> list[str]:
    """The table of one A-minus-B comparison (``score A B``)."""
    lines = [f"{diff['a']} ({diff['a_target']}) minus {diff['b']} ({diff['b_target']}), "
             "paired on the same prompts:",
             f"  {'capability':<14}{'excess difference (95%)':<34}{'gap-closed difference (95%)':<34}"
             "significant  across seeds (95%)"]
    for name, row in diff["results"].items():
        if not row["applicable"]:
            lines.append(f"  {name:<14}not applicable: {row['reason']}")
            continue
        excess = _interval(row["excess_difference"], row["excess_difference_ci95"])
        gap = _interval(row["normalised_difference"], row["normalised_difference_ci95"])
        seeds = row.get("excess_difference_seeds_ci95")
        across = "-" if seeds is None else _interval(0.0, seeds).split(" ", 1)[1]
        significant = "yes" if row["significant"] else "no"
        lines.append(f"  {name:<14}{excess:<34}{gap:<34}{significant:<13}{across}")
    return lines


def score_text(result: Mapping[str, Any]) -> str:
    """The table of a score result (one block per model, then seed means and A - B)."""
    base = result["base"]
    lines = [f"suite {result['suite']}, {result['samples']} prompts, seed {result['seed']}; trained at "
             f"d = {base['d']}, n = {base['n']}, w_std = {base['w_std']:.4g}, "
             f"noise_std = {base['noise_std']:.4g}"]
    caps = result["capabilities"]
    for label, rows in result["results"].items():
        lines += _block(f"{label}:", rows, caps, False)
    for group, rows in result.get("seed_means", {}).items():
        lines += _block(f"{group} (interval across seeds):", rows, caps, True)
    for diff in result.get("differences", []):
        lines += _differences(diff)
    lines.append("excess: mean over the n predictions of (model error - reference error); gap closed: "
                 "1 - excess / excess of predicting zero (1 = Bayes, 0 = zero)")
    return "\n".join(lines)


@styled
def score_figure(result: Mapping[str, Any], title: str = "") -> Figure:
    """The fraction of the zero-to-Bayes gap closed per capability (95% intervals), one marker
    series per model (at most 8); the Bayes (1) and zero (0) levels dashed."""
    caps = list(result["capabilities"])
    series = dict(list(result["results"].items())[:8])
    fig = Figure(figsize=(SINGLE[0], max(SINGLE[1], 0.35 * len(caps) + 1.2)), layout="constrained")
    ax = fig.subplots()
    step = 0.6 / max(len(series), 1)
    for i, (label, rows) in enumerate(series.items()):
        ys, xs, lows, highs = [], [], [], []
        for j, name in enumerate(caps):
            row = rows[name]
            if row["applicable"] and not row.get("diverges"):  # a diverging row has no finite point
                ys.append(j + (i - (len(series) - 1) / 2) * step)
                xs.append(row["normalised"])
                lows.append(row["normalised"] - row["normalised_ci95"][0])
                highs.append(row["normalised_ci95"][1] - row["normalised"])
        ax.errorbar(xs, ys, xerr=[lows, highs], ls="none", capsize=2, label=label)
    for level in (0.0, 1.0):
        ax.axvline(level, color=REFERENCE_COLOR, lw=1, ls="--")
    ax.set_yticks(range(len(caps)), caps)
    ax.invert_yaxis()
    ax.set_xlabel("fraction of the zero-to-Bayes gap closed")
    ax.set_title(title or f"suite {result['suite']}")
    if len(series) > 1:
        ax.legend(fontsize=8)
    return fig
