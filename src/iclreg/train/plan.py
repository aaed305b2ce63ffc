"""One way to train: a plan of named runs into a directory, reusing what is already there.

``train_plan({name: config}, out)`` trains every run of the plan into ``out/<name>``:

- a finished run of the same config (``eval.json`` written, or diverged) is reused as it is;
- a run stopped part way resumes from its latest checkpoint;
- a new run is checked (``preflight``) before any directory is created, then trained;
- a run of another config in the same place is refused (remove it, or use another directory).

Runs that share a model shape and a prompt shape (``sweep.group_key``) and the step they start
from train together as one ensemble, whatever else differs (seed, learning rate, the task's
values). Reproductions train through this function, so every one of them can be stopped and
continued across jobs with ``--runs DIR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import check
from .backends import Backend, as_backend
from .config import ExperimentConfig
from .run import read_run_config
from .runs import check_run_dir, prepare_run_dir
from .sweep import check_members, diverged, train_groups

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


def train_plan(plan: Mapping[str, ExperimentConfig], out: str | Path, progress: bool = False,
               max_members: int | None = None, backend: str | Backend = "local") -> dict[str, Path]:
    """Train (or reuse, or resume) every run of ``plan`` into ``out/<name>``, on ``backend``
    (``backends.py``: in this process, or as Ray tasks).

    Returns:
        name -> run directory, in the plan's order.
    """
    out, backend = Path(out), as_backend(backend)
    for name in plan:
        _check_name(name)
    dirs = {name: out / name for name in plan}
    new = [name for name in plan if not (dirs[name] / "config.yaml").exists()]
    for name in new:
        check_run_dir(dirs[name])
    # every kept run is this plan's, and every new run can start, before any file is written
    kept = {name: stored_config(dirs[name], config) for name, config in plan.items() if name not in new}
    check_members([plan[name] for name in new], backend.in_process)
    todo = []
    for name, config in plan.items():
        if name in new:
            prepare_run_dir(dirs[name], config)
            todo.append((config, dirs[name]))
        elif not finished(dirs[name]):
            todo.append((kept[name], dirs[name]))  # with its own stored run settings (device, keep)
    if todo:
        train_groups([c for c, _ in todo], [d for _, d in todo], resume=True, progress=progress,
                     max_members=max_members, backend=backend)
    return dirs
