"""Experiment trackers: TensorBoard and Weights & Biases views of a run's metrics.

Every record a run writes to ``metrics.jsonl`` (``metrics.py``: ``{"step", "loss", "lr"}``,
``{"step", "eval": {predictor: [mse at k = 0..n-1]}}``, ``{"step", "diverged"}``) also goes
to each tracker that ``run.trackers`` names; each member of a sweep has its own. A tracker is
a registered SPEC (``tensorboard``, ``wandb:mode=online``) whose ``open`` gives the object that
takes the records (:class:`Tracker`: ``log``, ``close``). Both are optional extras, imported
only when asked for (``.venv/bin/pip install -e '.[tensorboard]'``, ``'.[wandb]'``).

TensorBoard: one event file per run (``RUN_DIR/tensorboard``), appended to for each record,
so a thousand-member ensemble holds no open files or writer threads. A resumed run first
rewrites it without the records after its checkpoint (as ``metrics.jsonl``), so every reader
sees each step once. Weights & Biases: offline by default (``RUN_DIR/wandb``, uploaded later
with ``wandb sync``); a resumed run continues the W&B run of the same id.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import UsageError
from ..registry import Registry
from ..report.files import write_bytes
from ..spec import parse_spec
from .durable import writing

log = logging.getLogger(__name__)
TRACKERS: Registry[Any] = Registry("tracker")
EVENTS = "events.out.tfevents.0.iclreg"  # TensorBoard reads files whose name holds "tfevents"
WANDB_MIN = (0, 19, 10)  # several runs open in one process (reinit="create_new": a sweep's loop)


class Tracker(ABC):
    """Where a run's records go besides ``metrics.jsonl``."""

    @abstractmethod
    def log(self, record: dict[str, Any]) -> None:
        """Take one record of ``metrics.jsonl`` (it holds ``step``)."""

    @abstractmethod
    def close(self) -> None:
        """Flush and release what the tracker holds."""


def check_tracker_specs(specs: Sequence[str]) -> None:
    """Raise :class:`UsageError` for an unknown tracker, a bad key or a tracker named twice
    (``run.trackers``); imports nothing."""
    for spec in specs:
        try:
            TRACKERS.build(spec)
        except UsageError as err:
            raise UsageError(f"run.trackers: {err}") from None
    names = [parse_spec(spec).name for spec in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"run.trackers names a tracker twice: {list(specs)}")


def check_trackers(specs: Sequence[str]) -> None:
    """Raise :class:`UsageError` (with the pip command) unless every tracker's package imports."""
    for spec in specs:
        TRACKERS.build(spec).require()


def open_trackers(specs: Sequence[str], run_dir: Path, config: dict[str, Any],
                  resume_step: int | None) -> list[Tracker]:
    """The trackers of one run directory, opened for writing (``resume_step``: the run resumes
    from that checkpoint, None: a new run). Call it while holding the run's lock."""
    opened: list[Tracker] = []
    try:
        for spec in specs:
            opened.append(TRACKERS.build(spec).open(run_dir, config, resume_step))
    except BaseException:
        for tracker in opened:
            tracker.close()
        raise
    return opened


def _missing(what: str, extra: str) -> UsageError:
    return UsageError(f"run.trackers names {extra}, but {what} is not installed: "
                      f".venv/bin/pip install -e '.[{extra}]' in iclreg's checkout (or remove {extra} "
                      "from run.trackers)")


