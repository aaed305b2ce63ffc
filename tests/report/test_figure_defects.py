"""Classes of figure defects, each checked on the figure functions every report uses: clipped-peak
labels that print on top of each other, fractional ticks on axes that count, raw SPECs in titles
and legends, bands missing where intervals exist, a colour bar without its floor; and the 95%
interval of a positive error that reaches below zero."""

from __future__ import annotations

import itertools
import re

import torch

from iclreg.analysis.compare import error_curves, interval95
from iclreg.logs import Progress
from iclreg.report.figures import error_curves_figure, lines_figure, similarity_figure
from iclreg.tasks import build as build_task

RAW_SPEC = re.compile(r"\b[a-z][a-z0-9_]*:[a-z_][a-z0-9_]*=")


def _texts(fig):
    fig.canvas.draw()
    ax = fig.axes[0]
    texts = [t for t in (*ax.texts, ax.title) if t.get_text()]
    legend = ax.get_legend()
    return texts, [t.get_text() for t in legend.get_texts()] if legend else []


def _peaky(k):
    return [1e24 if 1 <= i <= 3 else 1.0 + i for i in k]


def test_clipped_peak_labels_never_overlap():
    k = list(range(41))  # as eval.png of a run at n = 41: OLS's 1e24 at k = 1-3
    results = {name: {"mse": _peaky(k)} for name in ("ols", "ridge:lam=0.001")}
    texts, _ = _texts(error_curves_figure(k, results, title="t"))
    boxes = [t.get_window_extent() for t in texts if "peak" in t.get_text()]
    assert len(boxes) == 2  # one label per run of neighbouring clipped points, per series
    assert all(not a.overlaps(b) for a, b in itertools.combinations(boxes, 2))
    assert "peak 1e+24 (clipped at 1-3)" in [t.get_text() for t in texts]


def test_k_axes_have_integer_ticks():
    fig = error_curves_figure(list(range(11)), {"ols": {"mse": [1.0 / (i + 1) for i in range(11)]}})
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 0 <= t <= 10]
    assert ticks and all(float(t).is_integer() for t in ticks)
    fig = lines_figure({"a": ([0, 1, 2, 3], [1, 2, 3, 4])}, "layer", "error", integer_x=True)
    fig.canvas.draw()
    assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())


def test_no_raw_spec_in_titles_or_legends():
    k = list(range(5))
    results = {"ridge:lam=0.1": {"mse": [1.0] * 5},
               "kernel:omega=[0.13,-0.13],mu=[3.4,-3.4]": {"mse": [2.0] * 5}}
    title = "gpt2:layers=4,width=64 on gaussian:d=5,n=11"
    texts, legend = _texts(error_curves_figure(k, results, title=title))
    shown = [t.get_text() for t in texts] + legend
    assert not [s for s in shown if RAW_SPEC.search(s)], shown
    assert "ridge (lam 0.1)" in legend and any("gaussian ($d$ = 5, $n$ = 11)" in s for s in shown)
    _, legend = _texts(lines_figure({"gd:lr=0.01": ([1, 2], [1, 2])}, "N", "error", title="x:y=1"))
    assert legend == ["gd (lr 0.01)"]


def test_bands_drawn_and_inside_the_axis():
    fig = lines_figure({"mean": ([1, 4, 16], [1.0, 0.9, 0.85])}, "N", "error",
                       bands={"mean": [[0.5, 1.5], [0.4, 1.4], [0.3, 1.3]]}, logx=True)
    ax = fig.axes[0]
    assert ax.collections, "no 95% band"
    low, high = ax.get_ylim()
    assert low <= 0.3 and high >= 1.5  # the axis shows how wide the intervals are


def test_similarity_colour_bar_marks_the_floor():
    fig = similarity_figure([[0.2, 0.5, 0.9], [0.3, 0.8, 0.6]], [1, 2, 3], "layers vs Newton", floor=0.4)
    fig.canvas.draw()
    bar = fig.axes[-1]
    assert bar.get_ylabel() == "mean residual cosine"
    assert any(abs(line.get_ydata()[0] - 0.4) < 1e-12 for line in bar.lines)
    assert "floor" in [t.get_text() for t in bar.texts]


def test_interval_of_a_positive_error_stays_positive():
    ci = interval95(torch.tensor([1.3e24, 1.0, 0.0], dtype=torch.float64),
                    torch.tensor([1e24, 0.1, 0.0], dtype=torch.float64))
    assert ci[0, 0] > 0 and ci[0, 0] < 1.3e24 < ci[0, 1]
    assert torch.allclose(ci[1], torch.tensor([1 - 0.196, 1 + 0.196], dtype=torch.float64))  # normal
    assert ci[2].tolist() == [0.0, 0.0]
    # least squares at k = d - 1: its heavy tail made the normal interval negative
    task = build_task("gaussian:d=4,n=6")

    def heavy(x, y):
        out = torch.zeros_like(y)
        out[:3, 1] = 1e12  # three wild predictions in 400 prompts at k = 1
        return out

    curve = error_curves(task, {"heavy": heavy}, 400)["heavy"]
    assert all(low > 0 for low, _ in curve["ci95"]) and curve["ci95"][1][1] > curve["mse"][1]


def test_progress_line_says_when_the_loss_is_stale():
    bar = Progress(200, tty=False, interval=1e9)
    for step in range(1, 198):
        if step == 175:
            bar.set_loss(0.41)
        bar.update()
    assert "loss 0.41 (logged at step 175)" in bar.line()
    bar.set_loss(0.4)
    bar.update()
    assert "loss 0.4," in bar.line()
    bar.close()
