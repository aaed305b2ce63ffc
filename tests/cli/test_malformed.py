"""Malformed invocations of every subcommand: exit status 2, one line on stderr naming the
problem, no traceback, no hang, and nothing left behind.

Every case runs ``main([...])`` in-process from a workspace holding tiny configs and two
trained runs (a softmax-attention run and a GPT-2 run); the workspace's tree (names, sizes
and modification times) must be the same after the call as before, so a case that created,
changed or half-wrote anything fails. The memory checks see a machine with 8 GiB free (the
test patches ``resources.available_bytes``), so the cases do not depend on this machine and
allocate nothing: they must fail in validation, before any work. A few cases run through a
real subprocess as well, to see the exact stderr a user sees.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from iclreg import resources
from iclreg.cli import main

FREE = 8 * 2**30  # the memory the checks see
LIMIT_S = 30  # an invocation that takes longer hangs

TINY = """\
task: gaussian:d=2,n=5
model: softmax_attention:heads=1
train: {steps: 2, batch: 4, seed: 0}
eval: {samples: 8, estimators: [ols]}
run: {checkpoint_every: 1, log_every: 1}
"""
TINY_GPT2 = TINY.replace("softmax_attention:heads=1", "gpt2:layers=1,width=8,heads=1,max_n=5")

FILES = {
    "tiny.yaml": TINY,
    "tinyg.yaml": TINY_GPT2,
    "tiny.toml": 'task = "gaussian:d=2,n=5"\nmodel = "softmax_attention"\n[train\n',
    "malformed.yaml": "task: [gaussian\n",
    "list.yaml": "- task\n- model\n",
    "notask.yaml": "model: softmax_attention\n",
    "nomodel.yaml": "task: gaussian:d=2,n=5\n",
    "badsweep.yaml": TINY + "sweep: {train.seed: 5}\n",
    "listsweep.yaml": TINY + "sweep: [train.seed]\n",
    "curriculum.yaml": TINY + "curriculum: {n: {start: 2, end: 9}}\n",
    "afile": "not a directory\n",
    "notes.txt": "text\n",
}

# --- the cases: (argv, a fragment of the one stderr line) ------------------------------------
COMPARE = [
    (["compare", "--task", "nosuchtask"], "unknown task 'nosuchtask'"),
    (["compare", "--task", "gaussian", "--estimator", "nosuch"], "unknown estimator 'nosuch'"),
    (["compare", "--task", "gaussian:dd=3"], "unknown key 'dd'"),
    (["compare", "--task", "gaussian:d=0"], "d must be at least 1"),
    (["compare", "--task", "gaussian:d=-4"], "d must be at least 1"),
    (["compare", "--task", "gaussian:d=2.5"], "d must be an integer"),
    (["compare", "--task", "gaussian:d=abc"], "d must be an integer"),
    (["compare", "--task", "gaussian:d=1e999"], "d must be an integer"),
    (["compare", "--task", "gaussian:n=0"], "n must be at least 1"),
    (["compare", "--task", "gaussian:n=nan"], "n must be an integer"),
    (["compare", "--task", "gaussian:noise_std=-1"], "noise_std must be >= 0"),
    (["compare", "--task", "gaussian:noise_std=1e999"], "noise_std must be a finite number"),
    (["compare", "--task", "gaussian:noise_std=nan"], "noise_std must be a finite number"),
    (["compare", "--task", "gaussian:noise_std=inf"], "noise_std must be a finite number"),
    (["compare", "--task", "gaussian:w_std=-0.1"], "w_std must be >= 0"),
    (["compare", "--task", "gaussian:w_std=1e999"], "w_std must be a finite number"),
    (["compare", "--task", "gaussian:w_mean=1e999"], "w_mean must be a finite number"),
    (["compare", "--task", "gaussian:d=2,w_mean=[1,-1e999]"], "w_mean must be a finite number"),
    (["compare", "--task", "gaussian:cov=toeplitz,rho=1.5"], "rho must lie in (-1, 1)"),
    (["compare", "--task", "gaussian:cov=toeplitz,rho=-1"], "rho must lie in (-1, 1)"),
    (["compare", "--task", "gaussian:cov=banana"], "cov must be one of"),
    (["compare", "--task", "gaussian:cov=rotated,cond=0.5"], "cond must be >= 1"),
    (["compare", "--task", "gaussian:cov=rotated,cond=1e999"], "cond must be a finite number"),
    (["compare", "--task", "gaussian:cov=rotated,cov_seed=-1"], "cov_seed must be an integer in [0, 2**63)"),
    (["compare", "--task", "gaussian:cov_seed=1180591620717411303424"], "cov_seed must be an integer"),
    (["compare", "--task", "gaussian:d=3,cov=spectrum"], "needs spectrum"),
    (["compare", "--task", "gaussian:d=2,cov=spectrum,spectrum=[1,-1]"], "must be positive"),
    (["compare", "--task", "gaussian:d=2,cov=spectrum,spectrum=[1,1e999]"], "spectrum must be"),
    (["compare", "--task", "gaussian:d=3,w_mean=[1,2]"], "w_mean must be one number or a list"),
    (["compare", "--task", "sparse:d=3,s=5"], "s must lie in [1, d=3]"),
    (["compare", "--task", "local:r=0"], "r must be positive"),
    (["compare", "--task", "local:r=1e999"], "r must be a finite number"),
    (["compare", "--task", "multitask:d=4,subsets=[[0,9]]"], "outside 0..3"),
    (["compare", "--task", "multitask:d=4,subsets=[[0,0]]"], "repeats a coordinate"),
    (["compare", "--task", "gaussian:d"], "is not key=value"),
    (["compare", "--task", "gaussian:d=3,d=4"], "given twice"),
    (["compare", "--task", "gaussian:"], "gives no key=value"),
    (["compare", "--task", "gaussian:w_mean=[1,2"], "unbalanced brackets"),
    (["compare", "--task", "gaussian:w_mean=1,2]"], "unbalanced brackets"),
    (["compare", "--task", ""], "empty SPEC"),
    (["compare", "--task", ":d=3"], "has no name"),
    (["compare", "--task", "no\nsuch"], "unknown task 'no such'"),
    (["compare", "--task", "gaussian", "--estimator", ""], "empty SPEC"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:lam=-1"], "lam must be >= 0"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:lam=big"], "lam must be a finite number"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:lam=1e999"], "lam must be a finite number"),
    (["compare", "--task", "gaussian", "--estimator", "ridge:method=qr"], "method must be one of"),
    (["compare", "--task", "gaussian", "--estimator", "gd:steps=-1"], "steps must be >= 0"),
    (["compare", "--task", "gaussian", "--estimator", "gd:steps=1000000000"], "steps must be at most"),
    (["compare", "--task", "gaussian", "--estimator", "pgd:steps=1000000000"], "steps must be at most"),
    (["compare", "--task", "gaussian", "--estimator", "newton:steps=1000000000"], "steps must be at most"),
    (["compare", "--task", "gaussian", "--estimator", "gd:lr=0"], "lr must be positive"),
    (["compare", "--task", "gaussian", "--estimator", "gd:lr=1e999"], "lr must be a finite number"),
    (["compare", "--task", "gaussian", "--estimator", "gd:mean=maybe"], "mean must be true/false"),
    (["compare", "--task", "gaussian", "--estimator", "knn:k=0"], "k must be at least 1"),
    (["compare", "--task", "gaussian", "--estimator", "newton:scale=max"], "scale must be one of"),
    (["compare", "--task", "gaussian", "--estimator", "kernel:omega=[1,2],mu=[1]"], "one value per head"),
    (["compare", "--task", "gaussian", "--estimator", "kernel:omega=1e999"], "omega must be a finite"),
    (["compare", "--task", "gaussian", "--estimator", "debiased_gd:lr=-1"], "lr must be positive"),
    (["compare", "--task", "gaussian", "--estimator", "single_head:L=0"], "L must be at least 1"),
    (["compare", "--task", "gaussian", "--estimator", "single_head:noise_std=1e999"], "a finite number"),
    (["compare", "--task", "gaussian", "--estimator", "pgd:precond=foo"], "precond must be"),
    (["compare", "--task", "gaussian:d=2", "--estimator", "pgd:precond=[1,2,3]"], "needs d=2 numbers"),
    (["compare", "--task", "gaussian", "--estimator", "ols", "--estimator", "ols"], "given twice"),
    (["compare", "--task", "gaussian", "--estimator", "zero:k=1"], "unknown key 'k'"),
    (["compare", "--task", "gaussian", "--samples", "1"], "samples must be at least 2"),
    (["compare", "--task", "gaussian", "--samples", "0"], "samples must be at least 2"),
    (["compare", "--task", "gaussian", "--samples", "-5"], "samples must be at least 2"),
    (["compare", "--task", "gaussian", "--samples", "1000000000000"], "samples must be at most"),
    (["compare", "--task", "gaussian", "--samples", "many"], "invalid int value"),
    (["compare", "--task", "gaussian", "--seed", "-1"], "seed must be an integer in [0, 2**63)"),
    (["compare", "--task", "gaussian", "--seed", "1180591620717411303424"], "seed must be an integer"),
    (["compare", "--task", "gaussian", "--seed", "1.5"], "invalid int value"),
    (["compare", "--task", "gaussian", "--device", "tpu"], "device"),
    (["compare", "--task", "gaussian", "--dtype", "float16"], "invalid choice"),
    (["compare", "--task", "gaussian:d=100000,n=41"], "needs about"),
    (["compare", "--task", "gaussian:d=5,n=1000000000"], "needs about"),
    (["compare", "--task", "gaussian:d=200,n=200", "--estimator", "gd"], "needs about"),
    (["compare", "--task", "gaussian:d=2,n=3", "--plot", "/proc/x.png"], "cannot write '/proc/x.png'"),
    (["compare", "--task", "gaussian:d=2,n=3", "--plot", "missing_dir/curve.png"], "does not exist"),
    (["compare", "--task", "gaussian:d=2,n=3", "--plot", "curve.txt"], "ending in .png"),
    (["compare", "--task", "gaussian:d=2,n=3", "--plot", "adir.png"], "it is a directory"),
    (["compare", "--task", "gaussian:d=2,n=3", "--plot", "afile/x.png"], "does not exist"),
    (["compare", "--task", "gaussian", "--bogus"], "unrecognized arguments: --bogus"),
    (["compare", "--task"], "expected one argument"),
    (["compare"], "required: --task"),
]

TRAIN = [
    (["train"], "give a CONFIG file"),
    (["train", "missing.yaml"], "does not exist"),
    (["train", "bin.yaml"], "is not text (UTF-8)"),
    (["train", "malformed.yaml"], "is malformed"),
    (["train", "tiny.toml"], "is malformed"),
    (["train", "list.yaml"], "must hold a mapping"),
    (["train", "notask.yaml"], "needs a 'task'"),
    (["train", "nomodel.yaml"], "needs a 'model'"),
    (["train", "adir"], "is not a file; give a YAML or TOML file"),
    (["train", "/dev/null"], "is not a file"),
    (["train", "tiny.yaml", "train.steps"], "is not a key=value override"),
    (["train", "tiny.yaml", "=5"], "override '=5' is not key=value"),
    (["train", "tiny.yaml", "train.stepz=3"], "unknown key 'config.train.stepz'"),
    (["train", "tiny.yaml", "trian.steps=3"], "unknown key 'config.trian'"),
    (["train", "tiny.yaml", "train=5"], "config.train must be a mapping"),
    (["train", "tiny.yaml", "train.steps=0"], "train.steps must be at least 1"),
    (["train", "tiny.yaml", "train.steps=1.5"], "train.steps must be an integer"),
    (["train", "tiny.yaml", "train.steps=1e999"], "train.steps must be an integer"),
    (["train", "tiny.yaml", "train.batch=0"], "train.batch must be at least 1"),
    (["train", "tiny.yaml", "train.batch=abc"], "train.batch must be an integer"),
    (["train", "tiny.yaml", "train.batch=1000000000"], "needs about"),
    (["train", "tiny.yaml", "train.seed=-1"], "train.seed must be an integer in [0, 2**63)"),
    (["train", "tiny.yaml", "train.seed=1180591620717411303424"], "train.seed must be an integer"),
    (["train", "tiny.yaml", "train.loss=median"], "train.loss must be one of"),
    (["train", "tiny.yaml", "optimizer.lr=0"], "optimizer.lr must be positive"),
    (["train", "tiny.yaml", "optimizer.lr=1e999"], "optimizer.lr must be a finite number"),
    (["train", "tiny.yaml", "optimizer.lr=nan"], "optimizer.lr must be a finite number"),
    (["train", "tiny.yaml", "optimizer.name=rmsprop"], "optimizer.name must be one of"),
    (["train", "tiny.yaml", "optimizer.betas=[0.9,1.5]"], "optimizer.betas must lie in [0, 1)"),
    (["train", "tiny.yaml", "optimizer.betas=[0.9]"], "optimizer.betas must be"),
    (["train", "tiny.yaml", "optimizer.weight_decay=-1"], "weight_decay must be >= 0"),
    (["train", "tiny.yaml", "optimizer.clip=0"], "optimizer.clip must be positive"),
    (["train", "tiny.yaml", "schedule.name=step"], "schedule.name must be one of"),
    (["train", "tiny.yaml", "schedule.warmup=-1"], "schedule.warmup must be >= 0"),
    (["train", "tiny.yaml", "schedule.min_lr_ratio=2"], "min_lr_ratio must lie in [0, 1]"),
    (["train", "tiny.yaml", "schedule.decay=0"], "schedule.decay must lie in (0, 1]"),
    (["train", "curriculum.yaml"], "exceeds the task's n=5"),
    (["train", "tiny.yaml", "curriculum.n.start=2"], "config.curriculum.n needs end"),
    (["train", "tiny.yaml", "curriculum.n.start=0", "curriculum.n.end=3"], "start must be at least 1"),
    (["train", "tiny.yaml", "eval.samples=1"], "eval.samples must be at least 2"),
    (["train", "tiny.yaml", "eval.samples=1000000000000"], "eval.samples must be at most"),
    (["train", "tiny.yaml", "eval.estimators=[magic]"], "unknown estimator"),
    (["train", "tiny.yaml", "eval.estimators=[ridge:lam=-1]"], "lam must be >= 0"),
    (["train", "tiny.yaml", "eval.estimators=[ols,ols]"], "names an estimator twice"),
    (["train", "tiny.yaml", "eval.every=-1"], "eval.every must be >= 0"),
    (["train", "tiny.yaml", "eval.n=0"], "eval.n must be at least 1"),
    (["train", "tiny.yaml", "eval.n=1000000000"], "needs about"),
    (["train", "tinyg.yaml", "eval.n=50"], "max_n=5"),
    (["train", "tinyg.yaml", "task=gaussian:d=2,n=9"], "max_n=5"),
    (["train", "tinyg.yaml", "model.heads=3"], "not divisible by heads"),
    (["train", "tiny.yaml", "model.heads=100000000"], "needs about"),
    (["train", "tiny.yaml", "model.heads=0"], "heads must be at least 1"),
    (["train", "tiny.yaml", "model.d=3"], "does not match task d=2"),
    (["train", "tiny.yaml", "model=nosuch"], "unknown model 'nosuch'"),
    (["train", "tiny.yaml", "task=nosuch"], "unknown task 'nosuch'"),
    (["train", "tiny.yaml", "task.d=0"], "d must be at least 1"),
    (["train", "tiny.yaml", "run.device=tpu"], "device"),
    (["train", "tiny.yaml", "run.dtype=float16"], "run.dtype must be one of"),
    (["train", "tiny.yaml", "run.checkpoint_every=0"], "checkpoint_every must be at least 1"),
    (["train", "tiny.yaml", "run.log_every=0"], "log_every must be at least 1"),
    (["train", "tiny.yaml", "run.keep=0"], "run.keep must be at least 1"),
    (["train", "tiny.yaml", "run.cuda_graph=true"], "run.cuda_graph needs run.device=cuda"),
    (["train", "tiny.yaml", "run.amp=fp8"], "run.amp must be one of"),
    (["train", "tiny.yaml", "--out", "/proc/x"], "cannot write '/proc/x'"),
    (["train", "tiny.yaml", "--out", "/dev/null"], "exists and is not a directory"),
    (["train", "tiny.yaml", "--out", "afile"], "exists and is not a directory"),
    (["train", "tiny.yaml", "--out", "afile/run"], "is not a directory"),
    (["train", "tiny.yaml", "--out", "foreign"], "is not empty"),
    (["train", "tiny.yaml", "--out", "run"], "already holds a run"),
    (["train", "tiny.yaml", "--out", "out", "train.seed=-1"], "train.seed must be"),
    (["train", "tiny.yaml", "--out"], "expected one argument"),
    (["train", "tiny.yaml", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "tiny.yaml", "--max-members", "0"], "--max-members must be at least 1"),
    (["train", "tiny.yaml", "--max-members", "x"], "invalid int value"),
    (["train", "--resume", "run", "tiny.yaml"], "give no CONFIG"),
    (["train", "--resume", "run", "--sweep", "train.seed=0,1"], "give no CONFIG"),
    (["train", "--resume", "missing"], "does not exist"),
    (["train", "--resume", "foreign"], "not a run directory"),
    (["train", "--resume", "afile"], "does not exist"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,-1", "--out", "sw"], "train.seed must be"),
    (["train", "tiny.yaml", "--sweep", "train.seed", "--out", "sw"], "is not key=v1,v2"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,0", "--out", "sw"], "repeats a value"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,,1", "--out", "sw"], "has an empty value"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,1", "--sweep", "train.seed=2", "--out", "sw"],
     "given twice"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,1", "--out", "afile"], "is not a directory"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,1", "--out", "foreign"], "is not empty"),
    (["train", "tiny.yaml", "--sweep", "train.seed=0,1", "--out", "/proc/x"], "cannot write"),
    (["train", "tiny.yaml", "--sweep", "model.heads=1,100000000", "--out", "sw"], "needs about"),
    (["train", "tiny.yaml", "--sweep", "eval.estimators=[ols],[magic]", "--out", "sw"],
     "unknown estimator"),
    (["train", "tinyg.yaml", "--sweep", "eval.n=3,50", "--out", "sw"], "max_n=5"),
    (["train", "tiny.yaml", "train.steps=0", "--sweep", "train.seed=0,1", "--out", "sw"],
     "train.steps must be at least 1"),
    (["train", "badsweep.yaml", "--out", "sw"], "must be a non-empty list"),
    (["train", "listsweep.yaml", "--out", "sw"], "must map keys to lists"),
]

EVAL = [
    (["eval"], "required: run_dir"),
    (["eval", "missing"], "does not exist"),
    (["eval", "foreign"], "not a run directory"),
    (["eval", "afile"], "does not exist"),
    (["eval", "norun"], "has no checkpoint yet"),
    (["eval", "run", "--n", "-3"], "n must be at least 1"),
    (["eval", "run", "--n", "0"], "n must be at least 1"),
    (["eval", "run", "--n", "1000000000"], "needs about"),
    (["eval", "run", "--n", "abc"], "invalid int value"),
    (["eval", "grun", "--n", "50"], "max_n=5"),
    (["eval", "run", "--samples", "0"], "samples must be at least 2"),
    (["eval", "run", "--samples", "1"], "samples must be at least 2"),
    (["eval", "run", "--samples", "-1"], "samples must be at least 2"),
    (["eval", "run", "--samples", "1000000000000"], "samples must be at most"),
    (["eval", "run", "--estimator", "magic"], "unknown estimator 'magic'"),
    (["eval", "run", "--estimator", "ridge:lam=1e999"], "lam must be a finite number"),
    (["eval", "run", "--estimator", "gd:steps=1000000000"], "steps must be at most"),
    (["eval", "run", "--estimator", "ols", "--estimator", "ols"], "given twice"),
    (["eval", "run", "--plot", "/proc/x.png"], "cannot write"),
    (["eval", "run", "--plot", "curve.txt"], "ending in .png"),
    (["eval", "run", "--plot", "adir.png"], "it is a directory"),
    (["eval", "run", "--device", "tpu"], "device"),
    (["eval", "run", "--bogus"], "unrecognized arguments"),
]

PROBE = [
    (["probe"], "required: run_dir"),
    (["probe", "missing"], "does not exist"),
    (["probe", "foreign"], "not a run directory"),
    (["probe", "run"], "probe needs a gpt2 model"),
    (["probe", "grun", "--samples", "1"], "--samples must lie in [2,"),
    (["probe", "grun", "--probe-samples", "1"], "--probe-samples must lie in [2,"),
    (["probe", "grun", "--samples", "-4"], "--samples must lie in [2,"),
    (["probe", "grun", "--probe-samples", "1000000000000"], "--probe-samples must lie in [2,"),
    (["probe", "grun", "--probe-samples", "100000000"], "needs about"),
    (["probe", "grun", "--samples", "10000000"], "needs about"),
    (["probe", "grun", "--samples", "ten"], "invalid int value"),
    (["probe", "grun", "--ln-f", "first"], "invalid choice"),
    (["probe", "grun", "--plot", "/proc/x.png"], "cannot write"),
    (["probe", "grun", "--plot", "probe.gif"], "ending in .png"),
    (["probe", "grun", "--device", "tpu"], "device"),
]

REPRODUCE = [
    (["reproduce"], "required: paper"),
    (["reproduce", "nosuch"], "unknown"),
    (["reproduce", "newton", "--quick", "--out", "afile"], "exists and is not a directory"),
    (["reproduce", "newton", "--quick", "--out", "/proc/x"], "cannot write '/proc/x'"),
    (["reproduce", "newton", "--quick", "--out", "/dev/null"], "exists and is not a directory"),
    (["reproduce", "newton", "--quick", "--out", "foreign"], "is not an iclreg report directory"),
    (["reproduce", "newton", "--quick", "--out", "rep", "--runs", "afile"], "choose a directory for --runs"),
    (["reproduce", "newton", "--quick", "--out", "rep", "--runs", "/proc/x"], "cannot write '/proc/x'"),
    (["reproduce", "newton", "--quick", "--out", "rep", "--runs", "rep/runs"], "lies inside --out"),
    (["reproduce", "newton", "--quick", "--device", "tpu", "--out", "rep"], "device"),
    (["reproduce", "newton", "--bogus"], "unrecognized arguments"),
]

DEMO = [
    (["demo", "--samples", "0"], "--samples must lie in [2,"),
    (["demo", "--samples", "1"], "--samples must lie in [2,"),
    (["demo", "--samples", "1000000000000"], "--samples must lie in [2,"),
    (["demo", "--samples", "many"], "invalid int value"),
    (["demo", "--out", "afile"], "exists and is not a directory"),
    (["demo", "--out", "/proc/x"], "cannot write '/proc/x'"),
    (["demo", "--out", "foreign"], "is not an iclreg report directory"),
    (["demo", "--bogus"], "unrecognized arguments"),
]

TOP = [
    ([], "required: command"),
    (["nosuchcommand"], "invalid choice"),
    (["--bogus"], "required: command"),
    (["--bogus", "compare", "--task", "gaussian"], "unrecognized arguments: --bogus"),
    (["Compare", "--task", "gaussian"], "invalid choice"),
]

CASES = COMPARE + TRAIN + EVAL + PROBE + REPRODUCE + DEMO + TOP


def test_the_suite_covers_every_subcommand_with_at_least_150_cases():
    assert len(CASES) >= 150
    commands = {argv[0] for argv, _ in CASES if argv and not argv[0].startswith("-")}
    assert {"compare", "train", "eval", "probe", "reproduce", "demo"} <= commands
    assert len({tuple(argv) for argv, _ in CASES}) == len(CASES)  # no case twice


# --- the workspace ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny configs, odd files and two trained runs (``run``: softmax attention, ``grun``: GPT-2)."""
    root = tmp_path_factory.mktemp("malformed")
    for name, text in FILES.items():
        (root / name).write_text(text)
    (root / "bin.yaml").write_bytes(bytes(range(256)) * 4)
    (root / "adir").mkdir()
    (root / "adir.png").mkdir()
    (root / "foreign").mkdir()
    (root / "foreign" / "thesis.tex").write_text("mine\n")
    with _chdir(root):
        assert main(["train", "tiny.yaml", "--out", "run"]) == 0
        assert main(["train", "tinyg.yaml", "--out", "grun"]) == 0
    (root / "norun").mkdir()
    (root / "norun" / "config.yaml").write_text((root / "run" / "config.yaml").read_text())
    return root


