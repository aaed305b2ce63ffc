"""Error against the number of samples N for one decoder, noise and technique.

For each prompt (x, y) of n pairs and a query (x_q, y_q) drawn with it, N_max decodes of T
steps are combined by the technique over their first N, for each N of a list. The metric is
the one the task declares (``Task.metric``): the squared error (<w_hat, x_q> - y_q)^2 against
the noisy query label ("mse", continuous tasks) or exact support recovery
1[supp(w_hat) = supp(w*)] ("recovery", binary01), averaged over the prompts with a normal 95%
interval mean +- 1.96 s / sqrt(P). Prompts come in chunks drawn from (seed, chunk index), the
decodes from their own generator of (seed, chunk index), so the numbers depend only on the
arguments. Our construction after Chen, Lu, Wu, Zou (arXiv 2508.07571).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..device import resolve_device
from ..errors import check
from ..logs import Progress
from ..tasks import Task
from ..tasks.base import check_seed, generator
from .decode import _iterates  # the steps one at a time (progress); the last is ``decode``'s w_T
from .decoders import Decoder
from .noises import Noise
from .techniques import Technique

CHUNK = 256
log = logging.getLogger(__name__)
DECODE_STREAM = 1  # separates the decoding generator's stream from the task's


def decode_generator(seed: int, chunk: int, device: torch.device) -> torch.Generator:
    """The generator of the decodes of one chunk: a pure function of (seed, chunk), apart from
    the chunk's prompts (``tasks.base.generator`` with its own stream)."""
    return generator(seed, chunk, device, stream=DECODE_STREAM)


METRICS = {  # the task's ``metric`` -> the per-prompt score (B,) of answers w_hat
    "mse": lambda w_hat, x_q, y_q, w_star: ((w_hat * x_q).sum(-1) - y_q).square().to(torch.float64),
    "recovery": lambda w_hat, x_q, y_q, w_star: ((w_hat != 0) == (w_star != 0)).all(-1).to(torch.float64),
}


def _decode(x: Tensor, y: Tensor, decoder: Decoder, noise: Noise, steps: int, samples: int,
            gen: torch.Generator, bar: Progress) -> Tensor:
    """``decode``'s w_T (N, B, d), one step at a time: each step is N x B more tokens on ``bar``."""
    w = torch.empty(0)
    for t, w_t in enumerate(_iterates(x, y, decoder, noise, steps, samples, gen)):
        w = w_t  # w_t, (N, B, d)
        if t:
            bar.update(samples * x.shape[0])
    return w


def _interval(values: Tensor) -> tuple[float, list[float]]:
    """Mean and normal 95% interval of (P,) values."""
    mean = values.mean()
    half = 1.96 * values.std(unbiased=True) / values.numel() ** 0.5
    return float(mean), [float(mean - half), float(mean + half)]


def evaluate(
    task: Task,
    decoder: Decoder,
    noise: Noise,
    technique: Technique,
    steps: int,
    samples: Sequence[int] = (1, 4, 16),
    prompts: int = 1024,
    seed: int = 0,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    progress: bool = False,
) -> dict[str, Any]:
    """The metric against N, in the shape of ``compare --json`` with ``N`` in place of ``k``.

    ``progress``: report the decoding as it goes (``logs.Progress`` over the decoded tokens
    prompts x N_max x T: a bar on a terminal, else a log line every ``ICLREG_LOG_EVERY`` seconds).

    Returns:
        {"task", "decoder", "noise", "technique", "steps", "prompts", "seed", "metric"
        ("mse" or "recovery"), "N": [...], "compute": [decoded tokens N x T per N],
        "results": {technique label: {metric: [per N], "ci95": [[low, high] per N]}}}.
    """
    check(len(samples) >= 1 and all(s >= 1 for s in samples),
          f"samples must be a non-empty list of positive integers, got {list(samples)}")
    check(prompts >= 2, f"prompts must be at least 2, got {prompts}")
    check(task.num_labels == 1, "test-time decoding needs a single-label task")
    check_seed(seed, "seed")
    dev = resolve_device(device)
    sizes = sorted(set(samples))
    scores: list[list[Tensor]] = [[] for _ in sizes]
    with Progress(prompts * sizes[-1] * steps, enabled=progress, desc="test-time", unit="token",
                  logger=log) as bar:
        for chunk in range(-(-prompts // CHUNK)):
            batch = min(CHUNK, prompts - chunk * CHUNK)
            p = task.sample(batch, seed, chunk, n=task.n + 1, device=dev, dtype=dtype)
            x, y, x_q, y_q = p.x[:, :-1], p.y[:, :-1], p.x[:, -1], p.y[:, -1]
            with torch.no_grad():
                w = _decode(x, y, decoder, noise, steps, sizes[-1], decode_generator(seed, chunk, dev), bar)
                for i, size in enumerate(sizes):
                    w_hat = technique(w[:size], x, y)  # (B, d)
                    scores[i].append(METRICS[task.metric](w_hat, x_q, y_q, p.w).cpu())
    metric = task.metric
    stats = [_interval(torch.cat(s)) for s in scores]
    label = ",".join(f"{k}={v}" for k, v in technique.describe().items() if k != "name")
    label = technique.name + (f":{label}" if label else "")
    return {
        "task": task.describe(),
        "decoder": decoder.describe(),
        "noise": noise.describe(),
        "technique": technique.describe(),
        "steps": steps,
        "prompts": prompts,
        "seed": seed,
        "metric": metric,
        "N": sizes,
        "compute": [n * steps for n in sizes],  # decoded tokens N x T
        "results": {label: {metric: [m for m, _ in stats], "ci95": [c for _, c in stats]}},
    }
