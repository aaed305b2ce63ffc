"""Pre-flight checks: everything a training run or a probe could fail on, found before the
first step and before any file is written.

A config that resolves is valid value by value (``config.py``); what remains is what only
the sizes tell: whether the model takes the task's prompts (and the evaluation's, at
``eval.n``), and whether a training step and an evaluation fit in the device's memory. Both
come from one dry run of the real code on ``meta`` tensors (``resources.py``): the model's own
checks run on the shapes (a GPT-2 refuses prompts beyond ``max_n``), and the bytes it would
allocate are measured without allocating them.

A training step needs the tensors autograd saves for backward in one forward pass, plus the
parameters, their gradients and two optimiser moments (4 P), plus the prompts.
"""

from __future__ import annotations

import dataclasses
import json

import torch

from .. import resources
from ..analysis.compare import CHUNK, check_evaluation
from ..analysis.evaluate import eval_seed
from ..device import DTYPES, resolve_device
from ..errors import check
from ..estimators import build as build_estimator
from ..models import MODELS, Ensemble, Predictor, StackedPredictor
from ..resources import MAX_SAMPLES, check_fits, evaluation_bytes, nbytes, peak_bytes
from ..tasks import TASKS, Task
from .config import ExperimentConfig
from .trackers import check_trackers


def meta_model(config: ExperimentConfig) -> Predictor:
    """The model of ``config`` with its parameters on the meta device (no memory)."""
    with torch.device("meta"):
        model = MODELS.build(config.model).build()
    return model.to(dtype=DTYPES[config.run.dtype])


