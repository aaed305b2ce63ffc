"""The claims of ``iclreg reproduce softmax-limit`` (Boursier & Boyer, arXiv 2512.11784), built from
the measurements of ``softmax_limit_measure``.

1. Gaussian tokens: finite-L attention converges to the linear limit V m + V G K^T Q z; Rademacher
   tokens: the limit is V tanh(K^T Q z), not linear.
2. The squared output and gradient errors fall like 1/L.
3. Finite-L softmax training tracks the infinite-L gradient flow and approaches linear attention
   as L grows; the flow conserves ||A||_F^2 - b^2 and ends at the Bayes-optimal predictor.
4. The finite/infinite-L gaps stay small along training, not only at initialisation.
"""

from __future__ import annotations

from .claims import AtLeast, AtMost, Check, Claim, Falls
from .softmax_limit_measure import Concentration, Training
from .softmax_limit_setup import (
    CONCENTRATION_FIGURE,
    PUBLISHED_GAP,
    PUBLISHED_SLOPES,
    RADEMACHER_FIGURE,
    STABILITY_FIGURE,
    TRAINING_FIGURE,
    by_length,
)


def concentration_claims(m: Concentration) -> tuple[Claim, Claim]:
    """1-gaussian-limit (the output error falls at least 50-fold over the lengths, for every
    covariance) and 2-slopes (log-log slopes in [-1.2, -0.75])."""
    lengths = m.lengths
    gaussian = Claim.in_range(
        "1-gaussian-limit", "Gaussian tokens: finite-L output -> V m + V G K^T Q z (relative squared "
        f"error at L = {lengths[-1]}; factor by which the squared error falls from L = {lengths[0]})",
        "converges (Gaussian identity)", {"relative error": m.relative, "fall": m.fall},
        low=50, what=f"fall from L = {lengths[0]} to {lengths[-1]} (a 1/L rate gives "
              f"{lengths[-1] // lengths[0]}), every covariance:", value=m.fall,
        figure=CONCENTRATION_FIGURE)
    slopes = Claim.in_range(
        "2-slopes", f"log-log slopes of the squared output and gradient errors, L = {lengths[0]}.."
        f"{lengths[-1]} (output, gradient)",
        f"{PUBLISHED_SLOPES[0]} to {PUBLISHED_SLOPES[1]} (independent reproduction, d = 4)",
        m.slopes, low=-1.2, high=-0.75, figure=CONCENTRATION_FIGURE)
    return gaussian, slopes


def rademacher_claim(gap: dict[str, list[float]]) -> Claim:
    """1-rademacher: close to V tanh(a) at the largest L, far from the linear V a at every L."""
    return Claim.of(
        "1-rademacher", "Rademacher tokens: the limit is not linear (it is V tanh(a))",
        "the identity is Gaussian-specific", {"vs linear": gap["vs_linear"], "vs tanh": gap["vs_tanh"]},
        Check("vs tanh at the largest L", gap["vs_tanh"][-1], AtMost(0.01, strict=True)),
        Check("vs linear at every L", gap["vs_linear"], AtLeast(0.3, strict=True)),
        figure=RADEMACHER_FIGURE)


def training_claims(m: Training, lengths: list[int]) -> list[Claim]:
    """3-tracks-flow (the gap to the flow falls with L, the last a third of the first or less) and
    3-softmax-vs-linear (the softmax - linear gap falls with L)."""
    first, last = lengths[0], lengths[-1]
    final_gap = {L: m.final_gap(L) for L in lengths}
    linear_gap = {L: m.linear_gap(L) for L in lengths}
    return [
        Claim.of("3-tracks-flow", "|softmax risk - infinite-L flow risk| at the end of training, by "
                 "training L", "finite-L softmax training tracks the infinite-L dynamics once L is large",
                 by_length(final_gap), Check("by L", list(final_gap.values()), Falls()),
                 Check(f"L = {last} / L = {first}", final_gap[last] / final_gap[first],
                       AtMost(1 / 3, strict=True)), figure=TRAINING_FIGURE),
        Claim.falls_with("3-softmax-vs-linear", "|softmax - linear| test risk at the end of training, "
                         "same start (the reference gaps, iclreg's own measurement, come from 50k-150k "
                         "SGD steps, lr 1e-3)",
                         {"iclreg's own measurement": by_length(PUBLISHED_GAP)}, by_length(linear_gap),
                         what="by L", value=list(linear_gap.values()), figure=TRAINING_FIGURE)]


def flow_claims(end: dict[str, float], horizon: float) -> list[Claim]:
    """3-conservation (||A||_F^2 - b^2 conserved along the flow) and 3-bayes-end (the flow's end
    point is Bayes-optimal), from ``softmax_limit_measure.flow_end``."""
    return [
        Claim.in_range("3-conservation", "max drift of ||A||_F^2 - b^2 along the infinite-L gradient flow "
                       "(while ||A||_F^2 itself moves by at least the stated amount)",
                       "conserved along the flow", {"drift": end["drift"], "||A||^2 moved": end["moved"]},
                       high=1e-6, strict=True, what="drift / movement of ||A||_F^2",
                       value=end["drift"] / end["moved"], figure=TRAINING_FIGURE),
        Claim.of("3-bayes-end", f"end point of the flow at time {horizon:g}: max |b S A - I| and the "
                 "excess risk over sigma^2", "reaches the Bayes-optimal (zero excess risk) predictor",
                 {"max |bSA - I|": end["residual"], "excess risk": end["excess"]},
                 Check("max |bSA - I|", end["residual"], AtMost(1e-4, strict=True)),
                 Check("excess risk", end["excess"], AtMost(1e-4, strict=True)), figure=TRAINING_FIGURE)]


def stability_claim(gaps: dict[tuple[int, str], list[float]], top: int) -> Claim:
    """4-stability: at L = ``top``, every checkpoint's gap within 3 times the one at initialisation."""
    out_gap, grad_gap = gaps[(top, "output")], gaps[(top, "gradient")]
    return Claim.of(
        "4-stability", f"relative output and gradient gaps at L = {top}, from initialisation to the end "
        "of training (max over checkpoints; at initialisation)",
        "the gap stays small over the whole trajectory, not only at initialisation",
        {"output max": max(out_gap), "output at init": out_gap[0],
         "gradient max": max(grad_gap), "gradient at init": grad_gap[0]},
        Check("output: max / at init", max(out_gap) / out_gap[0], AtMost(3)),
        Check("gradient: max / at init", max(grad_gap) / grad_gap[0], AtMost(3)), figure=STABILITY_FIGURE)
