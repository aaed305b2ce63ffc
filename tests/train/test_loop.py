"""The training loop: learning, resume after SIGKILL, NaN handling, damaged checkpoints."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.errors import TrainingError, UsageError
from iclreg.train import Trainer, load_config, load_run, resume, train, train_plan
from iclreg.train.metrics import read_metrics


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    last = sorted((run_dir / "checkpoints").iterdir())[-1]
    return load_file(str(last / "model.safetensors"))


def test_training_learns_and_writes_a_complete_run(write_config, tmp_path):
    cfg = load_config(write_config({"train": {"steps": 150}, "run": {"checkpoint_every": 50}}))
    run = train(cfg, tmp_path / "run")
    records = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 30 and losses[-1] < 0.6 * losses[0]
    final = [r for r in records if "eval" in r][-1]
    assert final["step"] == 150 and set(final["eval"]) == {"model", "ols"}
    # at k = 11 the model beats the zero predictor's error E[y^2] = 3 + 0.01 clearly
    assert final["eval"]["model"][11] < 1.5
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000100", "step_00000150"]
    for name in ("config.yaml", "eval.json", "eval.png", "loss.png"):
        assert (run / name).stat().st_size > 0
    model, loaded_cfg = load_run(run)
    assert loaded_cfg == cfg
    for key, value in final_weights(run).items():
        assert torch.equal(model.state_dict()[key], value)


def test_curriculum_and_all_prefix_loss_run(write_config, tmp_path):
    cfg = load_config(write_config({
        "task": "gaussian:d=4,n=12", "model": "linear_attention:layers=1",
        "train": {"steps": 12, "loss": "all"},
        "curriculum": {"d": {"start": 2, "end": 4, "inc": 1, "every": 4},
                       "n": {"start": 6, "end": 12, "inc": 3, "every": 4}},
    }))
    run = train(cfg, tmp_path / "run")
    assert read_metrics(run / "metrics.jsonl")[-1]["step"] == 12


def run_cli(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "iclreg", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def test_sigkill_then_resume_is_bit_identical(write_config, tmp_path):
    """A real SIGKILL mid-run, then --resume, ends with the same weights and metrics."""
    config = write_config({"train": {"steps": 400, "batch": 64}, "run": {"checkpoint_every": 40,
                                                                         "log_every": 10}})
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    proc = run_cli("train", str(config), "--out", str(killed))
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpts = list((killed / "checkpoints").glob("step_*")) if (killed / "checkpoints").exists() else []
        if len(ckpts) >= 1 and proc.poll() is None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    last = sorted(p.name for p in (killed / "checkpoints").glob("step_*"))[-1]
    assert last != "step_00000400"
    assert main(["train", "--resume", str(killed)]) == 0
    assert main(["train", str(config), "--out", str(straight)]) == 0
    a, b = final_weights(straight), final_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # metrics.jsonl is the deterministic record (wall-clock time is in timing.jsonl)
    assert (straight / "metrics.jsonl").read_bytes() == (killed / "metrics.jsonl").read_bytes()
    assert [r["step"] for r in read_metrics(killed / "timing.jsonl")] == list(range(10, 401, 10))


def test_train_plan_carries_on_reuses_and_refuses(write_config, tmp_path, monkeypatch):
    """Stopped at step 25 (checkpoint at 20), a plan resumes to the straight run's weights; a
    finished run is reused untouched; a run of another config is refused."""
    cfg = load_config(write_config({"train": {"steps": 40}, "run": {"checkpoint_every": 10}}))
    straight = train(cfg, tmp_path / "straight")
    stopped = tmp_path / "plan" / "run"
    step = Trainer.train_step

    def stop_at_25(self, i):
        if i == 25:
            raise KeyboardInterrupt
        return step(self, i)

    monkeypatch.setattr(Trainer, "train_step", stop_at_25)
    with pytest.raises(KeyboardInterrupt):
        train_plan({"run": cfg}, tmp_path / "plan")
    monkeypatch.setattr(Trainer, "train_step", step)
    assert not (stopped / "eval.json").exists()
    assert train_plan({"run": cfg}, tmp_path / "plan") == {"run": stopped}
    a, b = final_weights(straight), final_weights(stopped)
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = (stopped / "eval.json").stat().st_mtime_ns
    train_plan({"run": cfg}, tmp_path / "plan")  # finished: reused as it is
    assert (stopped / "eval.json").stat().st_mtime_ns == before
    other = load_config(write_config({"train": {"steps": 50}}, "other.yaml"))
    with pytest.raises(UsageError, match="holds a run with another train"):
        train_plan({"run": other}, tmp_path / "plan")


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(write_config, tmp_path, capsys):
    config = write_config({"optimizer": {"lr": 1e9, "name": "sgd"}, "train": {"steps": 60},
                           "run": {"checkpoint_every": 1, "log_every": 1}})
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "-q"]) == 1  # -q: the error alone
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("loss became nan" in err[0] or "loss became inf" in err[0])
    good = sorted((run / "checkpoints").glob("step_*"))
    for ckpt in good:
        weights = load_file(str(ckpt / "model.safetensors"))
        assert all(torch.isfinite(w).all() for w in weights.values())
    with pytest.raises(TrainingError):
        resume(run)


def test_damaged_or_foreign_checkpoint_is_an_error_not_a_restart(write_config, tmp_path, capsys):
    run = tmp_path / "run"
    train(load_config(write_config({"train": {"steps": 20}})), run)
    last = sorted((run / "checkpoints").glob("step_*"))[-1]
    (last / "model.safetensors").write_bytes(b"\x00" * 17)
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is damaged" in err[0]

    run2 = tmp_path / "run2"
    train(load_config(write_config({"train": {"steps": 20}})), run2)
    cfg_path = run2 / "config.yaml"
    cfg_path.write_text(cfg_path.read_text().replace("lr: 0.01", "lr: 0.02"))
    with pytest.raises(UsageError, match="different config"):
        load_run(run2)


def test_an_existing_run_is_not_overwritten(write_config, tmp_path, capsys):
    config = write_config({"train": {"steps": 5}})
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 0
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before


def test_eval_command_beyond_the_training_length(write_config, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(write_config({"train": {"steps": 40}})), "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "--json", "--n", "30", "--samples", "100",
                 "--estimator", "ridge:lam=0.01"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["k"] == list(range(30)) and out["samples"] == 100
    assert set(out["results"]) == {"model", "ridge:lam=0.01"}
    assert all(len(c["mse"]) == 30 for c in out["results"].values())
    assert main(["eval", str(tmp_path / "nothing")]) == 2


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
    from iclreg.train.metrics import MetricsLog

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "loss": 1.0}\n{"step": 10, "loss": 0.5}\n{"step": 15, "lo')
    MetricsLog(path, resume_step=10).close()
    assert read_metrics(path) == [{"step": 5, "loss": 1.0}, {"step": 10, "loss": 0.5}]
    assert path.read_text().endswith("}\n")


def test_run_figures_off_writes_no_figures(tmp_path, write_config):
    """``run.figures=false`` (what reproductions set: their reports draw the figures) leaves a
    finished run with its eval.json and no eval/loss figures; the default draws both, PNG and PDF."""
    from iclreg.train import load_config, train

    quiet = train(load_config(write_config({"run": {"figures": False}})), tmp_path / "quiet")
    drawn = train(load_config(write_config()), tmp_path / "drawn")
    assert (quiet / "eval.json").is_file() and not list(quiet.glob("*.png")) and not list(quiet.glob("*.pdf"))
    assert {p.name for p in drawn.iterdir() if p.suffix in (".png", ".pdf")} == {
        "eval.png", "eval.pdf", "loss.png", "loss.pdf"}
    assert "figures" not in (drawn / "config.yaml").read_text()  # the default, left out
    assert "figures: false" in (quiet / "config.yaml").read_text()


def test_reproductions_train_their_runs_without_run_figures():
    from iclreg.experiments import REPRODUCTIONS

    config = REPRODUCTIONS.get("newton")().config("gaussian:d=3,n=8", "softmax_attention:heads=1")
    assert config.run.figures is False and config.run.device == "cpu"


def test_a_run_whose_errors_no_axis_can_show_finishes_with_its_figures(write_config, tmp_path, capsys):
    """lr = 1e6: losses of 1e20 and more, finite, so the run trains to the end; its model's errors
    put least squares below the log axis. The run finishes (eval.json), figures drawn, and so
    does a sweep with such a member."""
    config = write_config({"optimizer": {"lr": 1e6}, "train": {"steps": 20}})
    run = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run), "-q"]) == 0
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]
    assert min(losses) > 1e12 and all(map(math.isfinite, losses))
    assert {"eval.json", "eval.png", "loss.png"} <= {p.name for p in run.iterdir()}
    sweep = tmp_path / "sweep"
    assert main(["train", str(config), "--sweep", "optimizer.lr=1e6,0.01", "--out", str(sweep), "-q"]) == 0
    assert all((sweep / m / "eval.json").is_file() for m in ("optimizer.lr=1e6", "optimizer.lr=0.01"))
    assert capsys.readouterr().err == ""


def test_a_figure_that_cannot_be_drawn_never_fails_the_run(write_config, tmp_path, capsys, monkeypatch):
    import iclreg.train.runs as runs

    def broken(*args, **kwargs):
        raise IndexError("index 0 is out of bounds for axis 0 with size 0")

    monkeypatch.setattr(runs, "loss_figure", broken)
    run = tmp_path / "run"
    assert main(["train", str(write_config({"train": {"steps": 10}})), "--out", str(run), "-q"]) == 0
    assert {"eval.json", "eval.png", "eval.pdf"} <= {p.name for p in run.iterdir()}
    assert not list(run.glob("loss.*")) and not list(run.glob(".*.tmp"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss.png was not drawn (IndexError: index 0 is out of bounds" in err[0], err
    # and a resume of the finished run has nothing to do
    assert main(["train", "--resume", str(run)]) == 0
