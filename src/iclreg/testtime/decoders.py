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
from ..registry import Registry, context
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

    def affine(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The step as F(w) = P w + b per prompt: P (B, d, d), b (B, d) (every decoder here is
        affine in w; the exact decode moments of :mod:`iclreg.theory.testtime` use this form)."""
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

    def step_size(self, n: int) -> float:
        """The step on the sum-form gradient X^T (X w - y) of a prompt of n pairs."""
        return self.lr / n if self.mean else self.lr

    def bind(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        step = self.step_size(x.shape[1])
        return lambda w: w - step * gradient(x, y, w)

    def affine(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """P = I - step X^T X, b = step X^T y."""
        step = self.step_size(x.shape[1])
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        xt = x.transpose(-1, -2)
        return eye - step * xt @ x, step * (xt @ y.unsqueeze(-1)).squeeze(-1)


@DECODERS.register("cot")
@dataclass(frozen=True)
class ChainOfThoughtDecoder(Decoder):
    """A trained ``cot`` model as the decoder; ``from_run`` loads one (the SPEC
    ``cot:run=RUN_DIR[,step=S]`` builds through it).

    Attributes:
        run: the run directory it was loaded from (a label).
        step: the checkpoint (none: the latest).
        lr: (not set) the model's mean-gradient step over the n of its training task, i.e. its
            sum-form step on prompts of that length: multiplicative noise enters the decode
            through it as through ``gd:lr=...``.
        model: the loaded :class:`iclreg.models.cot.ChainOfThought`.
        task_n: the n of the task it was trained on.
    """

    run: str = ""
    step: int | None = None
    lr: float = field(default=0.0, init=False)
    model: Any = context()
    task_n: int = context(0)

    def __post_init__(self) -> None:
        check(self.model is not None and self.task_n >= 1,
              "cot: give the trained run's directory, e.g. cot:run=runs/cot")
        object.__setattr__(self, "lr", self.model.config.lr / self.task_n)

    @classmethod
    def from_spec(cls, run: str = "", step: int | None = None) -> ChainOfThoughtDecoder:
        """What ``DECODERS.build`` calls: the SPEC keys are the run and the step."""
        return cls.from_run(run, step)

    @classmethod
    def from_run(cls, run: str, step: int | None = None) -> ChainOfThoughtDecoder:
        """Load a trained run's model (its latest checkpoint, or ``step``)."""
        from ..models.cot import ChainOfThought
        from ..train.run import load_run

        check(bool(run), "cot: give the trained run's directory, e.g. cot:run=runs/cot")
        model, config = load_run(run, step=step)
        check(isinstance(model, ChainOfThought),
              f"cot: run '{run}' trained a {config.model.split(':')[0]} model, not a "
              "chain-of-thought transformer (model cot)")
        return cls(run=str(run), step=step, model=model, task_n=TASKS.build(config.task).n)

    @property
    def d(self) -> int:
        return self.model.config.d

    def bind(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        from ..models.cot import emit

        q = self.model.thought_map(x, y)  # (B, d+1, d), once per prompt
        return lambda w: emit(w, q)

    def affine(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.model.affine(x, y)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "run": self.run, "step": self.step, "lr": self.lr}


def build(spec: str) -> Decoder:
    """Build a decoder from a SPEC such as ``gd:lr=0.01,mean=true``."""
    return DECODERS.build(spec)
