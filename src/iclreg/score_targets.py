"""``iclreg score``: what is scored (a run, a sweep's members, a Garg et al. checkpoint) and the
``--json`` object; the measurement itself is ``analysis/score.py``, the suites
``analysis/score_suite.py``. It loads runs, so it sits above ``train`` (``analysis`` sits below it).

A target is an iclreg run directory (its latest checkpoint; the base is its training task), a
sweep directory or a directory of runs such as a reproduction's ``seed0``, ``seed1``, ... (every
member, plus the mean over seeds of the members that differ only in ``train.seed`` or
``seedS``) or a checkpoint of Garg et al.'s code (``state.pt``, or a directory holding one;
``models.load_garg_checkpoint``) whose base is their linear-regression task: w ~ N(0, I), no
noise, n from the ``config.yaml`` beside it (``training.curriculum.points.end``) or else their
n = 2d + 1 (41 at d = 20).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from scipy import stats

from .analysis.score import Model, capability_info, paired_difference, score, strict
from .analysis.score_suite import Base, Suite
from .errors import UsageError, check
from .spec import _split_top_level

SEED_KEY = "train.seed"
DEFAULT_SAMPLES = 512
# parameter-tokens a default score may cost: a GPT-2 of Garg et al.'s standard size (9.5M
# parameters, 738 tokens per prompt over standard-v1) gets 64 prompts, about a minute on 2 cores
BUDGET = 6e11
MIN_SAMPLES = 64


def default_samples(targets: list[Target], suite: Suite) -> int:
    """``--samples`` by default: :data:`DEFAULT_SAMPLES` prompts per capability, halved until the
    models' parameters times the suite's tokens (2 n per prompt) fit :data:`BUDGET`, at least
    :data:`MIN_SAMPLES`."""
    params = sum(sum(p.numel() for p in m.parameters()) for t in targets for m in t.models.values()
                 if isinstance(m, torch.nn.Module))
    tokens = sum(2 * c.length * targets[0].base.n for c in suite.capabilities)
    samples = DEFAULT_SAMPLES
    while samples > MIN_SAMPLES and params * tokens * samples > BUDGET:
        samples //= 2
    return samples


@dataclass(frozen=True)
class Target:
    """What ``iclreg score`` evaluates: labelled models sharing one base, and their dtype."""

    path: str
    models: dict[str, Model]
    base: Base
    kind: str  # "run", "sweep" or "checkpoint"


def _garg_n(path: Path, d: int) -> int:
    """The training length of a Garg et al. run: their config's curriculum end, else 2d + 1."""
    config = path.parent / "config.yaml"
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) if config.is_file() else None
        end = data["training"]["curriculum"]["points"]["end"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return 2 * d + 1
    return end if isinstance(end, int) and not isinstance(end, bool) and end >= 1 else 2 * d + 1


def _checkpoint(path: Path) -> Target:
    from .models.garg import load_garg_checkpoint

    model = load_garg_checkpoint(path)
    d = model.config.d
    return Target(str(path), {path.parent.name or str(path): model}, Base(d, _garg_n(path, d)), "checkpoint")


def load_target(path: str | Path) -> Target:
    """The models at ``path`` (module docstring); anything else is a one-line :class:`UsageError`."""
    from .analysis.evaluate import _Autocast
    from .tasks import build as build_task
    from .train import load_run
    from .train.rundir import is_sweep, read_sweep

    p = Path(path)
    check(p.exists(), f"'{path}' does not exist; give a run directory, a sweep or a Garg et al. checkpoint")
    if p.is_file():
        return _checkpoint(p)
    if (p / "state.pt").is_file() and not (p / "checkpoints").is_dir():  # a run of Garg et al.'s code
        return _checkpoint(p / "state.pt")
    if is_sweep(p):
        names = read_sweep(p)["members"]
    elif not (p / "config.yaml").is_file() and (runs := sorted(q.name for q in p.iterdir()
                                                               if (q / "config.yaml").is_file())):
        names = runs  # a directory of runs (a reproduction's group: seed0, seed1, ...)
    else:
        names = [None]
    models: dict[str, Model] = {}
    bases = set()
    for name in names:
        model, config = load_run(p / name if name else p)
        amp = config.run.amp == "bf16"
        models[name or p.name or str(p)] = _Autocast(model, True) if amp else model
        bases.add(Base.of(build_task(config.task)))
    check(len(bases) == 1, f"the members of sweep '{path}' were trained on tasks of different d, n or "
                           "scales; score them one by one")
    return Target(str(path), models, bases.pop(), "sweep" if names != [None] else "run")


def _is_seed(part: str) -> bool:
    """``train.seed=S`` (a sweep member's name) or ``seedS`` (a reproduction's run)."""
    return part.startswith(SEED_KEY + "=") or (part.startswith("seed") and part[4:].isdigit())


def seed_groups(labels: list[str]) -> dict[str, list[str]]:
    """Members that differ only in their seed (two or more), keyed by the rest of the name."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        try:
            pairs = _split_top_level(label)
        except UsageError:
            continue
        if not any(_is_seed(pair) for pair in pairs):
            continue
        rest = ",".join(pair for pair in pairs if not _is_seed(pair))
        groups.setdefault(f"{rest or 'all'} (mean of seeds)", []).append(label)
    return {key: members for key, members in groups.items() if len(members) >= 2}


def seed_mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean of members' scores on one capability and its 95% t interval across seeds."""
    kept = [r for r in rows if r["applicable"]]
    if not kept:
        return {"applicable": False, "reason": rows[0]["reason"] if rows else "no member"}
    rows = kept
    out: dict[str, Any] = {"applicable": True, "members": len(rows)}
    for key in ("excess", "normalised", "icl_regression_score"):
        values = torch.tensor([r[key] for r in rows], dtype=torch.float64)
        mean = float(values.mean())
        half = (float(stats.t.ppf(0.975, len(rows) - 1)) * float(values.std()) / math.sqrt(len(rows))
                if len(rows) > 1 else math.inf)
        out[key], out[f"{key}_ci95"] = mean, [mean - half, mean + half]
    return out


def units(target: Target) -> dict[str, list[str]]:
    """What a target contributes to ``score A B``: a run or checkpoint itself; a sweep its seed
    groups (keyed as in ``seed_means``) and every member outside one (keyed by its name)."""
    labels = list(target.models)
    if target.kind != "sweep":
        return {label: [label] for label in labels}
    groups = seed_groups(labels)
    grouped = {m for members in groups.values() for m in members}
    return groups | {label: [label] for label in labels if label not in grouped}


def pairs(a: dict[str, list[str]], b: dict[str, list[str]], paths: list[str]) -> list[tuple[str, str]]:
    """The units of A and B that ``score A B`` compares: the one against the other when each
    target is one unit (a run, or a sweep over the seed only), else those of the same name."""
    if len(a) == 1 and len(b) == 1:
        return [(next(iter(a)), next(iter(b)))]
    common = [(u, u) for u in a if u in b]
    check(bool(common), f"score A B: '{paths[0]}' and '{paths[1]}' have no member or seed group of the "
                        "same name to pair; give two runs, two sweeps over the seed only, or sweeps over the "
                        "same grid")
    return common


def _merge(targets: list[Target]) -> tuple[dict[str, Model], list[dict[str, list[str]]]]:
    """Every target's models under unique labels (a repeated one gets ' (PATH)'), and each
    target's units under those labels."""
    models: dict[str, Model] = {}
    per_target: list[dict[str, list[str]]] = []
    for t in targets:
        rename = {}
        for label, model in t.models.items():
            rename[label] = label if label not in models else f"{label} ({t.path})"
            models[rename[label]] = model
        per_target.append({unit: [rename[m] for m in members] for unit, members in units(t).items()})
    return models, per_target


def score_targets(targets: list[Target], suite: Suite, samples: int | None, seed: int) -> dict[str, Any]:
    """The ``--json`` object of ``iclreg score`` for one target, or two compared (``A B``).

    ``compare --json``'s shape: ``samples``, ``seed`` and ``results`` (model label -> capability
    -> row), with ``suite``, ``base`` (the training setting), ``capabilities`` (each one's task,
    n, reference and the references' curves), ``seed_means`` for sweeps and ``differences``
    (a list of A-minus-B comparisons, paired on the prompts: :func:`pairs`) for two targets.
    Strict JSON (:func:`score.strict`): numbers that are not finite are null, with
    ``"diverges": true`` on their row. ``samples`` None: :func:`default_samples`.
    """
    base = targets[0].base
    samples = default_samples(targets, suite) if samples is None else samples
    models, per_target = _merge(targets)
    matched: list[tuple[str, str]] = []
    if len(targets) == 2:
        check(targets[1].base.d == base.d, f"cannot compare a model of d={base.d} with one of "
                                           f"d={targets[1].base.d}: they take different prompts")
        matched = pairs(per_target[0], per_target[1], [t.path for t in targets])
    results, measured = score(models, suite.capabilities, base, samples, seed)
    out: dict[str, Any] = {
        "suite": suite.name, "targets": [t.path for t in targets], "samples": samples, "seed": seed,
        "base": vars(base).copy(), "capabilities": {name: capability_info(m) for name, m in measured.items()},
        "results": results,
    }
    means: dict[str, Any] = {}
    for t, unit_map in zip(targets, per_target, strict=True):
        for group, members in unit_map.items():
            if len(members) >= 2:
                key = group if group not in means else f"{group} ({t.path})"
                means[key] = {c: seed_mean([results[m][c] for m in members]) for c in measured}
    if means:
        out["seed_means"] = means
    if matched:
        a_units, b_units = per_target
        out["differences"] = [
            {"a": a, "b": b, "a_target": targets[0].path, "b_target": targets[1].path,
             "a_members": a_units[a], "b_members": b_units[b],
             "results": {name: paired_difference(m, a_units[a], b_units[b]) for name, m in measured.items()}}
            for a, b in matched]
    return strict(out)


def check_targets(paths: list[str]) -> None:
    """One or two targets."""
    check(1 <= len(paths) <= 2,
          f"give one target (RUN_DIR or CHECKPOINT) or two to compare, got {len(paths)}")


def labels(result: Mapping[str, Any]) -> list[str]:
    """The model labels of a result, in order."""
    return list(result["results"])
