"""Ensembles: E independent models of one architecture evaluated by one batched forward pass.

Each member keeps its own parameters (so an optimiser can give each member its own learning
rate and state, exactly as if it were trained alone); the forward pass stacks them along a
leading axis E and runs the architecture's ``stacked_forward`` once. A model trained alone
runs the same code at E = 1, so member e of an ensemble follows the same computation as the
same configuration trained alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import check
from .base import StackedPredictor, check_prompt_dim


class Ensemble(nn.Module):
    """E members of one ``StackedPredictor`` class with identical parameter shapes."""

    def __init__(self, members: Sequence[StackedPredictor]) -> None:
        super().__init__()
        check(len(members) >= 1, "an ensemble needs at least one member")
        first = members[0]
        check(
            isinstance(first, StackedPredictor),
            f"{type(first).__name__} has no ensemble form (stacked_forward)",
        )
        shapes = {k: v.shape for k, v in first.named_parameters()}
        for m in members[1:]:
            check(type(m) is type(first), "ensemble members must share one architecture")
            check(
                {k: v.shape for k, v in m.named_parameters()} == shapes,
                "ensemble members must have the same parameter shapes; group them by shape",
            )
        self.members = nn.ModuleList(members)
        self.names = list(shapes)

    def __len__(self) -> int:
        return len(self.members)

    def stacked_parameters(self) -> dict[str, Tensor]:
        """Every parameter stacked along the ensemble axis: name -> (E, ...)."""
        per_member = [dict(m.named_parameters()) for m in self.members]
        return {name: torch.stack([p[name] for p in per_member]) for name in self.names}

    def forward(self, x: Tensor, y: Tensor, last_only: bool = False, chain: bool = False) -> Tensor:
        """(E, B, n, d), (E, B, n[, K]) -> (E, B, n[, K]); member e sees x[e], y[e].
        ``last_only`` predicts the last position only: (E, B, 1[, K]); ``chain`` returns the
        members' teacher-forced chain-of-thought losses instead (E,) (``stacked_chain_loss``)."""
        check(x.shape[0] == len(self), f"x has {x.shape[0]} ensemble slices for {len(self)} members")
        first = self.members[0]
        check_prompt_dim(first.config, x)
        if chain:
            return first.stacked_chain_loss(first.config, self.stacked_parameters(), x, y)
        return first.stacked_forward(first.config, self.stacked_parameters(), x, y, last_only)
