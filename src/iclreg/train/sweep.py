"""Sweeps: a grid of configs trained as ensembles, one run directory per member.

``iclreg train CONFIG --sweep model.heads=1,2,4,8 --sweep train.seed=0,1,2`` expands the
grid, groups the members that can share a training loop (same shapes, schedule and run
settings; they may differ in seed, learning rate, task values and initialisation), trains
each group as one ensemble, split into chunks when it would not fit in memory, and writes

    OUT/sweep.yaml               the grid and the member directories
    OUT/<member>/                a run directory per member (``load_run``, ``--resume``)
    OUT/summary.csv, .json       final metrics per member

A sweep always resumes. ``sweep.yaml`` holds the base config and the grid, so a member whose
``config.yaml`` was not written yet (a kill just after ``sweep.yaml``) is written on resume.
Each member resumes from its own latest checkpoint: members that stopped at different steps (a
kill between two members' checkpoint saves, a full disk part way through a save, ``run.keep =
1``) train on in separate loops, one per step, with the same result since a member of an
ensemble trains bit for bit as it would alone. Members already finished (``eval.json``) or
diverged (a ``diverged`` record) are left as they are. The sweep's writer holds the sweep
directory's lock (``lock.py``) throughout.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import TrainingError, check
from ..logs import phase
from ..report import write_text
from ..report.files import check_new_output_dir
from ..spec import _split_top_level
from .backends import as_backend
from .chunks import Backend
from .config import ExperimentConfig, apply_overrides, load_file, resolve, save_config
from .durable import remove_temporaries, write_run_file, writing
from .extend import extend_members, sweep_message
from .lock import group_lock
from .plan import preflight_plan, train_checked, train_groups
from .run import read_run_config
from .rundir import config_sweeps, diverged, read_sweep, summary_rows

log = logging.getLogger(__name__)
_SPEC_PAIR = re.compile(r"\s*[A-Za-z_]\w*\s*=")  # a SPEC's key=value, not a value of its own


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``key=v1,v2,...`` -> (key, [v1, v2, ...]).

    Values are separated by commas outside brackets (lists in brackets stay whole), except
    that a comma followed by ``name=...`` continues the SPEC before it: ``task=gaussian:d=5,
    n=41,gaussian:d=10,n=41`` is two values, ``model.layers=1,2`` two, ``task=gaussian:d=5,n=41``
    one.
    """
    key, eq, values = text.partition("=")
    check(bool(eq) and bool(key.strip()), f"--sweep '{text}' is not key=v1,v2,...")
    items: list[str] = []
    for part in _split_top_level(values):
        if items and ":" in items[-1] and _SPEC_PAIR.match(part):
            items[-1] += "," + part.strip()  # key=value of the SPEC before
        else:
            items.append(part.strip())
    check(all(items), f"--sweep '{text}' has an empty value")
    check(len(set(items)) == len(items), f"--sweep '{text}' repeats a value")
    return key.strip(), items


def member_name(assignment: list[tuple[str, str]]) -> str:
    """A directory name for one grid point, e.g. 'model.heads=2,train.seed=0'."""
    name = ",".join(f"{k}={v}" for k, v in assignment)
    return "".join(c if c.isalnum() or c in "=.,-_[]" else "_" for c in name)


def expand(path: str | Path, overrides: list[str], sweeps: list[str]) -> list[tuple[str, ExperimentConfig]]:
    """Every grid point as (member name, resolved config); the file's ``sweep:`` block adds
    to ``sweeps``."""
    return expand_grid(*grid(path, overrides, sweeps))


def grid(path: str | Path, overrides: list[str], sweeps: list[str]) -> tuple[dict[str, Any], list[str]]:
    """(base config: the file with ``overrides``, without its ``sweep:`` block; every sweep,
    the file's first), from which :func:`expand_grid` rebuilds the members."""
    sweeps = [*config_sweeps(path), *(sweeps or [])]
    check(bool(sweeps), "give at least one --sweep key=v1,v2,... (or a sweep: block in the config)")
    base = apply_overrides(load_file(path), overrides)
    base.pop("sweep", None)
    return base, sweeps


def expand_grid(base: dict[str, Any], sweeps: list[str]) -> list[tuple[str, ExperimentConfig]]:
    """Every point of the grid ``sweeps`` over ``base`` as (member name, resolved config)."""
    axes = [parse_sweep(s) for s in sweeps]
    keys = [k for k, _ in axes]
    check(len(set(keys)) == len(keys), "a --sweep key is given twice")
    members = []
    for values in itertools.product(*(v for _, v in axes)):
        assignment = list(zip(keys, values, strict=True))
        config = resolve(apply_overrides(base, [f"{k}={v}" for k, v in assignment]))
        members.append((member_name(assignment), config))
    return members


