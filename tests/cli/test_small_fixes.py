"""Small fixes of issue 18, each through the real entry point or the function behind it: eval's
JSON names the n evaluated, a closed pipe ends quietly, compare's default estimators are said,
the terminal table says which k it skips, and the README's Python matches pyproject's."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from iclreg.analysis.evaluate import evaluate
from iclreg.cli import COMPARE_ESTIMATORS, main
from iclreg.report.tables import pick_rows, skipped_note, text_table
from iclreg.tasks import build as build_task
from iclreg.train import build_model, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_eval_reports_the_n_evaluated_and_the_n_trained():
    config = resolve({"task": "gaussian:d=3,n=12,noise_std=0.1", "model": "softmax_attention:heads=2",
                      "eval": {"samples": 8, "estimators": ["ols"]}})
    model = build_model(config)
    out = evaluate(model, config, build_task(config.task), n=20, samples=8)
    assert out["k"] == list(range(20)) and len(out["results"]["model"]["mse"]) == 20
    assert out["task"]["n"] == 20 and out["train_n"] == 12
    assert out["task"]["d"] == 3 and out["task"]["name"] == "gaussian"
    json.dumps(out)  # still one JSON object
    default = evaluate(model, config, build_task(config.task), samples=8)
    assert default["task"]["n"] == 12 == default["train_n"] and default["k"] == list(range(12))


def test_a_reader_that_closes_the_pipe_ends_quietly():
    # n = 20000 makes ~1.5 MB of JSON, far beyond a pipe's buffer, so the write meets the closed pipe
    argv = [sys.executable, "-m", "iclreg", "compare", "--task", "gaussian:d=1,n=20000", "--estimator",
            "zero", "--samples", "2", "--json"]
    producer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # head alone reads it
    first, _ = head.communicate(timeout=120)
    err = producer.stderr.read().decode()
    producer.stderr.close()
    assert producer.wait(timeout=120) == 0, err
    assert first == b"{"
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""


def test_compare_without_estimator_runs_and_names_the_default_set(capsys):
    assert main(["compare", "--task", "gaussian:d=2,n=4", "--samples", "20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "estimators: ols, bayes, averaging, knn:k=3 (default; choose with --estimator)"
    assert out[2].split() == ["k", *COMPARE_ESTIMATORS]
    assert main(["compare", "--task", "gaussian:d=2,n=4", "--samples", "20", "--json"]) == 0
    assert list(json.loads(capsys.readouterr().out)["results"]) == list(COMPARE_ESTIMATORS)
    assert main(["compare", "--task", "gaussian:d=2,n=4", "--samples", "20", "--estimator", "ols"]) == 0
    out = capsys.readouterr().out
    assert "default" not in out and out.splitlines()[1].split() == ["k", "ols"]


def test_compare_help_states_the_default(capsys):
    try:
        main(["compare", "--help"])
    except SystemExit:
        pass
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: ols, bayes, averaging, knn:k=3:" in help_text


def _curves(n: int) -> dict:
    return {"ols": {"mse": [float(i) for i in range(n)]}}


def test_the_table_says_which_k_it_shows():
    lines = text_table(list(range(41)), _curves(41)).splitlines()
    assert [int(row.split()[0]) for row in lines[2:-1]] == list(range(0, 41, 2))
    assert lines[-1] == "every 2nd k shown, 21 of 41; --json for all"
    lines = text_table(list(range(100)), _curves(100)).splitlines()
    assert [int(row.split()[0]) for row in lines[2:-1]] == [*range(0, 100, 5), 99]
    assert lines[-1] == "every 5th k shown and the last (k = 99), 21 of 100; --json for all"
    short = text_table(list(range(24)), _curves(24)).splitlines()
    assert len(short) == 2 + 24 and short[-1].split()[0] == "23"  # every k: no note
    assert skipped_note(24, list(range(24))) is None
    assert skipped_note(1000, pick_rows(1000)) == ("every 42nd k shown and the last (k = 999), 25 of 1000; "
                                                   "--json for all")
    assert skipped_note(301, pick_rows(301)) == ("every 13th k shown and the last (k = 300), 25 of 301; "
                                                 "--json for all")
    assert skipped_note(70, pick_rows(70)) == "every 3rd k shown, 24 of 70; --json for all"


def test_the_readme_asks_for_the_python_pyproject_requires():
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    version = re.fullmatch(r">=\s*(\d+\.\d+)", required).group(1)
    stated = set(re.findall(r"Python (\d+\.\d+)\+", (ROOT / "README.md").read_text()))
    assert stated == {version}
