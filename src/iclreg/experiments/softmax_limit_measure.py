"""The measurements of ``iclreg reproduce softmax-limit`` (Boursier & Boyer, arXiv 2512.11784), as
plain numbers: the concentration of finite-L attention on its infinite-prompt limit at random
weights (``iclreg.analysis.concentration``), the trained runs' trajectories (risk, (A, b), the
finite/infinite-L gaps) replayed from their checkpoints, and the infinite-L gradient flow of the
risk R(A, b) from each seed's start (``iclreg.theory.gradient_flow``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..analysis.concentration import limit_errors, rademacher_limit_gap, reduced_attention_gaps
from ..analysis.fit import loglog_slope
from ..tasks import build as build_task
from ..tasks.covariance import build as build_covariance
from ..theory import gradient_flow, limit_mse
from .base import Runs
from .softmax_limit_setup import (
    ACTIVATIONS,
    COVARIANCES,
    NOISE_VAR,
    TRAIN_TASK,
    W_VAR,
    P,
    Sizes,
    max_drift,
    mean,
)

Trajectories = dict[tuple[int, str], list[dict[str, list[Any]]]]  # (L, activation) -> one per seed
QUANTITIES = ("output", "gradient")


@dataclass(frozen=True)
class Concentration:
    """Squared errors against the limit by covariance key (``limit_errors``' dict, with the
    standard errors), and what the claims read off them."""

    lengths: list[int]
    errors: dict[str, dict[str, Any]]

    @property
    def slopes(self) -> dict[str, list[float]]:
        """Log-log slopes of the output and gradient errors against L, by covariance."""
        return {key: [loglog_slope(self.lengths, e[q]) for q in QUANTITIES] for key, e in self.errors.items()}

    @property
    def relative(self) -> dict[str, float]:
        """The output error at the largest L over E||f||^2, by covariance."""
        return {key: e["output"][-1] / e["limit_norm"] for key, e in self.errors.items()}

    @property
    def fall(self) -> dict[str, float]:
        """The factor by which the output error falls from the first L to the last, by covariance."""
        return {key: e["output"][0] / e["output"][-1] for key, e in self.errors.items()}

    def spread(self, quantity: str) -> tuple[float, int]:
        """The covariances' largest relative difference max / min - 1 of ``quantity`` and the L
        where it is reached: how far apart their curves lie."""
        columns = list(zip(*(e[quantity] for e in self.errors.values()), strict=True))  # one per L
        by_length = [max(c) / min(c) - 1 for c in columns]
        i = max(range(len(columns)), key=by_length.__getitem__)
        return by_length[i], self.lengths[i]

    def apart(self, quantity: str, z: float = 1.96) -> list[int]:
        """The lengths where two covariances' ``quantity`` differ by more than z standard errors
        of their difference: where their curves do not coincide within the Monte Carlo error."""
        out = []
        for i, L in enumerate(self.lengths):
            points = [(e[quantity][i], e[f"{quantity}_se"][i]) for e in self.errors.values()]
            if any(abs(a - b) > z * math.hypot(sa, sb) for j, (a, sa) in enumerate(points)
                   for b, sb in points[j + 1:]):
                out.append(L)
        return out


def concentration(sizes: Sizes) -> Concentration:
    """Sections 1-2: ``limit_errors`` for each covariance (seeds 0, 2, 4)."""
    lengths, errors = list(sizes.lengths), {}
    for i, cov in enumerate(COVARIANCES):
        G, _ = build_covariance(cov.kind, P, **cov.options)
        errors[cov.key] = limit_errors(G, lengths, sizes.draws, sizes.reps, seed=2 * i)
    return Concentration(lengths, errors)


def rademacher(sizes: Sizes) -> dict[str, list[float]]:
    """Section 1: Rademacher tokens against the linear and the tanh limit (``rademacher_limit_gap``)."""
    return rademacher_limit_gap(list(sizes.rademacher), p=P)


# --- trajectories of the trained runs -------------------------------------------------------------
def trajectories(runs: Runs, sizes: Sizes, Sigma: Tensor) -> Trajectories:
    """(L, activation) -> one trajectory per seed (:func:`trajectory`), on fixed test prompts."""
    traj = {}
    for L in sizes.train_lengths:
        test = build_task(TRAIN_TASK.format(n=L + 1)).sample(sizes.test_prompts, seed=7_000 + L, step=0,
                                                           dtype=torch.float64)
        for activation in ACTIVATIONS:
            names = [f"L{L}_{activation}/seed{seed}" for seed in range(sizes.seeds)]
            traj[(L, activation)] = [trajectory(runs, name, test, Sigma, activation == "softmax")
                                     for name in names]
    return traj


def trajectory(runs: Runs, name: str, test: Any, Sigma: Tensor, with_gaps: bool) -> dict[str, list[Any]]:
    """Test risk at the training L, (A, b) and (softmax only) the finite/infinite-L gaps at
    the initialisation and every checkpoint, in float64 on the CPU."""
    record: dict[str, list[Any]] = {"step": [], "risk": [], "A": [], "b": [], "output": [], "gradient": []}
    for step, model in runs.checkpoints(name, initial=True):
        model.to(device="cpu", dtype=torch.float64)  # in place: later checkpoints load into float64
        A, b = model.A.detach().clone(), float(model.b.detach()[0])
        with torch.no_grad():
            risk = float((model.predict_last(test.x, test.y) - test.y[:, -1]).square().mean())
        for key, value in (("step", step), ("risk", risk), ("A", A), ("b", b)):
            record[key].append(value)
        if with_gaps:
            gaps = reduced_attention_gaps(A, b, test.x, test.y, test.w, Sigma)
            record["output"].append(gaps["output"])
            record["gradient"].append(gaps["gradient"])
    return record


# --- the infinite-L flow ------------------------------------------------------------------------
def flows(starts: list[dict[str, list[Any]]], times: list[float], Sigma: Tensor) -> list[dict[str, Any]]:
    """The infinite-L flow from each seed's start (the same at every L and activation).

    ``times``: the checkpoints' flow times (lr * step), then the end time; the risk is kept
    at the checkpoints, ||A||_F^2 - b^2 and ||A||_F^2 at every time, (A, b) at the end."""
    out = []
    for start in starts:
        A_t, b_t = gradient_flow(start["A"][0], start["b"][0], Sigma, times, w_var=W_VAR)
        out.append({"risk": [float(limit_mse(A_t[i], b_t[i], Sigma, W_VAR, NOISE_VAR))
                             for i in range(len(times) - 1)],
                    "conserved": ((A_t**2).sum((-2, -1)) - b_t**2).tolist(),
                    "A_norm2": (A_t**2).sum((-2, -1)).tolist(),
                    "end": (A_t[-1], float(b_t[-1]))})
    return out


@dataclass(frozen=True)
class Training:
    """Section 3: mean test risks along training against the flow's, from the same starts."""

    steps: list[int]
    horizon: float  # the flow's end time: 20 times the training's flow time
    flows: list[dict[str, Any]]
    flow_risk: list[float]  # the flows' mean risk at the checkpoints
    risks: dict[tuple[int, str], list[float]]  # (L, activation) -> mean risk over seeds

    def final_gap(self, L: int) -> float:
        """|softmax risk - flow risk| at the end of training."""
        return abs(self.risks[(L, "softmax")][-1] - self.flow_risk[-1])

    def max_gap(self, L: int) -> float:
        """The largest |softmax risk - flow risk| after the initialisation."""
        pairs = zip(self.risks[(L, "softmax")][1:], self.flow_risk[1:], strict=True)
        return max(abs(a - b) for a, b in pairs)

    def linear_gap(self, L: int) -> float:
        """|softmax - linear| risk at the end of training."""
        return abs(self.risks[(L, "softmax")][-1] - self.risks[(L, "linear")][-1])


