"""Where the chunks of a sweep train: in this process (``local``) or as Ray tasks (``ray``).

A sweep (``sweep.train_groups``) is a list of chunks, each one ensemble trained by one loop
(:func:`train_chunk`). The ``local`` backend trains them one after the other in this process,
holding the lock of the sweep's directory (``lock.py``) throughout, as it always has. The
``ray`` backend sends each chunk to a Ray task (``@ray.remote``, one GPU per task when the run's
device is cuda) that calls the same :func:`train_chunk`, so a member's files, weights included,
are the same bit for bit. A Ray worker is its members' writer: it takes their locks itself,
while the driver holds a shared lock on the sweep's directory, which keeps any other writer of
the whole sweep out and lets the workers in. A chunk that fails is reported once every other
chunk has finished, in one line that names its members; the finished members stay finished, so
resuming the sweep trains only what is left.

Ray is an optional extra (``pip install 'iclreg[ray]'``), imported only when asked for. Without
an address (``--address`` or ``RAY_ADDRESS``) a local Ray is started for the run and stopped at
its end; with one, every node of the cluster must see the run directories (a shared file
system) and have iclreg installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..errors import TrainingError, UsageError, check
from .config import ExperimentConfig
from .lock import group_lock, holds, shared_group_lock
from .loop import Trainer
from .runs import finish, progress_bar

log = logging.getLogger(__name__)

Chunk = tuple[list[ExperimentConfig], list[Path]]  # the members of one training loop


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where a sweep's chunks train: ``local`` (this process) or ``ray`` (Ray tasks, on the
    cluster at ``address``, else ``RAY_ADDRESS``, else a local Ray started for the run)."""

    name: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        check(self.name in BACKENDS, f"unknown backend '{self.name}'; use {' or '.join(BACKENDS)}")
        check(self.address is None or self.name == "ray",
              "an address names a Ray cluster; give it with --backend ray")

    def check_single_run(self) -> None:
        """Refuse a backend other than ``local`` for a run that is no sweep."""
        check(self.name == "local", f"--backend {self.name} trains the ensembles of a sweep; a single "
                                    "run trains in this process: drop --backend or give --sweep")


def as_backend(backend: str | Backend) -> Backend:
    """``backend`` as a :class:`Backend`, refused before any file is written when its engine
    cannot be imported."""
    backend = backend if isinstance(backend, Backend) else Backend(backend)
    if backend.name == "ray":
        import_ray()
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


def run_chunks(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool) -> int:
    """Train every chunk; returns how many members diverged.

    Raises:
        TrainingError: the sweep's one member diverged, or (``ray``) chunks failed; the others
            finished.
    """
    return BACKENDS[backend.name](backend, chunks, resume, progress)


def _note(error: TrainingError | None, members: int) -> None:
    """A loop stopped by divergence: an error for a sweep of one member, else a warning."""
    if error is not None:
        if members == 1:
            raise error
        log.warning("%s", error)


def _parents(chunks: Sequence[Chunk]) -> list[Path]:
    return sorted({d.parent for _, dirs in chunks for d in dirs})


def _local(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool) -> int:
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


def _ray_task(configs: list[ExperimentConfig], dirs: list[str], resume: bool) -> tuple[int, Any]:
    """One chunk in a Ray worker (paths absolute: a worker's directory is not the driver's)."""
    return train_chunk(configs, [Path(d) for d in dirs], resume)


def _cause(err: BaseException) -> str:
    """One line for a failed task: the worker's exception, else Ray's first line."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        err = cause
    text = next((line for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


@contextlib.contextmanager
def _connected(ray: ModuleType, address: str | None) -> Any:
    """Ray, connected to ``address`` (else ``RAY_ADDRESS``; else a local Ray started here and
    stopped at the end); an already connected Ray is used as it is."""
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, **({} if address else {"include_dashboard": False}))
    try:
        yield
    finally:
        ray.shutdown()


def _ray(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool) -> int:
    ray = import_ray()
    parents = _parents(chunks)
    for parent in parents:
        check(not holds(parent), f"'{parent}' is locked by this process, so a Ray worker could not "
                                 "write its members; train it with the local backend")
    members = sum(len(c) for c, _ in chunks)
    total = sum(c.train.steps for configs, _ in chunks for c in configs)
    diverged, failed = 0, []
    with contextlib.ExitStack() as locks, _connected(ray, backend.address), \
            progress_bar(total, 0, progress) as bar:
        for parent in parents:
            locks.enter_context(shared_group_lock(parent))
        task = ray.remote(_ray_task)
        pending = {}
        for configs, dirs in chunks:
            gpu = any(torch.device(c.run.device).type == "cuda" for c in configs)
            ref = task.options(num_gpus=1 if gpu else 0, max_retries=0).remote(
                configs, [str(d.resolve()) for d in dirs], resume)
            pending[ref] = (configs, dirs)
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            configs, dirs = pending.pop(ref)
            try:
                count, error = ray.get(ref)
            except ray.exceptions.RayError as err:
                failed.append((dirs, _cause(err)))
                continue
            bar.update(sum(c.train.steps for c in configs))
            _note(error, members)
            diverged += count
    if failed:
        names = ", ".join(str(d) for dirs, _ in failed for d in dirs)
        causes = "; ".join(dict.fromkeys(cause for _, cause in failed))
        raise TrainingError(f"{len(failed)} of {len(chunks)} chunks failed ({causes}); their members: "
                            f"{names}; every other member finished")
    return diverged


BACKENDS = {"local": _local, "ray": _ray}
