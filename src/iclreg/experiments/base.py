"""The reproduction pattern: claims with published and measured values, figures, a report.

Every paper reproduction is a registered frozen dataclass (``quick``, ``device``) whose
``run(out)`` computes its numbers, writes figures and raw data into ``out`` and returns a
:class:`Reproduction`: for each claim of the paper the published value or statement, ours,
the tolerance and whether it holds. A claim that does not hold is reported as such.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..registry import Registry
from ..report import write_text

REPRODUCTIONS: Registry[Experiment] = Registry("paper")


@dataclass
class Claim:
    """One claim of a paper, checked by this run."""

    id: str
    statement: str
    published: Any
    measured: Any
    tolerance: str
    holds: bool
    figure: str | None = None


@dataclass
class Reproduction:
    """The outcome of a reproduction: claims, Markdown sections and figure files."""

    paper: str
    title: str
    mode: str
    claims: list[Claim] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """``{"paper", "mode", "claims": [{"id", "statement", "published", "measured",
        "tolerance", "holds"}]}``."""
        keys = ("id", "statement", "published", "measured", "tolerance", "holds")
        return {"paper": self.paper, "mode": self.mode,
                "claims": [{k: dataclasses.asdict(c)[k] for k in keys} for c in self.claims]}


@dataclass(frozen=True)
class Experiment:
    """Base of reproductions: ``quick`` runs on 2 CPU cores in minutes; full mode uses the
    paper's sizes (a GPU job).

    ``runs``: a directory that keeps the training runs (reproductions with ``resumable``): run
    again with the same ``runs``, a reproduction stopped part way (a time limit, Ctrl-C)
    continues from the runs' latest checkpoints and reuses the finished ones.
    """

    name: ClassVar[str]
    resumable: ClassVar[bool] = False
    quick: bool = False
    device: str = "cpu"
    runs: str | None = None

    def runs_dir(self, out: Path) -> Path:
        """Where the training runs go: ``runs/<quick|full>`` when kept, else ``out/runs``."""
        return Path(self.runs) / ("quick" if self.quick else "full") if self.runs else out / "runs"

    def run(self, out: Path, progress: bool = False) -> Reproduction:
        raise NotImplementedError


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|")


def write_report(result: Reproduction, out: Path) -> None:
    """``report.md`` (claims table, sections, figures) and ``claims.json`` in ``out``."""
    held = sum(c.holds for c in result.claims)
    lines = [
        f"# {result.title}",
        "",
        f"Mode: **{result.mode}** ({result.seconds:.0f} s). {held} of {len(result.claims)} "
        "claims hold. Every measured number is computed by this run.",
        "",
        "| claim | statement | published | ours | tolerance | holds |",
        "|---|---|---|---|---|---|",
    ]
    for c in result.claims:
        mark = "yes" if c.holds else "**no**"
        lines.append(f"| {c.id} | {_cell(c.statement)} | {_cell(c.published)} | "
                     f"{_cell(c.measured)} | {_cell(c.tolerance)} | {mark} |")
    lines += ["", *result.sections]
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_text(out / "claims.json", json.dumps(result.to_json(), indent=1))
