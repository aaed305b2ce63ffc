"""The ``ray`` backend of sweeps: each chunk of a sweep (an ensemble, ``backends.py``) is a Ray
task that trains it with :func:`~iclreg.train.backends.train_chunk` on a worker.

What the driver (the ``iclreg`` process) does, in order:

- before any file is written, :func:`check_reachable` asks the cluster's address for a plain
  TCP connection (a few seconds at most; ``ray.init`` waits for minutes on an address that
  does not answer);
- :func:`connected` joins the cluster at ``--address`` (else ``RAY_ADDRESS``), or starts a new
  local Ray for the run (``ray.init(address="local")``: never a cluster that happens to run on
  this machine) and stops it at the end; the log says which;
- :func:`spread` splits the chunks so that they cover the cluster's CPUs (its GPUs for cuda
  runs): an ensemble of s of the sweep's N members on a cluster of W workers becomes
  ceil(W s / N) tasks (at most s); ``--max-members`` sets the size instead. A member trains
  bit for bit as it would alone, so the split changes no result;
- while the tasks run it reads the last step each member logged (``metrics.jsonl`` on the
  shared file system) for the progress bar; a task that failed for another reason than
  iclreg's own refusal (a worker killed, a node lost) is sent again, resuming from the
  members' checkpoints, up to ``--retries`` times;
- SIGTERM, SIGHUP and Ctrl-C cancel every task still running (``ray.cancel(force=True)``)
  before Ray is shut down, so no worker trains on for a driver that is gone.

The device and the memory are the worker's to check (:func:`_ray_task`): a GPU sweep can be
sent from a driver without a GPU, and a chunk too large for a worker trains there in parts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from ..errors import TrainingError, UsageError, WriteError, check
from .checkpoint import latest_step
from .chunks import Backend, Chunk, import_ray, note, parents, train_chunk
from .config import ExperimentConfig
from .lock import holds, shared_group_lock
from .preflight import available_bytes, check_members, member_bytes, plan_chunks
from .runs import progress_bar

log = logging.getLogger(__name__)
PROBE_SECONDS = 3.0  # a cluster's address that does not answer a TCP connection in this is refused
POLL_SECONDS = 1.0  # how often the driver reads the members' progress


# --- the cluster ------------------------------------------------------------------------------
def _host_port(address: str, flag: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``ray://HOST:PORT``, ``[IPv6]:PORT``) -> (host, port)."""
    host, _, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    check(bool(host) and port.isdigit() and 0 < int(port) < 65536,
          f"{flag} '{address}' is not HOST:PORT (e.g. 10.0.0.1:6379), auto or local")
    return host.strip("[]"), int(port)


def check_reachable(address: str | None, timeout: float = PROBE_SECONDS) -> None:
    """Refuse a Ray cluster address (``address``, else ``RAY_ADDRESS``) at which nothing
    answers a TCP connection within ``timeout`` seconds, or ``auto`` with no cluster to find;
    no address (a local Ray started for the run) and ``local`` pass."""
    flag = "--address" if address else "RAY_ADDRESS"
    where = address or os.environ.get("RAY_ADDRESS") or None
    if where is None or where == "local":
        return
    if where == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address_or_die
        except ImportError:  # another Ray: ray.init finds it, or says why not
            return
        try:
            where = canonicalize_bootstrap_address_or_die(where)
        except (ConnectionError, ValueError) as err:
            raise UsageError(f"{flag} auto: {_first_line(err)}") from None
    host, port = _host_port(where, flag)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as err:
        why = "no answer" if isinstance(err, TimeoutError) else err.strerror or type(err).__name__
        raise UsageError(f"no Ray cluster answers at {flag} '{where}' ({why}); start one there "
                         "('ray start --head'), correct the address, or leave it out to start a "
                         "local Ray for this sweep") from None


def _first_line(err: BaseException) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


@contextlib.contextmanager
def connected(ray: ModuleType, address: str | None) -> Iterator[None]:
    """Ray, connected to the cluster at ``address`` (else ``RAY_ADDRESS``), or to a new local
    Ray started here and stopped at the end; a Ray this process already joined is used as it
    is. Which one is logged."""
    if ray.is_initialized():
        log.info("using the Ray cluster this process is connected to")
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        log.info("joining the Ray cluster at %s", address)
    else:
        log.info("starting a local Ray for this sweep (stopped at its end; --address joins a cluster)")
    try:
        if address and address != "local":
            ray.init(address=address)
        else:
            ray.init(address="local", include_dashboard=False)
    except ConnectionError as err:
        raise UsageError(f"cannot join the Ray cluster at '{address}': {_first_line(err)}") from None
    try:
        yield
    finally:
        ray.shutdown()


