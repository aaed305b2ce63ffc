"""Checkpoints: weights in safetensors, optimiser/scheduler/RNG state and step beside them.

A checkpoint is a directory ``checkpoints/step_{step:08d}`` holding ``model.safetensors``
and ``state.pt``. It is written under a hidden temporary name and renamed into place, so a
run killed at any moment leaves either a complete checkpoint or none. Loading checks that
the checkpoint belongs to the run's config and reports damage; it never falls back to a
fresh start silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import UsageError

PREFIX = "step_"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: model weights and training state."""

    step: int
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def save_checkpoint(
    run_dir: Path, step: int, model: nn.Module, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep``."""
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp_"))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(tmp / "model.safetensors"))
        torch.save({**state, "step": step}, tmp / "state.pt")
        for name in ("model.safetensors", "state.pt"):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, config: dict[str, Any] | None = None) -> Checkpoint:
    """Load a checkpoint directory; check it against the run's resolved ``config``.

    Raises:
        UsageError: the checkpoint is damaged or belongs to another config.
    """
    try:
        weights = load_file(str(path / "model.safetensors"))
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except (OSError, SafetensorError, RuntimeError, EOFError, ValueError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise UsageError(
            f"checkpoint '{path}' is damaged ({first}); delete it to resume from an earlier "
            "checkpoint, or start a new run"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise UsageError(f"checkpoint '{path}' has no training state; it is not an iclreg checkpoint")
    if config is not None and state.get("config") != config:
        raise UsageError(
            f"checkpoint '{path}' was written by a different config than '{path.parent.parent}/"
            "config.yaml'; restore that config or start a new run"
        )
    return Checkpoint(step=int(state["step"]), weights=weights, state=state)
