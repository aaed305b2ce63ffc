"""train_plan: the one way reproductions train -- reuse, resume, refuse, and group."""

from __future__ import annotations

import json

import pytest

from iclreg import resources
from iclreg.errors import UsageError
from iclreg.train import load_config, train_plan
from iclreg.train.loop import Trainer
from iclreg.train.metrics import read_metrics
from iclreg.train.plan import finished, preflight_plan


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


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None


@pytest.mark.parametrize(("bad", "message"), [
    ("name", "run name"),
    ("foreign", "is not empty"),
    ("untrainable", "evaluating model, ols on 64 prompts .* needs about"),
    ("kept", "holds a run with another optimizer"),
])
def test_one_bad_run_of_a_plan_writes_nothing_at_all(write_config, tmp_path, monkeypatch, bad, message):
    """One pass (preflight_plan) checks every run before any file is written: a valid new run
    that comes first is not created when a later run is refused, whichever check refuses it."""
    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    out = tmp_path / "runs"
    plan = _plan(write_config, seeds=(0,))
    if bad == "name":
        plan["../x"] = plan["s0"]
    elif bad == "foreign":
        (out / "s1").mkdir(parents=True)
        (out / "s1" / "notes.txt").write_text("not a run")
        plan |= _plan(write_config, seeds=(1,))
    elif bad == "untrainable":
        plan["s1"] = load_config(write_config(), ["eval.n=100000000"])
    else:
        train_plan(_plan(write_config, seeds=(1,)), out)
        plan |= _plan(write_config, seeds=(1,), optimizer={"lr": 0.02})
    before = _tree(out)
    with pytest.raises(UsageError, match=message):
        train_plan(plan, out)
    assert _tree(out) == before and not (out / "s0").exists()
    with pytest.raises(UsageError, match=message):
        preflight_plan(plan, out)  # the same refusal, from the check alone
    assert _tree(out) == before


def test_preflight_plan_sorts_new_and_kept_runs(write_config, tmp_path):
    out = tmp_path / "runs"
    train_plan(_plan(write_config, seeds=(0,)), out)
    plan = _plan(write_config, seeds=(0, 1, 2))
    checked = preflight_plan(plan, out)
    assert checked.dirs == {name: out / name for name in plan} and checked.new == ("s1", "s2")
    assert list(checked.kept) == ["s0"] and checked.kept["s0"].train.seed == 0
    assert _tree(out / "s1") is None
