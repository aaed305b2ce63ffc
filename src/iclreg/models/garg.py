"""Load a checkpoint of Garg et al.'s reference code into :class:`GPT2Regressor`.

Garg et al. (arXiv 2208.01066; code github.com/dtsip/in-context-learning, reused by Fu et al.,
arXiv 2310.17086) save ``state.pt``: a dict with ``model_state_dict`` (plus
``optimizer_state_dict`` and ``train_step``) of a model made of ``_read_in`` (nn.Linear d ->
width), ``_backbone`` (Hugging Face's ``GPT2Model``, Radford et al. 2019) and ``_read_out``
(nn.Linear width -> 1). Our modules carry the same names without the prefixes; the GPT-2
``Conv1D`` layers store their weights as (in, out), so those are transposed. The token table
``_backbone.wte`` is unused (inputs come through ``inputs_embeds``) and some transformers
versions save the causal-mask buffers ``attn.bias`` and ``attn.masked_bias``: both are ignored.

The weights fix d, the width, the layers and the positions but not the number of heads. Their
``train.py`` writes the run's configuration to ``config.yaml`` beside ``state.pt`` (read back
by their ``eval.py`` with ``yaml.safe_load``); its ``model`` section holds ``family``,
``n_dims``, ``n_embd``, ``n_layer``, ``n_head`` and ``n_positions`` (``n_positions`` pairs,
so ``_backbone.wpe`` has 2 n_positions rows). The heads come from there, from the ``heads``
argument, or, for exactly one of their preset sizes (layers, width) = (3, 64), (6, 128),
(12, 256) (``conf/models/{tiny,small,standard}.yaml``), from the preset; otherwise the loader
refuses to guess.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from ..errors import UsageError, check
from .gpt2 import PRESETS, GPT2Config, GPT2Regressor

# Garg et al.'s presets fix the heads for their (layers, width); the weights cannot tell them.
HEADS_BY_SIZE: dict[tuple[int, int], int] = {(l, w): h for l, w, h in PRESETS.values()}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_IGNORED = re.compile(r"_backbone\.wte\.weight|_backbone\.h\.\d+\.attn\.(bias|masked_bias)")
_LAYER = re.compile(r"_backbone\.h\.(\d+)\.")


def garg_key(key: str) -> str:
    """The name in Garg et al.'s state dict of our parameter ``key``."""
    if key.startswith("blocks."):
        return "_backbone.h." + key.removeprefix("blocks.")
    if key.startswith(("read_in.", "read_out.")):
        return "_" + key
    return "_backbone." + key  # wpe.*, ln_f.*


