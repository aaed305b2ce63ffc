"""Benchmark: the projected wall-clock time of each reproduction's training on this CPU.

For each paper the plan of its mode (``full`` by default) is grouped into training loops exactly
as ``train.train_plan`` groups it (``sweep.plan_loops``: members that share ``loop.group_key``
train as one ensemble, split into chunks when the group would not fit in the memory free now).
Each loop is built as a ``Trainer`` on temporary directories, takes one warm-up step and then
``--steps`` timed steps (``time.perf_counter``); its projected time is seconds per step times its
``train.steps``, and a paper's total is the sum over its loops. Training only: the evaluations,
the analysis and the figures are not included.

The steps are taken at the end of training (the sampler is a pure function of (seed, step)): a
loop with a curriculum (short prompts first) is timed at its final, largest size, so its
projection is an upper bound. A loop that fails to build or step for want of memory
(``MemoryError``, ``RuntimeError``) is reported as not measured, and its paper's total is then a
lower bound. Timing stops after ``--group-seconds`` (at least one timed step).

    python benchmarks/project.py [--papers demystified multihead softmax-limit test-time newton]
        [--mode toy|full] [--steps 3] [--group-seconds 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from iclreg.experiments import REPRODUCTIONS
from iclreg.train.config import ExperimentConfig
from iclreg.train.loop import Trainer
from iclreg.train.plan import plan_loops
from iclreg.train.preflight import available_bytes, member_bytes

PAPERS = ("demystified", "multihead", "softmax-limit", "test-time", "newton")
FIT_HOURS = 3.0  # a paper "fits" when its projected training takes at most this long
NOTE = "training only: evaluation, analysis and figures are not included"


def experiment(paper: str, mode: str) -> Any:
    """The reproduction ``paper`` at its ``full`` sizes, or at its ``toy`` sizes (tests)."""
    kind = REPRODUCTIONS.get(paper)
    return kind(mode="full") if mode == "full" else kind(mode="quick", sizes=kind.toy)


def has_curriculum(config: ExperimentConfig) -> bool:
    return config.curriculum.d is not None or config.curriculum.n is not None


def groups(plan: dict[str, ExperimentConfig]) -> list[tuple[list[str], list[ExperimentConfig]]]:
    """The training loops of ``plan`` as training builds them: (run names, configs) per loop."""
    names = list(plan)
    # a run directory stands for its name here; plan_loops reads none of them (resume=False: the
    # new runs of train_plan, whose latest step is 0)
    chunks = plan_loops([plan[n] for n in names], [Path(n) for n in names], False, None)
    return [([str(d) for d in dirs], list(configs)) for configs, dirs in chunks]


def _sync(losses: torch.Tensor) -> None:
    """Wait for the step's work (a no-op on the CPU beyond reading the losses)."""
    float(losses.float().sum())


def time_steps(configs: list[ExperimentConfig], steps: int, seconds: float) -> dict[str, Any]:
    """Seconds per ``train_step`` of one loop: a warm-up step, then up to ``steps`` steps (fewer
    once ``seconds`` have passed, at least one), all at the end of training."""
    total = configs[0].train.steps
    first = max(0, total - 1 - steps)
    with tempfile.TemporaryDirectory(prefix="iclreg-project-") as tmp:
        dirs = [Path(tmp) / str(i) for i in range(len(configs))]
        for d in dirs:
            d.mkdir()
        start = time.perf_counter()
        with Trainer(configs, dirs, resume=False) as trainer:
            build = time.perf_counter() - start
            threads = torch.get_num_threads()  # inside the trainer (the fused step may hold one)
            _sync(trainer.train_step(first))
            warm = time.perf_counter() - start - build
            timed, start = 0, time.perf_counter()
            while timed < steps and (timed == 0 or time.perf_counter() - start < seconds - warm):
                _sync(trainer.train_step(first + 1 + timed))
                timed += 1
            per_step = (time.perf_counter() - start) / timed
            engine = type(trainer.update).__name__
    return {"seconds_per_step": per_step, "timed_steps": timed, "build_s": build, "warmup_s": warm,
            "threads_in_trainer": threads, "engine": engine, "timed_at_step": first + 1}


def describe(names: list[str], configs: list[ExperimentConfig]) -> dict[str, Any]:
    """What a loop trains: its model and task SPECs, members, batch and steps."""
    cfg = configs[0]
    steps = {c.train.steps for c in configs}
    return {"model": cfg.model, "task": cfg.task, "members": len(configs), "batch": cfg.train.batch,
            "steps": max(steps), "steps_shared": len(steps) == 1, "runs": names,
            "curriculum": has_curriculum(cfg), "member_mib": member_bytes(cfg) / 2**20}


