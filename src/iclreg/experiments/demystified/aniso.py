"""He et al. (arXiv 2503.12734), anisotropic covariates: multi-head softmax attention learns
preconditioned GD. Part of ``iclreg reproduce demystified`` (issue #16, claim 3).

The demystified task (d = 5, L = 40, sigma^2 = 0.1, w ~ N(0, I/d)) with x ~ N(0, Sigma) for two
covariances: Toeplitz (Sigma_ij = 0.5^|i-j|) and a spiked spectrum (two eigenvalues ten times the
other three, in a random basis: the task's ``cov=rotated,cond=10``). Softmax attention trained with
the softmax budget of the main reproduction. To first order in the score scale a head outputs
mu_h [ybar + (1/L) sum_i (y_i - ybar) x_i^T W_h x_q] (W_h the x-block of KQ_h, mu_h the label entry
of OV_h), so the layer's linear part is one preconditioned GD step with preconditioner

    W = sum_h mu_h W_h,

the mu-weighted combination of the heads' x-blocks. We use W rather than each head's own block up
to sign: for a cancelling pair (W, mu), (-W, -mu) both give the same matrix, and W also discounts
dummy heads (small mu) that a per-head reading would count. The claim: W approaches a multiple of
Sigma^-1 (Frobenius cosine with Sigma^-1 above that with I), and the predictions agree better with
``pgd:precond=inverse_cov`` than with plain ``gd``, each with its step size fitted. The one-step
optimum at finite L is not Sigma^-1 exactly but ``optimal_preconditioner`` (shown beside it).

This module plans the runs and writes the section; the measurements are in ``aniso_measure``,
the claims and the heat maps in ``aniso_claims``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...train import ExperimentConfig
from ..base import Experiment, Runs, Section
from . import setup as he
from .aniso_claims import W_TEX, agree_claim, kq_claim, kq_plot
from .aniso_measure import (
    COVARIANCES,
    W_VAR,
    Measured,
    cosine,
    effective_preconditioner,
    fitted_disagreement,
    measure,
    optimal_preconditioner,
    references,
    task_spec,
)
from .mechanism import AGREE_TEX

REFERENCE_TEX = {  # the keys of ``aniso_measure.references`` in report text
    "cos(Sigma^-1, I)": r"$\cos(\Sigma^{-1}, I)$", "cos(G*, Sigma^-1)": r"$\cos(G^*, \Sigma^{-1})$",
    "cos(G*, I)": r"$\cos(G^*, I)$"}


@dataclass(frozen=True)
class AnisoSizes:
    """Sizes of the anisotropic part; ``heads=()`` skips it (the section says so)."""

    heads: tuple[int, ...]
    seeds: int  # per (covariance, H); the runs of one H train as one ensemble
    steps: int
    batch: int
    lr: float
    schedule: he.Schedule = field(default_factory=dict)
    eval_samples: int = 8_000


# quick: 2k steps (its claims hold there; the main part's 20k would double the quick budget)
QUICK = AnisoSizes(heads=(2,), seeds=2, steps=2_000, batch=he.QUICK.batch, lr=he.QUICK.lr,
                   schedule={"name": "cosine", "min_lr_ratio": 0.03}, eval_samples=4_000)
FULL = AnisoSizes(heads=(2, 4), seeds=4, steps=he.FULL.steps, batch=he.FULL.batch, lr=he.FULL.lr,
                  schedule=he.FULL.schedule, eval_samples=50_000)
TOY = AnisoSizes(heads=(2,), seeds=1, steps=20, batch=32, lr=0.03, schedule=he.TOY.schedule, eval_samples=200)


def plan(exp: Experiment[he.Sizes], sizes: AnisoSizes) -> dict[str, ExperimentConfig]:
    """``aniso/<cov>/H<h>/seed<s>``; both covariances and every seed of one H share an ensemble."""
    return {f"aniso/{cov}/H{heads}/seed{seed}": exp.config(
        task_spec(cov), f"softmax_attention:heads={heads}",
        optimizer={"name": "adam", "lr": sizes.lr}, schedule=sizes.schedule,
        train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
        eval={"samples": 500, "estimators": []},
        run={"checkpoint_every": max(sizes.steps // 10, 1), "keep": 2,
             "log_every": max(sizes.steps // 100, 1)})
        for heads in sizes.heads for cov in COVARIANCES for seed in range(sizes.seeds)}


def _table(rows: list[Measured], sizes: AnisoSizes) -> list[str]:
    covs = ", ".join(f"{k} `{v}`" for k, v in COVARIANCES.items())
    text = [rf"$x \sim N(0, \Sigma)$: {covs}; otherwise the main task. Softmax attention, $H$ in "
            f"{list(sizes.heads)}, {sizes.seeds} seeds, Adam lr {sizes.lr}, {sizes.steps} steps, batch "
            f"{sizes.batch}. {W_TEX} is the layer's first-order preconditioner (a cancelling pair counts "
            r"once, dummy heads are discounted by their small $\mu_h$). "
            f"Agreement: {AGREE_TEX} at $L = {he.L}$ on {sizes.eval_samples} fresh prompts (seed 13), each "
            "estimator's one-step lr fitted by least squares to the model on other prompts (seed 14).", "",
            r"| cov | $H$ | seed | $\cos(W, \Sigma^{-1})$ | $\cos(W, I)$ | $\cos(W, G^*)$ | "
            r"abs $\cos(W_h, \Sigma^{-1})$ | $\mu_h$ | pgd | gd |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|---:|"]
    for r in rows:
        text.append(f"| {r.cov} | {r.heads} | {r.seed} | {r.cos_inverse:.3f} | {r.cos_identity:.3f} | "
                    f"{r.cos_optimal:.3f} | {', '.join(f'{c:.2f}' for c in r.head_cos)} | "
                    f"{', '.join(f'{m:+.2f}' for m in r.mu)} | {r.agree_pgd:.4f} | {r.agree_gd:.4f} |")
    return text


def sections(exp: Experiment[he.Sizes], runs: Runs, sizes: AnisoSizes, **inputs: object) -> list[Section]:
    """One section: cosines and agreements per run, two claims per covariance, the heat maps."""
    title = "Anisotropic covariates: preconditioned GD"
    if not sizes.heads:
        return [Section(title, ["Skipped at these sizes (no heads to train); run the full mode."])]
    rows = [measure(exp, runs, sizes.eval_samples, cov, h, s) for h in sizes.heads for cov in COVARIANCES
            for s in range(sizes.seeds)]
    text = _table(rows, sizes)
    claims, shown, refs = [], {}, {}
    for cov in COVARIANCES:
        mine = [r for r in rows if r.cov == cov]
        claims += [kq_claim(cov, mine), agree_claim(cov, mine)]
        inverse, optimal, refs[cov] = references(cov)
        shown[cov] = (mine[0].W, inverse, optimal)
    listed = "; ".join(f"{cov}: " + ", ".join(f"{REFERENCE_TEX[k]} = {v:.3f}" for k, v in ref.items())
                       for cov, ref in refs.items())
    text += ["", f"References: {listed}. $G^*$ is the one-step optimum at "
             rf"$L = {he.L}$, which shrinks $\Sigma^{{-1}}$ toward $I$; the heat maps show seed 0 of "
             f"$H = {sizes.heads[0]}$."]
    data = {"runs": [{k: v for k, v in r.__dict__.items() if k != "W"} | {"W": r.W.tolist()} for r in rows],
            "references": refs}
    return [Section(title, text, claims, {"aniso_kq.png": kq_plot(shown)}, data)]


__all__ = ["FULL", "QUICK", "TOY", "W_VAR", "AnisoSizes", "Measured", "agree_claim", "cosine",
           "effective_preconditioner", "fitted_disagreement", "kq_claim", "measure",
           "optimal_preconditioner", "plan", "sections", "task_spec"]
