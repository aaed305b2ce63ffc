"""Reproduction of He, Pan, Chen, Yang, "In-context linear regression demystified"
(ICML 2025, arXiv 2503.12734): ``iclreg reproduce demystified``.

Setup (papers.md section 5): d = 5, L = 40 context pairs (n = 41), sigma^2 = 0.1,
w ~ N(0, I/d); one softmax attention layer with H heads in the paper's parameterisation.

1. The estimator table at L = 10, 20, 40, by Monte Carlo.
2. Training H in {1, 2, 4, 8} from the default initialisation, several seeds (one ensemble
   per H): final losses, loss curves, the fraction of seeds that leave the single-head
   plateau.
3. Emergent patterns: diagonal homogeneous KQ, OV on the label entry only, opposite-sign
   head pairs, dummy heads beyond two. Our omega_h is the score scale (KQ = K^T Q / sqrt(d+1),
   as their attention scales scores); the published |omega| ~ 0.13 is read off their figures,
   which divide K^T Q by sqrt(d+2), so ours is converted to that normalisation before the
   comparison (``theory.demystified.figure_omega``: times sqrt(6/7) at d = 5).
4. Mechanism: prediction agreement of H = 1 with the single-head estimator and of H >= 2
   with debiased GD, and the extracted (omega_h, mu_h) against the optimum of the
   approximate loss. 5. Length generalisation beyond L = 40.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..analysis import error_curves
from ..analysis.patterns import head_patterns
from ..estimators import build as build_estimator
from ..report import error_curves_figure, save_figure, write_text
from ..report.figures import heads_figure, lines_figure
from ..tasks import build as build_task
from ..theory import optimal_mu, single_head_optimum
from ..theory.demystified import figure_omega
from ..train import load_run
from ..train.checkpoint import checkpoint_dirs, load_checkpoint
from ..train.metrics import read_metrics
from ..train.sweep import run_sweep
from .base import REPRODUCTIONS, Claim, Experiment, Reproduction

D, L, NOISE_VAR = 5, 40, 0.1
TASK = f"gaussian:d={D},n={L + 1},noise_std={math.sqrt(NOISE_VAR):.6f},w_std={1 / math.sqrt(D):.6f}"
HE_LR = 2 * 0.13 * 3.45
ESTIMATORS = {
    "multi-head": "kernel:omega=[0.13,-0.13],mu=[3.45,-3.45]",
    "GD": f"gd:steps=1,lr={HE_LR:.4f},mean=true",
    "debiased GD": f"debiased_gd:lr={HE_LR:.4f}",
    "single head": "single_head:L=40",
    "ridge": "bayes",
}
PUBLISHED = {  # papers.md section 5: estimator MSE with the noise floor, at L = 10, 20, 40
    "multi-head": (0.604, 0.367, 0.243), "GD": (0.643, 0.371, 0.241),
    "debiased GD": (0.614, 0.369, 0.243), "single head": (0.875, 0.586, 0.405),
    "ridge": (0.194, 0.135, 0.115),
}
PUBLISHED_LENGTHS = {1: (0.847, 0.574, 0.406, 0.281), 2: (0.579, 0.366, 0.241, 0.168)}
LENGTHS = (10, 20, 40, 100)
PLATEAU = 0.33  # between the single-head plateau (~0.40) and the multi-head optimum (~0.24)
PUBLISHED_OMEGA, PUBLISHED_MU = 0.13, 3.5  # H = 2, read off their figures (KQ / sqrt(d+2))


def magnitude_claim(omegas: list[list[float]], mus: list[list[float]]) -> Claim:
    """|omega| and |mu| of the H = 2 heads (per seed, per head) against the published values.

    Our omegas (KQ / sqrt(d+1)) are converted to the published figures' normalisation
    (KQ / sqrt(d+2)) with ``figure_omega`` before the comparison; mu needs no conversion.
    """
    ours = sum(abs(v) for o in omegas for v in o) / sum(len(o) for o in omegas)
    theirs = figure_omega(ours, D)
    mu = sum(abs(v) for m in mus for v in m) / sum(len(m) for m in mus)
    return Claim("3-magnitude", "|omega| and |mu| of the H=2 heads; omega in the published figures' "
                 "normalisation (KQ / sqrt(d+2): ours, KQ / sqrt(d+1), times sqrt((d+1)/(d+2)))",
                 f"{PUBLISHED_OMEGA}, {PUBLISHED_MU}",
                 {"omega (figures)": round(theirs, 4), "omega (ours)": round(ours, 4), "mu": round(mu, 3)},
                 "within 25%", abs(theirs - PUBLISHED_OMEGA) <= 0.25 * PUBLISHED_OMEGA
                 and abs(mu - PUBLISHED_MU) <= 0.25 * PUBLISHED_MU, "heads_H2.png")


@dataclass(frozen=True)
class Sizes:
    mc_samples: int
    eval_samples: int
    steps: int
    batch: int
    lr: float
    schedule: dict[str, Any]
    seeds: dict[int, int]  # heads -> number of seeds


QUICK = Sizes(mc_samples=20_000, eval_samples=8_000, steps=2_000, batch=256, lr=0.03,
              schedule={"name": "cosine", "min_lr_ratio": 0.03},
              seeds={1: 2, 2: 4, 4: 2, 8: 2})
FULL = Sizes(mc_samples=200_000, eval_samples=50_000, steps=500_000, batch=256, lr=1e-3,
             schedule={"name": "constant"}, seeds={1: 8, 2: 8, 4: 8, 8: 8})


@REPRODUCTIONS.register("demystified")
@dataclass(frozen=True)
class Demystified(Experiment):
    """He et al. 2025: multi-head softmax attention learns debiased GD."""

    def run(self, out: Path, progress: bool = False) -> Reproduction:
        start = time.perf_counter()
        sizes = QUICK if self.quick else FULL
        result = Reproduction(paper="demystified", mode="quick" if self.quick else "full",
                              title="He et al. 2025, In-context linear regression demystified "
                                    "(arXiv 2503.12734)")
        task = build_task(TASK)
        self._estimator_table(task, sizes, out, result, progress)
        members = self._train(sizes, out, progress)
        self._trained(task, sizes, members, out, result)
        result.sections += self._notes(sizes)
        result.seconds = time.perf_counter() - start
        return result

    def _notes(self, sizes: Sizes) -> list[str]:
        lines = ["## Notes", "",
                 f"- Training: Adam lr {sizes.lr} ({sizes.schedule['name']} schedule), batch "
                 f"{sizes.batch}, {sizes.steps} steps, loss at the query, seeds per H "
                 f"{sizes.seeds}; each H is one ensemble.",
                 "- Published values are those collected in papers.md (He et al. and our earlier "
                 "independent measurement). A seed has left the plateau when its MSE at L = 40 is "
                 f"below {PLATEAU}.",
                 "- The approximate loss drops two terms of order 1/L (a variance term amplified by "
                 "the cancelling heads and the bias of the softmax ratio; derivation in "
                 "tests/theory/test_demystified.py), so its optimum is only approximately the "
                 "trained models' optimum.",
                 f"- omega_h here is the score scale, the diagonal of KQ = K^T Q / sqrt(d+1) (their "
                 f"attention's scaling). Their weight figures, where the published |omega| ~ 0.13 is "
                 f"read, divide K^T Q by sqrt(d+2): claim 3-magnitude converts ours to that "
                 f"normalisation (times sqrt({D + 1}/{D + 2}) = {figure_omega(1.0, D):.4f}); the "
                 f"published 0.13 is {PUBLISHED_OMEGA / figure_omega(1.0, D):.4f} in ours."]
        if self.quick:
            lines += [
                "- Quick mode trains 2,000 steps with a larger, decaying learning rate (the paper: "
                "Adam 1e-3 for 500k steps) so that some seeds leave the plateau within the CPU "
                "budget. The loss is flat along omega * mu = const for small omega; in 2,000 steps "
                "the heads reach the right product but not the paper's split (|omega| 0.13 in their "
                "figures' normalisation, |mu| 3.5), and extra heads (H = 4, 8) still share the work "
                "instead of becoming dummies: both need the long training of full mode.",
            ]
        return lines

    # --- 1. the estimator table -------------------------------------------------------------
    def _estimator_table(self, task, sizes: Sizes, out: Path, result: Reproduction,
                         progress: bool) -> None:
        curves = error_curves(task, {k: build_estimator(s, task=task) for k, s in ESTIMATORS.items()},
                              sizes.mc_samples, seed=11, device=self.device, progress=progress)
        save_figure(error_curves_figure(list(range(L + 1)), curves, NOISE_VAR,
                                        "He et al.'s estimators, d=5, sigma^2=0.1"),
                    out / "estimators.png")
        rows = ["## 1. Estimators at L = 10, 20, 40", "",
                f"{sizes.mc_samples} Monte Carlo prompts; 95% intervals.", "",
                "| estimator | SPEC | L | published | ours (95% CI) |", "|---|---|---:|---:|---:|"]
        for label, published in PUBLISHED.items():
            ours, worst, tol_max = [], 0.0, 0.0
            for length, pub in zip((10, 20, 40), published, strict=True):
                mse = curves[label]["mse"][length]
                lo, hi = curves[label]["ci95"][length]
                tol = 0.02 + 1.5 * (hi - lo)  # 0.02 for the published rounding and their MC
                worst, tol_max = max(worst, abs(mse - pub) - tol), max(tol_max, tol)
                ours.append(round(mse, 4))
                rows.append(f"| {label} | `{ESTIMATORS[label]}` | {length} | {pub:.3f} | "
                            f"{mse:.3f} ({lo:.3f}-{hi:.3f}) |")
            result.claims.append(Claim(
                f"1-{label.replace(' ', '-')}", f"{label} MSE at L = 10, 20, 40", list(published),
                ours, "0.02 + 3 standard errors", worst <= 0, "estimators.png"))
        result.sections += [*rows, "", "![estimators](estimators.png)", ""]
        result.figures.append("estimators.png")

    # --- 2. training ------------------------------------------------------------------------
    def _train(self, sizes: Sizes, out: Path, progress: bool) -> dict[int, list[Path]]:
        config = {
            "task": TASK, "model": "softmax_attention:heads=1",
            "optimizer": {"name": "adam", "lr": sizes.lr}, "schedule": sizes.schedule,
            "train": {"steps": sizes.steps, "batch": sizes.batch, "loss": "query"},
            "eval": {"samples": 2000, "estimators": []},
            "run": {"device": self.device, "checkpoint_every": sizes.steps // 10, "keep": 11,
                    "log_every": max(sizes.steps // 100, 1)},
        }
        path = out / "train_config.yaml"
        write_text(path, yaml.safe_dump(config, sort_keys=False))
        members = {}
        for heads, seeds in sizes.seeds.items():
            sweep = run_sweep(path, [f"model.heads={heads}"],
                              ["train.seed=" + ",".join(str(s) for s in range(seeds))],
                              out / "runs" / f"H{heads}", progress)
            members[heads] = [sweep / f"train.seed={s}" for s in range(seeds)]
        return members

    # --- 2-5. the trained models --------------------------------------------------------------
    def _trained(self, task, sizes: Sizes, members: dict[int, list[Path]], out: Path,
                 result: Reproduction) -> None:
        long_task = build_task(TASK.replace(f"n={L + 1}", f"n={max(LENGTHS) + 1}"))
        refs = {"debiased GD": build_estimator(ESTIMATORS["debiased GD"], task=long_task),
                "single head": build_estimator("single_head:L=40", task=long_task)}
        references = error_curves(long_task, refs, sizes.eval_samples, seed=12,
                                       device=self.device, dtype=torch.float32)
        stats: dict[int, list[dict[str, Any]]] = {}
        for heads, dirs in members.items():
            stats[heads] = []
            for run_dir in dirs:  # the same prompts as the references (seed 12)
                model, _ = load_run(run_dir, device=self.device)
                curves = error_curves(long_task, {"model": model}, sizes.eval_samples,
                                      seed=12, device=self.device, dtype=torch.float32)
                stats[heads].append({"dir": run_dir, "model": model, "curves": curves,
                                     "mse": curves["model"]["mse"][L],
                                     "patterns": head_patterns(model)})
        self._training_claims(stats, out, result)
        self._pattern_claims(stats, out, result)
        self._mechanism_claims(long_task, sizes, stats, result)
        self._length_claims(stats, references, out, result)

    def _training_claims(self, stats, out: Path, result: Reproduction) -> None:
        series, colors = {}, {}
        palette = {1: "tab:red", 2: "tab:blue", 4: "tab:green", 8: "tab:purple"}
        rows = ["## 2. Training from the default initialisation", "",
                "| H | seed | final MSE at L = 40 | left the plateau |", "|---:|---:|---:|---|"]
        for heads, runs in stats.items():
            for s, r in enumerate(runs):
                records = [x for x in read_metrics(r["dir"] / "metrics.jsonl") if "loss" in x]
                label = f"H={heads} seed {s}"
                series[label] = ([x["step"] for x in records], [x["loss"] for x in records])
                colors[label] = palette.get(heads)
                rows.append(f"| {heads} | {s} | {r['mse']:.4f} | {'yes' if r['mse'] < PLATEAU else 'no'} |")
        save_figure(lines_figure(series, "step", "training loss (query)", "loss curves", logy=True,
                                 hlines={"single-head optimum 0.405": 0.405,
                                         "multi-head 0.243": 0.243}, colors=colors),
                    out / "loss_curves.png")
        h1 = sorted(r["mse"] for r in stats[1])
        result.claims.append(Claim("2-H1", "H = 1 final loss at L = 40", "0.40-0.43",
                                   [round(v, 4) for v in h1], "each in [0.38, 0.45]",
                                   all(0.38 <= v <= 0.45 for v in h1), "loss_curves.png"))
        best = {h: min(r["mse"] for r in runs) for h, runs in stats.items() if h >= 2}
        result.claims.append(Claim("2-Hge2", "H >= 2 final loss at L = 40 (best seed per H)",
                                   "0.20-0.25", {f"H={h}": round(v, 4) for h, v in best.items()},
                                   "each in [0.20, 0.26]",
                                   all(0.20 <= v <= 0.26 for v in best.values()), "loss_curves.png"))
        left = {h: sum(r["mse"] < PLATEAU for r in runs) for h, runs in stats.items()}
        frac = {f"H={h}": f"{left[h]}/{len(stats[h])}" for h in stats}
        result.claims.append(Claim(
            "2-plateau", "seeds that leave the single-head plateau (MSE < 0.33)",
            "some seeds stay on the plateau for a long time; H=1 cannot leave it", frac,
            "H=1: none; every H >= 2: at least one", left[1] == 0 and all(
                left[h] >= 1 for h in stats if h >= 2), "loss_curves.png"))
        result.sections += [*rows, "", "![loss curves](loss_curves.png)", ""]
        result.figures.append("loss_curves.png")

    def _pattern_claims(self, stats, out: Path, result: Reproduction) -> None:
        escaped = {h: [r for r in runs if r["mse"] < PLATEAU] for h, runs in stats.items() if h >= 2}
        result.sections += ["## 3. Emergent weight patterns", "",
                            "omega_h is the diagonal of KQ = K^T Q / sqrt(d+1), the score scale; He et "
                            "al.'s figures divide K^T Q by sqrt(d+2), showing omega_h times "
                            f"{figure_omega(1.0, D):.4f}.", ""]
        for heads, runs in stats.items():
            best = min(runs, key=lambda r: r["mse"])
            p = best["patterns"]
            name = f"heads_H{heads}.png"
            save_figure(heads_figure(p.kq.numpy(), p.ov.numpy(),
                                     f"H={heads}, best seed: KQ = K^T Q / sqrt(d+1), OV = O V"),
                        out / name)
            result.sections += [f"H = {heads}, best seed: omega_h = "
                                f"{[round(v, 3) for v in p.omega.tolist()]}, mu_h = "
                                f"{[round(v, 3) for v in p.mu.tolist()]}", "",
                                f"![heads H={heads}]({name})", ""]
            result.figures.append(name)
        self._trajectory(min(stats[2], key=lambda r: r["mse"]), out, result)
        two = escaped.get(2, [])
        if not two:
            result.claims.append(Claim("3-patterns", "KQ diagonal and homogeneous, OV on the label "
                                       "entry, opposite heads", "see paper", "no H=2 seed left the plateau",
                                       "-", False))
            return
        dominant = [r["patterns"] for r in two]
        off = max(float(p.offdiag_ratio.max()) for p in dominant)
        spread = max(float(p.diag_spread.max()) for p in dominant)
        result.claims.append(Claim("3-KQ", "each head's KQ x-block is diagonal and homogeneous (H=2)",
                                   "diagonal, homogeneous (our GPU run: off/diag 0.014)",
                                   {"off/diag": round(off, 4), "diag spread": round(spread, 4)},
                                   "off/diag < 0.1 and std/mean of the diagonal < 0.15",
                                   off < 0.1 and spread < 0.15, "heads_H2.png"))
        ov = max(float(p.ov_ratio.max()) for p in dominant)
        result.claims.append(Claim("3-OV", "OV keeps only the last (label) entry (H=2)",
                                   "only the last entry", round(ov, 4),
                                   "max |x entries| / |label entry| < 0.1",
                                   ov < 0.1, "heads_H2.png"))
        omegas = [sorted(round(v, 4) for v in p.omega.tolist()) for p in dominant]
        mus = [sorted(round(v, 4) for v in p.mu.tolist()) for p in dominant]
        opposite = all(o[0] < 0 < o[1] and abs(o[0] + o[1]) < 0.1 * (abs(o[0]) + abs(o[1]))
                       for o in omegas) and all(
                       m[0] < 0 < m[1] and abs(m[0] + m[1]) < 0.1 * (abs(m[0]) + abs(m[1])) for m in mus)
        result.claims.append(Claim("3-opposite", "the two heads have opposite signs summing to ~0 "
                                   "(omega: ours, KQ / sqrt(d+1))",
                                   "omega ~ +-0.13 (KQ / sqrt(d+2)), mu ~ +-3.5",
                                   {"omega": omegas, "mu": mus},
                                   "signs opposite, |sum| < 10% of the sum of magnitudes", opposite,
                                   "heads_H2.png"))
        result.claims.append(magnitude_claim(omegas, mus))
        big = {h: [int((r["patterns"].contribution > 0.1).sum()) for r in runs]
               for h, runs in escaped.items() if h > 2}
        result.claims.append(Claim("3-dummies", "heads beyond two become dummies (H=4, 8)",
                                   "two active heads", {f"H={h}": v for h, v in big.items()},
                                   "heads carrying > 10% of sum |omega mu|: at most 2",
                                   bool(big) and all(v <= 2 for vs in big.values() for v in vs),
                                   "heads_H4.png"))

    def _trajectory(self, run: dict[str, Any], out: Path, result: Reproduction) -> None:
        """omega_h and mu_h of one H=2 run at each of its checkpoints."""
        model, config = load_run(run["dir"], device=self.device)
        steps, omegas, mus = [], [], []
        for ckpt_dir in checkpoint_dirs(run["dir"]):
            ckpt = load_checkpoint(ckpt_dir, config.to_dict())
            model.load_state_dict(ckpt.weights)
            p = head_patterns(model)
            steps.append(ckpt.step)
            omegas.append(p.omega.tolist())
            mus.append(p.mu.tolist())
        series = {}
        for h in range(len(omegas[0])):
            series[f"omega_{h + 1}"] = (steps, [o[h] for o in omegas])
            series[f"mu_{h + 1} / 10"] = (steps, [m[h] / 10 for m in mus])
        published = PUBLISHED_OMEGA / figure_omega(1.0, D)  # the published 0.13 in our normalisation
        save_figure(lines_figure(series, "step", "value", "H=2 best seed: head parameters over training",
                                 hlines={f"+0.13 published = {published:+.3f} here": published,
                                         f"-0.13 published = {-published:+.3f} here": -published,
                                         "+-3.5 / 10": 0.35}),
                    out / "trajectory_H2.png")
        result.sections += ["Trajectory of the H = 2 heads (checkpoints):", "",
                            "![trajectory](trajectory_H2.png)", ""]
        result.figures.append("trajectory_H2.png")

    def _mechanism_claims(self, long_task, sizes: Sizes, stats, result: Reproduction) -> None:
        """Agreement of predictions on fresh prompts at L = 40, and extracted heads vs theory."""
        prompts = build_task(TASK).sample(sizes.eval_samples, seed=13, step=0, device=self.device)
        x, y = prompts.x, prompts.y

        def disagreement(model, estimator) -> float:
            with torch.no_grad():
                f, g = model(x, y)[:, L], estimator(x, y)[:, L]
            return float((f - g).square().mean() / g.square().mean())

        omega1, mu1 = single_head_optimum(D, L, NOISE_VAR)
        h1 = []
        for r in stats[1]:  # the loss is symmetric under (omega, mu) -> (-omega, -mu)
            sign = 1.0 if float(r["patterns"].omega[0]) >= 0 else -1.0
            single = build_estimator(f"kernel:omega={sign * omega1:.6f},mu={sign * mu1:.6f}")
            h1.append(disagreement(r["model"], single))
        result.claims.append(Claim("4-H1", "trained H=1 predicts like the single-head estimator "
                                   "(with the sign of its omega)", "H=1 matches the single-head estimator",
                                   [round(v, 4) for v in h1], "E[(f - g)^2] / E[g^2] < 0.05",
                                   all(v < 0.05 for v in h1)))
        dgd = {}
        for heads, runs in stats.items():
            for s, r in enumerate(runs):
                if heads >= 2 and r["mse"] < PLATEAU:
                    p = r["patterns"]
                    lr = float((p.omega * p.mu).sum())  # sum_h omega_h mu_h = 2 omega mu for a pair
                    est = build_estimator(f"debiased_gd:lr={lr:.6f}")
                    dgd[f"H={heads} seed {s}"] = round(disagreement(r["model"], est), 4)
        result.claims.append(Claim("4-Hge2", "trained H>=2 (off the plateau) predicts like debiased GD "
                                   "with lr = sum_h omega_h mu_h", "H>=2 matches debiased GD", dgd,
                                   "E[(f - g)^2] / E[g^2] < 0.05",
                                   bool(dgd) and all(v < 0.05 for v in dgd.values())))
        p1 = [r["patterns"] for r in stats[1]]
        ext1 = [(round(float(p.omega[0]), 3), round(float(p.mu[0]), 3)) for p in p1]
        ok1 = all(w * m > 0 and abs(abs(w) - omega1) < 0.15 * omega1 and abs(abs(m) - mu1) < 0.15 * mu1
                  for w, m in ext1)
        result.claims.append(Claim("4-theory-H1", "H=1 extracted (omega, mu) vs the approximate-loss "
                                   "optimum, up to the sign symmetry", [round(omega1, 3), round(mu1, 3)],
                                   ext1, "same signs, magnitudes within 15%", ok1))
        pairs = {}
        for heads, runs in stats.items():
            for s, r in enumerate(runs):
                if heads == 2 and r["mse"] < PLATEAU:
                    p = r["patterns"]
                    mu_star = optimal_mu(p.omega, D, L, NOISE_VAR)
                    pairs[f"seed {s}"] = {"mu": [round(v, 3) for v in p.mu.tolist()],
                                          "mu*(omega)": [round(v, 3) for v in mu_star.tolist()]}
        ok2 = bool(pairs) and all(abs(a - b) <= 0.15 * abs(b) for v in pairs.values()
                                  for a, b in zip(v["mu"], v["mu*(omega)"], strict=True))
        result.claims.append(Claim("4-theory-H2", "H=2 extracted mu_h vs mu*(omega_h) of the approximate "
                                   "loss", "the trained heads sit at the optimum of Loss(omega, mu)",
                                   pairs, "within 15%", ok2))

    def _length_claims(self, stats, references, out: Path, result: Reproduction) -> None:
        series = {}
        rows = ["## 5. Length generalisation (trained at L = 40)", "",
                "| H | L | published | ours (best seed) |", "|---:|---:|---:|---:|"]
        ks = list(range(1, max(LENGTHS) + 1))
        for heads, runs in stats.items():
            best = min(runs, key=lambda r: r["mse"])
            series[f"trained H={heads}"] = (ks, best["curves"]["model"]["mse"][1:])
            for i, length in enumerate(LENGTHS):
                pub = PUBLISHED_LENGTHS.get(heads, (None,) * 4)[i]
                rows.append(f"| {heads} | {length} | {pub if pub is not None else '-'} | "
                            f"{best['curves']['model']['mse'][length]:.4f} |")
        for label, curve in references.items():
            series[label] = (ks, curve["mse"][1:])
        save_figure(lines_figure(series, "number of examples k (trained at 40)", "MSE",
                                 "error beyond the training length", logy=True), out / "lengths.png")
        best2 = min(stats[2], key=lambda r: r["mse"])["curves"]["model"]["mse"]
        result.claims.append(Claim("5-length", "the H=2 error keeps falling past the training length",
                                   "0.241 at L=40, 0.168 at L=100",
                                   [round(best2[40], 4), round(best2[100], 4)],
                                   "L=100 below L=40, and within 0.03 of 0.168",
                                   best2[100] < best2[40] and abs(best2[100] - 0.168) <= 0.03, "lengths.png"))
        result.sections += [*rows, "", "![lengths](lengths.png)", ""]
        result.figures.append("lengths.png")
