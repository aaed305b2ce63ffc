"""Experiment configs: a YAML or TOML file mapped onto frozen, validated dataclasses.

An experiment names its task and model by SPEC (``gaussian:d=5,n=41``) or mapping and sets the
optimiser, schedule, curriculum, training, evaluation and run sections; ``key=value`` overrides
address fields by dotted path (``optimizer.lr=3e-3``). Unknown keys and bad values raise a
:class:`~iclreg.errors.UsageError` naming the key. A run directory stores the resolved config.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ..errors import UsageError, check
from ..estimators import ESTIMATORS
from ..models import MODELS
from ..registry import _type_name, coerce
from ..resources import MAX_SAMPLES
from ..spec import Spec, parse_spec, parse_value
from ..tasks import TASKS, counter
from ..tasks.base import check_seed
from ..yamlfile import load as load_yaml
from .curriculum import CurriculumConfig, Ramp
from .trackers import check_tracker_specs


@dataclass(frozen=True)
class OptimizerConfig:
    """Attributes:
    name: adam, adamw or sgd.
    lr: peak learning rate.
    weight_decay: L2 (adam, sgd) or decoupled (adamw) weight decay.
    betas: Adam's (beta1, beta2).
    momentum: SGD momentum.
    clip: clip the gradient norm to this value (none: no clipping).
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0
    clip: float | None = None

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optimizer.lr must be positive, got {self.lr}")
        check(self.weight_decay >= 0, f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")
        check(all(0 <= b < 1 for b in self.betas), f"optimizer.betas must lie in [0, 1), got {self.betas}")
        check(self.clip is None or self.clip > 0, f"optimizer.clip must be positive, got {self.clip}")


@dataclass(frozen=True)
class ScheduleConfig:
    """Attributes:
    name: constant, cosine or linear decay after the warm-up.
    warmup: steps of linear warm-up from 0.
    min_lr_ratio: final learning rate / peak for cosine and linear.
    decay: fraction of the steps after the warm-up over which cosine and linear decay; the
        learning rate holds at its peak before (warm-up, stable, decay). 1: decay throughout.
    """

    name: Literal["constant", "cosine", "linear"] = "constant"
    warmup: int = 0
    min_lr_ratio: float = 0.0
    decay: float = 1.0

    def __post_init__(self) -> None:
        check(self.warmup >= 0, f"schedule.warmup must be >= 0, got {self.warmup}")
        check(0 <= self.min_lr_ratio <= 1,
              f"schedule.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        check(0 < self.decay <= 1, f"schedule.decay must lie in (0, 1], got {self.decay}")


@dataclass(frozen=True)
class TrainConfig:
    """Attributes:
    steps: optimiser steps.
    batch: prompts per step (fresh prompts every step, drawn from (seed, step)).
    loss: ``all`` (mean over every prefix, Garg et al.), ``query`` (last position only) or
        ``chain`` (teacher-forced chain of thought, for models that emit iterates: ``cot``).
    seed: seed of the initialisation and of the prompts.
    sampler: how an ensemble draws its members' prompts: ``stream`` (one ``task.sample`` per
        member, from a generator seeded by (seed, step)) or ``counter`` (every member in one
        vectorised draw keyed by (seed, step): ``tasks/counter.py``; gaussian and sparse tasks).
        Either way a member's prompts do not depend on the ensemble; the two give different ones.
    extended_from: the ``steps`` the run was planned for before each extension, oldest first
        (``iclreg train --resume RUN_DIR train.steps=N`` appends to it; empty for a run never
        extended). The learning-rate schedule is a function of (step, steps): from the
        extension point on, the run follows the schedule of a run planned for ``steps``; the
        steps trained before keep the rates of their plan, which ``metrics.jsonl`` records
        (``extend.py``).
    """

    steps: int = 1000
    batch: int = 64
    loss: Literal["all", "query", "chain"] = "all"
    seed: int = 0
    sampler: Literal["stream", "counter"] = "stream"
    extended_from: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check(self.steps >= 1, f"train.steps must be at least 1, got {self.steps}")
        check(self.batch >= 1, f"train.batch must be at least 1, got {self.batch}")
        check_seed(self.seed, "train.seed")
        plans = [*self.extended_from, self.steps]
        check(plans[0] >= 1 and all(a < b for a, b in zip(plans, plans[1:], strict=False)),
              f"train.extended_from must rise from at least 1 to below train.steps={self.steps}, got "
              f"{list(self.extended_from)}; it is written by --resume RUN_DIR train.steps=N")


@dataclass(frozen=True)
class EvalConfig:
    """Attributes:
    every: evaluate every this many steps (0: only at the end).
    samples: prompts per evaluation.
    estimators: estimator SPECs shown beside the model.
    n: prompt length of the evaluation (none: the task's n).
    """

    every: int = 0
    samples: int = 1280
    estimators: tuple[str, ...] = ("ols",)
    n: int | None = None

    def __post_init__(self) -> None:
        check(self.every >= 0, f"eval.every must be >= 0, got {self.every}")
        check(self.samples >= 2, f"eval.samples must be at least 2, got {self.samples}")
        check(self.samples <= MAX_SAMPLES, f"eval.samples must be at most {MAX_SAMPLES:,} (a bound "
                                           f"on the run time), got {self.samples:,}")
        check(self.n is None or self.n >= 1, f"eval.n must be at least 1, got {self.n}")
        check(len(set(self.estimators)) == len(self.estimators),
              f"eval.estimators names an estimator twice: {list(self.estimators)}")


@dataclass(frozen=True)
class RunConfig:
    """Attributes:
    device: cpu or cuda.
    dtype: float32 or float64 parameters and prompts.
    amp: ``bf16`` autocast on the GPU, or ``none``.
    compile: wrap the model in torch.compile.
    cuda_graph: capture the whole training step as a CUDA graph (static shapes, GPU only).
    checkpoint_every: steps between checkpoints (the last step is always saved).
    log_every: steps between metric lines.
    keep: checkpoints kept on disk (the newest).
    trackers: where the metrics also go: ``tensorboard``, ``wandb`` (offline unless
        ``wandb:mode=online``); optional extras (``.venv/bin/pip install -e '.[wandb]'``).
    figures: draw the finished run's ``eval.png`` and ``loss.png`` (with PDFs); reproductions
        turn it off (their reports draw the figures; a toy run's two cost more than its training).
    engine: ``auto`` (the fused step, ``train/fused``, where it applies, else autograd),
        ``autograd`` (always torch's autograd and optimiser) or ``fused`` (refused elsewhere).
    """

    device: str = "cpu"
    dtype: Literal["float32", "float64"] = "float32"
    amp: Literal["none", "bf16"] = "none"
    compile: bool = False
    cuda_graph: bool = False
    checkpoint_every: int = 1000
    log_every: int = 50
    keep: int = 2
    trackers: tuple[str, ...] = ()
    figures: bool = True
    engine: Literal["auto", "autograd", "fused"] = "auto"

    def __post_init__(self) -> None:
        check(self.checkpoint_every >= 1, "run.checkpoint_every must be at least 1, got "
                                          f"{self.checkpoint_every}")
        check(self.log_every >= 1, f"run.log_every must be at least 1, got {self.log_every}")
        check(self.keep >= 1, f"run.keep must be at least 1, got {self.keep}")
        check_tracker_specs(self.trackers)
        check(not self.cuda_graph or self.device.startswith("cuda"), "run.cuda_graph needs run.device=cuda")


LEFT_OUT = {("train", "sampler"): "stream", ("train", "extended_from"): [], ("run", "trackers"): [],
            ("run", "figures"): True, ("run", "engine"): "auto"}


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: what to learn, with what, and how to run it."""

    task: str
    model: str
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        task = TASKS.build(self.task)  # validates the SPECs
        model = MODELS.build(self.model)
        check(
            getattr(model, "d", task.d) == task.d,
            f"model d={getattr(model, 'd', None)} does not match task d={task.d}",
        )
        check(
            not self.run.cuda_graph or (self.curriculum.d is None and self.curriculum.n is None),
            "run.cuda_graph needs static shapes: remove the curriculum or set run.cuda_graph=false",
        )
        check(
            not self.run.cuda_graph or self.optimizer.name != "sgd" or self.schedule.name == "constant",
            "run.cuda_graph with sgd needs schedule.name=constant (or use adam/adamw)",
        )
        check((self.train.loss == "chain") == model.chain,
              f"train.loss=chain is for chain-of-thought models (cot) and they train only on it; "
              f"got train.loss={self.train.loss} with model {model.name}")
        for ramp, limit, what in ((self.curriculum.d, task.d, "d"), (self.curriculum.n, task.n, "n")):
            check(
                ramp is None or ramp.end <= limit,
                f"curriculum.{what}.end={ramp.end if ramp else ''} exceeds the task's {what}={limit}",
            )
        check(self.train.sampler == "stream" or counter.supports(task),
              f"train.sampler=counter draws only the tasks {', '.join(counter.SUPPORTED)}; task "
              f"{task.name} needs train.sampler=stream")
        for spec in self.eval.estimators:  # found now, not at the first evaluation
            try:
                ESTIMATORS.build(spec, task=task)
            except UsageError as err:
                raise UsageError(f"eval.estimators: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), ready for YAML or JSON. ``train.sampler`` appears only
        when it is not ``stream``, ``train.extended_from`` and ``run.trackers`` only when not
        empty, ``run.figures`` only when off, so runs written before they existed still match
        their config."""
        data = _plain(dataclasses.asdict(self))
        for (section, key), default in LEFT_OUT.items():
            if data[section][key] == default:
                del data[section][key]
        return data


def planned_configs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's config (``to_dict`` form) under each of its plans, first to last: before an
    extension (``train.extended_from``) the run was planned for fewer steps, and the checkpoints
    it wrote then hold that plan's config."""
    train = {k: v for k, v in data["train"].items() if k != "extended_from"}
    plans = [*data["train"].get("extended_from", []), train["steps"]]
    history = [{**train, "steps": s} | ({"extended_from": plans[:i]} if i else {})
               for i, s in enumerate(plans)]
    return [{**data, "train": t} for t in history]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --- from files and overrides --------------------------------------------------------------
def _spec_to_mapping(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        spec = parse_spec(value)
        return {"name": spec.name, **spec.params}
    if isinstance(value, dict) and "name" in value:
        return dict(value)
    raise UsageError(f"{where} must be a SPEC string or a mapping with a 'name' key, got {value!r}")


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_format_value(v) for v in value) + "]"
    if value is None:
        return "none"
    return str(value)


def mapping_to_spec(mapping: dict[str, Any]) -> str:
    """{name: ridge, lam: 0.1} -> 'ridge:lam=0.1'."""
    params = {k: v for k, v in mapping.items() if k != "name"}
    if not params:
        return str(mapping["name"])
    return f"{mapping['name']}:" + ",".join(f"{k}={_format_value(v)}" for k, v in params.items())


def _fill_model_from_task(model: dict[str, Any], task_spec: str) -> None:
    """Give the model the task's d (and label slots) when the config leaves them out."""
    task = TASKS.build(task_spec)
    fields = MODELS.spec_fields(model["name"]) if model["name"] in MODELS else {}
    if "d" in fields and "d" not in model:
        model["d"] = task.d
    if "labels" in fields and "labels" not in model and task.num_labels > 1:
        model["labels"] = task.num_labels


def from_dict(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, checking keys and converting values."""
    data = {} if data is None else data
    check(isinstance(data, dict), f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        check(key in names, f"unknown key '{where}.{key}'; valid keys: {', '.join(names)}")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in kwargs
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    check(not missing, f"{where} needs {', '.join(missing)} (it has {', '.join(kwargs) or 'no keys'})")
    return cls(**kwargs)


def _convert(value: Any, tp: Any, where: str) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    target = args[0] if len(args) == 1 and dataclasses.is_dataclass(args[0]) else tp
    if dataclasses.is_dataclass(target):
        if value is None and target is not tp:
            return None
        return from_dict(target, value, where)
    try:
        return coerce(value, tp)
    except TypeError:
        raise UsageError(f"{where} must be {_type_name(tp)}, got {value!r}") from None


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (.yaml/.yml) or TOML (.toml) config file into a mapping."""
    path = Path(path)
    check(path.exists(), f"config file '{path}' does not exist")
    check(path.is_file(), f"config file '{path}' is not a file; give a YAML or TOML file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"config file '{path}' is not text (UTF-8): give a YAML or TOML file") from None
    except OSError as err:
        raise UsageError(f"cannot read config file '{path}': {err.strerror}") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else load_yaml(text, f"config file '{path}'")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        first = str(err).splitlines()[0]
        raise UsageError(f"config file '{path}' is malformed: {first}") from None
    check(isinstance(data, dict), f"config file '{path}' must hold a mapping of sections")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a nested mapping (a copy)."""
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for text in overrides:
        key, eq, raw = text.partition("=")
        check(bool(eq) and bool(key), f"override '{text}' is not key=value")
        parts = key.strip().split(".")
        value = parse_value(raw)
        if parts[0] in ("task", "model") and len(parts) == 1:
            data[parts[0]] = raw.strip()
            continue
        node = data
        for part in parts[:-1]:
            current = node.get(part)
            if part in ("task", "model") and node is data:
                current = _spec_to_mapping(current, part) if current is not None else None
                check(current is not None, f"override '{text}': the config has no {part}")
            elif current is None:
                current = {}
            check(isinstance(current, dict), f"override '{text}': '{part}' is not a section")
            node[part] = dict(current)
            node = node[part]
        node[parts[-1]] = value
    return data


def resolve(data: dict[str, Any]) -> ExperimentConfig:
    """Turn a mapping (from a file, after overrides) into a validated config."""
    check("task" in data, "the config needs a 'task' (a SPEC such as gaussian:d=5,n=41)")
    check("model" in data, "the config needs a 'model' (a SPEC such as softmax_attention:heads=2)")
    task = mapping_to_spec(_spec_to_mapping(data["task"], "task"))
    TASKS.build(task)
    model_map = _spec_to_mapping(data["model"], "model")
    _fill_model_from_task(model_map, task)
    check("sweep" not in data, "this config has a sweep: block; train it with 'iclreg train CONFIG'")
    rest = {k: v for k, v in data.items() if k not in ("task", "model")}
    return from_dict(ExperimentConfig, {**rest, "task": task, "model": mapping_to_spec(model_map)}, "config")


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate an experiment config."""
    return resolve(apply_overrides(load_file(path), overrides or []))


def save_config(config: ExperimentConfig) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


__all__ = [
    "CurriculumConfig", "EvalConfig", "ExperimentConfig", "OptimizerConfig", "Ramp",
    "RunConfig", "ScheduleConfig", "Spec", "TrainConfig", "load_config", "resolve", "save_config",
]
