"""The softmax-limit reproduction (Boursier & Boyer): its plan, trajectories and claim rules."""

from __future__ import annotations

import json
import math

import pytest
import torch

from iclreg.experiments import softmax_limit_claims as slc
from iclreg.experiments import softmax_limit_measure as measure
from iclreg.experiments.softmax_limit import (
    NOISE_VAR,
    QUICK,
    TOY,
    TRAIN_TASK,
    W_VAR,
    Sizes,
    SoftmaxLimit,
    concentration_section,
    conserved,
    max_drift,
    mean,
    stability_section,
    training_section,
)
from iclreg.tasks import build as build_task
from iclreg.theory import gradient_flow, limit_mse
from iclreg.train import resolve, train_plan
from iclreg.train.loop import group_key

SMALL = Sizes(lengths=(16, 64), draws=2, reps=2, rademacher=(64, 256), train_lengths=(10, 40), seeds=2,
              steps=20, lr=0.05, batch=8, test_prompts=32)  # steps >= 20: checkpoint_every = steps // 20


def test_plan_holds_the_configs_of_the_former_sweep():
    """One run per (L, activation, seed) with exactly the config the former sweep trained."""
    plan = SoftmaxLimit().plan(QUICK)
    assert len(plan) == len(QUICK.train_lengths) * 2 * QUICK.seeds
    for L in QUICK.train_lengths:
        for activation in ("softmax", "linear"):
            for seed in range(QUICK.seeds):
                former = resolve({
                    "task": TRAIN_TASK.format(n=L + 1), "model": f"reduced_attention:activation={activation}",
                    "optimizer": {"name": "sgd", "lr": 0.05},
                    "train": {"steps": 2000, "batch": 128, "loss": "query", "seed": seed},
                    "eval": {"samples": 64, "estimators": []},
                    "run": {"device": "cpu", "checkpoint_every": 100, "keep": 21, "log_every": 20,
                            "figures": False}})  # the report draws the figures
                assert plan[f"L{L}_{activation}/seed{seed}"] == former


def test_seeds_of_one_length_and_activation_train_as_one_ensemble():
    plan = SoftmaxLimit().plan(SMALL)
    keys = {name: group_key(config) for name, config in plan.items()}
    assert keys["L10_softmax/seed0"] == keys["L10_softmax/seed1"]
    assert len({keys[f"L{L}_{a}/seed0"] for L in (10, 40) for a in ("softmax", "linear")}) == 4


def test_helpers():
    assert mean([[1.0, 2.0], [3.0, 6.0]]) == [2.0, 4.0]
    assert max_drift([1.0, 1.5, 0.25]) == 0.75
    A = [torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.zeros(2, 2)]
    assert conserved({"A": A, "b": [1.0, 2.0]}) == [4.0, -4.0]  # 1 + 4 - 1, 0 - 4


def test_trajectory_replays_checkpoints_in_float64(tmp_path):
    """Risk and (A, b) at the initialisation and every checkpoint, in float64, against the
    reduced attention written out by hand."""
    config = SoftmaxLimit().plan(SMALL)["L10_softmax/seed0"]
    from iclreg.experiments import Runs

    runs = Runs(train_plan({"r": config}, tmp_path), "cpu")
    test = build_task(TRAIN_TASK.format(n=11)).sample(16, seed=1, step=0, dtype=torch.float64)
    Sigma = build_task(TRAIN_TASK.format(n=2)).covariance
    record = measure.trajectory(runs, "r", test, Sigma, with_gaps=True)
    assert record["step"] == list(range(21))  # the initialisation, then checkpoint_every = 1
    assert all(A.dtype == torch.float64 for A in record["A"])
    assert len(record["output"]) == len(record["gradient"]) == 21
    for A, b, risk in zip(record["A"], record["b"], record["risk"], strict=True):
        ctx, ys, q = test.x[:, :-1], test.y[:, :-1], test.x[:, -1]
        p = torch.softmax(torch.einsum("bld,de,be->bl", ctx, A, q), dim=1)  # (B, L)
        expected = float(((b * (p * ys).sum(1) - test.y[:, -1]) ** 2).mean())
        assert risk == pytest.approx(expected, rel=1e-12)
    assert record["A"][0].tolist() != record["A"][-1].tolist()  # SGD moved A


def _synthetic(gaps: dict[int, float], linear: dict[int, float], output: list[float]) -> tuple[dict, list]:
    """Trajectories whose softmax risk sits ``gaps[L]`` above the infinite-L flow from their start,
    the linear one ``linear[L]`` above softmax, and softmax output gaps ``output``."""
    steps = [0, 5, 10]
    A0 = torch.eye(5, dtype=torch.float64) * 0.3
    Sigma = build_task(TRAIN_TASK.format(n=2)).covariance
    A_t, b_t = gradient_flow(A0, 0.5, Sigma, [0.05 * s for s in steps], w_var=W_VAR)
    flow = [float(limit_mse(A_t[i], b_t[i], Sigma, W_VAR, NOISE_VAR)) for i in range(len(steps))]
    traj = {}
    for L, gap in gaps.items():
        soft = [r + gap for r in flow]
        base = {"step": steps, "A": [A0] * 3, "b": [0.5] * 3, "output": output, "gradient": [0.2] * 3}
        traj[(L, "softmax")] = [{**base, "risk": soft}]
        traj[(L, "linear")] = [{**base, "risk": [r + linear[L] for r in soft]}]
    return traj, flow


