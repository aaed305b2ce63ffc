"""One chunk of a sweep, the members of one training loop, and how it trains wherever it is sent
(:func:`train_chunk`): the pieces both backends share (``backends.py`` dispatches, the Ray
backend is ``ray_backend.py``). Ray is an optional extra, imported only by :func:`import_ray`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import TrainingError, UsageError, check
from .config import ExperimentConfig
from .runs import progress_bar, train_loop

log = logging.getLogger(__name__)

Chunk = tuple[list[ExperimentConfig], list[Path]]  # the members of one training loop
NAMES = ("local", "ray")  # the backends (``backends.BACKENDS``)


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where a sweep's chunks train: ``local`` (this process) or ``ray`` (Ray tasks, on the
    cluster at ``address``, else ``RAY_ADDRESS``, else a local Ray started for the run).
    ``retries``: how many times (``ray``) a chunk whose task failed is sent again, resuming
    from its checkpoints (default 1)."""

    name: str = "local"
    address: str | None = None
    retries: int | None = None

    def __post_init__(self) -> None:
        check(self.name in NAMES, f"unknown backend '{self.name}'; use {' or '.join(NAMES)}")
        check(self.address is None or self.name == "ray",
              "an address names a Ray cluster; give it with --backend ray")
        check(self.retries is None or self.name == "ray",
              "--retries sends failed Ray tasks again; give it with --backend ray")
        check(self.retries is None or 0 <= self.retries <= 100,
              f"--retries must lie in [0, 100], got {self.retries}")

    @property
    def in_process(self) -> bool:
        """Whether the chunks train in this process, so that their device and memory are
        checked here (else on the workers, before each chunk starts)."""
        return self.name == "local"

    @property
    def tries(self) -> int:
        """How many times a chunk may be sent: once, plus ``retries`` (default 1)."""
        return 1 + (1 if self.retries is None else self.retries)

    def check_single_run(self) -> None:
        """Refuse a backend other than ``local`` for a run that is no sweep."""
        check(self.name == "local", f"--backend {self.name} trains the ensembles of a sweep; a single "
                                    "run trains in this process: drop --backend or give --sweep")


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise UsageError("the ray backend needs Ray, which is not installed: "
                         ".venv/bin/pip install -e '.[ray]' in iclreg's checkout") from None
    return ray


def train_chunk(configs: list[ExperimentConfig], dirs: list[Path], resume: bool,
                bar: Any = None) -> tuple[int, TrainingError | None]:
    """Train (or resume) one loop of members and write their final files (``runs.train_loop``).

    Returns:
        (how many members diverged, the ``TrainingError`` that stopped the loop or None).
    """
    with progress_bar(0, 0, False) if bar is None else contextlib.nullcontext(bar) as counted:
        try:
            trainer = train_loop(configs, dirs, resume, counted)
        except TrainingError as err:
            return len(configs), err
    return sum(m.diverged_at is not None for m in trainer.members), None


def note(error: TrainingError | None, members: int) -> None:
    """A loop stopped by divergence: an error for a sweep of one member, else a warning."""
    if error is not None:
        if members == 1:
            raise error
        log.warning("%s", error)


def parents(chunks: Sequence[Chunk]) -> list[Path]:
    return sorted({d.parent for _, dirs in chunks for d in dirs})
