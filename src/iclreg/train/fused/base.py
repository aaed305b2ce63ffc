"""The registry of fused training families: model configs whose loss has hand-derived gradients.

A family registers a function ``(config, params, x, y, workspace=None) -> (losses (E,),
gradients)`` computing,
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
GradientFn = Callable[..., Gradients]  # (config, params, x, y, workspace=None) -> losses, grads


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


class Workspace:
    """Named buffers reused from step to step: a fresh tensor of a large ensemble is fresh pages
    from the system at every step (allocations above glibc's mmap threshold), which costs as much
    as the arithmetic."""

    def __init__(self) -> None:
        self._buffers: dict[tuple, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        """Buffer ``name`` of ``shape`` in ``like``'s dtype and device (contents undefined); one
        per shape, so chunks of two sizes alternating do not reallocate."""
        key = (name, tuple(shape), like.dtype, like.device)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = torch.empty(shape, dtype=like.dtype, device=like.device)
        return buf


def per_member(a: Tensor, b: Tensor) -> Tensor:
    """a[e] @ b[e] for each member e: (E, M, K) @ (E, K, N) -> (E, M, N).

    On the CPU, one matrix product per member, its operands and result on 64-byte boundaries:
    a batched product lets the BLAS group the members' tiny matrices, and a product's bits
    can depend on where its operands and result lie (both measured with MKL), so a member's
    numbers would depend on the ensemble's size instead of being those of training alone.
    The loop costs a few microseconds a member. On CUDA, one batched product."""
    if a.device.type != "cpu":
        return torch.bmm(a, b)
    return torch.stack([torch.mm(_aligned(a[e]), _aligned(b[e])) for e in range(a.shape[0])])


def _aligned(t: Tensor) -> Tensor:
    """``t`` itself if its data starts on a 64-byte boundary, else a copy (new tensors do)."""
    return t if t.data_ptr() % 64 == 0 else t.clone()
