"""One way to train: a plan of named runs into a directory, reusing what is already there.

``train_plan({name: config}, out)`` trains every run of the plan into ``out/<name>``:

- a finished run of the same config (``eval.json`` written, or diverged) is reused as it is;
- a run stopped part way resumes from its latest checkpoint;
- a new run is created, then trained;
- a run of another config in the same place is refused (remove it, or use another directory).

Every run is checked in one pass (:func:`preflight_plan`: its name, its directory, its stored
config, and whether a new run can train and fits, ``preflight.py``) before any file is written,
so a plan with one bad run leaves the directory as it was.

Runs that share a model shape and a prompt shape (``preflight.group_key``) and the step they
start from train together as one ensemble, whatever else differs (seed, learning rate, the
task's values): :func:`train_groups` splits them into loops (:func:`plan_loops`) and sends the
loops to a backend. Reproductions and sweeps train through this module, so every one of them
can be stopped and continued (``--runs DIR``, ``--resume SWEEP``).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import TrainingError, check
from ..logs import phase
from ..models import StackedPredictor
from .backends import as_backend, run_chunks
from .checkpoint import latest_step
from .chunks import Backend, Chunk
from .config import ExperimentConfig
from .preflight import available_bytes, check_members, group_key, member_bytes, plan_chunks
from .run import build_model, read_run_config
from .rundir import diverged
from .runs import check_run_dir, prepare_run_dir

log = logging.getLogger(__name__)

COMPARED = ("task", "model", "optimizer", "schedule", "curriculum", "train", "eval")


def _check_name(name: str) -> None:
    parts = name.split("/")
    check(bool(name) and all(p and p not in (".", "..") for p in parts),
          f"run name '{name}' must be a relative path without '.', '..' or empty parts")


def finished(run_dir: Path) -> bool:
    """A run that needs no more training: its final evaluation is written, or it diverged."""
    return (run_dir / "eval.json").is_file() or diverged(run_dir)


def stored_config(run_dir: Path, config: ExperimentConfig) -> ExperimentConfig:
    """The config stored in ``run_dir``, refused when it is another run than ``config``."""
    stored = read_run_config(run_dir)
    mismatch = [k for k in COMPARED if getattr(stored, k) != getattr(config, k)]
    check(not mismatch, f"'{run_dir}' holds a run with another {', '.join(mismatch)}; "
                        "remove it or keep these runs in another directory")
    return stored


@dataclass(frozen=True)
class PlanCheck:
    """What :func:`preflight_plan` found: every run's directory (``out/<name>``), the runs to
    create (in the plan's order), and the config stored in each run kept from before."""

    dirs: dict[str, Path]
    new: tuple[str, ...]
    kept: dict[str, ExperimentConfig]


def preflight_plan(plan: Mapping[str, ExperimentConfig], out: str | Path,
                   in_process: bool = True) -> PlanCheck:
    """Every check a plan must pass before any file is written, in one pass: the run names are
    relative paths, each new run's directory can be created (``runs.check_run_dir``), each kept
    run is this plan's (:func:`stored_config`), and each new run can train and evaluate and fits
    (``preflight.check_members``; ``in_process=False``: Ray workers check their own device).
    Creates nothing."""
    out = Path(out)
    for name in plan:
        _check_name(name)
    dirs = {name: out / name for name in plan}
    new = tuple(name for name in plan if not (dirs[name] / "config.yaml").exists())
    for name in new:
        check_run_dir(dirs[name])
    kept = {name: stored_config(dirs[name], config) for name, config in plan.items() if name not in new}
    check_members([plan[name] for name in new], in_process)
    return PlanCheck(dirs, new, kept)


def train_plan(plan: Mapping[str, ExperimentConfig], out: str | Path, progress: bool = False,
               max_members: int | None = None, backend: str | Backend = "local") -> dict[str, Path]:
    """Train (or reuse, or resume) every run of ``plan`` into ``out/<name>``, on ``backend``
    (``backends.py``: in this process, or as Ray tasks), once :func:`preflight_plan` passed.

    Returns:
        name -> run directory, in the plan's order.
    """
    backend = as_backend(backend)
    checked = preflight_plan(plan, out, backend.in_process)
    return train_checked(plan, checked, progress, max_members, backend)


def train_checked(plan: Mapping[str, ExperimentConfig], checked: PlanCheck, progress: bool = False,
                  max_members: int | None = None, backend: str | Backend = "local") -> dict[str, Path]:
    """The writing half of :func:`train_plan`: create the new runs of ``checked`` (what
    :func:`preflight_plan` found for ``plan``) and train every unfinished run; checks nothing."""
    dirs, todo = checked.dirs, []
    for name, config in plan.items():
        if name in checked.new:
            prepare_run_dir(dirs[name], config)
            todo.append((config, dirs[name]))
        elif not finished(dirs[name]):
            todo.append((checked.kept[name], dirs[name]))  # with its own stored run settings (device, keep)
    if todo:
        train_groups([c for c, _ in todo], [d for _, d in todo], resume=True, progress=progress,
                     max_members=max_members, backend=backend)
    return dirs


# --- loops ------------------------------------------------------------------------------------
def plan_loops(configs: list[ExperimentConfig], dirs: list[Path], resume: bool,
               max_members: int | None, here: bool = True) -> list[Chunk]:
    """The training loops of members that share shapes and, on resume, the step of their latest
    checkpoint, each group split into chunks that fit in memory (or ``max_members``).
    ``here=False`` (Ray workers train them): split by ``max_members`` alone; each worker splits
    its chunk again to fit its own memory (``ray_backend``)."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, config in enumerate(configs):
        stacked = isinstance(build_model(config), StackedPredictor)
        start = latest_step(dirs[i]) if resume else 0
        groups[(group_key(config) if stacked else f"solo-{i}", start)].append(i)
    chunks = []
    for members in groups.values():
        first = configs[members[0]]
        per = member_bytes(first)
        budget = available_bytes(torch.device(first.run.device)) if here else per * len(members)
        chunk = plan_chunks(len(members), per, budget, max_members)
        if chunk < len(members):
            count = math.ceil(len(members) / chunk)
            capped = max_members and chunk == max_members and per * len(members) <= budget
            why = ("--max-members" if capped
                   else f"about {len(members) * per / 2**30:.2f} GiB needed ({per / 2**20:.1f} MiB "
                        f"per member), {budget / 2**30:.2f} GiB free")
            log.warning("an ensemble of %d members is trained in %d chunks of at most %d members (%s)",
                        len(members), count, chunk, why)
        for start in range(0, len(members), chunk):
            part = members[start:start + chunk]
            chunks.append(([configs[i] for i in part], [dirs[i] for i in part]))
    return chunks


def train_groups(configs: list[ExperimentConfig], dirs: list[Path], resume: bool, progress: bool,
                 max_members: int | None, backend: str | Backend = "local") -> None:
    """Train (or resume) members in loops of members that share shapes and, on resume, the step
    of their latest checkpoint (:func:`plan_loops`), on ``backend`` (``backends.py``: in this
    process, holding the lock of the directory around them, or as Ray tasks). A loop whose
    members all diverge does not stop the others.

    Raises:
        TrainingError: the one member, or every member of a new sweep, diverged; (ray) a chunk
            failed, once the others finished.
    """
    backend = as_backend(backend)
    loops = plan_loops(configs, dirs, resume, max_members, backend.in_process)
    steps = sum(c.train.steps for c in configs)
    with phase(f"training {_count(len(configs), 'run')} in {_count(len(loops), 'loop')}, "
               f"{steps:,} steps in all", log):
        diverged = run_chunks(backend, loops, resume, progress, max_members)
    if not resume and diverged == len(configs) > 1:
        raise TrainingError(f"all {len(configs)} members diverged; see their metrics.jsonl")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
