"""Concentration of finite-L softmax attention around its infinite-prompt limit
(Boursier & Boyer, arXiv 2512.11784).

For random attention weights (V, K, Q), Gaussian tokens z_i ~ N(m, G) and a query z, the
finite-L output f_L(z) = V sum_i z_i softmax_i(z_i^T K^T Q z) approaches the linear limit
f(z) = V m + V G K^T Q z, and so do its gradients with respect to (V, K, Q). This module
measures E||f_L - f||^2 and E||grad f_L - grad f||^2 against L; a Monte Carlo rate gives
log-log slopes near -1 for these squared errors (fitted by ``analysis.fit.loglog_slope``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..tasks.covariance import sqrt_psd
from ..theory import gaussian_softmax_limit, softmax_attention


def limit_errors(cov: Tensor, lengths: list[int], draws: int = 16, reps: int = 8,
                 seed: int = 0, score_scale: float = 0.3) -> dict[str, list[float]]:
    """Mean squared output and gradient errors of finite-L attention against the limit.

    Args:
        cov: token covariance G (p, p), tokens centred (m = 0).
        lengths: prompt lengths L.
        draws: random weight draws: V with N(0, 1/p) entries, K and Q with N(0, s^2/p),
            s = ``score_scale``, so that the scores a = K^T Q z stay O(1) (with s = 1 the
            softmax weights e^{<a, z_i>} are so heavy-tailed that L = 4096 is pre-asymptotic).
        reps: prompts per draw and length.
    Returns:
        {"L": lengths, "output": [...], "gradient": [...], "limit_norm": E||f||^2} (means over
        draws and prompts), and "output_se", "gradient_se": the Monte Carlo standard errors of
        those means over the independent weight draws (NaN with one draw).
    """
    p = cov.shape[0]
    cov = cov.double()
    root = sqrt_psd(cov)
    gen = torch.Generator().manual_seed(seed)
    out_err = np.zeros((len(lengths), draws))
    norm = np.zeros((len(lengths), draws))
    grad_err = np.zeros((len(lengths), draws))
    for j in range(draws):
        weights = [(torch.randn(p, p, generator=gen, dtype=torch.float64) * scale / math.sqrt(p))
                   .requires_grad_() for scale in (1.0, score_scale, score_scale)]
        V, K, Q = weights
        for i, L in enumerate(lengths):
            Z = torch.randn(reps, L, p, generator=gen, dtype=torch.float64) @ root  # (reps, L, p)
            z = torch.randn(reps, p, generator=gen, dtype=torch.float64) @ root  # (reps, p)
            finite = softmax_attention(V, K, Q, Z, z)  # (reps, p)
            limit = gaussian_softmax_limit(V, K, Q, torch.zeros(p, dtype=torch.float64), cov, z)
            out_err[i, j] = (finite - limit).square().sum(-1).mean().item()
            norm[i, j] = limit.square().sum(-1).mean().item()
            total = 0.0
            for r in range(reps):  # per-prompt gradients of the output's sum
                g_f = torch.autograd.grad(finite[r].sum(), weights, retain_graph=True)
                g_l = torch.autograd.grad(limit[r].sum(), weights, retain_graph=True)
                total += sum(float((a - b).square().sum()) for a, b in zip(g_f, g_l, strict=True))
            grad_err[i, j] = total / reps
    return {"L": list(lengths), "output": out_err.mean(1).tolist(),
            "gradient": grad_err.mean(1).tolist(), "limit_norm": float(norm.mean()),
            "output_se": _draw_se(out_err), "gradient_se": _draw_se(grad_err)}


def _draw_se(values: np.ndarray) -> list[float]:
    """Standard error of the mean over draws of (lengths, draws) values, one per length: the
    draws are independent; the prompts of one draw share its weights, so they are averaged first."""
    draws = values.shape[1]
    if draws < 2:
        return [math.nan] * values.shape[0]
    return (values.std(1, ddof=1) / math.sqrt(draws)).tolist()


def rademacher_limit_gap(lengths: list[int], p: int = 5, reps: int = 64,
                         seed: int = 0) -> dict[str, list[float]]:
    """Finite-L attention on Rademacher tokens against the linear Gaussian formula V a and the
    exact non-Gaussian limit V tanh(a) (a = K^T Q z), relative squared errors by L.

    Returns:
        {"L": lengths, "vs_linear": [...], "vs_tanh": [...]}: sum over ``reps`` prompts of
        ||f_L - limit||^2 over the sum of ||limit||^2, one value per L.
    """
    gen = torch.Generator().manual_seed(seed)
    V, K, Q = (torch.randn(p, p, generator=gen, dtype=torch.float64) * (2 / math.sqrt(p)) for _ in range(3))
    linear, tanh = [], []
    for L in lengths:
        Z = torch.randint(0, 2, (reps, L, p), generator=gen).double() * 2 - 1
        z = torch.randint(0, 2, (reps, p), generator=gen).double() * 2 - 1
        finite = softmax_attention(V, K, Q, Z, z)
        a = z @ (K.T @ Q).T
        lin = a @ V.T  # V G K^T Q z with G = I, m = 0
        exact = torch.tanh(a) @ V.T
        linear.append(float((finite - lin).square().sum() / lin.square().sum()))
        tanh.append(float((finite - exact).square().sum() / exact.square().sum()))
    return {"L": list(lengths), "vs_linear": linear, "vs_tanh": tanh}


def reduced_attention_gaps(A: Tensor, b: Tensor | float, x: Tensor, y: Tensor, w: Tensor,
                           Sigma: Tensor) -> dict[str, float]:
    """Finite-L softmax attention in reduced parameters against its infinite-L limit, per prompt.

    f_L = b sum_j p_j y_j with p = softmax(x_j^T A x_q) over the n - 1 examples of each prompt
    (the query is the last point), and f = b w^T S A x_q. Gradients in closed form:
    d f_L / dA = b sum_j p_j (y_j - f_L / b) x_j x_q^T, d f_L / db = f_L / b;
    d f / dA = b S w x_q^T, d f / db = w^T S A x_q.

    Args:
        A: (d, d). b: scalar. x: (B, n, d). y: (B, n). w: (B, d). Sigma: S (d, d).

    Returns:
        {"output": E (f_L - f)^2 / E f^2, "gradient": E ||grad f_L - grad f||^2 / E ||grad f||^2}.
    """
    b = torch.as_tensor(b, dtype=x.dtype)
    ctx, ys, q = x[:, :-1], y[:, :-1], x[:, -1]  # (B, L, d), (B, L), (B, d)
    p = torch.softmax(ctx @ (A @ q.unsqueeze(-1)), dim=1).squeeze(-1)  # (B, L)
    pooled = (p * ys).sum(1)  # (B,)
    centred = (p * (ys - pooled.unsqueeze(1))).unsqueeze(-1) * ctx  # (B, L, d)
    grad_A = b * centred.sum(1).unsqueeze(-1) * q.unsqueeze(1)  # (B, d, d)
    sw = w @ Sigma  # (B, d): S w
    limit = ((sw @ A) * q).sum(-1)  # (B,): w^T S A x_q
    grad_A_inf = b * sw.unsqueeze(-1) * q.unsqueeze(1)
    out_err = (b * pooled - b * limit).square().mean() / (b * limit).square().mean()
    grad_err = ((grad_A - grad_A_inf).square().sum((1, 2)) + (pooled - limit).square()).mean()
    grad_norm = (grad_A_inf.square().sum((1, 2)) + limit.square()).mean()
    return {"output": float(out_err), "gradient": float(grad_err / grad_norm)}
