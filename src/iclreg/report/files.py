"""Writing outputs so that a failure never leaves a half-written file or directory.

Files are written to a temporary name in the destination directory and renamed into place
(``os.replace`` is atomic on POSIX); a report directory is built under a temporary name and
renamed when complete. ``tempfile`` creates owner-only temporaries (0600 files, 0700
directories); the outputs get the modes an ordinary ``open``/``mkdir`` would give them under
the user's umask (0644 and 0755 under the usual 022), so a report can be served or shared.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from ..errors import UsageError, WriteError, check  # noqa: E402

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_writable_file(path: str | Path, suffixes: tuple[str, ...] = FIGURE_SUFFIXES) -> Path:
    """Validate an output file before any work is done: a known suffix, an existing directory
    that accepts new files, and no directory or special file (a device, a pipe) in the way."""
    path = Path(path)
    check(
        path.suffix.lower() in suffixes,
        f"cannot write '{path}': use a file name ending in {', '.join(suffixes)}",
    )
    parent = path.parent if str(path.parent) else Path(".")
    check(parent.is_dir(), f"cannot write '{path}': directory '{parent}' does not exist")
    check(not path.is_dir(), f"cannot write '{path}': it is a directory")
    check(not path.exists() or path.is_file(), f"cannot write '{path}': it is not a regular file")
    _check_creatable(parent, path)
    return path


def _check_creatable(directory: Path, target: Path) -> None:
    """Create and remove an entry in ``directory``: the one sure test that outputs can be
    written there (permission bits say nothing to root, and /proc or a read-only mount refuse
    anyway). Nothing is left behind."""
    try:
        os.rmdir(tempfile.mkdtemp(dir=directory, prefix=".iclreg-check."))
    except OSError as err:
        raise UsageError(f"cannot write '{target}': {err.strerror or err} in '{directory}'; "
                         "choose a writable location") from None


def check_output_dir(path: str | Path, flag: str = "--out") -> Path:
    """Validate an output directory before any work is done, creating nothing: an existing
    directory, or a new path whose nearest existing ancestor is a writable directory."""
    path = Path(path)
    check(not path.exists() or path.is_dir(),
          f"'{path}' exists and is not a directory; choose a directory for {flag}")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    check(ancestor.is_dir(), f"cannot create '{path}': '{ancestor}' is not a directory")
    _check_creatable(ancestor, path)
    return path


def left_behind(name: str) -> bool:
    """iclreg's own leftovers, which do not make a directory foreign: a run's lock file, which
    stays after its writer exits (train/lock.py), and the temporary of a killed atomic write."""
    return name == ".lock" or (name.startswith(".") and name.endswith(".tmp"))


def check_new_output_dir(path: str | Path, kind: str, flag: str = "--out") -> Path:
    """Validate the directory of a new ``kind`` (run, sweep): :func:`check_output_dir`, and
    absent or empty, so that iclreg never writes into a directory holding other files."""
    path = Path(path)
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if not left_behind(p.name))
        check(not foreign, f"'{path}' is not empty (it holds '{foreign[0] if foreign else ''}') and "
                           f"is no iclreg {kind}; choose a new or empty directory for {flag}")
    return check_output_dir(path, flag)


def umask() -> int:
    """The process's umask (Linux reads it from /proc, elsewhere it is set and restored)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0666 less the umask."""
    return 0o666 & ~umask()


def dir_mode() -> int:
    """The mode ``mkdir`` gives a new directory: 0777 less the umask."""
    return 0o777 & ~umask()


def make_temp_dir(parent: str | Path, prefix: str) -> Path:
    """A new temporary directory in ``parent`` (to be renamed into place) with an ordinary
    directory's mode, not ``mkdtemp``'s 0700."""
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(tmp, dir_mode())
    return tmp


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, with the mode of a newly created file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), file_mode())
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode())


def save_figure(fig: Figure, path: str | Path, dpi: int | None = None, also: tuple[str, ...] = ()) -> None:
    """Save a figure atomically in the format given by the suffix, under iclreg's figure style
    (``report.style``; ``dpi`` defaults to its ``DPI``), and once more beside it for each suffix of
    ``also`` (``also=(".pdf",)``: ``name.png`` and ``name.pdf``). A figure with a layout engine
    is laid out once and keeps that layout (its engine is removed)."""
    import io

    import matplotlib as mpl

    from .style import DPI, style

    path = Path(path)
    with style():
        if fig.get_layout_engine() is not None:  # solve the layout once, not once per format
            fig.draw_without_rendering()
            fig.set_layout_engine("none")
        # the tight bounding box, measured once: savefig(bbox_inches="tight") would draw the
        # figure an extra time per format to find it
        bbox = fig.get_tightbbox().padded(mpl.rcParams["savefig.pad_inches"])
        for target in (path, *(path.with_suffix(s) for s in also if s.lower() != path.suffix.lower())):
            buf = io.BytesIO()
            kind = target.suffix.lstrip(".").lower()
            # no creation date in a PDF: a figure drawn again from the same numbers is the same file
            metadata = {"CreationDate": None} if kind == "pdf" else None
            fig.savefig(buf, format=kind, dpi=dpi or DPI, bbox_inches=bbox, metadata=metadata)
            write_bytes(target, buf.getvalue())


# a write that failed for want of space or write access (not a file the block reads)
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


@contextlib.contextmanager
def writing_output(path: str | Path, errnos: frozenset[int] | None = None) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` (a full disk, ``ENOSPC``; a read-only
    file system; a quota) into a one-line :class:`~iclreg.errors.WriteError`; ``errnos``: only
    errors of these numbers. The writes of this module are atomic, so nothing half-written is
    left behind."""
    try:
        yield
    except OSError as err:
        if errnos is not None and err.errno not in errnos:
            raise
        why = err.strerror or type(err).__name__
        raise WriteError(f"cannot write '{path}' ({why}); free some space, then run the command "
                         "again") from None


OUTPUT_MARKERS = ("report.md", "index.html")


def _temp_prefix(path: Path, pid: int | None = None) -> str:
    """The name of ``path``'s temporaries up to their random part: ``.NAME.tmp-HOST-PID-``, so
    that a later run can tell the temporary of a process that was killed from a live one's."""
    host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32]
    return f".{path.name}.tmp-{host}-" + ("" if pid is None else f"{pid}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> int:
    """Delete the temporary directories of output ``path`` left beside it by processes of this
    host that are gone (a reproduction killed mid-run); returns their count. Temporaries of
    live processes, and of other hosts sharing the file system, are left alone."""
    path = Path(path)
    prefix, found = _temp_prefix(path), 0
    if not path.parent.is_dir():
        return 0
    for entry in path.parent.iterdir():
        pid, _, rest = entry.name.removeprefix(prefix).partition("-")
        if entry.name.startswith(prefix) and pid.isdigit() and rest and entry.is_dir() \
                and not entry.is_symlink() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)
            found += 1
    if found:
        logging.getLogger(__name__).info("removed %d temporary directories of %s left by stopped runs",
                                         found, path)
    return found


@contextlib.contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    An existing ``path`` is replaced only when it is empty or an earlier iclreg output (it
    holds a report.md or index.html); anything else is refused before any work is done. The
    temporaries of earlier runs of ``path`` that were killed are removed first.
    """
    path = Path(path)
    if path.is_dir() and any(path.iterdir()):
        check(
            any((path / m).is_file() for m in OUTPUT_MARKERS),
            f"'{path}' exists and is not an iclreg report directory; choose another --out",
        )
    check_output_dir(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = make_temp_dir(path.parent, _temp_prefix(path, os.getpid()))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
