"""Training runs for users: a new run's directory, :func:`train`, :func:`resume` and the files
of a finished run (``plan.train_plan`` trains the runs of a reproduction).

The trainer (``loop.py``) trains and evaluates; what a finished member leaves is written here,
while the trainer still holds the member's lock: ``eval.png`` and ``loss.png`` (loops of at
most ``FIGURES_UP_TO`` members, unless ``run.figures`` is off; a sweep gets a summary), then
``eval.json``, which marks the run finished (``run.py`` lists a run directory's files).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from ..errors import WriteError, check
from ..logs import Progress, phase
from ..report import error_curves_figure, save_figure, write_text
from ..report.figures import loss_figure
from ..report.files import check_new_output_dir
from .config import ExperimentConfig, save_config
from .distributed import ALONE, Processes, process_group
from .durable import write_run_file, writing
from .extend import extended_config, extension, run_message
from .loop import Member, Result, Trainer
from .metrics import read_metrics
from .preflight import check_training
from .run import read_run_config

log = logging.getLogger(__name__)
FIGURES_UP_TO = 8  # members per loop that get their own figures (a sweep gets a summary)


def finish(trainer: Trainer, results: Sequence[tuple[Member, Result]]) -> None:
    """Write each finished member's figures (a loop of at most ``FIGURES_UP_TO`` members), then
    its ``eval.json``, last: it marks the member finished. Call it while ``trainer`` holds the
    members' locks."""
    results = list(results)
    draw = len(trainer) <= FIGURES_UP_TO and any(m.config.run.figures for m, _ in results)
    where = results[0][0].run_dir if len(results) == 1 else f"{len(results)} runs"
    with phase(f"figures of {where}", log) if draw else contextlib.nullcontext():
        for m, result in results:
            if draw and m.config.run.figures:
                write_figures(m, result)
            log.debug("writing %s", m.run_dir / "eval.json")
            write_run_file(m.run_dir / "eval.json", json.dumps(result), m.run_dir)


def write_figures(m: Member, result: Result) -> None:
    """``eval.png`` (error against k) and ``loss.png`` (the logged losses) of member ``m``, each
    with a PDF beside it (``eval.pdf``, ``loss.pdf``). A figure never fails a run: one that
    cannot be drawn (values no axis can show) is left out with one warning line, and the run
    finishes; its numbers are in ``eval.json`` and ``metrics.jsonl``. A full disk still stops it."""
    def eval_figure() -> Figure:
        return error_curves_figure(result["k"], result["results"], result["noise_floor"],
                                   f"{m.config.model} on {m.config.task}", train_n=result.get("train_n"))

    def losses_figure() -> Figure:
        records = [r for r in read_metrics(m.run_dir / "metrics.jsonl") if "loss" in r]
        return loss_figure([r["step"] for r in records], [r["loss"] for r in records])

    for name, draw in (("eval.png", eval_figure), ("loss.png", losses_figure)):
        try:
            with writing(m.run_dir / name, m.run_dir):
                save_figure(draw(), m.run_dir / name, also=(".pdf",))
        except WriteError:
            raise
        except Exception as err:  # a figure is a view of numbers the run keeps
            why = " ".join(f"{type(err).__name__}: {err}".split())
            log.warning("%s was not drawn (%s); the run's numbers are in eval.json and metrics.jsonl",
                        m.run_dir / name, why[:200])


def prepare_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    """Create a new run directory holding the resolved config; checks nothing.

    Callers check the directory (:func:`check_run_dir`) and the run itself
    (``preflight.check_training``) first, so that a directory is created only for a run that
    can start (``plan.preflight_plan`` checks every run of a plan in one pass)."""
    with writing(run_dir / "config.yaml", run_dir, new=True):
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", save_config(config))


def check_run_dir(run_dir: Path) -> None:
    """Refuse a directory that already holds a run, is no directory, cannot be written, or
    holds other files; creates nothing."""
    check(
        not (run_dir / "config.yaml").exists(),
        f"'{run_dir}' already holds a run; resume it with --resume {run_dir} or choose another --out",
    )
    check_new_output_dir(run_dir, "run")


def progress_bar(total: int, initial: int, enabled: bool) -> Progress:
    """Training progress (``logs.Progress``): a bar on a terminal, else periodic log lines."""
    return Progress(total, initial, enabled, desc="train", unit="step", logger=log)


def train_loop(configs: list[ExperimentConfig], dirs: list[Path], resume: bool, bar: Progress,
               group: Processes = ALONE) -> Trainer:
    """The one place a Trainer is built: train (or resume) one loop of members, ``bar``
    counting their steps (restored ones skipped, not in the rate), and write their final files.

    Raises:
        TrainingError: the loop stopped (every member diverged); its members' files are written.
    """
    with Trainer(configs, dirs, resume, group=group) as trainer:
        if trainer.step:
            bar.skip(trainer.step * len(configs))
        finish(trainer, trainer.run(bar))
    return trainer


def train(config: ExperimentConfig, run_dir: str | Path, progress: bool = False) -> Path:
    """Train a new run of ``config`` in ``run_dir`` (with DDP when launched by torchrun:
    ``distributed.py``)."""
    run_dir = Path(run_dir)
    with process_group(config.run.device) as group:
        check_run_dir(run_dir)
        check_training(config)
        group.check(config)
        group.barrier()  # every rank has checked the directory before rank 0 creates it
        if group.writes:
            prepare_run_dir(run_dir, config)
        with progress_bar(config.train.steps, 0, progress and group.writes) as bar:
            train_loop([config], [run_dir], False, bar, group)
    return run_dir


def resume(run_dir: str | Path, progress: bool = False, steps: int | None = None) -> Path:
    """Continue a run from its latest checkpoint with its stored config (with DDP when
    launched by torchrun, every rank loading the checkpoint); ``steps``: extend it to that many
    steps (``extend.py``). A finished run given no change is left untouched."""
    run_dir = Path(run_dir)
    stored = read_run_config(run_dir)
    config = extended_config(stored, steps)
    message = run_message(run_dir, stored, steps)
    if message is not None:
        logging.getLogger(__name__).info(message)
        return run_dir
    with process_group(config.run.device) as group:
        group.check(config)
        with extension(run_dir, stored, config, group.writes), \
                progress_bar(config.train.steps, 0, progress and group.writes) as bar:
            train_loop([config], [run_dir], True, bar, group)
    return run_dir
