r"""Closed forms of "In-context linear regression demystified" (He, Pan, Chen, Yang, ICML 2025,
arXiv 2503.12734), papers.md section 5.

Setup: x, x_q ~ N(0, I_d), w ~ N(0, I_d / d), y = <w, x> + sigma eps (noise on every label),
L context pairs. A trained H-head softmax layer reduces to the multi-head kernel predictor

.. math::
    \hat y = \sum_h \mu_h\, y^\top \mathrm{softmax}(\omega_h X^\top x_q), \qquad X \in R^{d \times L},

whose risk the paper approximates (leading order in 1/L) by

.. math::
    \mathcal L(\omega, \mu) = 1 + \sigma^2 - 2 \mu^\top \omega
        + \mu^\top \Big(\omega\omega^\top + \frac{1 + \sigma^2}{L} \exp(d\, \omega\omega^\top)\Big) \mu,

exp taken entrywise. The L -> infinity part, 1 + sigma^2 - 2 mu.omega + (mu.omega)^2, is
exact; the 1/L term is the variance of the softmax average. This is the formula of the paper
and of the authors' ``approx_loss``, whose exp term is not halved; their *training* loss is half
the squared error, (1/2) E (y_hat - y)^2, so its values are half the risk above (same
minimiser).

Normalisation of omega: He et al.'s attention scales the scores by sqrt(d+1), and omega here
is the score scale itself (the diagonal of K^T Q / sqrt(d+1), ``analysis.patterns``); their
weight-dynamics figures divide K^T Q by sqrt(d+2), so a value read off those figures (the
published omega of about 0.13) is this omega times sqrt((d+1)/(d+2)).

The Bayes / ridge estimator w_hat = (X X^T + sigma^2 d I)^{-1} X y has, as d, L -> infinity
with xi = d / L fixed, risk (noise floor included)
1/2 [sigma^2 + (xi - 1)/xi + sqrt(4 sigma^2 + (sigma^2 + (1 - xi)/xi)^2)].
The exact finite-L value is ``iclreg.theory.bayes_risk(d, L, sigma, d ** -0.5)``.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

__all__ = ["approximate_loss", "asymptotic_ridge_risk", "figure_omega", "optimal_mu", "single_head_optimum",
           "single_head_risk_minimiser"]


def _second_moment(omega: Tensor, d: int, L: int, noise_var: float) -> Tensor:
    """omega omega^T + (1 + sigma^2)/L exp(d omega omega^T) (..., H, H)."""
    outer = omega.unsqueeze(-1) * omega.unsqueeze(-2)  # (..., H, H)
    return outer + (1.0 + noise_var) / L * torch.exp(d * outer)


def approximate_loss(omega: Tensor, mu: Tensor, d: int, L: int, noise_var: float) -> Tensor:
    r"""Approximate risk of the multi-head kernel predictor (He et al.'s Loss(omega, mu)).

    Args:
        omega: score scales (..., H).
        mu: head output weights (..., H).
        d: input dimension.
        L: number of context pairs.
        noise_var: sigma^2.

    Returns:
        1 + sigma^2 - 2 mu.omega + mu^T (omega omega^T + (1 + sigma^2)/L exp(d omega omega^T)) mu,
        shape (...,); as the paper and the authors' ``approx_loss`` (neither halves the exp term).
    """
    M = _second_moment(omega, d, L, noise_var)
    quad = (mu.unsqueeze(-2) @ M @ mu.unsqueeze(-1))[..., 0, 0]  # (...,)
    return 1.0 + noise_var - 2.0 * (mu * omega).sum(-1) + quad


def optimal_mu(omega: Tensor, d: int, L: int, noise_var: float) -> Tensor:
    r"""mu*(omega) = (omega omega^T + (1 + sigma^2) L^{-1} exp(d omega omega^T))^{-1} omega.

    The minimiser of ``approximate_loss`` over mu (it is a convex quadratic in mu).

    Args:
        omega: (..., H). d, L, noise_var: as in ``approximate_loss``.

    Returns:
        mu* (..., H).
    """
    M = _second_moment(omega, d, L, noise_var)
    return torch.linalg.solve(M, omega.unsqueeze(-1)).squeeze(-1)


def single_head_optimum(d: int, L: int, noise_var: float) -> tuple[float, float]:
    r"""The H = 1 optimum omega = 1/sqrt(d), mu = sqrt(d) / (1 + (1 + sigma^2) d e / L).

    For H = 1 the loss minimised over mu is 1 + sigma^2 - omega^2 / (omega^2 + c e^{d omega^2})
    with c = (1 + sigma^2)/L; maximising omega^2 e^{-d omega^2} gives omega^2 = 1/d for every L,
    and mu*(1/sqrt(d)) is the formula above: this pair is the exact minimiser of
    ``approximate_loss`` (not only as L -> infinity).

    Returns:
        (omega, mu) as floats.
    """
    omega = 1.0 / math.sqrt(d)
    mu = math.sqrt(d) / (1.0 + (1.0 + noise_var) * d * math.e / L)
    return omega, mu


def single_head_risk_minimiser(d: int, L: int, noise_var: float, samples: int,
                               generator: torch.Generator, chunk: int = 50_000) -> tuple[float, float, float]:
    r"""The minimiser of the H = 1 kernel predictor's exact risk, by Monte Carlo.

    The risk E (mu y^T softmax(omega X^T x_q) - y_q)^2 (noise floor included) on ``samples``
    fresh prompts of this module's setup, the same prompts for every (omega, mu) (common random
    numbers): for each omega the risk is a quadratic in mu, minimised by
    mu(omega) = E[f y_q] / E[f^2] with f = y^T softmax(omega X^T x_q); the profile over omega is
    minimised by a bounded scalar search (``scipy.optimize.minimize_scalar``) on (0.02, 2).
    Unlike :func:`single_head_optimum` (the approximate loss's minimiser, 1/sqrt(d) at every L),
    nothing is dropped: only the Monte Carlo error remains. The positive branch is returned (the
    risk is symmetric under (omega, mu) -> (-omega, -mu)).

    Returns:
        (omega, mu, risk) at the minimiser, as floats.
    """
    inners, ys, yqs = [], [], []
    for start in range(0, samples, chunk):
        b = min(chunk, samples - start)
        x = torch.randn(b, L, d, generator=generator, dtype=torch.float64)
        xq = torch.randn(b, d, generator=generator, dtype=torch.float64)
        w = torch.randn(b, d, generator=generator, dtype=torch.float64) / math.sqrt(d)
        eps = torch.randn(b, L + 1, generator=generator, dtype=torch.float64) * math.sqrt(noise_var)
        inners.append((x @ xq.unsqueeze(-1)).squeeze(-1))  # (b, L): <x_i, x_q>
        ys.append((x @ w.unsqueeze(-1)).squeeze(-1) + eps[:, :L])
        yqs.append((xq * w).sum(-1) + eps[:, L])
    inner, y, yq = torch.cat(inners), torch.cat(ys), torch.cat(yqs)

    def profile(omega: float) -> tuple[float, float]:
        f = (torch.softmax(omega * inner, dim=-1) * y).sum(-1)
        mu = float((f * yq).mean() / (f * f).mean())
        return float(((mu * f - yq) ** 2).mean()), mu

    best = minimize_scalar(lambda omega: profile(omega)[0], bounds=(0.02, 2.0), method="bounded",
                           options={"xatol": 1e-5})
    risk, mu = profile(float(best.x))
    return float(best.x), mu, risk


def figure_omega(omega: float, d: int) -> float:
    r"""``omega`` (the score scale: K^T Q / sqrt(d+1)) in He et al.'s figure normalisation.

    Their attention divides the scores by sqrt(d+1), their weight-dynamics figures divide
    K^T Q by sqrt(d+2): the figures show omega sqrt((d+1)/(d+2)), 1/1.0801 of omega at d = 5.
    Published omegas read off those figures (about 0.13) compare with this value.
    """
    return omega * math.sqrt((d + 1) / (d + 2))


def asymptotic_ridge_risk(d: int, L: int, noise_var: float) -> float:
    r"""Asymptotic (d, L -> infinity, xi = d / L fixed) risk of the Bayes ridge estimator.

    With xi = d / L: 1/2 [sigma^2 + (xi - 1)/xi + sqrt(4 sigma^2 + (sigma^2 + (1 - xi)/xi)^2)],
    the MSE against a noisy label (noise floor sigma^2 included) for w ~ N(0, I/d) and ridge
    parameter lam = sigma^2 d (the posterior mean). For noise_var > 0.
    """
    xi = d / L
    s2 = noise_var
    return 0.5 * (s2 + (xi - 1.0) / xi + math.sqrt(4.0 * s2 + (s2 + (1.0 - xi) / xi) ** 2))
