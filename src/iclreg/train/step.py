"""The training step as a strategy, chosen once from the run config (:func:`build_step`).

A step takes every member's prompts, (E, B, n, d) and (E, B, n), runs the forward pass
(under bf16 autocast when ``run.amp``), the loss, the backward pass, each member's gradient
clipping and the optimiser step, and returns the members' losses (E,):

- :class:`EagerStep`: the network as it is;
- :class:`CompiledStep`: the forward pass through ``torch.compile`` (``run.compile``);
- :class:`GraphedStep`: another step captured as a CUDA graph and replayed (``run.cuda_graph``);
- ``fused.FusedStep``: hand-derived gradients and a flat Adam over every member at once, for
  the one-layer attention family (``run.engine=auto`` picks it wherever it applies).

The CUDA graph follows PyTorch's whole-network capture recipe (torch.cuda.graphs): the step
is recorded once and replayed every step; prompts are sampled on the GPU from (seed, step) as
in eager mode and copied into static input buffers. The capture's warm-up iterations change
the weights and optimiser state, so both are snapshotted before and restored after: a graphed
run follows the same trajectory as an eager one (to float tolerance). The optimiser must be
built with ``capturable=True``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor, nn

from ..errors import UsageError
from .config import ExperimentConfig
from .fused.step import FusedStep, unsupported


def prompt_losses(pred: Tensor, y: Tensor, kind: str) -> Tensor:
    """Per-member mean squared error over every prefix (``all``) or at the last position
    (``query``): (E, B, n[, K]) -> (E,)."""
    err = (pred - y).square()
    return (err[:, :, -1] if kind == "query" else err).flatten(1).mean(1)


class EagerStep:
    """One optimiser step of every member, the network run as it is.

    Args:
        net: (E, B, n, d), (E, B, n) -> (E, B, n); its ``members`` are the E models, which
            share no parameter (each gets its own gradient and its own clipping).
        last_only: the net predicts the last position alone (``last_only=True``), which is all
            the ``query`` loss needs.
    """

    set_to_none = True  # zero_grad frees the gradients (a captured graph keeps them)

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, config: ExperimentConfig,
                 device: torch.device, last_only: bool) -> None:
        self.net, self.optimizer, self.last_only = net, optimizer, last_only
        self.loss, self.clip = config.train.loss, config.optimizer.clip
        self.forward = self.wrap(net)
        self.amp: AbstractContextManager = (torch.autocast(device.type, torch.bfloat16)
                                            if config.run.amp == "bf16" else nullcontext())

    def wrap(self, net: nn.Module) -> nn.Module:
        """What runs the forward pass."""
        return net

    def losses(self, x: Tensor, y: Tensor) -> Tensor:
        """The members' losses (E,) on (E, B, n, d), (E, B, n), under autocast if asked."""
        with self.amp:
            if self.loss == "chain":  # the model's own teacher-forced chain-of-thought loss
                return self.forward(x, y, chain=True).float()
            if self.last_only:  # the query's loss needs the last position only
                return prompt_losses(self.forward(x, y, last_only=True).float(), y[:, :, -1:].float(),
                                     self.loss)
            return prompt_losses(self.forward(x, y).float(), y.float(), self.loss)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        """Forward, backward, clipping and optimiser step on (E, B, n, d); losses (E,)."""
        losses = self.losses(x, y)
        self.optimizer.zero_grad(set_to_none=self.set_to_none)
        losses.sum().backward()  # members share no parameter: each gets its own gradient
        if self.clip is not None:
            for member in self.net.members:
                torch.nn.utils.clip_grad_norm_(member.parameters(), self.clip)
        self.optimizer.step()
        return losses.detach()


class CompiledStep(EagerStep):
    """One optimiser step of every member, the forward pass compiled by ``torch.compile``."""

    def wrap(self, net: nn.Module) -> nn.Module:
        return torch.compile(net)


class GraphedStep:
    """Another step captured as a CUDA graph at its first call, replayed at every call.

    The inputs' shapes are those of the first call (static shapes); ``step`` must not
    synchronise with the host.
    """

    def __init__(self, step: EagerStep, warmup: int = 3) -> None:
        self.step, self.warmup = step, warmup
        step.set_to_none = False  # the graph reads and writes fixed gradient buffers
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        if self.graph is None:
            self._capture(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss.clone()

    def _capture(self, x: Tensor, y: Tensor) -> None:
        """Record the step on inputs shaped as (x, y); leave weights and state as they were."""
        model, optimizer = self.step.net, self.step.optimizer
        self.static_x, self.static_y = x.clone(), y.clone()
        params = [t for t in model.state_dict().values()]
        saved_params = [t.detach().clone() for t in params]
        saved_state = {(id(p), key): t.detach().clone() for p, st in optimizer.state.items()
                       for key, t in st.items() if torch.is_tensor(t)}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.step(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = self.step(self.static_x, self.static_y)
        with torch.no_grad():
            for t, saved in zip(params, saved_params, strict=True):
                t.copy_(saved)
            # optimiser state created by the warm-up goes back to its initial value, zero
            # (Adam's moments and step; SGD's momentum buffer, which starts as the gradient)
            for p, st in optimizer.state.items():
                for key, t in st.items():
                    if torch.is_tensor(t):
                        t.copy_(saved_state.get((id(p), key), torch.zeros_like(t)))


Step = EagerStep | GraphedStep | FusedStep


def build_step(config: ExperimentConfig, net: nn.Module, optimizer: torch.optim.Optimizer,
               device: torch.device, last_only: bool) -> Step:
    """The step ``config.run`` asks for: fused where ``run.engine`` allows and it applies;
    otherwise autograd, compiled or not, captured as a CUDA graph or not."""
    why = unsupported(config, net) if config.run.engine != "autograd" else "run.engine=autograd"
    if why is None:
        return FusedStep(net, optimizer, config)
    if config.run.engine == "fused":
        raise UsageError(f"run.engine=fused does not apply here: {why}; use run.engine=auto")
    kind = CompiledStep if config.run.compile else EagerStep
    step = kind(net, optimizer, config, device, last_only)
    return GraphedStep(step) if config.run.cuda_graph else step
