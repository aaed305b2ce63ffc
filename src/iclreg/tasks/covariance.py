"""Covariances of x: identity, Toeplitz, a given spectrum, a random rotation.

Each returns ``(Sigma, T)`` in float64 with T the symmetric square root, so x = g T has
covariance Sigma for standard Gaussian g. The rotated covariance follows Fu et al.
(arXiv 2310.17086): T = U diag(lambda) U^T with lambda = sqrt(cond) on half the coordinates
and 1 on the rest, rescaled so that sum(lambda^2) = d; Sigma then has condition number cond.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sqrt_psd(sigma: Tensor) -> Tensor:
    """The symmetric square root of a positive semi-definite matrix (eigenvalues clamped at 0)."""
    evals, evecs = torch.linalg.eigh(sigma)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def random_rotation(d: int, seed: int) -> Tensor:
    """A Haar-random orthogonal matrix (QR of a Gaussian matrix with the sign fix), float64."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def build(
    kind: str, d: int, *, rho: float = 0.5, spectrum: tuple[float, ...] | None = None,
    cond: float = 100.0, seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """Return ``(Sigma, T)``, both (d, d) float64, for covariance ``kind``."""
    if kind == "identity":
        eye = torch.eye(d, dtype=torch.float64)
        return eye, eye
    if kind == "toeplitz":
        idx = torch.arange(d, dtype=torch.float64)
        sigma = rho ** (idx[:, None] - idx[None, :]).abs()
        return sigma, sqrt_psd(sigma)
    if kind == "spectrum":
        assert spectrum is not None
        evals = torch.tensor(spectrum, dtype=torch.float64)
        return torch.diag(evals), torch.diag(evals.sqrt())
    if kind == "rotated":
        lam = torch.ones(d, dtype=torch.float64)
        lam[: d // 2] = math.sqrt(cond)
        lam = lam * math.sqrt(d / float((lam**2).sum()))
        u = random_rotation(d, seed)
        return (u * lam**2) @ u.T, (u * lam) @ u.T
    raise ValueError(f"unknown covariance '{kind}'")
