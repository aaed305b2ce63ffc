"""Figures read truthfully: machine-precision values drawn as "exact", spikes kept on log axes,
bands never crossing zero, overlapping lines distinguishable, the training length marked.

Each test reproduces a problem seen in the published figures (issue 18): OLS's 1e-13 error
after k = d drawn on the axis' bottom edge as data (tour/standard_estimators.png), the OLS
spike at k = d cut off with its band dipping through the log axis (tour/he_estimators.png),
layer 0 hidden under layer 1 and least squares at 1e-14 squeezing probes.png into a strip.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.collections import PolyCollection

from iclreg.report.figures import EXACT_RELATIVE, error_curves_figure, lines_figure, probe_figures
from iclreg.report.style import EXACT_MARKER, MARKERS, MIN_FONT_PT, PALETTE

K = list(range(41))


def _curve(mse: list[float], rel: float = 0.05) -> dict:
    return {"mse": mse, "ci95": [[m - 1.96 * rel * m, m + 1.96 * rel * m] for m in mse]}


def _ols_noiseless(d: int = 20) -> list[float]:
    return [20.0 * (1 - k / d) + 0.5 if k < d else 3e-14 for k in K]  # round-off past k = d


def _data_lines(ax):
    return [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]


def _exact_markers(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == EXACT_MARKER and ln.get_linestyle() == "None"]


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_machine_precision_is_drawn_as_exact_not_as_data():
    results = {"ols": _curve(_ols_noiseless()), "zero": _curve([20.5] * 41)}
    ax = error_curves_figure(K, results).axes[0]
    bottom, _ = ax.get_ylim()
    ols = next(ln for ln in _data_lines(ax) if ln.get_label() == "ols")
    y = np.asarray(ols.get_ydata(), float)
    assert np.isnan(y[20:]).all() and np.isfinite(y[:20]).all()  # the line stops at k = d
    assert y[:20].min() > 4 * bottom  # no vertex on (or near) the axis' bottom edge
    (marks,) = _exact_markers(ax)
    assert list(marks.get_xdata()) == K[20:]
    assert bottom < marks.get_ydata()[0] < min(y[:20])  # on a floor inside the axis, below the data
    assert marks.get_color() == ols.get_color()
    exact = [t for t in _legend_texts(ax) if t.startswith("exact")]
    assert exact == [r"exact ($<10^{-8}$)"]  # 1e-9 x the curves' scale (about 20), a power of ten
    # no tick label is read off the exact region
    ax.figure.draw_without_rendering()
    below = [t for t in ax.get_yticklabels() if t.get_position()[1] < min(y[:20]) / 2 and t.get_text()]
    assert below == []


def test_values_above_the_exact_threshold_stay_data():
    tiny = 1e-6  # far below the bulk but not round-off: a line, not "exact"
    results = {"gd": _curve([1.0 / (k + 1) for k in K[:-1]] + [tiny])}
    ax = error_curves_figure(K, results).axes[0]
    assert tiny > EXACT_RELATIVE
    assert _exact_markers(ax) == []
    assert ax.get_ylim()[0] < tiny and np.isfinite(_data_lines(ax)[0].get_ydata()).all()


def test_log_axis_keeps_a_spike_and_its_band_stays_positive():
    mse = [1.0 / (k + 1) + 0.1 for k in K]
    mse[5] = 2.4e3  # OLS at k = d = 5 with noise: a heavy-tailed mean
    ci = [[m * 0.9, m * 1.1] for m in mse]
    ci[5] = [-1.7e3, 6.5e3]  # a normal-theory interval below zero
    ax = error_curves_figure(K, {"ols": {"mse": mse, "ci95": ci}}, noise_floor=0.1).axes[0]
    bottom, top = ax.get_ylim()
    assert top >= 2.4e3
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert bands
    ys = np.concatenate([p.vertices[:, 1] for c in bands for p in c.get_paths()])
    assert (ys > 0).all() and ys.min() > bottom  # nothing reaches or crosses the bottom


def test_a_peak_too_high_for_the_axis_is_marked_with_its_value():
    mse = [1.0 + 0.01 * k for k in K]
    mse[5] = 3.0e9
    ax = error_curves_figure(K, {"ols": _curve(mse)}).axes[0]
    assert ax.get_ylim()[1] < 3.0e9
    notes = [t.get_text() for t in ax.texts]
    assert "peak 3e+09" in notes


def test_eval_beyond_training_marks_the_training_length():
    k = list(range(80))
    fig = error_curves_figure(k, {"model": _curve([0.3 + 0.001 * i for i in k])}, 0.1, train_n=41)
    ax = fig.axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "training length n = 41"]
    assert list(line.get_xdata()) == [40.5, 40.5]  # between k = 40, the last trained, and 41
    assert "training length n = 41" in _legend_texts(ax)
    at_n = error_curves_figure(K, {"model": _curve([0.3] * 41)}, 0.1, train_n=41).axes[0]
    assert not [ln for ln in at_n.get_lines() if ln.get_label().startswith("training length")]


def test_probe_lines_distinct_and_least_squares_does_not_squeeze_the_range():
    k = list(range(13))
    same = [1.0] * 13
    result = {"k": k, "probe_mse": [same, same, [0.5 / (i + 1) for i in k]],
              "ols_mse": [1, 0.8, 0.5, 0.2] + [4e-15] * 9,
              "newton": {"similarity": [[0.1, 0.5], [0.2, 0.9], [0.3, 0.4]], "steps": [1, 2]},
              "gd": {"similarity": [[0.1, 0.5], [0.2, 0.9], [0.3, 0.4]], "steps": [1, 2]}, "floor": 0.05}
    ax = probe_figures(result)[""].axes[0]
    lines = {ln.get_label(): ln for ln in _data_lines(ax)}
    zero, one = lines["layer 0"], lines["layer 1"]
    assert zero.get_color() != one.get_color()
    assert zero.get_marker() != one.get_marker() and zero.get_linestyle() != one.get_linestyle()
    assert zero.get_markevery() != one.get_markevery()  # staggered: both lines' markers show
    bottom, _ = ax.get_ylim()
    assert bottom > 1e-3 * min(0.5 / 13, 0.2)  # a decade or two below the data, not 1e-15
    assert list(_exact_markers(ax)[0].get_xdata()) == k[4:]


def test_lines_figure_marks_vertical_lines_and_keeps_hline_labels_readable():
    fig = lines_figure({"a": ([1, 2, 3], [1.0, 2.0, 3.0])}, "x", "y", vlines={"training length L = 40": 2.0},
                       hlines={"published": 1.5})
    ax = fig.axes[0]
    (v,) = [ln for ln in ax.get_lines() if ln.get_label() == "training length L = 40"]
    assert list(v.get_xdata()) == [2.0, 2.0]
    assert all(t.get_fontsize() >= MIN_FONT_PT for t in ax.texts)


def test_style_palette_markers_and_font_sizes():
    results = {f"e{i}": _curve([1.0 + i + 0.01 * k for k in K]) for i in range(4)}
    ax = error_curves_figure(K, results, 0.5).axes[0]
    lines = _data_lines(ax)[:4]
    assert [ln.get_color() for ln in lines] == list(PALETTE[:4])
    assert [ln.get_marker() for ln in lines] == list(MARKERS[:4])
    for label in [*ax.get_xticklabels(), *ax.get_yticklabels(), *ax.get_legend().get_texts()]:
        assert label.get_fontsize() >= MIN_FONT_PT
    assert "$k$" in ax.get_xlabel()  # mathtext
    assert not ax.spines["top"].get_visible()


def test_exact_values_are_never_nan_or_negative_in_a_frame():
    from iclreg.report.figures import log_frame

    frame = log_frame([[0.0, -1e-17, 1.0, 2.0], [math.nan, 1.0, 0.5]])
    assert frame.floors and frame.bottom < min(frame.floors) < frame.separator < 0.5
    assert frame.exact == 1e-9 * 10 ** math.floor(math.log10(2.0))


def test_reference_lines_stay_inside_a_log_axis():
    ax = lines_figure({"loss": ([1, 2, 3], [0.3, 0.2, 0.1])}, "step", "loss", logy=True,
                      hlines={"single-head optimum 0.405": 0.405, "tiny": 0.01}).axes[0]
    bottom, top = ax.get_ylim()
    assert bottom < 0.01 and top > 0.405
