"""The chain-of-thought transformer (``cot``) against independent computations: a slow loop over
full-width tokens and attention, explicit GD loops, and a real (short) training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclreg.errors import UsageError
from iclreg.models import MODELS
from iclreg.models.cot import emit, gd_chain
from iclreg.train.config import resolve
from iclreg.train.fused.cot import gd_path
from iclreg.train.plan import train_plan

F64 = torch.float64


def _model(d=3, lr=0.2, steps=4, seed=0):
    config = MODELS.build(f"cot:d={d},lr={lr},steps={steps}")
    return config.build(torch.Generator().manual_seed(seed)).double()


def _slow_emit(model, x, y, w):
    """One thought by the layer's definition, one prompt at a time: full tokens of width 2d + 2,
    the thought attending to the m context tokens, residual, the w slot read back."""
    d = x.shape[-1]
    W_qk, W_ov = model.W_qk.detach().numpy(), model.W_ov.detach().numpy()
    out = []
    for xb, yb, wb in zip(x.numpy(), y.numpy(), w.numpy(), strict=True):
        ctx = np.zeros((len(xb), 2 * d + 2))
        ctx[:, :d], ctx[:, d] = xb, yb
        u = np.zeros(2 * d + 2)
        u[d + 1: 2 * d + 1], u[-1] = wb, 1.0
        attended = sum((u @ W_qk @ z) * (z @ W_ov) for z in ctx) / len(xb)
        out.append((u + attended)[d + 1: 2 * d + 1])
    return np.array(out)


def _gd_construction(model, c=0.7):
    """W_qk[thought, context] = -c diag(I, -1), W_ov[context, w] = (lr / c) [I; 0]."""
    d, lr = model.config.d, model.config.lr
    with torch.no_grad():
        model.W_qk.zero_()
        model.W_ov.zero_()
        model.W_qk[d + 1:, : d + 1] = -c * torch.diag(torch.cat([torch.ones(d), -torch.ones(1)])).double()
        model.W_ov[: d, d + 1: 2 * d + 1] = (lr / c) * torch.eye(d).double()


def test_emitted_thought_is_the_layer_on_full_tokens():
    model = _model(seed=3)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 6, 3, generator=gen, dtype=F64), torch.randn(5, 6, generator=gen, dtype=F64)
    w = torch.randn(5, 3, generator=gen, dtype=F64)
    fast = emit(w, model.thought_map(x, y))
    assert np.allclose(fast.numpy(), _slow_emit(model, x, y, w), atol=1e-12)
    p, b = model.affine(x, y)
    assert torch.allclose((p @ w.unsqueeze(-1)).squeeze(-1) + b, fast, atol=1e-12)


def test_gd_weights_emit_gd_and_predict_like_gd_on_every_prefix():
    model = _model(d=3, lr=0.3, steps=5)
    _gd_construction(model)
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(4, 7, 3, generator=gen, dtype=F64), torch.randn(4, 7, generator=gen, dtype=F64)
    params = {k: v.unsqueeze(0) for k, v in model.named_parameters()}
    loss = model.stacked_chain_loss(model.config, params, x[None], y[None])
    assert loss.item() < 1e-28
    pred = model(x, y)
    for b in range(4):
        for i in range(7):
            w = np.zeros(3)
            for _ in range(5):  # mean-gradient GD over the i pairs before position i
                if i:
                    xi, yi = x[b, :i].numpy(), y[b, :i].numpy()
                    w = w - 0.3 / i * xi.T @ (xi @ w - yi)
            assert pred[b, i].item() == pytest.approx(w @ x[b, i].numpy(), abs=1e-12)
    assert torch.allclose(model.predict_last(x, y), pred[:, -1], atol=1e-12)


def test_gd_chain_is_an_explicit_loop():
    gen = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 3, generator=gen, dtype=F64), torch.randn(6, generator=gen, dtype=F64)
    w, path = np.zeros(3), [np.zeros(3)]
    for _ in range(4):
        w = w - 0.2 * x.numpy().T @ (x.numpy() @ w - y.numpy()) / 6
        path.append(w)
    assert np.allclose(gd_chain(x, y, 0.2, 4).numpy(), np.array(path), atol=1e-14)


def test_fused_gd_path_from_the_moments_is_the_explicit_loop():
    """The fused step's GD path (read off the moments C, prompts innermost) against the same
    explicit loop, for several prompts at once."""
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 7, 3, generator=gen, dtype=F64), torch.randn(4, 7, generator=gen, dtype=F64)
    z = torch.cat([x, y.unsqueeze(-1)], -1)
    got = gd_path(z.transpose(1, 2) @ z, 7, 0.25, 5)
    for b in range(4):
        xb, yb = x[b].numpy(), y[b].numpy()
        w, path = np.zeros(3), [np.zeros(3)]
        for _ in range(5):
            w = w - 0.25 * xb.T @ (xb @ w - yb) / 7
            path.append(w)
        assert np.allclose(got[b].numpy(), np.array(path), atol=1e-14)


def _config(model="cot:d=3,lr=0.3,steps=4", loss="chain", steps=600):
    return resolve({"task": "gaussian:d=3,n=8,noise_std=0.1", "model": model,
                    "optimizer": {"name": "adam", "lr": 0.01, "clip": 1.0}, "schedule": {"name": "cosine"},
                    "train": {"steps": steps, "batch": 256, "loss": loss}, "eval": {"samples": 64},
                    "run": {"log_every": 50, "checkpoint_every": 1000}})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_plan({"cot": _config()}, tmp_path_factory.mktemp("runs"))["cot"]


def test_teacher_forced_training_learns_to_emit_gd_beyond_its_length(trained):
    from iclreg.testtime import DECODERS, NOISES, GDDecoder, decode_path
    from iclreg.train.run import read_run_config

    assert read_run_config(trained).train.loss == "chain"
    decoder = DECODERS.build(f"cot:run={trained}")
    assert decoder.lr == pytest.approx(0.3 / 8) and decoder.d == 3
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(64, 8, 3, generator=gen, dtype=F64), torch.randn(64, 8, generator=gen, dtype=F64)
    path = decode_path(x, y, decoder, NOISES.build("greedy"), 12, 1)[0]  # 3x its chain
    exact = decode_path(x, y, GDDecoder(lr=0.3, mean=True), NOISES.build("greedy"), 12, 1)[0]
    rel = (path[:, 1:] - exact[:, 1:]).norm(dim=-1) / exact[:, 1:].norm(dim=-1)
    assert rel.max().item() < 1e-3


@pytest.mark.parametrize(("model", "loss", "message"), [
    ("cot:d=3", "all", "train.loss=chain is for chain-of-thought models"),
    ("linear_attention:d=3", "chain", "train.loss=chain is for chain-of-thought models"),
    ("cot:d=3,steps=0", "chain", "steps must be at least 1"),
])
def test_bad_configs_are_refused(model, loss, message):
    with pytest.raises(UsageError, match=message):
        _config(model, loss)
