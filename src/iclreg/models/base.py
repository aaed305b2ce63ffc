"""The model registry and the predictor contract for trainable models.

A model is an ``nn.Module`` whose ``forward(x (B, n, d), y (B, n)) -> (B, n)`` follows the
same contract as the estimators: ``out[:, i]`` predicts ``y[:, i]`` from ``x[:, i]`` and the
first ``i`` pairs only. Models are registered as frozen config dataclasses; ``build(SPEC)``
constructs the config, validates it, and returns ``config.build(generator)``, a module that
keeps its config in ``.config`` (checkpoints carry it) and draws every initial value from
``generator`` (STYLE rule 7; ``None`` is torch's global generator, as for any ``nn.Module``).

A model takes prompts of its config's ``d`` only (a SPEC that leaves d out gets the class's
default, 5 for most); ``build(SPEC, task=task)`` takes d from the task instead, and every
forward pass refuses a prompt of another d with a one-line :class:`~iclreg.errors.UsageError`
(a forward pre-hook that every :class:`Predictor` registers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from ..errors import UsageError
from ..registry import Registry
from ..spec import Spec, parse_spec

if TYPE_CHECKING:
    from ..tasks.base import Task

MODELS: Registry[ModelConfig] = Registry("model")


@dataclass(frozen=True)
class ModelConfig:
    """Base of every model config: the input dimension, and which fields set only the
    initialisation.

    Attributes:
        member_fields: (class attribute) the fields that may differ between members of one
            ensemble because they only set the initial weights (``init``, its scale, ...);
            members must share every other field (``iclreg.train.loop.group_key``).
    """

    name: ClassVar[str]
    member_fields: ClassVar[tuple[str, ...]] = ()
    chain: ClassVar[bool] = False  # trained on its own chain-of-thought loss (``train.loss: chain``)
    d: int = 5

    def build(self, generator: torch.Generator | None = None) -> Predictor:
        """The model, every initial value drawn from ``generator`` (global RNG if ``None``)."""
        raise NotImplementedError


def check_prompt_dim(config: ModelConfig, x: Tensor) -> None:
    """Refuse a prompt whose d (the last axis of x: (..., n, d)) is not the model's."""
    if x.dim() >= 2 and x.shape[-1] != config.d:
        raise UsageError(
            f"model '{config.name}' takes prompts of d={config.d} but x has d={x.shape[-1]} (shape "
            f"{tuple(x.shape)}); build it for this d, '{config.name}:d={x.shape[-1]},...', or with "
            f"iclreg.models.build(SPEC, task=task)"
        )


def _check_inputs(module: Predictor, args: tuple[Any, ...]) -> None:
    """Forward pre-hook of every predictor: the prompt's d against the model's."""
    if args and isinstance(args[0], Tensor):
        check_prompt_dim(module.config, args[0])


class Predictor(nn.Module):
    """Base of trainable predictors: ``forward(x, y) -> (B, n)`` under the prefix contract;
    a prompt of another d than ``config.d`` is refused before the forward pass runs."""

    config: ModelConfig

    def __init__(self) -> None:
        super().__init__()
        self.register_forward_pre_hook(_check_inputs)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class StackedPredictor(Predictor):
    """A predictor whose forward pass is written for E stacked parameter sets at once.

    Subclasses implement :meth:`stacked_forward` with every parameter carrying a leading
    ensemble axis E and inputs (E, B, n, d); the single-model ``forward`` is the same code at
    E = 1, so a model trained alone and member e of an ensemble compute alike
    (``iclreg.models.Ensemble``).
    """

    @staticmethod
    def stacked_forward(
        config: Any, params: dict[str, Tensor], x: Tensor, y: Tensor, last_only: bool = False
    ) -> Tensor:
        """(E, B, n, d), (E, B, n[, K]) -> (E, B, n[, K]) for parameters stacked along E;
        with ``last_only`` only the last position is predicted: (E, B, 1[, K]) (training on
        the query's loss needs no other)."""
        raise NotImplementedError

    @staticmethod
    def stacked_chain_loss(config: Any, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Per-member teacher-forced chain-of-thought loss (E,), for configs with ``chain``."""
        raise NotImplementedError

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        params = {name: p.unsqueeze(0) for name, p in self.named_parameters()}
        return self.stacked_forward(self.config, params, x.unsqueeze(0), y.unsqueeze(0)).squeeze(0)

    def predict_last(self, x: Tensor, y: Tensor) -> Tensor:
        """The prediction at the last position only, (B, n, d), (B, n[, K]) -> (B[, K]): what
        long prompts need (every prefix of a length-n prompt costs n times more)."""
        check_prompt_dim(self.config, x)
        params = {name: p.unsqueeze(0) for name, p in self.named_parameters()}
        out = self.stacked_forward(self.config, params, x.unsqueeze(0), y.unsqueeze(0), last_only=True)
        return out[0, :, 0]


def build(spec: str, generator: torch.Generator | None = None, task: Task | None = None,
          **ctx: Any) -> Predictor:
    """Build a model from a SPEC such as ``softmax_attention:d=5,heads=2``, its initial
    weights drawn from ``generator``; with ``task``, the keys the task decides (d, and the
    label slots K of a multi-task task) come from it when the SPEC leaves them out."""
    return MODELS.build(spec if task is None else fit_to_task(spec, task), **ctx).build(generator)


def fit_to_task(spec: str | Spec, task: Task) -> Spec:
    """The SPEC with d (and ``labels`` when the task has K > 1 label slots) filled from the
    task where it leaves them out; a d that differs from the task's is refused."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    fields = MODELS.spec_fields(parsed.name)
    fill: dict[str, Any] = {"d": task.d} if "d" in fields else {}
    if "labels" in fields and task.num_labels > 1:
        fill["labels"] = task.num_labels
    given = parsed.params.get("d", task.d)
    if given != task.d:
        raise UsageError(f"model SPEC '{parsed.text or parsed.name}' gives d={given} but the task has "
                         f"d={task.d}; leave d out or give d={task.d}")
    return Spec(parsed.name, {**fill, **parsed.params}, parsed.text)
