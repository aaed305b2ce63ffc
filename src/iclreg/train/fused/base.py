"""The registry of fused training families: model configs whose loss has hand-derived gradients.

A family registers a function ``(config, params, x, y) -> (losses (E,), gradients)`` computing,
for E stacked members at once, the per-member training loss and its gradient with respect to
every parameter (``params[name]``: (E, ...), the member axis first, as ``stacked_forward``
takes them). The fused step (``step.py``) trains with it wherever the run's config allows;
every other model trains through autograd (``train/step.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ...models.base import ModelConfig

Gradients = tuple[Tensor, dict[str, Tensor]]
GradientFn = Callable[[ModelConfig, dict[str, Tensor], Tensor, Tensor], Gradients]


@dataclass(frozen=True)
class Family:
    """A model config class, the losses its gradients cover, and the gradient function."""

    config: type[ModelConfig]
    losses: tuple[str, ...]
    gradients: GradientFn


class Families:
    """Model config class -> :class:`Family`; ``register`` is a decorator."""

    def __init__(self) -> None:
        self._members: dict[type[ModelConfig], Family] = {}

    def register(self, config: type[ModelConfig],
                 losses: tuple[str, ...]) -> Callable[[GradientFn], GradientFn]:
        def wrap(fn: GradientFn) -> GradientFn:
            self._members[config] = Family(config, losses, fn)
            return fn
        return wrap

    def get(self, config: ModelConfig) -> Family | None:
        """The family of ``config`` (its exact class), or None."""
        return self._members.get(type(config))

    def names(self) -> list[str]:
        return sorted(c.name for c in self._members)


FAMILIES = Families()


def tokens(x: Tensor, y: Tensor) -> Tensor:
    """The tokens z = (x, y): (E, B, n, d), (E, B, n[, K]) -> (E, B, n, d + K).

    Where x and y are the two parts of one buffer (the trainer's sampler draws them so) this is
    a view of that buffer, no copy; otherwise the concatenation.
    """
    labels = y.unsqueeze(-1) if y.dim() == x.dim() - 1 else y
    d, K = x.shape[-1], labels.shape[-1]
    adjacent = (x.stride(-1) == labels.stride(-1) == 1 and x.stride()[:-1] == labels.stride()[:-1]
                and x.stride(-2) == d + K
                and x.untyped_storage().data_ptr() == labels.untyped_storage().data_ptr()
                and labels.data_ptr() == x.data_ptr() + d * x.element_size()
                and x.shape[:-1] == labels.shape[:-1])
    if adjacent:
        return x.as_strided((*x.shape[:-1], d + K), x.stride())
    return torch.cat([x, labels], -1)
