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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ...estimators import build as build_estimator
from ...report.plots import Plot
from ...tasks import build as build_task
from ...train import ExperimentConfig
from ..base import Experiment, Runs, Section
from ..claims import AtLeast, AtMost, Check, Claim
from . import setup as he
from .mechanism import AGREE_TEX

COVARIANCES = {"toeplitz": "cov=toeplitz,rho=0.5", "spiked": "cov=rotated,cond=10,cov_seed=0"}
W_VAR = 1 / he.D  # w ~ N(0, I/d)


@dataclass(frozen=True)
class AnisoSizes:
    """Sizes of the anisotropic part; ``heads=()`` skips it (the section says so)."""

    heads: tuple[int, ...]
    seeds: int  # per (covariance, H); the runs of one H train as one ensemble
    steps: int
    batch: int
    lr: float
    schedule: dict[str, Any] = field(default_factory=dict)
    eval_samples: int = 8_000


# quick: 2k steps (its claims hold there; the main part's 20k would double the quick budget)
QUICK = AnisoSizes(heads=(2,), seeds=2, steps=2_000, batch=he.QUICK.batch, lr=he.QUICK.lr,
                   schedule={"name": "cosine", "min_lr_ratio": 0.03}, eval_samples=4_000)
FULL = AnisoSizes(heads=(2, 4), seeds=4, steps=he.FULL.steps, batch=he.FULL.batch, lr=he.FULL.lr,
                  schedule=he.FULL.schedule, eval_samples=50_000)
TOY = AnisoSizes(heads=(2,), seeds=1, steps=20, batch=32, lr=0.03, schedule=he.TOY.schedule, eval_samples=200)


def task_spec(cov: str) -> str:
    """The demystified task with covariance ``cov`` (a key of COVARIANCES)."""
    return f"{he.TASK},{COVARIANCES[cov]}"


def cosine(a: Tensor, b: Tensor) -> float:
    """Frobenius cosine <A, B>_F / (||A||_F ||B||_F) of two matrices."""
    a, b = a.double(), b.double()
    return float((a * b).sum() / (a.norm() * b.norm()))


def optimal_preconditioner(sigma: Tensor, L: int, noise_var: float, w_var: float) -> Tensor:
    """The preconditioner G minimising E (y_q - x_q^T G (1/L) X^T y)^2, up to its scale.

    With x ~ N(0, Sigma), w ~ N(0, w_var I) and noise variance noise_var, the Gaussian fourth
    moment E[X^T X X^T X] = L(L-1) Sigma^2 + L (2 Sigma^2 + tr(Sigma) Sigma) gives

        G* = ((L+1)/L Sigma + (tr(Sigma) + noise_var / w_var) / L I)^{-1},

    which tends to Sigma^{-1} as L grows. Args: sigma (d, d). Returns (d, d) float64.
    """
    sigma = sigma.double()
    d = sigma.shape[0]
    shift = (float(torch.trace(sigma)) + noise_var / w_var) / L
    return torch.linalg.inv((L + 1) / L * sigma + shift * torch.eye(d, dtype=torch.float64))


def effective_preconditioner(model: torch.nn.Module) -> tuple[Tensor, Tensor, Tensor]:
    """(W, W_h, mu_h): W = sum_h mu_h W_h (d, d), the heads' x-blocks W_h (H, d, d) and label
    entries mu_h (H,) of a single-task softmax attention layer, float64 on the CPU."""
    d = model.config.d
    with torch.no_grad():
        blocks = model.kq_matrices()[:, :d, :d].double().cpu()  # (H, d, d)
        mu = model.ov_vectors()[:, 0, d].double().cpu()  # (H,)
    return torch.einsum("h,hij->ij", mu, blocks), blocks, mu


