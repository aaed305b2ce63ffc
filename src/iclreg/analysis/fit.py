"""Slope and rate fitting: least-squares lines through (x, y) and through (log x, log y).

One place for the fits reproductions report: the O(1/L) rate of a concentration error
(log-log slope -1), the iterations per layer of a probe (linear slope), the growth factor of
GD steps per layer (the slope of log2 steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of y against x; 0 for fewer than two points."""
    if len(xs) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y against log x: the rate r in y ~ x^r (y > 0; a y of 0 is
    taken as 1e-300)."""
    return slope([math.log(x) for x in xs], [math.log(max(y, 1e-300)) for y in ys])


def growth_factor(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The factor by which y grows per unit of x in y ~ c g^x: 2 ** slope(x, log2 y)."""
    return 2 ** slope(xs, [math.log2(y) for y in ys])
