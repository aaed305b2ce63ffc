"""He et al. (arXiv 2503.12734), the claims of the length part of ``iclreg reproduce demystified``
(``length``): 5-linear-length (linear against softmax attention beyond the training length) and
5-near-bayes (the trained error against the Bayes error, in excess risk), with the exact risks
they compare with (``Theory``: closed forms, no Monte Carlo).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...theory import bayes_risk
from ...theory.debiased_gd import debiased_gd_optimal_lr, debiased_gd_risk, gd_optimal_lr, gd_risk
from ..claims import AtLeast, AtMost, Check, Claim, Falls
from .setup import HE_LR, NOISE_VAR, D, L

LENGTHS = (10, 20, 40, 100, 200)
VARIANTS = {  # name in the plan -> (label, model SPEC)
    "scaled": ("linear / L", "softmax_attention:heads=2,activation=linear"),
    "fixed": (f"linear / {L}", f"softmax_attention:heads=2,activation=linear,linear_scale={L}"),
}
SOFTMAX = "softmax H=2"
MARGIN = 2.0  # "does not generalise as well": linear / L's excess risk at L = 200 at least twice softmax's
TRACK = 0.15  # trained excess ratio within 15% of exact debiased GD's at each L of NEAR
SIGMA, TAU = math.sqrt(NOISE_VAR), 1 / math.sqrt(D)
NEAR = (10, 20, 40)  # the near-Bayes claim's lengths: the training length and below (the paper's tables)
FACTOR = 1 + (D + 1) * TAU**2 / SIGMA**2  # 13: refitted debiased GD's excess over Bayes's as L -> infinity


@dataclass(frozen=True)
class Theory:
    """Exact risks at k = 0..k_max examples (closed forms, no Monte Carlo)."""

    bayes: list[float]
    debiased: list[float]  # debiased GD, step HE_LR
    gd: list[float]  # GD with the step c* optimal at L = 40
    gd_fixed: list[float]  # the same sum divided by 40: GD with step c* k / 40
    c_star: float
    refit_ratio: list[float]  # debiased GD with its step refitted at k: excess risk over Bayes's (k >= 2)

    @classmethod
    def at(cls, k_max: int) -> Theory:
        ks = range(k_max + 1)
        c = gd_optimal_lr(D, L, SIGMA, TAU)
        return cls([bayes_risk(D, k, SIGMA, TAU) for k in ks],
                   [debiased_gd_risk(D, k, SIGMA, TAU, HE_LR) for k in ks],
                   [gd_risk(D, k, SIGMA, TAU, c) for k in ks],
                   [gd_risk(D, k, SIGMA, TAU, c * k / L) if k else SIGMA**2 + D * TAU**2 for k in ks], c,
                   [refit_ratio(k) for k in ks])


def refit_ratio(k: int) -> float:
    """Excess risk of debiased GD with the step optimal at k examples over the Bayes excess (nan below 2)."""
    if k < 2:
        return math.nan
    risk = debiased_gd_risk(D, k, SIGMA, TAU, debiased_gd_optimal_lr(D, k, SIGMA, TAU))
    return (risk - SIGMA**2) / (bayes_risk(D, k, SIGMA, TAU) - SIGMA**2)


def at_lengths(curve: Sequence[float]) -> dict[str, float]:
    """The values of ``curve`` at ``LENGTHS``, by ``L=<k>``."""
    return {f"L={k}": float(curve[k]) for k in LENGTHS}


def excess(value: float) -> float:
    """The error above the noise floor sigma^2, which no predictor can remove."""
    return value - SIGMA**2


def linear_claim(softmax: Sequence[float], scaled: dict[str, Sequence[float]],
                 fixed: dict[str, Sequence[float]]) -> Claim:
    """5-linear-length, for the paper's linear attention: scores over the number of examples L
    (``scaled``, by seed); the fixed-scale variant (``fixed``) is reported beside it, unchecked."""
    big = max(LENGTHS)
    return Claim.of(
        "5-linear-length",
        f"trained at L = {L}: softmax H=2 keeps improving past {L}; linear attention with its scores divided "
        "by the number of examples L (the linear self-attention of von Oswald, Ahn and Zhang et al., which "
        rf"the paper compares with) does not generalise as well: its excess risk ($\mathrm{{MSE}} - "
        rf"\sigma^2$) at L = {big} "
        f"at least {MARGIN:g}x softmax's. Linear / {L} (fixed scale, fails by construction) is reported "
        "beside it, not checked",
        "softmax readily generalises to longer sequences, linear transformers do not",
        {SOFTMAX: at_lengths(softmax), **{k: at_lengths(c) for k, c in {**scaled, **fixed}.items()}},
        Check(f"{SOFTMAX} at L = {L}, 100, {big}", [softmax[L], softmax[100], softmax[big]], Falls()),
        Check(f"linear / L excess over {SOFTMAX} excess at L = {big} (each seed)",
              {k: excess(c[big]) / excess(softmax[big]) for k, c in scaled.items()}, AtLeast(MARGIN)),
        figure="length_linear.png")


def near_bayes_claim(softmax: Sequence[float], theory: Theory) -> Claim:
    """5-near-bayes on excess risk (MSE - sigma^2) over the Bayes excess, at the lengths ``NEAR``
    up to the training length; the longer lengths are reported (``measured``), not checked."""
    trained = {f"L={k}": excess(softmax[k]) / excess(theory.bayes[k]) for k in LENGTHS}
    exact = {f"L={k}": excess(theory.debiased[k]) / excess(theory.bayes[k]) for k in LENGTHS}
    near = [f"L={k}" for k in NEAR]
    return Claim.of(
        "5-near-bayes",
        f"near-Bayes up to a factor, in excess risk over the Bayes excess, where the paper means it: a "
        f"model read at its training length and below (L = {', '.join(map(str, NEAR))}): the trained "
        rf"{SOFTMAX} (best seed) ratio at most {FACTOR:g} = $1 + (d+1) \tau^2 / \sigma^2$ (debiased GD with "
        rf"its step refitted at each $L$, as $L \to \infty$) and within {100 * TRACK:g}% of exact debiased "
        f"GD (lr {HE_LR:.3f}); beyond {L} a model trained at {L} is not checked (its ratio grows)",
        "nearly achieves Bayesian optimality up to a proportional factor",
        {"trained excess / Bayes excess": trained, "debiased GD (exact)": exact,
         "debiased GD, step refitted at L (exact)": {f"L={k}": theory.refit_ratio[k] for k in LENGTHS}},
        Check(f"trained excess / Bayes excess, L <= {L}", {k: trained[k] for k in near}, AtMost(FACTOR)),
        Check("|trained over debiased GD - 1|, L <= 40", {k: abs(trained[k] / exact[k] - 1) for k in near},
              AtMost(TRACK)),
        figure="near_bayes.png")
