"""train_plan: the one way reproductions train -- reuse, resume, refuse, and group."""

from __future__ import annotations

import json

import pytest

from iclreg.errors import UsageError
from iclreg.train import load_config, train_plan
from iclreg.train.loop import Trainer
from iclreg.train.metrics import read_metrics
from iclreg.train.plan import finished


def _plan(write_config, seeds=(0, 1), **changes):
    return {f"s{s}": load_config(write_config({"train": {"seed": s}, **changes}, f"s{s}.yaml"))
            for s in seeds}


def test_a_plan_trains_every_run_and_a_second_call_reuses_them(write_config, tmp_path):
    plan = _plan(write_config)
    out = tmp_path / "runs"
    dirs = train_plan(plan, out)
    assert list(dirs) == ["s0", "s1"] and all(finished(d) for d in dirs.values())
    stamps = {n: (d / "eval.json").stat().st_mtime_ns for n, d in dirs.items()}
    metrics = {n: (d / "metrics.jsonl").read_bytes() for n, d in dirs.items()}
    assert metrics["s0"] != metrics["s1"]  # two seeds, two runs
    train_plan(plan, out)
    assert {n: (d / "eval.json").stat().st_mtime_ns for n, d in dirs.items()} == stamps
    assert {n: (d / "metrics.jsonl").read_bytes() for n, d in dirs.items()} == metrics


def test_a_stopped_plan_resumes_to_the_uninterrupted_result(write_config, tmp_path, monkeypatch):
    plan = _plan(write_config)
    clean = train_plan(plan, tmp_path / "clean")
    real_save = Trainer._save
    calls = []

    def stop_after_first_checkpoint(self):
        real_save(self)
        calls.append(self.step)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "_save", stop_after_first_checkpoint)
        with pytest.raises(KeyboardInterrupt):
            train_plan(plan, tmp_path / "stopped")
    assert calls == [10] and not finished(tmp_path / "stopped" / "s0")
    dirs = train_plan(plan, tmp_path / "stopped")
    for name in plan:
        assert (dirs[name] / "metrics.jsonl").read_bytes() == (clean[name] / "metrics.jsonl").read_bytes()
        assert json.loads((dirs[name] / "eval.json").read_text()) == json.loads(
            (clean[name] / "eval.json").read_text())
    assert [r["step"] for r in read_metrics(dirs["s0"] / "metrics.jsonl") if "eval" in r][-1] == 30


def test_a_run_of_another_config_is_refused_before_anything_is_written(write_config, tmp_path):
    out = tmp_path / "runs"
    train_plan(_plan(write_config, seeds=(0,)), out)
    # the new run comes first: it must not be started when a later kept run turns out foreign
    other = {**_plan(write_config, seeds=(5,)), **_plan(write_config, seeds=(0,), optimizer={"lr": 0.02})}
    with pytest.raises(UsageError, match="holds a run with another optimizer"):
        train_plan(other, out)
    assert not (out / "s5").exists()  # the new run of the same plan was not started


@pytest.mark.parametrize("name", ["", "../x", "a//b", "a/./b", "/abs"])
def test_a_bad_run_name_is_refused(write_config, tmp_path, name):
    with pytest.raises(UsageError, match="run name"):
        train_plan({name: load_config(write_config())}, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
