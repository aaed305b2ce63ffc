"""The task contract: a prompt distribution sampled as a pure function of (seed, step).

Every task draws a batch of prompts ``(x, y)`` with ``x: (B, n, d)`` and ``y: (B, n)`` (or
``(B, n, K)`` for tasks with K label slots) from its own ``torch.Generator`` seeded by
``(seed, step)``, so a resumed run sees exactly the batches it would have seen (the data
discipline of Raventos et al., arXiv 2306.15063). The common linear model is

    x_i ~ N(0, Sigma),  w ~ prior,  y_i = <w, x_i> + sigma * eps_i,

and each task states its prior on w as Gaussian moments (mean, covariance, noise), which the
``bayes`` estimator uses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from ..errors import check
from ..registry import Registry
from . import covariance

TASKS: Registry[Task] = Registry("task")
SEEDS = 2**63  # every seed lies in 0 <= seed < 2^63 (what torch.manual_seed and NumPy take)
# the largest E[y^2] a task may have: its errors, their sums over prompts and positions and the
# estimators' X^T y stay finite in float32 (max 3.4e38) with room for 1e8 terms
MAX_LABEL_VARIANCE = 1e30


def check_seed(seed: int, what: str) -> None:
    """Refuse a seed outside ``0 <= seed < 2^63``; ``what`` names it in the message."""
    check(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < SEEDS,
          f"{what} must be an integer in [0, 2**63), got {seed}")


def generator(seed: int, step: int, device: torch.device | str = "cpu",
              stream: int | None = None) -> torch.Generator:
    """A fresh generator on ``device`` whose state is a pure function of ``(seed, step)``.

    The two integers are mixed by NumPy's ``SeedSequence`` so that neighbouring seeds and
    steps give unrelated streams. ``stream`` (a third integer) gives another, unrelated stream
    of the same (seed, step): the test-time decodes' noise, apart from the prompts.
    """
    check_seed(seed, "seed")
    check(step >= 0, f"step must be >= 0, got {step}")
    state = np.random.SeedSequence([int(seed), int(step)] + ([] if stream is None else [int(stream)]))
    device = torch.device(device)
    if device.type == "meta":  # a shape-only dry run: nothing is drawn
        return torch.Generator()
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
    return gen


@dataclass(frozen=True)
class Prompts:
    """A batch of prompts.

    Attributes:
        x: inputs, (B, n, d).
        y: labels, (B, n), or (B, n, K) with K label slots.
        w: task vectors, (B, d), or (B, d, K).
    """

    x: Tensor
    y: Tensor
    w: Tensor


@dataclass(frozen=True)
class GaussianPrior:
    """Gaussian moments of one label slot: w ~ N(mean, cov), noise N(0, noise_std^2).

    Attributes:
        mean: (d,) prior mean of w.
        cov: (d, d) prior covariance of w (may be singular).
        noise_std: label-noise standard deviation.
    """

    mean: Tensor
    cov: Tensor
    noise_std: float


@dataclass(frozen=True)
class Task:
    """Base of every task: sizes, label noise and the covariance of x.

    Attributes:
        d: input dimension.
        n: prompt length in (x, y) pairs.
        noise_std: label-noise standard deviation sigma.
        w_std: scale tau of the task vector's prior.
        cov: covariance of x: ``identity``; ``toeplitz`` (Sigma_ij = rho^|i-j|);
            ``spectrum`` (diagonal with the given eigenvalues); ``rotated`` (U diag(lambda)
            U^T with a random rotation U and condition number ``cond``; Fu et al.'s
            ill-conditioned sampler, arXiv 2310.17086).
        rho: Toeplitz correlation, in (-1, 1).
        spectrum: eigenvalues of Sigma for ``cov=spectrum`` (d positive numbers).
        cond: condition number of Sigma for ``cov=rotated`` (>= 1).
        cov_seed: seed of the fixed rotation U for ``cov=rotated``.
    """

    name: ClassVar[str]
    # the coefficients w* the task draws: "continuous", "sign" (+-w_std), or "binary01" (0/1 entries,
    # where exact support recovery is meaningful); test-time support sampling and vote need "binary01"
    coefficients: ClassVar[str] = "continuous"
    # what ``iclreg test-time`` scores an answer w_hat by: "mse", the squared error of its query
    # prediction against the noisy label, or "recovery", exact support recovery (binary01)
    metric: ClassVar[str] = "mse"
    d: int = 20
    n: int = 41
    noise_std: float = 0.0
    w_std: float = 1.0
    cov: Literal["identity", "toeplitz", "spectrum", "rotated"] = "identity"
    rho: float = 0.5
    spectrum: tuple[float, ...] | None = None
    cond: float = 100.0
    cov_seed: int = 0

    def __post_init__(self) -> None:
        check(self.d >= 1, f"{self.name}: d must be at least 1, got {self.d}")
        check(self.n >= 1, f"{self.name}: n must be at least 1, got {self.n}")
        check(self.noise_std >= 0, f"{self.name}: noise_std must be >= 0, got {self.noise_std}")
        check(self.w_std >= 0, f"{self.name}: w_std must be >= 0, got {self.w_std}")
        check(-1 < self.rho < 1, f"{self.name}: rho must lie in (-1, 1), got {self.rho}")
        check(self.cond >= 1, f"{self.name}: cond must be >= 1, got {self.cond}")
        check_seed(self.cov_seed, f"{self.name}: cov_seed")
        if self.cov == "spectrum":
            check(
                self.spectrum is not None and len(self.spectrum) == self.d,
                f"{self.name}: cov=spectrum needs spectrum=[...] with d={self.d} eigenvalues",
            )
            check(
                all(s > 0 for s in self.spectrum),
                f"{self.name}: spectrum values must be positive, got {list(self.spectrum)}",
            )
        variance = self.label_variance_bound()
        if variance > MAX_LABEL_VARIANCE:
            scales = {k: getattr(self, k, None) for k in ("noise_std", "w_std", "w_mean", "spectrum", "r")}
            given = ", ".join(f"{k}={v}" for k, v in scales.items() if v is not None)
            check(False, f"{self.name}: labels of this task ({given}) would have a second moment of about "
                         f"{variance:.3g}, which results cannot hold: it must stay below "
                         f"{MAX_LABEL_VARIANCE:g}; scale the task down")

    def label_variance_bound(self) -> float:
        """An upper bound on E[y^2] = E[<w, x>^2] + sigma^2 (sigma^2 d for a task whose noise grows
        with the coordinates it sums, such as multitask), from the prior's second moment
        ||w_mean||^2 + d tau^2 and the largest eigenvalue of x's covariance (at most d, or the
        largest of ``spectrum``; local tasks widen x by (1 + r)). Products, not powers: a value too
        large gives inf, not an exception."""
        mean = getattr(self, "w_mean", 0.0)  # gaussian tasks and their kin
        means = mean if isinstance(mean, tuple) else (mean,) * self.d
        prior = sum(m * m for m in means) + self.d * self.w_std * self.w_std
        top = {"identity": 1.0, "spectrum": max(self.spectrum or (1.0,))}.get(self.cov, float(self.d))
        widen = 1.0 + abs(getattr(self, "r", 0.0))
        return prior * top * widen * widen + self.d * self.noise_std * self.noise_std

    # --- covariance of x -------------------------------------------------------------------
    @cached_property
    def _cov_factors(self) -> tuple[Tensor, Tensor]:
        return covariance.build(
            self.cov, self.d, rho=self.rho, spectrum=self.spectrum, cond=self.cond,
            seed=self.cov_seed,
        )

    @property
    def covariance(self) -> Tensor:
        """Sigma, the covariance of x: (d, d), float64 on the CPU."""
        return self._cov_factors[0]

    @property
    def covariance_sqrt(self) -> Tensor:
        """The symmetric square root T of Sigma (x = g T with g standard): (d, d)."""
        return self._cov_factors[1]

    # --- sampling -------------------------------------------------------------------------
    @property
    def nonzeros(self) -> int:
        """How many coordinates of w are non-zero: d (a sparse task says fewer)."""
        return self.d

    @property
    def num_labels(self) -> int:
        """K, the number of label slots (1 for single-task regression)."""
        return 1

    def sample(
        self,
        batch: int,
        seed: int = 0,
        step: int = 0,
        *,
        n: int | None = None,
        d_active: int | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> Prompts:
        """Draw ``batch`` prompts of ``n`` pairs (default ``self.n``) from (seed, step).

        ``d_active`` zeroes the coordinates of x from ``d_active`` on before the labels are
        computed (Garg et al.'s curriculum over the dimension).
        """
        check(batch >= 1, f"batch must be at least 1, got {batch}")
        n = self.n if n is None else n
        check(n >= 1, f"n must be at least 1, got {n}")
        gen = generator(seed, step, device)
        # meta tensors (shapes without storage: the dry runs of ``resources``) draw nothing
        opts = {"generator": None if gen.device.type == "meta" else gen, "device": device, "dtype": dtype}
        w = self.sample_w(batch, opts)
        x = self.sample_x(batch, n, opts)
        if d_active is not None and d_active < self.d:
            x[..., d_active:] = 0.0
        y = self.labels(x, w, opts)
        return Prompts(x=x, y=y, w=w)

    def sample_w(self, batch: int, opts: dict[str, Any]) -> Tensor:
        """Task vectors, (B, d)."""
        raise NotImplementedError

    def sample_x(self, batch: int, n: int, opts: dict[str, Any]) -> Tensor:
        """Inputs x_i ~ N(0, Sigma), (B, n, d)."""
        g = torch.randn(batch, n, self.d, **opts)
        return self._transform(g)

    def _transform(self, g: Tensor) -> Tensor:
        if self.cov == "identity":
            return g
        return g @ self.covariance_sqrt.to(device=g.device, dtype=g.dtype)

    def labels(self, x: Tensor, w: Tensor, opts: dict[str, Any]) -> Tensor:
        """y_i = <w, x_i> + sigma eps_i, (B, n)."""
        y = torch.einsum("bnd,bd->bn", x, w)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, **opts)
        return y

    # --- prior ----------------------------------------------------------------------------
    def priors(self) -> list[GaussianPrior]:
        """Gaussian moments of w and the noise, one per label slot (float64, CPU)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The resolved parameters, JSON-ready."""
        out: dict[str, Any] = {"name": self.name}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def build(spec: str, **ctx: Any) -> Task:
    """Build a task from a SPEC such as ``gaussian:d=8,n=64,noise_std=0.5``."""
    return TASKS.build(spec, **ctx)
