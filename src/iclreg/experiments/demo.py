"""The quick tour behind ``make demo``: estimator comparisons on the CPU with a report.

Two comparisons, each a figure, a table and raw numbers:

1. He et al.'s setup (arXiv 2503.12734; d = 5, sigma^2 = 0.1, w ~ N(0, I/d)): the attention
   kernel estimators, GD, debiased GD, ridge/Bayes and OLS, with the published estimator
   table at L = 10, 20, 40 beside our Monte Carlo numbers, and the exact finite-k Bayes risk
   beside the Bayes estimator's Monte Carlo error.
2. Garg et al.'s standard setup (arXiv 2208.01066; d = 20, n = 41, noiseless): OLS,
   Newton-Schulz and GD steps (Fu et al., arXiv 2310.17086), averaging, 3-NN.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from ..analysis import compare
from ..estimators import build as build_estimator
from ..report import atomic_output_dir, error_curves_figure, markdown_table, save_figure, write_text
from ..report.html import index_page
from ..tasks import build as build_task
from ..theory import bayes_risk
from .base import REPRODUCTIONS, Reproduction, write_report
from .demystified import ESTIMATORS, HE_LR, PUBLISHED
from .demystified import TASK as HE_TASK

GARG_TASK = "gaussian:d=20,n=41"
GARG_ESTIMATORS = [
    "ols", "newton:steps=3", "newton:steps=6", "newton:steps=12", "gd:steps=100,lr=0.01",
    "averaging", "knn:k=3", "zero",
]


def _he_section(samples: int, progress: bool) -> tuple[dict[str, Any], str]:
    task = build_task(HE_TASK)
    specs = {**ESTIMATORS, "ols": "ols"}
    estimators = {label: build_estimator(spec, task=task) for label, spec in specs.items()}
    result = compare(task, estimators, samples, seed=1, progress=progress)
    lines = [
        "| L | estimator | SPEC | published | ours (95% CI) | difference |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for i, L in enumerate((10, 20, 40)):
        for label, row in PUBLISHED.items():
            published = row[i]
            mse = result["results"][label]["mse"][L]
            lo, hi = result["results"][label]["ci95"][L]
            lines.append(
                f"| {L} | {label} | `{specs[label]}` | {published:.3f} | {mse:.3f} "
                f"({lo:.3f}-{hi:.3f}) | {mse - published:+.3f} |"
            )
    ks = (2, 5, 10, 20, 40)
    exact = {k: bayes_risk(d=5, k=k, noise_std=math.sqrt(0.1), w_std=1 / math.sqrt(5)) for k in ks}
    result["exact_bayes_risk"] = exact
    lines += [
        "",
        "Exact finite-k Bayes risk (`iclreg.theory.bayes_risk`, no sampling) against the Monte",
        "Carlo error of the `bayes` estimator:",
        "",
        "| k | exact Bayes risk | `bayes`, Monte Carlo (95% CI) |",
        "|---:|---:|---:|",
    ]
    for k in ks:
        lo, hi = result["results"]["ridge"]["ci95"][k]
        mse = result["results"]["ridge"]["mse"][k]
        lines.append(f"| {k} | {exact[k]:.4f} | {mse:.4f} ({lo:.4f}-{hi:.4f}) |")
    return result, "\n".join(lines)


def tour(out: Path, samples: int = 20000, progress: bool = False) -> Reproduction:
    """Estimator comparisons written into ``out`` (report.md, figures, results.json)."""
    start = time.perf_counter()
    he, he_table = _he_section(samples, progress)
    fig = error_curves_figure(he["k"], he["results"], he["noise_floor"],
                              "He et al. setup: d=5, sigma^2=0.1, w ~ N(0, I/d)")
    save_figure(fig, out / "he_estimators.png")

    garg_task = build_task(GARG_TASK)
    garg = compare(
        garg_task, {s: build_estimator(s, task=garg_task) for s in GARG_ESTIMATORS},
        max(samples // 10, 256), seed=2, progress=progress,
    )
    fig = error_curves_figure(garg["k"], garg["results"], None, "Standard setup: d=20, noiseless")
    save_figure(fig, out / "standard_estimators.png")
    write_text(out / "results.json", json.dumps({"he": he, "standard": garg}, indent=1))
    seconds = time.perf_counter() - start
    report = f"""# iclreg quick tour

Estimator comparisons on the CPU ({seconds:.0f} s). Every number below is computed by this
run; published values are quoted from the papers for comparison.

## 1. He et al. (arXiv 2503.12734): estimators at L = 10, 20, 40

Task `{HE_TASK}`, {samples} prompts; the error is against the noisy label (noise floor
0.1 included). GD and debiased GD use lr = 2 omega mu = {HE_LR:.4f}; the single head uses mu
fitted at L = 40 at every length, as in the published table.

{he_table}

![He et al. setup](he_estimators.png)

## 2. Standard setup (Garg et al., arXiv 2208.01066): d = 20, n = 41, noiseless

Newton-Schulz needs few steps to reach least squares; GD with lr = 0.01 needs many.
{garg["samples"]} prompts.

{markdown_table(garg["k"], garg["results"], [5, 10, 15, 19, 20, 21, 25, 30, 40])}

![standard setup](standard_estimators.png)
"""
    write_text(out / "report.md", report)
    return Reproduction(paper="tour", title="Estimator tour", mode="quick", seconds=seconds,
                        figures=["he_estimators.png", "standard_estimators.png"])


def run(out: str | Path = "runs/demo", samples: int = 20000, progress: bool = False) -> Path:
    """The quick tour and every registered reproduction in quick mode, with ``index.html``."""
    out = Path(out)
    entries = []
    with atomic_output_dir(out) as tmp:
        (tmp / "tour").mkdir()
        entries.append(("tour", tour(tmp / "tour", samples, progress)))
        for name in REPRODUCTIONS.names():
            (tmp / name).mkdir()
            result = REPRODUCTIONS.get(name)(quick=True).run(tmp / name, progress)
            write_report(result, tmp / name)
            entries.append((name, result))
        write_text(tmp / "index.html", index_page(entries))
    return out