def fitted_disagreement(model: torch.nn.Module, unit: Any, fit: Any, test: Any) -> tuple[float, float]:
    """(c, mean (f - c g)^2 / mean (c g)^2) at the query of the ``test`` prompts, where g is the
    one-step estimator ``unit`` at lr = 1 (its prediction is linear in lr) and c the least-squares
    scale of g onto the model's predictions f on the separate ``fit`` prompts."""
    with torch.no_grad():
        f_fit, g_fit = model(fit.x, fit.y)[:, he.L], unit(fit.x, fit.y)[:, he.L]
        c = float((f_fit * g_fit).sum() / g_fit.square().sum())
        f, g = model(test.x, test.y)[:, he.L], c * unit(test.x, test.y)[:, he.L]
    return c, float((f - g).square().mean() / g.square().mean())


def plan(exp: Experiment, sizes: AnisoSizes) -> dict[str, ExperimentConfig]:
    """``aniso/<cov>/H<h>/seed<s>``; both covariances and every seed of one H share an ensemble."""
    return {f"aniso/{cov}/H{heads}/seed{seed}": exp.config(
        task_spec(cov), f"softmax_attention:heads={heads}",
        optimizer={"name": "adam", "lr": sizes.lr}, schedule=sizes.schedule,
        train={"steps": sizes.steps, "batch": sizes.batch, "loss": "query", "seed": seed},
        eval={"samples": 500, "estimators": []},
        run={"checkpoint_every": sizes.steps, "keep": 1, "log_every": max(sizes.steps // 100, 1)})
        for heads in sizes.heads for cov in COVARIANCES for seed in range(sizes.seeds)}


@dataclass(frozen=True)
class Measured:
    """One trained run: its preconditioner's cosines and its prediction agreements."""

    cov: str
    heads: int
    seed: int
    W: Tensor
    cos_inverse: float  # cos(W, Sigma^-1)
    cos_identity: float  # cos(W, I)
    cos_optimal: float  # cos(W, G*)
    head_cos: list[float]  # |cos(W_h, Sigma^-1)| per head
    mu: list[float]
    agree_pgd: float
    agree_gd: float
    lr_pgd: float
    lr_gd: float


def measure(exp: Experiment, runs: Runs, sizes: AnisoSizes, cov: str, heads: int, seed: int) -> Measured:
    task = build_task(task_spec(cov))
    inverse = torch.linalg.inv(task.covariance)
    optimal = optimal_preconditioner(task.covariance, he.L, he.NOISE_VAR, W_VAR)
    model = runs.model(f"aniso/{cov}/H{heads}/seed{seed}")
    W, blocks, mu = effective_preconditioner(model)
    fit = task.sample(sizes.eval_samples, seed=14, step=0, device=exp.device)
    test = task.sample(sizes.eval_samples, seed=13, step=0, device=exp.device)
    unit = build_estimator("pgd:steps=1,lr=1,precond=inverse_cov", task=task)
    lr_pgd, pgd = fitted_disagreement(model, unit, fit, test)
    lr_gd, gd = fitted_disagreement(model, build_estimator("gd:steps=1,lr=1", task=task), fit, test)
    return Measured(cov, heads, seed, W, cosine(W, inverse), cosine(W, torch.eye(he.D)), cosine(W, optimal),
                    [abs(cosine(b, inverse)) for b in blocks], mu.tolist(), pgd, gd, lr_pgd, lr_gd)


def kq_claim(cov: str, rows: list[Measured]) -> Claim:
    key = {f"H={r.heads} seed {r.seed}": {"cos(W, Sigma^-1)": r.cos_inverse, "cos(W, I)": r.cos_identity}
           for r in rows}
    return Claim.of(
        f"aniso-KQ-{cov}", f"{cov} covariance: the learned preconditioner {W_TEX} is "
        r"closer (Frobenius cosine) to $\Sigma^{-1}$ than to $I$",
        "multi-head attention learns preconditioned GD (abstract; no number published)", key,
        Check("cos(W, Sigma^-1) - cos(W, I)", [r.cos_inverse - r.cos_identity for r in rows],
              AtLeast(0, True)),
        figure="aniso_kq.png")


def agree_claim(cov: str, rows: list[Measured]) -> Claim:
    key = {f"H={r.heads} seed {r.seed}": {"pgd": r.agree_pgd, "gd": r.agree_gd} for r in rows}
    return Claim.of(
        f"aniso-pgd-{cov}", f"{cov} covariance: predictions agree better with preconditioned GD "
        rf"($P = \Sigma^{{-1}}$) than with plain GD, both one step with a fitted lr ({AGREE_TEX})",
        "multi-head attention implements preconditioned GD (abstract)", key,
        Check("pgd - gd disagreement", [r.agree_pgd - r.agree_gd for r in rows], AtMost(0, True)))


def kq_plot(shown: dict[str, tuple[Tensor, Tensor, Tensor]]) -> Plot:
    """Heat maps per covariance (rows): learned W, Sigma^-1 and G*, each divided by its
    Frobenius norm (one colour scale). ``shown``: cov -> (W, Sigma^-1, G*), each (d, d)."""
    rows = {cov: [(m / m.norm()).numpy() for m in mats] for cov, mats in shown.items()}
    return Plot("matrix_grid", rows, ("learned $W$", r"$\Sigma^{-1}$", f"$G^*$ ($L = {he.L}$)"),
                r"anisotropic $x$: learned $W = \sum_h \mu_h KQ_h[x, x]$ beside $\Sigma^{-1}$ and the "
                "one-step optimum $G^*$\n(each divided by its Frobenius norm)")


W_TEX = r"$W = \sum_h \mu_h KQ_h[x, x]$"
REFERENCE_TEX = {  # the keys of ``_references`` in report text
    "cos(Sigma^-1, I)": r"$\cos(\Sigma^{-1}, I)$", "cos(G*, Sigma^-1)": r"$\cos(G^*, \Sigma^{-1})$",
    "cos(G*, I)": r"$\cos(G^*, I)$"}


def _references(cov: str) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Sigma^-1, G* and their cosines with each other and with I, for covariance ``cov``."""
    sigma, eye = build_task(task_spec(cov)).covariance, torch.eye(he.D)
    inverse, optimal = torch.linalg.inv(sigma), optimal_preconditioner(sigma, he.L, he.NOISE_VAR, W_VAR)
    return inverse, optimal, {"cos(Sigma^-1, I)": cosine(inverse, eye),
                              "cos(G*, Sigma^-1)": cosine(optimal, inverse),
                              "cos(G*, I)": cosine(optimal, eye)}


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


def sections(exp: Experiment, runs: Runs, sizes: AnisoSizes, **inputs: Any) -> list[Section]:
    """One section: cosines and agreements per run, two claims per covariance, the heat maps."""
    title = "Anisotropic covariates: preconditioned GD"
    if not sizes.heads:
        return [Section(title, ["Skipped at these sizes (no heads to train); run the full mode."])]
    rows = [measure(exp, runs, sizes, cov, h, s) for h in sizes.heads for cov in COVARIANCES
            for s in range(sizes.seeds)]
    text = _table(rows, sizes)
    claims, shown, refs = [], {}, {}
    for cov in COVARIANCES:
        mine = [r for r in rows if r.cov == cov]
        claims += [kq_claim(cov, mine), agree_claim(cov, mine)]
        inverse, optimal, refs[cov] = _references(cov)
        shown[cov] = (mine[0].W, inverse, optimal)
    listed = "; ".join(f"{cov}: " + ", ".join(f"{REFERENCE_TEX[k]} = {v:.3f}" for k, v in ref.items())
                       for cov, ref in refs.items())
    text += ["", f"References: {listed}. $G^*$ is the one-step optimum at "
             rf"$L = {he.L}$, which shrinks $\Sigma^{{-1}}$ toward $I$; the heat maps show seed 0 of "
             f"$H = {sizes.heads[0]}$."]
    data = {"runs": [{k: v for k, v in r.__dict__.items() if k != "W"} | {"W": r.W.tolist()} for r in rows],
            "references": refs}
    return [Section(title, text, claims, {"aniso_kq.png": kq_plot(shown)}, data)]


__all__ = ["FULL", "QUICK", "TOY", "AnisoSizes", "cosine", "effective_preconditioner",
           "optimal_preconditioner", "plan", "sections"]
