"""One runner for ``iclreg reproduce`` and ``iclreg demo``: the atomic output directory, the
run and the report.

An output directory is written under a temporary name and replaces ``out`` only when the run
succeeds (``report.files.atomic_output_dir``); the training runs live outside it, in ``--runs
DIR`` or else in ``.OUT.runs`` beside it (moved into ``out/runs`` with the report), and survive a
failed or interrupted run, which the next invocation of the same command continues.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError, check
from ..logs import phase
from ..report import atomic_output_dir, save_figure, write_text
from ..report.files import WRITE_ERRNOS, check_output_dir, left_behind, writing_output
from ..report.html import index_page, reproduction_page
from ..report.markdown import reproduction_report
from . import saved
from .base import REPRODUCTIONS, Reproduction

log = logging.getLogger(__name__)
FIRST = "tour"  # the demo opens with the estimator tour


def write_report(result: Reproduction, out: Path, embed: bool = False) -> Reproduction:
    """Save ``result``'s measurements (``measurements.json``) and draw its report from them
    (:func:`draw_report`); returns the reproduction as loaded back."""
    saved.save(result, out)
    return draw_report(out, embed=embed)


def draw_report(out: Path, embed: bool = False) -> Reproduction:
    """Draw the report of the reproduction saved in ``out`` (``measurements.json``): its figures
    (PNG and PDF), ``report.md`` (for GitHub), ``report.html`` (its CSS embedded, for a browser;
    ``embed``: its figures too, one file to mail), ``claims.json`` and (when a section holds raw
    numbers) ``results.json``. ``iclreg report DIR`` is this function."""
    result = saved.load(out)
    with phase(f"{result.paper}: figures", log):
        for section in result.sections:
            for name, plot in section.figures.items():
                save_figure(plot.draw(), out / name, also=(".pdf",))  # PDF beside the PNG, for papers
    write_text(out / "report.md", reproduction_report(result))
    write_text(out / "report.html", reproduction_page(result, result.paper, root=out, embed=embed))
    write_text(out / "claims.json", json.dumps(result.to_json(), indent=1))
    data = {key: value for s in result.sections for key, value in s.data.items()}
    if data:
        write_text(out / "results.json", json.dumps(data, indent=1))
    return result


def redraw(out: str | Path, embed: bool = False) -> list[Reproduction]:
    """``iclreg report DIR``: draw again, from its saved measurements, the report of a
    reproduction (``DIR/measurements.json``) or of a demo (one per reproduction directory, and
    ``index.html``). Nothing is trained or measured."""
    out = Path(out)
    if not out.is_dir():
        raise UsageError(f"'{out}' is not a directory; give the output directory of `iclreg reproduce` "
                         "or `iclreg demo`")
    if (out / saved.FILE).is_file() or not (out / "index.html").is_file():
        return [draw_report(out, embed=embed)]
    found = (p.name for p in out.iterdir() if (p / saved.FILE).is_file())
    names = sorted(found, key=lambda n: (n != FIRST, n))  # the demo's order: the tour first
    entries = [(name, draw_report(out / name, embed=embed)) for name in names]
    check(bool(entries), f"'{out}' holds an index.html but no reproduction with a {saved.FILE}; "
                         "run `iclreg demo` again to write them")
    write_text(out / "index.html", index_page(entries, root=out, embed=embed))
    return [result for _, result in entries]


def default_out(paper: str, mode: str) -> Path:
    return Path(f"runs/{paper}{'-quick' if mode == 'quick' else ''}")


def kept_runs(out: Path) -> Path:
    """Where a reproduction into ``out`` given no ``--runs`` trains its runs: ``.OUT.runs``
    beside ``out``. They move into ``out/runs`` when the report is written; a reproduction
    stopped before that leaves them there, and the same command run again continues them."""
    return out.parent / f".{out.name}.runs"


def check_runs_dir(runs: str | Path) -> Path:
    """Validate ``--runs DIR`` as ``--out`` is validated, creating nothing: absent, empty, or a
    runs directory iclreg wrote (a directory per mode, ``quick`` or ``full``, and its lock)."""
    path = check_output_dir(runs, "--runs")
    modes = {m for name in REPRODUCTIONS.names() for m in REPRODUCTIONS.get(name).modes}
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if not (
            left_behind(p.name) or (p.name in modes and p.is_dir() and not p.is_symlink())))
        check(not foreign, f"'{path}' is not empty (it holds '{foreign[0] if foreign else ''}') and is no "
                           f"iclreg runs directory; choose a new or empty directory for --runs")
    return path


@contextlib.contextmanager
def keeping_runs(kept: Path, target: Path) -> Iterator[None]:
    """Move the runs trained into ``kept`` to ``target`` when the block succeeds; when it fails
    (Ctrl-C, SIGTERM, an error), leave them and say in one line how to continue them."""
    try:
        yield
    except BaseException:
        if kept.is_dir() and any(kept.iterdir()):
            log.warning("the runs trained so far are kept in %s: run the same command again to "
                        "continue them (--runs DIR keeps runs in a place of your choosing)", kept)
        raise
    if kept.is_dir():
        os.replace(kept, target)
        with contextlib.suppress(OSError):
            kept.parent.rmdir()  # empty unless another mode's runs wait there


def reproduce(paper: str, out: str | Path | None = None, mode: str = "quick", device: str = "cpu",
              runs: str | None = None, sizes: Any = None, progress: bool = False,
              backend: Any = "local", embed: bool = False) -> Reproduction:
    """Run reproduction ``paper`` and write its report into ``out`` (replaced atomically);
    its runs train on ``backend`` (``train.backends``: ``local`` or ``ray``), into ``runs``,
    else into :func:`kept_runs` until they move into ``out/runs``. ``embed``: report.html holds
    its figures (``--self-contained``)."""
    kind = REPRODUCTIONS.get(paper)
    out = Path(out) if out is not None else default_out(paper, mode)
    if runs:
        check_runs_dir(runs)
        if Path(runs).resolve().is_relative_to(out.resolve()):
            raise UsageError(f"--runs {runs} lies inside --out {out}, which a new report replaces; "
                             "keep the runs outside it")
    where = Path(runs) if runs else kept_runs(out)
    experiment = kind(mode=mode, sizes=sizes, device=device, runs=str(where), progress=progress,
                      backend=backend)
    with writing_output(out, WRITE_ERRNOS), atomic_output_dir(out) as tmp, \
            contextlib.nullcontext() if runs else keeping_runs(where / mode, tmp / "runs"):
        result = experiment.run(tmp)
        with phase(f"{paper}: report", log):
            result = write_report(result, tmp, embed=embed)
    return result


def demo(out: str | Path = "runs/demo", sizes: Mapping[str, Any] | None = None,
         progress: bool = False, embed: bool = False) -> Path:
    """Every registered reproduction in quick mode (the tour first), with ``index.html``.

    ``sizes``: paper -> sizes replacing its quick ones (the tour's samples, toy sizes in tests);
    ``embed``: every page holds its figures (``--self-contained``: index.html alone is the demo).
    """
    out, sizes = Path(out), dict(sizes or {})
    names = sorted(REPRODUCTIONS.names(), key=lambda n: n != FIRST)
    entries = []
    with writing_output(out, WRITE_ERRNOS), atomic_output_dir(out) as tmp:
        for i, name in enumerate(names, 1):
            log.info("reproduction %d/%d: %s", i, len(names), name)
            (tmp / name).mkdir()
            kept = kept_runs(out) / name
            experiment = REPRODUCTIONS.get(name)(mode="quick", sizes=sizes.get(name), progress=progress,
                                                 runs=str(kept))
            with keeping_runs(kept / "quick", tmp / name / "runs"):
                result = experiment.run(tmp / name)
                with phase(f"{name}: report", log):
                    result = write_report(result, tmp / name, embed=embed)
            entries.append((name, result))
        write_text(tmp / "index.html", index_page(entries, root=tmp, embed=embed))
        with contextlib.suppress(OSError):
            kept_runs(out).rmdir()  # every reproduction's runs moved into the output
    return out
