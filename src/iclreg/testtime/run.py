"""``iclreg test-time``: parse the command's values, check them before any work, evaluate.

Everything a user can get wrong is refused here with one line (``UsageError``): the SPECs, the
list of N, the number of steps and prompts, and the memory the largest N needs (N decodes of a
chunk of prompts are held at once).
"""

from __future__ import annotations

from typing import Any

import torch

from ..device import resolve_device
from ..errors import UsageError, check
from ..resources import MAX_SAMPLES, MAX_STEPS, check_fits
from ..tasks import build as build_task
from .decoders import ChainOfThoughtDecoder
from .decoders import build as build_decoder
from .evaluate import CHUNK, evaluate
from .noises import build as build_noise
from .techniques import build as build_technique

WORKING_COPIES = 6  # (N, chunk, d) tensors alive at once in a decoding step: w, F(w), noise, ...


def parse_samples(text: str) -> list[int]:
    """``1,4,16`` -> [1, 4, 16]: positive integers, at most ``MAX_SAMPLES``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--samples must be a comma-separated list of integers such as 1,4,16, "
                         f"got '{text}'") from None
    check(all(1 <= v <= MAX_SAMPLES for v in values),
          f"--samples values must lie in [1, {MAX_SAMPLES:,}], got {text}")
    return values


def run_test_time(task: str, decoder: str | None, noise: str, technique: str, steps: int, samples: str,
                  prompts: int = 1024, seed: int = 0, device: str = "cpu",
                  run: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Evaluate a decoder (a SPEC, or the trained chain-of-thought ``run``) with a noise and a
    technique against N (``evaluate``'s object); ``progress``: report the decoding as it goes."""
    sizes = parse_samples(samples)
    check(1 <= steps <= MAX_STEPS, f"--steps must lie in [1, {MAX_STEPS:,}], got {steps}")
    check(2 <= prompts <= MAX_SAMPLES, f"--prompts must lie in [2, {MAX_SAMPLES:,}], got {prompts}")
    check((decoder is None) != (run is None), "give either --decoder SPEC or --run RUN_DIR")
    chosen = ChainOfThoughtDecoder.from_run(run) if run is not None else build_decoder(decoder)
    built = build_task(task), chosen, build_noise(noise), build_technique(technique)
    for part, what in ((built[2], "--noise"), (built[3], "--technique")):
        check(part.coefficients in (None, built[0].coefficients),
              f"{what} {part.name} needs a task with {part.coefficients} coefficients (such as "
              f"binary01:d=30,k=4), not {built[0].name}'s ({built[0].coefficients})")
    check(chosen.d in (None, built[0].d), f"the task has d={built[0].d} but the decoder emits d={chosen.d}; "
                                  "use a task of the decoder's dimension")
    dev = resolve_device(device)
    need = WORKING_COPIES * max(sizes) * min(prompts, CHUNK) * built[0].d * 8
    check_fits(need, dev, f"--samples up to {max(sizes):,}", "use fewer samples")
    return evaluate(*built, steps, sizes, prompts, seed, device=str(dev), dtype=torch.float64,
                    progress=progress)
