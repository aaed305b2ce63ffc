"""He et al. (arXiv 2503.12734), the measurements of the anisotropic part of ``iclreg reproduce
demystified`` (``aniso``): the learned preconditioner W = sum_h mu_h W_h of a trained layer, its
Frobenius cosines with Sigma^-1, I and the one-step optimum G*, and the agreement of the layer's
predictions with preconditioned and plain GD, each with its step fitted. Numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ...estimators import build as build_estimator
from ...tasks import Prompts
from ...tasks import build as build_task
from ..base import Experiment, Runs
from . import setup as he
from .mechanism import Predictor

COVARIANCES = {"toeplitz": "cov=toeplitz,rho=0.5", "spiked": "cov=rotated,cond=10,cov_seed=0"}
W_VAR = 1 / he.D  # w ~ N(0, I/d)


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


def fitted_disagreement(model: torch.nn.Module, unit: Predictor, fit: Prompts,
                        test: Prompts) -> tuple[float, float]:
    """(c, mean (f - c g)^2 / mean (c g)^2) at the query of the ``test`` prompts, where g is the
    one-step estimator ``unit`` at lr = 1 (its prediction is linear in lr) and c the least-squares
    scale of g onto the model's predictions f on the separate ``fit`` prompts."""
    with torch.no_grad():
        f_fit, g_fit = model(fit.x, fit.y)[:, he.L], unit(fit.x, fit.y)[:, he.L]
        c = float((f_fit * g_fit).sum() / g_fit.square().sum())
        f, g = model(test.x, test.y)[:, he.L], c * unit(test.x, test.y)[:, he.L]
    return c, float((f - g).square().mean() / g.square().mean())


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


def measure(exp: Experiment[he.Sizes], runs: Runs, samples: int, cov: str, heads: int, seed: int) -> Measured:
    """The measures of run ``aniso/<cov>/H<heads>/seed<seed>`` on ``samples`` fresh prompts."""
    task = build_task(task_spec(cov))
    inverse = torch.linalg.inv(task.covariance)
    optimal = optimal_preconditioner(task.covariance, he.L, he.NOISE_VAR, W_VAR)
    model = runs.model(f"aniso/{cov}/H{heads}/seed{seed}")
    W, blocks, mu = effective_preconditioner(model)
    fit = task.sample(samples, seed=14, step=0, device=exp.device)
    test = task.sample(samples, seed=13, step=0, device=exp.device)
    unit = build_estimator("pgd:steps=1,lr=1,precond=inverse_cov", task=task)
    lr_pgd, pgd = fitted_disagreement(model, unit, fit, test)
    lr_gd, gd = fitted_disagreement(model, build_estimator("gd:steps=1,lr=1", task=task), fit, test)
    return Measured(cov, heads, seed, W, cosine(W, inverse), cosine(W, torch.eye(he.D)), cosine(W, optimal),
                    [abs(cosine(b, inverse)) for b in blocks], mu.tolist(), pgd, gd, lr_pgd, lr_gd)


def references(cov: str) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Sigma^-1, G* and their cosines with each other and with I, for covariance ``cov``."""
    sigma, eye = build_task(task_spec(cov)).covariance, torch.eye(he.D)
    inverse, optimal = torch.linalg.inv(sigma), optimal_preconditioner(sigma, he.L, he.NOISE_VAR, W_VAR)
    return inverse, optimal, {"cos(Sigma^-1, I)": cosine(inverse, eye),
                              "cos(G*, Sigma^-1)": cosine(optimal, inverse),
                              "cos(G*, I)": cosine(optimal, eye)}
