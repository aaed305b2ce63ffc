"""Where the chunks of a sweep train: in this process (``local``) or as Ray tasks (``ray``).

A sweep or plan (``plan.train_groups``) is a list of chunks, each one ensemble trained by one loop
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

Ray is an optional extra (``.venv/bin/pip install -e '.[ray]'``), imported only when asked
for. Without an address (``--address`` or ``RAY_ADDRESS``) a new local Ray is started for the run and
stopped at its end (never a cluster already running on this machine); with one, every node of
the cluster must see the run directories (a shared file system) and have iclreg installed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from .chunks import Backend, Chunk, import_ray, note, parents, train_chunk
from .lock import group_lock
from .ray_backend import check_reachable, run_on_ray
from .runs import progress_bar

__all__ = ["BACKENDS", "Backend", "Chunk", "as_backend", "run_chunks", "train_chunk"]


def as_backend(backend: str | Backend) -> Backend:
    """``backend`` as a :class:`Backend`, refused before any file is written when its engine
    cannot be imported or (``ray``) nothing answers at its cluster's address."""
    backend = backend if isinstance(backend, Backend) else Backend(backend)
    if backend.name == "ray":
        import_ray()
        check_reachable(backend.address)
    return backend


def run_chunks(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
               max_members: int | None = None) -> int:
    """Train every chunk; returns how many members diverged. ``max_members`` None: the ``ray``
    backend splits the chunks to cover the cluster's workers.

    Raises:
        TrainingError: the sweep's one member diverged, or (``ray``) chunks failed; the others
            finished.
    """
    return BACKENDS[backend.name](backend, chunks, resume, progress, max_members)


def _local(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
           max_members: int | None) -> int:
    members = sum(len(c) for c, _ in chunks)
    total = sum(c.train.steps for configs, _ in chunks for c in configs)
    diverged = 0
    with contextlib.ExitStack() as locks, progress_bar(total, 0, progress) as bar:
        for parent in parents(chunks):
            locks.enter_context(group_lock(parent))
        for configs, dirs in chunks:
            count, error = train_chunk(configs, dirs, resume, bar)
            note(error, members)
            diverged += count
    return diverged


def _ray(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
         max_members: int | None) -> int:
    return run_on_ray(backend, chunks, resume, progress, max_members)


BACKENDS = {"local": _local, "ray": _ray}
