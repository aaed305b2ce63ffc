"""A trained model's error against the number of in-context examples, beside estimators.

The model of a run is evaluated as :func:`~iclreg.analysis.compare.compare` evaluates any
predictor: the Monte Carlo mean of (f(x, y)[k] - y_k)^2 for k = 0..n-1 on held-out prompts
drawn from the run's evaluation seed (:func:`eval_seed`, apart from every training seed), in
the run's dtype, under the run's autocast.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..device import DTYPES
from ..estimators import build as build_estimator
from ..tasks import Task
from .compare import compare

if TYPE_CHECKING:
    from ..train.config import ExperimentConfig


EVAL_SEED_OFFSET = 1_000_003  # evaluation prompts never coincide with training prompts


def eval_seed(config: ExperimentConfig) -> int:
    """The seed of a run's evaluation prompts, apart from every training seed (and below 2^63)."""
    return (config.train.seed + EVAL_SEED_OFFSET) % 2**63


def evaluate(model: nn.Module, config: ExperimentConfig, task: Task, n: int | None = None,
             samples: int | None = None, estimators: tuple[str, ...] | None = None,
             device: str = "cpu") -> dict[str, Any]:
    """Error against k for the model and estimators on held-out prompts (``compare``'s shape).

    Args:
        model: a predictor ``(x (B, n, d), y (B, n)) -> (B, n)``; left in the mode it came in.
        config: the run's config (evaluation seed, dtype, autocast and defaults).
        n, samples, estimators: default to the config's (``eval.n`` or the task's n,
            ``eval.samples``, ``eval.estimators``); a value given is used as it is, and
            checked, with the model's and the memory's limits, before any prompt is drawn.
    Returns:
        ``compare``'s object: ``k``, ``results`` (label -> mse and ci95 per k),
        ``noise_floor`` and what the prompts were drawn from: ``task`` with the n evaluated
        (``task["n"] == len(k)``), and ``train_n``, the task's n the model was trained on.
    """
    specs = config.eval.estimators if estimators is None else estimators
    n = (config.eval.n or task.n) if n is None else n
    samples = config.eval.samples if samples is None else samples
    predictors = {"model": _Autocast(model, config.run.amp == "bf16"),
                  **{s: build_estimator(s, task=task) for s in specs}}
    was_training = model.training
    model.eval()
    try:
        result = compare(task, predictors, samples, eval_seed(config), n=n, device=device,
                         dtype=DTYPES[config.run.dtype])
    finally:
        model.train(was_training)
    # the prompts drawn were n long, whatever the task's n (length generalisation)
    return {**result, "task": {**result["task"], "n": n}, "train_n": task.n}


class _Autocast(nn.Module):
    """A model's predictions under bf16 autocast when ``amp`` (in the labels' dtype)."""

    def __init__(self, model: nn.Module, amp: bool) -> None:
        super().__init__()
        self.model, self.amp = model, amp

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        amp = torch.autocast(x.device.type, torch.bfloat16) if self.amp and not x.is_meta else nullcontext()
        with amp:
            return self.model(x, y).to(y.dtype)
