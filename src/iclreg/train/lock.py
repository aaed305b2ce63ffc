"""One writer per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``.

Writers (``train``, ``--resume``, a sweep, ``train_plan``) hold the
lock for as long as they write; a second writer is refused with a one-line error naming the
holder (pid, host and start time, which the holder notes in the file). The kernel releases a
``flock`` when its process exits, however it exits (SIGKILL included), so a lock never goes
stale: the file stays behind and its contents are only a note. Readers (``eval``, ``probe``,
``load_run``) take no lock. (``flock`` is advisory and local: on a network file system shared
by several hosts it may not exclude a writer on another host.)

A sweep, or the directory of a plan (``train_plan``), is locked as a whole: its writer holds the
directory's lock exclusively, which covers every member without a file handle per member (an
ensemble of a thousand members holds one). A process writing one member alone (``--resume
SWEEP/member``) holds the member's lock and a shared lock on the sweep's, so it excludes the
sweep's writer and the sweep's writer excludes it, while two members may be resumed side by
side. Locks are re-entrant within a process (``train_plan`` -> ``train_groups`` -> ``Trainer``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .durable import writing

LOCK = ".lock"


@dataclass
class _Held:
    fd: int
    shared: bool
    count: int


_held: dict[Path, _Held] = {}  # this process's locks, by resolved directory


def _note() -> bytes:
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")}).encode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(fd: int) -> str:
    """Who holds the lock, from the exclusive holder's note (a stale note is not named)."""
    try:
        note = json.loads(os.pread(fd, 4096, 0).decode() or "null")
        pid, host, since = int(note["pid"]), str(note["host"]), str(note["since"])
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        return "another iclreg process"
    if host == socket.gethostname() and not _alive(pid):
        return "another iclreg process (writing a run inside it)"
    return f"process {pid} on {host} (since {since})"


def _acquire(directory: Path, shared: bool) -> None:
    key = directory.resolve()
    held = _held.get(key)
    if held is not None:
        if held.shared and not shared:
            raise UsageError(f"'{directory}' is locked for a member's writer in this process; "
                             "write the sweep or the member, not both")
        held.count += 1
        return
    path = directory / LOCK
    with writing(path, directory):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            fd = os.open(path, os.O_RDONLY)  # a shared lock needs no write access
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UsageError(f"'{directory}' is being written by {holder}; wait for it to finish or "
                         "stop it: a run directory takes one writer at a time") from None
    if not shared:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, _note(), 0)
    _held[key] = _Held(fd, shared, 1)


def _release(directory: Path) -> None:
    key = directory.resolve()
    held = _held[key]
    held.count -= 1
    if held.count == 0:
        del _held[key]
        if not held.shared:
            with contextlib.suppress(OSError):
                os.ftruncate(held.fd, 0)
        os.close(held.fd)  # releases the flock


@contextlib.contextmanager
def _locked(directory: Path, shared: bool = False) -> Iterator[None]:
    _acquire(directory, shared)
    try:
        yield
    finally:
        _release(directory)


def holds(directory: Path) -> bool:
    """Whether this process holds ``directory``'s lock exclusively."""
    held = _held.get(directory.resolve())
    return held is not None and not held.shared


@contextlib.contextmanager
def group_lock(directory: str | Path) -> Iterator[None]:
    """Hold the exclusive lock of a sweep (or ``train_plan``) directory, which covers its
    members, for the block.

    Raises:
        UsageError: another process writes the directory or one of its members.
    """
    with _locked(Path(directory)):
        yield


@contextlib.contextmanager
def shared_group_lock(directory: str | Path) -> Iterator[None]:
    """Hold a shared lock on a sweep's directory for the block: the driver of a sweep whose
    members other processes write (Ray workers, each holding its members' locks), which keeps
    out any writer of the whole sweep.

    Raises:
        UsageError: another process writes the whole directory.
    """
    with _locked(Path(directory), shared=True):
        yield


@contextlib.contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the writer's lock of one run directory for the block: nothing more when this
    process holds the lock of the directory around it, else the run's own lock and, when the
    directory around it is a locked group (a sweep), a shared lock on that.

    Raises:
        UsageError: another process writes the run (or the sweep it belongs to).
    """
    run_dir = Path(run_dir)
    parent = run_dir.parent
    if holds(parent):
        yield
        return
    with contextlib.ExitStack() as stack:
        if (parent / LOCK).is_file():
            stack.enter_context(_locked(parent, shared=True))
        stack.enter_context(_locked(run_dir))
        yield
