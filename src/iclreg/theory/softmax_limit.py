r"""Softmax attention as linear attention in the large-prompt limit (Boursier & Boyer,
arXiv 2512.11784).

Single-layer softmax attention with value V (q, p), key K (r, p), query Q (r, p) maps a
query token z and L context tokens z_1..z_L to

.. math::
    T_L(z) = V \sum_i z_i\, \mathrm{softmax}_i(z_i^\top K^\top Q z).

If the tokens are i.i.d. N(m, G) then, with a = K^T Q z, the Gaussian tilting identity
E[X e^{a.X}] / E[e^{a.X}] = m + G a gives the infinite-L limit

.. math::
    T_\infty(z) = V m + V G K^\top Q z,

i.e. linear attention with the population second moment in place of (1/L) sum z_i z_i^T.
The identity is Gaussian-specific: for i.i.d. +-1 tokens the same ratio is tanh(a).

For regression tokens z = (x, y), x ~ N(0, S), y = <w, x> + sigma eps (w fixed),
G = [[S, S w], [w^T S, w^T S w + sigma^2]]. In the reduced parameters (A, b) of the paper the
infinite-prompt, noiseless population risk is

.. math::
    R(A, b) = \tfrac12 \mathrm{tr}\big((b S A - I) S (b S A - I)^\top\big),

which is zero exactly on the Bayes-optimal set b S A = I. Since R depends on (A, b) only
through the product b A, gradient flow conserves ||A||_F^2 - b^2 (see ``population_risk_grad``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

__all__ = [
    "gaussian_softmax_limit",
    "gradient_flow",
    "limit_mse",
    "population_risk",
    "population_risk_grad",
    "regression_token_moments",
    "softmax_attention",
]


def softmax_attention(V: Tensor, K: Tensor, Q: Tensor, Z: Tensor, z: Tensor) -> Tensor:
    r"""Finite-L single-layer softmax attention V sum_i z_i softmax_i(z_i^T K^T Q z).

    Any score scaling (1/sqrt(p), a temperature) is absorbed into K^T Q: pass a scaled K.
    The query attends only to the L context tokens.

    Args:
        V: value matrix (q, p).
        K: key matrix (r, p).
        Q: query matrix (r, p).
        Z: context tokens (..., L, p).
        z: query token (..., p); leading dims broadcast against Z's.

    Returns:
        Attention output (..., q).
    """
    a = z @ (K.T @ Q).T  # (..., p): a = K^T Q z
    scores = (Z @ a.unsqueeze(-1)).squeeze(-1)  # (..., L): z_i . a
    attn = torch.softmax(scores, dim=-1)
    pooled = (attn.unsqueeze(-2) @ Z).squeeze(-2)  # (..., p): sum_i attn_i z_i
    return pooled @ V.T  # (..., q)


def gaussian_softmax_limit(V: Tensor, K: Tensor, Q: Tensor, mean: Tensor, cov: Tensor, z: Tensor) -> Tensor:
    r"""Infinite-L softmax attention output V m + V G K^T Q z for tokens ~ N(m, G).

    Args:
        V: value matrix (q, p).
        K: key matrix (r, p).
        Q: query matrix (r, p).
        mean: token mean m (..., p).
        cov: token covariance G (..., p, p).
        z: query token (..., p).

    Returns:
        The limit (..., q).
    """
    a = z @ (K.T @ Q).T  # (..., p)
    tilted = mean + (cov @ a.unsqueeze(-1)).squeeze(-1)  # (..., p): m + G a
    return tilted @ V.T


def regression_token_moments(Sigma: Tensor, w: Tensor, noise_std: float) -> tuple[Tensor, Tensor]:
    r"""Mean and covariance of the regression token z = (x, y), x ~ N(0, S), y = <w, x> + sigma eps.

    Args:
        Sigma: covariance S of x (d, d).
        w: task vector (..., d).
        noise_std: label-noise std sigma.

    Returns:
        mean (..., d + 1), all zeros, and G (..., d + 1, d + 1) =
        [[S, S w], [w^T S, w^T S w + sigma^2]].
    """
    d = Sigma.shape[-1]
    sw = w @ Sigma  # (..., d): S w (S symmetric)
    yy = (sw * w).sum(-1) + noise_std**2  # (...,)
    batch = w.shape[:-1]
    G = w.new_empty(*batch, d + 1, d + 1)
    G[..., :d, :d] = Sigma
    G[..., :d, d] = sw
    G[..., d, :d] = sw
    G[..., d, d] = yy
    return w.new_zeros(*batch, d + 1), G


def population_risk(A: Tensor, b: Tensor | float, Sigma: Tensor) -> Tensor:
    r"""R(A, b) = 1/2 tr((b S A - I) S (b S A - I)^T).

    Derivation: the infinite-L linear limit with value row (0, b) and key-query block A
    predicts y_hat = b w^T S A x (from G's last row); with y = w^T x (noiseless),
    w ~ N(0, I_d), x ~ N(0, S) independent, E (y_hat - y)^2 = E (w^T M x)^2 = tr(M S M^T),
    M = b S A - I. So R = 1/2 E_{w, x} (w^T (b S A - I) x)^2.

    Args:
        A: (..., d, d). b: scalar or (...,). Sigma: S (d, d), symmetric positive definite.

    Returns:
        R (...,).
    """
    b = torch.as_tensor(b, dtype=A.dtype, device=A.device)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    M = b[..., None, None] * (Sigma @ A) - eye  # (..., d, d)
    return 0.5 * (M @ Sigma * M).sum((-2, -1))  # tr(M S M^T) = <M S, M>_F


def population_risk_grad(A: Tensor, b: Tensor | float, Sigma: Tensor) -> tuple[Tensor, Tensor]:
    r"""Closed-form gradients of R(A, b) = 1/2 tr(M S M^T), M = b S A - I.

    dR = <M S, dM>_F with dM = db S A + b S dA, so

    .. math::
        \nabla_A R = b\, S M S, \qquad \partial_b R = \mathrm{tr}(S M^\top S A) = \langle A, S M S\rangle_F.

    Hence <A, grad_A R> = b * dR/db, and along gradient flow
    d/dt (||A||_F^2 - b^2) = -2 <A, grad_A R> + 2 b dR/db = 0: ||A||_F^2 - b^2 is conserved
    for R as written (no balanced reparameterisation needed; it holds for any loss of b A).

    Args:
        A: (..., d, d). b: scalar or (...,). Sigma: S (d, d).

    Returns:
        (grad_A (..., d, d), grad_b (...,)).
    """
    b = torch.as_tensor(b, dtype=A.dtype, device=A.device)
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    M = b[..., None, None] * (Sigma @ A) - eye
    SMS = Sigma @ M @ Sigma  # (..., d, d)
    return b[..., None, None] * SMS, (A * SMS).sum((-2, -1))


def limit_mse(A: Tensor, b: Tensor | float, Sigma: Tensor, w_var: float = 1.0,
              noise_var: float = 0.0) -> Tensor:
    r"""Infinite-prompt test MSE of the reduced attention (A, b) when w ~ N(0, w_var I):

    .. math::
        E (b w^\top S A x - y)^2 = \mathrm{w\_var}\, \mathrm{tr}(M S M^\top) + \sigma^2
        = 2\, \mathrm{w\_var}\, R(A, b) + \sigma^2,

    so its gradient flow is the flow of R run 2 w_var times faster, and its minimum sigma^2
    (the Bayes risk at infinite L: the predictor w^T x) is reached on b S A = I.
    """
    return 2 * w_var * population_risk(A, b, Sigma) + noise_var


def gradient_flow(A0: Tensor, b0: float, Sigma: Tensor, times: list[float], w_var: float = 1.0,
                  rtol: float = 1e-10) -> tuple[Tensor, Tensor]:
    """Gradient flow of ``limit_mse`` in (A, b) from (A0, b0), integrated by an adaptive
    Runge-Kutta method (scipy ``solve_ivp``, RK45) to the given times.

    SGD with step eta on the MSE follows this flow at time eta * steps once L and the batch
    are large. Returns A (T, d, d) and b (T,) at ``times`` (float64).
    """
    d = A0.shape[-1]
    S = Sigma.double()

    def field(_t: float, state: np.ndarray) -> np.ndarray:
        A = torch.from_numpy(state[:-1]).view(d, d)
        gA, gb = population_risk_grad(A, torch.tensor(state[-1], dtype=torch.float64), S)
        return -2 * w_var * np.concatenate([gA.reshape(-1).numpy(), [float(gb)]])

    start = np.concatenate([A0.double().reshape(-1).numpy(), [float(b0)]])
    sol = solve_ivp(field, (0.0, max(times)), start, t_eval=sorted(times), rtol=rtol, atol=rtol * 1e-2)
    states = torch.from_numpy(sol.y.T.copy())  # (T, d*d + 1)
    return states[:, :-1].view(-1, d, d), states[:, -1]
