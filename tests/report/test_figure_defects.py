"""Classes of figure defects, each checked on the figure functions every report uses: clipped-peak
labels that print on top of each other, fractional ticks on axes that count, raw SPECs in titles
and legends, bands missing where intervals exist, a colour bar without its floor; and the 95%
interval of a positive error that reaches below zero. Issue #28's second pass: a colour-mapped
image without a colour bar or tick labels, empty axes in a grid, reference-line labels that curves
cover (they go in the legend), legends of more than 8 entries, and two decoders' series drawn alike
(one hides the other where they coincide)."""

from __future__ import annotations

import itertools
import re

import torch

from iclreg.analysis.compare import error_curves, interval95
from iclreg.logs import Progress
from iclreg.report import figures_decoders as testtime_figures
from iclreg.report.figures import error_curves_figure, heads_figure, lines_figure, similarity_figure
from iclreg.report.figures_heads import head_blocks_figure as multitask_heads_figure
from iclreg.report.figures_heads import learning_curves_figure as loss_curves_figure
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


# --- issue #28, second pass ------------------------------------------------------------------
MAX_LEGEND = 8


def _images(fig):
    """(axes, image) of every colour-mapped image, colour bars' own axes left out."""
    bars = {im.colorbar.ax for ax in fig.axes for im in ax.images if im.colorbar is not None}
    return [(ax, im) for ax in fig.axes if ax not in bars for im in [*ax.images, *ax.collections]
            if getattr(im, "get_array", None) is not None and im.get_array() is not None]


def _check_colour_maps(fig):
    """Every image's colour scale (map and limits) has a colour bar; every image has tick labels;
    no axes of the figure is empty."""
    fig.canvas.draw()
    images = _images(fig)
    assert images
    bars = [im.colorbar.mappable for _, im in images if im.colorbar is not None]
    for ax, im in images:
        same_scale = [b for b in bars if b.cmap.name == im.cmap.name and b.get_clim() == im.get_clim()]
        assert same_scale, f"no colour bar for the scale of {ax.get_title()}"
        assert [t for t in ax.get_xticklabels() if t.get_text()], f"no tick labels: {ax.get_title()}"
    for ax in fig.axes:
        assert ax.images or ax.lines or ax.collections or ax.patches, "an empty axes"


def test_every_colour_mapped_image_has_a_colour_bar_and_tick_labels():
    rng = torch.Generator().manual_seed(0)
    best = {h: (0, torch.randn(h, 6, 6, generator=rng).numpy(), torch.randn(h, 2, 8, generator=rng).numpy(),
                ["both", "task 1", "task 2", "neither", "both", "task 1"][:h]) for h in (1, 3, 6)}
    fig = multitask_heads_figure(best, 6)  # rows of 1, 3 and 6 heads: no empty axes in the short rows
    _check_colour_maps(fig)
    assert sum(1 for ax in fig.axes if ax.images) == 2 * (1 + 3 + 6)
    _check_colour_maps(heads_figure(torch.randn(2, 4, 4, generator=rng).numpy(),
                                    torch.randn(2, 4, generator=rng).numpy()))
    _check_colour_maps(similarity_figure([[0.2, 0.5], [0.3, 0.8]], [1, 2], "layers vs GD steps"))


