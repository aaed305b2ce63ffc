"""Each noise's first two moments against closed forms, by Monte Carlo over many samples."""

from __future__ import annotations

import pytest
import torch

from iclreg.testtime import DECODERS, NOISES, decode

from .test_support_sampling import inclusion

N = 200_000
Z = 5.0  # tolerance in standard errors


def _setup(seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(1, 2, 3, generator=gen, dtype=torch.float64).expand(N, 2, 3)
    return x, y, w


def _one_step(spec: str, seed: int, lr: float = 0.05):
    x, y, w = _setup(seed)
    decoder, noise = DECODERS.build(f"gd:lr={lr}"), NOISES.build(spec)
    draw = noise.draw(w.shape, torch.Generator().manual_seed(seed + 1), w.dtype, w.device)
    return x, y, w[0], decoder(x, y, w)[0], noise.apply(decoder(x, y, w), w, lr, draw)


def _check_moments(out: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> None:
    """out (N, B, d) against the exact mean (B, d) and covariance (B, d, d), within Z SE."""
    centred = out - mean  # (N, B, d), exact centring
    mean_se = cov.diagonal(dim1=-2, dim2=-1).sqrt() / N**0.5  # (B, d)
    assert ((out.mean(0) - mean).abs() <= Z * mean_se + 1e-12).all()
    products = centred.unsqueeze(-1) * centred.unsqueeze(-2)  # (N, B, d, d)
    cov_se = products.std(0) / N**0.5
    assert ((products.mean(0) - cov).abs() <= Z * cov_se + 1e-12).all()


def test_greedy_is_the_decoder_step(seed: int):
    _, _, _, fw, out = _one_step("greedy", seed)
    assert torch.equal(out, fw.expand_as(out))


def test_additive_moments(seed: int):
    _, _, _, fw, out = _one_step("additive:std=0.3", seed)
    cov = 0.09 * torch.eye(3, dtype=out.dtype).expand(2, 3, 3)
    _check_moments(out, fw, cov)


def test_multiplicative_mean_is_the_ridge_gd_step(seed: int):
    """E w_{t+1} = w_t - lr (X^T (X w_t - y) + sigma^2 w_t);
    Cov w_{t+1} = lr^2 sigma^4 (||w_t||^2 I + w_t w_t^T)."""
    lr, sigma = 0.05, 0.8
    x, y, w, _, out = _one_step(f"multiplicative:std={sigma}", seed, lr)
    grad = torch.einsum("bnd,bn->bd", x, torch.einsum("bnd,bd->bn", x, w) - y)
    mean = w - lr * (grad + sigma**2 * w)
    eye = torch.eye(3, dtype=w.dtype)
    outer = w.unsqueeze(-1) * w.unsqueeze(-2)  # (B, d, d)
    cov = lr**2 * sigma**4 * (w.square().sum(-1)[:, None, None] * eye + outer)
    _check_moments(out, mean, cov)


def test_multiplicative_decodes_average_to_the_ridge_gd_trajectory(seed: int):
    """The step is linear in w_t in expectation, so E w_T is ridge-GD (lambda = sigma^2) after T
    steps from 0, exactly."""
    x, y, _ = _setup(seed)
    lr, sigma, steps = 0.05, 0.7, 8
    decoder, noise = DECODERS.build(f"gd:lr={lr}"), NOISES.build(f"multiplicative:std={sigma}")
    w = decode(x, y, decoder, noise, steps, 50_000, torch.Generator().manual_seed(seed))
    ridge, gd = torch.zeros(2, 3, dtype=x.dtype), torch.zeros(2, 3, dtype=x.dtype)
    for _ in range(steps):
        grad = torch.einsum("bnd,bn->bd", x, torch.einsum("bnd,bd->bn", x, ridge) - y)
        ridge = ridge - lr * (grad + sigma**2 * ridge)
        gd = gd - lr * torch.einsum("bnd,bn->bd", x, torch.einsum("bnd,bd->bn", x, gd) - y)
    se = w.std(0) / w.shape[0] ** 0.5
    assert ((w.mean(0) - ridge).abs() <= Z * se).all()
    assert ((w.mean(0) - gd).abs() > Z * se).any()  # the test tells ridge-GD from plain GD


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_support_inclusion_moments(seed: int, temperature: float):
    """First and second moments of the 0/1 output are the single and pair inclusion
    probabilities of sampling without replacement (enumerated in test_support_sampling).
    F(w) is fixed and positive so that no probability is too small to be seen in N draws (the
    clip is checked there)."""
    fw = torch.tensor([[0.5, 0.2, 2.0], [1.0, 0.3, 0.8]], dtype=torch.float64)  # (B, d)
    noise = NOISES.build(f"support:k=2,temperature={temperature}")
    shape = torch.Size((N, 2, 3))
    draw = noise.draw(shape, torch.Generator().manual_seed(seed), torch.float64, fw.device)
    out = noise.apply(fw.expand(shape), fw.expand(shape), 0.05, draw)
    for b in range(2):
        single, pair = inclusion(fw[b].tolist(), 2, temperature)
        cov = pair - single.unsqueeze(-1) * single.unsqueeze(-2)
        _check_moments(out[:, b : b + 1], single[None], cov[None])
