"""A chain-of-thought transformer for regression: one layer of linear self-attention with a
residual connection that emits gradient-descent iterates (after Chen, Lu, Wu, Zou,
arXiv 2508.07571, and the authors' early code; the exact form here is ours).

Tokens have width D = 2d + 2. Context tokens carry the prompt's pairs, chain-of-thought tokens
the iterates:

    context:  z_i = [x_i, y_i, 0_d, 0]        thought:  u_t = [0_d, 0, w_t, 1]

A thought token attends to the m context tokens only (not to other thoughts), and the layer
emits the next iterate from the w slot of

    out(u_t) = u_t + u_t W_qk (sum_i z_i^T z_i) W_ov / m,

so w_{t+1} = w_t + [w_t, 1] Q with Q = W_qk[thought rows, context cols] C W_ov[context rows,
w cols] / m (d+1, d), C = sum_i [x_i, y_i]^T [x_i, y_i]: every other block of W_qk and W_ov
multiplies a zero of the tokens. Q is affine in w_t, so the emitted map is F(w) = P w + b with
P = I + Q[:d]^T, b = Q[d] (:meth:`ChainOfThought.affine`).

Training (``train.loss: chain``) is teacher-forced on gradient-descent trajectories in the
mean-gradient form, from w_0 = 0 over all n pairs of the prompt:

    w_{t+1} = w_t - (lr / n) X^T (X w_t - y),   t = 0, ..., steps - 1,

the loss being the mean squared error of the emitted w_{t+1} given the true w_t, over the
steps. W_qk[thought, context] = -c diag(I_d, -1) and W_ov[context, w] = (lr / c) [I_d; 0] emit
exact GD, for any c != 0. Because the attention averages over the context, a model trained at
n emits the mean-gradient GD step on a prompt of any length m; on prompts of length n it is the
sum form with step lr / n. As a predictor (``forward``) it decodes ``steps`` thoughts greedily
from each prefix's pairs and predicts y_i = <w_steps, x_i>.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import check
from .base import MODELS, ModelConfig, StackedPredictor
from .layouts import stack


@MODELS.register("cot")
@dataclass(frozen=True)
class ChainOfThoughtConfig(ModelConfig):
    """One-layer linear self-attention emitting GD iterates.

    Attributes:
        lr: step of the mean-gradient GD trajectories it is taught (and ``forward`` decodes).
        steps: thoughts per training prompt; ``forward`` decodes as many.
        init_scale: standard deviation of the N(0, init_scale^2) initial entries.
    """

    member_fields = ("init_scale",)
    chain = True
    lr: float = 0.1
    steps: int = 10
    init_scale: float = 0.02

    def __post_init__(self) -> None:
        check(self.d >= 1, f"cot: d must be at least 1, got {self.d}")
        check(self.lr > 0, f"cot: lr must be > 0, got {self.lr}")
        check(self.steps >= 1, f"cot: steps must be at least 1, got {self.steps}")
        check(self.init_scale > 0, f"cot: init_scale must be > 0, got {self.init_scale}")

    def build(self, generator: torch.Generator | None = None) -> ChainOfThought:
        return ChainOfThought(self, generator)


def gd_chain(x: Tensor, y: Tensor, lr: float, steps: int) -> Tensor:
    """Mean-gradient GD iterates w_0 = 0, ..., w_steps over all pairs: (..., n, d), (..., n)
    -> (..., steps + 1, d)."""
    n = x.shape[-2]
    s = x.transpose(-1, -2) @ x / n  # (..., d, d)
    g = (x.transpose(-1, -2) @ y.unsqueeze(-1)).squeeze(-1) / n  # (..., d)
    w = torch.zeros_like(g)
    path = [w]
    for _ in range(steps):
        w = w - lr * ((s @ w.unsqueeze(-1)).squeeze(-1) - g)
        path.append(w)
    return torch.stack(path, dim=-2)


def transfer(W_qk: Tensor, W_ov: Tensor, moments: Tensor, count: Tensor | float) -> Tensor:
    """Q = W_qk[thought, context] C W_ov[context, w] / m for stacked parameters.

    Args:
        W_qk, W_ov: (E, D, D). moments: C, (E, ..., d+1, d+1). count: m, broadcastable to
            moments' batch shape (..., 1, 1); no context (m = 0) gives Q = 0.
    Returns:
        (E, ..., d+1, d).
    """
    d = (W_qk.shape[-1] - 2) // 2
    expand = (slice(None),) + (None,) * (moments.dim() - 3)
    qk = W_qk[:, d + 1:, : d + 1][expand]  # (E, 1.., d+1, d+1): rows [w, 1], cols [x, y]
    ov = W_ov[:, : d + 1, d + 1: 2 * d + 1][expand]  # (E, 1.., d+1, d): rows [x, y], cols w
    count = torch.as_tensor(count, dtype=moments.dtype, device=moments.device)
    return qk @ moments @ ov / count.clamp_min(1.0)


def emit(w: Tensor, q: Tensor) -> Tensor:
    """One thought: w + [w, 1] Q for iterates (..., d) and Q (..., d+1, d) -> (..., d)."""
    return w + (w.unsqueeze(-2) @ q[..., :-1, :]).squeeze(-2) + q[..., -1, :]


class ChainOfThought(StackedPredictor):
    """The chain-of-thought transformer; parameters ``W_qk``, ``W_ov`` (D, D), D = 2d + 2, drawn
    N(0, init_scale^2) from ``generator`` (W_qk first)."""

    def __init__(self, config: ChainOfThoughtConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        width = 2 * config.d + 2
        self.W_qk = nn.Parameter(config.init_scale * torch.randn(width, width, generator=generator))
        self.W_ov = nn.Parameter(config.init_scale * torch.randn(width, width, generator=generator))

    @staticmethod
    def stacked_forward(config: ChainOfThoughtConfig, params: dict[str, Tensor], x: Tensor,
                        y: Tensor, last_only: bool = False) -> Tensor:
        """Predictions for every prefix: decode ``steps`` thoughts from the first i pairs and
        predict <w, x_i>. x (E, B, n, d), y (E, B, n) -> (E, B, n), or (E, B, 1)."""
        z = stack(x, y)
        outer = z.unsqueeze(-1) * z.unsqueeze(-2)  # (E, B, n, d+1, d+1)
        moments = outer.cumsum(2) - outer  # pairs j < i
        count = torch.arange(x.shape[2], dtype=x.dtype, device=x.device).view(-1, 1, 1)
        if last_only:
            moments, count, x = moments[:, :, -1:], count[-1:], x[:, :, -1:]
        q = transfer(params["W_qk"], params["W_ov"], moments, count)  # (E, B, n, d+1, d)
        w = torch.zeros_like(x)
        for _ in range(config.steps):
            w = emit(w, q)
        return (w * x).sum(-1)

    @staticmethod
    def stacked_chain_loss(config: ChainOfThoughtConfig, params: dict[str, Tensor], x: Tensor,
                           y: Tensor) -> Tensor:
        """Teacher-forced loss on the prompt's GD trajectory: mean over prompts, thoughts and
        coordinates of (emitted w_{t+1} - true w_{t+1})^2, per member (E,)."""
        with torch.no_grad():
            path = gd_chain(x, y, config.lr, config.steps)  # (E, B, steps + 1, d)
        z = stack(x, y)
        q = transfer(params["W_qk"], params["W_ov"], z.transpose(-1, -2) @ z, x.shape[2])  # (E, B, d+1, d)
        emitted = emit(path[:, :, :-1], q.unsqueeze(2))  # (E, B, steps, d)
        return (emitted - path[:, :, 1:]).square().flatten(1).mean(1)

    def thought_map(self, x: Tensor, y: Tensor) -> Tensor:
        """Q of each prompt with all its pairs as context, in x's dtype and device: (B, n, d),
        (B, n) -> (B, d+1, d); the emitted thought is ``emit(w, Q)``."""
        z = stack(x, y)
        params = [p.detach().to(dtype=x.dtype, device=x.device).unsqueeze(0) for p in (self.W_qk, self.W_ov)]
        return transfer(*params, (z.transpose(-1, -2) @ z).unsqueeze(0), x.shape[1])[0]

    def affine(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The emitted map F(w) = P w + b of each prompt: P (B, d, d), b (B, d)."""
        q = self.thought_map(x, y)
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        return eye + q[:, :-1].transpose(-1, -2), q[:, -1]
