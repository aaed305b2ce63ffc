"""The quick tour (``iclreg reproduce tour``) at toy size: OLS's unbounded points and the He et al.
figure they no longer squash (the other estimators span most of its y axis), and its prose writing
math as ``$...$`` TeX."""

from __future__ import annotations

import math
import re

import pytest

from iclreg.experiments import runner, tour
from iclreg.report.math import split_math

# ASCII math that report prose must write as $...$ TeX (outside math spans and code spans)
ASCII_MATH = re.compile(r"\b[dnkL] = \d|\b(omega|mu|sigma|lambda)\b|\blr = |\^\d|sqrt\(|\bfinite-k\b")


def test_ols_is_unbounded_next_to_k_equal_d():
    assert tour.ols_unbounded(5) == [4, 5, 6]


def test_clip_unbounded_marks_the_points_infinite_and_drops_their_band():
    curves = {"a": {"mse": [1.0, 2.0, 3.0], "ci95": [[0.5, 1.5]] * 3}, "ols": {"mse": [1.0, 9e4, 1.0],
                                                                            "ci95": [[0.5, 1.5]] * 3}}
    shown = tour.clip_unbounded(curves, "ols", [1])
    assert list(shown) == ["a", r"ols (mean $\infty$ at $k$ = 1-1)"]
    ols = shown[r"ols (mean $\infty$ at $k$ = 1-1)"]
    assert ols["mse"][0] == 1.0 and ols["mse"][1] == math.inf and math.isnan(ols["ci95"][1][0])
    assert curves["ols"]["mse"][1] == 9e4 and shown["a"] is curves["a"]  # the measurements are kept


def _log_share(ax, curves) -> float:
    """The share of the log y axis that ``curves`` (label -> {"mse"}) span."""
    values = [v for c in curves.values() for v in c["mse"] if math.isfinite(v) and v > 0]
    low, high = ax.get_ylim()
    return math.log(max(values) / min(values)) / math.log(high / low)


@pytest.fixture(scope="module")
def he_section():
    return tour.Tour()._he(tour.Tour.toy.samples)


def test_the_he_figure_leaves_the_axis_to_the_other_estimators(he_section):
    """OLS's spike near k = d (1e4 at toy size) set the top of the axis and pushed the other
    estimators into its bottom quarter; clipped, they span most of it."""
    plot = he_section.figures["he_estimators.png"]
    k, curves = plot.args[0], he_section.data["he"]["results"]
    others = {label: c for label, c in curves.items() if label != "ols"}
    fig = plot.draw()
    fig.canvas.draw()
    ax = fig.axes[0]
    assert _log_share(ax, others) > 0.6
    assert any("clipped at 4-6" in t.get_text() for t in ax.texts)  # the spike is marked, not hidden
    assert any("ols" in t.get_text() for t in ax.get_legend().get_texts())
    raw = type(plot)(plot.kind, k, curves, *plot.args[2:]).draw().axes[0]
    assert _log_share(raw, others) < 0.4  # the defect: drawn unclipped, the spike takes the axis


def test_the_he_text_gives_the_monte_carlo_means_it_clips(he_section):
    ols = he_section.data["he"]["results"]["ols"]["mse"]
    note = next(line for line in he_section.text if line.startswith("OLS's expected error is infinite"))
    assert f"{ols[5]:.3g}" in note


def test_toy_report_prose_writes_math_as_tex(tmp_path):
    result = runner.reproduce("tour", tmp_path, sizes=tour.Tour.toy)
    for section in result.sections:
        for line in section.text:
            plain = re.sub(r"(`+).*?\1", "", split_math(line)[0])
            assert not ASCII_MATH.search(plain), (section.title, line)
    assert r"$\sigma^2 = 0.1$" in (tmp_path / "report.md").read_text()
    assert "<math>" in (tmp_path / "report.html").read_text()
