"""The softmax-kernel estimators in blocks of prompts: the numbers of one batch, bit for bit."""

from __future__ import annotations

import pytest
import torch

from iclreg.estimators.kernel import _kernel_block, kernel_predict
from iclreg.models import causal
from iclreg.tasks import build as build_task


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_give_one_batch_bit_for_bit(monkeypatch, dtype: torch.dtype, seed: int) -> None:
    p = build_task("gaussian:d=5,n=15,noise_std=0.3").sample(11, seed=seed, step=2, dtype=dtype)
    omega = torch.tensor([0.13, -0.13, 0.4], dtype=dtype)
    mu = torch.tensor([3.45, -3.45, 0.5], dtype=dtype)
    whole = _kernel_block(p.x, p.y, omega, mu)
    monkeypatch.setattr(causal, "BLOCK_BYTES", 4 * 3 * 15 * 15 * dtype.itemsize)  # blocks of 4 prompts
    assert torch.equal(kernel_predict(p.x, p.y, omega, mu), whole)
