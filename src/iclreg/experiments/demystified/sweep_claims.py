"""He et al. (arXiv 2503.12734), the claims of the H sweep of ``iclreg reproduce demystified`` on
the estimators, the training and the length generalisation: 1-<estimator> (the published table at
L = 10, 20, 40), 2-H1, 2-Hge2, 2-plateau (the final losses), 5-length (past the training length).
The claims on the heads are in ``heads``, those on what the heads compute in ``mechanism``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..claims import AtLeast, AtMost, Check, Claim, Near
from .setup import K_SE, PLATEAU, PUBLISHED, Trained, best
from .sweep import Curves


def estimator_claims(curves: Curves) -> list[Claim]:
    """1-<estimator>: each estimator's MSE at L = 10, 20, 40 within 0.02 plus 1.5 times the width of
    our 95% interval (``K_SE`` standard errors) of the published value."""
    claims = []
    for label, published in PUBLISHED.items():
        checks, ours = [], []
        for length, pub in zip((10, 20, 40), published, strict=True):
            mse, (lo, hi) = curves[label]["mse"][length], curves[label]["ci95"][length]
            ours.append(mse)
            se = (hi - lo) / (2 * 1.96)
            checks.append(Check(f"L = {length}", mse, Near(pub, abs=0.02, se=se, k=K_SE)))
        claims.append(Claim.of(f"1-{label.replace(' ', '-')}", f"{label} MSE at L = 10, 20, 40",
                               list(published), ours, *checks, figure="estimators.png"))
    return claims


def training_claims(stats: dict[int, list[Trained]]) -> list[Claim]:
    """2-H1, 2-Hge2 (the final losses at L = 40) and 2-plateau (which seeds leave the plateau)."""
    h1 = sorted(r.mse for r in stats[1])
    best_mse = {f"H={h}": best(trained).mse for h, trained in stats.items() if h >= 2}
    left = {f"H={h}": sum(r.escaped for r in trained) for h, trained in stats.items()}
    shown = {k: {"left": v, "seeds": len(stats[int(k[2:])])} for k, v in left.items()}
    return [
        Claim.in_range("2-H1", "H = 1 final loss at L = 40", "0.40-0.43", h1, low=0.38, high=0.45,
                       figure="loss_curves.png"),
        Claim.in_range("2-Hge2", "H >= 2 final loss at L = 40 (best seed per H)", "0.20-0.25", best_mse,
                       low=0.20, high=0.26, figure="loss_curves.png"),
        Claim.of("2-plateau", f"seeds that leave the single-head plateau (MSE < {PLATEAU})",
                 "some seeds stay on the plateau for a long time; H=1 cannot leave it", shown,
                 Check("H=1: seeds that left", left["H=1"], AtMost(0)),
                 Check("every H >= 2: seeds that left", {k: v for k, v in left.items() if k != "H=1"},
                       AtLeast(1)),
                 figure="loss_curves.png")]


def length_claim(two: Sequence[float]) -> Claim:
    """5-length: the best H = 2 seed's MSE by number of examples (``two``, k <= 100 at least) falls
    from L = 40 to L = 100, to the published 0.168."""
    return Claim.of("5-length", "the H=2 error keeps falling past the training length",
                    "0.241 at L=40, 0.168 at L=100", {"L=40": two[40], "L=100": two[100]},
                    Check("L=100 - L=40", two[100] - two[40], AtMost(0, True)),
                    Check("L=100", two[100], Near(0.168, abs=0.03)), figure="lengths.png")