@contextlib.contextmanager
def _chdir(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root``, with the size and modification time (ns) of each file. (A
    directory's own time changes when a check creates and removes a probe entry in it.)"""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns) if path.is_file() else (-1, 0)
    return out


def _hang(signum, frame):
    raise TimeoutError(f"the invocation took more than {LIMIT_S} s")


def run_main(argv: list[str]) -> int:
    """``main(argv)``'s exit status (argparse's SystemExit included), within LIMIT_S seconds."""
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(LIMIT_S)
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(("argv", "fragment"), CASES, ids=[" ".join(a) or "(none)" for a, _ in CASES])
def test_malformed_invocation(argv, fragment, workspace, capsys, monkeypatch):
    monkeypatch.setattr(resources, "available_bytes", lambda device: FREE)
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    status = run_main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("iclreg: error: ") or lines[0].startswith("iclreg "), lines[0]
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert snapshot(workspace) == before, "the invocation left something behind"


SUBPROCESS = [  # a few only: each starts Python and torch (seconds)
    (["compare", "--task", "gaussian:d=100000,n=41"], "needs about"),
    (["train", "tiny.yaml", "--out", "/proc/x", "train.seed=3"], "cannot write"),
    (["eval", "run", "--n", "-3"], "n must be at least 1"),
]


@pytest.mark.parametrize(("argv", "fragment"), SUBPROCESS, ids=[" ".join(a) for a, _ in SUBPROCESS])
def test_a_user_sees_one_line(argv, fragment, workspace):
    """Through the real entry point, with the machine's own free memory: the d = 100000 task
    needs 32 GiB for its prompts alone, more than any CI machine has."""
    before = snapshot(workspace)
    proc = subprocess.run([sys.executable, "-m", "iclreg", *argv], cwd=workspace, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and fragment in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert snapshot(workspace) == before


def test_overrides_may_follow_the_options(workspace, tmp_path, capsys):
    """``train CONFIG --out DIR key=value`` is the same as ``train CONFIG key=value --out DIR``."""
    with _chdir(workspace):
        status = run_main(["train", "tiny.yaml", "--out", str(tmp_path / "late"), "train.steps=1",
                           "eval.samples=4"])
    assert status == 0, capsys.readouterr().err
    config = (tmp_path / "late" / "config.yaml").read_text()
    assert "steps: 1\n" in config and "samples: 4\n" in config