def measure(names: list[str], configs: list[ExperimentConfig], steps: int,
            seconds: float) -> dict[str, Any]:
    """One loop's row: :func:`describe`, its timing and its projected seconds (or why not)."""
    row = describe(names, configs)
    try:
        row |= time_steps(configs, steps, seconds)
    except (MemoryError, RuntimeError) as err:
        row |= {"measured": False, "reason": f"{type(err).__name__}: {str(err)[:200]}",
                "seconds_per_step": None, "projected_s": None}
        return row
    row |= {"measured": True, "projected_s": row["seconds_per_step"] * row["steps"]}
    return row


def project(paper: str, mode: str = "full", steps: int = 3, seconds: float = 60.0,
            report: Any = None) -> dict[str, Any]:
    """Every loop of ``paper``'s plan measured and projected, and the paper's total.
    ``report(index, row)`` is called as each loop is measured (the table's printer)."""
    exp = experiment(paper, mode)
    plan = exp.plan(exp.resolved_sizes)
    rows = []
    for names, configs in groups(plan):
        rows.append(measure(names, configs, steps, seconds))
        if report is not None:
            report(len(rows), rows[-1])
    measured = [r for r in rows if r["measured"]]
    total = sum(r["projected_s"] for r in measured)
    return {"paper": paper, "mode": mode, "runs": len(plan), "loops": rows, "total_s": total,
            "total_hours": total / 3600, "not_measured": len(rows) - len(measured),
            "upper_bound": any(r["curriculum"] for r in measured),
            "lower_bound": len(measured) < len(rows),
            "fits": len(measured) == len(rows) and total / 3600 <= FIT_HOURS}


HEADER = f"{'#':>3s} {'E':>4s} {'batch':>6s} {'s/step':>10s} {'steps':>9s} {'hours':>9s}  model | task"


def print_row(index: int, row: dict[str, Any]) -> None:
    flags = " (curriculum: timed at the final size)" if row["curriculum"] else ""
    flags += "" if row["steps_shared"] else " (members differ in train.steps: the most taken)"
    if row["measured"]:
        numbers = f"{row['seconds_per_step']:10.4f} {row['steps']:9,d} {row['projected_s'] / 3600:9.3f}"
    else:
        numbers = f"{'-':>10s} {row['steps']:9,d} {'-':>9s}"
        flags += f" NOT MEASURED: {row['reason']}"
    shape = f"{row['model']} | {row['task']}"
    print(f"{index:3d} {row['members']:4d} {row['batch']:6d} {numbers}  {shape}{flags}", flush=True)


def verdict(result: dict[str, Any]) -> str:
    """A paper's summary line: total hours and whether it fits in about ``FIT_HOURS``."""
    hours = result["total_hours"]
    bound = []
    if result["upper_bound"]:
        bound.append("an upper bound (curriculum timed at its final size)")
    if result["lower_bound"]:
        bound.append(f"a lower bound ({result['not_measured']} loop(s) not measured)")
    fits = "fits" if result["fits"] else "does NOT fit" if hours > FIT_HOURS else "unknown whether it fits"
    extra = f"; {' and '.join(bound)}" if bound else ""
    return (f"{result['paper']:14s} {hours:10.2f} h over {len(result['loops'])} loop(s), "
            f"{result['runs']} run(s): {fits} in about {FIT_HOURS:g} h{extra}")


def run(papers: list[str], mode: str, steps: int, seconds: float) -> dict[str, Any]:
    """Project every paper, printing a table per paper and the summary; the JSON record."""
    threads = torch.get_num_threads()
    budget = available_bytes(torch.device("cpu"))
    print(f"torch threads: {threads}; memory plan: {budget / 2**30:.2f} GiB for an ensemble (half the "
          f"RAM free now); {steps} timed step(s) per loop after a warm-up; {NOTE}")
    record: dict[str, Any] = {"mode": mode, "torch_threads": threads, "memory_budget_bytes": budget,
                              "steps": steps, "group_seconds": seconds, "fit_hours": FIT_HOURS,
                              "note": NOTE, "papers": {}}
    for paper in papers:
        print(f"\n{paper} ({mode}): seconds per training step of each loop, projected over its steps")
        print(HEADER)
        result = project(paper, mode, steps, seconds, report=print_row)
        record["papers"][paper] = result
        print(f"{paper} total: {result['total_hours']:.2f} h of training ({NOTE})")
    print(f"\nsummary ({mode} mode, this CPU, {threads} torch thread(s); {NOTE}):")
    for result in record["papers"].values():
        print(verdict(result))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", nargs="+", choices=PAPERS, default=list(PAPERS))
    parser.add_argument("--mode", choices=("toy", "full"), default="full",
                        help="the full plan, or the toy sizes of the tests")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per loop, after one warm-up")
    parser.add_argument("--group-seconds", type=float, default=60.0,
                        help="stop timing a loop after about this long (at least one timed step)")
    parser.add_argument("--json", metavar="FILE", help="also write everything to FILE as JSON")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    record = run(args.papers, args.mode, args.steps, args.group_seconds)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
