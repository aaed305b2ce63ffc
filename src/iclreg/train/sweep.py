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
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import resources
from ..errors import TrainingError, check
from ..logs import phase
from ..models import StackedPredictor
from ..report import write_text
from ..report.files import check_new_output_dir
from ..spec import _split_top_level
from ..yamlfile import load as load_yaml
from .backends import Backend, Chunk, as_backend, run_chunks
from .checkpoint import latest_step
from .config import ExperimentConfig, _format_value, apply_overrides, load_file, resolve, save_config
from .durable import remove_temporaries, write_run_file, writing
from .extend import extend_members, sweep_message
from .lock import group_lock
from .loop import group_key
from .metrics import read_metrics
from .preflight import check_training, training_bytes
from .run import build_model, read_run_config
from .runs import check_run_dir, prepare_run_dir

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


def config_sweeps(path: str | Path) -> list[str]:
    """The ``sweep:`` block of a config file ({key: [values]}) as --sweep strings."""
    block = load_file(path).get("sweep") or {}
    check(isinstance(block, dict), f"'sweep' in '{path}' must map keys to lists of values")
    out = []
    for key, values in block.items():
        check(isinstance(values, list) and values, f"sweep.{key} in '{path}' must be a non-empty list")
        out.append(f"{key}=" + ",".join(_format_value(v) for v in values))
    return out


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
def member_bytes(config: ExperimentConfig) -> int:
    """Memory one member needs in a training step: the tensors autograd saves for backward in
    one forward pass, plus parameters, gradients and two optimiser moments, plus the prompts;
    measured on meta tensors (``preflight.training_bytes``), so nothing is allocated."""
    return training_bytes(config)


def check_members(configs: list[ExperimentConfig], here: bool = True) -> None:
    """``preflight.check_training`` for each group of members that share shapes (one dry run
    per group): a member that could not train or evaluate is refused before any file exists.
    ``here=False`` (Ray workers train them): their device and memory are the workers' to check."""
    checked = set()
    for config in configs:
        key = group_key(config)
        if key not in checked:
            check_training(config, here)
            checked.add(key)


def available_bytes(device: torch.device) -> int:
    """Free memory to plan with: 80% of the GPU's free memory, or half of the available RAM."""
    free = resources.available_bytes(device)
    return int(0.8 * free) if device.type == "cuda" else free // 2


def plan_chunks(size: int, per_member: int, budget: int, max_members: int | None) -> int:
    """Members per chunk for a group of ``size``."""
    fit = max(1, budget // max(per_member, 1))
    return max(1, min(size, fit, max_members or size))


# --- running --------------------------------------------------------------------------------
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


def run_sweep(path: str | Path, overrides: list[str], sweeps: list[str], out: str | Path,
              progress: bool = False, max_members: int | None = None,
              backend: str | Backend = "local") -> Path:
    """Train the grid of ``sweeps`` over the config at ``path`` on ``backend`` (``backends.py``);
    returns the sweep directory."""
    out = Path(out)
    backend = as_backend(backend)
    members = expand(path, overrides, sweeps)
    check(not (out / "sweep.yaml").exists(),
          f"'{out}' already holds a sweep; resume it with --resume {out} or choose another --out")
    for name, _ in members:
        check(not (out / name / "config.yaml").exists(), f"'{out / name}' already holds a run")
    check_new_output_dir(out, "sweep")
    check_members([c for _, c in members], backend.in_process)
    out.mkdir(parents=True, exist_ok=True)
    base, every = grid(path, overrides, sweeps)
    with writing(out / "sweep.yaml", out, new=True):
        write_text(out / "sweep.yaml", yaml.safe_dump(
            {"config": str(path), "overrides": overrides, "sweep": sweeps,
             "members": [name for name, _ in members], "base": base, "grid": every}, sort_keys=False))
    train_members(members, out, progress, max_members, backend)
    write_summary(out)
    return out


def train_members(members: list[tuple[str, ExperimentConfig]], out: str | Path, progress: bool = False,
                  max_members: int | None = None, backend: str | Backend = "local") -> list[Path]:
    """Train named configs into ``out/<name>``: members that share a model shape and a prompt
    shape (``group_key``) train together as one ensemble, whatever else differs (the task's
    values, covariance or kind, the seed, the learning rate). Returns the run directories."""
    out, backend = Path(out), as_backend(backend)
    dirs = [out / name for name, _ in members]
    for path in dirs:
        check_run_dir(path)
    check_members([c for _, c in members], backend.in_process)
    for path, (_, config) in zip(dirs, members, strict=True):
        prepare_run_dir(path, config)
    train_groups([c for _, c in members], dirs, False, progress, max_members, backend)
    return dirs


def is_sweep(path: str | Path) -> bool:
    return (Path(path) / "sweep.yaml").is_file()


def read_sweep(out: Path) -> dict[str, Any]:
    """The contents of ``out/sweep.yaml``, checked to list the members."""
    try:
        spec = load_yaml((out / "sweep.yaml").read_text(), f"'{out}/sweep.yaml'")
        names = spec["members"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        spec, names = None, None
    check(isinstance(names, list) and bool(names) and all(isinstance(n, str) and n and "/" not in n
                                                         and n not in (".", "..") for n in names),
          f"'{out}/sweep.yaml' is malformed; it must list the members")
    return spec


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


def diverged(run_dir: Path) -> bool:
    """Whether a member stopped on a non-finite loss, weights or optimiser state."""
    return any("diverged" in r for r in read_metrics(run_dir / "metrics.jsonl"))


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


def summary_rows(out: Path) -> list[dict[str, Any]]:
    """Final metrics of every member: swept values, final loss, final errors at the last k."""
    spec = read_sweep(out)
    rows = []
    for name in spec["members"]:
        records = read_metrics(out / name / "metrics.jsonl")
        row: dict[str, Any] = dict(pair.split("=", 1) for pair in _split_top_level(name))
        row["member"] = name
        losses = [r["loss"] for r in records if "loss" in r]
        row["final_loss"] = losses[-1] if losses else None
        row["steps"] = max((r["step"] for r in records), default=0)
        row["diverged"] = any("diverged" in r for r in records)
        evals = [r["eval"] for r in records if "eval" in r]
        for label, mse in (evals[-1].items() if evals else []):
            row[f"mse_last_k[{label}]"] = mse[-1]
        rows.append(row)
    return rows


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