def curve_figure_png(curves: dict[str, list[float]], step: int) -> bytes:
    """Error against k (k = 0..n-1) of every predictor at ``step``, as a PNG (the style of
    ``eval.png``)."""
    from ..report.figures import error_curves_figure

    k = list(range(len(next(iter(curves.values())))))
    fig = error_curves_figure(k, {p: {"mse": c} for p, c in curves.items()},
                              title=f"error against k at step {step}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


# --- TensorBoard -----------------------------------------------------------------------------
@TRACKERS.register("tensorboard")
@dataclass(frozen=True)
class TensorBoardSpec:
    """TensorBoard event files in ``RUN_DIR/tensorboard``: scalars ``loss`` and ``lr``; at each
    evaluation ``eval/<predictor>`` (the error at the last k) and the image ``eval_curve``.

    The curves are a figure, not scalars: TensorBoard's x axis is the training step, and a figure
    per evaluation puts every predictor on one log axis (the model against least squares), with
    the Images tab's slider stepping through training.

    Attributes:
        curves: draw ``eval_curve`` (false: scalars only; a figure costs about 0.1 to 0.5 s per
            member and evaluation, which counts in large ensembles).
    """

    curves: bool = True

    def require(self) -> None:
        """Raise :class:`UsageError` unless the ``tensorboard`` package imports."""
        try:
            from tensorboard.compat.proto import event_pb2  # noqa: F401
        except ImportError:
            raise _missing("TensorBoard", "tensorboard") from None

    def open(self, run_dir: Path, config: dict[str, Any], resume_step: int | None) -> Tracker:
        """The event file of ``run_dir``, cut to ``resume_step`` when the run resumes."""
        self.require()
        return TensorBoardTracker(run_dir / "tensorboard", resume_step, self.curves)


class TensorBoardTracker(Tracker):
    """Appends TFRecord-framed ``Event`` protos to one event file (opened for each record)."""

    def __init__(self, directory: Path, resume_step: int | None, curves: bool = True) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self.path = directory / EVENTS
        self.curves = curves
        with writing(self.path, directory.parent):
            directory.mkdir(exist_ok=True)
            for tmp in directory.glob(".*.tmp"):  # a rewrite killed midway (we hold the lock)
                tmp.unlink()
            kept = []
            if resume_step is not None and self.path.exists():  # whole records up to the checkpoint
                kept = [r for r in read_records(self.path.read_bytes())
                        if Event.FromString(r).step <= resume_step]
            if not kept:
                header = Event(wall_time=time.time(), step=0, file_version="brain.Event:2")
                kept = [header.SerializeToString()]
            write_bytes(self.path, b"".join(frame(r) for r in kept))

    def _append(self, record: bytes) -> None:
        with writing(self.path, self.path.parent.parent), open(self.path, "ab") as fh:
            fh.write(frame(record))

    def log(self, record: dict[str, Any]) -> None:
        """Scalars for every number of ``record``; for an evaluation the error at the last k
        per predictor (``eval/<predictor>``) and the curves as the image ``eval_curve``."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=key, simple_value=float(value)) for key, value in record.items()
                  if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool)]
        curves = record.get("eval")
        if isinstance(curves, dict) and curves:
            values += [Summary.Value(tag=f"eval/{p}", simple_value=float(c[-1])) for p, c in curves.items()]
        if isinstance(curves, dict) and curves and self.curves:
            png = curve_figure_png(curves, record["step"])
            width, height = struct.unpack(">II", png[16:24])  # the PNG's IHDR chunk
            values.append(Summary.Value(tag="eval_curve", image=Summary.Image(
                height=height, width=width, colorspace=4, encoded_image_string=png)))
        if values:
            event = Event(wall_time=time.time(), step=record["step"], summary=Summary(value=values))
            self._append(event.SerializeToString())

    def close(self) -> None:
        """Nothing is held between records."""


def frame(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, the data's masked CRC-32C."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def read_records(data: bytes) -> list[bytes]:
    """The TFRecords of ``data`` up to the first torn or damaged one."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    out, pos = [], 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        end = pos + 12 + length
        if struct.unpack("<I", data[pos + 8:pos + 12])[0] != masked_crc32c(header) or end + 4 > len(data):
            break
        record = data[pos + 12:end]
        if struct.unpack("<I", data[end:end + 4])[0] != masked_crc32c(record):
            break
        out.append(record)
        pos = end + 4
    return out


# --- Weights & Biases ------------------------------------------------------------------------
@TRACKERS.register("wandb")
@dataclass(frozen=True)
class WandbSpec:
    """A Weights & Biases run named after the run directory, with the run's config.

    Attributes:
        mode: offline (files in ``RUN_DIR/wandb``; upload with ``wandb sync``) or online
            (none: the ``WANDB_MODE`` environment variable, else offline).
        project: the W&B project (none: ``WANDB_PROJECT``, else iclreg).
    """

    mode: Literal["offline", "online"] | None = None
    project: str | None = None

    def require(self) -> Any:
        """The ``wandb`` module; :class:`UsageError` unless a recent enough one imports."""
        try:
            import wandb
        except ImportError:
            raise _missing("Weights & Biases (wandb)", "wandb") from None
        version = tuple(int(p) for p in re.findall(r"\d+", wandb.__version__)[:3])
        if version < WANDB_MIN:
            raise UsageError(f"the wandb tracker needs wandb >= {'.'.join(map(str, WANDB_MIN))}, "
                             f"found {wandb.__version__}: .venv/bin/pip install -U -e '.[wandb]'")
        return wandb

    def open(self, run_dir: Path, config: dict[str, Any], resume_step: int | None) -> Tracker:
        """Start (or, resuming, continue) the W&B run of ``run_dir``."""
        wandb = self.require()
        previous = _wandb_id(run_dir / "wandb") if resume_step is not None else None
        with writing(run_dir / "wandb", run_dir):
            (run_dir / "wandb").mkdir(exist_ok=True)
        run = wandb.init(
            mode=self.mode or os.environ.get("WANDB_MODE") or "offline", dir=str(run_dir),
            project=self.project or os.environ.get("WANDB_PROJECT") or "iclreg", name=run_dir.name,
            group=run_dir.parent.name if (run_dir.parent / "sweep.yaml").is_file() else None,
            config=config, allow_val_change=True,  # an extended run (train.steps=N) changes its config
            id=previous, resume="allow" if previous else None, reinit="create_new",
            settings=wandb.Settings(silent=True, console="off"))
        run.define_metric("*", step_metric="step")  # charts against our step, not wandb's counter
        return WandbTracker(run)


def _wandb_id(directory: Path) -> str | None:
    """The id of the newest W&B run in ``directory`` (``[offline-]run-DATE_TIME-ID[-N]``, N
    counting runs of one id started within a second)."""
    found = sorted((m.group(1), int(m.group(3) or 0), m.group(2)) for p in directory.glob("*run-*")
                   if (m := re.fullmatch(r"(?:offline-)?run-(\d{8}_\d{6})-([a-z0-9]+)(?:-(\d+))?", p.name)))
    return found[-1][2] if found else None


class WandbTracker(Tracker):
    """``wandb.log`` of every record: numbers as they are, for an evaluation the error at the
    last k per predictor (``eval/<predictor>``) and the curves as a line chart (``eval_curve``);
    text (a divergence) goes to the run's summary."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def log(self, record: dict[str, Any]) -> None:
        """Log ``record`` at its step (the ``step`` metric)."""
        import wandb

        data: dict[str, Any] = {"step": record["step"]}
        for key, value in record.items():
            if key == "eval" and isinstance(value, dict) and value:
                data |= {f"eval/{p}": c[-1] for p, c in value.items()}
                data["eval_curve"] = wandb.plot.line_series(
                    xs=list(range(len(next(iter(value.values()))))), ys=list(value.values()),
                    keys=list(value), title=f"error against k at step {record['step']}", xname="k")
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                data[key] = value
            elif key != "step":
                self.run.summary[key] = value
        self.run.log(data)

    def close(self) -> None:
        """Finish the run; say where an offline run is and how to upload it."""
        offline = self.run.settings.mode == "offline"
        where = self.run.settings.sync_dir
        self.run.finish()
        if offline:
            log.info("W&B run saved offline; upload it with: wandb sync %s", where)
