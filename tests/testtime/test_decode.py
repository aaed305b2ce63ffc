"""decode against a slow explicit loop over samples and prompts with the same random draws.

The draw order is decode's documented contract: one (N, B, d) tensor per step from the
generator, torch.randn for additive and multiplicative noise, torch.rand for support sampling.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclreg.testtime import DECODERS, NOISES, decode


def _slow_support(f: np.ndarray, u: np.ndarray | None, k: int, tau: float) -> np.ndarray:
    """Sequential Gumbel-top-k on one vector: k largest of log(p)/tau - log(-log u)."""
    p = np.maximum(f, 1e-10)
    p = p / p.sum()
    keys = np.log(p) if u is None else np.log(p) / tau - np.log(-np.log(u))
    chosen = []
    for _ in range(k):  # k successive argmaxes over the indices left
        j = max((i for i in range(len(f)) if i not in chosen), key=lambda i: keys[i])
        chosen.append(j)
    out = np.zeros_like(f)
    out[chosen] = 1.0
    return out


def _slow_decode(x, y, lr, mean, noise, spec, steps, samples, gen):
    X, Y = x.numpy(), y.numpy()
    B, n, d = X.shape
    w = np.zeros((samples, B, d))
    step = lr / n if mean else lr
    for _ in range(steps):
        if spec.startswith("support") and noise.temperature > 0:
            draw = torch.rand(samples, B, d, generator=gen, dtype=torch.float64).numpy()
        elif spec.startswith(("additive", "multiplicative")):
            draw = torch.randn(samples, B, d, generator=gen, dtype=torch.float64).numpy()
        else:
            draw = None
        new = np.empty_like(w)
        for s in range(samples):
            for b in range(B):
                W = w[s, b]
                F = W - step * X[b].T @ (X[b] @ W - Y[b])
                if spec.startswith("additive"):
                    new[s, b] = F + noise.std * draw[s, b]
                elif spec.startswith("multiplicative"):
                    xi = noise.std * draw[s, b]
                    new[s, b] = F - lr * (xi @ W) * xi
                elif spec.startswith("support"):
                    u = None if draw is None else draw[s, b]
                    new[s, b] = _slow_support(F, u, noise.k, noise.temperature)
                else:
                    new[s, b] = F
        w = new
    return w


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        ("greedy", False),
        ("additive:std=0.3", False),
        ("multiplicative:std=0.7", True),
        ("support:k=2,temperature=0.5", True),
        ("support:k=3,temperature=0", True),
    ],
)
def test_decode_matches_a_per_sample_per_prompt_loop(seed: int, spec: str, mean: bool):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 6, 5, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    lr = 0.05
    decoder = DECODERS.build(f"gd:lr={lr},mean={str(mean).lower()}")
    noise = NOISES.build(spec)
    fast = decode(x, y, decoder, noise, 6, 4, torch.Generator().manual_seed(seed + 7))
    slow = _slow_decode(x, y, lr, mean, noise, spec, 6, 4, torch.Generator().manual_seed(seed + 7))
    np.testing.assert_allclose(fast.numpy(), slow, rtol=1e-10, atol=1e-12)
