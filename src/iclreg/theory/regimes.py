r"""Where averaging noisy decodes helps: the exact risks of GD-T and ridge-GD-T from the spectrum
of the design (our derivation, for Chen, Lu, Wu, Zou, arXiv 2508.07571).

The N-average of multiplicative-noise decodes (noise std sigma) tends to the mean trajectory,
ridge-GD with lambda = sigma^2 (``iclreg.theory.testtime``, item 2), so for large N it beats
greedy decoding (GD-T) exactly when

.. math::
    A(\sigma, T, s_y) = R_{GD}(T) - R_{ridge}(\sigma^2, T) > 0,\qquad
    R(\lambda, T) = \tau^2 \sum_i (1 - a_i s_i)^2 + s_y^2 \sum_i a_i^2 s_i,

with a_i the filter of ``gd_filter`` on the eigenvalues s_i of X^T X; at finite N the average
pays V_T / N more. In each eigendirection ridge trades bias for variance: A > 0 needs label
noise s_y large enough against tau, and T long enough for GD to fit the noise (overfitting);
with little noise or few steps the shrinkage only adds bias.
"""

from __future__ import annotations

import torch

from .testtime import gd_filter

__all__ = ["averaging_advantage", "spectrum", "weight_risk"]


def spectrum(x: torch.Tensor) -> torch.Tensor:
    """Eigenvalues s_i of X^T X, clamped at 0: x (B, n, d) -> (B, d)."""
    return torch.linalg.eigvalsh(x.transpose(-1, -2) @ x).clamp_min(0.0)


def weight_risk(eigs: torch.Tensor, steps: int, eta: float, lam: float, tau: float,
                noise_std: float) -> torch.Tensor:
    """Exact E||w_T - w*||^2 of ridge-GD-T (lam = 0: GD) from the spectrum eigs (B, d): (B,)."""
    a = gd_filter(eigs, steps, eta, lam)
    return tau**2 * ((1.0 - a * eigs) ** 2).sum(-1) + noise_std**2 * (a**2 * eigs).sum(-1)


def averaging_advantage(eigs: torch.Tensor, steps: int, eta: float, sigma: float, tau: float,
                        noise_std: float) -> torch.Tensor:
    """A = R_GD(T) - R_ridge(sigma^2, T) per design (B,): > 0 where the large-N average of
    multiplicative-noise decodes beats greedy decoding."""
    return (weight_risk(eigs, steps, eta, 0.0, tau, noise_std)
            - weight_risk(eigs, steps, eta, sigma**2, tau, noise_std))
