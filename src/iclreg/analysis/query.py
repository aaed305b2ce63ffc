"""A predictor's squared error at the query: against the noisy label or the noiseless target.

On one batch of prompts ``task.sample(samples, seed, step=0)`` (the query last):

    target="noisy":      E (y_hat_q - y_q)^2          the risk, noise floor sigma^2 included
    target="noiseless":  E (y_hat_q - w^T x_q)^2      the excess risk: risk - sigma^2 when the
                                                      noise is independent of the prompt

The noiseless target removes the variance of the query's own noise from the estimate, which
an O(1/D) excess next to sigma^2 needs (Cui et al., arXiv 2401.17426). The prediction is
``predictor.predict_last`` when the predictor has it (a model: only the last position is
computed, what long prompts need) and the last position of the full forward otherwise (an
estimator). The prompts are drawn in one batch and predicted in chunks of about
``POSITIONS`` tokens: a model's intermediates for Cui et al.'s full size at once (65,536
prompts of 1,001 positions, two heads) peaked at 17 GB; a batch within one chunk is predicted
in one call, as before.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import check
from ..tasks import Task

TARGETS = ("noisy", "noiseless")
POSITIONS = 1 << 22  # prompts x positions predicted in one call (about 1 GB of a model's intermediates)


def query_prediction(predictor: Any, x: Tensor, y: Tensor) -> Tensor:
    """The prediction at the last position, without gradients.

    Args:
        predictor: a model or estimator, ``(x (B, n, d), y (B, n[, K])) -> (B, n[, K])``.
        x: (B, n, d), the query last. y: (B, n[, K]); the query's label is not used.
    Returns:
        (B[, K]).
    """
    with torch.no_grad():
        if hasattr(predictor, "predict_last"):
            return predictor.predict_last(x, y)
        return predictor(x, y)[:, -1]


def query_error(predictor: Any, task: Task, samples: int, *, seed: int = 0,
                target: Literal["noisy", "noiseless"] = "noiseless", device: str = "cpu",
                positions: int = POSITIONS) -> float:
    """Mean squared error of ``predictor`` at the query of ``samples`` prompts drawn as
    ``task.sample(samples, seed, step=0)`` in one batch on ``device``.

    Args:
        target: ``"noisy"``: against the label y_q; ``"noiseless"``: against w^T x_q (a
            single-label task).
        positions: prompts x positions per prediction call (the prompts go through in chunks).
    Returns:
        The mean over prompts (and label slots) of the squared error.
    """
    check(target in TARGETS, f"target must be one of {', '.join(TARGETS)}, got '{target}'")
    check(target == "noisy" or task.num_labels == 1,
          f"the noiseless target w^T x_q needs a single-label task, not {task.num_labels} label slots")
    p = task.sample(samples, seed=seed, step=0, device=device)
    goal = p.y[:, -1] if target == "noisy" else (p.x[:, -1] * p.w).sum(-1)  # (B[, K]) or (B,): w^T x_q
    chunk = max(1, positions // p.x.shape[1])
    prediction = torch.cat([query_prediction(predictor, p.x[i:i + chunk], p.y[i:i + chunk])
                            for i in range(0, samples, chunk)])
    return float((prediction - goal).square().mean())