def training(sizes: Sizes, traj: Trajectories, Sigma: Tensor) -> Training:
    first = sizes.train_lengths[0]
    steps = traj[(first, "softmax")][0]["step"]
    horizon = 20 * (sizes.lr * steps[-1])  # 20 times the flow time of the training
    found = flows(traj[(first, "softmax")], [sizes.lr * s for s in steps] + [horizon], Sigma)
    risks = {(L, a): mean([t["risk"] for t in traj[(L, a)]])
             for L in sizes.train_lengths for a in ACTIVATIONS}
    return Training(steps, horizon, found, mean([f["risk"] for f in found]), risks)


def flow_end(found: list[dict[str, Any]], Sigma: Tensor) -> dict[str, float]:
    """The largest drift of ||A||_F^2 - b^2 along the flows ("drift"), the least movement of
    ||A||_F^2 ("moved"), and at the end points max |b S A - I| ("residual") and the excess risk
    over sigma^2 ("excess"), each the worst over the flows."""
    eye, ends = torch.eye(Sigma.shape[0], dtype=torch.float64), [f["end"] for f in found]
    return {"drift": max(max_drift(f["conserved"]) for f in found),
            "moved": min(max(f["A_norm2"]) - min(f["A_norm2"]) for f in found),
            "residual": max(float((b * Sigma @ A - eye).abs().max()) for A, b in ends),
            "excess": max(float(limit_mse(A, b, Sigma, W_VAR, NOISE_VAR)) - NOISE_VAR for A, b in ends)}


def stability(sizes: Sizes, traj: Trajectories) -> dict[tuple[int, str], list[float]]:
    """Section 4: (L, "output" | "gradient") -> the softmax runs' mean relative gap to the
    infinite-L limit at each checkpoint."""
    return {(L, key): mean([t[key] for t in traj[(L, "softmax")]])
            for L in sizes.train_lengths for key in QUANTITIES}
