"""Measurements of the test-time reproduction, one decoder at a time (idealised GD or the trained
chain-of-thought transformer), with the theory that applies to that decoder.

Every function takes prompts x (P, n, d), y (P, n), w* (P, d) and a decoder, decodes with
:func:`iclreg.testtime.decode` and returns plain numbers; the claims are built from them in
:mod:`iclreg.experiments.testtime`. The theory "given the prompts" is exact for any affine
decoder (GD and the trained model alike): E||avg_N - w*||^2 = ||m_T - w*||^2 + tr Sigma_T / N with
(m_T, Sigma_T) from ``theory.affine_noisy_decode_moments``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..analysis.fit import loglog_slope
from ..testtime import NOISES, TECHNIQUES, Decoder, GDDecoder, decode_path
from ..theory import best_of_n as bon
from ..theory import testtime as theory
from ..theory.vote import subset_vote_rate

PER_PROMPT = "per prompt"  # the key of per-prompt tensors (for paired checks; not saved)
Measurements = dict[str, Any]  # one decoder's numbers by name, PER_PROMPT: its per-prompt tensors


def mean_se(values: Tensor) -> tuple[float, float]:
    """Mean and standard error of (P,) values."""
    return values.mean().item(), values.std().item() / math.sqrt(values.numel())


def first_crossing(ns: list[int], rates: list[float], level: float) -> int | None:
    """The first N of ``ns`` whose rate exceeds ``level`` (None if none does)."""
    return next((n for n, r in zip(ns, rates, strict=True) if r > level), None)


def interior_min(values: list[float]) -> bool:
    """The minimum lies strictly inside the list (not at either end)."""
    i = min(range(len(values)), key=values.__getitem__)
    return 0 < i < len(values) - 1


def chains(x: Tensor, y: Tensor, decoder: Decoder, noise: str, record: list[int], samples: int,
           gen: torch.Generator) -> dict[int, Tensor]:
    """N decodes of every prompt, the iterate at each T of ``record``: {T: (N, B, d)}."""
    path = decode_path(x, y, decoder, NOISES.build(noise), max(record), samples, gen, at=record)
    return {t: path[:, :, i] for i, t in enumerate(record)}


def average_theory(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
                   samples: int) -> Tensor:
    """Exact E||avg_N - w*||^2 given each prompt for multiplicative noise sigma: (P,)."""
    m, cov = noisy_moments(decoder, x, y, steps, sigma)
    return (m - w).square().sum(-1) + cov.diagonal(dim1=-2, dim2=-1).sum(-1) / samples


def gd_fidelity(cot: Decoder, x: Tensor, y: Tensor, steps: int) -> list[float]:
    """Mean over prompts of ||w_t^cot - w_t^GD|| / ||w_t^GD||, t = 1..steps (greedy decodes)."""
    greedy = NOISES.build("greedy")
    got = decode_path(x, y, cot, greedy, steps, 1)[0, :, 1:]
    exact = decode_path(x, y, GDDecoder(lr=cot.lr), greedy, steps, 1)[0, :, 1:]
    return ((got - exact).norm(dim=-1) / exact.norm(dim=-1)).mean(0).tolist()


def support_step_fidelity(cot: Decoder, x: Tensor, y: Tensor, k: int, steps: int) -> list[float]:
    """Mean over prompts of ||F_cot(w_t) - F_GD(w_t)|| / ||F_GD(w_t)|| at the 0/1 states w_t,
    t = 0..steps - 1, of the greedy top-k support decode with exact GD."""
    gd = GDDecoder(lr=cot.lr)
    states = decode_path(x, y, gd, NOISES.build(f"support:k={k},temperature=0"), steps - 1,
                         1)[0].transpose(0, 1)  # (T, B, d)
    exact = gd.bind(x, y)(states)
    return ((cot.bind(x, y)(states) - exact).norm(dim=-1) / exact.norm(dim=-1)).mean(-1).tolist()


def moments(decoder: Decoder, x: Tensor, y: Tensor, steps: int, sigma: float) -> tuple[Tensor, Tensor]:
    """m_T (P, d) and V_T = tr Sigma_T (P,) of the multiplicative-noise decode, given the prompts."""
    m, cov = noisy_moments(decoder, x, y, steps, sigma)
    return m, cov.diagonal(dim1=-2, dim2=-1).sum(-1)


def noisy_moments(decoder: Decoder, x: Tensor, y: Tensor, steps: int, sigma: float) -> tuple[Tensor, Tensor]:
    """Exact m_T (P, d), Sigma_T (P, d, d) of the multiplicative-noise decode: in S's eigenbasis
    (O(d^2) a step) for the sum-form GD decoder, else from the decoder's affine step (O(d^3))."""
    if isinstance(decoder, GDDecoder) and not decoder.mean:
        return theory.noisy_decode_covariance(x, y, steps, decoder.lr, sigma)
    return theory.affine_noisy_decode_moments(*decoder.affine(x, y), steps, decoder.lr, sigma)


