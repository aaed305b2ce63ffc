"""Initial weights come from an explicit generator: build_model leaves the global RNG alone,
a seed fixes the weights, and the values are the generator's stream under the documented
distributions (the theory models' formulas; PyTorch's own defaults for Linear/LSTM/...)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from iclreg.models import MODELS
from iclreg.models.init import default_init_, uninitialised
from iclreg.models.lstm import LSTMConfig
from iclreg.train.config import resolve
from iclreg.train.run import build_model

# One small (task, model) per registered model: a new model must be added here.
TINY = {
    "cot": ("gaussian:d=3,n=6", "cot:init_scale=0.3"),
    "gpt2": ("gaussian:d=3,n=6", "gpt2:preset=tiny,layers=2,width=16,heads=2,max_n=6"),
    "linear_attention": ("gaussian:d=3,n=6", "linear_attention:layers=2,init_scale=0.3"),
    "lstm": ("gaussian:d=3,n=6", "lstm:hidden=8,layers=2"),
    "reduced_attention": ("gaussian:d=3,n=6", "reduced_attention:init_scale=0.7"),
    "softmax_attention": ("gaussian:d=3,n=6", "softmax_attention:heads=2"),
}


def weights(name: str, seed: int) -> dict[str, torch.Tensor]:
    task, model = TINY[name]
    loss = "chain" if MODELS.build(model).chain else "all"
    config = resolve({"task": task, "model": model, "train": {"seed": seed, "loss": loss}})
    return {k: v.detach() for k, v in build_model(config).state_dict().items()}


def test_every_model_is_covered() -> None:
    assert set(TINY) == set(MODELS.names())


@pytest.mark.parametrize("name", sorted(TINY))
def test_build_model_leaves_the_global_rng_alone(name: str) -> None:
    torch.manual_seed(123)
    expected = torch.rand(4)  # what the global generator gives next without a build
    torch.manual_seed(123)
    weights(name, seed=5)
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_seed_fixes_the_weights(name: str) -> None:
    a, b, c = weights(name, 7), weights(name, 7), weights(name, 8)
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # every randomly initialised tensor changes with the seed (LayerNorms, zero biases and
    # the constant b of reduced attention do not depend on it)
    random = [k for k in a if a[k].unique().numel() > 1]
    assert random
    assert all(not torch.equal(a[k], c[k]) for k in random)


def stream(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_linear_attention_weights_are_the_generator_stream() -> None:
    w = weights("linear_attention", 11)  # layers=2, d=3, init_scale=0.3
    g = stream(11)
    kq = 0.3 * torch.randn(2, 4, 4, generator=g)
    pv = 0.3 * torch.randn(2, 4, 4, generator=g)
    assert torch.equal(w["W_kq"], kq) and torch.equal(w["W_pv"], pv)


def test_cot_weights_are_the_generator_stream() -> None:
    w = weights("cot", 17)  # d=3: width 2d + 2 = 8, init_scale=0.3
    g = stream(17)
    qk = 0.3 * torch.randn(8, 8, generator=g)
    ov = 0.3 * torch.randn(8, 8, generator=g)
    assert torch.equal(w["W_qk"], qk) and torch.equal(w["W_ov"], ov)


def test_softmax_attention_weights_are_the_generator_stream() -> None:
    w = weights("softmax_attention", 12)  # heads=2, d=3, one label slot: p = 4
    g = stream(12)
    bound, bound_o = 1 / math.sqrt(4), 1 / math.sqrt(2 * 4)
    qkv = [torch.empty(2, 4, 4).uniform_(-bound, bound, generator=g) for _ in range(3)]
    o = torch.empty(1, 2, 4).uniform_(-bound_o, bound_o, generator=g)
    for key, value in zip("QKVO", [*qkv, o], strict=True):
        assert torch.equal(w[key], value), key
    assert w["Q"].abs().max() <= bound and w["O"].abs().max() <= bound_o


def test_small_identity_keeps_the_default_draws_of_O() -> None:
    config = MODELS.build("softmax_attention:d=3,heads=2,init=oppo_small_id,init_scale=0.2")
    model = config.build(stream(13))
    default = MODELS.build("softmax_attention:d=3,heads=2").build(stream(13))
    eye = 0.2 * torch.eye(4)
    assert torch.equal(model.Q[0], eye) and torch.equal(model.Q[1], -eye)
    assert torch.equal(model.K, eye.repeat(2, 1, 1))
    assert torch.equal(model.V, default.V) and torch.equal(model.O, default.O)


def test_reduced_attention_weights_are_the_generator_stream() -> None:
    w = weights("reduced_attention", 14)  # d=3, init_scale=0.7
    A = torch.randn(3, 3, generator=stream(14)) * 0.7 / math.sqrt(3)
    assert torch.equal(w["A"], A)
    assert torch.equal(w["b"], torch.tensor([0.7]))


def test_lstm_weights_are_pytorch_defaults_from_the_seed() -> None:
    """The LSTM model equals the plain PyTorch modules built after torch.manual_seed(seed)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(15)
        reference = [nn.Linear(3, 8), nn.LSTM(8, 8, 2, batch_first=True), nn.Linear(8, 1)]
    expected = [p.detach() for m in reference for p in m.parameters()]
    model = LSTMConfig(d=3, hidden=8, layers=2).build(stream(15))
    got = [p.detach() for p in model.parameters()]
    assert len(got) == len(expected)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(5, 3)
        self.emb = nn.Embedding(6, 3, padding_idx=2)
        self.ln = nn.LayerNorm(3)
        self.gru = nn.GRU(3, 4)
        self.b = nn.Linear(4, 2, bias=False)


def test_default_init_replays_pytorch_construction() -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(16)
        reference = _Mixed()
    before = torch.get_rng_state()

    class Replayed(_Mixed):
        def __init__(self) -> None:
            with uninitialised(self):
                super().__init__()

    model = Replayed()
    default_init_(model, stream(16))
    assert torch.equal(torch.get_rng_state(), before)  # construction and init drew nothing global
    ref, got = reference.state_dict(), model.state_dict()
    assert ref.keys() == got.keys()
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_default_init_refuses_unknown_parameters() -> None:
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

    with pytest.raises(TypeError, match="Odd"):
        default_init_(Odd(), stream(0))


def test_models_build_on_the_meta_device_without_memory() -> None:
    """The preflight builds models under ``torch.device("meta")``: they must stay there."""
    for name, (_, spec) in TINY.items():
        with torch.device("meta"):
            model = MODELS.build(spec.replace(f"{name}:", f"{name}:d=3,", 1)).build()
        assert all(p.is_meta for p in model.parameters()), name
