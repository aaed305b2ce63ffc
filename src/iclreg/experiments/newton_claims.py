"""The claims of Fu et al.'s reproduction (``iclreg reproduce newton``, arXiv 2310.17086), each from
the measurements of ``newton_measure``, with the negative control of each (``CONTROLS``; checked in
tests/experiments/test_newton_controls.py).

1-learns / 6-lstm: the transformer comes near least squares, an LSTM markedly worse. 2-probes /
3-similarity: probe error falls with depth and successive layers match successive Newton steps.
4-*: Newton steps grow linearly with depth, GD steps exponentially, the last layer matches least
squares. 5-*: ill-conditioned prompts keep accuracy and the Newton correspondence while GD slows.
7-depth: layer $l$ is worth $k(l)$ Newton iterations, growing with $l$.
"""

from __future__ import annotations

from .claims import AtLeast, AtMost, Check, Claim, Rises
from .newton_measure import Depth

# iclreg's own CPU run: 4 layers / width 64 / d = 5 / n = 11, Adam 1e-3, 4000 steps: error/d at k = 10
PUBLISHED_CPU = "0.093 (iclreg's own CPU run at d = 5, n = 11; see the references)"

CONTROLS = {  # claim id -> its negative control (tests/experiments/test_newton_controls.py)
    "1-learns": "the zero predictor in place of the transformer",
    "6-lstm": "the transformer in place of the LSTM",
    "2-probes": "the probes in reverse layer order",
    "3-similarity": "every layer's similarity at the zero-predictor floor",
    "4-newton-linear": "GD's best steps in place of Newton's",
    "4-gd-exponential": "Newton's best steps (linear growth) in place of GD's",
    "4-ols": "the penultimate layer's probe in place of the last",
    "7-depth": "every layer's probe error equal to the last layer's",
    "5-accuracy": "the penultimate layer's error on ill-conditioned prompts",
    "5-newton-vs-gd": "isotropic prompts in place of the ill-conditioned ones",
}


def learning_claims(err: dict[str, float], last: int, quick: bool) -> list[Claim]:
    """1-learns and 6-lstm from error/d at the last k (``err``: predictor -> error)."""
    learns = Claim.in_range("1-learns", f"transformer error/d at k = {last}",
                            PUBLISHED_CPU if quick else 0.003, err["transformer"],
                            high=0.2 if quick else 0.02, strict=True, figure="learning.png")
    lstm = Claim.in_range("6-lstm", "an LSTM with the same task and budget does markedly worse",
                          "LSTMs do markedly worse", {"LSTM": err["LSTM"], "transformer": err["transformer"]},
                          low=2, what="LSTM / transformer error", value=err["LSTM"] / err["transformer"],
                          figure="learning.png")
    return [learns, lstm]


def probe_claims(layer_err: list[float], probes: dict, last: int) -> list[Claim]:
    """2-probes (each layer refines the previous) and 3-similarity (the best Newton step rises)."""
    excess = [b - (a * 1.05 + 1e-3) for a, b in zip(layer_err, layer_err[1:], strict=False)]
    falls = Claim.in_range("2-probes", f"probe error/d at k = {last} falls with depth",
                           "each layer refines the previous one", layer_err,
                           high=0, what="each layer's excess over 1.05 x the previous + 0.001", value=excess,
                           figure="probes.png")
    best = probes["newton"]["best"]
    similar = Claim.of("3-similarity", "best-matching Newton step per layer, above the zero-predictor "
                       "floor", "successive layers match successive Newton iterations", best,
                       Check("best Newton step by layer", best, Rises()),
                       Check("last layer's best similarity", max(probes["newton"]["similarity"][-1]),
                             AtLeast(probes["floor"], strict=True)),
                       figure="similarity_newton.png")
    return [falls, similar]


def depth_claims(m: Depth, last: int) -> list[Claim]:
    """4-newton-linear, 4-gd-exponential, 4-ols and 7-depth."""
    return [
        Claim.in_range("4-newton-linear", f"best Newton step grows linearly with depth (slope over layers "
                       f"{m.layers})", "about 3 iterations per layer", m.newton_slope,
                       low=1, high=6, what="slope per layer", figure="similarity_newton.png"),
        Claim.of("4-gd-exponential", "best GD step grows exponentially with depth (growth factor per "
                 f"layer over layers {m.layers})", "exponentially more GD steps per layer (doubling)",
                 {"factor per layer": m.gd_factor, "factor of the increments": m.gd_acceleration},
                 Check("factor per layer", m.gd_factor, AtLeast(1.8)),
                 Check("factor per layer of the increments", m.gd_acceleration, AtLeast(1.8)),
                 figure="similarity_gd.png"),
        Claim.in_range("4-ols", f"the final layer matches least squares (error/d at k = {last})",
                       "final layers match OLS (error 0 for k > d)", m.layer_err[-1], high=0.01,
                       strict=True, figure="probes.png"),
        Claim.rises_with("7-depth", "layer l is worth k(l) Newton iterations: the fewest iterations "
                         "with error at most the layer's", "k Newton iterations need k + O(1) layers",
                         m.matched, grows=True, what="k(l) over the layers that reach one",
                         value=[k for k in m.matched if k is not None], figure="depth.png")]


def ill_claims(well_err: float, ill_err: float, isotropic: dict, ill: dict, shift: int,
               gd_slowdown: float) -> list[Claim]:
    """5-accuracy (the last layer's error/d at the last k, ill-conditioned against isotropic) and
    5-newton-vs-gd (``shift``, ``gd_slowdown``: ``newton_measure.gd_slowdown``)."""
    accuracy = Claim.in_range("5-accuracy", "on ill-conditioned inputs (condition number 100) the "
                              "transformer keeps its accuracy", "keeps its accuracy",
                              {"isotropic": well_err, "ill-conditioned": ill_err},
                              high=2, what="ill-conditioned / isotropic error", value=ill_err / well_err,
                              figure="similarity_newton_ill.png")
    persists = Claim.of("5-newton-vs-gd", "ill-conditioned: the Newton correspondence persists while GD "
                        "slows down", "Newton correspondence kept; GD needs more steps",
                        {"newton best (ill)": ill["newton"]["best"], "gd best (ill)": ill["gd"]["best"],
                         "gd best (isotropic)": isotropic["gd"]["best"]},
                        Check("largest shift of the best Newton step", shift, AtMost(2)),
                        Check("sum of log2 best GD steps, ill-conditioned minus isotropic",
                              gd_slowdown, AtLeast(0, strict=True)),
                        figure="similarity_newton_ill.png")
    return [accuracy, persists]