def averaging(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
              samples: list[int], gen: torch.Generator,
              theory_decoder: Decoder | None = None) -> Measurements:
    """Claim 2 and 8: excess of the N-average over the mean trajectory, errors, theory (of
    ``theory_decoder`` when given: a negative control)."""
    ws = chains(x, y, decoder, f"multiplicative:std={sigma}", [steps], max(samples), gen)[steps]
    m, v_t = moments(theory_decoder or decoder, x, y, steps, sigma)
    excess, err, norm, prompts = {}, {}, {}, {"excess": {}, "error": {}, "theory": {}}
    for n_ in samples:
        avg = ws[:n_].mean(0)
        prompts["excess"][n_] = (avg - m).square().sum(-1)
        prompts["error"][n_] = (avg - w).square().sum(-1)
        prompts["theory"][n_] = v_t / n_
        excess[n_] = mean_se(prompts["excess"][n_])
        err[n_] = mean_se(prompts["error"][n_])
        norm[n_] = (avg - w).norm(dim=-1).mean().item()
    greedy = chains(x, y, decoder, "greedy", [steps], 1, gen)[steps][0]
    norm["GD (greedy)"] = (greedy - w).norm(dim=-1).mean().item()
    norm["mean trajectory (ridge-GD)"] = (m - w).norm(dim=-1).mean().item()
    return {"excess": excess, "error": err, "norm": norm,
            "theory": {n_: v_t.mean().item() / n_ for n_ in samples},
            "slope": loglog_slope(samples, [excess[n_][0] for n_ in samples]),
            "mean_error": (m - w).square().sum(-1).mean().item(), PER_PROMPT: prompts}


def thoughts(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, ts: list[int], sigma: float,
             samples: int, gen: torch.Generator) -> dict[str, list[float]]:
    """Claim 3: greedy and N-average errors E||w_T - w*||^2 against T."""
    noisy = chains(x, y, decoder, f"multiplicative:std={sigma}", ts, samples, gen)
    greedy = chains(x, y, decoder, "greedy", ts, 1, gen)
    return {"greedy": [(greedy[t][0] - w).square().sum(-1).mean().item() for t in ts],
            "noisy": [(noisy[t].mean(0) - w).square().sum(-1).mean().item() for t in ts],
            "greedy E||w_T - w*||": [(greedy[t][0] - w).norm(dim=-1).mean().item() for t in ts]}


