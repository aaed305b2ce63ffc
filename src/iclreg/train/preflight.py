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

import torch

from ..analysis.compare import CHUNK, check_evaluation
from ..device import DTYPES, resolve_device
from ..errors import check
from ..estimators import build as build_estimator
from ..models import MODELS, Ensemble, Predictor, StackedPredictor
from ..resources import MAX_SAMPLES, check_fits, evaluation_bytes, nbytes, peak_bytes
from ..tasks import TASKS, Task
from .config import ExperimentConfig
from .trackers import check_trackers

EVAL_SEED_OFFSET = 1_000_003  # evaluation prompts never coincide with training prompts


def eval_seed(config: ExperimentConfig) -> int:
    """The seed of the evaluation prompts, apart from every training seed (and below 2^63)."""
    return (config.train.seed + EVAL_SEED_OFFSET) % 2**63


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
