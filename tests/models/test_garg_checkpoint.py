"""Tests of loading Garg et al.'s checkpoint layout (``state.pt``) into GPT2Regressor."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor

from iclreg.errors import UsageError
from iclreg.models.garg import load_garg_checkpoint

B, N = 3, 5


def hand_state(d: int, width: int, layers: int, max_n: int, seed: int) -> dict[str, Tensor]:
    """Random tensors under Garg et al.'s key names; GPT-2's Conv1D weights are (in, out)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, mean: float = 0.0) -> Tensor:
        return mean + 0.3 * torch.randn(shape, generator=gen)

    state = {
        "_read_in.weight": rand(width, d),
        "_read_in.bias": rand(width),
        "_backbone.wte.weight": rand(7, width),
        "_backbone.wpe.weight": rand(2 * max_n, width),
    }
    for l in range(layers):
        p = f"_backbone.h.{l}."
        state |= {
            p + "ln_1.weight": rand(width, mean=1.0),
            p + "ln_1.bias": rand(width),
            p + "attn.bias": torch.ones(1, 1, 2 * max_n, 2 * max_n).tril(),  # old mask buffers
            p + "attn.masked_bias": torch.tensor(-1e4),
            p + "attn.c_attn.weight": rand(width, 3 * width),
            p + "attn.c_attn.bias": rand(3 * width),
            p + "attn.c_proj.weight": rand(width, width),
            p + "attn.c_proj.bias": rand(width),
            p + "ln_2.weight": rand(width, mean=1.0),
            p + "ln_2.bias": rand(width),
            p + "mlp.c_fc.weight": rand(width, 4 * width),
            p + "mlp.c_fc.bias": rand(4 * width),
            p + "mlp.c_proj.weight": rand(4 * width, width),
            p + "mlp.c_proj.bias": rand(width),
        }
    state |= {
        "_backbone.ln_f.weight": rand(width, mean=1.0),
        "_backbone.ln_f.bias": rand(width),
        "_read_out.weight": rand(1, width),
        "_read_out.bias": rand(1),
    }
    return state


def reference_forward(state: dict[str, Tensor], heads: int, x: Tensor, y: Tensor) -> Tensor:
    """GPT-2 written out from the checkpoint's tensors (Radford et al. 2019): (B, n) predictions."""
    s = {k: v.to(x.dtype) for k, v in state.items()}
    (Bx, n, d), W = x.shape, s["_read_in.weight"].shape[0]
    T, hd = 2 * n, W // heads
    y_tokens = F.pad(y.unsqueeze(-1), (0, d - 1))  # (B, n, d): [y_i, 0, ..., 0]
    tokens = torch.stack([x, y_tokens], dim=2).reshape(Bx, T, d)  # x_1, y_1, x_2, ...
    h = tokens @ s["_read_in.weight"].T + s["_read_in.bias"] + s["_backbone.wpe.weight"][:T]

    def ln(u: Tensor, name: str) -> Tensor:
        return F.layer_norm(u, (W,), s[name + ".weight"], s[name + ".bias"], eps=1e-5)

    def gelu_new(u: Tensor) -> Tensor:
        return 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u**3)))

    causal = torch.ones(T, T, dtype=torch.bool).tril()
    layers = len({k.split(".")[2] for k in s if k.startswith("_backbone.h.")})
    for l in range(layers):
        p = f"_backbone.h.{l}."
        qkv = ln(h, p + "ln_1") @ s[p + "attn.c_attn.weight"] + s[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(Bx, T, heads, hd).transpose(1, 2) for t in qkv.split(W, dim=-1))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(~causal, -math.inf)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(Bx, T, W)
        h = h + a @ s[p + "attn.c_proj.weight"] + s[p + "attn.c_proj.bias"]
        m = gelu_new(ln(h, p + "ln_2") @ s[p + "mlp.c_fc.weight"] + s[p + "mlp.c_fc.bias"])
        h = h + m @ s[p + "mlp.c_proj.weight"] + s[p + "mlp.c_proj.bias"]
    h = ln(h, "_backbone.ln_f")[:, ::2]  # (B, n, W) at the x tokens
    return (h @ s["_read_out.weight"].T + s["_read_out.bias"]).squeeze(-1)


def save(tmp_path: Path, state: dict[str, Tensor], bare: bool = False) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "state.pt"
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]}
    obj = state if bare else {"model_state_dict": state, "optimizer_state_dict": optimizer, "train_step": 7}
    torch.save(obj, path)
    return path


def write_run_config(run_dir: Path, d: int, width: int, layers: int, heads: int, max_n: int) -> None:
    """``config.yaml`` as Garg et al.'s ``train.py`` writes it beside ``state.pt`` (``yaml.dump``
    of the resolved arguments; their ``eval.py`` reads it back with ``yaml.safe_load``)."""
    config = {
        "config": "conf/linear_regression.yaml",
        "inherit": ["conf/wandb.yaml"],
        "model": {"family": "gpt2", "n_dims": d, "n_embd": width, "n_head": heads, "n_layer": layers,
                  "n_positions": max_n},
        "out_dir": str(run_dir),
        "test_run": False,
        "training": {"batch_size": 64, "learning_rate": 0.0001, "task": "linear_regression",
                     "data": "gaussian", "task_kwargs": {}, "train_steps": 500001,
                     "curriculum": {"dims": {"start": 5, "end": d, "inc": 1, "interval": 2000},
                                    "points": {"start": 11, "end": max_n, "inc": 2, "interval": 2000}}},
        "wandb": {"entity": "in-context", "project": "in-context-training", "log_every_steps": 100},
    }
    (run_dir / "config.yaml").write_text(yaml.dump(config, default_flow_style=False))