def training_bytes(config: ExperimentConfig) -> int:
    """Memory one member needs in a training step (see the module docstring), from a forward
    pass on meta tensors at the full batch: nothing is allocated, whatever the batch."""
    model = meta_model(config)
    dtype = DTYPES[config.run.dtype]
    prompts = TASKS.build(config.task).sample(config.train.batch, 0, 0, device="meta", dtype=dtype)
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += nbytes(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        if isinstance(model, StackedPredictor):  # as the trainer runs it
            Ensemble([model])(prompts.x[None], prompts.y[None], last_only=config.train.loss == "query")
        else:
            model(prompts.x, prompts.y)
    params = sum(nbytes(p) for p in model.parameters())
    return saved + 4 * params + nbytes(prompts.x, prompts.y, prompts.w)


def check_training(config: ExperimentConfig, here: bool = True) -> None:
    """Refuse a run that would fail after it started: an absent device, prompts the model cannot
    take (at the task's n and at ``eval.n``), or a training step or evaluation that does not
    fit in the free memory, or a tracker whose package is not installed.

    ``here=False``: the run trains elsewhere (a Ray worker, which checks its own device and
    memory before it starts), so only what the sizes tell is checked here."""
    check_trackers(config.run.trackers)
    device = resolve_device(config.run.device) if here else None
    need = training_bytes(config)
    if device is not None:
        check_fits(need, device, f"a training step of {config.model} on {config.train.batch} prompts",
                   "lower train.batch or the model's size")
    task = TASKS.build(config.task)
    check_model_evaluation(meta_model(config), config, task, config.eval.n or task.n,
                           config.eval.samples, config.eval.estimators,
                           None if device is None else str(device))


def check_model_evaluation(model: torch.nn.Module, config: ExperimentConfig, task: Task, n: int,
                           samples: int, estimators: tuple[str, ...], device: str | None) -> None:
    """What :func:`~iclreg.analysis.evaluate.evaluate` checks before it starts: the model and the
    estimators on prompts of ``n`` pairs, one chunk at a time; ``device`` None (the evaluation
    runs on another machine): the shapes alone, by a dry run on meta tensors."""
    predictors = {"model": model, **{s: build_estimator(s, task=task) for s in estimators}}
    if device is None:
        evaluation_bytes(task, predictors, min(CHUNK, samples), n, DTYPES[config.run.dtype])
        return
    check_evaluation(task, predictors, samples, eval_seed(config), n=n,
                     device=device, dtype=DTYPES[config.run.dtype])


def probe_bytes(config: ExperimentConfig, samples: int, probe_samples: int) -> int:
    """Memory of ``analysis.probe.probe_model``: the hidden states of every layer for the probe
    set and their fit, then for the test set with Newton's and GD's predictions."""
    from ..analysis.probe import (
        GD_STEPS,
        NEWTON_STEPS,
        apply_probes,
        fit_probes,
        gd_predictions,
        layer_hidden,
        newton_predictions,
    )

    model = meta_model(config)
    task = TASKS.build(config.task)
    dtype = DTYPES[config.run.dtype]

    def fit() -> torch.Tensor:
        p = task.sample(probe_samples, 0, 0, device="meta", dtype=dtype)
        return fit_probes(layer_hidden(model, p.x, p.y), p.y)

    weights = fit()

    def test() -> list[torch.Tensor]:
        p = task.sample(samples, 0, 1, device="meta", dtype=dtype)
        preds = apply_probes(layer_hidden(model, p.x, p.y), weights).double()
        x, y = p.x.double(), p.y.double()
        return [preds, newton_predictions(x, y, NEWTON_STEPS), gd_predictions(x, y, GD_STEPS[:2])]

    gd_sweep = len(GD_STEPS) * samples * task.n * 8  # the GD sweep's (S, B, n) predictions
    return max(peak_bytes(fit), peak_bytes(test) + gd_sweep)


def check_probe(config: ExperimentConfig, samples: int, probe_samples: int, device: str) -> None:
    """Refuse a probe whose sample counts or memory are out of reach, before it starts."""
    for value, flag in ((samples, "--samples"), (probe_samples, "--probe-samples")):
        check(2 <= value <= MAX_SAMPLES, f"{flag} must lie in [2, {MAX_SAMPLES:,}], got {value:,}")
    check_fits(probe_bytes(config, samples, probe_samples), resolve_device(device),
               f"probing on {probe_samples:,} + {samples:,} prompts",
               "lower --probe-samples or --samples")


# --- the members of one loop and the memory they plan with ---------------------------------
def group_key(config: ExperimentConfig) -> str:
    """What members trained by one loop must share: everything but the seed, the learning
    rate, the task's values and the model's initialisation (the fields the model declares in
    ``member_fields``)."""
    data = config.to_dict()
    task, model = TASKS.build(config.task), MODELS.build(config.model)
    data["task"] = {"d": task.d, "n": task.n, "labels": task.num_labels}
    data["model"] = {k: v for k, v in dataclasses.asdict(model).items()
                     if k not in model.member_fields} | {"name": model.name}
    data["train"].pop("seed")
    data["optimizer"].pop("lr")
    return json.dumps(data, sort_keys=True)


def member_bytes(config: ExperimentConfig) -> int:
    """Memory one member needs in a training step: the tensors autograd saves for backward in
    one forward pass, plus parameters, gradients and two optimiser moments, plus the prompts;
    measured on meta tensors (``preflight.training_bytes``), so nothing is allocated."""
    return training_bytes(config)


def check_members(configs: list[ExperimentConfig], here: bool = True) -> None:
    """``preflight.check_training`` for each group of members that share shapes (one dry run
    per group): a member that could not train or evaluate is refused before any file exists.
    ``here=False`` (Ray workers train them): their device and memory are the workers' to check."""
    checked = set()
    for config in configs:
        key = group_key(config)
        if key not in checked:
            check_training(config, here)
            checked.add(key)


def available_bytes(device: torch.device) -> int:
    """Free memory to plan with: 80% of the GPU's free memory, or half of the available RAM."""
    free = resources.available_bytes(device)
    return int(0.8 * free) if device.type == "cuda" else free // 2


def plan_chunks(size: int, per_member: int, budget: int, max_members: int | None) -> int:
    """Members per chunk for a group of ``size``."""
    fit = max(1, budget // max(per_member, 1))
    return max(1, min(size, fit, max_members or size))
