"""Decoders: the deterministic map F of one chain-of-thought step, w_{t+1} = F(w_t).

Chen, Lu, Wu, Zou (arXiv 2508.07571) model a transformer's chain of thought on in-context linear
regression as a sequence of emitted iterates w_0, w_1, ..., w_T. The idealised decoder ``gd``
emits exact gradient-descent iterates on the prompt's least-squares objective, from w_0 = 0:

    w_{t+1} = w_t - lr X^T (X w_t - y)          (mean=false, the sum form; the default)
    w_{t+1} = w_t - (lr / n) X^T (X w_t - y)    (mean=true, the mean-gradient form)

A decoder maps (x (B, n, d), y (B, n), w_t (N, B, d)) to F(w_t) (N, B, d), for N samples of
each of B prompts at once, and exposes ``lr``, the step size through which multiplicative
noise enters (see :mod:`iclreg.testtime.noises`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import check
from ..registry import Registry

DECODERS: Registry[Decoder] = Registry("decoder")


@dataclass(frozen=True)
class Decoder:
    """Base of every decoder: ``decoder(x, y, w) -> F(w)``.

    Attributes:
        lr: the step size eta of one decoding step.
    """

    name: ClassVar[str]
    lr: float = 0.1

    def __call__(self, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        """F(w_t).

        Args:
            x: (B, n, d) prompt inputs.
            y: (B, n) prompt labels.
            w: (N, B, d) current iterates of N samples per prompt.
        Returns:
            (N, B, d) next iterates before noise.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The resolved parameters, JSON-ready."""
        return {"name": self.name, **{k: v for k, v in vars(self).items()}}


def gradient(x: Tensor, y: Tensor, w: Tensor) -> Tensor:
    """X^T (X w - y) for every sample and prompt: x (B, n, d), y (B, n), w (N, B, d) -> (N, B, d)."""
    residual = torch.einsum("bnd,sbd->sbn", x, w) - y  # (N, B, n)
    return torch.einsum("bnd,sbn->sbd", x, residual)  # (N, B, d)


@DECODERS.register("gd")
@dataclass(frozen=True)
class GDDecoder(Decoder):
    """Exact gradient descent on 1/2 ||X w - y||^2 (or its mean over the n pairs), from w_0 = 0.

    Attributes:
        lr: step size eta > 0.
        mean: use the mean gradient (lr / n) X^T (X w - y) instead of the sum.
    """

    mean: bool = False

    def __post_init__(self) -> None:
        check(self.lr > 0, f"gd: lr must be > 0, got {self.lr}")

    def __call__(self, x: Tensor, y: Tensor, w: Tensor) -> Tensor:
        step = self.lr / x.shape[1] if self.mean else self.lr
        return w - step * gradient(x, y, w)


def build(spec: str) -> Decoder:
    """Build a decoder from a SPEC such as ``gd:lr=0.01,mean=true``."""
    return DECODERS.build(spec)
