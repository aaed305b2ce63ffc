"""Sweeps: a grid of configs trained as ensembles, one run directory per member.

``iclreg train CONFIG --sweep model.heads=1,2,4,8 --sweep train.seed=0,1,2`` expands the
grid, groups the members that can share a training loop (same shapes, schedule and run
settings; they may differ in seed, learning rate, task values and initialisation), trains
each group as one ensemble, split into chunks when it would not fit in memory, and writes

    OUT/sweep.yaml               the grid and the member directories
    OUT/<member>/                a run directory per member (``load_run``, ``--resume``)
    OUT/summary.csv, .json       final metrics per member
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import UsageError, check
from ..models import Ensemble, StackedPredictor
from ..report import write_text
from ..spec import _split_top_level
from .config import ExperimentConfig, _format_value, apply_overrides, load_file, resolve
from .loop import Trainer, group_key, prepare_run_dir, progress_bar
from .metrics import read_metrics
from .run import build_model, read_run_config

log = logging.getLogger(__name__)


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``key=v1,v2,...`` -> (key, [v1, v2, ...]); lists in brackets stay whole."""
    key, eq, values = text.partition("=")
    check(bool(eq) and bool(key.strip()), f"--sweep '{text}' is not key=v1,v2,...")
    items = [v.strip() for v in _split_top_level(values)]
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
    sweeps = [*config_sweeps(path), *(sweeps or [])]
    check(bool(sweeps), "give at least one --sweep key=v1,v2,... (or a sweep: block in the config)")
    base = apply_overrides(load_file(path), overrides)
    base.pop("sweep", None)
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
    one forward pass, plus parameters, gradients and two optimiser moments."""
    from ..tasks import TASKS

    device = torch.device(config.run.device)
    model = build_model(config, device)
    prompts = TASKS.build(config.task).sample(config.train.batch, 0, 0, device=device,
                                              dtype=next(model.parameters()).dtype)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if isinstance(model, StackedPredictor):  # as the trainer runs it
            net = Ensemble([model])
            out = net(prompts.x[None], prompts.y[None], last_only=config.train.loss == "query")
        else:
            out = model(prompts.x, prompts.y)
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    del out
    return saved + 4 * params


def available_bytes(device: torch.device) -> int:
    """Free memory to plan with: 80% of the GPU's free memory, or half of the available RAM."""
    if device.type == "cuda":
        return int(0.8 * torch.cuda.mem_get_info(device)[0])
    try:
        text = Path("/proc/meminfo").read_text()
        kib = int(next(line.split()[1] for line in text.splitlines() if line.startswith("MemAvailable")))
        return kib * 1024 // 2
    except (OSError, StopIteration, ValueError):
        return 8 * 2**30


def plan_chunks(size: int, per_member: int, budget: int, max_members: int | None) -> int:
    """Members per chunk for a group of ``size``."""
    fit = max(1, budget // max(per_member, 1))
    return max(1, min(size, fit, max_members or size))


# --- running --------------------------------------------------------------------------------
def _train(configs: list[ExperimentConfig], dirs: list[Path], resume: bool, progress: bool,
           max_members: int | None) -> None:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, config in enumerate(configs):
        stacked = isinstance(build_model(config), StackedPredictor)
        groups[group_key(config) if stacked else f"solo-{i}"].append(i)
    total = sum(c.train.steps for c in configs)
    with progress_bar(total, 0, progress) as bar:
        for members in groups.values():
            first = configs[members[0]]
            per, budget = member_bytes(first), available_bytes(torch.device(first.run.device))
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
                trainer = Trainer([configs[i] for i in part], [dirs[i] for i in part], resume)
                bar.update(trainer.step * len(part))
                trainer.run(bar)


def run_sweep(path: str | Path, overrides: list[str], sweeps: list[str], out: str | Path,
              progress: bool = False, max_members: int | None = None) -> Path:
    """Train the grid of ``sweeps`` over the config at ``path``; returns the sweep directory."""
    out = Path(out)
    members = expand(path, overrides, sweeps)
    check(not (out / "sweep.yaml").exists(),
          f"'{out}' already holds a sweep; resume it with --resume {out} or choose another --out")
    for name, _ in members:
        check(not (out / name / "config.yaml").exists(), f"'{out / name}' already holds a run")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "sweep.yaml", yaml.safe_dump(
        {"config": str(path), "overrides": overrides, "sweep": sweeps,
         "members": [name for name, _ in members]}, sort_keys=False))
    train_members(members, out, progress, max_members)
    write_summary(out)
    return out


def train_members(members: list[tuple[str, ExperimentConfig]], out: str | Path, progress: bool = False,
                  max_members: int | None = None) -> list[Path]:
    """Train named configs into ``out/<name>``: members that share a model shape and a prompt
    shape (``group_key``) train together as one ensemble, whatever else differs (the task's
    values, covariance or kind, the seed, the learning rate). Returns the run directories."""
    out = Path(out)
    dirs = [out / name for name, _ in members]
    for path, (_, config) in zip(dirs, members, strict=True):
        prepare_run_dir(path, config)
    _train([c for _, c in members], dirs, False, progress, max_members)
    return dirs


def is_sweep(path: str | Path) -> bool:
    return (Path(path) / "sweep.yaml").is_file()


def resume_sweep(out: str | Path, progress: bool = False, max_members: int | None = None) -> Path:
    """Continue every member of a sweep from its latest checkpoint."""
    out = Path(out)
    try:
        names = yaml.safe_load((out / "sweep.yaml").read_text())["members"]
    except (yaml.YAMLError, KeyError, TypeError):
        raise UsageError(f"'{out}/sweep.yaml' is malformed; it must list the members") from None
    configs = [read_run_config(out / name) for name in names]
    _train(configs, [out / n for n in names], True, progress, max_members)
    write_summary(out)
    return out


def summary_rows(out: Path) -> list[dict[str, Any]]:
    """Final metrics of every member: swept values, final loss, final errors at the last k."""
    spec = yaml.safe_load((out / "sweep.yaml").read_text())
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


def write_summary(out: Path) -> None:
    rows = summary_rows(out)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "summary.csv", buf.getvalue())
    write_text(out / "summary.json", json.dumps(rows, indent=1))
