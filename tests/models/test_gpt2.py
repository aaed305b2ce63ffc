"""Tests of the GPT-2 regressor: parity with Hugging Face, hooks, prefix contract, training."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch

import iclreg.tasks as tasks
from iclreg.errors import UsageError
from iclreg.models.base import MODELS
from iclreg.models.gpt2 import GPT2Config, GPT2Regressor
from iclreg.models.hooks import hook_points
from iclreg.models.layouts import interleave

D, N, B = 3, 6, 4


def tiny_model(seed: int, dtype: torch.dtype = torch.float32, **overrides: object) -> GPT2Regressor:
    """A tiny model whose every weight, bias and LayerNorm gain is random and O(0.1-1)."""
    kwargs = {"d": D, "layers": 2, "width": 16, "heads": 2, "max_n": 8} | overrides
    gen = torch.Generator().manual_seed(seed)
    model = GPT2Regressor(GPT2Config(**kwargs), generator=gen)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))  # biases and gains off 0 and 1
            if "c_attn" in name:
                p.mul_(3.0)  # sharp attention patterns, not near-uniform ones
    return model.to(dtype).eval()


def prompts(seed: int, dtype: torch.dtype = torch.float32, n: int = N) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(B, n, D, generator=gen, dtype=dtype)
    return x, torch.randn(B, n, generator=gen, dtype=dtype)


def hf_backbone(model: GPT2Regressor):
    """Hugging Face's GPT2Model holding ``model``'s backbone weights."""
    transformers = pytest.importorskip("transformers")
    cfg = model.config
    hf_config = transformers.GPT2Config(
        vocab_size=1,
        bos_token_id=None,
        eos_token_id=None,
        n_positions=2 * cfg.max_n,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
        attn_implementation="eager",
    )
    hf = transformers.GPT2Model(hf_config).to(next(model.parameters()).dtype).eval()
    conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")  # HF's Conv1D stores (in, out)
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(("read_in.", "read_out.")):
            continue
        hf_key = "h." + key.removeprefix("blocks.") if key.startswith("blocks.") else key
        state[hf_key] = value.t() if key.endswith(conv1d) else value
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert missing == ["wte.weight"] and not unexpected
    return hf


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_parity_with_hugging_face(seed: int, dtype: torch.dtype, tol: float) -> None:
    model = tiny_model(seed, dtype)
    hf = hf_backbone(model)
    x, y = prompts(seed, dtype)
    with torch.no_grad():
        hidden = hf(inputs_embeds=model.read_in(interleave(x, y))).last_hidden_state  # (B, 2n, W)
        reference = model.read_out(hidden[:, ::2]).squeeze(-1)  # (B, n)
        ours = model(x, y)
    assert ours.dtype == dtype and ours.shape == (B, N)
    assert reference.abs().max() > 0.1  # a non-degenerate comparison
    assert (ours - reference).abs().max().item() < tol


def test_cache_equals_forward(seed: int) -> None:
    model = tiny_model(seed, torch.float64)
    x, y = prompts(seed, torch.float64)
    with torch.no_grad():
        pred, cache = model.run_with_cache(x, y)
        plain = model(x, y)
    L, H, T = model.config.n_layer, model.config.n_head, 2 * N
    assert len(cache) == 1 + 4 * L
    torch.testing.assert_close(pred, plain, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        model.read(cache[f"blocks.{L - 1}.hook_resid_post"]), plain, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(cache["blocks.0.hook_resid_pre"], cache["hook_embed"], rtol=0, atol=0)
    for l in range(L):
        pattern = cache[f"blocks.{l}.attn.hook_pattern"]
        assert pattern.shape == (B, H, T, T)
        torch.testing.assert_close(pattern.sum(-1), torch.ones(B, H, T, dtype=torch.float64))
        assert pattern.triu(1).abs().max().item() == 0.0
        assert pattern.max().item() > 0.9  # the sharpened weights give peaked rows
    assert not any(h.active for h in hook_points(model).values())  # the hooks are removed


def test_cache_subset_and_unknown_name(seed: int) -> None:
    model = tiny_model(seed)
    x, y = prompts(seed)
    _, cache = model.run_with_cache(x, y, names=["blocks.1.hook_resid_mid"])
    assert list(cache) == ["blocks.1.hook_resid_mid"] and cache["blocks.1.hook_resid_mid"].shape == (
        B,
        2 * N,
        16,
    )
    with pytest.raises(UsageError, match=r"unknown hook point 'blocks\.9\.hook_resid_post'.*hook_embed"):
        model.run_with_cache(x, y, names=["blocks.9.hook_resid_post"])


def test_stop_at_layer(seed: int) -> None:
    model = tiny_model(seed, torch.float64, layers=3)
    x, y = prompts(seed, torch.float64)
    with torch.no_grad():
        _, cache = model.run_with_cache(x, y)
        assert torch.equal(model.residual(x, y, stop_at_layer=0), cache["hook_embed"])
        for l in range(1, 4):
            torch.testing.assert_close(
                model.residual(x, y, stop_at_layer=l),
                cache[f"blocks.{l - 1}.hook_resid_post"],
                rtol=0,
                atol=1e-12,
            )
        calls = []
        handle = model.blocks[2].register_forward_hook(lambda *_: calls.append(1))
        model.residual(x, y, stop_at_layer=2)
        handle.remove()
    assert calls == []  # later blocks are not computed
    with pytest.raises(UsageError, match="stop_at_layer must lie in 0..3"):
        model.residual(x, y, stop_at_layer=4)


def test_prefix_contract(seed: int) -> None:
    """out[:, i] depends only on x[:, :i+1] and y[:, :i]."""
    model = tiny_model(seed, torch.float64)
    x, y = prompts(seed, torch.float64)
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        out = model(x, y)
        for i in range(N):
            x2, y2 = x.clone(), y.clone()
            x2[:, i + 1 :] = torch.randn(x2[:, i + 1 :].shape, generator=gen, dtype=torch.float64)
            y2[:, i:] = torch.randn(y2[:, i:].shape, generator=gen, dtype=torch.float64)
            out2 = model(x2, y2)
            torch.testing.assert_close(out2[:, : i + 1], out[:, : i + 1], rtol=0, atol=1e-12)
            if i + 1 < N:
                assert (out2[:, i + 1 :] - out[:, i + 1 :]).abs().max() > 1e-3


def test_layer_predictions(seed: int) -> None:
    model = tiny_model(seed, torch.float64)
    x, y = prompts(seed, torch.float64)
    with torch.no_grad():
        preds = model.layer_predictions(x, y)
        assert preds.shape == (model.config.n_layer + 1, B, N)
        torch.testing.assert_close(preds[-1], model(x, y), rtol=0, atol=1e-12)
        raw = model.read_out(model.residual(x, y, 1)[:, ::2]).squeeze(-1)  # no ln_f below the top
        torch.testing.assert_close(preds[1], raw, rtol=0, atol=1e-12)
        every = model.layer_predictions(x, y, ln_f="every")
        torch.testing.assert_close(every[1], model.read(model.residual(x, y, 1)), rtol=0, atol=1e-12)
        torch.testing.assert_close(every[-1], model(x, y), rtol=0, atol=1e-12)
        none = model.layer_predictions(x, y, ln_f="none")
        torch.testing.assert_close(none[:-1], preds[:-1], rtol=0, atol=0)
        top = model.read_out(model.residual(x, y)[:, ::2]).squeeze(-1)
        torch.testing.assert_close(none[-1], top, rtol=0, atol=1e-12)
    with pytest.raises(UsageError, match="ln_f must be one of last, every, none, got 'all'"):
        model.layer_predictions(x, y, ln_f="all")


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_per_layer_read_out_is_fu_et_al_hidden_states(seed: int, dtype: torch.dtype, tol: float) -> None:
    """Fu et al. read Hugging Face's ``hidden_states[i]``: the raw residual for i < n_layer, and
    ``ln_f`` of it only at the last layer (HF normalises the last entry only)."""
    model = tiny_model(seed, dtype, layers=3)
    hf = hf_backbone(model)
    x, y = prompts(seed, dtype)
    with torch.no_grad():
        embeds = model.read_in(interleave(x, y))  # (B, 2n, W)
        reference = hf(inputs_embeds=embeds, output_hidden_states=True).hidden_states  # 4 x (B, 2n, W)
        assert len(reference) == 4
        fu = torch.stack([model.read_out(h[:, ::2]).squeeze(-1) for h in reference])  # (4, B, n)
        torch.testing.assert_close(model.hidden_states(x, y), torch.stack(reference), rtol=0, atol=tol)
        ours = model.layer_predictions(x, y)
        every = model.layer_predictions(x, y, ln_f="every")
        normalised = torch.stack([model.read_out(hf.ln_f(h[:, ::2])).squeeze(-1) for h in reference[:-1]])
    assert ours.shape == (4, B, N) and (ours - fu).abs().max().item() < tol
    assert (fu[1:3] - normalised[1:3]).abs().amax((1, 2)).min() > 0.1  # the conventions differ
    assert (every[:-1] - normalised).abs().max().item() < tol and (every[-1] - fu[-1]).abs().max() < tol


def test_config_presets_and_validation() -> None:
    configs = {p: GPT2Config(preset=p) for p in ("tiny", "small", "standard")}
    sizes = {p: (c.n_layer, c.n_embd, c.n_head) for p, c in configs.items()}
    assert sizes == {"tiny": (3, 64, 2), "small": (6, 128, 4), "standard": (12, 256, 8)}
    config = MODELS.build("gpt2:d=3,preset=tiny,layers=4,max_n=8")
    assert (config.n_layer, config.n_embd, config.n_head) == (4, 64, 2)
    model = config.build(torch.Generator().manual_seed(0))
    assert model.wpe.weight.shape == (16, 64) and len(model.blocks) == 4
    with pytest.raises(UsageError, match="width 65 is not divisible by heads 2"):
        MODELS.build("gpt2:preset=tiny,width=65")
    with pytest.raises(UsageError, match="preset"):
        MODELS.build("gpt2:preset=huge")
    with pytest.raises(UsageError, match="layers must be at least 1"):
        GPT2Config(layers=0)


def test_bad_inputs(seed: int) -> None:
    model = tiny_model(seed)
    x, y = prompts(seed, n=9)
    with pytest.raises(UsageError, match="n=9 pairs .* max_n=8"):
        model(x, y)
    with pytest.raises(UsageError, match=f"takes prompts of d={D} but x has d=2"):  # models/base.py
        model(x[..., :2], y)


def test_gelu_new_is_gpt2s_tanh_gelu() -> None:
    """The MLP's activation (u sigmoid(2z) on the CPU) is GPT-2's gelu_new, values and gradients."""
    act = GPT2Regressor(GPT2Config(d=D, layers=1, width=4, heads=1, max_n=2)).blocks[0].mlp.act
    u = torch.cat([torch.linspace(-12, 12, 2001, dtype=torch.float64), torch.tensor([-1e4, 0.0, 1e4])])

    def gelu_new(v: torch.Tensor) -> torch.Tensor:  # Hugging Face's NewGELUActivation
        return 0.5 * v * (1 + torch.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))

    for dtype, tol in ((torch.float64, 1e-14), (torch.float32, 1e-6)):
        a, b = u.to(dtype).requires_grad_(), u.to(dtype).requires_grad_()
        ours, theirs = act(a), torch.nn.functional.gelu(b, approximate="tanh")
        torch.testing.assert_close(ours, theirs, rtol=0, atol=tol)
        torch.testing.assert_close(ours, gelu_new(u.to(dtype)), rtol=0, atol=tol)
        g = torch.randn(u.shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
        (ga,), (gb,) = torch.autograd.grad(ours, a, g), torch.autograd.grad(theirs, b, g)
        torch.testing.assert_close(ga, gb, rtol=0, atol=10 * tol)
    assert torch.autograd.gradcheck(act, torch.randn(40, dtype=torch.float64, requires_grad=True))


def test_init_is_deterministic_and_gpt2_scaled() -> None:
    config = GPT2Config(d=D, preset="tiny", max_n=8)
    a = GPT2Regressor(config, generator=torch.Generator().manual_seed(3))
    b = GPT2Regressor(config, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert abs(a.blocks[0].mlp.c_fc.weight.std().item() - 0.02) < 0.002
    assert abs(a.blocks[0].mlp.c_proj.weight.std().item() - 0.02 / 6**0.5) < 0.001


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(seed: int) -> None:
    model = tiny_model(seed, torch.float64)
    x, y = prompts(seed, torch.float64)
    with torch.no_grad():
        cpu = model(x, y)
        gpu = model.to("cuda")(x.to("cuda"), y.to("cuda"))
        _, cache = model.run_with_cache(x.to("cuda"), y.to("cuda"))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-10)
    assert cache["blocks.0.attn.hook_pattern"].device.type == "cuda"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run on one CPU thread: a tiny model gains nothing from more, and loses much on a busy host."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_training_smoke(seed: int, one_thread: None) -> None:
    """A few Adam steps on the tiny preset take the error well below the zero predictor's.

    With w ~ N(1, I) the zero predictor's error is E[y^2] = 2d and the best prediction that
    ignores the context, <1, x_q>, has error d (ratio 0.5), which the model reaches in ~40
    steps. (With w_mean = 0 the tiny GPT-2 sits on its well-known plateau at the zero
    predictor's error for hundreds of steps, so in-context learning proper is not tested here.)
    """
    task = tasks.build("gaussian:d=3,n=8,w_mean=1")
    config = GPT2Config(d=3, preset="tiny", max_n=8)
    model = GPT2Regressor(config, generator=torch.Generator().manual_seed(seed))
    test = task.sample(2048, seed=seed + 1, step=0)
    zero = test.y.pow(2).mean().item()
    with torch.no_grad():
        before = (model(test.x, test.y) - test.y).pow(2).mean().item()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(50):
        batch = task.sample(32, seed=seed, step=step)
        loss = (model(batch.x, batch.y) - batch.y).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = (model(test.x, test.y) - test.y).pow(2).mean().item()
    assert 5.5 < zero < 6.5
    assert before > 0.8 * zero
    assert after < 0.6 * zero
