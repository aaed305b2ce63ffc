"""Writing outputs so that a failure never leaves a half-written file or directory.

Files are written to a temporary name in the destination directory and renamed into place
(``os.replace`` is atomic on POSIX); a report directory is built under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402

from ..errors import check  # noqa: E402

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_writable_file(path: str | Path, suffixes: tuple[str, ...] = FIGURE_SUFFIXES) -> Path:
    """Validate an output path before any work is done."""
    path = Path(path)
    check(
        path.suffix.lower() in suffixes,
        f"cannot write '{path}': use a file name ending in {', '.join(suffixes)}",
    )
    parent = path.parent if str(path.parent) else Path(".")
    check(parent.is_dir(), f"cannot write '{path}': directory '{parent}' does not exist")
    check(not path.is_dir(), f"cannot write '{path}': it is a directory")
    return path


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode())


def save_figure(fig: Figure, path: str | Path, dpi: int = 130) -> None:
    """Save a figure atomically in the format given by the suffix."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format=Path(path).suffix.lstrip(".").lower(), dpi=dpi, bbox_inches="tight")
    write_bytes(path, buf.getvalue())


OUTPUT_MARKERS = ("report.md", "index.html")


@contextlib.contextmanager
def atomic_output_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only if the block succeeds.

    An existing ``path`` is replaced only when it is empty or an earlier iclreg output (it
    holds a report.md or index.html); anything else is refused before any work is done.
    """
    path = Path(path)
    check(not path.is_file(), f"'{path}' is a file; choose a directory for --out")
    if path.is_dir() and any(path.iterdir()):
        check(
            any((path / m).is_file() for m in OUTPUT_MARKERS),
            f"'{path}' exists and is not an iclreg report directory; choose another --out",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
