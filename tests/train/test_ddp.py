"""DDP under torchrun (``train/distributed.py``), for real: 2 processes on the CPU with gloo.

Each torchrun process runs a driver that records every file it writes (``os.replace``, ``open``
for writing, ``os.mkdir``) and the prompts its DDP forward pass gets, and can SIGKILL itself
just after a given rename, so a kill lands exactly after one checkpoint; the library has no
test hook. The references are the single-process run (same global batch) and an uninterrupted
2-process run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from iclreg.cli import main
from iclreg.tasks import TASKS
from iclreg.train.distributed import Group

DRIVER = textwrap.dedent('''
    import builtins, io, json, os, re, signal, sys
    from torch.nn.parallel import DistributedDataParallel
    log, pattern, *argv = sys.argv[1:]
    record = open(os.path.join(log, "rank%s.txt" % os.environ["RANK"]), "a")
    real_replace, real_open, real_mkdir = os.replace, builtins.open, os.mkdir

    def note(path):
        record.write(os.path.abspath(str(path)) + "\\n")
        record.flush()

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        note(dst)
        if pattern and re.search(pattern, str(dst)):
            os.kill(os.getpid(), signal.SIGKILL)

    def opened(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(c in mode for c in "wax+"):
            note(file)
        return real_open(file, mode, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        note(path)
        return real_mkdir(path, *args, **kwargs)

    batches = open(os.path.join(log, "batches%s.jsonl" % os.environ["RANK"]), "a")
    real_forward = DistributedDataParallel.forward

    def forward(self, x, y, *args, **kwargs):  # the prompts this rank trains on, in short
        batches.write(json.dumps([list(x.shape), x.sum().item(), y.sum().item()]) + "\\n")
        batches.flush()
        return real_forward(self, x, y, *args, **kwargs)

    DistributedDataParallel.forward = forward
    os.replace, builtins.open, io.open, os.mkdir = replace, opened, opened, mkdir
    from iclreg.cli import main
    sys.exit(main(argv))
''')

CONFIG = {"task": "gaussian:d=3,n=10,noise_std=0.1", "model": "softmax_attention:heads=2",
          "optimizer": {"name": "adam", "lr": 0.01},
          "train": {"steps": 20, "batch": 16, "loss": "all", "seed": 0},
          "eval": {"samples": 32, "estimators": ["ols"]},
          "run": {"checkpoint_every": 5, "log_every": 5, "dtype": "float64", "keep": 10}}
STEPS = ["step_00000005", "step_00000010", "step_00000015", "step_00000020"]
TOLERANCE = 1e-13  # |difference| of a weight, 2 processes against 1, float64 (measured 5.6e-17)


def torchrun(root: Path, log: str, kill: str, *argv: str) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node 2 -m iclreg *argv`` through the recording driver."""
    (root / log).mkdir()
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", "2", str(driver), str(root / log), kill, *argv],
                          cwd=root, env=env, capture_output=True, text=True, timeout=240)


def written(root: Path, log: str, rank: int, run: Path) -> list[str]:
    """The paths under ``run`` that rank ``rank`` wrote, in order."""
    lines = (root / log / f"rank{rank}.txt").read_text().splitlines()
    return [str(Path(p).relative_to(run.resolve())) for p in lines if p.startswith(str(run.resolve()))]


def outcome(run: Path) -> dict[str, bytes]:
    """Everything deterministic a run leaves: the final checkpoint, metrics and evaluation."""
    last = sorted((run / "checkpoints").glob("step_*"))[-1]
    return {"step": last.name.encode(), "weights": (last / "model.safetensors").read_bytes(),
            "metrics.jsonl": (run / "metrics.jsonl").read_bytes(),
            "eval.json": (run / "eval.json").read_bytes()}


