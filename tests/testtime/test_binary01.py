"""The binary01 task: exactly k ones, uniform supports, and its stated moments."""

from __future__ import annotations

import pytest
import torch

from iclreg import tasks
from iclreg.errors import UsageError


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exactly_k_ones_with_uniform_inclusion_and_stated_moments(seed: int, dtype):
    task = tasks.build("binary01:d=5,n=3,k=2,noise_std=0.1")
    p = task.sample(40_000, seed, 0, dtype=dtype)
    assert p.x.shape == (40_000, 3, 5) and p.y.shape == (40_000, 3) and p.w.dtype == dtype
    assert ((p.w == 0) | (p.w == 1)).all() and (p.w.sum(-1) == 2).all()
    w = p.w.double()
    prior = task.priors()[0]
    se = 0.5 / 40_000**0.5  # a Bernoulli's standard deviation is at most 1/2
    assert ((w.mean(0) - prior.mean).abs() < 5 * se).all()
    centred = w - prior.mean
    cov = centred.T @ centred / w.shape[0]
    assert ((cov - prior.cov).abs() < 5 * se).all()
    assert torch.allclose(prior.cov.sum(-1), torch.zeros(5, dtype=torch.float64), atol=1e-12)


def test_labels_and_bounds():
    task = tasks.build("binary01:d=4,n=6,k=4")
    p = task.sample(3, 0, 0, dtype=torch.float64)
    assert torch.equal(p.w, torch.ones(3, 4, dtype=torch.float64))
    assert torch.allclose(p.y, p.x.sum(-1))
    assert torch.equal(tasks.build("binary01:d=1,k=1").priors()[0].cov, torch.zeros(1, 1,
                       dtype=torch.float64))
    with pytest.raises(UsageError, match="k must lie in"):
        tasks.build("binary01:d=3,k=4")
