"""What ``iclreg`` writes to stderr when it is not a terminal (a batch job's ``2>log``): progress
lines with the loss and the ETA, every phase, and ``--quiet`` / ``--verbose``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import yaml

from iclreg.cli import main
from iclreg.experiments import runner
from iclreg.experiments.base import Experiment, Section
from iclreg.report.plots import Plot
from iclreg.train.metrics import read_metrics

TINY = {
    "task": "gaussian:d=3,n=12,noise_std=0.1",
    "model": "softmax_attention:heads=2",
    "optimizer": {"name": "adam", "lr": 0.01},
    "train": {"steps": 20, "batch": 16, "loss": "query", "seed": 0},
    "eval": {"samples": 64, "estimators": ["ols"]},
    "run": {"checkpoint_every": 10, "log_every": 5},
}
STEP = re.compile(r"^iclreg: train: step (\d+)/(\d+) \((\d+)%\), "
                  r"(?:loss (\S+)(?: \(logged at step \d+\))?, )?([\d.]+) step/s, "
                  r"(ETA [\w .]+|done in [\w .]+)$")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    return path


@pytest.fixture(autouse=True)
def every_update(monkeypatch):
    """A progress line at every step, as the tests cannot wait 30 s."""
    monkeypatch.setenv("ICLREG_LOG_EVERY", "0")


def test_train_logs_steps_losses_eta_and_phases(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run)]) == 0
    err = capsys.readouterr().err.splitlines()
    steps = [STEP.match(line) for line in err if line.startswith("iclreg: train: ")]
    assert all(steps) and [int(m[1]) for m in steps] == list(range(1, 21))
    assert all(m[2] == "20" and int(m[3]) == round(100 * int(m[1]) / 20) for m in steps)
    assert all(m[6].startswith("ETA ") for m in steps[:-1]) and steps[-1][6].startswith("done in ")
    # the loss shown is the latest logged mean (metrics.jsonl, every 5 steps), from step 5 on
    losses = {r["step"]: r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r}
    for m in steps:
        logged = [s for s in losses if s <= int(m[1])]
        assert m[4] == (f"{losses[max(logged)]:.4g}" if logged else None)
        stale = bool(logged) and max(logged) < int(m[1])  # a loss from an earlier step says which
        assert ("(logged at step" in m[0]) == stale
        assert not stale or f"(logged at step {max(logged)})" in m[0]
    phases = [line for line in err if not line.startswith("iclreg: train: ")]
    assert phases[:1] == [f"iclreg: training {run}, steps 0 to 20 ..."]
    assert "iclreg: final evaluation ..." in phases
    for name in (f"training {run}, steps 0 to 20", "final evaluation", f"figures of {run}"):
        done = re.compile(rf"iclreg: {re.escape(name)} done in [\d.]+ s")
        assert any(done.fullmatch(line) for line in phases), name
    # the order a reader follows: the last step, the evaluation, then the figures
    assert err.index(f"iclreg: figures of {run} ...") > err.index("iclreg: final evaluation ...") \
        > err.index(next(line for line in err if "step 20/20" in line))


def test_a_diverged_run_logs_where_it_stopped_then_the_error(config, tmp_path, capsys):
    nan = yaml.safe_load(config.read_text())
    nan["optimizer"] = {"name": "sgd", "lr": 1e9}
    nan["run"] = {"checkpoint_every": 1, "log_every": 1}
    config.write_text(yaml.safe_dump(nan))
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"iclreg: training {tmp_path / 'run'}, steps 0 to 20 ..."
    stopped = [line for line in err if line.startswith("iclreg: train: ") and "stopped in" in line]
    assert len(stopped) == 1 and STEP.match(stopped[0].replace("stopped in", "done in"))
    assert err[-1].startswith("iclreg: training stopped: loss became ")  # the error comes last


@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_leaves_stderr_empty(config, tmp_path, capsys, where):
    argv = ["train", str(config), "--out", str(tmp_path / "run")]
    assert main(["-q", *argv] if where == "before" else [*argv, "-q"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and out.startswith("run written to")
    assert (tmp_path / "run" / "eval.json").is_file()


def test_verbose_adds_debug_lines_with_logger_names(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "--verbose"]) == 0
    err = [line.split(" ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert "DEBUG iclreg.train.loop: checkpoint of step 10" in err
    assert f"DEBUG iclreg.train.runs: writing {run / 'eval.json'}" in err
    assert f"INFO iclreg.train.loop: training {run}, steps 0 to 20 ..." in err


def test_quiet_and_verbose_together_is_a_usage_error(config, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["-v", "train", str(config), "--out", str(tmp_path / "run"), "-q"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "give --quiet or --verbose, not both" in err[0]
    assert not (tmp_path / "run").exists()


def test_a_sweep_announces_its_loops_and_summary(config, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["train", str(config), "--out", str(out), "--sweep", "train.seed=0,1"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "iclreg: training 2 runs in 1 loop, 40 steps in all ..."
    assert f"iclreg: training 2 members in {out}, steps 0 to 20 ..." in err
    assert [line for line in err if "step 40/40" in line][0].endswith(tuple(f"{d} s" for d in "0123456789"))
    assert any(line.startswith(f"iclreg: summary of {out} done in") for line in err)


def test_compare_logs_its_prompts_unless_json(capsys):
    argv = ["compare", "--task", "gaussian:d=3,n=5", "--samples", "2500", "--estimator", "ols"]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(",")[0] for line in err] == ["iclreg: evaluation: prompt 1024/2500 (41%)",
                                                    "iclreg: evaluation: prompt 2048/2500 (82%)"]
    assert main([*argv, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["samples"] == 2500


def test_a_batch_job_log_from_the_real_command(config, tmp_path):
    """``iclreg train CFG 2>log`` in a process of its own, stderr a file."""
    log = tmp_path / "log"
    env = {**os.environ, "ICLREG_LOG_EVERY": "0", "OMP_NUM_THREADS": "1"}
    with log.open("w") as stderr:
        done = subprocess.run([sys.executable, "-m", "iclreg.cli", "train", str(config), "--out",
                               str(tmp_path / "run")], stderr=stderr, stdout=subprocess.PIPE, text=True,
                              env=env, timeout=300)
    text = log.read_text()
    assert done.returncode == 0, text
    lines = text.splitlines()
    assert sum(bool(STEP.match(line)) for line in lines) == 20
    assert "iclreg: final evaluation ..." in lines and f"iclreg: figures of {tmp_path / 'run'} ..." in lines


def test_an_iclreg_warning_is_one_log_line():
    """A diverging ``gd`` warns as ``iclreg: warning: ...`` (Python's default format showed the
    file, the line number and a line of source code)."""
    done = subprocess.run([sys.executable, "-m", "iclreg.cli", "compare", "--task", "gaussian:d=5,n=41",
                           "--estimator", "gd:steps=10,lr=0.1", "--samples", "64"], capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if "warning" in line.lower()]
    assert len(warned) == 1 and warned[0].startswith("iclreg: warning: gd:steps=10,lr=0.1 diverges")
    assert ".py:" not in done.stderr and "DivergenceWarning" not in done.stderr


@dataclass(frozen=True)
class _Toy(Experiment):
    """A reproduction of one tiny run and one figure."""

    name: ClassVar[str] = "toy"
    title: ClassVar[str] = "A toy reproduction"
    modes: ClassVar[dict[str, Any]] = {"quick": 20, "full": 20}
    toy: ClassVar[Any] = 20

    def plan(self, sizes: Any) -> dict:
        return {"tiny": self.config(TINY["task"], TINY["model"], train={**TINY["train"], "steps": sizes},
                                    eval=TINY["eval"], run={"checkpoint_every": 10, "log_every": 5})}

    def analyse(self, runs: Any, sizes: Any) -> list[Section]:
        plot = Plot("lines", {"a": ([1, 2], [1.0, 0.5])}, "k", "error")
        return [Section("Toy", ["a toy section"], figures={"toy.png": plot})]


class _Registry:
    """Two toy reproductions in the demo's registry."""

    def names(self) -> list[str]:
        return ["tour", "second"]

    def get(self, name: str) -> type[Experiment]:
        return _Toy


def test_a_demo_announces_each_reproduction_and_its_phases(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(runner, "REPRODUCTIONS", _Registry())
    caplog.set_level("INFO", logger="iclreg")
    runner.demo(tmp_path / "demo", progress=False)
    texts = [r.getMessage() for r in caplog.records]
    assert [t for t in texts if t.startswith("reproduction ")] == ["reproduction 1/2: tour",
                                                                  "reproduction 2/2: second"]
    for name in ("training the plan (1 run)", "analysis", "figures"):
        assert sum(t.startswith(f"toy: {name} done in") for t in texts) == 2, name
    reports = [t.split(" done")[0] for t in texts if ": report done in" in t]
    assert reports == ["tour: report", "second: report"]
    assert not any(t.startswith("train: step") for t in texts)  # progress off
