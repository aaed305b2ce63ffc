"""Facts about run and sweep directories, read from their files: whether a directory is a
sweep and which members it lists, whether a member diverged, the members' final rows, and a
config file's sweep axes. Nothing here trains or writes; every module of train/ may read them.

    SWEEP/sweep.yaml         the members (and the grid that rebuilds their configs)
    SWEEP/NAME/              one run directory per member (run.py)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ..errors import check
from ..spec import _split_top_level
from ..yamlfile import load as load_yaml
from .config import _format_value, load_file
from .metrics import read_metrics


def config_sweeps(path: str | Path) -> list[str]:
    """The ``sweep:`` block of a config file ({key: [values]}) as --sweep strings."""
    block = load_file(path).get("sweep") or {}
    check(isinstance(block, dict), f"'sweep' in '{path}' must map keys to lists of values")
    out = []
    for key, values in block.items():
        check(isinstance(values, list) and values, f"sweep.{key} in '{path}' must be a non-empty list")
        out.append(f"{key}=" + ",".join(_format_value(v) for v in values))
    return out


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


def diverged(run_dir: Path) -> bool:
    """Whether a member stopped on a non-finite loss, weights or optimiser state."""
    return any("diverged" in r for r in read_metrics(run_dir / "metrics.jsonl"))


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
