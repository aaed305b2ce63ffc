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
from ..models.cot import ChainOfThought
from ..testtime import NOISES, TECHNIQUES, Decoder, GDDecoder, decode
from ..theory import testtime as theory

THEORY_PROMPTS = 64  # prompts of the exact vote-rate theory (O(K N^3) each)


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
    return decode(x, y, decoder, NOISES.build(noise), max(record), samples, gen, record=record)


def affine_map(decoder: Decoder, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The decoder's step as F(w) = P w + b per prompt: (P (B, d, d), b (B, d))."""
    if isinstance(decoder, GDDecoder):
        step = decoder.lr / x.shape[1] if decoder.mean else decoder.lr
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        xt = x.transpose(-1, -2)
        return eye - step * xt @ x, step * (xt @ y.unsqueeze(-1)).squeeze(-1)
    model: ChainOfThought = decoder.model
    return model.affine(x, y)


def average_theory(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
                   samples: int) -> Tensor:
    """Exact E||avg_N - w*||^2 given each prompt for multiplicative noise sigma: (P,)."""
    m, cov = theory.affine_noisy_decode_moments(*affine_map(decoder, x, y), steps, decoder.lr, sigma)
    return (m - w).square().sum(-1) + cov.diagonal(dim1=-2, dim2=-1).sum(-1) / samples


def gd_fidelity(cot: Decoder, x: Tensor, y: Tensor, steps: int) -> list[float]:
    """Mean over prompts of ||w_t^cot - w_t^GD|| / ||w_t^GD||, t = 1..steps (greedy decodes)."""
    greedy = NOISES.build("greedy")
    got = decode(x, y, cot, greedy, steps, 1, trajectory=True)[0, :, 1:]
    exact = decode(x, y, GDDecoder(lr=cot.lr), greedy, steps, 1, trajectory=True)[0, :, 1:]
    return ((got - exact).norm(dim=-1) / exact.norm(dim=-1)).mean(0).tolist()


def support_step_fidelity(cot: Decoder, x: Tensor, y: Tensor, k: int, steps: int) -> list[float]:
    """Mean over prompts of ||F_cot(w_t) - F_GD(w_t)|| / ||F_GD(w_t)|| at the 0/1 states w_t,
    t = 0..steps - 1, of the greedy top-k support decode with exact GD."""
    gd = GDDecoder(lr=cot.lr)
    states = decode(x, y, gd, NOISES.build(f"support:k={k},temperature=0"), steps - 1, 1,
                    trajectory=True)[0].transpose(0, 1)  # (T, B, d)
    exact = gd.bind(x, y)(states)
    return ((cot.bind(x, y)(states) - exact).norm(dim=-1) / exact.norm(dim=-1)).mean(-1).tolist()


def averaging(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
              samples: list[int], gen: torch.Generator) -> dict[str, Any]:
    """Claim 2 and 8: excess of the N-average over the mean trajectory, errors, theory."""
    ws = chains(x, y, decoder, f"multiplicative:std={sigma}", [steps], max(samples), gen)[steps]
    m, cov = theory.affine_noisy_decode_moments(*affine_map(decoder, x, y), steps, decoder.lr, sigma)
    v_t = cov.diagonal(dim1=-2, dim2=-1).sum(-1).mean().item()
    excess, err, norm = {}, {}, {}
    for n_ in samples:
        avg = ws[:n_].mean(0)
        excess[n_] = mean_se((avg - m).square().sum(-1))
        err[n_] = mean_se((avg - w).square().sum(-1))
        norm[n_] = (avg - w).norm(dim=-1).mean().item()
    return {"excess": excess, "error": err, "norm": norm, "theory": {n_: v_t / n_ for n_ in samples},
            "slope": loglog_slope(samples, [excess[n_][0] for n_ in samples]),
            "mean_error": (m - w).square().sum(-1).mean().item()}


def thoughts(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, ts: list[int], sigma: float,
             samples: int, gen: torch.Generator) -> dict[str, list[float]]:
    """Claim 3: greedy and N-average errors E||w_T - w*||^2 against T."""
    noisy = chains(x, y, decoder, f"multiplicative:std={sigma}", ts, samples, gen)
    greedy = chains(x, y, decoder, "greedy", ts, 1, gen)
    return {"greedy": [(greedy[t][0] - w).square().sum(-1).mean().item() for t in ts],
            "noisy": [(noisy[t].mean(0) - w).square().sum(-1).mean().item() for t in ts]}


def best_of_n(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigma: float,
              samples: list[int], gen: torch.Generator) -> dict[str, Any]:
    """Claim 4: E||w_hat - w*|| of best-of-N (norm2 reward) under multiplicative noise sigma and
    additive noise eta * sigma (isotropic noise inside the step), beside greedy."""
    best = TECHNIQUES.build("best:reward=norm2")
    greedy = chains(x, y, decoder, "greedy", [steps], 1, gen)[steps][0]
    out: dict[str, Any] = {"greedy": (greedy - w).norm(dim=-1).mean().item()}
    for label, noise in (("multiplicative", f"multiplicative:std={sigma}"),
                         ("additive", f"additive:std={decoder.lr * sigma}")):
        ws = chains(x, y, decoder, noise, [steps], max(samples), gen)[steps]
        out[label] = [(best(ws[:n_], x, y) - w).norm(dim=-1).mean().item() for n_ in samples]
        out[label + " gain"] = (out["greedy"] - out[label][-1]) / out["greedy"]
    return out


def votes(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, k: int, steps: int, ns: list[int],
          gens: tuple[torch.Generator, torch.Generator]) -> dict[str, Any]:
    """Claim 5: greedy top-k and majority-vote exact-support recovery, with the plug-in theory."""
    vote = TECHNIQUES.build("vote")
    greedy = chains(x, y, decoder, f"support:k={k},temperature=0", [steps], 1, gens[0])[steps][0]
    greedy_rate = (greedy == w).all(-1).double().mean().item()
    ws = chains(x, y, decoder, f"support:k={k}", [steps], max(ns), gens[0])[steps]
    rates = [(vote(ws[:n_], x, y) == w).all(-1).double().mean().item() for n_ in ns]
    est = chains(x, y, decoder, f"support:k={k}", [steps], max(ns), gens[1])[steps]
    cut = THEORY_PROMPTS
    predicted = support_vote_theory(est[:, :cut], w[:cut], [n_ for n_ in ns if n_ <= 16])
    limit = predicted_limit(est, w)
    theory_cross = first_crossing(ns, list(predicted.values()) + [limit] * (len(ns) - len(predicted)),
                                  greedy_rate)
    return {"greedy": greedy_rate, "vote": rates, "theory": predicted, "limit": limit,
            "crossing": first_crossing(ns, rates, greedy_rate), "theory crossing": theory_cross}


def support_frequencies(ws: Tensor, w: Tensor, b: int) -> tuple[list[float], int]:
    """Frequencies of the distinct supports of ws (M, P, d) for prompt b, and the index of the
    true support w[b] among them (-1 if never drawn)."""
    rows, counts = torch.unique(ws[:, b] != 0, dim=0, return_counts=True)
    hit = (rows == (w[b] != 0)).all(-1).nonzero()
    return (counts.double() / ws.shape[0]).tolist(), (hit[0, 0].item() if hit.numel() else -1)


def support_vote_theory(ws: Tensor, w: Tensor, ns: list[int]) -> dict[int, float]:
    """Exact vote rate at each N of the plug-in support probabilities, averaged over prompts."""
    out = {n_: 0.0 for n_ in ns}
    for b in range(ws.shape[1]):
        p, true = support_frequencies(ws, w, b)
        if true < 0:
            continue
        for n_ in ns:
            out[n_] += theory.vote_rate(p, true, n_) / ws.shape[1]
    return out


def predicted_limit(ws: Tensor, w: Tensor) -> float:
    """The N -> inf vote rate of the plug-in probabilities, averaged over prompts."""
    rates = []
    for b in range(ws.shape[1]):
        p, true = support_frequencies(ws, w, b)
        rates.append(0.0 if true < 0 else theory.vote_limit(p, true))
    return sum(rates) / len(rates)


def noise_levels(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, steps: int, sigmas: list[float],
                 samples: int, gen: torch.Generator) -> dict[str, Any]:
    """Claim 6: E||avg_N - w*||^2 against sigma at fixed N and T, measured and exact."""
    meas, theo = {}, {}
    for sigma in sigmas:
        ws = chains(x, y, decoder, f"multiplicative:std={sigma}", [steps], samples, gen)[steps]
        meas[sigma] = mean_se((ws.mean(0) - w).square().sum(-1))
        theo[sigma] = average_theory(decoder, x, y, w, steps, sigma, samples).mean().item()
    return {"measured": meas, "theory": theo}


def compute_split(decoder: Decoder, x: Tensor, y: Tensor, w: Tensor, budget: int, sigma: float,
                  splits: list[int], gen: torch.Generator) -> dict[str, Any]:
    """Claim 7: E||avg_N - w*||^2 at T = budget / N for each split N, measured and exact."""
    lengths = [budget // n_ for n_ in splits]
    ws = chains(x, y, decoder, f"multiplicative:std={sigma}", lengths, max(splits), gen)
    meas = {n_: mean_se((ws[budget // n_][:n_].mean(0) - w).square().sum(-1)) for n_ in splits}
    theo = {n_: average_theory(decoder, x, y, w, budget // n_, sigma, n_).mean().item() for n_ in splits}
    return {"measured": meas, "theory": theo}
