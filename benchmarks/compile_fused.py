"""Benchmark: the fused step's hand-derived gradients, eager against ``torch.compile``.

For He et al.'s multi-head attention (d = 5, n = 41, batch 256, the query loss) at each H and
ensemble size E, in one process and on the same tensors:

- eager: ``fused.softmax_attention.query_gradients`` with its reused workspace (the training
  path);
- compiled: the same function through ``torch.compile`` (inductor, ``dynamic=False``: one graph
  per shape, as a run of one shape would use), its compile time reported apart.

It prints milliseconds per call (best of ``--trials`` alternating rounds), the ratio eager / compiled (> 1:
compiling is faster) and the largest gradient difference between the two (float32 round-off).

    python benchmarks/compile_fused.py [--heads 2 8] [--members 8] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from iclreg.models.softmax_attention import SoftmaxAttentionConfig
from iclreg.train.fused.base import Workspace
from iclreg.train.fused.softmax_attention import query_gradients

BATCH, N, D = 256, 41, 5


def alternating_ms(fns, calls: int = 30, trials: int = 5) -> list[float]:
    """Milliseconds per call of each of ``fns``, timed in alternating rounds (best of ``trials``),
    so a load that comes and goes hits all of them."""
    for fn in fns:
        for _ in range(3):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(trials):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[i] = min(best[i], (time.perf_counter() - start) / calls * 1e3)
    return best


def measure(heads: int, members: int, trials: int) -> dict:
    config = SoftmaxAttentionConfig(d=D, heads=heads)
    p = config.width
    g = torch.Generator().manual_seed(0)
    params = {name: 0.3 * torch.randn(members, heads, p, p, generator=g) for name in ("Q", "K", "V")}
    params["O"] = 0.3 * torch.randn(members, 1, heads, p, generator=g)
    x = torch.randn(members, BATCH, N, D, generator=g)
    y = torch.randn(members, BATCH, N, generator=g)
    workspace = Workspace()
    compiled = torch.compile(lambda q, a, b: query_gradients(config, q, a, b), dynamic=False)
    start = time.perf_counter()
    _, got = compiled(params, x, y)
    compile_s = time.perf_counter() - start
    _, want = query_gradients(config, params, x, y, workspace)
    eager, fast = alternating_ms([lambda: query_gradients(config, params, x, y, workspace),
                                  lambda: compiled(params, x, y)], trials=trials)
    return {"heads": heads, "E": members, "eager_ms": eager, "compiled_ms": fast,
            "eager_over_compiled": eager / fast, "compile_s": compile_s,
            "max_grad_diff": max((want[k] - got[k]).abs().max().item() for k in want)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heads", type=int, nargs="+", default=[2, 8])
    parser.add_argument("--members", type=int, nargs="+", default=[8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} torch thread(s)\n{'H':>2s} {'E':>4s} {'eager ms':>9s} {'compiled ms':>12s} "
          f"{'eager/compiled':>15s} {'compile s':>10s} {'max |dg|':>9s}")
    rows = []
    for heads in args.heads:
        for members in args.members:
            row = measure(heads, members, args.trials)
            rows.append(row)
            print(f"{heads:2d} {members:4d} {row['eager_ms']:9.2f} {row['compiled_ms']:12.2f} "
                  f"{row['eager_over_compiled']:15.2f} {row['compile_s']:10.1f} {row['max_grad_diff']:9.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
