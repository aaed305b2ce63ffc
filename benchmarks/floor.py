"""Benchmark: the training step against the machine's floor, the cost of drawing its prompts.

For each model of the one-layer attention family at its paper's shape (He et al., H = 1, 2,
4, 8; Cui et al.'s two heads at d = 10; Boursier & Boyer's reduced attention; the
chain-of-thought model) and each ensemble size E, in one process:

- floor: seconds per step of ``Trainer.sample`` alone (every member's prompts, from its own
  (seed, step), into the sampler's buffer);
- step: seconds per ``Trainer.train_step`` (those prompts, the loss, the gradients and the
  optimiser step of every member), with the engine ``run.engine=auto`` picks;
- ratio = floor / step (1: training costs nothing beyond its prompts; target >= 0.5 at E >= 8);
- model-steps/s = E / step.

The two are timed in alternating rounds (best of ``--rounds``), so a load that comes and goes
hits both. At He et al.'s H = 2 it also times the autograd engine (``run.engine=autograd``,
the autograd step as it is now) and the old sampler (one ``task.sample`` per member stacked,
as before the sampler's buffer) at the same E, and reports the speed-up and the sampler's
ratio (new / old time, target <= 1). Everything runs at one and at two torch threads
(``--threads``).

``--old-engine REV`` also runs ``benchmarks/ensemble.py`` as it was at commit REV (default
``OLD_ENGINE``, the engine before the fused step: the "today's ensemble.py" of the >= 8x target
at E = 8) from a temporary git worktree, in a subprocess at the same thread count, and reports
the fused step's model-steps/s over that engine's at the same E.

``--cli`` also times ``iclreg train`` of an 8-seed He et al. sweep from outside (two step
counts, each the best of ``--cli-repeats`` runs, the difference per step, so start-up and
evaluation cancel) beside the floor of that sweep measured in this process at the same thread
count.

    python benchmarks/floor.py [--quick] [--threads 1 2] [--members 1 8 64 256] [--cli]
        [--cli-steps 100 1100] [--cli-repeats 3] [--old-engine [REV]] [--rounds 3] [--seconds 0.6]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from iclreg.train import resolve
from iclreg.train.loop import Trainer

HE_TASK = "gaussian:d=5,n=41,noise_std=0.316228,w_std=0.447214"
SHAPES = {  # name -> (task, model, loss, batch): the papers' training shapes
    **{f"he_H{h}": (HE_TASK, f"softmax_attention:heads={h}", "query", 256) for h in (1, 2, 4, 8)},
    "cui_H2": ("gaussian:d=10,n=41,noise_std=0.316228,w_std=0.316228", "softmax_attention:heads=2",
               "query", 256),
    "boursier": ("gaussian:d=5,n=101,noise_std=0.316228,w_std=0.447214",
                 "reduced_attention:activation=softmax", "query", 128),
    "cot": ("sparse:d=10,n=15,s=10,noise_std=0.316", "cot:d=10,lr=0.3,steps=20", "chain", 256),
}
QUICK_SHAPES = ("he_H2", "boursier", "cot")
OLD_ENGINE = "ed7b02a"  # the last commit before the fused step (075fd64)


def config(shape: str, seed: int, engine: str) -> dict:
    task, model, loss, batch = SHAPES[shape]
    return {"task": task, "model": model, "optimizer": {"name": "adam", "lr": 1e-3},
            "train": {"steps": 10**9, "batch": batch, "loss": loss, "seed": seed},
            "run": {"engine": engine, "log_every": 10**9, "checkpoint_every": 10**9, "figures": False}}


def per_call(fn, seconds: float) -> float:
    """Seconds per call of ``fn`` over about ``seconds`` (at least 3 calls)."""
    fn(0)
    start, calls = time.perf_counter(), 0
    while calls < 3 or time.perf_counter() - start < seconds:
        calls += 1
        fn(calls)
    return (time.perf_counter() - start) / calls


def old_sample(trainer: Trainer, step: int) -> None:
    """The sampler before the buffer: one ``task.sample`` per member, stacked."""
    cfg = trainer.shared
    prompts = [m.task.sample(cfg.train.batch, m.config.train.seed, step, device=trainer.device,
                             dtype=trainer.dtype) for m in trainer.members]
    torch.stack([p.x for p in prompts]), torch.stack([p.y for p in prompts])


def measure(shape: str, members: int, engine: str, args: argparse.Namespace,
            old_sampler: bool = False) -> dict:
    """Floor and step time of ``members`` members of ``shape`` in alternating rounds."""
    with tempfile.TemporaryDirectory() as tmp:
        configs = [resolve(config(shape, seed, engine)) for seed in range(members)]
        dirs = [Path(tmp) / str(i) for i in range(members)]
        for d in dirs:
            d.mkdir()
        trainer = Trainer(configs, dirs, resume=False)
        budget = args.seconds / max(1, args.rounds)
        floor = step = old = float("inf")
        for _ in range(args.rounds):
            floor = min(floor, per_call(trainer.sample, budget))
            step = min(step, per_call(trainer.train_step, budget))
            if old_sampler:
                old = min(old, per_call(lambda s: old_sample(trainer, s), budget))
        engine_used = type(trainer.update).__name__
        trainer.close()
    row = {"shape": shape, "E": members, "engine": engine_used, "floor_s": floor, "step_s": step,
           "ratio": floor / step, "model_steps_per_s": members / step,
           "floor_model_steps_per_s": members / floor}
    if old_sampler:
        row["old_sampler_s"] = old
    return row


def cli_sweep(threads: int, steps: tuple[int, int], repeats: int, tmp: Path) -> float:
    """Seconds per step of ``iclreg train`` of an 8-seed He et al. sweep, timed from outside: the
    best of ``repeats`` runs at each step count (the two alternating), their difference per step."""
    times = {n: float("inf") for n in steps}
    for i in range(repeats):
        for n in steps:
            out = tmp / f"sweep{n}-{i}"
            cmd = [sys.executable, "-m", "iclreg", "-q", "train", "configs/tiny_he.yaml", f"train.steps={n}",
                   "train.batch=256", "eval.samples=256", "run.figures=false", f"run.checkpoint_every={n}",
                   "--sweep", "train.seed=0,1,2,3,4,5,6,7", "--out", str(out)]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            start = time.perf_counter()
            subprocess.run(cmd, check=True, env=env, cwd=Path(__file__).resolve().parents[1],
                           stdout=subprocess.DEVNULL)
            times[n] = min(times[n], time.perf_counter() - start)
    return (times[steps[1]] - times[steps[0]]) / (steps[1] - steps[0])


def old_engine(rev: str, threads: int, members: list[int], seconds: float, tmp: Path) -> dict[int, float]:
    """Model-steps/s by E of ``benchmarks/ensemble.py`` as it was at commit ``rev`` (He et al.'s
    H = 2, batch 256, its own engine and its own copy of iclreg), run at ``threads`` threads."""
    root, tree, out = Path(__file__).resolve().parents[1], tmp / "old", tmp / "old.json"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", "-q", str(tree), rev], check=True)
    try:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "PYTHONPATH": str(tree / "src")}  # ahead of the installed iclreg
        subprocess.run([sys.executable, "benchmarks/ensemble.py", "--device", "cpu", "--members",
                        *map(str, members), "--seconds-per-point", str(seconds), "--json", str(out)],
                       check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL)
        return {r["E"]: r["model_steps_per_s"] for r in json.loads(out.read_text())["rows"]}
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], check=True)


def fused_rate(record: dict, threads: int, E: int) -> float:
    """The fused step's model-steps/s at He et al.'s H = 2, measured earlier in this run."""
    return next(r["model_steps_per_s"] for r in record["rows"]
                if r["shape"] == "he_H2" and r["E"] == E and r["threads"] == threads)


def compare_autograd(record: dict, args: argparse.Namespace, threads: int, members: list[int]) -> None:
    """The autograd engine and the old sampler against the fused step, in this process."""
    for E in members:
        old = measure("he_H2", E, "autograd", args, old_sampler=True)
        fused = fused_rate(record, threads, E)
        base = {"threads": threads, "E": E, "autograd_model_steps_per_s": old["model_steps_per_s"],
                "fused_model_steps_per_s": fused, "speedup": fused / old["model_steps_per_s"],
                "sampler_new_over_old": old["floor_s"] / old["old_sampler_s"]}
        record["baseline"].append(base)
        print(f"he_H2 E={E}: autograd engine {base['autograd_model_steps_per_s']:.0f} model-steps/s, "
              f"fused {fused:.0f}: {base['speedup']:.1f}x; sampler time new/old "
              f"{base['sampler_new_over_old']:.2f}")


def compare_old_engine(record: dict, args: argparse.Namespace, threads: int, members: list[int]) -> None:
    """``benchmarks/ensemble.py`` at commit ``args.old_engine`` against the fused step."""
    with tempfile.TemporaryDirectory() as tmp:
        rates = old_engine(args.old_engine, threads, members, args.old_seconds, Path(tmp))
    for E in members:
        fused = fused_rate(record, threads, E)
        row = {"threads": threads, "E": E, "rev": args.old_engine, "old_model_steps_per_s": rates[E],
               "fused_model_steps_per_s": fused, "speedup": fused / rates[E]}
        record["old_engine"].append(row)
        print(f"he_H2 E={E}: benchmarks/ensemble.py at {args.old_engine} {rates[E]:.0f} model-steps/s, "
              f"fused {fused:.0f}: {row['speedup']:.1f}x{'  < 8x' if E == 8 and row['speedup'] < 8 else ''}")


def time_cli(record: dict, args: argparse.Namespace, threads: int) -> None:
    """``iclreg train`` of the 8-seed sweep from outside, beside its floor."""
    with tempfile.TemporaryDirectory() as tmp:
        per_step = cli_sweep(threads, tuple(args.cli_steps), args.cli_repeats, Path(tmp))
    floor = measure("he_H2", 8, "auto", args)["floor_s"]
    cli = {"threads": threads, "step_s": per_step, "model_steps_per_s": 8 / per_step,
           "floor_s": floor, "ratio": floor / per_step}
    record["cli"].append(cli)
    print(f"iclreg train, 8-seed He et al. sweep (batch 256), from outside: {8 / per_step:.0f} "
          f"model-steps/s, {per_step * 1e3:.2f} ms/step against a floor of {floor * 1e3:.2f} ms: "
          f"ratio {cli['ratio']:.2f}")


def check_commit(rev: str) -> None:
    """Exit with a one-line error (status 2) unless ``rev`` names a commit of this clone."""
    root = Path(__file__).resolve().parents[1]
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
                           capture_output=True)
    if found.returncode:
        print(f"floor.py: --old-engine {rev}: no such commit in this clone; give a commit it holds "
              "(a shallow clone: git fetch --unshallow)", file=sys.stderr)
        sys.exit(2)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three shapes, E = 1 and 8")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--members", type=int, nargs="+", default=None)
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.6, help="timing budget per quantity and point")
    parser.add_argument("--cli", action="store_true", help="also time iclreg train of an 8-seed sweep")
    parser.add_argument("--cli-steps", type=int, nargs=2, default=[100, 1100], metavar=("SHORT", "LONG"),
                        help="the two sweeps' step counts (their difference is timed)")
    parser.add_argument("--cli-repeats", type=int, default=3, help="runs of each sweep (the best is kept)")
    parser.add_argument("--old-engine", nargs="?", const=OLD_ENGINE, metavar="REV",
                        help=f"also time benchmarks/ensemble.py at commit REV (default {OLD_ENGINE})")
    parser.add_argument("--old-seconds", type=float, default=12.0,
                        help="the old benchmark's --seconds-per-point")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.old_engine:
        check_commit(args.old_engine)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else tuple(SHAPES))
    members = args.members or ([1, 8] if args.quick else [1, 8, 64, 256])
    baseline = [e for e in members if e <= 64] if "he_H2" in shapes else []  # the baseline's shape
    record: dict = {"rows": [], "baseline": [], "old_engine": [], "cli": []}
    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n{threads} torch thread(s); floor = drawing the step's prompts alone")
        print(f"{'shape':10s} {'E':>4s} {'engine':>10s} {'floor ms':>9s} {'step ms':>9s} {'ratio':>6s} "
              f"{'model-steps/s':>14s}")
        for shape in shapes:
            for E in members:
                row = measure(shape, E, "auto", args) | {"threads": threads}
                record["rows"].append(row)
                flag = "" if E < 8 or row["ratio"] >= 0.5 else "  < 0.5"
                print(f"{shape:10s} {E:4d} {row['engine']:>10s} {row['floor_s'] * 1e3:9.2f} "
                      f"{row['step_s'] * 1e3:9.2f} {row['ratio']:6.2f} "
                      f"{row['model_steps_per_s']:14.0f}{flag}")
        compare_autograd(record, args, threads, baseline)
        if args.old_engine and baseline:
            compare_old_engine(record, args, threads, baseline)
        if args.cli:
            time_cli(record, args, threads)
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
