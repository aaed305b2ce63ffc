"""The sections of the test-time reproduction: each decodes its setting's prompts with every decoder
(:mod:`iclreg.experiments.testtime_measure`), builds the claims
(:mod:`iclreg.experiments.testtime_claims`) and words the report's text and figures.

Chen, Lu, Wu, Zou (arXiv 2508.07571); the theory beside the measurements is ours
(``iclreg.theory.testtime``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..report.plots import Plot
from ..testtime import Decoder
from ..theory import testtime as theory
from . import testtime_claims as build
from . import testtime_measure as measure
from .base import Section
from .claims import Claim

if TYPE_CHECKING:
    from .testtime import Sizes, TestTime

SIGMA = 1.0  # multiplicative noise std (the early code's sigma^2 = 1)
DECODERS = {"GD": "", "trained CoT": "-cot"}  # label -> claim id suffix
SETTINGS = ("avg", "over", "best", "vote")  # the fields of Sizes that are settings
Decoders = dict[str, Decoder]  # label (a key of DECODERS) -> decoder
SQUARED_ERROR = r"$\mathbb{{E}}\lVert {} - w^*\rVert^2$"  # .format(the estimate): the error in report text
AVERAGE = r"\mathrm{avg}_N"
COV_TERMS = {"4 e^T Sigma m": r"$4 e^\top \Sigma m$", "2 tr Sigma^2": r"$2 \operatorname{tr} \Sigma^2$"}
COV_TEX = r"$\operatorname{Cov}(E, S) = 4 e^\top \Sigma m + 2 \operatorname{tr} \Sigma^2$"
BOTH_DECODERS = ("In the figure exact GD is drawn thick and hollow, the trained CoT thin (another colour, "
                 "marker and dash) on top of it: where the trained model emits GD the two coincide and both "
                 "show.")


def fidelity(exp: TestTime, s: Sizes, decoders: dict[str, Decoders]) -> Section:
    """Claim 1: each setting's trained CoT decodes greedily beside exact GD with its step."""
    horizon = {"avg": s.steps, "over": max(s.thoughts), "best": s.best_steps}
    curves = {}
    for key in SETTINGS:
        x, y, _ = exp.prompts(getattr(s, key), min(s.prompts, 256), seed=1)
        cot = decoders[key]["trained CoT"]
        curves[key] = (measure.support_step_fidelity(cot, x, y, s.vote.built.k, 50)
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


def averaging(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claims 2 and 8: the N-average tends to the mean trajectory (ridge-GD) as V_T / N."""
    x, y, w = exp.prompts(s.avg, s.prompts, seed=2)
    res = {label: measure.averaging(dec, x, y, w, s.steps, SIGMA, list(s.samples), exp.gen(2))
           for label, dec in decoders.items()}
    claims = [build.averaging(DECODERS[label], label, r, list(s.samples)) for label, r in res.items()]
    claims += [build.extrapolate(DECODERS[label], label, r, list(s.samples)) for label, r in res.items()]
    gd = theory.gd_weight_risk(x, s.steps, s.avg.eta, 0.0, s.avg.tau, s.avg.noise).mean().item()
    means = ", ".join(f"{label} {r['mean_error']:.4f}" for label, r in res.items())
    text = [f"`{s.avg.task}`, $\\eta = {s.avg.eta}$, $T = {s.steps}$, $\\sigma = {SIGMA}$, {s.prompts} "
            f"prompts. Exact {SQUARED_ERROR.format('w_T')} of GD {gd:.4f}; of the mean trajectory "
            f"(ridge-GD for GD): {means}. {BOTH_DECODERS}"]
    return Section("2. Averaging converges to ridge-GD; 8. extrapolation", text, claims,
                   {"averaging.png": Plot("averaging", public(res), list(s.samples))}, public(res))


def thoughts(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claim 3: greedy decoding overfits label noise as T grows, the N-average does not."""
    x, y, w = exp.prompts(s.over, s.prompts, seed=3)
    ts, n_avg = list(s.thoughts), min(16, max(s.samples))
    res = {label: measure.thoughts(dec, x, y, w, ts, SIGMA, n_avg, exp.gen(3))
           for label, dec in decoders.items()}
    o = s.over
    exact, ridge = ([theory.gd_weight_risk(x, t, o.eta, lam, o.tau, o.noise).mean().item() for t in ts]
                    for lam in (0.0, SIGMA**2))
    claims = [build.exact_gd_overfits(exact)]
    claims += [build.more_thoughts(DECODERS[label], label, n_avg, exact, ridge, r)
               for label, r in res.items()]
    text = [f"`{s.over.task}`, $\\eta = {s.over.eta}$, $\\sigma = {SIGMA}$, {s.prompts} prompts (the "
            "early code used binary $w^*$ here). " + BOTH_DECODERS]
    return Section("3. More thoughts: overfitting and its regularisation", text, claims,
                   {"thoughts.png": Plot("thoughts", public(res), ts, exact, ridge, n_avg)},
                   {"T": ts, "exact_gd": exact, "exact_ridge": ridge, **res})


_BEST_THEORY = (  # the theory of section 4 (``iclreg.theory.best_of_n``) and its reading
    "Theory (`iclreg.theory.best_of_n`): the shortest of $N$ "
    r"decodes $w = m + \delta$ has $\mathbb{E}\lVert \hat w - w^*\rVert^2 = \lVert e\rVert^2 + "
    r"\operatorname{tr} \Sigma - (e_N - \text{skew term}) \operatorname{Cov}(E, S) / "
    r"\operatorname{sd}(S)$, $e = m - w^*$, $S = \lVert w\rVert^2$, $E = \lVert w - "
    rf"w^*\rVert^2$, {COV_TEX}, with the exact moments $(m, \Sigma)$ of each decode. Two effects "
    r"make the gain over greedy: the mean $m$ of a multiplicative decode is already ridge-GD "
    r"($\lambda = \sigma^2$), which under label noise has a smaller $\lVert e\rVert^2$ than "
    r"greedy GD (section 2b), while an additive decode's mean is GD itself; and the selection, "
    r"which grows like $\sqrt{2 \log N}$ times $\operatorname{Cov}(E, S) / "
    r"\operatorname{sd}(S)$, positive "
    "where the spread lines up with the mean's overshoot $e$ (multiplicative noise puts "
    r"$\sigma^4 w w^\top$ into each step's covariance, isotropic noise spreads evenly) and "
    r"through $\operatorname{tr} \Sigma^2$ (a shorter sample deviates less). Compare the two "
    r"parts of $\operatorname{Cov}(E, S)$ below with the gap between the noises' means: where "
    r"the selection terms are small, the multiplicative gain is that of its mean, ridge-GD.")


def best(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claim 4: best-of-N with a norm reward under multiplicative and additive noise."""
    x, y, w = exp.prompts(s.best, s.prompts, seed=4)
    ns = list(s.best_samples)
    res = {label: measure.best_of_n(dec, x, y, w, s.best_steps, SIGMA, ns, exp.gen(4))
           for label, dec in decoders.items()}
    claims = [build.best_of_n(DECODERS[label], label, r, ns) for label, r in res.items()]
    terms = "; ".join(f"{k}: " + ", ".join(f"{tex} = {res['GD'][k + ' terms'][key]:.4g}"
                                           for key, tex in COV_TERMS.items())
                      for k in ("multiplicative", "additive"))
    text = [f"`{s.best.task}`, $\\eta = {s.best.eta}$, $T = {s.best_steps}$, {s.prompts} prompts; "
            f"multiplicative $\\sigma = {SIGMA}$, additive std $\\eta \\cdot {SIGMA}$ (the early code's "
            f"isotropic noise inside the step). {_BEST_THEORY} Here (GD, mean over prompts): {terms}."]
    return Section("4. Best-of-N with a norm reward", text, claims, {}, {"N": ns, **public(res)})


def vote(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claim 5: majority vote over support decodes against greedy top-k, beside the exact rate."""
    x, y, w = exp.prompts(s.vote, s.prompts, seed=5)
    k, ns = s.vote.built.k, list(s.votes)
    res = {label: measure.votes(dec, x, y, w, k, 50, ns, (exp.gen(5), exp.gen(6)), s.vote_theory)
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
                   {"vote.png": Plot("vote", public(res), ns)}, {"N": ns, **public(res)})


def noise_level(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claim 6: the N-average's error against sigma at claim 3's setting."""
    x, y, w = exp.prompts(s.over, s.prompts, seed=7)
    steps, n_avg = max(s.thoughts) // 2, 4
    claims = [build.noise_level(DECODERS[label], label, measure.noise_levels(
        dec, x, y, w, steps, list(s.sigmas), n_avg, exp.gen(7)), list(s.sigmas), steps, n_avg)
        for label, dec in decoders.items()]
    text = [f"Setting of claim 3, $T = {steps}$, $N = {n_avg}$. Theory: exact given the prompts, "
            r"$\lVert m_T - w^*\rVert^2 + \operatorname{tr} \Sigma_T / N$ from the decoder's affine "
            "step."]
    return Section("6. Noise level", text, claims)


def budget(exp: TestTime, s: Sizes, decoders: Decoders) -> Section:
    """Claim 7: the split of a fixed budget N x T between samples and steps."""
    x, y, w = exp.prompts(s.over, s.prompts, seed=8)
    splits = [n_ for n_ in (1, 2, 4, 8, 16) if s.budget // n_ >= 1]
    claims = [build.compute_split(DECODERS[label], label, measure.compute_split(
        dec, x, y, w, s.budget, SIGMA, splits, exp.gen(8)), splits, s.budget)
        for label, dec in decoders.items()]
    text = [f"Setting of claim 3, $\\sigma = {SIGMA}$; $N$-average of multiplicative-noise decodes, "
            f"{SQUARED_ERROR.format(AVERAGE)}; theory exact given the prompts."]
    return Section("7. Compute trade-off at fixed N x T", text, claims)


def not_run() -> Section:
    """The trained chain-of-thought claims, not run at full size on the CPU."""
    why = ("not run at full size on the CPU (training the d = 50 chain-of-thought models is a GPU "
           "job): iclreg reproduce test-time --device cuda --runs full-runs/test-time")
    claims = [Claim.unmeasured(f"{c}-cot" if c != "1" else "1-cot-emits-gd", "trained CoT: as the "
                               "claim of the same number above, with the trained transformer", "-", why)
              for c in ("1", "2-average-to-ridge", "8-extrapolate", "3-more-thoughts", "4-best-of-n",
                        "5-vote-overtakes-greedy", "6-noise-level", "7-compute-split")]
    return Section("1. Trained chain-of-thought transformer (not run here)", [why], claims)


def notes() -> Section:
    return Section("Notes", [
        "- Ours: the chain-of-thought transformer's exact form (context-only attention, mean-gradient "
        "GD targets), the theory (`iclreg.theory.testtime`: exact risks, the affine-decoder moments, "
        "vote rates, the a + b/N law) and the quick sizes. The paper's text is unavailable; the "
        "early-code numbers (d = 50) are the authors' direction, comparable to ours in full mode.",
        "- Out of scope: the GSM8K / language-model experiments (no model can be downloaded here).",
        f"- Errors are {SQUARED_ERROR.format('w')} (squared, where the theory is exact) except claim 4 "
        r"and the norms listed beside the early code's, which are $\mathbb{E}\lVert w - w^*\rVert$."])


def public(res: dict[str, measure.Measurements]) -> dict[str, measure.Measurements]:
    """The measurements without their per-prompt tensors (kept out of results.json)."""
    return {label: {k: v for k, v in r.items() if k != measure.PER_PROMPT} for label, r in res.items()}