def prompts(seed: int, d: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed + 11)
    return torch.randn(B, N, d, generator=gen, dtype=dtype), torch.randn(B, N, generator=gen, dtype=dtype)


@pytest.mark.parametrize("bare", [False, True])
def test_hand_written_checkpoint_matches_reference(tmp_path: Path, seed: int, bare: bool) -> None:
    state = hand_state(d=4, width=24, layers=2, max_n=6, seed=seed)
    model = load_garg_checkpoint(save(tmp_path, state, bare), heads=3)
    cfg = model.config
    assert (cfg.d, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.max_n) == (4, 2, 24, 3, 6)
    assert not model.training
    x, y = prompts(seed, d=4)
    with torch.no_grad():
        reference = reference_forward(state, 3, x, y)
        assert reference.abs().max() > 0.1
        err32 = (model(x.float(), y.float()).double() - reference).abs().max().item()
        err64 = (model.double()(x, y) - reference).abs().max().item()
    assert err32 < 1e-4 and err64 < 1e-10


def test_hugging_face_checkpoint(tmp_path: Path, seed: int) -> None:
    """A 4-head width-64 run of Garg et al.'s code (HF's GPT2Model in their wrapper, state.pt and
    config.yaml): the heads come from config.yaml, not from the width's preset (2)."""
    transformers = pytest.importorskip("transformers")
    d, width, layers, heads, max_n = 3, 64, 3, 4, 7
    config = transformers.GPT2Config(
        vocab_size=1,
        bos_token_id=None,
        eos_token_id=None,
        n_positions=2 * max_n,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        use_cache=False,
    )
    torch.manual_seed(seed)  # HF and nn.Linear draw their weights from the global generator
    backbone = transformers.GPT2Model(config).double().eval()
    read_in, read_out = torch.nn.Linear(d, width).double(), torch.nn.Linear(width, 1).double()
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.2 * torch.randn_like(p))  # biases and gains off 0 and 1, sharper attention
    state = {f"_read_in.{k}": v for k, v in read_in.state_dict().items()}
    state |= {f"_backbone.{k}": v for k, v in backbone.state_dict().items()}
    state |= {f"_read_out.{k}": v for k, v in read_out.state_dict().items()}
    path = save(tmp_path, state)
    write_run_config(tmp_path, d, width, layers, heads, max_n)
    model = load_garg_checkpoint(path).double()
    assert (model.config.n_layer, model.config.n_embd, model.config.n_head) == (3, 64, 4)
    x, y = prompts(seed, d)
    tokens = torch.stack([x, F.pad(y.unsqueeze(-1), (0, d - 1))], dim=2).reshape(B, 2 * N, d)
    with torch.no_grad():
        hidden = backbone(inputs_embeds=read_in(tokens)).last_hidden_state  # (B, 2n, width)
        reference = read_out(hidden[:, ::2]).squeeze(-1)  # (B, n)
        ours = model(x, y)
        two_heads = load_garg_checkpoint(save(tmp_path / "bare", state), heads=2).double()(x, y)
    assert (ours - reference).abs().max().item() < 1e-10
    assert (two_heads - reference).abs().max().item() > 1e-3  # what the width's preset would give


def test_heads_and_preset_inference(tmp_path: Path, seed: int) -> None:
    tiny = load_garg_checkpoint(save(tmp_path, hand_state(d=2, width=64, layers=3, max_n=4, seed=seed)))
    assert (tiny.config.preset, tiny.config.layers, tiny.config.n_head) == ("tiny", None, 2)
    path = save(tmp_path, hand_state(d=2, width=48, layers=1, max_n=4, seed=seed))
    with pytest.raises(UsageError, match="cannot tell the number of heads of a 1-layer width-48 model"):
        load_garg_checkpoint(path)
    assert load_garg_checkpoint(path, heads=6).config.n_head == 6
    with pytest.raises(UsageError, match="width 48 is not divisible by heads 5"):
        load_garg_checkpoint(path, heads=5)


def test_heads_from_config_yaml(tmp_path: Path, seed: int) -> None:
    """A 4-head model at the tiny preset's size (3 layers, width 64): config.yaml decides, not the preset."""
    state = hand_state(d=3, width=64, layers=3, max_n=6, seed=seed)
    path = save(tmp_path, state)
    write_run_config(tmp_path, d=3, width=64, layers=3, heads=4, max_n=6)
    model = load_garg_checkpoint(path).double()
    cfg = model.config
    assert (cfg.d, cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.max_n) == (3, 3, 64, 4, 6)
    x, y = prompts(seed, d=3)
    with torch.no_grad():
        reference = reference_forward(state, 4, x, y)
        assert (reference_forward(state, 2, x, y) - reference).abs().max() > 1e-2  # heads matter
        assert (model(x, y) - reference).abs().max().item() < 1e-10


