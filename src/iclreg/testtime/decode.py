"""Sampled chains of thought: N stochastic decodes of each of B prompts at once.

From w_0 = 0 (our construction after Chen, Lu, Wu, Zou, arXiv 2508.07571), each of T steps
applies the decoder and then the noise (:mod:`iclreg.testtime.noises`):

    w_{t+1} = noise(F(w_t), w_t),   t = 0, ..., T - 1,

batched over the N samples and B prompts (only the steps are a Python loop).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import check
from .decoders import Decoder
from .noises import Noise


def decode(
    x: Tensor,
    y: Tensor,
    decoder: Decoder,
    noise: Noise,
    steps: int,
    samples: int,
    generator: torch.Generator | None = None,
    *,
    trajectory: bool = False,
    record: Sequence[int] | None = None,
) -> Tensor | dict[int, Tensor]:
    """Decode ``samples`` chains of ``steps`` steps for every prompt.

    Args:
        x: (B, n, d) prompt inputs.
        y: (B, n) prompt labels.
        decoder: the deterministic step F.
        noise: the stochastic decoding rule; at each step it draws one (N, B, d) tensor (or none)
            from ``generator``, which must live on x's device.
        steps: T >= 0.
        samples: N >= 1.
        trajectory: return every iterate instead of the last.
        record: return {t: w_t (N, B, d)} for these t in [0, steps] instead of the last.
    Returns:
        (N, B, d) final iterates w_T, (N, B, T + 1, d) the whole trajectories w_0..w_T, or
        {t: (N, B, d)}.
    """
    check(steps >= 0, f"steps must be >= 0, got {steps}")
    check(samples >= 1, f"samples must be at least 1, got {samples}")
    batch, _, d = x.shape
    shape = torch.Size((samples, batch, d))
    w = torch.zeros(shape, dtype=x.dtype, device=x.device)  # w_0 = 0, (N, B, d)
    check(record is None or all(0 <= t <= steps for t in record),
          f"record must list steps in [0, {steps}], got {record}")
    keep = set(range(steps + 1)) if trajectory else set(record or ())
    path = {0: w} if 0 in keep else {}
    step = decoder.bind(x, y)
    for t in range(1, steps + 1):
        draw = noise.draw(shape, generator, x.dtype, x.device)
        w = noise.apply(step(w), w, decoder.lr, draw)
        if t in keep:
            path[t] = w
    if trajectory:
        return torch.stack([path[t] for t in range(steps + 1)], dim=2)  # (N, B, T + 1, d)
    return path if record is not None else w
