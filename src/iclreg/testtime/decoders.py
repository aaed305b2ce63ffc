"""Decoders: the deterministic map F of one chain-of-thought step, w_{t+1} = F(w_t).

Chen, Lu, Wu, Zou (arXiv 2508.07571) model a transformer's chain of thought on in-context linear
regression as a sequence of emitted iterates w_0, w_1, ..., w_T. The idealised decoder ``gd``
emits exact gradient-descent iterates on the prompt's least-squares objective, from w_0 = 0:

    w_{t+1} = w_t - lr X^T (X w_t - y)          (mean=false, the sum form; the default)
    w_{t+1} = w_t - (lr / n) X^T (X w_t - y)    (mean=true, the mean-gradient form)

The decoder ``cot:run=RUN_DIR`` is a trained chain-of-thought transformer
(:mod:`iclreg.models.cot`) decoded autoregressively: it emits w_{t+1} = w_t + [w_t, 1] Q, with Q
computed once per prompt from the prompt's pairs, for any number of steps (beyond the chain
length it was trained on too).

A decoder maps (x (B, n, d), y (B, n), w_t (N, B, d)) to F(w_t) (N, B, d), for N samples of
each of B prompts at once; ``bind(x, y)`` returns that map for fixed prompts (what a decode
calls T times), and ``lr`` is the step size through which multiplicative noise enters (see
:mod:`iclreg.testtime.noises`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import check
from ..registry import Registry
from ..tasks import TASKS

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
        return self.bind(x, y)(w)

    @property
    def d(self) -> int | None:
        """The dimension the decoder emits (None: any)."""
        return None

    def bind(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        """The step for fixed prompts, w (N, B, d) -> F(w) (N, B, d)."""
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

    def bind(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        step = self.lr / x.shape[1] if self.mean else self.lr
        return lambda w: w - step * gradient(x, y, w)


@DECODERS.register("cot")
@dataclass(frozen=True)
class ChainOfThoughtDecoder(Decoder):
    """A trained ``cot`` model (its run's latest checkpoint, or ``step``) as the decoder.

    Attributes:
        run: the run directory.
        step: the checkpoint (none: the latest).
        lr: (resolved, not set) the model's mean-gradient step over the n of its training
            task, i.e. its sum-form step on prompts of that length: multiplicative noise enters
            the decode through it as through ``gd:lr=...``.
    """

    run: str = ""
    step: int | None = None
    lr: float = field(default=0.0, init=False)
    model: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from ..models.cot import ChainOfThought
        from ..train.run import load_run

        check(bool(self.run), "cot: give the trained run's directory, e.g. cot:run=runs/cot")
        model, config = load_run(self.run, step=self.step)
        check(isinstance(model, ChainOfThought),
              f"cot: run '{self.run}' trained a {config.model.split(':')[0]} model, not a "
              "chain-of-thought transformer (model cot)")
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "lr", model.config.lr / TASKS.build(config.task).n)

    @property
    def d(self) -> int:
        return self.model.config.d

    def bind(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        from ..models.cot import emit

        q = self.model.thought_map(x, y)  # (B, d+1, d), once per prompt
        return lambda w: emit(w, q)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "run": self.run, "step": self.step, "lr": self.lr}


def build(spec: str) -> Decoder:
    """Build a decoder from a SPEC such as ``gd:lr=0.01,mean=true``."""
    return DECODERS.build(spec)
