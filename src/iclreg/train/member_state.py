"""Optimiser and scheduler state per member of a training loop.

Members trained in one loop share an optimiser (one parameter group each) and a scheduler;
each member's checkpoint holds its own part (:func:`member_state`, :func:`member_lists`), so a
member resumes alone or in any ensemble (:func:`join_states`, :func:`join_lists`).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor


def member_state(state: dict[str, Any], e: int) -> dict[str, Any]:
    """Member e's part of an optimiser state dict (its param group), renumbered from 0."""
    group = state["param_groups"][e]
    ids = group["params"]
    # copies: the fused step's state tensors are views of its flat buffers (torch.save would
    # write the whole buffer for each)
    copied = {i: {k: v.clone() if isinstance(v, Tensor) else v for k, v in state["state"][old].items()}
              for i, old in enumerate(ids) if old in state["state"]}
    return {"state": copied,
            "param_groups": [{**group, "params": list(range(len(ids)))}]}


def join_states(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`member_state`: one optimiser state dict from the members'."""
    joined: dict[str, Any] = {"state": {}, "param_groups": []}
    offset = 0
    for state in states:
        (group,) = state["param_groups"]
        ids = group["params"]
        joined["state"].update({offset + i: v for i, v in state["state"].items()})
        joined["param_groups"].append({**group, "params": [offset + i for i in ids]})
        offset += len(ids)
    return joined


def member_lists(state: dict[str, Any], e: int, count: int) -> dict[str, Any]:
    """Member e's part of a scheduler state: per-group lists cut to their e-th entry."""
    return {k: [v[e]] if isinstance(v, list) and len(v) == count else v for k, v in state.items()}


def join_lists(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`member_lists`."""
    first = states[0]
    return {k: [s[k][0] for s in states] if isinstance(v, list) and len(v) == 1 else v
            for k, v in first.items()}
