"""Benchmark: aggregate model-steps/s of ensembles against one model trained alone.

He et al.'s model (one softmax attention layer, d = 5, L = 40, H = 2, Adam 1e-3, loss at the
query; batch 256 by default) is trained alone, eagerly, and as ensembles of E members (each
with its own seed, prompts and optimiser state), in the same process. Prints steps/s,
model-steps/s (E x steps/s), the ratio to the single model and the memory per member
(peak GPU memory on CUDA; on the CPU the tensors saved for backward plus parameters,
gradients and Adam moments). Targets: >= 300x at E = 256 on an H100 (with --cuda-graph);
on the CPU an ensemble must not be slower per model than separate runs (ratio >= 1).

    python benchmarks/ensemble.py [--device cuda] [--cuda-graph] [--members 1 16 64 256 1024]
        [--json FILE]

``--json FILE`` also writes the numbers as one JSON object, rewritten after every E (so a run
stopped part way keeps the finished rows; ``benchmarks/gpu.sh`` reads it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from iclreg.train import resolve
from iclreg.train.loop import Trainer
from iclreg.train.preflight import member_bytes


def config(seed: int, args: argparse.Namespace, graph: bool) -> dict:
    return {
        "task": "gaussian:d=5,n=41,noise_std=0.316228,w_std=0.447214",
        "model": f"softmax_attention:heads={args.heads}",
        "optimizer": {"name": "adam", "lr": 1e-3},
        "train": {"steps": 10**9, "batch": args.batch, "loss": "query", "seed": seed},
        "run": {"device": args.device, "cuda_graph": graph, "log_every": 10**9,
                "checkpoint_every": 10**9},
    }


def rate(members: int, args: argparse.Namespace, graph: bool) -> tuple[float, float]:
    """(steps/s, bytes per member) of an ensemble of ``members``."""
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        configs = [resolve(config(seed, args, graph)) for seed in range(members)]
        dirs = [Path(tmp) / str(i) for i in range(members)]
        for d in dirs:
            d.mkdir()
        trainer = Trainer(configs, dirs, resume=False)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for step in range(3):
            trainer.train_step(step)
        steps = max(3, int(args.seconds_per_point * 50 / members)) if device.type == "cpu" else args.steps
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(3, 3 + steps):
            trainer.train_step(step)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        trainer.close()
        if device.type == "cuda":
            per = torch.cuda.max_memory_allocated(device) / members
        else:
            per = member_bytes(configs[0])
    return steps / seconds, per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--members", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per point on the GPU")
    parser.add_argument("--seconds-per-point", type=float, default=4.0,
                        help="rough CPU budget per point (steps scale down with E)")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = parser.parse_args()
    members = args.members or ([1, 16, 64, 256, 1024] if args.device == "cuda" else [1, 4, 16, 64])
    single, _ = rate(1, args, graph=False)
    print(f"He et al. model, H={args.heads}, batch {args.batch}, {args.device}, "
          f"cuda_graph={args.cuda_graph}; {torch.get_num_threads()} CPU threads")
    print(f"one model alone, eager: {single:.1f} steps/s")
    print(f"{'E':>6s} {'steps/s':>10s} {'model-steps/s':>14s} {'vs alone':>9s} {'MiB/member':>11s}")
    record = {"device": args.device, "batch": args.batch, "heads": args.heads,
              "cuda_graph": args.cuda_graph, "single_steps_per_s": single,
              "memory": "peak CUDA memory / E" if args.device.startswith("cuda") else "estimate (CPU)",
              "rows": []}
    for E in members:
        steps, per = rate(E, args, graph=args.cuda_graph)
        print(f"{E:6d} {steps:10.1f} {E * steps:14.1f} {E * steps / single:8.1f}x {per / 2**20:11.2f}")
        record["rows"].append({"E": E, "steps_per_s": steps, "model_steps_per_s": E * steps,
                               "ratio": E * steps / single, "bytes_per_member": per})
        if args.json:
            Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
