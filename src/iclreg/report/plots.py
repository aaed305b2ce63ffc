"""A figure as data: the kind of figure and the numbers it shows, drawn later.

A reproduction's analysis measures and claims; it never draws. Each figure it wants is a
:class:`Plot`, the name of a figure kind and the arguments of that kind's function:

    Plot("lines", series, "number of examples $k$", "MSE", logy=True)

The runner saves every plot with the reproduction's measurements (``measurements.json``) and
draws them from there, so ``iclreg report DIR`` redraws a finished reproduction without
rerunning anything. This module imports no matplotlib: the kinds are looked up (and their
modules imported) only when a plot is drawn.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# kind -> "module:function" (modules under iclreg.report): one function per kind of figure
KINDS = {
    "lines": "figures:lines_figure",  # curves (with bands) against k, N, L or steps
    "error_curves": "figures:error_curves_figure",  # error against k with 95% bands, per predictor
    "bars": "figures:bars_figure",  # grouped bars with a reference line
    "heads": "figures:heads_figure",  # per-head heat maps of KQ with the OV row under each
    "similarity": "figures:similarity_figure",  # heat map with a colour bar and a floor mark
    "learning_curves": "figures_heads:learning_curves_figure",  # seeds' losses by H, reference lines
    "head_blocks": "figures_heads:head_blocks_figure",  # per-head KQ/OV blocks, one row per H
    "matrix_grid": "figures_heads:matrix_grid_figure",  # rows of matrices on one colour scale
    "averaging": "figures_decoders:averaging_figure",  # excess of the N-average against N, two decoders
    "thoughts": "figures_decoders:thoughts_figure",  # greedy and N-average error against T
    "vote": "figures_decoders:vote_figure",  # vote recovery against N with the exact rate
    "regime_maps": "figures_decoders:regime_maps_figure",  # where averaging helps: two sign maps
}


COINCIDE = 0.02  # two curves within 2% (relative) of each other at every x are drawn as coinciding


def coincide(a: Sequence[float], b: Sequence[float], rel: float = COINCIDE) -> bool:
    """Whether curves ``a`` and ``b`` (one value per x) agree within ``rel`` at every x: drawn
    alike, the one on top would hide the other."""
    return all(abs(u - v) <= rel * max(abs(u), abs(v)) for u, v in zip(a, b, strict=True))


@dataclass(frozen=True)
class Plot:
    """A figure of kind ``kind`` (a key of ``KINDS``) drawn from ``args`` and ``kwargs``."""

    kind: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __init__(self, kind: str, *args: Any, **kwargs: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown figure kind {kind!r}; the kinds are {', '.join(sorted(KINDS))}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "args", tuple(args))
        object.__setattr__(self, "kwargs", dict(kwargs))

    def draw(self) -> Figure:
        """The matplotlib figure (imports the kind's module)."""
        module, name = KINDS[self.kind].split(":")
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(*self.args, **self.kwargs)


__all__ = ["COINCIDE", "KINDS", "Plot", "coincide"]
