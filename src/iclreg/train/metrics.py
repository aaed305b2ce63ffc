"""Metrics as JSON lines (one object per line, each with its ``step``), wall-clock time beside
them, and every record passed on to the run's trackers (TensorBoard, W&B: ``trackers.py``).

``metrics.jsonl`` is the deterministic record of a run (losses, learning rates, evaluations,
divergence): a run killed and resumed writes the same bytes as one never interrupted.
Wall-clock time, which differs from one run to the next, goes to ``timing.jsonl``
(``{"step", "seconds"}``: training seconds since step 0, counted across resumes).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .durable import write_run_file, writing
from .trackers import Tracker

log = logging.getLogger(__name__)
TIMING = "timing.jsonl"


class MetricsLog:
    """Append-only metrics file; on resume, lines after the checkpoint's step are dropped.

    The cut rewrites the file atomically (a kill leaves the old file or the new one). The
    file is opened for each write (writes are rare), so an ensemble of a thousand members
    holds no file handles. Each record also goes to ``trackers``, which :meth:`close` closes.
    """

    def __init__(self, path: Path, resume_step: int | None = None, trackers: Sequence[Tracker] = ()) -> None:
        self.path = path
        self.timing = path.parent / TIMING
        self.seconds_before = 0.0  # training seconds up to ``resume_step``, from timing.jsonl
        if resume_step is not None:
            for file in (path, self.timing):
                if file.exists():
                    kept = [line for line, r in _lines(file) if r["step"] <= resume_step]
                    write_run_file(file, "".join(line + "\n" for line in kept), path.parent)
            _warn_lost(path, resume_step)
            times = [r["seconds"] for r in read_metrics(self.timing)
                     if isinstance(r.get("seconds"), (int, float))]
            self.seconds_before = float(times[-1]) if times else 0.0
        self.trackers = list(trackers)

    def write(self, record: dict[str, Any]) -> None:
        """Append one deterministic record (it must hold ``step``)."""
        _append(self.path, record)
        for tracker in self.trackers:
            tracker.log(record)

    def time(self, step: int, seconds: float) -> None:
        """Record that ``step`` was reached after ``seconds`` of training in this process."""
        _append(self.timing, {"step": step, "seconds": round(self.seconds_before + seconds, 3)})

    def close(self) -> None:
        """Close the trackers."""
        for tracker in self.trackers:
            tracker.close()


def _warn_lost(path: Path, resume_step: int) -> None:
    """Say in one line that the metrics of a run resumed from ``resume_step`` lack the records
    before it (the file was deleted or cut short): the checkpoints hold weights, not losses, so
    they cannot be rebuilt, and the file holds only what follows."""
    last = max((r["step"] for _, r in _lines(path)), default=0)
    if last < resume_step:
        what = "is missing" if not path.exists() else f"ends at step {last}"
        log.warning("%s %s, but the run resumes from step %d: the metrics of steps %d to %d are lost "
                    "(the checkpoints do not hold them); it records the steps after %d only",
                    path, what, resume_step, last + 1, resume_step, resume_step)


def _append(path: Path, record: dict[str, Any]) -> None:
    with writing(path, path.parent), open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def _lines(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(line, record) for every record of a metrics file.

    A last line torn by a kill mid-write is skipped; any other line that is not a JSON
    object with an integer ``step`` is damage.

    Raises:
        UsageError: a line other than the last is not a record.
    """
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"'{path}' cannot be read ({type(err).__name__}); restore it or delete "
                         "it (the run's metrics are then lost)") from None
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue  # torn by a kill mid-write
            record = None
        if not (isinstance(record, dict) and type(record.get("step")) is int):
            raise UsageError(f"'{path}' line {i + 1} is not a metrics record (a JSON object with "
                             "an integer step); delete that line or restore the file")
        out.append((line, record))
    return out


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file; a last line torn by a kill mid-write is skipped.

    Raises:
        UsageError: another line is not a JSON object with an integer ``step``.
    """
    return [record for _, record in _lines(path)]
