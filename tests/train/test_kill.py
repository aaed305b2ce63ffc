"""SIGKILL at every write point of a run directory, then resume (or rerun): the result equals an
uninterrupted run's, bit for bit on the CPU (weights, metrics.jsonl, eval.json).

The killed process computes with one torch thread in some cases and two in others, its
uninterrupted reference with the same count, and the resume with this process's one thread:
a resume restores the count the run trained with where its numbers depend on it
(``iclreg.train.environment``), so both counts must end on their own reference.

A driver process runs ``iclreg.cli.main`` with ``os.replace`` (every atomic write ends with it)
wrapped to SIGKILL the process just before or just after the Nth rename whose destination
matches a pattern, so the kill lands exactly at one write point; the library has no test hook.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from iclreg.cli import main
from iclreg.train.environment import intra_op_threads

from .conftest import thread_env

DRIVER = textwrap.dedent('''
    import os, re, resource, signal, sys
    when, pattern, nth, *argv = sys.argv[1:]
    if when == "fsize":  # SIGXFSZ kills the process inside any write past int(pattern) bytes
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it by default
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(pattern), resource.RLIM_INFINITY))
    real, seen = os.replace, [0]

    def replace(src, dst, *args, **kwargs):
        hit = when in ("before", "after") and re.search(pattern, str(dst)) is not None
        if hit:
            seen[0] += 1
            hit = seen[0] == int(nth)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst, *args, **kwargs)
        if hit and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    from iclreg.cli import main
    sys.exit(main(argv))
''')

SWEEP = ["--sweep", "train.seed=0,1", "--sweep", "optimizer.lr=0.01,0.02"]
MEMBERS = ["train.seed=0,optimizer.lr=0.01", "train.seed=0,optimizer.lr=0.02",
           "train.seed=1,optimizer.lr=0.01", "train.seed=1,optimizer.lr=0.02"]


def killed(tmp_path: Path, threads: int, when: str, pattern: str, nth: int, *argv: str) -> None:
    """Run ``iclreg *argv`` with ``threads`` torch threads in a driver that kills itself at the
    given write; assert it died so."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run([sys.executable, str(driver), when, pattern, str(nth), *argv],
                          capture_output=True, text=True, timeout=300, env=thread_env(threads))
    expected = -signal.SIGXFSZ if when == "fsize" else -signal.SIGKILL
    assert proc.returncode == expected, f"not killed at the write point: {proc.stderr[-2000:]}"


def outcome(run_dir: Path) -> dict[str, bytes]:
    """Everything deterministic a run leaves: the final checkpoint, metrics and evaluation."""
    last = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    return {"step": last.name.encode(), "weights": (last / "model.safetensors").read_bytes(),
            "metrics.jsonl": (run_dir / "metrics.jsonl").read_bytes(),
            "eval.json": (run_dir / "eval.json").read_bytes()}


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith(".tmp_") or p.name.endswith(".tmp"))


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    """A tiny run and sweep config, and their uninterrupted outcomes with 1 and 2 threads."""
    root = tmp_path_factory.mktemp("straight")
    base = {"task": "gaussian:d=3,n=10,noise_std=0.1", "model": "softmax_attention:heads=2",
            "optimizer": {"name": "adam", "lr": 0.01},
            "train": {"steps": 30, "batch": 16, "loss": "query", "seed": 0},
            "eval": {"samples": 32, "estimators": ["ols"]},
            "run": {"checkpoint_every": 10, "log_every": 5}}
    paths = {}
    for name, run in {"run": {}, "keep1": {"keep": 1}}.items():
        data = {**base, "run": {**base["run"], **run}}
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(data))
    straight = {1: {}, 2: {}}
    for threads, found in straight.items():
        with intra_op_threads(threads):
            assert main(["train", str(paths["run"]), "--out", str(root / f"run{threads}")]) == 0
            found["run"] = outcome(root / f"run{threads}")
            for name in ("run", "keep1"):
                out = root / f"sweep_{name}{threads}"
                assert main(["train", str(paths[name]), *SWEEP, "--out", str(out)]) == 0
                found[f"sweep_{name}"] = {m: outcome(out / m) for m in MEMBERS}
                found[f"summary_{name}"] = json.loads((out / "summary.json").read_text())
    return paths, straight


@pytest.mark.parametrize(("threads", "when", "pattern", "nth"), [
    (1, "after", r"checkpoints/step_00000010$", 1),  # between two checkpoints
    (2, "before", r"checkpoints/step_00000020$", 1),  # inside a save, before its rename (.tmp_ left)
    (1, "before", r"eval\.json$", 1),  # trained, the evaluation not written
    (2, "before", r"loss\.png$", 1),   # a figure's temporary file
])
def test_killed_run_resumes_to_the_uninterrupted_result(configs, tmp_path, threads, when, pattern, nth):
    paths, straight = configs
    run = tmp_path / "run"
    killed(tmp_path, threads, when, pattern, nth, "train", str(paths["run"]), "--out", str(run))
    assert main(["train", "--resume", str(run)]) == 0
    assert outcome(run) == straight[threads]["run"]
    assert leftovers(run) == []


def test_killed_while_resume_cuts_the_metrics(configs, tmp_path):
    """Killed inside the metrics rewrite of a resume (at its rename, and by SIGXFSZ in the middle
    of writing it), then resumed again: no line is lost."""
    paths, straight = configs
    run = tmp_path / "run"
    killed(tmp_path, 2, "before", r"eval\.json$", 1, "train", str(paths["run"]), "--out", str(run))
    cut = run / "checkpoints" / "step_00000030"
    for name in ("model.safetensors", "state.pt", "checksums.json"):
        (cut / name).unlink()
    cut.rmdir()  # resume from step 20: the metrics after it are cut
    before = (run / "metrics.jsonl").read_bytes()
    killed(tmp_path, 2, "before", r"metrics\.jsonl$", 1, "train", "--resume", str(run))
    assert (run / "metrics.jsonl").read_bytes() == before
    kept = sum(len(line) + 1 for line in before.decode().splitlines() if json.loads(line)["step"] <= 20)
    killed(tmp_path, 1, "fsize", str(kept - 1), 0, "train", "--resume", str(run))
    assert (run / "metrics.jsonl").read_bytes() == before
    assert main(["train", "--resume", str(run)]) == 0
    assert outcome(run) == straight[2]["run"]
    assert leftovers(run) == []


@pytest.mark.parametrize(("threads", "config", "when", "pattern", "nth"), [
    (1, "run", "after", r"sweep\.yaml$", 1),  # before any member's config.yaml
    (2, "run", "after", r"config\.yaml$", 2),  # between members' config.yaml
    (1, "run", "after", r"checkpoints/step_00000020$", 2),  # between two members' saves
    (2, "run", "before", r"checkpoints/step_00000020$", 3),  # in a save (.tmp_)
    (1, "keep1", "after", r"checkpoints/step_00000020$", 1),  # keep = 1
    (2, "run", "before", r"summary\.json$", 1),  # members done, no summary
])
def test_killed_sweep_resumes_to_the_uninterrupted_result(configs, tmp_path, threads, config, when, pattern,
                                                          nth):
    paths, straight = configs
    out = tmp_path / "sweep"
    killed(tmp_path, threads, when, pattern, nth, "train", str(paths[config]), *SWEEP, "--out", str(out))
    assert main(["train", "--resume", str(out)]) == 0
    for member in MEMBERS:
        assert outcome(out / member) == straight[threads][f"sweep_{config}"][member], member
    assert json.loads((out / "summary.json").read_text()) == straight[threads][f"summary_{config}"]
    assert leftovers(out) == []
