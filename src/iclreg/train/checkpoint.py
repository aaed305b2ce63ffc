"""Checkpoints: weights in safetensors, optimiser/scheduler/RNG state and step beside them.

A checkpoint is a directory ``checkpoints/step_{step:08d}`` holding ``model.safetensors``,
``state.pt`` and ``checksums.json`` (the SHA-256 of the other two). It is written under a
hidden temporary name (``checkpoints/.tmp_*``), flushed to disk and renamed into place, so a
run killed at any moment leaves either a complete checkpoint or none (plus a temporary that
the next writer removes). Loading verifies the checksums before it reads a byte of tensor
data, so flipped bits or a file copied from another run are refused, and checks that the
checkpoint belongs to the run's config (under any of its plans: a run extended to more steps
keeps its earlier checkpoints); it never falls back to a fresh start silently.
Only directories named exactly ``step_`` and eight digits are checkpoints; anything else
under ``checkpoints/`` is ignored. What a member's ``state.pt`` holds of an optimiser shared
by an ensemble is ``member_state.py``'s.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from ..errors import UsageError
from ..report.files import make_temp_dir
from .config import planned_configs
from .durable import writing

PREFIX = "step_"
NAME = re.compile(r"step_(\d{8})")
FILES = ("model.safetensors", "state.pt")
CHECKSUMS = "checksums.json"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: model weights and training state."""

    step: int
    weights: dict[str, torch.Tensor]
    state: dict[str, Any]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """The directory of checkpoint ``step`` of a run (whether it exists or not)."""
    return run_dir / "checkpoints" / f"{PREFIX}{step:08d}"


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run (``step_NNNNNNNN`` directories), oldest first.

    Raises:
        UsageError: ``checkpoints`` exists but is not a directory.
    """
    root = run_dir / "checkpoints"
    if not root.exists():
        return []
    if not root.is_dir():
        raise UsageError(f"'{root}' is not a directory; move it away (the run then starts from "
                         "step 0) or restore the run's checkpoints")
    return sorted(p for p in root.iterdir() if p.is_dir() and NAME.fullmatch(p.name))


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint directory, from its name."""
    match = NAME.fullmatch(path.name)
    if match is None:
        raise UsageError(f"'{path}' is not a checkpoint: its name must be step_ and eight digits")
    return int(match.group(1))


def save_checkpoint(
    run_dir: Path, step: int, model: nn.Module, state: dict[str, Any], keep: int = 2
) -> Path:
    """Write checkpoint ``step`` atomically and delete all but the newest ``keep``.

    Raises:
        WriteError: the disk is full (or not writable); no partial checkpoint is left.
    """
    final = checkpoint_path(run_dir, step)
    root = final.parent
    # copies: a parameter may be a view of a larger buffer (the fused step's), which neither
    # safetensors nor torch.save should see
    weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save({**state, "step": step}, buffer)
    blobs = {"model.safetensors": save_safetensors(weights), "state.pt": buffer.getvalue()}
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    blobs[CHECKSUMS] = json.dumps(sums, indent=1).encode()
    tmp: Path | None = None
    with writing(final, run_dir):
        root.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(root, ".tmp_")
        try:
            for name, data in blobs.items():
                with open(tmp / name, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(root)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _damaged(path: Path, why: str) -> UsageError:
    return UsageError(f"checkpoint '{path}' is damaged ({why}); delete it to resume from an "
                      "earlier checkpoint, or start a new run")


def _read_verified(path: Path) -> dict[str, bytes]:
    """The checkpoint's files, each checked against ``checksums.json``."""
    try:
        sums = json.loads((path / CHECKSUMS).read_text())
    except FileNotFoundError:
        raise _damaged(path, f"{CHECKSUMS} is missing") from None
    except (OSError, ValueError) as err:
        raise _damaged(path, f"{CHECKSUMS} is unreadable: {type(err).__name__}") from None
    if not isinstance(sums, dict) or set(sums) != set(FILES):
        raise _damaged(path, f"{CHECKSUMS} does not list {' and '.join(FILES)}")
    blobs = {}
    for name in FILES:
        try:
            data = (path / name).read_bytes()
        except OSError as err:
            raise _damaged(path, f"{name}: {err.strerror or type(err).__name__}") from None
        if hashlib.sha256(data).hexdigest() != sums[name]:
            raise _damaged(path, f"{name} does not match its checksum: altered, truncated or "
                                 "copied from another checkpoint")
        blobs[name] = data
    return blobs


def load_checkpoint(path: Path, config: dict[str, Any] | None = None) -> Checkpoint:
    """Load a checkpoint directory; check it against the run's resolved ``config``.

    Raises:
        UsageError: the checkpoint is damaged (a checksum differs, a file is missing or
            unreadable) or belongs to another config.
    """
    blobs = _read_verified(path)
    if not zipfile.is_zipfile(io.BytesIO(blobs["state.pt"])):
        raise _damaged(path, "state.pt is not in torch's checkpoint format")
    try:
        weights = load_safetensors(blobs["model.safetensors"])
        with warnings.catch_warnings():  # torch warns about foreign pickles: they are refused
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(blobs["state.pt"]), map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, ValueError,
            TypeError, AttributeError, ImportError, KeyError, IndexError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:200]
        raise _damaged(path, first) from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise UsageError(f"checkpoint '{path}' has no training state; it is not an iclreg checkpoint")
    if config is not None and state.get("config") not in planned_configs(config):  # extended runs
        raise UsageError(
            f"checkpoint '{path}' was written by a different config than '{path.parent.parent}/"
            "config.yaml'; restore that config or start a new run"
        )
    return Checkpoint(step=state["step"], weights=weights, state=state)


def latest_step(run_dir: Path) -> int:
    """The step of a run's latest checkpoint (0 when it has none)."""
    dirs = checkpoint_dirs(run_dir)
    return checkpoint_step(dirs[-1]) if dirs else 0
