"""Writes into a run directory that survive a kill and fail cleanly on a full disk.

Every file of a run directory is written under a temporary name and renamed into place
(``os.replace`` is atomic on POSIX), so a process killed at any moment leaves the old file
or the new one, never a mix. A write that fails (a full disk, ``ENOSPC``; a read-only file
system; a quota) raises :class:`~iclreg.errors.WriteError` naming the file and how to carry
on; what was on disk before stays as it was. Temporaries left by a process killed mid-write
(``.NAME.*.tmp`` files beside the outputs, ``checkpoints/.tmp_*`` directories) are removed by
the next writer of the run, which holds the run's lock (``lock.py``), so no live write is
ever removed.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import WriteError
from ..report.files import write_text

log = logging.getLogger(__name__)


def resume_hint(run_dir: Path) -> str:
    """How to carry on with ``run_dir``: resume it, or the sweep it belongs to."""
    target = run_dir.parent if (run_dir.parent / "sweep.yaml").is_file() else run_dir
    return f"iclreg train --resume {target}"


@contextlib.contextmanager
def writing(path: Path, run_dir: Path, new: bool = False) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` of ``run_dir`` into a one-line
    :class:`WriteError` that says how to continue: resume, or (``new``: the run is being
    created) run the command again."""
    try:
        yield
    except WriteError:
        raise
    except OSError as err:
        why = err.strerror or type(err).__name__
        then = ("nothing was trained yet: free some space, then run the command again" if new else
                "the run is intact up to its last checkpoint: free some space, then continue with "
                f"'{resume_hint(run_dir)}'")
        raise WriteError(f"cannot write '{path}' ({why}); {then}") from None


def write_run_file(path: Path, text: str, run_dir: Path) -> None:
    """Write ``text`` to ``path`` of ``run_dir`` atomically; failures are :class:`WriteError`."""
    with writing(path, run_dir):
        write_text(path, text)


def remove_temporaries(run_dir: Path) -> int:
    """Delete what a killed write left in ``run_dir``: ``checkpoints/.tmp_*`` directories and
    ``.NAME.*.tmp`` files. Call it only while holding the run's lock. Returns the count."""
    found = [p for p in run_dir.glob(".*.tmp") if p.is_file()]
    if (run_dir / "checkpoints").is_dir():
        found += list((run_dir / "checkpoints").glob(".tmp_*"))
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if found:
        log.info("removed %d temporaries left by an interrupted write in %s", len(found), run_dir)
    return len(found)
