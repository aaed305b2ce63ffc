"""A run records the environment it trains in, and a resume restores its thread count: a run of
the autograd step (whose CPU numbers depend on torch's intra-op threads) resumed under another
count ends bit for bit as the uninterrupted run, and does not without the restore."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.train import loop
from iclreg.train.environment import Environment, intra_op_threads

# GPT-2's step splits its reductions by the thread count: 1 and 2 threads differ after 30 steps
GPT2 = {"model": "gpt2:layers=2,width=32,heads=2", "train": {"steps": 30, "batch": 64, "loss": "all"},
        "eval": {"samples": 64, "estimators": []}, "run": {"engine": "autograd"}}


def final(run):
    return (load_file(str(run / "checkpoints" / "step_00000030" / "model.safetensors")),
            json.loads((run / "eval.json").read_text()))


def same(a, b) -> bool:
    (wa, ea), (wb, eb) = a, b
    return all(wa[k].equal(wb[k]) for k in wa) and ea == eb


def recorded(run, step=10):
    state = torch.load(run / "checkpoints" / f"step_{step:08d}" / "state.pt", weights_only=True)
    return state["environment"]


@pytest.fixture(scope="module")
def two_thread_run(tmp_path_factory):
    """GPT-2 trained 30 steps with two threads (checkpoints every 10), and the same with one."""
    root = tmp_path_factory.mktemp("env")
    config = root / "gpt2.yaml"
    data = {"task": "gaussian:d=3,n=10,noise_std=0.1", "optimizer": {"name": "adam", "lr": 0.01},
            **GPT2, "train": {**GPT2["train"], "seed": 0},
            "run": {**GPT2["run"], "checkpoint_every": 10, "keep": 3}}
    config.write_text(json.dumps(data))
    for threads in (1, 2):
        with intra_op_threads(threads):
            assert main(["train", str(config), "--out", str(root / f"t{threads}"), "-q"]) == 0
    return root


def cut_to_step_10(src, dst):
    """A copy of the run as if killed after its first checkpoint."""
    shutil.copytree(src, dst)
    for step in (20, 30):
        shutil.rmtree(dst / "checkpoints" / f"step_{step:08d}")
    (dst / "eval.json").unlink()


def test_the_thread_count_matters_here(two_thread_run):
    """The premise: without the restore the test below could not fail."""
    assert not same(final(two_thread_run / "t1"), final(two_thread_run / "t2"))


def test_a_checkpoint_records_its_environment(two_thread_run):
    env = recorded(two_thread_run / "t2")
    assert env == {"torch": str(torch.__version__), "device": "cpu", "dtype": "float32", "threads": 2}
    assert recorded(two_thread_run / "t1")["threads"] == 1


def test_resume_restores_the_thread_count(two_thread_run, tmp_path, capsys):
    run = tmp_path / "run"
    cut_to_step_10(two_thread_run / "t2", run)
    assert torch.get_num_threads() == 1  # tests/conftest.py
    assert main(["train", "--resume", str(run)]) == 0
    assert same(final(run), final(two_thread_run / "t2"))
    assert torch.get_num_threads() == 1  # restored after the run
    assert recorded(run, 30)["threads"] == 2
    assert f"resuming {run} with 2 torch threads, as it trained" in capsys.readouterr().err


def test_without_the_restore_the_resume_differs(two_thread_run, tmp_path, monkeypatch):
    """Negative control: resuming under this process's one thread does not give the two-thread run."""
    monkeypatch.setattr(loop, "resume_in", lambda recorded, now, stack, where: now)
    run = tmp_path / "run"
    cut_to_step_10(two_thread_run / "t2", run)
    assert main(["train", "--resume", str(run), "-q"]) == 0
    assert not same(final(run), final(two_thread_run / "t2"))


def test_another_torch_version_is_said_in_one_warning(two_thread_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    cut_to_step_10(two_thread_run / "t1", run)
    trained = str(torch.__version__)
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert main(["train", "--resume", str(run), "-q"]) == 0  # -q: warnings only
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"torch {trained} -> 9.9.9" in err[0] and "will differ from an uninterrupted run" in err[0]


def test_fused_runs_record_no_thread_count(tmp_path):
    """The fused step computes on one thread whatever torch has: its count is not recorded."""
    env = Environment.current(torch.device("cpu"), "float64", thread_bound=False)
    assert env.threads is None
    assert Environment.from_dict(env.to_dict()) == env
    assert Environment.from_dict({"torch": "2"}) is None  # a partial record: as if none
