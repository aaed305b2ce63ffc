"""He et al. (arXiv 2503.12734), the claims of the anisotropic part of ``iclreg reproduce
demystified`` (``aniso``), per covariance: aniso-KQ (the learned preconditioner closer to
Sigma^-1 than to I) and aniso-pgd (predictions closer to preconditioned GD than to plain GD);
and the heat maps of the learned W beside Sigma^-1 and G*.
"""

from __future__ import annotations

from torch import Tensor

from ...report.plots import Plot
from ..claims import Claim
from . import setup as he
from .aniso_measure import Measured
from .mechanism import AGREE_TEX

W_TEX = r"$W = \sum_h \mu_h KQ_h[x, x]$"


def kq_claim(cov: str, rows: list[Measured]) -> Claim:
    """aniso-KQ-<cov>: every run's W closer (Frobenius cosine) to Sigma^-1 than to I."""
    key = {f"H={r.heads} seed {r.seed}": {"cos(W, Sigma^-1)": r.cos_inverse, "cos(W, I)": r.cos_identity}
           for r in rows}
    return Claim.in_range(
        f"aniso-KQ-{cov}", f"{cov} covariance: the learned preconditioner {W_TEX} is "
        r"closer (Frobenius cosine) to $\Sigma^{-1}$ than to $I$",
        "multi-head attention learns preconditioned GD (abstract; no number published)", key,
        low=0, strict=True, what="cos(W, Sigma^-1) - cos(W, I)",
        value=[r.cos_inverse - r.cos_identity for r in rows],
        figure="aniso_kq.png")


def agree_claim(cov: str, rows: list[Measured]) -> Claim:
    """aniso-pgd-<cov>: every run's predictions closer to preconditioned GD than to plain GD."""
    key = {f"H={r.heads} seed {r.seed}": {"pgd": r.agree_pgd, "gd": r.agree_gd} for r in rows}
    return Claim.in_range(
        f"aniso-pgd-{cov}", f"{cov} covariance: predictions agree better with preconditioned GD "
        rf"($P = \Sigma^{{-1}}$) than with plain GD, both one step with a fitted lr ({AGREE_TEX})",
        "multi-head attention implements preconditioned GD (abstract)", key,
        high=0, strict=True, what="pgd - gd disagreement", value=[r.agree_pgd - r.agree_gd for r in rows])


def kq_plot(shown: dict[str, tuple[Tensor, Tensor, Tensor]]) -> Plot:
    """Heat maps per covariance (rows): learned W, Sigma^-1 and G*, each divided by its
    Frobenius norm (one colour scale). ``shown``: cov -> (W, Sigma^-1, G*), each (d, d)."""
    rows = {cov: [(m / m.norm()).numpy() for m in mats] for cov, mats in shown.items()}
    return Plot("matrix_grid", rows, ("learned $W$", r"$\Sigma^{-1}$", f"$G^*$ ($L = {he.L}$)"),
                r"anisotropic $x$: learned $W = \sum_h \mu_h KQ_h[x, x]$ beside $\Sigma^{-1}$ and the "
                "one-step optimum $G^*$\n(each divided by its Frobenius norm)")