def files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.name != "timing.jsonl")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One config trained by 1 process (in this one) and by 2 under torchrun, uninterrupted."""
    root = tmp_path_factory.mktemp("ddp")
    (root / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(root / "tiny.yaml"), "--out", str(root / "one")]) == 0
    proc = torchrun(root, "log_two", "", "train", "tiny.yaml", "--out", "two")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def test_two_processes_match_one_on_the_same_global_batch(runs):
    """Each rank's half of the global batch, gradients averaged: the weights after every checkpoint
    equal the single-process run's to float64 rounding, and so do the logged losses (float32)."""
    for step in STEPS:
        one = load_file(runs / "one" / "checkpoints" / step / "model.safetensors")
        two = load_file(runs / "two" / "checkpoints" / step / "model.safetensors")
        assert one.keys() == two.keys()
        gap = max((one[k] - two[k]).abs().max().item() for k in one)
        assert gap <= TOLERANCE, f"{step}: weights differ by {gap:.3g}"
        moved = max((one[k] - load_file(runs / "one" / "checkpoints" / STEPS[0] / "model.safetensors")[k])
                    .abs().max().item() for k in one)
        assert step == STEPS[0] or moved > 1e3 * TOLERANCE  # training moved the weights far more
    records = [[json.loads(line) for line in (runs / run / "metrics.jsonl").read_text().splitlines()]
               for run in ("one", "two")]
    assert [r["step"] for r in records[0]] == [r["step"] for r in records[1]]
    losses = [[r["loss"] for r in rs if "loss" in r] for rs in records]
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)
    evals = [json.loads((runs / run / "eval.json").read_text())["results"]["model"]["mse"]
             for run in ("one", "two")]
    assert evals[1] == pytest.approx(evals[0], rel=1e-9)


def test_each_rank_trains_on_its_half_of_the_global_batch(runs):
    """Rank r's prompts at step s are rows [8 r, 8 r + 8) of the batch one process samples from
    (seed, s): (1, 16, 10, 3) -> (1, 8, 10, 3) on each rank."""
    task = TASKS.build(CONFIG["task"])
    seen = [[json.loads(line) for line in (runs / "log_two" / f"batches{r}.jsonl").read_text().splitlines()]
            for r in range(2)]
    assert len(seen[0]) == len(seen[1]) == CONFIG["train"]["steps"]
    for step in range(CONFIG["train"]["steps"]):
        full = task.sample(16, 0, step, dtype=torch.float64)
        for rank in range(2):
            shape, x_sum, y_sum = seen[rank][step]
            rows = slice(8 * rank, 8 * rank + 8)
            assert shape == [1, 8, 10, 3]
            assert x_sum == pytest.approx(full.x[rows].sum().item(), rel=1e-12, abs=1e-12)
            assert y_sum == pytest.approx(full.y[rows].sum().item(), rel=1e-12, abs=1e-12)


def test_only_rank_zero_writes(runs):
    """Rank 1 writes nothing in the run directory; rank 0 writes each checkpoint once, and the
    directory holds what a single-process run leaves (one metrics.jsonl, not two ranks' lines)."""
    run = runs / "two"
    assert written(runs, "log_two", 1, run) == []
    renames = [p for p in written(runs, "log_two", 0, run) if p.startswith("checkpoints/step_")]
    assert renames == [f"checkpoints/{s}" for s in STEPS]
    assert files(run) == files(runs / "one")
    one = (runs / "one" / "metrics.jsonl").read_text().splitlines()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == len(one)


def test_killed_and_resumed_matches_the_uninterrupted_run(runs, tmp_path):
    """Rank 0 SIGKILLed just after the step-10 checkpoint (torchrun then stops rank 1), then
    ``--resume`` under torchrun: every rank loads step 10; the end is bit-identical."""
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "two"
    proc = torchrun(tmp_path, "log_killed", r"checkpoints/step_00000010$", "train", "tiny.yaml",
                    "--out", "two")
    assert proc.returncode != 0
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == STEPS[:2]
    assert not (run / "eval.json").exists()
    proc = torchrun(tmp_path, "log_resumed", "", "train", "--resume", "two")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert outcome(run) == outcome(runs / "two")
    assert written(tmp_path, "log_resumed", 1, run) == []
    assert [p for p in written(tmp_path, "log_resumed", 0, run) if p.startswith("checkpoints/step_")] \
        == [f"checkpoints/{s}" for s in STEPS[2:]]


def test_a_sweep_is_refused_under_torchrun(write_config, monkeypatch, capsys):
    for name, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    assert main(["train", str(write_config()), "--sweep", "train.seed=0,1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("iclreg: error: a sweep trains many models") and "\n" not in err


def test_shards_partition_the_global_batch():
    """Ranks' rows, concatenated in rank order, are the global batch: (E, B, ...) -> N x (E, B/N, ...)."""
    x = torch.arange(2 * 12 * 3, dtype=torch.float64).reshape(2, 12, 3)
    shards = [Group(rank, 4, rank).shard(x) for rank in range(4)]
    assert all(s.shape == (2, 3, 3) for s in shards)
    assert torch.equal(torch.cat(shards, 1), x)