# --- memory -------------------------------------------------------------------------------
def run_sweep(path: str | Path, overrides: list[str], sweeps: list[str], out: str | Path,
              progress: bool = False, max_members: int | None = None,
              backend: str | Backend = "local") -> Path:
    """Train the grid of ``sweeps`` over the config at ``path`` on ``backend`` (``backends.py``);
    returns the sweep directory. The sweep directory and every member (``plan.preflight_plan``)
    are checked before ``sweep.yaml`` is written, and not again."""
    out = Path(out)
    backend = as_backend(backend)
    members = expand(path, overrides, sweeps)
    check(not (out / "sweep.yaml").exists(),
          f"'{out}' already holds a sweep; resume it with --resume {out} or choose another --out")
    for name, _ in members:
        check(not (out / name / "config.yaml").exists(), f"'{out / name}' already holds a run")
    check_new_output_dir(out, "sweep")
    checked = preflight_plan(dict(members), out, backend.in_process)  # every member, before any file
    out.mkdir(parents=True, exist_ok=True)
    base, every = grid(path, overrides, sweeps)
    with writing(out / "sweep.yaml", out, new=True):
        write_text(out / "sweep.yaml", yaml.safe_dump(
            {"config": str(path), "overrides": overrides, "sweep": sweeps,
             "members": [name for name, _ in members], "base": base, "grid": every}, sort_keys=False))
    train_checked(dict(members), checked, progress, max_members, backend)
    write_summary(out)
    if len(members) > 1 and all(diverged(out / name) for name, _ in members):
        raise TrainingError(f"all {len(members)} members diverged; see their metrics.jsonl")
    return out


def _member_config(out: Path, name: str, spec: dict[str, Any], write: bool = True) -> ExperimentConfig:
    """A member's config; one not written yet (a kill after sweep.yaml) is rebuilt from the grid
    in sweep.yaml and (``write``) written now."""
    path = out / name
    if (path / "config.yaml").exists():
        return read_run_config(path)
    check(isinstance(spec.get("base"), dict) and isinstance(spec.get("grid"), list),
          f"'{path}' has no config.yaml and '{out}/sweep.yaml' (from an older iclreg) cannot rebuild "
          f"it; start the sweep again in a new directory")
    configs = dict(expand_grid(spec["base"], spec["grid"]))
    check(name in configs, f"'{out}/sweep.yaml' lists '{name}', which is not a point of its grid")
    if not write:
        return configs[name]
    path.mkdir(exist_ok=True)
    write_run_file(path / "config.yaml", save_config(configs[name]), path)
    return configs[name]


def resume_sweep(out: str | Path, progress: bool = False, max_members: int | None = None,
                 backend: str | Backend = "local", steps: int | None = None) -> Path:
    """Continue every unfinished member of a sweep from its own latest checkpoint, on
    ``backend``: Ray workers lock their members themselves, so this process keeps the sweep's
    lock only to prepare the members and write the summary. ``steps``: first extend every
    member that did not diverge to that many steps (``extend.py``). A finished sweep given no
    change is left untouched."""
    out, backend = Path(out), as_backend(backend)
    spec = read_sweep(out)
    message = sweep_message(out, spec, steps)
    if message is not None:
        log.info(message)
        return out
    for name in spec["members"]:  # a sweep that cannot resume is refused before its lock is taken
        _member_config(out, name, spec, write=False)
        diverged(out / name)  # its metrics can be read
    with group_lock(out):
        remove_temporaries(out)
        members = [(name, _member_config(out, name, spec)) for name in spec["members"]]
        members = extend_members(out, members, spec, steps)
        todo = [(config, out / name) for name, config in members
                if not ((out / name / "eval.json").is_file() or diverged(out / name))]
        here = backend.name == "local" or not todo
        if here:
            if todo:
                train_groups([c for c, _ in todo], [d for _, d in todo], True, progress, max_members)
            write_summary(out)
    if not here:
        train_groups([c for c, _ in todo], [d for _, d in todo], True, progress, max_members, backend)
        with group_lock(out):
            write_summary(out)
    if len(members) > 1 and all(diverged(out / name) for name, _ in members):
        raise TrainingError(f"all {len(members)} members diverged; see their metrics.jsonl")
    return out


def write_summary(out: Path) -> None:
    """``summary.csv`` and ``summary.json``: :func:`summary_rows`."""
    with phase(f"summary of {out}", log):
        _write_summary(out)


def _write_summary(out: Path) -> None:
    rows = summary_rows(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_run_file(out / "summary.csv", buf.getvalue(), out)
    write_run_file(out / "summary.json", json.dumps(rows, indent=1), out)
