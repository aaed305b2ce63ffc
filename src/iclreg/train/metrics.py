"""Metrics as JSON lines (one object per line, each with its ``step``), and TensorBoard
event files when the optional ``tensorboard`` package is installed."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class MetricsLog:
    """Append-only metrics file; on resume, lines after the checkpoint's step are dropped.

    The file is opened for each write (writes are rare), so an ensemble of a thousand members
    holds no file handles; TensorBoard events are written when ``tensorboard`` is set and the
    package is installed.
    """

    def __init__(self, path: Path, resume_step: int | None = None, tensorboard: bool = False) -> None:
        self.path = path
        if resume_step is not None and path.exists():
            kept = [json.dumps(r) for r in read_metrics(path) if r["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        self._tb = _tensorboard(path.parent) if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key != "step":
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file; a line torn by a kill mid-write is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
