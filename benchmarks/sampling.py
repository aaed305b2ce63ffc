"""Benchmark: the prompts of one training step of an E-member ensemble, per member, drawn by
the per-member loop (``train.sampler=stream``: one ``task.sample`` per member) and by the
counter sampler (``train.sampler=counter``: every member in one vectorised draw), measured in
the same process. Prints the time per member of each (best of ``--repeats``) and their ratio
(loop / counter: > 1 means the counter sampler is faster). Issue 17's target on the CPU: a
ratio >= 1 at E = 64 and > 1 at E = 256.

    python benchmarks/sampling.py [--device cpu] [--members 1 16 64 256] [--task SPEC]
        [--batch 64] [--dtype float32] [--threads N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from iclreg.tasks import TASKS
from iclreg.tasks.counter import sample_members


def best_seconds(fn, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timed calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--task", default="gaussian:d=20,n=41,noise_std=0.1")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    task = TASKS.build(args.task)
    print(f"task {args.task}, batch {args.batch}, {args.dtype}, {device}, "
          f"{torch.get_num_threads()} threads; ms per member, best of {args.repeats}")
    print(f"{'E':>5} {'loop':>9} {'counter':>9} {'ratio':>7}")
    for E in args.members:
        seeds = list(range(E))

        def loop(seeds=seeds):
            prompts = [task.sample(args.batch, s, 3, device=device, dtype=dtype) for s in seeds]
            return torch.stack([p.x for p in prompts]), torch.stack([p.y for p in prompts])

        def counter(seeds=seeds):
            return sample_members([task] * len(seeds), seeds, args.batch, 3, device=device, dtype=dtype)

        t_loop = best_seconds(loop, device, args.repeats) / E
        t_counter = best_seconds(counter, device, args.repeats) / E
        print(f"{E:>5} {t_loop * 1e3:>9.3f} {t_counter * 1e3:>9.3f} {t_loop / t_counter:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
