"""Extending a run to more steps, and leaving a finished run alone.

``iclreg train --resume RUN_DIR train.steps=N`` trains a run (or every member of a sweep) on
from its latest checkpoint to N steps; ``--resume`` of a finished run or sweep without a change
says so and writes nothing (not even the lock's note).

The schedule rule. The learning rate at step s (0-based) of a run planned for T steps is
``lr * lr_factor(s, T)`` (``optim.py``): a warm-up, then constant or a cosine or linear decay
that reaches ``min_lr_ratio`` at step T. Extending the run to N > T re-plans it for N steps:
from the extension point s0 (the step of the checkpoint it resumes from; T for a finished run)
every step s >= s0 trains at ``lr * lr_factor(s, N)``, while the steps before s0 keep the rates
they were trained at (``metrics.jsonl`` records them). So a constant rate, or a warm-up the
run had passed, goes on unchanged: the extended run ends bit for bit as a run planned for N
steps from the start (prompts are a function of (seed, step); the curriculum of the step
alone). A decay that had reached its floor at T starts again from the N-step schedule's value
at s0 and decays to the floor at N, a warm restart (Loshchilov & Hutter, SGDR, arXiv
1608.03983); for cosine with warm-up w and ``decay = 1`` that is, for s >= s0,

    lr(s) = lr * (r + (1 - r) * (1 + cos(pi * (s - w) / (N - w))) / 2),   r = min_lr_ratio.

What is written. Once the metrics and the latest checkpoint have been read (a damaged run is
refused with nothing changed), the extension removes ``eval.json`` (the run is unfinished from
then on), then rewrites ``config.yaml`` atomically with ``train.steps = N`` and T appended to
``train.extended_from``; checkpoints written under an earlier plan stay valid
(``config.planned_configs``). A kill between the two leaves the old plan, which ``--resume``
finishes (re-evaluating it); a kill after them, the new plan, which ``--resume`` carries on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..errors import check
from ..spec import parse_value
from .checkpoint import checkpoint_dirs, checkpoint_step, load_checkpoint
from .config import ExperimentConfig, save_config
from .durable import write_run_file, writing
from .lock import run_lock
from .metrics import TIMING, read_metrics
from .run import read_run_config
from .rundir import diverged, is_sweep, read_sweep, summary_rows

log = logging.getLogger(__name__)


def resume_steps(arguments: Sequence[str], sweeps: Sequence[str] | None = None) -> int | None:
    """The N of ``train.steps=N``, the one override ``--resume`` takes (``arguments``: the
    command line's CONFIG and overrides); None when not given.

    Raises:
        UsageError: ``sweeps`` given, an argument is not key=value (a CONFIG), names another
            key, or N is not a positive whole number.
    """
    steps = None
    stored = "--resume continues a run with its stored config; give no CONFIG or --sweep (train.steps=N " \
             "extends the run)"
    check(not sweeps, stored)
    for text in arguments:
        key, eq, raw = text.partition("=")
        check(bool(eq), stored)
        check(key.strip() == "train.steps",
              f"--resume cannot change {key.strip() or repr(text)}: only train.steps can change on "
              "resume (train.steps=N extends the run); start a new run for any other change")
        value = parse_value(raw)
        check(type(value) is int and value >= 1,
              f"train.steps must be a whole number of steps, at least 1, got {raw.strip()!r}")
        check(steps is None, "train.steps is given twice")
        steps = value
    return steps


def extended_config(config: ExperimentConfig, steps: int | None) -> ExperimentConfig:
    """``config`` planned for ``steps`` (None, or its own steps: unchanged), the earlier plan
    appended to ``train.extended_from``.

    Raises:
        UsageError: ``steps`` is fewer than the run's steps (a run cannot be shortened).
    """
    old = config.train.steps
    if steps is None or steps == old:
        return config
    check(steps > old, f"train.steps={steps} is fewer than the run's {old} steps: a run can be "
                       f"extended, not shortened; give train.steps above {old}")
    train = dataclasses.replace(config.train, steps=steps,
                                extended_from=(*config.train.extended_from, old))
    return dataclasses.replace(config, train=train)


@contextlib.contextmanager
def extension(run_dir: Path, stored: ExperimentConfig, config: ExperimentConfig,
              writes: bool = True) -> Iterator[None]:
    """Hold the run's lock for the block, having re-planned it from ``stored`` to ``config``
    (:func:`write_extension`). Nothing happens when the two are equal, or in a process that
    does not write (a DDP rank > 0)."""
    if stored == config or not writes:
        yield
        return
    check_extensible(run_dir, stored)
    with run_lock(run_dir):
        write_extension(run_dir, stored, config)
        yield


def check_extensible(run_dir: Path, stored: ExperimentConfig) -> None:
    """Read now what the resume after an extension reads, so that a damaged run is refused
    before its extension removes ``eval.json`` and rewrites ``config.yaml``: the metrics files
    (``metrics.py``) and the latest checkpoint (checksums and config).

    Raises:
        UsageError: one of them cannot be read or is damaged.
    """
    for name in ("metrics.jsonl", TIMING):
        read_metrics(run_dir / name)
    dirs = checkpoint_dirs(run_dir)
    if dirs:
        load_checkpoint(dirs[-1], stored.to_dict())


def write_extension(run_dir: Path, stored: ExperimentConfig, config: ExperimentConfig) -> None:
    """Re-plan the run in ``run_dir`` from ``stored`` to ``config`` (:func:`extended_config`):
    remove ``eval.json``, then rewrite ``config.yaml``. Call it holding the run's lock; a run
    already re-planned is left as it is.

    Raises:
        UsageError: another process changed ``config.yaml`` since ``stored`` was read.
    """
    current = read_run_config(run_dir)
    if current == config:
        return
    check(current == stored, f"'{run_dir}/config.yaml' changed while it was being extended; "
                             "run the command again")
    log.info("extending %s from %d to %d steps", run_dir, stored.train.steps, config.train.steps)
    with writing(run_dir / "eval.json", run_dir):
        (run_dir / "eval.json").unlink(missing_ok=True)
    write_run_file(run_dir / "config.yaml", save_config(config), run_dir)


def finished_step(run_dir: Path, config: ExperimentConfig, verify: bool = True) -> int | None:
    """The step a run finished at: its ``eval.json`` is written and its latest checkpoint is
    at ``train.steps``; None for a run with more to train. ``verify``: load that checkpoint too
    (checksums and config), as a resume would.

    Raises:
        UsageError: (``verify``) the final checkpoint is damaged or another run's.
    """
    if not (run_dir / "eval.json").is_file():
        return None
    dirs = checkpoint_dirs(run_dir)
    if not dirs or checkpoint_step(dirs[-1]) != config.train.steps:
        return None
    if verify:
        load_checkpoint(dirs[-1], config.to_dict())
    return config.train.steps


def _hint(path: Path, step: int) -> str:
    return f"nothing to do (extend it with: iclreg train --resume {path} train.steps=M, M > {step})"


def run_message(run_dir: Path, config: ExperimentConfig, steps: int | None = None) -> str | None:
    """What ``--resume`` of a finished run given no change (``steps`` None or the run's own)
    says; None when there is something to train. Reads only."""
    if steps not in (None, config.train.steps):
        return None
    step = finished_step(run_dir, config)
    return None if step is None else f"run {run_dir} is finished at step {step}; {_hint(run_dir, step)}"


def sweep_message(out: Path, spec: dict[str, Any], steps: int | None = None) -> str | None:
    """What ``--resume`` of a finished sweep (``sweep.yaml``: ``spec``) given no change says:
    every member finished (given no other ``steps``) or diverged, at least one finished, and
    ``summary.json`` up to date; None otherwise. Reads only.

    Raises:
        UsageError: ``steps`` cannot extend the sweep (:func:`extend_members`).
    """

    dirs = [out / name for name in spec["members"]]
    if steps is None and any(not (d / "eval.json").is_file() and not diverged(d) for d in dirs):
        return None  # a member to train: known without reading every config
    written = [d for d in dirs if (d / "config.yaml").is_file()]
    configs = {d: read_run_config(d) for d in written if not diverged(d)}
    _check_extension(out, spec, list(configs.values()), steps)
    if len(written) < len(dirs):
        return None
    if not configs or any(steps not in (None, c.train.steps) or finished_step(d, c, verify=False) is None
                          for d, c in configs.items()):
        return None
    for d, c in configs.items():  # every member is finished: now read their final checkpoints
        finished_step(d, c)
    try:
        current = (out / "summary.csv").is_file() and _same(json.loads((out / "summary.json").read_text()),
                                                           summary_rows(out))
    except (OSError, UnicodeDecodeError, ValueError):
        current = False
    if not current:
        return None
    at = sorted({c.train.steps for c in configs.values()})
    where = f"step {at[0]}" if len(at) == 1 else f"steps {at[0]} to {at[-1]}"
    dropped = len(dirs) - len(configs)
    members = f"{len(configs)} member{'s' * (len(configs) > 1)} at {where}" + \
        (f", {dropped} diverged" if dropped else "")
    return f"sweep {out} is finished ({members}); {_hint(out, at[-1])}"


def _same(a: object, b: object) -> bool:
    """Equal as JSON (a NaN equals a NaN)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def nothing_to_do(path: str | Path, steps: int | None = None) -> str | None:
    """The one-line message for ``--resume`` of a finished run or sweep given no change;
    None when there is something to train. Reads only: a finished run's files are untouched.

    Raises:
        UsageError: ``path`` is no run or sweep, or ``steps`` would shorten the run.
    """

    path = Path(path)
    if is_sweep(path):
        return sweep_message(path, read_sweep(path), steps)
    config = read_run_config(path)
    extended_config(config, steps)  # refuses a shorter run before anything is read
    return run_message(path, config, steps)


def _check_extension(out: Path, spec: dict[str, Any], configs: Sequence[ExperimentConfig],
                     steps: int | None) -> None:
    """Refuse ``steps`` for a sweep whose grid varies ``train.steps``, or that would shorten a
    member (``configs``)."""
    if steps is None:
        return
    grid = spec.get("grid") or spec.get("sweep") or []
    swept = any(str(axis).partition("=")[0].strip() == "train.steps" for axis in grid)
    check(not swept, f"sweep {out} varies train.steps: extend its members one by one with "
                     f"iclreg train --resume {out}/MEMBER train.steps=N")
    for config in configs:
        extended_config(config, steps)


def extend_members(out: Path, members: list[tuple[str, ExperimentConfig]], spec: dict[str, Any],
                   steps: int | None) -> list[tuple[str, ExperimentConfig]]:
    """Re-plan every member of sweep ``out`` (``sweep.yaml``: ``spec``) that did not diverge for
    ``steps`` (None: unchanged), all checked before any is written; call it holding the
    sweep's lock.

    Raises:
        UsageError: the grid varies ``train.steps`` (extend its members one by one), or
            ``steps`` would shorten a member.
    """

    if steps is None:
        return members
    kept = [(name, config) for name, config in members if not diverged(out / name)]
    _check_extension(out, spec, [config for _, config in kept], steps)
    for name, config in kept:
        check_extensible(out / name, config)
    planned = dict(members) | {name: extended_config(config, steps) for name, config in kept}
    for name, stored in members:
        if planned[name] != stored:
            write_extension(out / name, stored, planned[name])
    return [(name, planned[name]) for name, _ in members]
