"""The setup of ``iclreg reproduce softmax-limit`` (Boursier & Boyer, arXiv 2512.11784): the token
covariances of the concentration study, the authors' training task, the reference numbers, the
sizes of each mode and small helpers on trajectories.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..report.references import Reference, own_measurement

P = 5  # token width (d = 4 inputs and a label), as in the independent reproduction


@dataclass(frozen=True)
class Covariance:
    """A token covariance G of the concentration study (``tasks.covariance.build(kind, p, **options)``)."""

    key: str  # its name in the claims
    label: str  # its name in figures and text (TeX)
    kind: str
    options: dict[str, float] = field(default_factory=dict)


COVARIANCES = (Covariance("isotropic", "isotropic", "identity"),
               Covariance("Toeplitz rho=0.5", r"Toeplitz $\rho = 0.5$", "toeplitz", {"rho": 0.5}),
               Covariance("rotated, condition 8", "rotated, condition 8", "rotated", {"cond": 8.0}))
PUBLISHED_SLOPES = (-1.11, -0.83)  # an independent reproduction: squared output and Jacobian errors
# the authors' training setup (their code) (d = 5, Toeplitz rho = 0.5, sigma^2 = 0.1, w ~ N(0, I/d))
D, NOISE_VAR, W_VAR = 5, 0.1, 0.2
TRAIN_TASK = ("gaussian:d=5,n={n},noise_std=" + f"{math.sqrt(NOISE_VAR):.6f},w_std={math.sqrt(W_VAR):.6f}"
              ",cov=toeplitz,rho=0.5")
PUBLISHED_GAP = {100: 0.13, 200: 0.105, 1000: 0.025}  # iclreg's own: |softmax - linear| risk, long SGD
SLOPES_SOURCE = Reference(
    "independent reproduction", "log-log slopes -0.83 to -1.11 of the squared output and Jacobian errors "
    "over L = 16..1024 (d = 4; isotropic, rotated condition-8 and Toeplitz covariances)",
    "an independent reproduction of Boursier & Boyer (unpublished)")
GAP_SOURCE = own_measurement(
    "the authors' training experiment re-run with independent code (4 seeds, one H100): |softmax - "
    "linear| test risk from the same start, 0.13 (L = 100) and 0.105 (L = 200) after 150k SGD steps, "
    "0.025 at L = 1000 after 50k steps (lr 1e-3, batch 128)")
ACTIVATIONS = ("softmax", "linear")
CONCENTRATION_FIGURE, RADEMACHER_FIGURE = "concentration.png", "rademacher.png"
TRAINING_FIGURE, STABILITY_FIGURE = "training.png", "stability.png"


@dataclass(frozen=True)
class Sizes:
    """The sizes of one mode of the reproduction."""

    lengths: tuple[int, ...]  # prompt lengths of the concentration at random weights
    draws: int  # weight draws per length
    reps: int  # prompts per draw
    rademacher: tuple[int, ...]  # prompt lengths of the Rademacher tokens
    train_lengths: tuple[int, ...]  # training L
    seeds: int  # seeds per (L, activation)
    steps: int
    lr: float
    batch: int
    test_prompts: int  # fixed test prompts per training L


QUICK = Sizes(lengths=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096), draws=32, reps=16,
              rademacher=(64, 1024, 16384), train_lengths=(30, 100, 300, 1000), seeds=2,
              steps=2000, lr=0.05, batch=128, test_prompts=2048)
FULL = Sizes(lengths=tuple(2**i for i in range(4, 15)), draws=128, reps=32,
             rademacher=(64, 1024, 16384, 131072), train_lengths=(10, 20, 50, 100, 200, 1000),
             seeds=4, steps=300_000, lr=1e-3, batch=128, test_prompts=16384)
TOY = Sizes(lengths=(16, 64), draws=2, reps=2, rademacher=(64, 256), train_lengths=(10, 40), seeds=1,
            steps=20, lr=0.05, batch=16, test_prompts=64)


def mean(values: list[list[float]]) -> list[float]:
    """Elementwise mean of equally long lists (the mean over seeds of a trajectory)."""
    return [sum(v) / len(v) for v in zip(*values, strict=True)]


def max_drift(values: list[float]) -> float:
    """Largest departure of a supposedly conserved quantity from its initial value."""
    return max(abs(v - values[0]) for v in values)


def conserved(record: dict[str, list[Any]]) -> list[float]:
    """||A||_F^2 - b^2 at each point of a trajectory (conserved by the gradient flow)."""
    return [float((A**2).sum()) - b**2 for A, b in zip(record["A"], record["b"], strict=True)]


def by_length(values: dict[int, float]) -> dict[str, float]:
    """``{L: v}`` -> ``{"L = L": v}`` (claims' mappings have string keys)."""
    return {f"L = {L}": v for L, v in values.items()}
