"""The ``iclreg compare`` and ``demo`` commands, run through the real entry point."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from iclreg.cli import main


def run_cli(*argv: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iclreg", *argv], capture_output=True, text=True, timeout=timeout
    )


def test_compare_json_has_the_documented_shape(tmp_path):
    plot = tmp_path / "curve.png"
    proc = run_cli(
        "compare", "--task", "gaussian:d=3,n=8,noise_std=0.5", "--estimator", "ols",
        "--estimator", "ridge:lam=0.25", "--samples", "400", "--seed", "3", "--json",
        "--plot", str(plot),
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["task"]["name"] == "gaussian" and out["task"]["d"] == 3
    assert out["samples"] == 400 and out["seed"] == 3 and out["k"] == list(range(8))
    assert list(out["results"]) == ["ols", "ridge:lam=0.25"]
    for curve in out["results"].values():
        assert len(curve["mse"]) == 8 and len(curve["ci95"]) == 8
        for m, (lo, hi) in zip(curve["mse"], curve["ci95"], strict=True):
            assert lo <= m <= hi
    # with no examples every estimator predicts 0: error E[y^2] = d w_std^2 + sigma^2 = 3.25
    m0, (lo0, hi0) = out["results"]["ols"]["mse"][0], out["results"]["ols"]["ci95"][0]
    assert lo0 - 0.2 < 3.25 < hi0 + 0.2 and abs(m0 - 3.25) < 0.6
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_is_deterministic_in_the_seed(capsys):
    argv = ["compare", "--task", "gaussian:d=2,n=5", "--estimator", "averaging",
            "--samples", "50", "--json"]
    assert main([*argv, "--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main([*argv, "--seed", "1"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert main([*argv, "--seed", "2"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert first["results"] == again["results"]
    assert first["results"] != other["results"]


def test_compare_table_lists_every_estimator(capsys):
    assert main(["compare", "--task", "gaussian:d=2,n=4", "--estimator", "zero",
                 "--estimator", "knn:k=1", "--samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "zero" in out and "knn:k=1" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3]
    assert all(math.isfinite(float(v)) for r in rows for v in r[1:])


@pytest.mark.slow
def test_demo_writes_report_and_figures(tmp_path):
    out = tmp_path / "demo"
    proc = run_cli("demo", "--out", str(out), "--samples", "1500", timeout=1800)  # reproductions too
    assert proc.returncode == 0, proc.stderr
    index = (out / "index.html").read_text()
    assert "tour/he_estimators.png" in index and "demystified/report.md" in index
    out = out / "tour"
    report = (out / "report.md").read_text()
    assert "exact Bayes risk" in report and "he_estimators.png" in report
    for name in ("he_estimators.png", "standard_estimators.png", "results.json"):
        assert (out / name).stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    exact = results["exact_bayes_risk"]["40"]
    lo, hi = results["he"]["results"]["ridge"]["ci95"][40]
    assert lo - 0.01 < exact < hi + 0.01