def test_explicit_heads(tmp_path: Path, seed: int) -> None:
    state = hand_state(d=3, width=64, layers=2, max_n=6, seed=seed)
    x, y = prompts(seed, d=3)
    bare = save(tmp_path / "bare", state)  # no config.yaml
    with torch.no_grad():
        ours = load_garg_checkpoint(bare, heads=4).double()(x, y)
        assert (ours - reference_forward(state, 4, x, y)).abs().max().item() < 1e-10
    run = save(tmp_path / "run", state)
    write_run_config(tmp_path / "run", d=3, width=64, layers=2, heads=4, max_n=6)
    assert load_garg_checkpoint(run, heads=4).config.n_head == 4
    with pytest.raises(UsageError, match=r"heads=2 contradicts model\.n_head 4 in '.*config\.yaml'"):
        load_garg_checkpoint(run, heads=2)


def test_ambiguous_heads_are_refused(tmp_path: Path, seed: int) -> None:
    """Without heads= or config.yaml only Garg et al.'s own preset sizes are inferred."""
    state = hand_state(d=3, width=64, layers=2, max_n=6, seed=seed)
    path = save(tmp_path / "bare", state)
    with pytest.raises(UsageError) as info:
        load_garg_checkpoint(path)
    message = str(info.value)
    assert "\n" not in message and message.endswith(
        "cannot tell the number of heads of a 2-layer width-64 model: the weights do not fix it and "
        "there is no config.yaml beside the checkpoint; pass heads=...")
    run = tmp_path / "run"
    path = save(run, state)
    write_run_config(run, d=3, width=128, layers=2, heads=4, max_n=6)
    with pytest.raises(UsageError, match="gives n_embd 128 but the checkpoint has 64: it belongs to another"):
        load_garg_checkpoint(path)
    (run / "config.yaml").write_text("model: {family: gpt2, n_embd: 64, n_layer: 2}\n")
    with pytest.raises(UsageError, match=r"no positive integer model\.n_head \(got None\); fix it or pass"):
        load_garg_checkpoint(path)
    (run / "config.yaml").write_text("model: [unclosed\n")
    with pytest.raises(UsageError, match="cannot read the run config"):
        load_garg_checkpoint(path)
    (run / "config.yaml").write_text("task: gaussian\nmodel: gpt2:layers=2\n")  # not Garg et al.'s
    with pytest.raises(UsageError, match="has no 'model' section"):
        load_garg_checkpoint(path, heads=4)


def test_corrupted_checkpoints(tmp_path: Path, seed: int) -> None:
    state = hand_state(d=2, width=16, layers=2, max_n=4, seed=seed)
    missing = {k: v for k, v in state.items() if k != "_backbone.h.1.mlp.c_fc.bias"}
    with pytest.raises(UsageError, match=r"no key '_backbone\.h\.1\.mlp\.c_fc\.bias'"):
        load_garg_checkpoint(save(tmp_path, missing), heads=2)
    misshapen = state | {"_backbone.h.0.attn.c_proj.weight": torch.zeros(16, 17)}
    with pytest.raises(
        UsageError, match=r"'_backbone\.h\.0\.attn\.c_proj\.weight' has shape \(16, 17\), expected \(16, 16\)"
    ):
        load_garg_checkpoint(save(tmp_path, misshapen), heads=2)
    unexpected = state | {"_backbone.h.0.attn.extra": torch.zeros(1)}
    with pytest.raises(UsageError, match=r"unexpected key '_backbone\.h\.0\.attn\.extra'"):
        load_garg_checkpoint(save(tmp_path, unexpected), heads=2)
    gap = {k: v for k, v in state.items() if not k.startswith("_backbone.h.0.")}
    with pytest.raises(UsageError, match="numbered 0, 1"):
        load_garg_checkpoint(save(tmp_path, gap), heads=2)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="not a Garg et al. checkpoint"):
        load_garg_checkpoint(tmp_path / "other.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot read checkpoint"):
        load_garg_checkpoint(tmp_path / "garbage.pt")
    with pytest.raises(UsageError, match="does not exist"):
        load_garg_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("content", [
    b"task: gaussian:d=2,n=5\nmodel: gpt2:layers=1\n",  # a YAML file: torch.load raised IndexError
    b"",  # EOFError without a message
    b"PK\x03\x04" + bytes(60),  # a broken zip archive
    bytes(range(256)),
])
def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path: Path, content: bytes) -> None:
    """Whatever torch.load raises on bytes that are no checkpoint becomes one UsageError line."""
    path = tmp_path / "state.pt"
    path.write_bytes(content)
    message = r"cannot read checkpoint '.*state\.pt': torch\.load failed \(\w+: "
    with pytest.raises(UsageError, match=message) as err:
        load_garg_checkpoint(path)
    assert "\n" not in str(err.value)
