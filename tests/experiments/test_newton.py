"""Fu et al.'s reproduction (``iclreg reproduce newton``): its plan, its helpers, the toy pipeline
(periodic evaluations, every claim computed, the training-progress rate, prose math as TeX), the
probe figure's coinciding layers and, slow, the quick run's claims."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from iclreg.experiments import REPRODUCTIONS, runner
from iclreg.experiments.newton import FULL, QUICK, Newton, active_layers, newton_equivalent, probe_styles
from iclreg.experiments.newton_measure import coinciding_layers
from iclreg.report.math import split_math
from iclreg.train.metrics import read_metrics

CLAIMS = {"1-learns", "2-probes", "3-similarity", "4-newton-linear", "4-gd-exponential", "4-ols",
          "5-accuracy", "5-newton-vs-gd", "6-lstm", "7-depth"}


def test_registered():
    assert REPRODUCTIONS.get("newton") is Newton
    assert Newton.modes == {"quick": QUICK, "full": FULL}


def test_quick_plan_trains_a_transformer_and_an_lstm():
    plan = Newton(mode="quick").plan(QUICK)
    assert list(plan) == ["gpt2", "lstm"]  # quick mode probes the isotropic model on ill prompts
    gpt, lstm = plan["gpt2"], plan["lstm"]
    assert gpt.task == lstm.task == "gaussian:d=4,n=13"
    assert gpt.model == "gpt2:layers=4,width=32,heads=2,max_n=13,d=4"
    assert lstm.model == "lstm:hidden=64,layers=2,d=4"
    for config in (gpt, lstm):
        assert (config.optimizer.name, config.optimizer.lr) == ("adam", 1e-3)
        assert (config.schedule.name, config.schedule.decay) == ("linear", 0.35)
        assert (config.train.steps, config.train.batch, config.train.loss) == (8000, 64, "all")
        assert (config.eval.samples, config.eval.estimators, config.eval.every) == (500, (), 400)
        assert (config.run.checkpoint_every, config.run.log_every) == (400, 80)
        assert (config.run.device, config.run.amp) == ("cpu", "none")
        assert config.curriculum.d is None and config.curriculum.n is None


def test_full_plan_adds_the_ill_conditioned_run_and_bf16_on_the_gpu_for_gpt2_only():
    plan = Newton(mode="full", device="cuda").plan(FULL)
    assert list(plan) == ["gpt2", "lstm", "gpt2_ill"]
    assert plan["gpt2_ill"].task == "gaussian:d=20,n=41,cov=rotated,cond=100"
    assert plan["gpt2_ill"].model == plan["gpt2"].model == "gpt2:preset=standard,max_n=41,d=20"
    amp = {name: c.run.amp for name, c in plan.items()}
    assert amp == {"gpt2": "bf16", "lstm": "none", "gpt2_ill": "bf16"}
    for config in plan.values():
        assert config.schedule.name == "constant" and config.optimizer.lr == 1e-4
        d, n = config.curriculum.d, config.curriculum.n
        assert (d.start, d.end, d.inc, d.every) == (5, 20, 1, 2000)
        assert (n.start, n.end, n.inc, n.every) == (11, 41, 2, 2000)
        assert (config.eval.every, config.run.checkpoint_every, config.run.log_every) == (4000, 4000, 800)
    assert Newton(mode="full").plan(FULL)["gpt2"].run.amp == "none"  # bf16 on the GPU only


def test_active_layers_start_at_the_first_layer_past_one_newton_step():
    assert active_layers([1, 1, 3, 7, 12]) == [2, 3, 4]
    assert active_layers([2, 1, 5]) == [0, 1, 2]
    assert active_layers([1, 1, 1]) == [2]  # none computes: the last layer alone (no slope)


def test_newton_equivalent_is_the_fewest_iterations_as_accurate_as_the_layer():
    steps, newton_err = [1, 2, 4, 8], [0.9, 0.5, 0.1, 0.01]
    assert newton_equivalent([1.0, 0.5, 0.3, 0.05, 0.001], steps, newton_err) == [1, 2, 4, 8, None]


def test_coinciding_layers_are_neighbours_within_two_percent_at_every_k():
    curves = [[1.0, 0.9], [1.01, 0.91], [0.5, 0.4], [0.5, 0.3]]
    assert coinciding_layers(curves) == [(0, 1)]  # layers 2 and 3 part at the second k


def test_probe_styles_alternate_dashes_along_a_run_of_coinciding_layers():
    labels, styles = probe_styles(["layer 0", "layer 1", "layer 2", "layer 3"], [(0, 1), (1, 2)])
    assert labels == ["layer 0 (= layer 1)", "layer 1 (= layer 2)", "layer 2", "layer 3"]
    assert styles == {"layer 0 (= layer 1)": "-", "layer 1 (= layer 2)": ":", "layer 2": "-"}
    assert probe_styles(["layer 0", "layer 1"], []) == (["layer 0", "layer 1"], {})


def _probes(curves: list[list[float]]) -> dict:
    """A ``probe_model`` result with these error/d curves by layer (Newton and GD reduced to one step)."""
    d, n = QUICK.d, len(curves[0])
    family = {"steps": [1], "similarity": [[0.9]] * len(curves), "best": [1] * len(curves), "mse": [[d] * n]}
    return {"k": list(range(n)), "probe_mse": [[v * d for v in c] for c in curves], "ols_mse": [0.5] * n,
            "newton": family, "gd": family, "floor": 0.86}


def test_the_probe_plot_gives_coinciding_layers_distinct_styles():
    """The quick demo's layers 0 and 1 coincide (error/d 1.068 and 1.0685): drawn alike, layer 1
    hid layer 0. They get distinct dashes and the legend says they coincide; the figure draws the
    lower one thick and hollow underneath (tests/report/test_figure_defects.py)."""
    flat = [1.0 + 0.05 * (k % 3) for k in range(QUICK.n)]
    curves = [flat, [v * 1.0005 for v in flat], [0.3] * QUICK.n, [0.01] * QUICK.n]
    section = Newton()._probes(QUICK, _probes(curves))
    plot = section.figures["probes.png"]
    series, styles = plot.args[0], plot.kwargs["styles"]
    assert list(series)[:2] == ["layer 0 (= layer 1)", "layer 1"]
    assert styles["layer 0 (= layer 1)"] != styles["layer 1"]
    assert "Layers 0 and 1 read out alike" in " ".join(section.text)
    ax = plot.draw().axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    low, high = lines["layer 0 (= layer 1)"], lines["layer 1"]
    assert low.get_linestyle() != high.get_linestyle() and low.get_zorder() < high.get_zorder()
    assert low.get_linewidth() > high.get_linewidth() and low.get_markersize() > high.get_markersize()
    apart = Newton()._probes(QUICK, _probes(curves[1:])).figures["probes.png"]
    assert apart.kwargs["styles"] == {}  # no layers coincide: the default cycle


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp("newton") / "out"
    result = runner.reproduce("newton", out, mode="quick", sizes=Newton.toy)
    return out, result


def test_toy_run_evaluates_along_training_and_computes_every_claim(toy):
    out, result = toy
    assert {c.id for c in result.claims} == CLAIMS
    assert [c.id for c in result.claims][:2] == ["1-learns", "6-lstm"]
    for name in ("gpt2", "lstm"):
        evals = [r for r in read_metrics(out / "runs" / name / "metrics.jsonl") if "eval" in r]
        assert [r["step"] for r in evals] == list(range(2, 41, 2))  # 20 evaluations along training
    assert not (out / "runs" / "gpt2_ill").exists()
    for name in ("probes.png", "training.png", "depth.png", "similarity_newton_ill.png", "learning.png"):
        assert (out / name).stat().st_size > 500


def test_toy_training_rate_is_the_loglog_slope_over_the_second_half(toy):
    out, _ = toy
    last, d = Newton.toy.n - 1, Newton.toy.d
    evals = [r for r in read_metrics(out / "runs" / "gpt2" / "metrics.jsonl") if "eval" in r]
    half = [(r["step"], r["eval"]["model"][last] / d) for r in evals if r["step"] >= 20]
    rate = np.polyfit(np.log([s for s, _ in half]), np.log([e for _, e in half]), 1)[0]
    report = (out / "report.md").read_text()
    shown = re.search(r"falls as \$\\mathrm\{step\}\^\{(-?\d+\.\d\d)\}\$", report).group(1)
    assert shown == f"{rate:.2f}"


def test_toy_depth_claims_follow_the_probe_numbers(toy):
    out, result = toy
    data = next(s.data for s in result.sections if s.title == "Probes and similarity")
    claims = {c.id: c for c in result.claims}
    best, gd = data["best newton"], data["best gd"]
    layers = active_layers(best)
    newton_slope = np.polyfit(layers, [best[i] for i in layers], 1)[0] if len(layers) > 1 else 0.0
    factor = 2 ** np.polyfit(layers, np.log2([gd[i] for i in layers]), 1)[0] if len(layers) > 1 else 1.0
    assert claims["4-newton-linear"].measured == pytest.approx(newton_slope)
    assert claims["4-newton-linear"].holds == (1 <= newton_slope <= 6)
    steps = [gd[i] - gd[i - 1] for i in layers[1:]]
    accel = 0.0  # increments that do not all grow: a miss
    if steps and min(steps) > 0:
        accel = 2 ** np.polyfit(layers[1:], np.log2(steps), 1)[0] if len(steps) > 1 else 1.0
    assert claims["4-gd-exponential"].measured["factor per layer"] == pytest.approx(factor)
    assert claims["4-gd-exponential"].measured["factor of the increments"] == pytest.approx(accel)
    assert claims["4-gd-exponential"].holds == (factor >= 1.8 and accel >= 1.8)
    errs = data["probe error/d at the last k"]
    assert claims["2-probes"].measured == errs
    assert claims["2-probes"].holds == all(b <= a * 1.05 + 1e-3 for a, b in zip(errs, errs[1:], strict=False))
    assert claims["4-ols"].measured == errs[-1] and claims["4-ols"].holds == (errs[-1] < 0.01)


# ASCII math that report prose must write as $...$ TeX (outside math spans and code spans)
ASCII_MATH = re.compile(r"error/d\b|\b[dnkl] = \d|\bstep\^|\^-?\d|sqrt\(|\blambda\b|\bX\^T\b|_hat\b")


def test_toy_report_prose_writes_math_as_tex(toy):
    out, result = toy
    for section in result.sections:
        for line in section.text:
            plain = re.sub(r"(`+).*?\1", "", split_math(line)[0])
            assert not ASCII_MATH.search(plain), (section.title, line)
    assert "$k = 6$" in (out / "report.md").read_text() and "<math>" in (out / "report.html").read_text()


@pytest.mark.slow
def test_quick_newton_reproduction(tmp_path):
    """The quick run's numbers: every claim holds, 4-ols at 0.0075 (5,000 steps missed it at 0.0129)."""
    result = runner.reproduce("newton", tmp_path / "newton", mode="quick")
    claims = {c.id: c for c in result.claims}
    assert {i for i, c in claims.items() if c.holds} == CLAIMS
    # 0.00754 with one torch thread (tests/conftest.py) and with two (both measured)
    assert math.isclose(claims["4-ols"].measured, 0.0075, abs_tol=1e-4)
    assert math.isclose(claims["1-learns"].measured, 0.00794, abs_tol=5e-5)
    assert claims["3-similarity"].measured == [1, 1, 3, 8, 13]
    assert claims["7-depth"].measured == [1, 1, 3, 5, 8]
    for name in ("report.md", "probes.png", "similarity_newton.png", "similarity_gd.png", "depth.png",
                 "training.png"):
        assert (tmp_path / "newton" / name).stat().st_size > 1000
