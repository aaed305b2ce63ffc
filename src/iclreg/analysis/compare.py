"""Error against the number of in-context examples, for any predictors on any task.

For each predictor f and each k = 0..n-1 the Monte Carlo estimate of
E[(f(x, y)[k] - y_k)^2], the squared error against the noisy label, with a normal 95%
interval mean +- 1.96 s / sqrt(N). An error is positive, and so is its interval: where the normal
one would reach below zero (a heavy tail: least squares at k near d, whose variance diverges) the
interval is the log-normal one, mean times exp(+-1.96 s / (mean sqrt(N))), the normal interval of
log(mean) by the delta method, mapped back. Prompts come in fixed-size chunks drawn from (seed,
chunk index), so the numbers depend only on the task, the seed and the sample count.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..device import resolve_device
from ..errors import check
from ..logs import Progress
from ..resources import MAX_SAMPLES, check_fits, evaluation_bytes
from ..tasks import Task
from ..tasks.base import check_seed

log = logging.getLogger(__name__)

CHUNK = 1024
Predictor = Callable[[Tensor, Tensor], Tensor]


def error_curves(
    task: Task,
    predictors: Mapping[str, Predictor],
    samples: int,
    seed: int = 0,
    *,
    n: int | None = None,
    positions: int | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """Per-k mean squared error of each predictor with 95% intervals.

    Args:
        task: the prompt distribution; n overrides its prompt length (length generalisation).
        predictors: label -> callable ``(x (B, n, d), y (B, n)) -> (B, n)``.
        samples: number of prompts N.
        positions: evaluate k < positions only, on the first ``positions`` pairs of the same
            prompts of n pairs (a prediction reads only the pairs before it: the numbers at
            those k are a full evaluation's, for the cost of the short prompts).
    Returns:
        label -> {"mse": [n (or positions) floats], "ci95": [[low, high] per k]}.
    """
    check_evaluation(task, predictors, samples, seed, n=n, device=device, dtype=dtype)
    dev = resolve_device(device)
    n = task.n if n is None else n
    check(positions is None or 1 <= positions <= n, f"positions must be in [1, n={n}], got {positions}")
    kept = n if positions is None else positions
    sums = {name: torch.zeros(kept, dtype=torch.float64) for name in predictors}
    squares = {name: torch.zeros(kept, dtype=torch.float64) for name in predictors}
    chunks = math.ceil(samples / CHUNK)
    bar = Progress(samples, enabled=progress, desc="evaluation", unit="prompt", leave=False, logger=log)
    for chunk in range(chunks):
        batch = min(CHUNK, samples - chunk * CHUNK)
        prompts = task.sample(batch, seed, chunk, n=n, device=dev, dtype=dtype)
        x, y = prompts.x[:, :kept], prompts.y[:, :kept]
        for name, f in predictors.items():
            with torch.no_grad():
                err = (f(x, y) - y).square()  # (B, n) or (B, n, K)
            if err.dim() == 3:
                err = err.mean(-1)  # average over label slots
            err = err.to(device="cpu", dtype=torch.float64)
            sums[name] += err.sum(0)
            squares[name] += err.square().sum(0)
        bar.update(batch)
    bar.close()
    out = {}
    for name in predictors:
        mean = sums[name] / samples
        var = (squares[name] / samples - mean.square()).clamp_min(0) * samples / (samples - 1)
        out[name] = {"mse": mean.tolist(), "ci95": interval95(mean, (var / samples).sqrt()).tolist()}
    return out


def interval95(mean: Tensor, se: Tensor) -> Tensor:
    """95% intervals (..., 2) of positive means with standard errors ``se``: the normal one
    mean +- 1.96 se where its lower end stays at or above zero, else the log-normal one
    mean exp(+-1.96 se / mean), which stays positive (module docstring)."""
    half = 1.96 * se
    normal = torch.stack([mean - half, mean + half], -1)
    spread = torch.exp(1.96 * se / mean.clamp_min(torch.finfo(mean.dtype).tiny))
    lognormal = torch.stack([mean / spread, mean * spread], -1)
    return torch.where((mean - half < 0).unsqueeze(-1), lognormal, normal)


def best_curves(
    task: Task,
    predictors: Mapping[str, Predictor],
    samples: int,
    seed: int = 0,
    *,
    at: int,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> tuple[str, dict[str, list[float]]]:
    """MSE curves of several predictors of which only the best needs its whole curve: every
    predictor's at k <= ``at`` (:func:`error_curves` with ``positions=at + 1``, the same prompts),
    then the best one's (the lowest MSE at k = ``at``, the first on a tie) at every k < n.

    Returns:
        (the best's label, label -> MSE by k: n values for the best, at + 1 for the others).
    """
    short = error_curves(task, predictors, samples, seed, positions=at + 1, device=device, dtype=dtype)
    chosen = min(short, key=lambda name: short[name]["mse"][at])
    whole = error_curves(task, {chosen: predictors[chosen]}, samples, seed, device=device, dtype=dtype)
    return chosen, {name: (whole if name == chosen else short)[name]["mse"] for name in predictors}


def check_evaluation(
    task: Task,
    predictors: Mapping[str, Predictor],
    samples: int,
    seed: int = 0,
    *,
    n: int | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
) -> None:
    """Refuse an evaluation that :func:`error_curves` could not finish, before any work: a
    sample count outside [2, MAX_SAMPLES], a bad seed or prompt length, or a working set (one
    chunk of prompts and the hungriest predictor, measured on meta tensors) beyond the free
    memory. A model that cannot take prompts of ``n`` pairs raises its own error here."""
    check(samples >= 2, f"samples must be at least 2, got {samples}")
    check(samples <= MAX_SAMPLES, f"samples must be at most {MAX_SAMPLES:,} (a bound on the run "
                                  f"time), got {samples:,}; average several runs with other seeds")
    check_seed(seed, "seed")
    n = task.n if n is None else n
    check(n >= 1, f"the prompt length n must be at least 1, got {n}")
    dev = resolve_device(device)
    batch = min(CHUNK, samples)
    need = evaluation_bytes(task, predictors, batch, n, dtype)
    check_fits(need, dev, f"evaluating {', '.join(predictors)} on {batch} prompts at a time of "
                          f"n={n} pairs in d={task.d}", "use a smaller d or n, or other estimators")


def noise_floor(task: Task) -> float:
    """Irreducible error E[noise^2], averaged over label slots."""
    priors = task.priors()
    return sum(p.noise_std**2 for p in priors) / len(priors)


def compare(
    task: Task,
    estimators: Mapping[str, Predictor],
    samples: int = 1280,
    seed: int = 0,
    *,
    n: int | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
) -> dict[str, Any]:
    """The ``compare --json`` object: task, samples, seed, k and per-estimator curves
    (prompts of ``n`` pairs, the task's n by default)."""
    n = task.n if n is None else n
    results = error_curves(
        task, estimators, samples, seed, n=n, device=device, dtype=dtype, progress=progress
    )
    return {
        "task": task.describe(),
        "samples": samples,
        "seed": seed,
        "k": list(range(n)),
        "noise_floor": noise_floor(task),
        "results": results,
    }
