"""Capture of the training step as a CUDA graph (static shapes, GPU only).

The forward pass, backward pass, gradient clipping and optimiser step are recorded once and
replayed every step; prompts are sampled on the GPU from (seed, step) as in eager mode and
copied into static input buffers. The capture's warm-up iterations change the weights and
optimiser state, so both are snapshotted before and restored after: a graphed run follows
the same trajectory as an eager one (to float tolerance). Follows PyTorch's whole-network
capture recipe (torch.cuda.graphs); the optimiser must be built with ``capturable=True``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


class GraphedStep:
    """A replayable training step for inputs of fixed shape.

    Args:
        step: runs forward, backward and the optimiser step on (x, y) and returns the loss;
            it must not synchronise with the host.
        model, optimizer: whose tensors the warm-up changes and which are restored.
        x, y: example inputs fixing the shapes (their values are not used after capture).
    """

    def __init__(self, step: Callable[[Tensor, Tensor], Tensor], model: nn.Module,
                 optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor, warmup: int = 3) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()
        params = [t for t in model.state_dict().values()]
        saved_params = [t.detach().clone() for t in params]
        saved_state = {(id(p), key): t.detach().clone() for p, st in optimizer.state.items()
                       for key, t in st.items() if torch.is_tensor(t)}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step(self.static_x, self.static_y)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.static_loss = step(self.static_x, self.static_y)
        with torch.no_grad():
            for t, saved in zip(params, saved_params, strict=True):
                t.copy_(saved)
            # optimiser state created by the warm-up goes back to its initial value, zero
            # (Adam's moments and step; SGD's momentum buffer, which starts as the gradient)
            for p, st in optimizer.state.items():
                for key, t in st.items():
                    if torch.is_tensor(t):
                        t.copy_(saved_state.get((id(p), key), torch.zeros_like(t)))

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss.clone()
