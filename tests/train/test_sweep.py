"""Sweeps trained as ensembles: exactness against runs trained alone, grouping, chunks,
divergence of one member, kill and resume."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.errors import TrainingError, UsageError
from iclreg.models import MODELS
from iclreg.train import load_config, load_run, train
from iclreg.train.metrics import read_metrics
from iclreg.train.sweep import run_sweep

F64 = {"run": {"dtype": "float64", "checkpoint_every": 10, "log_every": 5},
       "train": {"steps": 25}}


def last_weights(run_dir):
    last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return load_file(str(last / "model.safetensors"))


def losses(run_dir):
    return [(r["step"], r.get("loss"), r.get("eval")) for r in read_metrics(run_dir / "metrics.jsonl")]


@pytest.mark.parametrize("model", ["softmax_attention:heads=2", "linear_attention:layers=2"])
def test_member_of_an_ensemble_is_bit_identical_to_training_alone(write_config, tmp_path, model):
    config = write_config({**F64, "model": model})
    out = run_sweep(config, [], ["train.seed=0,1,2", "optimizer.lr=0.01,0.03",
                                 "task.noise_std=0.1,0.5"], tmp_path / "sweep")
    for seed, lr, noise in [(1, 0.03, 0.5), (2, 0.01, 0.1)]:
        alone = train(load_config(config, [f"train.seed={seed}", f"optimizer.lr={lr}",
                                           f"task.noise_std={noise}"]), tmp_path / f"alone{seed}")
        member = out / f"train.seed={seed},optimizer.lr={lr},task.noise_std={noise}"
        a, b = last_weights(alone), last_weights(member)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert losses(alone) == losses(member)
    rows = json.loads((out / "summary.json").read_text())
    assert len(rows) == 12 and all(r["steps"] == 25 and not r["diverged"] for r in rows)
    assert len({r["final_loss"] for r in rows}) == 12


# every registered family, at the sizes where torch's products fold size-1 dimensions (one head,
# one layer), and each engine that can train it; gpt2 and lstm have no ensemble form: a sweep
# trains their members one at a time
FAMILIES = [("softmax_attention:heads=1", "query", "auto"),
            ("softmax_attention:heads=1", "query", "autograd"), ("softmax_attention:heads=1", "all", "auto"),
            ("softmax_attention:heads=3", "query", "autograd"),
            ("linear_attention:layers=1", "all", "auto"), ("reduced_attention", "query", "auto"),
            ("reduced_attention", "query", "autograd"), ("cot:d=3,steps=3,lr=0.2", "chain", "auto"),
            ("cot:d=3,steps=3,lr=0.2", "chain", "autograd"), ("gpt2:layers=1,width=8,heads=1", "all", "auto"),
            ("lstm:hidden=8,layers=1", "all", "auto")]


def test_every_family_is_checked_below():
    assert {spec.split(":")[0] for spec, _, _ in FAMILIES} == set(MODELS.names())


@pytest.mark.parametrize(("model", "loss", "engine"), FAMILIES)
def test_every_family_s_member_is_bit_identical_to_training_alone(write_config, tmp_path, model, loss,
                                                                  engine):
    config = write_config({**F64, "model": model, "train": {"steps": 12, "loss": loss},
                           "task": "gaussian:d=3,n=9,noise_std=0.3", "run": {**F64["run"], "engine": engine},
                           "eval": {"samples": 32, "estimators": []}})
    out = run_sweep(config, [], ["train.seed=0,1,2"], tmp_path / "sweep")
    alone = train(load_config(config, ["train.seed=1"]), tmp_path / "alone")
    a, b = last_weights(alone), last_weights(out / "train.seed=1")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert losses(alone) == losses(out / "train.seed=1")


def test_heads_are_grouped_and_members_load_alone(write_config, tmp_path, caplog):
    config = write_config(F64)
    with caplog.at_level(logging.WARNING):
        out = run_sweep(config, [], ["model.heads=1,3", "train.seed=0,1,2"], tmp_path / "s",
                        max_members=2)
    assert "in 2 chunks of at most 2 members (--max-members)" in caplog.text
    model, cfg = load_run(out / "model.heads=3,train.seed=2")
    assert model.config.heads == 3 and cfg.train.seed == 2
    alone = train(load_config(config, ["model.heads=3", "train.seed=2"]), tmp_path / "alone")
    a, b = last_weights(alone), last_weights(out / "model.heads=3,train.seed=2")
    assert all(torch.equal(a[k], b[k]) for k in a)
    summary = (out / "summary.csv").read_text().splitlines()
    assert summary[0].startswith("model.heads,train.seed,member,final_loss") and len(summary) == 7


def test_a_sweep_whose_every_member_diverges_is_an_error_with_its_summary_written(write_config, tmp_path):
    config = write_config({"optimizer": {"name": "sgd"}, "train": {"steps": 30},
                           "run": {"checkpoint_every": 5, "log_every": 5}})
    with pytest.raises(TrainingError, match="all 2 members diverged"):
        run_sweep(config, [], ["optimizer.lr=1e9,1e10"], tmp_path / "s")
    rows = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert [r["diverged"] for r in rows] == [True, True]


def test_a_diverging_member_does_not_stop_the_others(write_config, tmp_path):
    config = write_config({"optimizer": {"name": "sgd"}, "train": {"steps": 30},
                           "run": {"checkpoint_every": 5, "log_every": 5}})
    out = run_sweep(config, [], ["optimizer.lr=0.01,1e9"], tmp_path / "s")
    rows = {r["optimizer.lr"]: r for r in json.loads((out / "summary.json").read_text())}
    assert rows["1e9"]["diverged"] and not rows["0.01"]["diverged"]
    assert rows["0.01"]["steps"] == 30
    assert "diverged" in read_metrics(out / "optimizer.lr=1e9" / "metrics.jsonl")[-1]
    for ckpt in (out / "optimizer.lr=1e9" / "checkpoints").glob("step_*"):  # only good ones
        weights = load_file(str(ckpt / "model.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.parametrize(
    ("sweep", "message"),
    [("train.seed", "is not key=v1,v2"), ("train.seed=1,1", "repeats a value"),
     ("train.seed=1,", "has an empty value"), ("model.heads=0,1", "heads must be at least 1")],
)
def test_bad_sweeps(write_config, tmp_path, sweep, message):
    with pytest.raises(UsageError, match=message):
        run_sweep(write_config(), [], [sweep], tmp_path / "s")
    assert not (tmp_path / "s" / "sweep.yaml").exists()


def test_killed_sweep_resumes_to_the_same_result(write_config, tmp_path):
    config = write_config({"train": {"steps": 300, "batch": 64},
                           "run": {"checkpoint_every": 30, "log_every": 10}})
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    sweep = ["--sweep", "train.seed=0,1", "--sweep", "optimizer.lr=0.01,0.02"]
    proc = subprocess.Popen([sys.executable, "-m", "iclreg", "train", str(config), *sweep, "--out",
                             str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    member = killed / "train.seed=1,optimizer.lr=0.02" / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (member.exists() and any(member.glob("step_*"))):
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["train", "--resume", str(killed)]) == 0
    assert main(["train", str(config), *sweep, "--out", str(straight)]) == 0
    for name in ("train.seed=0,optimizer.lr=0.01", "train.seed=1,optimizer.lr=0.02"):
        a, b = last_weights(straight / name), last_weights(killed / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert losses(straight / name) == losses(killed / name)


def test_sweep_block_in_the_config(write_config, tmp_path, capsys):
    config = write_config({"sweep": {"train.seed": [0, 1], "model.heads": [1, 2]},
                           "train": {"steps": 5}})
    assert main(["train", str(config), "--out", str(tmp_path / "s")]) == 0
    rows = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert sorted((r["train.seed"], r["model.heads"]) for r in rows) == [
        ("0", "1"), ("0", "2"), ("1", "1"), ("1", "2")]


def test_a_plan_stacks_different_task_kinds_of_one_shape(write_config, tmp_path):
    """Named configs whose tasks differ in kind and covariance (same d, n) train as one ensemble,
    each member bit-identical to the same config trained alone."""
    from iclreg.train.plan import train_plan

    tasks = {"gauss": "gaussian:d=3,n=9,cov=toeplitz,rho=0.5", "local": "local:d=3,n=9,r=0.5",
             "prior": "gaussian:d=3,n=9,w_mean=0.4,w_std=0.2"}
    paths = {k: write_config({**F64, "task": t, "model": "softmax_attention:heads=2"}, f"{k}.yaml")
             for k, t in tasks.items()}
    members = [(k, load_config(p)) for k, p in paths.items()]
    dirs = train_plan(dict(members), tmp_path / "joint")
    assert [d.name for d in dirs.values()] == list(tasks)
    for name, path in paths.items():
        alone = train(load_config(path), tmp_path / f"alone_{name}")
        a, b = last_weights(alone), last_weights(tmp_path / "joint" / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    finals = {k: losses(tmp_path / "joint" / k)[-2][1] for k in tasks}
    assert len(set(finals.values())) == 3  # the members really saw different tasks


def test_a_sweep_checks_its_members_once_and_writes_nothing_before_they_pass(write_config, tmp_path,
                                                                          monkeypatch):
    """The sweep's members are checked in the plan's one pass, before sweep.yaml is written,
    and not again when they train: one dry run for the one shape."""
    from iclreg import resources
    from iclreg.train import preflight

    monkeypatch.setattr(resources, "available_bytes", lambda device: 2**30)
    real, calls = preflight.check_training, []
    monkeypatch.setattr(preflight, "check_training", lambda config, here=True: calls.append(config)
                        or real(config, here))
    out = run_sweep(write_config(), [], ["train.seed=0,1"], tmp_path / "s")
    assert len(calls) == 1 and (out / "summary.json").is_file()
    with pytest.raises(UsageError, match="needs about"):
        run_sweep(write_config(), ["eval.n=100000000"], ["train.seed=0,1"], tmp_path / "t")
    assert not (tmp_path / "t").exists()
