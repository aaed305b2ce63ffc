"""Sampled chains of thought: N stochastic decodes of each of B prompts at once.

From w_0 = 0 (our construction after Chen, Lu, Wu, Zou, arXiv 2508.07571), each of T steps
applies the decoder and then the noise (:mod:`iclreg.testtime.noises`):

    w_{t+1} = noise(F(w_t), w_t),   t = 0, ..., T - 1,

batched over the N samples and B prompts (only the steps are a Python loop). ``decode``
returns the last iterate, ``decode_path`` the iterates at chosen steps; both draw the same
noise from the same generator, so ``decode_path(..., at=[T])[:, :, 0]`` is ``decode(...)``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from ..errors import check
from .decoders import Decoder
from .noises import Noise


def _iterates(x: Tensor, y: Tensor, decoder: Decoder, noise: Noise, steps: int, samples: int,
              generator: torch.Generator | None) -> Iterator[Tensor]:
    """w_0, w_1, ..., w_T, each (N, B, d); each step draws one tensor (or none) from ``generator``."""
    check(steps >= 0, f"steps must be >= 0, got {steps}")
    check(samples >= 1, f"samples must be at least 1, got {samples}")
    batch, _, d = x.shape
    shape = torch.Size((samples, batch, d))
    w = torch.zeros(shape, dtype=x.dtype, device=x.device)  # w_0 = 0, (N, B, d)
    yield w
    step = decoder.bind(x, y)
    for _ in range(steps):
        draw = noise.draw(shape, generator, x.dtype, x.device)
        w = noise.apply(step(w), w, decoder.lr, draw)
        yield w


def decode(x: Tensor, y: Tensor, decoder: Decoder, noise: Noise, steps: int, samples: int,
           generator: torch.Generator | None = None) -> Tensor:
    """The final iterates w_T of ``samples`` chains of ``steps`` steps for every prompt.

    Args:
        x: (B, n, d) prompt inputs.
        y: (B, n) prompt labels.
        decoder: the deterministic step F.
        noise: the stochastic decoding rule; at each step it draws one (N, B, d) tensor (or none)
            from ``generator``, which must live on x's device.
        steps: T >= 0.
        samples: N >= 1.
    Returns:
        (N, B, d).
    """
    return deque(_iterates(x, y, decoder, noise, steps, samples, generator), maxlen=1)[0]  # holds one


def decode_path(x: Tensor, y: Tensor, decoder: Decoder, noise: Noise, steps: int, samples: int,
                generator: torch.Generator | None = None, at: Sequence[int] | None = None) -> Tensor:
    """The iterates w_t at the steps ``at`` (every t in [0, steps] when None), in that order.

    Arguments as :func:`decode`; the noise drawn is the same.
    Returns:
        (N, B, len(at), d); with ``at=None``, (N, B, steps + 1, d), the whole trajectories.
    """
    wanted = list(range(steps + 1)) if at is None else list(at)
    check(all(0 <= t <= steps for t in wanted), f"at must list steps in [0, {steps}], got {wanted}")
    kept = {}
    for t, w in enumerate(_iterates(x, y, decoder, noise, steps, samples, generator)):
        if t in wanted:
            kept[t] = w
    return torch.stack([kept[t] for t in wanted], dim=2)
