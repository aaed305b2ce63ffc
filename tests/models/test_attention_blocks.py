"""The inference path of causal attention: computed block by block (``causal_attention``), it
gives the numbers of the plain expression ``causal_weights(q k^T / c) @ v`` bit for bit, and so
does a softmax attention model evaluated without autograd."""

from __future__ import annotations

import logging

import pytest
import torch

from iclreg.models import build, causal
from iclreg.models.causal import causal_attention, causal_weights
from iclreg.resources import evaluation_bytes
from iclreg.tasks import build as build_task


def _qkv(n_q: int, n: int, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 5, 3, n_q, 4, generator=gen), torch.randn(2, 5, 3, n, 4, generator=gen),
            torch.randn(2, 5, 3, n, 2, generator=gen))


@pytest.mark.parametrize(("normalisation", "scale"), [("softmax", None), ("linear", None), ("linear", 6)])
@pytest.mark.parametrize("rows", [None, slice(6, 9), torch.tensor([0, 3, 8])])
def test_blocks_give_the_expression_bit_for_bit(monkeypatch, normalisation: str, scale: int | None,
                                                rows) -> None:
    n = 9
    n_q = n if rows is None else len(range(n)[rows]) if isinstance(rows, slice) else len(rows)
    q, k, v = _qkv(n_q, n)
    whole = causal_weights(q @ k.transpose(-1, -2) / 2.5, normalisation, rows, scale) @ v
    monkeypatch.setattr(causal, "BLOCK_BYTES", 7 * n_q * n * 4)  # blocks of 7 of the 30 matrices
    got = causal_attention(q, k, v, normalisation, 2.5, rows, scale)
    assert got.shape == (2, 5, 3, n_q, 2)
    assert torch.equal(got, whole)
    if rows is None:
        assert torch.equal(got[..., 0, :], torch.zeros(2, 5, 3, 2))  # no example: 0


def test_later_keys_never_reach_a_query() -> None:
    """Keys at j >= i (nan included) change nothing, as in ``causal_weights``."""
    q, k, v = _qkv(7, 7)
    spoiled = k.clone()
    spoiled[..., -1, :] = float("nan")
    for normalisation in ("softmax", "linear"):
        assert torch.equal(causal_attention(q, spoiled, v, normalisation, 2.0),
                           causal_attention(q, k, v, normalisation, 2.0))


def test_bad_arguments_are_refused() -> None:
    q, k, v = _qkv(3, 3)
    with pytest.raises(ValueError, match="softmax or linear"):
        causal_attention(q, k, v, "relu", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="linear weights"):
        causal_attention(q, k, v, "softmax", 1.0, scale=3)


def test_block_size() -> None:
    cpu, meta = torch.device("cpu"), torch.device("meta")
    assert causal.block_size(100, causal.BLOCK_BYTES // 10, cpu) == 10
    assert causal.block_size(100, 10 * causal.BLOCK_BYTES, cpu) == 1
    assert causal.block_size(3, 1, cpu) == 3
    assert causal.block_size(100, 10 * causal.BLOCK_BYTES, meta) == 100


@pytest.mark.parametrize("spec", ["heads=3", "heads=2,activation=linear",
                                  "heads=2,activation=linear,linear_scale=5", "heads=3,labels=2"])
def test_a_model_without_autograd_computes_alike(monkeypatch, spec: str) -> None:
    """Softmax attention evaluated under no_grad (the blocks) and with autograd (one batch)."""
    task = build_task("multitask:d=4,n=12,noise_std=0.2,subsets=[[0,1,2],[1,3]]" if "labels" in spec
                      else "gaussian:d=4,n=12,noise_std=0.2")
    model = build(f"softmax_attention:d=4,{spec}", torch.Generator().manual_seed(0))
    p = task.sample(10, seed=1, step=0)
    with_grad = model(p.x, p.y)
    assert with_grad.requires_grad
    monkeypatch.setattr(causal, "BLOCK_BYTES", 4 * 12 * 12 * 4)  # blocks of 4 (prompt, head) pairs
    with torch.no_grad():
        assert torch.equal(model(p.x, p.y), with_grad.detach())


def test_the_memory_dry_run_measures_it(caplog) -> None:
    """``resources.evaluation_bytes`` runs the model on meta tensors: every operation of the
    blocks has a meta kernel (no 'cannot measure' warning), and the weights are counted."""
    task = build_task("gaussian:d=4,n=12,noise_std=0.2")
    model = build("softmax_attention:d=4,heads=3", torch.Generator().manual_seed(0))
    with caplog.at_level(logging.WARNING):
        need = evaluation_bytes(task, {"model": model}, 8, 12, torch.float32)
    assert "cannot measure" not in caplog.text
    assert need >= 8 * 3 * 12 * 12 * 4
