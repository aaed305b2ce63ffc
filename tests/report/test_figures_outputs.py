"""Heat maps sized and labelled to be read on a page, and every figure of a reproduction or a
run directory saved as PDF beside its PNG (``--plot FILE`` still writes exactly FILE).

Before: demystified/heads_H8.png was 1756 px wide (shown at 520 px), KQ/OV maps had no tick
labels saying which entry is the label y, heat-map ticks were 7 pt and turned 90 degrees, and
every output was a PNG only.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from iclreg.experiments.base import Experiment, Runs, Section
from iclreg.experiments.runner import write_report
from iclreg.report.figures import heads_figure, lines_figure, similarity_figure
from iclreg.report.files import save_figure
from iclreg.report.plots import Plot
from iclreg.report.style import DPI, MIN_FONT_PT
from iclreg.train.runs import write_figures


def _heads(H: int = 8, d: int = 5):
    rng = np.random.default_rng(0)
    return rng.standard_normal((H, d + 1, d + 1)) * 0.1, rng.standard_normal((H, d + 1))


def test_heads_figure_wraps_four_per_row_and_labels_the_entries():
    kq, ov = _heads()
    fig = heads_figure(kq, ov, r"$H=8$: $KQ = K^\top Q/\sqrt{d+1}$")
    maps = [ax for ax in fig.axes if ax.get_title().endswith("KQ")]
    assert len(maps) == 8
    columns = {round(ax.get_position().x0, 3) for ax in maps}
    rows = {round(ax.get_position().y0, 3) for ax in maps}
    assert len(columns) == 4 and len(rows) == 2
    assert fig.get_size_inches()[0] * DPI <= 1050  # readable at ~1000 px without shrinking
    names = [f"$x_{{{i}}}$" for i in range(1, 6)] + ["$y$"]
    for ax in maps:
        assert [t.get_text() for t in ax.get_xticklabels()] == names
        assert [t.get_text() for t in ax.get_yticklabels()] == names
        assert ax.get_xlabel() == "query index"
    assert {maps[0].get_ylabel(), maps[4].get_ylabel()} == {"key index"}
    strips = [ax for ax in fig.axes if [t.get_text() for t in ax.get_yticklabels()] == ["OV"]]
    assert len(strips) == 8 and all([t.get_text() for t in ax.get_xticklabels()] == names for ax in strips)
    for ax in maps + strips:
        for t in ax.get_xticklabels() + ax.get_yticklabels():
            assert t.get_fontsize() >= MIN_FONT_PT and t.get_rotation() == 0


def test_small_head_counts_stay_in_one_row():
    kq, ov = _heads(H=2)
    maps = [ax for ax in heads_figure(kq, ov).axes if ax.get_title().endswith("KQ")]
    assert len({round(ax.get_position().y0, 3) for ax in maps}) == 1


def test_similarity_ticks_are_upright_and_readable():
    steps = list(range(1, 31))
    sim = np.random.default_rng(1).random((4, 30))
    ax = similarity_figure(sim, steps, "layers vs Newton steps", 0.1).axes[0]
    labels = [t for t in ax.get_xticklabels() if t.get_text()]
    assert 5 <= len(labels) <= 15  # every other step, not 30 crowded labels
    assert all(t.get_rotation() == 0 and t.get_fontsize() >= MIN_FONT_PT for t in labels)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]


def test_save_figure_writes_pdf_beside_png_only_when_asked(tmp_path):
    fig = lines_figure({"a": ([1, 2], [1.0, 2.0])}, "$x$", r"$\sigma^2$")
    save_figure(fig, tmp_path / "one.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.png"]  # --plot FILE: exactly FILE
    save_figure(fig, tmp_path / "two.png", also=(".pdf",))
    assert (tmp_path / "two.pdf").read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "two.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class _OneFigure(Experiment):
    """A reproduction without training: one section with one figure."""

    name = "one-figure"
    title = "one figure"
    modes = {"quick": None}
    toy = None

    def analyse(self, runs: Runs, sizes: object) -> list[Section]:
        plot = Plot("lines", {"a": ([1, 2], [1.0, 2.0])}, "x", "y")
        return [Section("figure", figures={"curve.png": plot})]


def test_reproduction_saves_each_figure_as_png_and_pdf(tmp_path):
    result = write_report(_OneFigure().run(tmp_path), tmp_path)
    assert result.figures == ["curve.png"]
    assert (tmp_path / "curve.png").is_file() and (tmp_path / "curve.pdf").read_bytes()[:5] == b"%PDF-"


def test_run_directory_figures_have_pdfs(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n"
                                                    for s in (1, 2, 3)))
    config = SimpleNamespace(model="linear_attention", task="gaussian")
    member = SimpleNamespace(run_dir=tmp_path, config=config)
    k = list(range(5))
    result = {"k": k, "noise_floor": 0.1, "train_n": 5,
              "results": {"model": {"mse": [1.0, 0.5, 0.3, 0.2, 0.15], "ci95": [[0.9, 1.1]] * 5}}}
    write_figures(member, result)
    names = sorted(p.name for p in Path(tmp_path).iterdir())
    assert names == ["eval.pdf", "eval.png", "loss.pdf", "loss.png", "metrics.jsonl"]


def test_eval_plot_beyond_training_marks_the_training_length(tmp_path, monkeypatch):
    import iclreg.report
    from iclreg.cli import main
    from iclreg.train import resolve, train

    config = resolve({"task": "gaussian:d=3,n=12,noise_std=0.1", "model": "softmax_attention:heads=2",
                      "train": {"steps": 2, "batch": 8}, "eval": {"samples": 8, "estimators": ["ols"]},
                      "run": {"checkpoint_every": 2, "log_every": 1}})
    run = train(config, tmp_path / "run")
    saved = {}
    real = iclreg.report.save_figure
    monkeypatch.setattr(iclreg.report, "save_figure", lambda fig, path, **kw: (saved.update(fig=fig, kw=kw),
                                                                               real(fig, path, **kw)))
    plot = tmp_path / "plots" / "eval.png"
    plot.parent.mkdir()
    assert main(["eval", str(run), "--n", "20", "--samples", "8", "--plot", str(plot)]) == 0
    ax = saved["fig"].axes[0]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "training length n = 12"]
    assert list(line.get_xdata()) == [11.5, 11.5]
    assert sorted(p.name for p in plot.parent.iterdir()) == ["eval.png"]  # --plot FILE: exactly FILE
