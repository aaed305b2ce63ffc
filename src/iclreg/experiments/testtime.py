"""Chen, Lu, Wu, Zou, "Towards Theoretical Understanding of Transformer Test-Time Computing"
(arXiv 2508.07571): test-time computing on in-context linear regression.

The paper's text is not available; its setup is known from the authors' early code
(github.com/x1ng5/gd_sampling): d = 50, w* 5-sparse with N(0, 1) entries, errors as norms
E||w - w*||. Every claim is measured twice, with the idealised decoder (the exact GD step,
``gd``) and with a trained chain-of-thought transformer (``cot``, :mod:`iclreg.models.cot`, one
run per setting, taught its setting's GD chains (20 steps; 3 for the binary vote setting, whose
plain GD chain is unstable) and decoded far beyond). The theory beside the measurements is ours
(``iclreg.theory.testtime``), exact for any affine decoder, the trained one included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property

import torch

from ..device import resolve_device
from ..report.plots import Plot
from ..report.references import CHEN_2025, CHEN_EARLY_CODE
from ..tasks import TASKS, Task
from ..testtime import ChainOfThoughtDecoder, Decoder, GDDecoder
from ..theory import testtime as theory
from ..train.config import ExperimentConfig
from . import testtime_claims as build
from . import testtime_measure as measure
from . import testtime_regime as regime
from .base import REPRODUCTIONS, Experiment, Runs, Section
from .claims import Claim

EARLY = build.EARLY
SIGMA = 1.0  # multiplicative noise std (the early code's sigma^2 = 1)
DECODERS = {"GD": "", "trained CoT": "-cot"}  # label -> claim id suffix
SQUARED_ERROR = r"$\mathbb{{E}}\lVert {} - w^*\rVert^2$"  # .format(the estimate): the error in report text
AVERAGE = r"\mathrm{avg}_N"
COV_TERMS = {"4 e^T Sigma m": r"$4 e^\top \Sigma m$", "2 tr Sigma^2": r"$2 \operatorname{tr} \Sigma^2$"}
COV_TEX = r"$\operatorname{Cov}(E, S) = 4 e^\top \Sigma m + 2 \operatorname{tr} \Sigma^2$"
BOTH_DECODERS = ("In the figure exact GD is drawn thick and hollow, the trained CoT thin (another colour, "
                 "marker and dash) on top of it: where the trained model emits GD the two coincide and both "
                 "show.")


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


@dataclass(frozen=True)
class Sizes:
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
SETTINGS = ("avg", "over", "best", "vote")
CPU_PROMPTS = 1024  # prompts of full size on the CPU (the early code used 4096)


@REPRODUCTIONS.register("test-time")
@dataclass(frozen=True)
class TestTime(Experiment):
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

    def prompts(self, setting: Setting, prompts: int, seed: int) -> tuple[torch.Tensor, ...]:
        """x (P, n, d), y (P, n), w* (P, d) of a setting, in float64."""
        device = resolve_device(self.device)
        p = TASKS.build(setting.task).sample(prompts, seed, 0, device=device, dtype=torch.float64)
        return p.x, p.y, p.w

    def analyse(self, runs: Runs, sizes: Sizes) -> list[Section]:
        decoders = {key: {"GD": GDDecoder(lr=getattr(sizes, key).eta)} for key in SETTINGS}
        for key in SETTINGS if not self.decoder_only else ():
            decoders[key]["trained CoT"] = ChainOfThoughtDecoder.from_run(str(runs[f"cot-{key}"]))
        first = self._not_run() if self.decoder_only else self._fidelity(sizes, decoders)
        return [first, self._averaging(sizes, decoders["avg"]),
                regime.section(self, sizes, SIGMA),
                self._thoughts(sizes, decoders["over"]), self._best(sizes, decoders["best"]),
                self._vote(sizes, decoders["vote"]), self._sigma(sizes, decoders["over"]),
                self._budget(sizes, decoders["over"]), self._notes()]

    def _fidelity(self, s: Sizes, decoders: dict[str, dict[str, Decoder]]) -> Section:
        horizon = {"avg": s.steps, "over": max(s.thoughts), "best": s.best_steps}
        curves = {}
        for key in SETTINGS:
            x, y, _ = self.prompts(getattr(s, key), min(s.prompts, 256), seed=1)
            cot = decoders[key]["trained CoT"]
            curves[key] = (measure.support_step_fidelity(cot, x, y, TASKS.build(s.vote.task).k, 50)
                           if key == "vote" else measure.gd_fidelity(cot, x, y, horizon[key]))
        series = {f"{key} (taught {getattr(s, key).chain})": (list(range(1, len(c) + 1)), c)
                  for key, c in curves.items()}
        fig = Plot("lines", series, "decoding step $t$", "mean relative error to exact GD",
                   "Trained CoT against exact GD", logy=True, logx=True)
        claim = build.cot_emits_gd({key: max(c) for key, c in curves.items()}, max(s.thoughts))
        text = [f"One `cot` run per setting ({s.cot_train} Adam steps, batch {s.cot_batch}, teacher forcing "
                "on mean-gradient GD chains of the length in the legend); greedy decodes of "
                f"{min(s.prompts, 256)} fresh prompts against exact GD with the same step. Binary (vote): "
                "the GD step $\\eta = 1/n$ is unstable as a plain chain, and support decoding only ever "
                "takes it from 0/1 vectors, so that run is taught 3-step chains and measured one step at a "
                "time along the greedy top-k decode."]
        return Section("1. Trained chain-of-thought transformer", text, [claim], {"fidelity.png": fig},
                       {"relative error": curves})

    def _averaging(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.avg, s.prompts, seed=2)
        res = {label: measure.averaging(dec, x, y, w, s.steps, SIGMA, list(s.samples), self.gen(2))
               for label, dec in decoders.items()}
        claims = [build.averaging(DECODERS[label], label, r, list(s.samples)) for label, r in res.items()]
        claims += [build.extrapolate(DECODERS[label], label, r, list(s.samples)) for label, r in res.items()]
        gd = theory.gd_weight_risk(x, s.steps, s.avg.eta, 0.0, s.avg.tau, _noise(s.avg)).mean().item()
        means = ", ".join(f"{label} {r['mean_error']:.4f}" for label, r in res.items())
        text = [f"`{s.avg.task}`, $\\eta = {s.avg.eta}$, $T = {s.steps}$, $\\sigma = {SIGMA}$, {s.prompts} "
                f"prompts. Exact {SQUARED_ERROR.format('w_T')} of GD {gd:.4f}; of the mean trajectory "
                f"(ridge-GD for GD): {means}. {BOTH_DECODERS}"]
        return Section("2. Averaging converges to ridge-GD; 8. extrapolation", text, claims,
                       {"averaging.png": Plot("averaging", _public(res), list(s.samples))}, _public(res))

    def _thoughts(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.over, s.prompts, seed=3)
        ts, n_avg = list(s.thoughts), min(16, max(s.samples))
        res = {label: measure.thoughts(dec, x, y, w, ts, SIGMA, n_avg, self.gen(3))
               for label, dec in decoders.items()}
        o = s.over
        exact, ridge = ([theory.gd_weight_risk(x, t, o.eta, lam, o.tau, _noise(o)).mean().item() for t in ts]
                        for lam in (0.0, SIGMA**2))
        claims = [build.exact_gd_overfits(exact)]
        claims += [build.more_thoughts(DECODERS[label], label, n_avg, exact, ridge, r)
                   for label, r in res.items()]
        text = [f"`{s.over.task}`, $\\eta = {s.over.eta}$, $\\sigma = {SIGMA}$, {s.prompts} prompts (the "
                "early code used binary $w^*$ here). " + BOTH_DECODERS]
        return Section("3. More thoughts: overfitting and its regularisation", text, claims,
                       {"thoughts.png": Plot("thoughts", _public(res), ts, exact, ridge, n_avg)},
                       {"T": ts, "exact_gd": exact, "exact_ridge": ridge, **res})

    def _best(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.best, s.prompts, seed=4)
        ns = list(s.best_samples)
        res = {label: measure.best_of_n(dec, x, y, w, s.best_steps, SIGMA, ns, self.gen(4))
               for label, dec in decoders.items()}
        claims = [build.best_of_n(DECODERS[label], label, r, ns) for label, r in res.items()]
        terms = res["GD"]
        text = [f"`{s.best.task}`, $\\eta = {s.best.eta}$, $T = {s.best_steps}$, {s.prompts} prompts; "
                f"multiplicative $\\sigma = {SIGMA}$, additive std $\\eta \\cdot {SIGMA}$ (the early code's "
                "isotropic noise inside the step). Theory (`iclreg.theory.best_of_n`): the shortest of $N$ "
                r"decodes $w = m + \delta$ has $\mathbb{E}\lVert \hat w - w^*\rVert^2 = \lVert e\rVert^2 + "
                r"\operatorname{tr} \Sigma - (e_N - \text{skew term}) \operatorname{Cov}(E, S) / "
                r"\operatorname{sd}(S)$, $e = m - w^*$, $S = \lVert w\rVert^2$, $E = \lVert w - "
                rf"w^*\rVert^2$, {COV_TEX}, with the exact moments $(m, \Sigma)$ of each decode. Two effects "
                rf"make the gain over greedy: the mean $m$ of a multiplicative decode is already ridge-GD "
                r"($\lambda = \sigma^2$), which under label noise has a smaller $\lVert e\rVert^2$ than "
                r"greedy GD (section 2b), while an additive decode's mean is GD itself; and the selection, "
                r"which grows like $\sqrt{2 \log N}$ times $\operatorname{Cov}(E, S) / "
                r"\operatorname{sd}(S)$, positive "
                "where the spread lines up with the mean's overshoot $e$ (multiplicative noise puts "
                r"$\sigma^4 w w^\top$ into each step's covariance, isotropic noise spreads evenly) and "
                r"through $\operatorname{tr} \Sigma^2$ (a shorter sample deviates less). Compare the two "
                r"parts of $\operatorname{Cov}(E, S)$ below with the gap between the noises' means: where "
                r"the selection terms are small, the multiplicative gain is that of its mean, ridge-GD. "
                "Here (GD, mean over prompts): " + "; ".join(
                    f"{k}: " + ", ".join(f"{tex} = {terms[k + ' terms'][key]:.4g}"
                                         for key, tex in COV_TERMS.items())
                    for k in ("multiplicative", "additive")) + "."]
        res = _public(res)
        return Section("4. Best-of-N with a norm reward", text, claims, {}, {"N": ns, **res})

    def _vote(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.vote, s.prompts, seed=5)
        k, ns = TASKS.build(s.vote.task).k, list(s.votes)
        res = {label: measure.votes(dec, x, y, w, k, 50, ns, (self.gen(5), self.gen(6)), s.vote_theory)
               for label, dec in decoders.items()}
        claims = [build.vote(DECODERS[label], label, r, ns) for label, r in res.items()]
        cut = min(s.vote_theory, s.prompts)
        text = [f"`{s.vote.task}`, GD step $\\eta = 1/n$, 50 steps, support sampling at temperature 1, "
                f"{s.prompts} prompts. Exact rate: per prompt, {4 * max(ns)} independent decodes, and the "
                "exact vote rate (ties at random) of a uniformly random $N$-subset of them at every $N$ of "
                "the figure (`iclreg.theory.vote`): an unbiased estimate of the vote rate, whose Monte Carlo "
                "error enters the paired check through the spread of the per-prompt differences; plugging "
                "the frequencies in instead is biased (a support drawn once stands for the unseen tail). "
                f"First {cut} prompts (cost). In the figure the exact-rate line has a point at every $N$ "
                f"of the vote curve ($N$ = {', '.join(map(str, ns))}), from the first {cut} prompts "
                f"(the vote and greedy lines: all {s.prompts}). " + BOTH_DECODERS]
        return Section("5. Binary coefficients: majority vote against greedy", text, claims,
                       {"vote.png": Plot("vote", _public(res), ns)}, {"N": ns, **_public(res)})

    def _sigma(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.over, s.prompts, seed=7)
        steps, n_avg = max(s.thoughts) // 2, 4
        claims = [build.noise_level(DECODERS[label], label, measure.noise_levels(
            dec, x, y, w, steps, list(s.sigmas), n_avg, self.gen(7)), list(s.sigmas), steps, n_avg)
            for label, dec in decoders.items()]
        text = [f"Setting of claim 3, $T = {steps}$, $N = {n_avg}$. Theory: exact given the prompts, "
                r"$\lVert m_T - w^*\rVert^2 + \operatorname{tr} \Sigma_T / N$ from the decoder's affine "
                "step."]
        return Section("6. Noise level", text, claims)

    def _budget(self, s: Sizes, decoders: dict[str, Decoder]) -> Section:
        x, y, w = self.prompts(s.over, s.prompts, seed=8)
        splits = [n_ for n_ in (1, 2, 4, 8, 16) if s.budget // n_ >= 1]
        claims = [build.compute_split(DECODERS[label], label, measure.compute_split(
            dec, x, y, w, s.budget, SIGMA, splits, self.gen(8)), splits, s.budget)
            for label, dec in decoders.items()]
        text = [f"Setting of claim 3, $\\sigma = {SIGMA}$; $N$-average of multiplicative-noise decodes, "
                f"{SQUARED_ERROR.format(AVERAGE)}; theory exact given the prompts."]
        return Section("7. Compute trade-off at fixed N x T", text, claims)

    def _not_run(self) -> Section:
        """The trained chain-of-thought claims, not run at full size on the CPU."""
        why = ("not run at full size on the CPU (training the d = 50 chain-of-thought models is a GPU "
               "job): iclreg reproduce test-time --device cuda --runs full-runs/test-time")
        claims = [Claim.unmeasured(f"{c}-cot" if c != "1" else "1-cot-emits-gd", "trained CoT: as the "
                                   "claim of the same number above, with the trained transformer", "-", why)
                  for c in ("1", "2-average-to-ridge", "8-extrapolate", "3-more-thoughts", "4-best-of-n",
                            "5-vote-overtakes-greedy", "6-noise-level", "7-compute-split")]
        return Section("1. Trained chain-of-thought transformer (not run here)", [why], claims)

    def _notes(self) -> Section:
        return Section("Notes", [
            "- Ours: the chain-of-thought transformer's exact form (context-only attention, mean-gradient "
            "GD targets), the theory (`iclreg.theory.testtime`: exact risks, the affine-decoder moments, "
            "vote rates, the a + b/N law) and the quick sizes. The paper's text is unavailable; the "
            "early-code numbers (d = 50) are the authors' direction, comparable to ours in full mode.",
            "- Out of scope: the GSM8K / language-model experiments (no model can be downloaded here).",
            f"- Errors are {SQUARED_ERROR.format('w')} (squared, where the theory is exact) except claim 4 "
            r"and the norms listed beside the early code's, which are $\mathbb{E}\lVert w - w^*\rVert$."])


def _public(res: dict[str, dict]) -> dict[str, dict]:
    """The measurements without their per-prompt tensors (kept out of results.json)."""
    return {label: {k: v for k, v in r.items() if k != measure.PER_PROMPT} for label, r in res.items()}


def _noise(setting: Setting) -> float:
    return TASKS.build(setting.task).noise_std
