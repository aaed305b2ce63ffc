"""Stochastic decoding: the noise that turns a deterministic chain of thought into a sampler.

Our construction after Chen, Lu, Wu, Zou (arXiv 2508.07571) and the authors' early code (the
paper's text is not available here). Each step first applies the decoder, F(w_t), then the
noise, with N samples of B prompts at once (w: (N, B, d)):

- ``greedy``: w_{t+1} = F(w_t), no noise.
- ``additive:std=s``: w_{t+1} = F(w_t) + xi,  xi ~ N(0, s^2 I).
- ``multiplicative:std=sigma``: w_{t+1} = F(w_t) - lr zeta_t,  zeta_t = (xi^T w_t) xi,
  xi ~ N(0, sigma^2 I). Since E zeta_t = sigma^2 w_t and Cov zeta_t = sigma^4 (||w_t||^2 I +
  w_t w_t^T), the expected step with the ``gd`` decoder is a GD step on the ridge objective
  with lambda = sigma^2: E w_{t+1} = w_t - lr (X^T (X w_t - y) + sigma^2 w_t).
- ``support:k=..,temperature=tau``: for binary coefficients. p = clip(F(w_t), 1e-10) / sum,
  q = p^(1/tau) / sum; draw k indices without replacement with probabilities q (successive
  draws, renormalising over the indices left) and emit their 0/1 indicator. Batched by the
  Gumbel-top-k trick: the k largest of log p / tau + G_j with G_j i.i.d. standard Gumbel are
  such a draw (log p / tau equals log q up to a constant, which does not change the order).
  ``temperature=0`` is greedy top-k of F(w_t), ties (e.g. clipped entries) to the smallest
  index.

Random draws: at each step a noise draws one tensor from the generator, of shape (N, B, d):
``torch.randn`` (additive, multiplicative) or ``torch.rand`` (support with tau > 0), and none
for greedy and support with tau = 0; so a decode is reproducible from the generator's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import check
from ..registry import Registry

NOISES: Registry[Noise] = Registry("noise")
CLIP = 1e-10  # the floor of the support probabilities (the early code's clip)


@dataclass(frozen=True)
class Noise:
    """Base of every noise: ``draw`` the step's randomness, then ``apply`` it to F(w_t)."""

    name: ClassVar[str]
    coefficients: ClassVar[str | None] = None  # the task coefficients it needs (None: any)

    def draw(self, shape: torch.Size, generator: torch.Generator | None,
             dtype: torch.dtype, device: torch.device) -> Tensor | None:
        """The step's random tensor of ``shape`` (N, B, d), or None when none is needed."""
        return None

    def apply(self, fw: Tensor, w: Tensor, lr: float, draw: Tensor | None) -> Tensor:
        """w_{t+1} from F(w_t) (N, B, d), w_t (N, B, d), the decoder's step size and the draw."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The resolved parameters, JSON-ready."""
        return {"name": self.name, **vars(self)}


@NOISES.register("greedy")
@dataclass(frozen=True)
class Greedy(Noise):
    """Deterministic decoding: w_{t+1} = F(w_t)."""

    def apply(self, fw: Tensor, w: Tensor, lr: float, draw: Tensor | None) -> Tensor:
        return fw


def _gaussian(shape: torch.Size, generator: torch.Generator | None, dtype: torch.dtype,
              device: torch.device) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=dtype, device=device)


@NOISES.register("additive")
@dataclass(frozen=True)
class Additive(Noise):
    """w_{t+1} = F(w_t) + xi, xi ~ N(0, std^2 I).

    Attributes:
        std: the standard deviation s of each coordinate, >= 0.
    """

    std: float = 0.1

    def __post_init__(self) -> None:
        check(self.std >= 0, f"additive: std must be >= 0, got {self.std}")

    def draw(self, shape: torch.Size, generator: torch.Generator | None,
             dtype: torch.dtype, device: torch.device) -> Tensor | None:
        return _gaussian(shape, generator, dtype, device)

    def apply(self, fw: Tensor, w: Tensor, lr: float, draw: Tensor | None) -> Tensor:
        return fw + self.std * draw


@NOISES.register("multiplicative")
@dataclass(frozen=True)
class Multiplicative(Noise):
    """w_{t+1} = F(w_t) - lr (xi^T w_t) xi, xi ~ N(0, std^2 I): ridge with lambda = std^2
    in expectation.

    Attributes:
        std: sigma, the standard deviation of each coordinate of xi, >= 0.
    """

    std: float = 1.0

    def __post_init__(self) -> None:
        check(self.std >= 0, f"multiplicative: std must be >= 0, got {self.std}")

    def draw(self, shape: torch.Size, generator: torch.Generator | None,
             dtype: torch.dtype, device: torch.device) -> Tensor | None:
        return _gaussian(shape, generator, dtype, device)

    def apply(self, fw: Tensor, w: Tensor, lr: float, draw: Tensor | None) -> Tensor:
        xi = self.std * draw  # (N, B, d)
        zeta = (xi * w).sum(-1, keepdim=True) * xi  # (xi^T w_t) xi, (N, B, d)
        return fw - lr * zeta


@NOISES.register("support")
@dataclass(frozen=True)
class Support(Noise):
    """Emit the 0/1 indicator of k indices drawn without replacement with probabilities
    proportional to clip(F(w_t), 1e-10)^(1 / temperature); temperature 0 is top-k.

    Attributes:
        k: number of indices drawn, >= 1 (at most d).
        temperature: tau >= 0.
    """

    coefficients = "binary01"
    k: int = 5
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check(self.k >= 1, f"support: k must be at least 1, got {self.k}")
        check(self.temperature >= 0,
              f"support: temperature must be >= 0, got {self.temperature}")

    def draw(self, shape: torch.Size, generator: torch.Generator | None,
             dtype: torch.dtype, device: torch.device) -> Tensor | None:
        if self.temperature == 0:
            return None
        return torch.rand(shape, generator=generator, dtype=dtype, device=device)

    def apply(self, fw: Tensor, w: Tensor, lr: float, draw: Tensor | None) -> Tensor:
        check(self.k <= fw.shape[-1], f"support: k={self.k} exceeds d={fw.shape[-1]}")
        p = fw.clamp_min(CLIP)
        logits = (p / p.sum(-1, keepdim=True)).log()  # (N, B, d)
        if draw is not None:
            tiny = torch.finfo(draw.dtype).tiny
            exponential = -draw.clamp_min(tiny).log()
            gumbel = -exponential.clamp_min(tiny).log()  # standard Gumbel, (N, B, d)
            keys = logits / self.temperature + gumbel  # ties have probability 0
            index = keys.topk(self.k, dim=-1).indices  # (N, B, k)
        else:  # a stable sort breaks ties (clipped entries) to the smallest index
            index = logits.sort(dim=-1, descending=True, stable=True).indices[..., : self.k]
        return torch.zeros_like(fw).scatter_(-1, index, 1.0)


def build(spec: str) -> Noise:
    """Build a noise from a SPEC such as ``multiplicative:std=0.5``."""
    return NOISES.build(spec)
