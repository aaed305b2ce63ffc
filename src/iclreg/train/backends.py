"""Where the chunks of a sweep train: in this process (``local``) or as Ray tasks (``ray``).

A sweep (``sweep.train_groups``) is a list of chunks, each one ensemble trained by one loop
(:func:`train_chunk`). The ``local`` backend trains them one after the other in this process,
holding the lock of the sweep's directory (``lock.py``) throughout, as it always has. The
``ray`` backend sends each chunk to a Ray task (``@ray.remote``, one GPU per task when the run's
device is cuda) that calls the same :func:`train_chunk`, so a member's files, weights included,
are the same bit for bit (``ray_backend.py``: the connection, the tasks, their retries and
cancellation). A Ray worker is its members' writer: it takes their locks itself,
while the driver holds a shared lock on the sweep's directory, which keeps any other writer of
the whole sweep out and lets the workers in. A chunk that fails is reported once every other
chunk has finished, in one line that names its members; the finished members stay finished, so
resuming the sweep trains only what is left.

Ray is an optional extra (``pip install 'iclreg[ray]'``), imported only when asked for. Without
an address (``--address`` or ``RAY_ADDRESS``) a new local Ray is started for the run and
stopped at its end (never a cluster already running on this machine); with one, every node of
the cluster must see the run directories (a shared file system) and have iclreg installed.
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
from .lock import group_lock
from .loop import Trainer
from .runs import finish, progress_bar

log = logging.getLogger(__name__)

Chunk = tuple[list[ExperimentConfig], list[Path]]  # the members of one training loop


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
        check(self.name in BACKENDS, f"unknown backend '{self.name}'; use {' or '.join(BACKENDS)}")
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


def as_backend(backend: str | Backend) -> Backend:
    """``backend`` as a :class:`Backend`, refused before any file is written when its engine
    cannot be imported or (``ray``) nothing answers at its cluster's address."""
    backend = backend if isinstance(backend, Backend) else Backend(backend)
    if backend.name == "ray":
        import_ray()
        from .ray_backend import check_reachable

        check_reachable(backend.address)
    return backend


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise UsageError("the ray backend needs Ray, which is not installed: "
                         "pip install 'iclreg[ray]'") from None
    return ray


def train_chunk(configs: list[ExperimentConfig], dirs: list[Path], resume: bool,
                bar: Any = None) -> tuple[int, TrainingError | None]:
    """Train (or resume) one loop of members and write their final files.

    Returns:
        (how many members diverged, the ``TrainingError`` that stopped the loop or None).
    """
    error = None
    with Trainer(configs, dirs, resume) as trainer:
        if bar is not None:
            bar.skip(trainer.step * len(configs))  # restored steps: not counted in the rate
        try:
            finish(trainer, trainer.run(bar))
        except TrainingError as err:
            error = err
    return sum(m.diverged_at is not None for m in trainer.members), error


def run_chunks(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
               max_members: int | None = None) -> int:
    """Train every chunk; returns how many members diverged. ``max_members`` None: the ``ray``
    backend splits the chunks to cover the cluster's workers.

    Raises:
        TrainingError: the sweep's one member diverged, or (``ray``) chunks failed; the others
            finished.
    """
    return BACKENDS[backend.name](backend, chunks, resume, progress, max_members)


def _note(error: TrainingError | None, members: int) -> None:
    """A loop stopped by divergence: an error for a sweep of one member, else a warning."""
    if error is not None:
        if members == 1:
            raise error
        log.warning("%s", error)


def _parents(chunks: Sequence[Chunk]) -> list[Path]:
    return sorted({d.parent for _, dirs in chunks for d in dirs})


def _local(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
           max_members: int | None) -> int:
    members = sum(len(c) for c, _ in chunks)
    total = sum(c.train.steps for configs, _ in chunks for c in configs)
    diverged = 0
    with contextlib.ExitStack() as locks, progress_bar(total, 0, progress) as bar:
        for parent in _parents(chunks):
            locks.enter_context(group_lock(parent))
        for configs, dirs in chunks:
            count, error = train_chunk(configs, dirs, resume, bar)
            _note(error, members)
            diverged += count
    return diverged


def _ray(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
         max_members: int | None) -> int:
    from .ray_backend import run_on_ray  # Ray is imported only when asked for

    return run_on_ray(backend, chunks, resume, progress, max_members)


BACKENDS = {"local": _local, "ray": _ray}
