"""Chen, Lu, Wu, Zou, "Towards Theoretical Understanding of Transformer Test-Time Computing"
(arXiv 2508.07571): test-time computing on in-context linear regression.

The paper's text is not available; its setup is known from the authors' early code
(github.com/x1ng5/gd_sampling): d = 50, w* 5-sparse with N(0, 1) entries, errors as norms
E||w - w*||. Every claim is measured twice, with the idealised decoder (the exact GD step,
``gd``) and with a trained chain-of-thought transformer (``cot``, :mod:`iclreg.models.cot`, one
run per setting, decoded far beyond the chains it was taught). Each run is taught GD chains of its
setting's ``Setting.chain`` steps: the binary vote setting 3-step chains in every mode (its plain GD
chain, with eta = 1/n, is unstable), the other three settings 20-step chains in the quick and full
sizes (4-step ones at the toy sizes of the tests). The theory beside the measurements is ours
(``iclreg.theory.testtime``), exact for any affine decoder, the trained one included.

This module holds the sizes, the plan (one ``cot`` run per setting) and the analysis's wiring;
the measurements are :mod:`.testtime_measure`, the claims :mod:`.testtime_claims`, the sections
(their text and figures) :mod:`.testtime_sections` and section 2b :mod:`.testtime_regime`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import torch
from torch import Tensor

from ..device import resolve_device
from ..report.references import CHEN_2025, CHEN_EARLY_CODE
from ..tasks import TASKS, Task
from ..testtime import ChainOfThoughtDecoder, GDDecoder
from ..train.config import ExperimentConfig
from . import testtime_regime as regime
from . import testtime_sections as sections
from .base import REPRODUCTIONS, Experiment, Runs, Section
from .testtime_sections import DECODERS, SETTINGS, SIGMA, Decoders


@dataclass(frozen=True)
class Setting:
    """The prompts of some claims: a task SPEC (with its label noise), the GD step eta (sum form)
    at its n, and the length of the GD chains its chain-of-thought transformer is taught (the
    mean-gradient step eta * n)."""

    task: str
    eta: float
    chain: int = 20

    @cached_property
    def built(self) -> Task:
        """The task of ``task`` (parsed once)."""
        return TASKS.build(self.task)

    @property
    def d(self) -> int:
        return self.built.d

    @property
    def n(self) -> int:
        return self.built.n

    @property
    def tau(self) -> float:
        """sqrt(E||w*||^2 / d): the isotropic prior std with the same second moment (from the
        task's prior moments: s w_std^2 / d for sparse w*, k w_std^2 / d for binary01)."""
        prior = self.built.priors()[0]
        return math.sqrt((float(prior.cov.diagonal().sum()) + float(prior.mean.square().sum())) / self.d)

    @property
    def noise(self) -> float:
        """The std of the label noise."""
        return self.built.noise_std


@dataclass(frozen=True)
class Sizes:
    """The settings of the claims and their grids (N: samples, T: decoding steps)."""

    avg: Setting  # claims 2 and 8
    over: Setting  # claims 3, 6, 7 (n < d: GD overfits label noise)
    best: Setting  # claim 4
    vote: Setting  # claim 5 (binary01)
    prompts: int
    samples: tuple[int, ...]  # N of claims 2, 8 (claim 8 fits N <= 16)
    steps: int  # T of claims 2, 8
    thoughts: tuple[int, ...]  # T grid of claim 3
    sigmas: tuple[float, ...]  # claim 6
    budget: int  # N x T of claim 7
    best_steps: int
    best_samples: tuple[int, ...]
    votes: tuple[int, ...]  # N of claim 5
    vote_theory: int = 64  # prompts of claim 5's exact rate (each needs 4 max(N) decodes)
    cot_train: int = 600  # optimiser steps of each chain-of-thought run
    cot_batch: int = 512


QUICK = Sizes(avg=Setting("sparse:d=10,n=15,s=10,noise_std=0.316", 0.02),
              over=Setting("sparse:d=10,n=8,s=10,noise_std=0.707", 0.02),
              best=Setting("sparse:d=10,n=6,s=2,noise_std=0.707", 0.01),
              vote=Setting("binary01:d=30,n=15,k=4,noise_std=0.01", 1 / 15, chain=3), prompts=512,
              samples=(1, 2, 4, 8, 16, 64, 256), steps=100, thoughts=(25, 50, 100, 200, 400, 800, 1600),
              sigmas=(0.0, 0.5, 1.0, 1.5, 2.5), budget=1024, best_steps=200, best_samples=(1, 4, 16, 64),
              votes=(1, 4, 16, 64, 256))
FULL = Sizes(avg=Setting("sparse:d=50,n=30,s=5,noise_std=0.316", 1e-3),
             over=Setting("sparse:d=50,n=40,s=5,noise_std=0.707", 1e-3),
             best=Setting("sparse:d=50,n=30,s=5,noise_std=0.707", 1e-3),
             vote=Setting("binary01:d=50,n=30,k=5,noise_std=0.01", 1 / 30, chain=3), prompts=4096,
             samples=(1, 2, 4, 8, 16, 100, 1000), steps=500, thoughts=(100, 200, 400, 800, 1400, 2000, 2800),
             sigmas=(0.0, 0.5, 1.0, 1.5, 2.5), budget=2048, best_steps=500, best_samples=(1, 10, 100, 1000),
             votes=(1, 10, 50, 100, 200, 500, 1000), cot_train=3000, cot_batch=1024, vote_theory=32)
TOY = Sizes(avg=Setting("sparse:d=4,n=6,s=4,noise_std=0.316", 0.05, chain=4),
            over=Setting("sparse:d=4,n=3,s=4,noise_std=0.707", 0.05, chain=4),
            best=Setting("sparse:d=4,n=3,s=2,noise_std=0.707", 0.05, chain=4),
            vote=Setting("binary01:d=6,n=6,k=2,noise_std=0.01", 1 / 6, chain=3), prompts=16,
            samples=(1, 2, 4, 8, 16, 32), steps=10, thoughts=(5, 10, 20), sigmas=(0.0, 1.0, 2.0), budget=16,
            best_steps=10, best_samples=(1, 4), votes=(1, 4, 16), cot_train=20, cot_batch=32)
CPU_PROMPTS = 1024  # prompts of full size on the CPU (the early code used 4096)


@REPRODUCTIONS.register("test-time")
@dataclass(frozen=True)
class TestTime(Experiment[Sizes]):
    """Test-time computing with the idealised (exact GD) decoder and a trained CoT transformer."""

    title = "Chen, Lu, Wu, Zou (arXiv 2508.07571): test-time computing on in-context regression"
    modes = {"quick": QUICK, "full": FULL}
    toy = TOY
    references = (CHEN_2025, CHEN_EARLY_CODE)
    controls = {  # each run at small size by tests/experiments/test_testtime_controls.py
        **{f"{c}{suffix}": text for suffix in DECODERS.values() for c, text in (
            ("2-average-to-ridge", "theory with the decoder's step doubled"),
            ("8-extrapolate", "the N = 1 errors in place of the largest N's"),
            ("4-best-of-n", "the theory's selection effect reversed"),
            ("5-vote-overtakes-greedy", "exact rate from another prompt's labels (shuffled)"),
            ("6-noise-level", "theory with the decoder's step x 1.5"),
            ("7-compute-split", "theory with the decoder's step x 1.5"))},
        **{f"3-more-thoughts{suffix}": "noiseless labels (nothing for greedy decoding to overfit)"
           for suffix in DECODERS.values()},
        "1-cot-emits-gd": "a GD decoder whose step is 1.1 times the one it is compared with",
        "3-exact-gd-overfits": "noiseless labels (nothing for GD to overfit)",
        "2b-where-averaging-helps": "exact advantage from another prompt's w* (shuffled labels)"}

    @property
    def decoder_only(self) -> bool:
        """Full size on the CPU: every claim of the idealised decoder at the early code's d = 50, on
        ``CPU_PROMPTS`` prompts; the trained chain-of-thought models are a GPU job."""
        return self.mode == "full" and self.sizes is None and resolve_device(self.device).type == "cpu"

    @property
    def resolved_sizes(self) -> Sizes:
        return replace(FULL, prompts=CPU_PROMPTS) if self.decoder_only else super().resolved_sizes

    def plan(self, sizes: Sizes) -> dict[str, ExperimentConfig]:
        """One chain-of-thought transformer per setting, taught that setting's GD chain."""
        if self.decoder_only:
            return {}
        out = {}
        for key in SETTINGS:
            s: Setting = getattr(sizes, key)
            out[f"cot-{key}"] = self.config(
                s.task, f"cot:d={s.d},lr={s.eta * s.n},steps={s.chain}",
                optimizer={"name": "adam", "lr": 1e-2, "clip": 1.0}, schedule={"name": "cosine"},
                train={"steps": sizes.cot_train, "batch": sizes.cot_batch, "loss": "chain"},
                eval={"samples": 256}, run={"log_every": 50, "checkpoint_every": sizes.cot_train})
        return out

    def gen(self, seed: int) -> torch.Generator:
        """A generator on this reproduction's device, seeded with ``seed``."""
        return torch.Generator(device=resolve_device(self.device)).manual_seed(seed)

    def prompts(self, setting: Setting, prompts: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        """x (P, n, d), y (P, n), w* (P, d) of a setting, in float64."""
        device = resolve_device(self.device)
        p = TASKS.build(setting.task).sample(prompts, seed, 0, device=device, dtype=torch.float64)
        return p.x, p.y, p.w

    def decoders(self, runs: Runs, sizes: Sizes) -> dict[str, Decoders]:
        """Per setting, exact GD with its step and (unless decoder-only) its trained CoT run."""
        decoders = {key: {"GD": GDDecoder(lr=getattr(sizes, key).eta)} for key in SETTINGS}
        for key in SETTINGS if not self.decoder_only else ():
            decoders[key]["trained CoT"] = ChainOfThoughtDecoder.from_run(str(runs[f"cot-{key}"]))
        return decoders

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        dec = self.decoders(runs, sizes)
        first = sections.not_run() if self.decoder_only else sections.fidelity(self, sizes, dec)
        return [first, sections.averaging(self, sizes, dec["avg"]), regime.section(self, sizes, SIGMA),
                sections.thoughts(self, sizes, dec["over"]), sections.best(self, sizes, dec["best"]),
                sections.vote(self, sizes, dec["vote"]), sections.noise_level(self, sizes, dec["over"]),
                sections.budget(self, sizes, dec["over"]), sections.notes()]