def _needs_gpu(configs: Sequence[ExperimentConfig]) -> bool:
    return any(torch.device(c.run.device).type == "cuda" for c in configs)


def spread(chunks: Sequence[Chunk], workers: dict[bool, int]) -> list[Chunk]:
    """Split ``chunks`` to cover the cluster: a chunk of s of the N members that need the
    same resource (``workers[gpu]`` of them in the cluster) becomes ceil(W s / N) chunks of
    near-equal size (at most s: one member each)."""
    totals = {gpu: sum(len(c) for c, _ in chunks if _needs_gpu(c) == gpu) for gpu in (False, True)}
    out = []
    for configs, dirs in chunks:
        gpu = _needs_gpu(configs)
        parts = min(len(configs), math.ceil(max(workers[gpu], 1) * len(configs) / totals[gpu]))
        size = math.ceil(len(configs) / parts)
        out += [(configs[i:i + size], dirs[i:i + size]) for i in range(0, len(configs), size)]
    return out


def _planned(ray: ModuleType, chunks: Sequence[Chunk], max_members: int | None) -> list[Chunk]:
    """The chunks to send: refused when they need a GPU the cluster lacks, else spread over the
    cluster's workers (:func:`spread`) unless ``max_members`` set their size."""
    resources = ray.cluster_resources()
    cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
    check(gpus > 0 or not any(_needs_gpu(c) for c, _ in chunks),
          "run.device=cuda needs a GPU, and the Ray cluster has none; add a GPU node, or train "
          "with run.device=cpu")
    planned = list(chunks) if max_members else spread(chunks, {False: cpus, True: gpus})
    largest = max((len(c) for c, _ in planned), default=0)
    log.info("%d runs in %d Ray tasks of at most %d members (the cluster: %d CPUs, %d GPUs%s)",
             sum(len(c) for c, _ in planned), len(planned), largest, cpus, gpus,
             "; --max-members set the size" if max_members else "")
    return planned


# --- a worker -----------------------------------------------------------------------------------
def _ray_task(configs: list[ExperimentConfig], dirs: list[str], resume: bool) -> tuple[int, Any]:
    """One chunk in a Ray worker (paths absolute: a worker's directory is not the driver's):
    its device and memory checked here (``preflight.check_training``), then trained in parts
    that fit in this worker's free memory."""

    paths = [Path(d) for d in dirs]
    check_members(configs)
    budget = available_bytes(torch.device(configs[0].run.device))
    size = plan_chunks(len(configs), member_bytes(configs[0]), budget, None)
    diverged, error = 0, None
    for i in range(0, len(configs), size):
        count, stopped = train_chunk(configs[i:i + size], paths[i:i + size], resume)
        diverged, error = diverged + count, error or stopped
    return diverged, error


def member_step(run_dir: Path) -> int:
    """The last step a member logged (the tail of its ``metrics.jsonl``; 0 before any)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as fh:
            fh.seek(max(fh.seek(0, os.SEEK_END) - 4096, 0))
            lines = fh.read().decode(errors="replace").splitlines()
    except OSError:
        return 0
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and type(record.get("step")) is int:
            return record["step"]
    return 0


def _cause(err: BaseException) -> BaseException:
    """The worker's exception behind a failed task, else Ray's own."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def _line(err: BaseException) -> str:
    """One line for a failed task: the exception's name and first line."""
    text = _first_line(err) if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


# --- the driver ---------------------------------------------------------------------------------
def _retried(err: BaseException) -> bool:
    """Whether a failed task is worth sending again: not when iclreg itself refused or stopped
    it (bad input, a diverged loop, an unwritable file), which would fail the same way."""
    return not isinstance(_cause(err), (UsageError, TrainingError, WriteError))


