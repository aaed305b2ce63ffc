"""Extending a run (``iclreg train --resume RUN_DIR train.steps=N``) and resuming a finished
run or sweep without a change (nothing written): ``train/extend.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.errors import UsageError
from iclreg.train import load_config, load_run, resume, runs, train
from iclreg.train.checkpoint import load_checkpoint
from iclreg.train.config import TrainConfig, planned_configs
from iclreg.train.loop import Trainer
from iclreg.train.metrics import read_metrics
from iclreg.train.run import iter_checkpoints
from iclreg.train.sweep import resume_sweep, run_sweep

PEAK, WARMUP, FLOOR = 0.01, 4, 0.1
COSINE = {"schedule": {"name": "cosine", "warmup": WARMUP, "min_lr_ratio": FLOOR},
          "train": {"steps": 20}, "run": {"checkpoint_every": 10, "log_every": 1}}
# constant after a warm-up, with a prompt-length curriculum that changes at steps 10, 20 and 30
CONSTANT = {"schedule": {"name": "constant", "warmup": WARMUP}, "train": {"steps": 20},
            "curriculum": {"n": {"start": 6, "end": 12, "inc": 2, "every": 10}},
            "run": {"checkpoint_every": 10, "log_every": 5}}


def cosine_lr(step: int, total: int) -> float:
    """The rate at 0-based ``step`` of a ``total``-step cosine run with COSINE's schedule,
    written out from the schedule's definition (warm-up from 0, then a half cosine to the floor)."""
    if step < WARMUP:
        return PEAK * (step + 1) / WARMUP
    return PEAK * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (total - WARMUP))))


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """(mtime in ns, bytes) of every file and folder under ``root``, the lock's note too."""
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in sorted([root, *root.rglob("*")])}


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(sorted((run_dir / "checkpoints").glob("step_*"))[-1] / "model.safetensors"))


def stdout_line(capsys) -> str:
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return out[0]


@pytest.fixture
def no_figures(monkeypatch):
    """No eval.png and loss.png (seconds a run): for tests that do not look at every file."""
    monkeypatch.setattr(runs, "write_figures", lambda m, result: None)


@pytest.fixture
def run(write_config, tmp_path) -> Path:
    """A finished 20-step cosine run, logging every step."""
    return train(load_config(write_config({**COSINE, "optimizer": {"lr": PEAK}})), tmp_path / "run")


# --- nothing to do ---------------------------------------------------------------------------
def test_resuming_a_finished_run_without_a_change_writes_nothing(run, capsys):
    before = snapshot(run)
    capsys.readouterr()
    for extra in ([], ["train.steps=20"]):
        assert main(["train", "--resume", str(run), *extra]) == 0
        assert stdout_line(capsys) == (f"run {run} is finished at step 20; nothing to do (extend it "
                                       f"with: iclreg train --resume {run} train.steps=M, M > 20)")
        assert snapshot(run) == before
    assert resume(run) == run  # the library call too
    assert snapshot(run) == before


@pytest.mark.usefixtures("no_figures")
def test_refused_changes_name_the_key_and_write_nothing(run, capsys):
    before = snapshot(run)
    cases = [(["optimizer.lr=0.1"], "cannot change optimizer.lr: only train.steps can change on resume"),
             (["train.steps=40", "train.seed=3"], "cannot change train.seed"),
             (["train.steps=10"], "train.steps=10 is fewer than the run's 20 steps"),
             (["train.steps=0"], "at least 1, got '0'"),
             (["train.steps=4.5"], "whole number"),
             (["train.steps=30", "train.steps=40"], "given twice"),
             (["tiny.yaml"], "give no CONFIG")]
    for extra, message in cases:
        assert main(["train", "--resume", str(run), *extra]) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
    assert snapshot(run) == before
    with pytest.raises(UsageError, match="not shortened"):
        resume(run, steps=19)


