"""The setup of ``iclreg reproduce multihead`` (Cui et al., arXiv 2401.17426): the task, the
scenarios, the sizes of each mode, the kernel family's score grid and the large-D constants.

The constants are our derivation (``iclreg.theory.multihead``): the excess risk of the best
H-head softmax kernel predictor is C_H / D + O(D^-2); He et al.'s approximate loss replaces
E exp(omega^2 |x_q|^2) by exp(d omega^2) and gives C_1 / C_2 = e exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..tasks import Task
from ..tasks import build as build_task
from ..theory import approximate_loss, single_head_optimum
from ..theory.multihead import local_constant, optimal_constant

D_IN, NOISE_VAR = 5, 0.1
PRIOR_MEAN, PRIOR_STD = 0.4, 0.2  # w ~ N(0.4 * 1, 0.04 I): E|w|^2 = 0.8 + 0.2 = 1, as in the base case
TEST_SEED = 4242  # the test prompts of every trained model: one batch, step 0
HEADS = {1: "single head", 2: "two heads"}
LOSS_FIGURE, SCENARIO_FIGURE, DIMENSION_FIGURE = "loss_vs_D.png", "scenarios.png", "dimension.png"


def task_spec(n: int | str, d: int = D_IN, noise_var: float = NOISE_VAR, kind: str = "gaussian",
              extra: str = "", w_std: float | None = None) -> str:
    """The task SPEC with ``n`` points (a number, or ``"{n}"`` to fill in later), w ~ N(0, I/d)
    unless ``w_std`` says otherwise."""
    w_std = (1 / math.sqrt(d)) if w_std is None else w_std
    return f"{kind}:d={d},n={n},noise_std={math.sqrt(noise_var):.6f},w_std={w_std:.6f}{extra}"


def run_name(key: str, d: int, D: int, heads: int) -> str:
    """The prefix of a configuration's runs (one per seed: ``<prefix>/seed<s>``)."""
    return f"{key}_d{d}_D{D}_H{heads}"


@dataclass(frozen=True)
class Scenario:
    """One of Cui et al.'s scenarios: its task, the score matrix of the matching kernel
    predictor (None: identity) and the large-D constant C_H of our theory."""

    key: str  # short name for run directories
    label: str
    spec: str  # task SPEC with {n} for the prompt length
    noise_var: float
    kind: str = "isotropic"
    r: float = 0.0  # spread of local examples

    def task(self, D: int) -> Task:
        """The scenario's task with D examples and the query."""
        return build_task(self.spec.format(n=D + 1))

    def constant(self, heads: int) -> float:
        """C_H: D times the best H-head kernel predictor's excess risk as D -> infinity."""
        if self.kind == "local":
            return local_constant(D_IN, self.r, self.noise_var, heads)[0]
        # Toeplitz with the learnable score matrix S^{-1} and the prior mean with E|w|^2 = 1
        # reduce to the isotropic constants (tr S = d; iclreg.theory.multihead, scenarios b, c)
        return optimal_constant(D_IN, self.noise_var, heads)[0]


SCENARIOS = (
    Scenario("base", "base, σ² = 0.1", task_spec("{n}"), NOISE_VAR),
    Scenario("noise0.5", "noisy, σ² = 0.5", task_spec("{n}", noise_var=0.5), 0.5),
    Scenario("noise1", "noisy, σ² = 1", task_spec("{n}", noise_var=1.0), 1.0),
    Scenario("local", "local, r = 0.5", task_spec("{n}", kind="local", extra=",r=0.5"), NOISE_VAR, "local",
             r=0.5),
    Scenario("toeplitz", "correlated, Toeplitz ρ = 0.5", task_spec("{n}", extra=",cov=toeplitz,rho=0.5"),
             NOISE_VAR, "toeplitz"),
    Scenario("prior", "prior mean 0.4, std 0.2",
             task_spec("{n}", extra=f",w_mean={PRIOR_MEAN}", w_std=PRIOR_STD), NOISE_VAR, "prior"),
)


@dataclass(frozen=True)
class Sizes:
    """The sizes of one mode of the reproduction."""

    lengths: tuple[int, ...]  # D of the trained loss-vs-D sweep
    family_lengths: tuple[int, ...]  # D of the best kernel predictors (no training: cheap)
    scenario_D: int
    steps: int
    lr: float
    batch: int
    test_prompts: int
    family_prompts: int
    dims: tuple[int, ...]  # embedding dimensions d trained with H = 1, 2
    seeds: int  # seeds per configuration (members of its ensemble); risks are averaged over them


QUICK = Sizes(lengths=(10, 20, 40, 80), family_lengths=(10, 20, 40, 80, 160, 320, 640, 1000),
              scenario_D=40, steps=1200, lr=0.01, batch=256, test_prompts=8192, family_prompts=16384,
              dims=(10,), seeds=1)
FULL = Sizes(lengths=(10, 20, 50, 100, 200, 500, 1000),
             family_lengths=(10, 20, 50, 100, 200, 500, 1000, 2000, 4000), scenario_D=100, steps=100_000,
             lr=1e-3, batch=256, test_prompts=65536, family_prompts=131072, dims=(10, 20), seeds=4)
TOY = Sizes(lengths=(10,), family_lengths=(10, 20), scenario_D=10, steps=10, lr=0.01, batch=16,
            test_prompts=128, family_prompts=256, dims=(3,), seeds=1)
# the score grid of the kernel family, both signs (omega^2 < 1/2; small omegas for two heads at large D)
_POSITIVE = torch.tensor([0.005, 0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
                          0.69])
OMEGAS = torch.cat([-_POSITIVE.flip(0), _POSITIVE])


def approximate_optimum(D: int, heads: int, d: int = D_IN, noise_var: float = NOISE_VAR) -> float:
    """inf over (omega, mu) of He et al.'s approximate loss, minus sigma^2.

    H = 1: at the closed-form optimum omega^2 = 1/d. H >= 2: the approximate kernel
    (1 + sigma^2) exp(d omega omega^T) / D has nonnegative Taylor coefficients, so (as for the
    exact kernel, ``iclreg.theory.multihead``) the infimum is the two-head limit omega -> 0:
    1 - 1 / (1 + c d) with c = (1 + sigma^2) / D.
    """
    if heads == 1:
        w, m = single_head_optimum(d, D, noise_var)
        return float(approximate_loss(torch.tensor([w]), torch.tensor([m]), d, D, noise_var)) - noise_var
    c = (1 + noise_var) / D
    return 1 - 1 / (1 + c * d)


def constants(d: int = D_IN, noise_var: float = NOISE_VAR) -> dict[str, dict[int, float]]:
    """C_H for H = 1, 2: our exact large-D constants and He et al.'s approximate loss's."""
    return {"exact": {h: optimal_constant(d, noise_var, h)[0] for h in (1, 2)},
            "approximate": {1: math.e * d * (1 + noise_var), 2: d * (1 + noise_var)}}


def theory_ratio(d: int) -> float:
    """C_1 / C_2 of our large-D theory at input dimension d."""
    return optimal_constant(d, NOISE_VAR, 1)[0] / optimal_constant(d, NOISE_VAR, 2)[0]