class _Tasks:
    """The chunks sent to Ray: their tasks in flight, how often each was sent, and the steps
    their members have logged (for the progress bar)."""

    def __init__(self, ray: ModuleType, resume: bool, tries: int, members: int) -> None:
        self.ray, self.resume, self.tries, self.members = ray, resume, tries, members
        self.task = ray.remote(_ray_task)
        self.pending: dict[Any, tuple[Chunk, int]] = {}
        self.steps: dict[Path, int] = {}
        self.failed: list[tuple[list[Path], str]] = []

    def send(self, chunk: Chunk, resume: bool, tries: int) -> None:
        configs, dirs = chunk
        for d in dirs:
            self.steps.setdefault(d, latest_step(d) if resume else 0)
        ref = self.task.options(num_gpus=1 if _needs_gpu(configs) else 0, max_retries=0).remote(
            configs, [str(d.resolve()) for d in dirs], resume)
        self.pending[ref] = (chunk, tries)

    def cancel(self) -> None:
        """Stop every task still running (its worker is killed), as the driver stops."""
        if self.pending:
            log.warning("stopping %d Ray tasks", len(self.pending))
        for ref in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.pending.clear()

    def finished(self, ref: Any) -> int:
        """The members of a finished task that diverged; a failed one is sent again (resuming
        from its checkpoints) while it has tries left, else noted in ``failed``."""
        chunk, tries = self.pending.pop(ref)
        configs, dirs = chunk
        try:
            count, error = self.ray.get(ref)
        except self.ray.exceptions.RayError as err:
            cause = _line(_cause(err))
            if _retried(err) and tries < self.tries:
                log.warning("the task of %s failed (%s); sending it again, from their checkpoints "
                            "(try %d of %d)", ", ".join(str(d) for d in dirs), cause, tries + 1, self.tries)
                self.send(chunk, True, tries + 1)
            else:
                self.failed.append((dirs, cause))
            return 0
        for config, d in zip(configs, dirs, strict=True):
            self.steps[d] = config.train.steps
        note(error, self.members)
        return count

    def shown(self) -> int:
        """Steps done in all, with what the running members have logged so far."""
        for (_, dirs), _ in self.pending.values():
            for d in dirs:
                self.steps[d] = max(self.steps[d], member_step(d))
        return sum(self.steps.values())

    def run(self, chunks: Sequence[Chunk], bar: Any) -> int:
        """Send every chunk and wait for them all, moving ``bar``; returns how many members
        diverged. Whatever stops the wait (a signal, an error) cancels the tasks left."""
        try:
            for chunk in chunks:
                self.send(chunk, self.resume, 1)
            done = sum(self.steps.values())
            bar.skip(done)  # restored from checkpoints: not counted in the rate
            diverged = 0
            while self.pending:
                ready, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=POLL_SECONDS)
                diverged += sum(self.finished(ref) for ref in ready)
                if bar.enabled:
                    now = self.shown()
                    bar.update(max(now - done, 0))
                    done = max(done, now)
            return diverged
        finally:
            self.cancel()


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM and SIGHUP left at their default
    (which ends the process on the spot) unwind like Ctrl-C instead, so that the tasks are
    cancelled and Ray is shut down on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    changed = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) is signal.SIG_DFL]
    for s in changed:
        signal.signal(s, _stop)
    try:
        yield
    finally:
        for s in changed:
            signal.signal(s, signal.SIG_DFL)


def run_on_ray(backend: Backend, chunks: Sequence[Chunk], resume: bool, progress: bool,
               max_members: int | None) -> int:
    """Train every chunk as a Ray task (the module docstring); returns how many members
    diverged.

    Raises:
        TrainingError: chunks failed (after their retries), once every other chunk finished.
        UsageError: the cluster cannot be joined, or has no GPU for a cuda run.
    """
    ray = import_ray()
    dirs = parents(chunks)
    for parent in dirs:
        check(not holds(parent), f"'{parent}' is locked by this process, so a Ray worker could not "
                                 "write its members; train it with the local backend")
    total = sum(c.train.steps for configs, _ in chunks for c in configs)
    with contextlib.ExitStack() as stack:
        for parent in dirs:
            stack.enter_context(shared_group_lock(parent))
        stack.enter_context(stopped_by_signals())
        stack.enter_context(connected(ray, backend.address))
        planned = _planned(ray, chunks, max_members)
        tasks = _Tasks(ray, resume, backend.tries, sum(len(c) for c, _ in chunks))
        with progress_bar(total, 0, progress) as bar:
            diverged = tasks.run(planned, bar)
    if tasks.failed:
        names = ", ".join(str(d) for dirs, _ in tasks.failed for d in dirs)
        causes = "; ".join(dict.fromkeys(cause for _, cause in tasks.failed))
        raise TrainingError(f"{len(tasks.failed)} of {len(planned)} chunks failed ({causes}); their "
                            f"members: {names}; every other member finished")
    return diverged