# --- extending ---------------------------------------------------------------------------------
@pytest.mark.usefixtures("no_figures")
def test_an_extended_run_follows_the_n_step_schedule_from_the_extension_point(run, monkeypatch, capsys):
    used = {}  # the rate each step trained at, read as it starts
    step = Trainer.train_step

    def record(self, i):
        used[i] = float(self.optimizer.param_groups[0]["lr"])
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", record)
    assert main(["train", "--resume", str(run), "train.steps=50"]) == 0
    assert stdout_line(capsys) == f"run written to {run}"
    assert sorted(used) == list(range(20, 50))  # from the final checkpoint, not from 0
    for i, lr in used.items():  # the first step after the extension too (not the old floor)
        assert lr == pytest.approx(cosine_lr(i, 50), rel=1e-12, abs=0), i
    logged = {r["step"]: r["lr"] for r in read_metrics(run / "metrics.jsonl") if "lr" in r}
    assert sorted(logged) == list(range(1, 51))
    for s, lr in logged.items():  # logged after step s: the rate of step s; before 20, the old plan's
        assert lr == pytest.approx(cosine_lr(s, 20 if s <= 20 else 50), rel=1e-12, abs=0), s
    assert logged[20] == pytest.approx(PEAK * FLOOR) and logged[21] > 3 * PEAK * FLOOR  # warm restart
    stored = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert stored["steps"] == 50 and stored["extended_from"] == [20]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000040", "step_00000050"]
    evals = [r["step"] for r in read_metrics(run / "metrics.jsonl") if "eval" in r]
    assert evals == [20, 50]  # the old final evaluation stays in the record
    assert json.loads((run / "eval.json").read_text())["k"]  # rewritten at step 50
    # extended twice: the history grows, and a resume with no change does nothing
    assert main(["train", "--resume", str(run), "train.steps=60"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["extended_from"] == [20, 50]
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert "finished at step 60; nothing to do" in stdout_line(capsys)


@pytest.mark.usefixtures("no_figures")
def test_an_extended_constant_rate_run_is_bit_identical_to_one_planned_for_n(write_config, tmp_path):
    """Warm-up, then constant: the schedule, the curriculum (n grows at 10, 20, 30) and the
    prompts ((seed, step)) are those of a run planned for 40 steps, so the weights are too."""
    straight = train(load_config(write_config({**CONSTANT, "train": {"steps": 40}})), tmp_path / "straight")
    extended = train(load_config(write_config(CONSTANT, "short.yaml")), tmp_path / "extended")
    assert not all(torch.equal(a, b) for a, b in zip(weights(straight).values(), weights(extended).values(),
                                                       strict=True))
    assert main(["train", "--resume", str(extended), "train.steps=40"]) == 0
    a, b = weights(straight), weights(extended)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [[(r["step"], r["loss"], r["lr"]) for r in read_metrics(d / "metrics.jsonl") if "loss" in r]
              for d in (straight, extended)]
    assert losses[0] == losses[1] and len(losses[0]) == 8


@pytest.mark.usefixtures("no_figures")
def test_a_killed_extension_carries_on_to_the_same_end(write_config, tmp_path, monkeypatch):
    config = load_config(write_config({**COSINE, "train": {"steps": 20}}))
    whole, killed = train(config, tmp_path / "whole"), train(config, tmp_path / "killed")
    assert main(["train", "--resume", str(whole), "train.steps=40"]) == 0
    step = Trainer.train_step

    def stop_at_33(self, i):
        if i == 33:
            raise KeyboardInterrupt
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", stop_at_33)
    assert main(["train", "--resume", str(killed), "train.steps=40"]) == 130
    monkeypatch.setattr(Trainer, "train_step", step)
    assert not (killed / "eval.json").exists()  # unfinished: a sweep's resume would train it
    # the checkpoint of the old plan (step 20) still loads, by step and among all of them
    model, stored = load_run(killed, step=20)
    assert stored.train.steps == 40 and stored.train.extended_from == (20,)
    assert [s for s, _ in iter_checkpoints(killed)] == [20, 30]
    assert main(["train", "--resume", str(killed)]) == 0  # or with train.steps=40 again: the same
    a, b = weights(whole), weights(killed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (whole / "metrics.jsonl").read_bytes() == (killed / "metrics.jsonl").read_bytes()


# --- sweeps ------------------------------------------------------------------------------------
@pytest.mark.usefixtures("no_figures")
def test_a_sweep_is_extended_member_by_member_and_a_finished_one_left_alone(write_config, tmp_path, capsys):
    config = write_config({"train": {"steps": 10}})
    out = run_sweep(config, [], ["train.seed=0,1"], tmp_path / "s")
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert stdout_line(capsys) == (f"sweep {out} is finished (2 members at step 10); nothing to do "
                                   f"(extend it with: iclreg train --resume {out} train.steps=M, M > 10)")
    assert snapshot(out) == before
    assert main(["train", "--resume", str(out), "train.steps=20"]) == 0
    rows = json.loads((out / "summary.json").read_text())
    assert [r["steps"] for r in rows] == [20, 20]
    for name in ("train.seed=0", "train.seed=1"):
        stored = yaml.safe_load((out / name / "config.yaml").read_text())["train"]
        assert (stored["steps"], stored["extended_from"]) == (20, [10])
    # one member extended alone leaves the summary stale: the sweep's resume rewrites it, then rests
    assert main(["train", "--resume", str(out / "train.seed=1"), "train.steps=30"]) == 0
    resume_sweep(out)
    assert [r["steps"] for r in json.loads((out / "summary.json").read_text())] == [20, 30]
    before = snapshot(out)
    capsys.readouterr()
    assert main(["train", "--resume", str(out)]) == 0
    assert "(2 members at steps 20 to 30); nothing to do" in stdout_line(capsys)
    assert snapshot(out) == before
    assert main(["train", "--resume", str(out), "train.steps=25"]) == 2  # shorter than one member
    assert "fewer than the run's 30 steps" in capsys.readouterr().err
    assert snapshot(out) == before


@pytest.mark.usefixtures("no_figures")
def test_a_sweep_over_train_steps_is_extended_one_member_at_a_time(write_config, tmp_path, capsys):
    out = run_sweep(write_config(), [], ["train.steps=5,10"], tmp_path / "s")
    before = snapshot(out)
    assert main(["train", "--resume", str(out), "train.steps=20"]) == 2
    err = capsys.readouterr().err
    assert f"varies train.steps: extend its members one by one with iclreg train --resume {out}/MEMBER" in err
    assert snapshot(out) == before


# --- the record --------------------------------------------------------------------------------
@pytest.mark.usefixtures("no_figures")
def test_extended_from_is_checked_and_names_every_plan(write_config, tmp_path):
    with pytest.raises(UsageError, match="train.extended_from must rise"):
        TrainConfig(steps=30, extended_from=(20, 10))
    with pytest.raises(UsageError, match="train.extended_from must rise"):
        TrainConfig(steps=30, extended_from=(30,))
    config = load_config(write_config({"train": {"steps": 50, "extended_from": [10, 20]}}))
    plans = planned_configs(config.to_dict())
    assert [(p["train"]["steps"], p["train"].get("extended_from")) for p in plans] == \
        [(10, None), (20, [10]), (50, [10, 20])]
    assert "extended_from" not in load_config(write_config()).to_dict()["train"]  # old runs still match
    # a checkpoint of a run planned for other steps is not one of this run's plans
    other = train(load_config(write_config({"train": {"steps": 10}})), tmp_path / "other")
    load_checkpoint(other / "checkpoints" / "step_00000010", plans[0])
    with pytest.raises(UsageError, match="different config"):
        load_checkpoint(other / "checkpoints" / "step_00000010",
                        load_config(write_config({"train": {"steps": 50}})).to_dict())


# --- DDP ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_extension_under_torchrun_matches_one_process_trained_to_n(tmp_path):
    """``torchrun --nproc-per-node 2 -m iclreg train --resume RUN train.steps=20`` on a 10-step
    2-process run: rank 0 alone re-plans the run and both load step 10; the end matches one
    process trained for 20 steps (float64, same global batch) as 2 processes always do."""
    from .test_ddp import CONFIG, TOLERANCE, torchrun, written

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**CONFIG, "train": {**CONFIG["train"], "steps": 10}}))
    assert torchrun(tmp_path, "log_two", "", "train", "tiny.yaml", "--out", "two").returncode == 0
    proc = torchrun(tmp_path, "log_extended", "", "train", "--resume", "two", "train.steps=20")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert written(tmp_path, "log_extended", 1, tmp_path / "two") == []
    assert main(["train", str(tmp_path / "tiny.yaml"), "train.steps=20", "--out", str(tmp_path / "one")]) == 0
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < TOLERANCE
    assert yaml.safe_load((tmp_path / "two" / "config.yaml").read_text())["train"]["extended_from"] == [10]
