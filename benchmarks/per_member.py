"""Benchmark: what running the fused step's sums over prompts one member at a time costs.

The fused gradients compute the products that sum over a member's prompts with
``fused.base.per_member`` (one matrix product per member) so that a member's bits do not
depend on the ensemble's size. This times each family's gradient function, on the same
tensors in one process, with ``per_member`` as it is and with one batched product (``bmm``)
in its place, in alternating rounds (best of ``--trials``), and prints the ratio.

    python benchmarks/per_member.py [--members 8 64] [--threads 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from iclreg.models import MODELS
from iclreg.tasks import TASKS
from iclreg.train.fused import FAMILIES, cot, reduced_attention, softmax_attention
from iclreg.train.fused.base import Workspace, per_member

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compile_fused import alternating_ms  # noqa: E402

BATCH = 256
SHAPES = {f"he_H{h}": (f"softmax_attention:d=5,heads={h}", "gaussian:d=5,n=41") for h in (1, 2, 4, 8)}
SHAPES["boursier"] = ("reduced_attention:d=3", "gaussian:d=3,n=101")
SHAPES["cot"] = ("cot:d=10,steps=20,lr=0.5", "gaussian:d=10,n=20")
MODULES = (softmax_attention, reduced_attention, cot)


def _batched(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b)


def _set(product) -> None:
    for module in MODULES:
        module.per_member = product


def _using(product, fn):
    """``fn`` run with every family module's ``per_member`` replaced by ``product``."""
    def call():
        _set(product)
        try:
            return fn()
        finally:
            _set(per_member)
    return call


def measure(shape: str, members: int, trials: int) -> dict:
    spec, task = SHAPES[shape]
    config = MODELS.build(spec)
    models = [config.build(torch.Generator().manual_seed(e)) for e in range(members)]
    params = {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models])
              for name, _ in models[0].named_parameters()}
    batches = [TASKS.build(task).sample(BATCH, 0, e) for e in range(members)]
    x, y = torch.stack([b.x for b in batches]), torch.stack([b.y for b in batches])
    gradients, workspace = FAMILIES.get(config).gradients, Workspace()
    step = lambda: gradients(config, params, x, y, workspace)  # noqa: E731
    calls = max(3, 600 // members)
    ours, batched = alternating_ms([_using(per_member, step), _using(_batched, step)], calls, trials)
    return {"shape": shape, "E": members, "per_member_ms": ours, "bmm_ms": batched,
            "per_member_over_bmm": ours / batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), default=list(SHAPES))
    parser.add_argument("--members", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--json", metavar="FILE", help="also write the rows to FILE as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} torch thread(s)\n{'shape':>9s} {'E':>4s} {'per_member ms':>14s} "
          f"{'bmm ms':>8s} {'ratio':>6s}")
    rows = []
    for members in args.members:
        for shape in args.shapes:
            row = measure(shape, members, args.trials)
            rows.append(row)
            print(f"{shape:>9s} {members:4d} {row['per_member_ms']:14.2f} {row['bmm_ms']:8.2f} "
                  f"{row['per_member_over_bmm']:6.3f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