def load_garg_checkpoint(
    path: str | Path, heads: int | None = None, device: torch.device | str = "cpu"
) -> GPT2Regressor:
    """Build a :class:`GPT2Regressor` from a Garg et al. checkpoint.

    Args:
        path: ``state.pt`` (a dict holding ``model_state_dict``) or a bare state dict file
            (``model_{step}.pt``), in a run directory of Garg et al.'s code or alone.
        heads: the number of attention heads. By default ``model.n_head`` of the run's
            ``config.yaml`` beside ``path``; without one, Garg et al.'s preset for the
            checkpoint's (layers, width) when it is one of theirs (3/64 -> 2, 6/128 -> 4,
            12/256 -> 8).
        device: where the model's weights go.

    Returns:
        The model in eval mode, in the checkpoint's dtype; d, width, layers and max_n are read
        from the weight shapes (and checked against ``config.yaml`` when there is one).

    Raises:
        UsageError: for a missing or unreadable file, a missing, unexpected or misshapen key,
            a ``config.yaml`` that is malformed or describes another model, ``heads`` that
            contradicts it, or heads that cannot be told (no ``heads``, no ``config.yaml``, and
            not one of Garg et al.'s preset sizes).
    """
    path = Path(path)
    state = _read_state_dict(path)
    config = _infer_config(state, heads, path)
    model = GPT2Regressor(config, generator=torch.Generator().manual_seed(0))  # overwritten
    model = model.to(state["_read_in.weight"].dtype)  # keep the checkpoint's precision
    ours = model.state_dict()
    expected = {garg_key(key) for key in ours}
    for key in state:
        check(
            key in expected or _IGNORED.fullmatch(key) is not None,
            f"{path}: unexpected key '{key}' in the checkpoint for a {config.n_layer}-layer model",
        )
    converted: dict[str, Tensor] = {}
    for key, target in ours.items():
        source, conv1d = garg_key(key), key.endswith(CONV1D)
        check(source in state, f"{path}: the checkpoint has no key '{source}'")
        shape = tuple(target.shape[::-1] if conv1d else target.shape)  # Conv1D stores (in, out)
        check(
            tuple(state[source].shape) == shape,
            f"{path}: key '{source}' has shape {tuple(state[source].shape)}, expected {shape}",
        )
        value = state[source].t() if conv1d else state[source]
        converted[key] = value.to(target.dtype)
    model.load_state_dict(converted)
    return model.to(device).eval()


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    check(path.is_file(), f"checkpoint '{path}' does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (bytes that are no checkpoint raise nearly anything: IndexError, ...)
        first = str(err).splitlines()[0][:120] if str(err).strip() else "no message"
        raise UsageError(f"cannot read checkpoint '{path}': torch.load failed "
                         f"({type(err).__name__}: {first})") from None
    if isinstance(obj, dict) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    check(
        isinstance(obj, dict) and "_read_in.weight" in obj,
        f"'{path}' is not a Garg et al. checkpoint: expected 'model_state_dict' or a state dict "
        "with '_read_in.weight'",
    )
    for key, value in obj.items():
        check(isinstance(value, Tensor), f"{path}: key '{key}' holds a {type(value).__name__}, not a tensor")
    return obj


def _infer_config(state: dict[str, Tensor], heads: int | None, path: Path) -> GPT2Config:
    check("_backbone.wpe.weight" in state, f"{path}: the checkpoint has no key '_backbone.wpe.weight'")
    for key in ("_read_in.weight", "_backbone.wpe.weight"):
        check(
            state[key].ndim == 2 and state[key].is_floating_point(),
            f"{path}: key '{key}' must be a floating-point matrix, got {tuple(state[key].shape)} "
            f"{state[key].dtype}",
        )
    width, d = state["_read_in.weight"].shape  # nn.Linear: (out, in)
    positions = state["_backbone.wpe.weight"].shape[0]
    check(positions % 2 == 0, f"{path}: '_backbone.wpe.weight' has {positions} rows, expected 2 max_n")
    indices = sorted({int(m.group(1)) for key in state if (m := _LAYER.match(key))})
    check(
        bool(indices) and indices == list(range(len(indices))),
        f"{path}: the blocks '_backbone.h.{{l}}' must be numbered 0, 1, ...; found {indices}",
    )
    layers = len(indices)
    heads = _heads(path, heads, _read_run_config(path.parent / "config.yaml"),
                   {"n_dims": d, "n_embd": width, "n_layer": layers, "n_positions": positions // 2})
    sizes = (layers, width, heads)
    preset = next((name for name, p in PRESETS.items() if p == sizes), None)
    if preset is not None:
        return GPT2Config(d=d, preset=preset, max_n=positions // 2)
    return GPT2Config(d=d, layers=layers, width=width, heads=heads, max_n=positions // 2)


def _read_run_config(path: Path) -> dict[str, Any] | None:
    """The ``model`` section of Garg et al.'s ``config.yaml`` (None when there is no file)."""
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UsageError(f"cannot read the run config '{path}': {first}") from None
    model = data.get("model") if isinstance(data, dict) else None
    check(
        isinstance(model, dict),
        f"'{path}' has no 'model' section (Garg et al.'s run config); move it away or fix it",
    )
    return model


def _heads(path: Path, heads: int | None, model: dict[str, Any] | None, shapes: dict[str, int]) -> int:
    """The number of heads from the argument, the run config or the preset (module docstring)."""
    if model is not None:
        where = path.parent / "config.yaml"
        check(
            model.get("family", "gpt2") == "gpt2",
            f"'{where}' describes a {model.get('family')!r} model, not gpt2",
        )
        for key, value in shapes.items():
            check(
                key not in model or model[key] == value,
                f"'{where}' gives {key} {model.get(key)!r} but the checkpoint has {value}: "
                "it belongs to another run",
            )
        n_head = model.get("n_head")
        check(
            isinstance(n_head, int) and not isinstance(n_head, bool) and n_head >= 1,
            f"'{where}' has no positive integer model.n_head (got {n_head!r}); fix it or pass heads=...",
        )
        check(
            heads is None or heads == n_head,
            f"heads={heads} contradicts model.n_head {n_head} in '{where}'; drop heads= or fix the config",
        )
        return n_head
    if heads is not None:
        return heads
    size = (shapes["n_layer"], shapes["n_embd"])
    check(
        size in HEADS_BY_SIZE,
        f"{path}: cannot tell the number of heads of a {size[0]}-layer width-{size[1]} model: the "
        "weights do not fix it and there is no config.yaml beside the checkpoint; pass heads=...",
    )
    return HEADS_BY_SIZE[size]