@pytest.mark.parametrize(("gaps", "holds"), [((0.3, 0.2, 0.09), True), ((0.3, 0.2, 0.11), False),
                                             ((0.3, 0.31, 0.05), False)])
def test_tracks_flow_rule(gaps, holds):
    """Falls with L, and the last gap below a third of the first (the former rule)."""
    lengths = (10, 40, 160)
    sizes = Sizes(**{**SMALL.__dict__, "train_lengths": lengths, "seeds": 1, "steps": 10})
    traj, _ = _synthetic(dict(zip(lengths, gaps, strict=True)), dict.fromkeys(lengths, 0.1), [0.1] * 3)
    section = training_section(sizes, traj, build_task(TRAIN_TASK.format(n=2)).covariance)
    claims = {c.id: c for c in section.claims}
    measured = claims["3-tracks-flow"].measured
    assert list(measured) == ["L = 10", "L = 40", "L = 160"]
    assert list(measured.values()) == pytest.approx(list(gaps), abs=1e-12)
    assert claims["3-tracks-flow"].holds is holds
    assert claims["3-softmax-vs-linear"].holds is False  # equal gaps do not fall strictly
    assert claims["3-conservation"].holds and isinstance(claims["3-conservation"].measured["drift"], float)


@pytest.mark.parametrize(("output", "holds"), [([0.1, 0.29, 0.2], True), ([0.1, 0.31, 0.2], False)])
def test_stability_rule(output, holds):
    """Every checkpoint within 3x of the gap at initialisation."""
    sizes = Sizes(**{**SMALL.__dict__, "seeds": 1, "steps": 10})
    traj, _ = _synthetic({10: 0.3, 40: 0.1}, {10: 0.2, 40: 0.1}, output)
    claim = stability_section(sizes, traj).claims[0]
    assert claim.measured == {"output max": max(output), "output at init": 0.1, "gradient max": 0.2,
                              "gradient at init": 0.2}
    assert claim.holds is holds


def test_bayes_end_is_reached_by_a_long_flow():
    """At 20 times the quick flow time the flow from a seed's start is Bayes-optimal."""
    Sigma = build_task(TRAIN_TASK.format(n=2)).covariance
    start = {"A": [torch.eye(5, dtype=torch.float64) * 0.2], "b": [0.5]}
    flows = measure.flows([start], [0.0, 50.0, 2000.0], Sigma)
    claims = {c.id: c for c in slc.flow_claims(measure.flow_end(flows, Sigma), 2000.0)}
    assert claims["3-bayes-end"].holds and claims["3-conservation"].holds
    assert claims["3-bayes-end"].measured["excess risk"] < 1e-4
    assert math.isfinite(claims["3-conservation"].measured["||A||^2 moved"])


def test_concentration_plot_has_a_band_for_every_curve_and_tex_labels():
    """Six curves (output and gradient by covariance), each with its 95% band around it; the
    covariances of one quantity drawn in distinct colours and dashes; no ASCII "rho=" anywhere."""
    section = concentration_section(TOY)
    plot = section.figures["concentration.png"]
    series, bands = plot.args[0], plot.kwargs["bands"]
    assert plot.kind == "lines" and len(series) == 6 and set(bands) == set(series)
    for label, (xs, ys) in series.items():
        assert len(bands[label]) == len(xs) == len(TOY.lengths)
        assert all(lo < y < hi for (lo, hi), y in zip(bands[label], ys, strict=True)), label
    for quantity in ("output", "gradient"):
        curves = [k for k in series if k.startswith(quantity)]
        looks = {(plot.kwargs["colors"][k], plot.kwargs["styles"][k]) for k in curves}
        assert len(looks) == 3
    assert r"output, Toeplitz $\rho = 0.5$" in series
    shown = [*series, *map(str, plot.args[1:]), *section.text]
    assert not any("rho=" in text for text in shown)
    assert any("coincide" in line or "differ" in line for line in section.text)
    plot.draw()  # bands on the log axis draw


def test_limit_errors_keep_the_standard_error_over_draws():
    """Every mean squared error comes with its standard error over the weight draws; the means
    are the claims' numbers, unchanged by it."""
    cov = torch.eye(3, dtype=torch.float64)
    errors = measure.limit_errors(cov, [16, 32], draws=3, reps=2, seed=1)
    for key in ("output", "gradient"):
        assert len(errors[f"{key}_se"]) == 2
        assert all(0 < se < math.inf for se in errors[f"{key}_se"])
    one = measure.limit_errors(cov, [16], draws=1, reps=2, seed=1)
    assert math.isnan(one["output_se"][0])


@pytest.mark.slow
def test_quick_softmax_limit_reproduction(tmp_path, capsys):
    from iclreg.cli import main

    out = tmp_path / "sl"
    assert main(["reproduce", "softmax-limit", "--quick", "--out", str(out), "--json"]) == 0
    claims = {c["id"]: c for c in json.loads(capsys.readouterr().out)["claims"]}
    assert len(claims) == 8 and all(c["holds"] for c in claims.values())
    for name in ("concentration.png", "rademacher.png", "training.png", "stability.png"):
        assert (out / name).stat().st_size > 1000
