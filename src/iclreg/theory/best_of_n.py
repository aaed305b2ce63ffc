r"""Best-of-N with a norm reward: which of N noisy decodes the reward -||w||_2 picks, and what its
error is (our derivation, for Chen, Lu, Wu, Zou, arXiv 2508.07571; the paper's text is not
available).

Given a prompt, a decode is w = m + delta with E delta = 0 and Cov delta = Sigma: exactly Gaussian
for additive noise xi ~ N(0, s^2 I) after an affine step w <- P w + b (m_{t+1} = P m_t + b,
Sigma_{t+1} = P Sigma_t P^T + s^2 I), and with the exact first two moments for multiplicative noise
(``testtime.affine_noisy_decode_moments``), where we take it Gaussian. The reward ranks the
score S = ||w||^2; the error is E = ||w - w*||^2. For Gaussian delta (e = m - w*):

.. math::
    E[E] = \|e\|^2 + \mathrm{tr}\,\Sigma,\quad
    \mathrm{Var}\,S = 4 m^\top \Sigma m + 2\,\mathrm{tr}\,\Sigma^2,\quad
    \mathrm{Cov}(E, S) = 4 e^\top \Sigma m + 2\,\mathrm{tr}\,\Sigma^2 .

Taking E linear in S given S (exact when (S, E) is jointly Gaussian), the sample of smallest S
among N has

.. math::
    E\,\|\hat w_N - w^*\|^2 = \|e\|^2 + \mathrm{tr}\,\Sigma - \Big(e_N - \frac{\gamma}{6}(q_N - 1)\Big)
    \frac{4 e^\top \Sigma m + 2\,\mathrm{tr}\,\Sigma^2}{\sqrt{4 m^\top \Sigma m + 2\,\mathrm{tr}\,\Sigma^2}},

with e_N, q_N the mean and mean square of the max of N standard normals (e_1 = 0, q_1 = 1) and
the Cornish-Fisher correction for the skewness gamma = (8 tr Sigma^3 + 24 m^T Sigma^2 m) / Var(S)^{3/2}
of the quadratic form S (its lower tail is shorter than a normal's). So the gain over one sample grows like
sqrt(2 log N), and its size is set by how the spread lines up with the mean: multiplicative noise
puts 2 sigma^4 w w^T into every step's covariance (spread along m), so e^T Sigma m is large when
m overshoots w* (it has fitted label noise) and the shortest sample is the most regularised one;
isotropic additive noise spreads evenly, e^T Sigma m = s^2 e^T C m is small, and mostly the
tr Sigma^2 term is left (a shorter sample has a smaller delta). Checked against Monte Carlo in
tests/theory/test_best_of_n.py.
"""

from __future__ import annotations

import math

import torch

__all__ = ["additive_decode_moments", "best_of_n_error", "expected_max_normal"]


def expected_max_normal(n: int, power: int = 1, points: int = 20001) -> float:
    """E (max of N i.i.d. standard normals)^power (power 1: e_N, 0 for N = 1), by quadrature."""
    x = torch.linspace(-12.0, 12.0, points, dtype=torch.float64)
    cdf = 0.5 * torch.erfc(-x / math.sqrt(2.0))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    dens = n * pdf * cdf.clamp_min(1e-300) ** (n - 1)
    return 0.0 if n == 1 and power == 1 else torch.trapezoid(x**power * dens, x).item()


def additive_decode_moments(p: torch.Tensor, b: torch.Tensor, steps: int,
                            std: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and covariance of w_T for w_{t+1} = P w_t + b + xi, xi ~ N(0, std^2 I), w_0 = 0.

    Args:
        p: (B, d, d); b: (B, d).
    Returns:
        m_T (B, d), Sigma_T (B, d, d).
    """
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    m = torch.zeros_like(b)
    cov = torch.zeros_like(p)
    for _ in range(steps):
        cov = p @ cov @ p.transpose(-1, -2) + std**2 * eye
        m = (p @ m.unsqueeze(-1)).squeeze(-1) + b
    return m, cov


def best_of_n_error(m: torch.Tensor, cov: torch.Tensor, w: torch.Tensor, n: int) -> torch.Tensor:
    """E||w_hat_N - w*||^2 of the smallest-norm of N decodes w ~ (m, Sigma), per prompt (B,).

    Args:
        m: (B, d) mean; cov: (B, d, d) covariance; w: (B, d) the true w*; n: N >= 1.
    """
    e = m - w
    sm = (cov @ m.unsqueeze(-1)).squeeze(-1)  # (B, d) Sigma m
    c2 = cov @ cov
    tr2 = c2.diagonal(dim1=-2, dim2=-1).sum(-1)  # tr Sigma^2
    tr3 = (c2 * cov.transpose(-1, -2)).sum((-1, -2))  # tr Sigma^3
    var_s = (4.0 * (m * sm).sum(-1) + 2.0 * tr2).clamp_min(1e-300)
    skew = (8.0 * tr3 + 24.0 * sm.square().sum(-1)) / var_s**1.5  # third cumulant of S / sd^3
    cov_es = 4.0 * (e * sm).sum(-1) + 2.0 * tr2
    # E min of N scores in sd units: -e_N, with the Cornish-Fisher skewness term (S is a quadratic form)
    shift = -expected_max_normal(n) + skew / 6.0 * (expected_max_normal(n, 2) - 1.0)
    mean = e.square().sum(-1) + cov.diagonal(dim1=-2, dim2=-1).sum(-1)
    return mean + shift * cov_es / var_s.sqrt()