def best_of_n(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
              samples: list[int], gen: torch.Generator) -> Measurements:
    """Claim 4: E||w_hat - w*|| of best-of-N (norm2 reward) under multiplicative noise sigma and
    additive noise eta * sigma (isotropic noise inside the step), beside greedy."""
    best = TECHNIQUES.build("best:reward=norm2")
    greedy = chains(x, y, decoder, "greedy", [steps], 1, gen)[steps][0]
    out: Measurements = {"greedy": (greedy - w).norm(dim=-1).mean().item(),
                           "greedy squared": (greedy - w).square().sum(-1).mean().item(), PER_PROMPT: {}}
    p, b = decoder.affine(x, y)
    for label, noise, (m, cov) in (
            ("multiplicative", f"multiplicative:std={sigma}",
             noisy_moments(decoder, x, y, steps, sigma)),
            ("additive", f"additive:std={decoder.lr * sigma}",
             bon.additive_decode_moments(p, b, steps, decoder.lr * sigma))):
        ws = chains(x, y, decoder, noise, [steps], max(samples), gen)[steps]
        picked = {n_: best(ws[:n_], x, y) - w for n_ in samples}
        out[label] = [picked[n_].norm(dim=-1).mean().item() for n_ in samples]
        out[label + " gain"] = (out["greedy"] - out[label][-1]) / out["greedy"]
        sq = {n_: v.square().sum(-1) for n_, v in picked.items()}
        th = {n_: bon.best_of_n_error(m, cov, w, n_) for n_ in samples}
        out[label + " squared"] = [sq[n_].mean().item() for n_ in samples]
        out[label + " theory squared"] = [th[n_].mean().item() for n_ in samples]
        sm = (cov @ m.unsqueeze(-1)).squeeze(-1)
        tr2 = (cov @ cov).diagonal(dim1=-2, dim2=-1).sum(-1)
        out[label + " terms"] = {"4 e^T Sigma m": (4 * ((m - w) * sm).sum(-1)).mean().item(),
                                 "2 tr Sigma^2": (2 * tr2).mean().item()}
        out[PER_PROMPT][label] = {"measured": sq, "theory": th}
    return out


def votes(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, k: int, steps: int, ns: list[int],
          gens: tuple[torch.Generator, torch.Generator], theory_prompts: int,
          theory_decoder: Decoder | None = None) -> Measurements:
    """Claim 5: greedy top-k and majority-vote exact-support recovery, with the exact vote rate of
    random N-subsets of M = 4 max(N) independent decodes (``theory.vote``) on the first
    ``theory_prompts`` prompts: unbiased for the vote rate at every N."""
    vote = TECHNIQUES.build("vote")
    greedy = chains(x, y, decoder, f"support:k={k},temperature=0", [steps], 1, gens[0])[steps][0]
    greedy_hit = (greedy == w).all(-1).double()
    ws = chains(x, y, decoder, f"support:k={k}", [steps], max(ns), gens[0])[steps]
    hits = {n_: (vote(ws[:n_], x, y) == w).all(-1).double() for n_ in ns}
    cut = min(theory_prompts, x.shape[0])
    est = chains(x[:cut], y[:cut], theory_decoder or decoder, f"support:k={k}", [steps], 4 * max(ns),
                 gens[1])[steps]
    rate, bound = support_vote_theory(est, w[:cut], ns)
    greedy_rate = greedy_hit.mean().item()
    theo = {n_: rate[n_].mean().item() for n_ in ns}
    return {"greedy": greedy_rate, "vote": [hits[n_].mean().item() for n_ in ns], "theory": theo,
            "theory bound": {n_: bound[n_] for n_ in ns}, "theory prompts": cut,
            "crossing": first_crossing(ns, [hits[n_].mean().item() for n_ in ns], greedy_rate),
            "theory crossing": first_crossing(ns, list(theo.values()), greedy_hit[:cut].mean().item()),
            PER_PROMPT: {"vote": hits, "greedy": greedy_hit, "theory": rate}}


def support_frequencies(ws: Tensor, w: Tensor, b: int) -> tuple[list[float], int]:
    """Frequencies of the distinct supports of ws (M, P, d) for prompt b, and the index of the
    true support w[b] among them (-1 if never drawn)."""
    rows, counts = torch.unique(ws[:, b] != 0, dim=0, return_counts=True)
    hit = (rows == (w[b] != 0)).all(-1).nonzero()
    return (counts.double() / ws.shape[0]).tolist(), (hit[0, 0].item() if hit.numel() else -1)


