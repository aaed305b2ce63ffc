"""The reproduction pattern: claims JSON, report, bad input; the quick run itself is slow."""

from __future__ import annotations

import json

import pytest

from iclreg.cli import main
from iclreg.experiments import REPRODUCTIONS, Claim, Reproduction, write_report
from iclreg.train import load_config
from iclreg.train.metrics import read_metrics


def test_claims_json_and_report(tmp_path):
    result = Reproduction(paper="p", title="A paper", mode="quick", seconds=3.0, claims=[
        Claim("1", "a holds", 0.5, 0.51, "0.02", True),
        Claim("2", "b fails", "statement", [1, 2], "exact", False, "fig.png")])
    write_report(result, tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "1 of 2 claims hold" in report and "| 2 | b fails | statement | 1, 2 | exact | **no** |" in report
    data = json.loads((tmp_path / "claims.json").read_text())
    assert data == {"paper": "p", "mode": "quick", "claims": [
        {"id": "1", "statement": "a holds", "published": 0.5, "measured": 0.51, "tolerance": "0.02",
         "holds": True},
        {"id": "2", "statement": "b fails", "published": "statement", "measured": [1, 2],
         "tolerance": "exact", "holds": False}]}


def test_unknown_paper_is_a_one_line_error(tmp_path, capsys):
    assert main(["reproduce", "nosuchpaper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown paper 'nosuchpaper'" in err[0] and "demystified" in err[0]
    assert not (tmp_path / "o").exists()
    assert "demystified" in REPRODUCTIONS


@pytest.mark.slow
def test_quick_demystified_reproduction(tmp_path, capsys):
    out = tmp_path / "he"
    assert main(["reproduce", "demystified", "--quick", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["paper"] == "demystified" and data["mode"] == "quick"
    ids = {c["id"] for c in data["claims"]}
    assert {"1-multi-head", "2-H1", "2-Hge2", "3-KQ", "4-H1", "5-length"} <= ids
    for name in ("report.md", "estimators.png", "loss_curves.png", "heads_H2.png", "lengths.png"):
        assert (out / name).stat().st_size > 1000


def test_demystified_omega_is_compared_in_the_published_normalisation():
    """The published |omega| 0.13 is read off figures of K^T Q / sqrt(d+2); ours is K^T Q / sqrt(d+1)."""
    from iclreg.experiments.demystified import magnitude_claim

    factor = (7 / 6) ** 0.5  # sqrt((d+2)/(d+1)) at d = 5: ours / theirs
    ours = 0.13 * factor
    claim = magnitude_claim([[-ours, ours], [ours, -ours]], [[-3.5, 3.5], [3.4, -3.6]])
    assert claim.measured == {"omega (figures)": 0.13, "omega (ours)": round(ours, 4), "mu": 3.5}
    assert claim.holds and "sqrt(d+2)" in claim.statement
    low = magnitude_claim([[0.09 * factor, -0.09 * factor]], [[3.5, -3.5]])  # 0.09 in their figures
    assert low.measured["omega (figures)"] == 0.09 and not low.holds  # beyond 25% of 0.13
    high = magnitude_claim([[0.17, -0.17]], [[3.5, -3.5]])  # 0.17 ours (> 1.25 x 0.13) is 0.157 theirs
    assert high.holds and high.measured["omega (figures)"] == round(0.17 / factor, 4)


@pytest.mark.slow
def test_quick_newton_reproduction(tmp_path, capsys):
    out = tmp_path / "newton"
    assert main(["reproduce", "newton", "--quick", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ids = {c["id"]: c for c in data["claims"]}
    assert {"1-learns", "2-probes", "3-similarity", "4-newton-linear", "4-gd-exponential",
            "5-accuracy", "6-lstm", "7-depth"} <= set(ids)
    for name in ("report.md", "probes.png", "similarity_newton.png", "similarity_gd.png", "depth.png",
                 "training.png"):
        assert (out / name).stat().st_size > 1000


def test_newton_pipeline_at_toy_size(tmp_path, capsys, monkeypatch):
    """Every part runs end to end at a toy size (the claims need the quick size to hold)."""
    from iclreg.experiments import newton

    toy = newton.Sizes(d=3, n=7, model="gpt2:layers=2,width=16,heads=2", steps=40, batch=16, lr=1e-3,
                       lstm="lstm:hidden=8,layers=1", lstm_steps=40, curriculum={}, samples=200)
    monkeypatch.setattr(newton, "QUICK", toy)
    out = tmp_path / "newton"
    assert main(["reproduce", "newton", "--quick", "--out", str(out), "--json"]) == 0
    claims = {c["id"]: c for c in json.loads(capsys.readouterr().out)["claims"]}
    assert {"1-learns", "2-probes", "3-similarity", "4-newton-linear", "4-gd-exponential", "4-ols",
            "5-accuracy", "5-newton-vs-gd", "6-lstm", "7-depth"} == set(claims)
    evals = [r for r in read_metrics(out / "runs" / "gpt2" / "metrics.jsonl") if "eval" in r]
    assert [r["step"] for r in evals] == list(range(2, 41, 2))  # 20 evaluations along training
    for name in ("report.md", "probes.png", "training.png", "depth.png", "similarity_newton_ill.png"):
        assert (out / name).stat().st_size > 500
    assert "## Error along training" in (out / "report.md").read_text()


def test_a_foreign_output_directory_is_never_replaced(tmp_path, capsys):
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert main(["reproduce", "demystified", "--quick", "--out", str(precious)]) == 2
    assert "is not an iclreg report directory" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"
    assert main(["demo", "--out", str(precious)]) == 2
    assert (precious / "thesis.tex").exists()


@pytest.mark.slow
def test_quick_softmax_limit_reproduction(tmp_path, capsys):
    out = tmp_path / "sl"
    assert main(["reproduce", "softmax-limit", "--quick", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    claims = {c["id"]: c for c in data["claims"]}
    assert claims["1-rademacher"]["holds"] and claims["2-slopes"]["holds"]
    assert claims["3-conservation"]["holds"] and claims["3-bayes-end"]["holds"]
    for name in ("concentration.png", "training.png", "stability.png"):
        assert (out / name).stat().st_size > 1000


def test_softmax_limit_pipeline_at_toy_size(tmp_path, capsys, monkeypatch):
    """Every part runs end to end at a toy size (the claims need the quick size to hold)."""
    from iclreg.experiments import softmax_limit

    toy = softmax_limit.Sizes(lengths=(16, 64), draws=2, reps=2, rademacher=(64, 256),
                              train_lengths=(10, 40), seeds=2, steps=40, lr=0.05, batch=16, test_prompts=64)
    monkeypatch.setattr(softmax_limit, "QUICK", toy)
    out = tmp_path / "sl"
    assert main(["reproduce", "softmax-limit", "--quick", "--out", str(out), "--json"]) == 0
    claims = {c["id"]: c for c in json.loads(capsys.readouterr().out)["claims"]}
    assert {"1-gaussian-limit", "3-tracks-flow", "3-softmax-vs-linear", "3-conservation", "3-bayes-end",
            "4-stability"} <= set(claims)
    assert claims["3-conservation"]["holds"]  # the flow is exact at any size
    assert (out / "runs" / "L40_softmax" / "train.seed=1" / "config.yaml").is_file()
    for name in ("training.png", "stability.png", "report.md"):
        assert (out / name).stat().st_size > 500


def test_multihead_pipeline_at_toy_size(tmp_path, capsys, monkeypatch):
    """Every part runs end to end at a toy size (the claims need the quick size to hold)."""
    from iclreg.experiments import multihead

    toy = multihead.Sizes(lengths=(10, 20), family_lengths=(10, 20, 40), scenario_D=10, steps=20, lr=0.01,
                          batch=32, test_prompts=256, family_prompts=512, dims=(3,), seeds=2)
    monkeypatch.setattr(multihead, "QUICK", toy)
    out = tmp_path / "mh"
    assert main(["reproduce", "multihead", "--quick", "--out", str(out), "--json"]) == 0
    claims = {c["id"]: c for c in json.loads(capsys.readouterr().out)["claims"]}
    assert {"1-order", "1-constant", "1-derivation", "1-trained", "2-scenarios", "2-local", "3-heads",
            "3-dimension"} <= set(claims)
    for name in ("loss_vs_D.png", "scenarios.png", "dimension.png", "report.md"):
        assert (out / name).stat().st_size > 500
    assert (out / "runs" / "local_d5_D10_H2_s1" / "config.yaml").is_file()


def test_sigterm_leaves_no_half_written_report(tmp_path):
    """A reproduction stopped by SIGTERM removes its temporary directory and writes no report."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "stopped"
    proc = subprocess.Popen([sys.executable, "-m", "iclreg.cli", "reproduce", "softmax-limit", "--quick",
                             "--out", str(out)], cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and not any(tmp_path.glob(".stopped.*")):
        time.sleep(0.2)
    assert any(tmp_path.glob(".stopped.*")), "the reproduction never started writing"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert not out.exists() and not any(tmp_path.glob(".stopped.*"))


def test_newton_full_mode_path_at_toy_size(tmp_path, capsys, monkeypatch):
    """Full mode's own path (curriculum, a second model trained on ill-conditioned prompts)."""
    from iclreg.experiments import newton

    toy = newton.Sizes(d=6, n=9, model="gpt2:layers=2,width=16,heads=2", steps=30, batch=8, lr=1e-3,
                       lstm="lstm:hidden=8,layers=1", lstm_steps=30, samples=100,
                       curriculum={"d": {"start": 3, "end": 6, "inc": 1, "every": 5},
                                   "n": {"start": 5, "end": 9, "inc": 2, "every": 5}})
    monkeypatch.setattr(newton, "FULL", toy)
    out = tmp_path / "full"
    assert main(["reproduce", "newton", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "full"
    ill = load_config(out / "runs" / "gpt2_ill" / "config.yaml")
    assert "cond=100" in ill.task and ill.curriculum.d.end == 6
    assert "500,000" in (out / "report.md").read_text()


def test_newton_runs_are_kept_and_reused(tmp_path, capsys, monkeypatch):
    """With --runs the training runs live outside the report and a second call reuses them."""
    from iclreg.experiments import newton

    toy = newton.Sizes(d=3, n=7, model="gpt2:layers=2,width=16,heads=2", steps=20, batch=8, lr=1e-3,
                       lstm="lstm:hidden=8,layers=1", lstm_steps=20, curriculum={}, samples=100)
    monkeypatch.setattr(newton, "QUICK", toy)
    runs = tmp_path / "runs"
    argv = ["reproduce", "newton", "--quick", "--runs", str(runs), "--json"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    stamp = (runs / "quick" / "gpt2" / "eval.json").stat().st_mtime_ns
    assert not (tmp_path / "a" / "runs").exists()
    assert main([*argv, "--out", str(tmp_path / "b")]) == 0
    assert json.loads(capsys.readouterr().out) == first  # same runs, same claims
    assert (runs / "quick" / "gpt2" / "eval.json").stat().st_mtime_ns == stamp
    assert main(["reproduce", "newton", "--quick", "--runs", str(tmp_path / "a" / "r"),
                 "--out", str(tmp_path / "a")]) == 2
    assert "inside --out" in capsys.readouterr().err
    assert main(["reproduce", "multihead", "--quick", "--runs", str(runs)]) == 2
    assert "--runs is not supported by multihead; it is by: newton" in capsys.readouterr().err
