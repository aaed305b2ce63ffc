"""One runner for ``iclreg reproduce`` and ``iclreg demo``: the atomic output directory, the
run and the report.

An output directory is written under a temporary name and replaces ``out`` only when the run
succeeds (``report.files.atomic_output_dir``); the training runs kept with ``--runs DIR`` live
outside it and survive a failed or interrupted run, which the next invocation continues.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..logs import phase
from ..report import atomic_output_dir, write_text
from ..report.files import check_output_dir
from ..report.html import index_page, reproduction_page
from ..report.markdown import reproduction_report
from .base import REPRODUCTIONS, Reproduction

log = logging.getLogger(__name__)
FIRST = "tour"  # the demo opens with the estimator tour


def write_report(result: Reproduction, out: Path) -> None:
    """``report.md`` (for GitHub), ``report.html`` (self-contained, for a browser), ``claims.json`` and
    (when a section holds raw numbers) ``results.json``."""
    write_text(out / "report.md", reproduction_report(result))
    write_text(out / "report.html", reproduction_page(result, result.paper, root=out))
    write_text(out / "claims.json", json.dumps(result.to_json(), indent=1))
    data = {key: value for s in result.sections for key, value in s.data.items()}
    if data:
        write_text(out / "results.json", json.dumps(data, indent=1))


def default_out(paper: str, mode: str) -> Path:
    return Path(f"runs/{paper}{'-quick' if mode == 'quick' else ''}")


def reproduce(paper: str, out: str | Path | None = None, mode: str = "quick", device: str = "cpu",
              runs: str | None = None, sizes: Any = None, progress: bool = False,
              backend: Any = "local") -> Reproduction:
    """Run reproduction ``paper`` and write its report into ``out`` (replaced atomically);
    its runs train on ``backend`` (``train.backends``: ``local`` or ``ray``)."""
    kind = REPRODUCTIONS.get(paper)
    out = Path(out) if out is not None else default_out(paper, mode)
    if runs:
        check_output_dir(runs, "--runs")
        if Path(runs).resolve().is_relative_to(out.resolve()):
            raise UsageError(f"--runs {runs} lies inside --out {out}, which a new report replaces; "
                             "keep the runs outside it")
    experiment = kind(mode=mode, sizes=sizes, device=device, runs=runs, progress=progress, backend=backend)
    with atomic_output_dir(out) as tmp:
        result = experiment.run(tmp)
        with phase(f"{paper}: report", log):
            write_report(result, tmp)
    return result


def demo(out: str | Path = "runs/demo", sizes: Mapping[str, Any] | None = None,
         progress: bool = False) -> Path:
    """Every registered reproduction in quick mode (the tour first), with ``index.html``.

    ``sizes``: paper -> sizes replacing its quick ones (the tour's samples, toy sizes in tests).
    """
    out, sizes = Path(out), dict(sizes or {})
    names = sorted(REPRODUCTIONS.names(), key=lambda n: n != FIRST)
    entries = []
    with atomic_output_dir(out) as tmp:
        for i, name in enumerate(names, 1):
            log.info("reproduction %d/%d: %s", i, len(names), name)
            (tmp / name).mkdir()
            experiment = REPRODUCTIONS.get(name)(mode="quick", sizes=sizes.get(name), progress=progress)
            result = experiment.run(tmp / name)
            with phase(f"{name}: report", log):
                write_report(result, tmp / name)
            entries.append((name, result))
        write_text(tmp / "index.html", index_page(entries, root=tmp))
    return out
