"""The best multi-head softmax kernel predictor at finite D, by Monte Carlo.

The predictor y_hat = sum_h mu_h r_h(omega_h), r(omega) = sum_i y_i softmax_i(omega x_i^T P x_q)
(Cui et al., arXiv 2401.17426; He et al., arXiv 2503.12734) is linear in mu. So on a fixed set
of prompts, for heads drawn from a grid of scores omega_1..omega_G, the risk of every choice of
heads follows from the Gram matrix G_ab = E r(omega_a) r(omega_b) and c_a = E r(omega_a) y:
min_mu E (mu^T r - y)^2 = E y^2 - c_S^T G_S^{-1} c_S for the heads S. Minimising over all pairs
(or triples) of grid points gives the empirical-risk optimum of the H-head family, which an
H-head attention layer trained at that D can reach; evaluated on independent prompts.

The target is the noiseless label w^T x_q: E (y_hat - y)^2 = E (y_hat - w^T x_q)^2 + sigma^2 for
noise independent of the prompt, so the excess risk is estimated without the variance of the
query's own noise (a D = 1000 excess of 0.02 next to sigma^2 = 0.1 needs it).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from ..tasks import Task


def head_outputs(x: Tensor, y: Tensor, omegas: Tensor, P: Tensor | None = None) -> Tensor:
    """r(omega) at the last position of each prompt for every omega of the grid.

    Args:
        x: (B, n, d) with the query last; y: (B, n). omegas: (G,). P: (d, d) score matrix
            (identity when None).
    Returns:
        (B, G).
    """
    ctx, labels, q = x[:, :-1], y[:, :-1], x[:, -1]
    if P is not None:
        q = q @ P.T.to(q)
    base = (ctx @ q.unsqueeze(-1)).squeeze(-1)  # (B, D): x_i^T P x_q
    weights = torch.softmax(omegas.view(1, -1, 1) * base.unsqueeze(1), dim=-1)  # (B, G, D)
    return (weights @ labels.unsqueeze(-1)).squeeze(-1)


def best_heads(task: Task, omegas: Tensor, heads: tuple[int, ...], samples: int, seed: int = 0,
               P: Tensor | None = None, budget: int = 2**25,
               device: str = "cpu") -> dict[int, dict[str, object]]:
    """The best H-head kernel predictor on a grid of omegas for each H in ``heads``, fitted and
    evaluated on independent prompt sets (each of ``samples`` prompts from ``task``, the query
    last), against the noiseless query label. Prompts are processed in chunks of at most
    ``budget`` softmax weights (prompts x grid x D), on ``device``.

    Returns:
        {H: {"excess": held-out E (y_hat - w^T x_q)^2 of the best heads, "risk": that plus
             sigma^2, "fit_excess": the in-sample value, "omega": the chosen omegas (H,),
             "mu": their output weights (H,)}}.
    """
    omegas = omegas.double()
    chunk = max(1, budget // (len(omegas) * task.n))

    def moments(stream: int) -> tuple[Tensor, Tensor, float]:
        G = torch.zeros(len(omegas), len(omegas), dtype=torch.float64, device=device)
        c = torch.zeros(len(omegas), dtype=torch.float64, device=device)
        grid = omegas.to(device)
        yy, done = 0.0, 0
        while done < samples:
            b = min(chunk, samples - done)
            p = task.sample(b, seed=seed + stream, step=done, dtype=torch.float64, device=device)
            r = head_outputs(p.x, p.y, grid, P)
            target = (p.x[:, -1] * p.w).sum(-1)  # w^T x_q
            G += r.T @ r
            c += r.T @ target
            yy += float(target.square().sum())
            done += b
        return (G / samples).cpu(), (c / samples).cpu(), yy / samples

    G, c, yy = moments(0)
    G2, c2, yy2 = moments(1_000_003)  # held-out prompts
    out = {}
    for H in heads:
        best = (math.inf, [], torch.zeros(0))
        for subset in itertools.combinations(range(len(omegas)), H):
            idx = list(subset)
            try:
                mu = torch.linalg.solve(G[idx][:, idx], c[idx])
            except RuntimeError:  # singular: heads too close for float64
                continue
            risk = yy - float(c[idx] @ mu)
            if risk < best[0]:
                best = (risk, idx, mu)
        fit, idx, mu = best
        held = yy2 - 2 * float(c2[idx] @ mu) + float(mu @ G2[idx][:, idx] @ mu)
        out[H] = {"excess": held, "risk": held + task.noise_std**2, "fit_excess": fit,
                  "omega": omegas[idx], "mu": mu}
    return out
