"""Test-time techniques: N sampled decodes of a prompt -> one answer.

Our construction after Chen, Lu, Wu, Zou (arXiv 2508.07571) and the authors' early code:

- ``mean``: w_hat = (1/N) sum_i w^(i), the average of the final iterates.
- ``vote``: majority vote over supports S^(i) = {j : w^(i)_j != 0}; w_hat is the 0/1
  indicator of the most frequent support. Ties go to the support whose first occurrence among
  the samples has the smallest index.
- ``best:reward=R``: w_hat = w^(i*) with i* = argmax_i R(w^(i)), R one of -||w||_2 (``norm2``),
  -||w||_1 (``norm1``), -||X w - y||_2 (``residual``, an in-context verifier on the prompt);
  ties go to the smallest index.

A technique maps (w (N, B, d), x (B, n, d), y (B, n)) -> (B, d); applied to ``w[:N]`` it gives
the answer from the first N samples, so one set of decodes serves every N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..registry import Registry

TECHNIQUES: Registry[Technique] = Registry("technique")
BITS = 62  # support bits packed per int64 word (kept below the sign bit)


@dataclass(frozen=True)
class Technique:
    """Base of every technique: ``technique(w, x, y) -> w_hat``."""

    name: ClassVar[str]
    coefficients: ClassVar[str | None] = None  # the task coefficients it needs (None: any)

    def __call__(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Combine samples.

        Args:
            w: (N, B, d) final iterates of N samples per prompt.
            x: (B, n, d) prompt inputs.
            y: (B, n) prompt labels.
        Returns:
            (B, d) one answer per prompt.
        """
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The resolved parameters, JSON-ready."""
        return {"name": self.name, **vars(self)}


@TECHNIQUES.register("mean")
@dataclass(frozen=True)
class Mean(Technique):
    """The average of the N final iterates."""

    def __call__(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        return w.mean(0)


def _pack(support: Tensor) -> Tensor:
    """Supports (B, N, d) bool -> integer codes (B, N, W), W = ceil(d / 62), equal iff equal."""
    d = support.shape[-1]
    words = -(-d // BITS)
    pad = torch.zeros(*support.shape[:-1], words * BITS - d, dtype=torch.int64,
                      device=support.device)
    bits = torch.cat([support.long(), pad], -1).unflatten(-1, (words, BITS))  # (B, N, W, 62)
    powers = 2 ** torch.arange(BITS, dtype=torch.int64, device=support.device)
    return (bits * powers).sum(-1)  # (B, N, W)


def vote_index(support: Tensor) -> Tensor:
    """The sample carrying the most frequent support, ties to the earliest first occurrence.

    Args:
        support: (B, N, d) bool supports.
    Returns:
        (B,) index in [0, N) of the first occurrence of the winning support.
    """
    batch, samples, _ = support.shape
    codes = _pack(support)  # (B, N, W)
    order = torch.arange(samples, device=support.device).expand(batch, samples)
    for word in reversed(range(codes.shape[-1])):  # stable radix sort, lexicographic over words
        key = codes[..., word].gather(1, order)
        order = order.gather(1, key.sort(dim=1, stable=True).indices)
    ranked = codes.gather(1, order.unsqueeze(-1).expand_as(codes))  # (B, N, W) sorted
    new = torch.ones(batch, samples, dtype=torch.bool, device=support.device)
    new[:, 1:] = (ranked[:, 1:] != ranked[:, :-1]).any(-1)
    group = new.long().cumsum(1) - 1  # (B, N) group of each sorted sample
    counts = torch.zeros(batch, samples, dtype=torch.int64, device=support.device)
    counts.scatter_add_(1, group, torch.ones_like(group))
    first = torch.full((batch, samples), samples, dtype=torch.int64, device=support.device)
    first.scatter_reduce_(1, group, order, reduce="amin")  # smallest original index per group
    score = counts * (samples + 1) - first  # most votes, then earliest first occurrence
    winner = score.argmax(1, keepdim=True)  # (B, 1)
    return first.gather(1, winner).squeeze(1)


@TECHNIQUES.register("vote")
@dataclass(frozen=True)
class Vote(Technique):
    """Majority vote over supports: the 0/1 indicator of the most frequent support."""

    coefficients = "binary01"

    def __call__(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        support = (w != 0).transpose(0, 1)  # (B, N, d)
        index = vote_index(support)  # (B,)
        chosen = support[torch.arange(support.shape[0], device=w.device), index]  # (B, d)
        return chosen.to(w.dtype)


@TECHNIQUES.register("best")
@dataclass(frozen=True)
class Best(Technique):
    """The sample with the largest reward.

    Attributes:
        reward: ``norm2`` (-||w||_2), ``norm1`` (-||w||_1) or ``residual`` (-||X w - y||_2).
    """

    reward: Literal["norm2", "norm1", "residual"] = "norm2"

    def rewards(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """The reward of every sample: (N, B)."""
        if self.reward == "norm2":
            return -w.norm(dim=-1)
        if self.reward == "norm1":
            return -w.abs().sum(-1)
        residual = torch.einsum("bnd,sbd->sbn", x, w) - y  # (N, B, n)
        return -residual.norm(dim=-1)

    def __call__(self, w: Tensor, x: Tensor, y: Tensor) -> Tensor:
        index = self.rewards(w, x, y).argmax(0)  # (B,), first maximum on ties
        return w[index, torch.arange(w.shape[1], device=w.device)]  # (B, d)


def build(spec: str) -> Technique:
    """Build a technique from a SPEC such as ``best:reward=residual``."""
    return TECHNIQUES.build(spec)
