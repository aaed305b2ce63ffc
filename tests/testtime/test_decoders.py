"""The gd decoder and greedy decoding against closed forms of gradient descent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclreg.errors import UsageError
from iclreg.testtime import DECODERS, NOISES, decode, decode_path


def _prompts(batch: int, n: int, d: int, seed: int, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, d, generator=gen, dtype=dtype)
    y = torch.randn(batch, n, generator=gen, dtype=dtype)
    return x, y


@pytest.mark.parametrize("mean", [False, True])
def test_gd_step_is_the_gradient_step(seed: int, mean: bool):
    x, y = _prompts(3, 7, 4, seed)
    w = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(seed + 1), dtype=x.dtype)
    decoder = DECODERS.build(f"gd:lr=0.05,mean={str(mean).lower()}")
    out = decoder(x, y, w)
    step = 0.05 / 7 if mean else 0.05
    for s in range(5):
        for b in range(3):
            X, Y, W = x[b].numpy(), y[b].numpy(), w[s, b].numpy()
            expected = W - step * X.T @ (X @ W - Y)
            np.testing.assert_allclose(out[s, b].numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_greedy_decode_is_closed_form_gd(seed: int, dtype: torch.dtype):
    """w_T = (I - (I - lr S)^T) S^{-1} X^T y, with S = X^T X invertible (n > d)."""
    x, y = _prompts(4, 12, 3, seed, dtype)
    lr, steps = 0.02, 15
    w = decode(x, y, DECODERS.build(f"gd:lr={lr}"), NOISES.build("greedy"), steps, 2)
    assert w.shape == (2, 4, 3) and w.dtype == dtype
    for b in range(4):
        X, Y = x[b].double().numpy(), y[b].double().numpy()
        S = X.T @ X
        M = np.linalg.matrix_power(np.eye(3) - lr * S, steps)
        expected = (np.eye(3) - M) @ np.linalg.solve(S, X.T @ Y)
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        for s in range(2):
            np.testing.assert_allclose(w[s, b].double().numpy(), expected, rtol=tol, atol=tol)


def test_trajectory_starts_at_zero_and_ends_at_the_final_iterate(seed: int):
    x, y = _prompts(2, 5, 3, seed)
    decoder, noise = DECODERS.build("gd:lr=0.1"), NOISES.build("additive:std=0.3")
    final = decode(x, y, decoder, noise, 4, 3, torch.Generator().manual_seed(seed))
    path = decode_path(x, y, decoder, noise, 4, 3, torch.Generator().manual_seed(seed))
    assert path.shape == (3, 2, 5, 3)
    assert torch.equal(path[:, :, 0], torch.zeros(3, 2, 3, dtype=x.dtype))
    assert torch.equal(path[:, :, -1], final)


def test_zero_steps_is_zero_and_bad_specs_are_refused():
    x, y = _prompts(2, 5, 3, 0)
    w = decode(x, y, DECODERS.build("gd"), NOISES.build("greedy"), 0, 2)
    assert torch.equal(w, torch.zeros(2, 2, 3, dtype=x.dtype))
    with pytest.raises(UsageError, match="lr must be > 0"):
        DECODERS.build("gd:lr=0")
    with pytest.raises(UsageError, match="samples must be at least 1"):
        decode(x, y, DECODERS.build("gd"), NOISES.build("greedy"), 1, 0)
    with pytest.raises(UsageError, match="k=4 exceeds d=3"):
        decode(x, y, DECODERS.build("gd"), NOISES.build("support:k=4"), 1, 1)


def test_the_cot_decoder_takes_a_loaded_model_and_the_spec_loads_through_from_run(tmp_path):
    """The constructor only takes values; ``cot:run=DIR`` goes through ``from_run``, which reads
    the run (here: a directory that holds none, refused in one line)."""
    from iclreg.testtime import ChainOfThoughtDecoder

    with pytest.raises(UsageError, match="give the trained run's directory"):
        ChainOfThoughtDecoder(run="runs/cot")  # no model: nothing is read from disk
    with pytest.raises(UsageError):
        DECODERS.build(f"cot:run={tmp_path}")


def test_gd_decoder_affine_form_is_its_step():
    """F(w) = P w + b from ``affine`` against the decoder's own step, sum and mean forms."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 4, generator=gen, dtype=torch.float64)
    y = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    for spec in ("gd:lr=0.05", "gd:lr=0.3,mean=true"):
        decoder = DECODERS.build(spec)
        p, b = decoder.affine(x, y)
        manual = torch.einsum("bij,sbj->sbi", p, w) + b
        assert torch.allclose(decoder(x, y, w), manual, atol=1e-12)


def test_tasks_declare_their_test_time_metric():
    from iclreg.tasks import TASKS

    assert TASKS.build("binary01:d=6,k=2").metric == "recovery"
    assert {TASKS.build(s).metric for s in ("gaussian:d=4", "sparse:d=6,s=2", "binary:d=4")} == {"mse"}
