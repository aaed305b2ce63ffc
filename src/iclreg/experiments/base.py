"""The reproduction pattern: a plan of training runs and an analysis that turns them into claims.

A paper module registers one :class:`Experiment` subclass and provides two methods:

    plan(sizes)          -> {name: ExperimentConfig}   every training run, declared up front
    analyse(runs, sizes) -> [Section]                  measurements, claims, text, figures as data

The base runs the skeleton once (``run``): the timer, the runs directory, training every run of
the plan through ``train.train_plan`` (members of one shape share an ensemble; finished runs in
``--runs DIR`` are reused, stopped ones resume) and the analysis. An analysis draws nothing: its
figures are :class:`~iclreg.report.plots.Plot` (a kind and its numbers). Sizes are a frozen
dataclass per mode (``modes``) passed to the constructor, so a test can pass toy sizes.
``experiments.runner`` saves the measurements (``experiments.saved``) and draws the report from
them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch

from ..logs import phase
from ..registry import Registry
from ..report.plots import Plot
from ..report.references import Reference
from ..train import ExperimentConfig, load_run, resolve, train_plan
from ..train.metrics import read_metrics
from ..train.run import iter_checkpoints
from .claims import Claim

log = logging.getLogger(__name__)
S = TypeVar("S")  # a reproduction's sizes: a frozen dataclass of its own
REPRODUCTIONS: Registry[Experiment] = Registry("paper")
NO_CONTROL = "none listed"  # the report's marker for a claim without a negative control


@dataclass
class Section:
    """One part of a report: a title, Markdown text, its claims and its figures (file name ->
    plot, drawn by the runner and shown below the text)."""

    title: str
    text: list[str] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    figures: dict[str, Plot] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # raw numbers, written to results.json


@dataclass
class Reproduction:
    """The outcome of a reproduction: claims, sections (figures as plots) and the time it took."""

    paper: str
    title: str
    mode: str
    sections: list[Section] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    references: tuple[Reference, ...] = ()  # the works its claims cite

    @property
    def claims(self) -> list[Claim]:
        return [c for s in self.sections for c in s.claims]

    def to_json(self) -> dict[str, Any]:
        """``{"paper", "mode", "claims": [{"id", "statement", "published", "measured",
        "tolerance", "holds", "reason", "control"}]}``."""
        return {"paper": self.paper, "mode": self.mode, "claims": [c.to_json() for c in self.claims]}


def with_control(claim: Claim, controls: Mapping[str, str]) -> Claim:
    """``claim`` with its negative control from ``controls`` (``NO_CONTROL`` when none is listed)."""
    return replace(claim, control=claim.control or controls.get(claim.id, NO_CONTROL))


class Runs(Mapping[str, Path]):
    """The trained runs of a plan: name -> run directory, with loaders."""

    def __init__(self, dirs: Mapping[str, Path], device: str) -> None:
        self._dirs, self.device = dict(dirs), device

    def __getitem__(self, name: str) -> Path:
        return self._dirs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dirs)

    def __len__(self) -> int:
        return len(self._dirs)

    def model(self, name: str) -> torch.nn.Module:
        """The trained model of run ``name`` (latest checkpoint, eval mode)."""
        return load_run(self[name], device=self.device)[0]

    def metrics(self, name: str, key: str) -> list[dict[str, Any]]:
        """The metric records of run ``name`` that hold ``key`` (``loss``, ``eval``)."""
        return [r for r in read_metrics(self[name] / "metrics.jsonl") if key in r]

    def checkpoints(self, name: str, initial: bool = False) -> Iterator[tuple[int, torch.nn.Module]]:
        """(step, model) at each checkpoint of run ``name`` (``train.checkpoint.iter_checkpoints``)."""
        return iter_checkpoints(self[name], device=self.device, initial=initial)


@dataclass(frozen=True)
class Experiment(Generic[S]):
    """Base of reproductions. ``mode``: ``quick`` (2 CPU cores, minutes) or ``full`` (the paper's
    sizes, a GPU job); ``sizes`` default to ``modes[mode]``.

    ``runs``: a directory that keeps the training runs: run again with the same ``runs`` and a
    reproduction stopped part way (a time limit, Ctrl-C) reuses the finished runs and continues
    the others from their latest checkpoints. Without it the runs go to ``out/runs``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    modes: ClassVar[dict[str, Any]]  # mode -> sizes (an S; a ClassVar cannot name the type variable)
    toy: ClassVar[Any]  # the smallest sizes that run every part (tests), an S
    references: ClassVar[tuple[Reference, ...]] = ()  # the works its claims and texts cite
    # claim id -> its negative control: a perturbation that breaks the claimed mechanism, under
    # which the claim must miss (tests/experiments/test_<paper>_controls.py runs each at toy size)
    controls: ClassVar[Mapping[str, str]] = {}
    mode: str = "quick"
    sizes: S | None = None
    device: str = "cpu"
    runs: str | None = None
    progress: bool = False
    backend: Any = "local"  # where the plan's ensembles train: train.backends.Backend or its name

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    @property
    def resolved_sizes(self) -> S:
        return self.modes[self.mode] if self.sizes is None else self.sizes

    def plan(self, sizes: S) -> dict[str, ExperimentConfig]:
        """Every training run, by name (a name may hold ``/``: a subdirectory)."""
        return {}

    def analyse(self, runs: Runs, sizes: S) -> list[Section]:  # pragma: no cover - abstract
        raise NotImplementedError

    def config(self, task: str, model: str, **sections: dict[str, Any]) -> ExperimentConfig:
        """An experiment config built in memory; ``run.device`` is this reproduction's device."""
        # the report draws the figures: a run's own eval.png and loss.png would cost more time
        # than a toy run's training
        run = {"device": self.device, "figures": False, **sections.pop("run", {})}
        return resolve({"task": task, "model": model, **sections, "run": run})

    def runs_dir(self, out: Path) -> Path:
        """Where the training runs go: ``runs/<mode>`` when kept, else ``out/runs``."""
        return Path(self.runs) / self.mode if self.runs else out / "runs"

    def run(self, out: Path) -> Reproduction:
        """Train the plan (into ``runs_dir(out)``) and analyse it; the runner draws the report."""
        start = time.perf_counter()
        sizes = self.resolved_sizes
        plan = self.plan(sizes)
        runs = f"{len(plan)} run{'' if len(plan) == 1 else 's'}"
        with phase(f"{self.name}: training the plan ({runs})", log) if plan else nullcontext():
            dirs = train_plan(plan, self.runs_dir(out), progress=self.progress, backend=self.backend)
        with phase(f"{self.name}: analysis", log):
            sections = self.analyse(Runs(dirs, self.device), sizes)
        for section in sections:
            section.claims = [with_control(c, self.controls) for c in section.claims]
        return Reproduction(paper=self.name, title=self.title, mode=self.mode, sections=sections,
                            figures=[name for s in sections for name in s.figures],
                            seconds=time.perf_counter() - start, references=self.references)
