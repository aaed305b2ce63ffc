"""Benchmark: iclreg's all-prefix estimators against a per-prompt, per-position loop.

The reference is written the way reference codebases evaluate baselines: for every prompt
and every prefix length k, solve the k-example problem on its own with
``torch.linalg.lstsq`` / ``torch.linalg.solve`` (OLS, ridge) or run the iteration on the
k x d data (Newton-5, GD-100). Both run in this process on the same prompts (1280 prompts,
d = 20, n = 41 by default); the reference is timed on a subset of prompts and scaled
linearly (it is a loop over prompts), and its predictions are checked against ours on that
subset. Prints seconds and the speed-up per estimator. Target: >= 20x for every estimator.

    python benchmarks/estimators.py [--prompts 1280] [--ref-prompts 64] [--dtype float32]
"""

from __future__ import annotations

import argparse
import time

import torch

from iclreg.estimators import build
from iclreg.tasks import build as build_task


def ref_ols(X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    w = torch.linalg.lstsq(X, y.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    return w


def ref_ridge(X: torch.Tensor, y: torch.Tensor, lam: float = 0.1) -> torch.Tensor:
    d = X.shape[1]
    return torch.linalg.solve(X.T @ X + lam * torch.eye(d, dtype=X.dtype), X.T @ y)


def ref_newton(X: torch.Tensor, y: torch.Tensor, steps: int = 5) -> torch.Tensor:
    S = X.T @ X
    M = S / torch.linalg.matrix_norm(S @ S.T)
    for _ in range(steps):
        M = 2 * M - M @ S @ M
    return M @ X.T @ y


def ref_gd(X: torch.Tensor, y: torch.Tensor, steps: int = 100, lr: float = 0.01) -> torch.Tensor:
    w = torch.zeros(X.shape[1], dtype=X.dtype)
    for _ in range(steps):
        w = w - lr * X.T @ (X @ w - y)
    return w


ESTIMATORS = {
    "ols": ("ols", ref_ols),
    "ridge": ("ridge:lam=0.1", ref_ridge),
    "newton-5": ("newton:steps=5", ref_newton),
    "gd-100": ("gd:steps=100,lr=0.01", ref_gd),
}


def reference(solve, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-prompt, per-position loop: (B, n, d), (B, n) -> (B, n)."""
    B, n, _ = x.shape
    out = torch.zeros(B, n, dtype=x.dtype)
    for b in range(B):
        for i in range(1, n):
            out[b, i] = x[b, i] @ solve(x[b, :i], y[b, :i])
    return out


def best_of(fn, repeats: int) -> tuple[float, torch.Tensor]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1280)
    parser.add_argument("--ref-prompts", type=int, default=64)
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--n", type=int, default=41)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    task = build_task(f"gaussian:d={args.d},n={args.n}")
    prompts = task.sample(args.prompts, seed=0, step=0, dtype=dtype)
    x, y = prompts.x, prompts.y
    m = min(args.ref_prompts, args.prompts)
    scale = args.prompts / m
    print(f"{args.prompts} prompts, d={args.d}, n={args.n}, {args.dtype}, "
          f"{torch.get_num_threads()} threads; reference timed on {m} prompts x {scale:g}")
    print(f"{'estimator':10s} {'iclreg s':>10s} {'reference s':>12s} {'speed-up':>9s} "
          f"{'max |diff|':>11s}")
    for label, (spec, solve) in ESTIMATORS.items():
        est = build(spec, task=task)
        ours, pred = best_of(lambda est=est: est(x, y), args.repeats)
        ref, ref_pred = best_of(lambda solve=solve: reference(solve, x[:m], y[:m]), 1)
        # compare where the problem is well posed: near k = d the float32 reference loses
        # kappa(X_k) eps (iclreg solves in float64; tests/estimators/test_float32_accuracy.py)
        cols = [i for i in range(args.n) if abs(i - args.d) > 2]
        diff = (pred[:m, cols] - ref_pred[:, cols]).abs().max().item()
        ref_total = ref * scale
        print(f"{label:10s} {ours:10.3f} {ref_total:12.2f} {ref_total / ours:8.0f}x {diff:11.2e}")


if __name__ == "__main__":
    main()