def _legend(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


def test_reference_lines_are_named_in_the_legend_not_under_the_curves():
    refs = {"single-head optimum 0.405": 0.405, "multi-head 0.243": 0.243}
    curves = {h: [(list(range(1, 101)), [0.5 * 0.99**s + 0.2 + 0.01 * seed for s in range(100)])
                  for seed in range(n)] for h, n in ((1, 8), (2, 8), (4, 8), (8, 8))}
    for fig in (lines_figure({"loss": ([1, 2, 3], [0.5, 0.3, 0.2])}, "step", "loss", logy=True, hlines=refs),
                loss_curves_figure(curves, refs)):
        fig.canvas.draw()
        ax = fig.axes[0]
        assert not [t.get_text() for t in ax.texts], "a label drawn inside the axes, where curves cross it"
        assert set(refs) <= set(_legend(ax))
        styles = [ln.get_linestyle() for ln in ax.get_lines() if ln.get_label() in refs]
        assert len(set(styles)) == len(refs)  # each reference line has its own dash


def test_legends_list_at_most_eight_entries():
    curves = {h: [([1, 2, 3], [0.5, 0.4, 0.3 + 0.01 * seed]) for seed in range(8)] for h in (1, 2, 4, 8)}
    ax = loss_curves_figure(curves, {"published 0.243": 0.243}).axes[0]
    legend = _legend(ax)
    assert len(legend) <= MAX_LEGEND and legend[:4] == [f"$H = {h}$ (8 seeds)" for h in (1, 2, 4, 8)]
    seeds = [ln for ln in ax.get_lines() if ln.get_color() == ax.get_lines()[0].get_color()]
    assert len(seeds) == 8 and len({(ln.get_linestyle(), ln.get_marker()) for ln in seeds}) == 1


def test_a_legend_beside_the_axes_leaves_them_most_of_the_width():
    """Six long legend entries outside the axes must not squeeze the plot into a strip: the
    axes keep at least half of the saved figure's width (the learning curves drew in 40%)."""
    curves = {h: [([1, 2, 3], [0.5, 0.4, 0.3 + 0.01 * seed]) for seed in range(2)] for h in (1, 2, 4, 8)}
    series = {f"exact large-$D$ theory, {h} heads": ([10, 100, 1000], [1.0 / h, 0.1 / h, 0.01 / h])
              for h in range(1, 9)}
    for fig in (loss_curves_figure(curves, {"single-head optimum 0.405 (published)": 0.405,
                                            "multi-head 0.243 (published)": 0.243}),
                lines_figure(series, "number of examples $D$", "excess risk", logx=True, logy=True)):
        fig.canvas.draw()
        axes = fig.axes[0].get_window_extent()
        legend = fig.axes[0].get_legend().get_window_extent()
        assert axes.width / (max(legend.x1, axes.x1) - axes.x0) >= 0.5


def _coinciding_decoders():
    """The same measurements for both decoders: a trained model that emits GD exactly."""
    samples = [1, 2, 4, 8]
    one = {"excess": {n: [0.1 / n, 0.01] for n in samples}, "theory": {n: 0.1 / n for n in samples},
           "greedy": [0.3, 0.25, 0.28], "noisy": [0.3, 0.24, 0.24], "vote": [0.1, 0.3, 0.5, 0.6]}
    one["theory_vote"] = dict(zip(samples, [0.12, 0.31, 0.48, 0.62], strict=True))
    averaging = {label: one for label in ("GD", "trained CoT")}
    votes = {label: {"vote": one["vote"], "theory": one["theory_vote"], "greedy": 0.4}
             for label in ("GD", "trained CoT")}
    return samples, averaging, votes


def _check_both_show(ax):
    """No two series drawn alike (marker, colour, dash); where two lie on the same points, the one on
    top is thinner with smaller markers, so the one underneath shows around it."""
    lines = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    looks = {(ln.get_marker(), ln.get_color(), ln.get_linestyle()) for ln in lines}
    assert len(looks) == len(lines), "two series drawn alike"
    for a, b in itertools.combinations(lines, 2):
        same = (list(map(float, a.get_xdata())) == list(map(float, b.get_xdata()))
                and list(map(float, a.get_ydata())) == list(map(float, b.get_ydata())))
        if same and a.get_color() != b.get_color():  # two decoders on the same points
            low, high = sorted((a, b), key=lambda ln: ln.get_zorder())
            assert low.get_zorder() < high.get_zorder()
            assert high.get_linewidth() < low.get_linewidth() and high.get_markersize() < low.get_markersize()
            assert (low.get_marker(), low.get_color()) != (high.get_marker(), high.get_color())


def test_two_decoders_on_one_axis_both_show_where_they_coincide():
    samples, averaging, votes = _coinciding_decoders()
    _check_both_show(testtime_figures.averaging_figure(averaging, samples).axes[0])
    _check_both_show(testtime_figures.thoughts_figure(averaging, [5, 10, 20], [0.3, 0.2, 0.25],
                                                      [0.3, 0.22, 0.21], 4).axes[0])
    ax = testtime_figures.vote_figure(votes, samples).axes[0]
    _check_both_show(ax)
    exact = [ln for ln in ax.get_lines() if ln.get_label().endswith("exact rate")]
    assert len(exact) == 2 and all(list(ln.get_xdata()) == samples for ln in exact)  # at every N
    assert len(_legend(ax)) <= MAX_LEGEND


def test_lines_figure_shows_both_of_two_coinciding_series():
    """Two series on the same points (a probe's layers 0 and 1 before the model computes anything):
    the earlier is drawn thick, hollow and underneath the later, on linear and log axes alike; a
    series that parts from the others keeps the plain look."""
    k = list(range(8))
    flat = [1.0 + 0.05 * (i % 3) for i in k]
    series = {"layer 0": (k, flat), "layer 1": (k, [v * 1.001 for v in flat]),
              "layer 2": (k, [0.5 * 0.8**i for i in k])}
    for logy in (False, True):
        ax = lines_figure(series, "$k$", "error", logy=logy).axes[0]
        lines = {ln.get_label(): ln for ln in ax.get_lines()}
        low, high, apart = lines["layer 0"], lines["layer 1"], lines["layer 2"]
        assert low.get_zorder() < high.get_zorder() and low.get_markerfacecolor() == "none"
        assert low.get_linewidth() > high.get_linewidth() and low.get_markersize() > high.get_markersize()
        assert apart.get_linewidth() == high.get_linewidth() and apart.get_zorder() == high.get_zorder()
    styled = lines_figure(series, "$k$", "error", styles={"layer 0": "-", "layer 1": ":"}).axes[0]
    assert [ln.get_linestyle() for ln in styled.get_lines()[:2]] == ["-", ":"]  # given styles are kept