def support_vote_theory(ws: Tensor, w: Tensor, ns: list[int]) -> tuple[dict[int, Tensor], dict[int, float]]:
    """Per prompt, the exact vote rate of random N-subsets of the M decodes ws (M, P, d) at each N
    ({N: (P,)}), and the largest bound on its error over the prompts ({N: float})."""
    rate = {n_: torch.zeros(ws.shape[1], dtype=torch.float64) for n_ in ns}
    bound = dict.fromkeys(ns, 0.0)
    for b in range(ws.shape[1]):
        p, true = support_frequencies(ws, w, b)
        if true < 0:
            continue
        counts = [round(v * ws.shape[0]) for v in p]
        for n_ in ns:
            r, e = subset_vote_rate(counts, true, n_)
            rate[n_][b], bound[n_] = r, max(bound[n_], e)
    return rate, bound


def noise_levels(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigmas: list[float],
                 samples: int, gen: torch.Generator, theory_decoder: Decoder | None = None) -> Measurements:
    """Claim 6: E||avg_N - w*||^2 against sigma at fixed N and T, measured and exact."""
    meas, theo, prompts = {}, {}, {"measured": {}, "theory": {}}
    for sigma in sigmas:
        ws = chains(x, y, decoder, f"multiplicative:std={sigma}", [steps], samples, gen)[steps]
        prompts["measured"][sigma] = (ws.mean(0) - w).square().sum(-1)
        prompts["theory"][sigma] = average_theory(theory_decoder or decoder, x, y, w, steps, sigma, samples)
        meas[sigma] = mean_se(prompts["measured"][sigma])
        theo[sigma] = prompts["theory"][sigma].mean().item()
    return {"measured": meas, "theory": theo, PER_PROMPT: prompts}


def compute_split(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, budget: int, sigma: float,
                  splits: list[int], gen: torch.Generator,
                  theory_decoder: Decoder | None = None) -> Measurements:
    """Claim 7: E||avg_N - w*||^2 at T = budget / N for each split N, measured and exact."""
    lengths = [budget // n_ for n_ in splits]
    ws = chains(x, y, decoder, f"multiplicative:std={sigma}", lengths, max(splits), gen)
    prompts = {"measured": {n_: (ws[budget // n_][:n_].mean(0) - w).square().sum(-1) for n_ in splits},
               "theory": {n_: average_theory(theory_decoder or decoder, x, y, w, budget // n_, sigma, n_)
                          for n_ in splits}}
    return {"measured": {n_: mean_se(v) for n_, v in prompts["measured"].items()},
            "theory": {n_: v.mean().item() for n_, v in prompts["theory"].items()}, PER_PROMPT: prompts}


def average_vs_greedy(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
                      samples: int, gen: torch.Generator, shuffle: bool = False) -> Measurements:
    """Claim 2b: per prompt, greedy's and the N-average's E||. - w*||^2, and the exact difference
    given the prompt, greedy - (||m_T - w*||^2 + V_T / N) (``shuffle``: with the next prompt's w*,
    a negative control)."""
    greedy = (chains(x, y, decoder, "greedy", [steps], 1, gen)[steps][0] - w).square().sum(-1)
    ws = chains(x, y, decoder, f"multiplicative:std={sigma}", [steps], samples, gen)[steps]
    avg = (ws.mean(0) - w).square().sum(-1)
    exact = greedy - average_theory(decoder, x, y, w.roll(1, 0) if shuffle else w, steps, sigma, samples)
    return {"greedy": mean_se(greedy), "average": mean_se(avg), "exact advantage": exact.mean().item(),
            PER_PROMPT: {"greedy": greedy, "average": avg, "exact": exact}}
