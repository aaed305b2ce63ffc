"""Benchmark: training steps per second of iclreg's engine against a reference step.

The reference trains the way the reference codebase (Garg et al.) does: Hugging Face's
``GPT2Model`` with a linear read-in and read-out, fp32, eager, prompts sampled on the CPU and
copied to the device every step, Adam. iclreg's step is ``Trainer.train_step`` with the
engine's options (``--amp bf16``, ``--compile``, ``--cuda-graph``). Both run in this process
on the same setup, by default the standard one (GPT-2 12/256/8, d = 20, n = 41, batch 64,
Adam 1e-4). Prints steps/s, the ratio and the model FLOP utilisation (MFU) where the peak
of the device is known. On the CPU, ``--model`` also times the theory models and the tiny
GPT-2 against an eager step with CPU-side sampling and the full forward pass.

    python benchmarks/train_step.py [--device cuda] [--batch 64] [--preset standard]
        [--amp bf16] [--compile] [--cuda-graph] [--model softmax_attention:heads=2]
        [--warmup 3] [--json FILE]

``--json FILE`` also writes the measured numbers as one JSON object (``benchmarks/gpu.sh``
reads it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from iclreg.models.layouts import interleave, x_positions
from iclreg.tasks import build as build_task
from iclreg.train import resolve
from iclreg.train.loop import Trainer

PEAK_FLOPS = {  # dense peak per device kind and compute dtype
    ("H100", "bf16"): 989e12, ("H100", "fp32"): 67e12,
    ("H200", "bf16"): 989e12, ("H200", "fp32"): 67e12,
    ("A100", "bf16"): 312e12, ("A100", "fp32"): 19.5e12,
}


class HFReference(nn.Module):
    """Garg et al.'s TransformerModel: read-in, GPT2Model backbone, read-out."""

    def __init__(self, d: int, width: int, layers: int, heads: int, n: int) -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2Model

        cfg = GPT2Config(n_positions=2 * n, n_embd=width, n_layer=layers, n_head=heads,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
        self.read_in = nn.Linear(d, width)
        self.backbone = GPT2Model(cfg)
        self.read_out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.backbone(inputs_embeds=self.read_in(interleave(x, y))).last_hidden_state
        return self.read_out(x_positions(h)).squeeze(-1)


def time_steps(step, steps: int, device: torch.device, warmup: int = 3) -> float:
    for i in range(warmup):
        step(i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def reference_rate(model: nn.Module, task, batch: int, steps: int, device: torch.device,
                   query_only: bool = False, warmup: int = 3) -> float:
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(i: int) -> None:
        p = task.sample(batch, 0, i)  # on the CPU, then copied over
        x, y = p.x.to(device), p.y.to(device)
        err = (model(x, y) - y).square()
        loss = (err[:, -1] if query_only else err).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_steps(step, steps, device, warmup)


def engine_rate(config: dict, steps: int, device: torch.device,
                warmup: int = 3) -> tuple[float, Trainer]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer([resolve(config)], [Path(tmp)], resume=False)
        rate = time_steps(lambda i: trainer.train_step(i), steps, device, warmup)
        trainer.close()
    return rate, trainer


def gpt2_flops(layers: int, width: int, tokens: int, batch: int) -> float:
    """Training FLOPs per step: 6 x parameters x tokens plus attention scores (x3 for backward)."""
    params = layers * 12 * width * width
    attn = layers * 2 * 2 * tokens * tokens * width
    return batch * (6 * params * tokens + 3 * attn)


def mfu(device: torch.device, amp: str, flops_per_s: float) -> tuple[float | None, float | None, str]:
    """(MFU, peak FLOP/s, device name); MFU and peak are None where the peak is not known."""
    if device.type != "cuda":
        return None, None, "cpu"
    name = torch.cuda.get_device_name(device)
    kind = next((k for k in ("H100", "H200", "A100") if k in name), None)
    peak = PEAK_FLOPS.get((kind, "bf16" if amp == "bf16" else "fp32"))
    return (flops_per_s / peak if peak else None), peak, name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="standard", choices=["tiny", "small", "standard"])
    parser.add_argument("--d", type=int, default=20)
    parser.add_argument("--n", type=int, default=41)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before the timed ones")
    parser.add_argument("--amp", default="none", choices=["none", "bf16"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--cuda-graph", action="store_true")
    parser.add_argument("--model", action="append", default=[],
                        help="also time a theory model SPEC (engine vs CPU-side sampling)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers to FILE as JSON")
    args = parser.parse_args()
    device = torch.device(args.device)
    layers, width, heads = {"tiny": (3, 64, 2), "small": (6, 128, 4), "standard": (12, 256, 8)}[args.preset]
    task_spec = f"gaussian:d={args.d},n={args.n}"
    task = build_task(task_spec)
    run = {"device": args.device, "amp": args.amp, "compile": args.compile,
           "cuda_graph": args.cuda_graph}
    print(f"{args.preset} GPT-2 ({layers}/{width}/{heads}), d={args.d}, n={args.n}, batch "
          f"{args.batch}, {device}, options {run}")
    ref = reference_rate(HFReference(args.d, width, layers, heads, args.n), task, args.batch,
                         args.steps, device, warmup=args.warmup)
    config = {"task": task_spec, "model": f"gpt2:preset={args.preset},max_n={args.n}",
              "optimizer": {"lr": 1e-4}, "train": {"batch": args.batch}, "run": run}
    ours, _ = engine_rate(config, args.steps, device, args.warmup)
    print(f"reference (HF GPT2Model, fp32, eager, CPU sampling): {ref:8.2f} steps/s")
    print(f"iclreg engine:                                       {ours:8.2f} steps/s")
    print(f"ratio: {ours / ref:.2f}x")
    flops = gpt2_flops(layers, width, 2 * args.n, args.batch) * ours
    util, peak, name = mfu(device, args.amp, flops)
    if util is not None:
        print(f"MFU: {100 * util:.1f}% of {peak / 1e12:.0f} TFLOP/s ({name})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "preset": args.preset, "batch": args.batch, "d": args.d, "n": args.n, "steps": args.steps,
            "options": run, "device_name": name, "reference_steps_per_s": ref,
            "engine_steps_per_s": ours, "ratio": ours / ref, "flops_per_s": flops, "mfu": util,
            "peak_flops": peak}, indent=1))
    for spec in args.model:
        model_task = f"gaussian:d=5,n={args.n}"
        cfg = {"task": model_task, "model": spec, "train": {"batch": args.batch, "loss": "query"},
               "run": run}
        rate, trainer = engine_rate(cfg, args.steps * 5, device)
        ref_model = trainer.members[0].model
        ref_rate = reference_rate(ref_model, build_task(model_task), args.batch, args.steps * 5,
                                  device, query_only=True)
        print(f"{spec}: engine {rate:.1f} steps/s, CPU-sampled eager {ref_rate:.1f} steps/s, "
              f"ratio {rate / ref_rate:.2f}x")


if __name__ == "__main__":
    main()
