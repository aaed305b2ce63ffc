"""A GPT-2-style causal transformer for in-context regression, with hook points.

The backbone of Garg et al. (arXiv 2208.01066), also used by Fu et al. (arXiv 2310.17086):
GPT-2 (Radford et al. 2019) with learned positions and no token vocabulary. A prompt becomes
2n interleaved tokens x_1, [y_1, 0, ...], x_2, ... (``layouts.interleave``); a linear read-in
maps them to the width, pre-LayerNorm blocks

    h <- h + Attn(LN_1(h)),   h <- h + MLP(LN_2(h)),   MLP(u) = W_2 gelu_tanh(W_1 u),

update the residual stream, and a final LayerNorm plus a linear read-out give the prediction
of y_i at the token of x_i, which the causal mask lets see only x_i and the first i pairs.

Hook points (``hooks.py``) expose ``hook_embed``, ``blocks.{l}.hook_resid_pre``,
``blocks.{l}.hook_resid_mid``, ``blocks.{l}.hook_resid_post`` and
``blocks.{l}.attn.hook_pattern``.

Per-layer read-out (Fu et al.): ``hidden_states`` returns Hugging Face's
``output_hidden_states`` of ``GPT2Model``, which Fu et al.'s probes read: entry l (0..n_layer)
is the residual stream after l blocks (entry 0 the embedding), *raw* for l < n_layer, and
``ln_f`` of it only for l = n_layer (Hugging Face applies the final LayerNorm to the last entry
only). ``layer_predictions`` applies the shared read-out to those entries. ``ln_f="every"``
applies the final LayerNorm at every layer instead (as the last layer sees it), ``ln_f="none"``
at none (the raw residual stream, ``blocks.{l}.hook_resid_post``, everywhere).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..errors import check
from .base import MODELS, ModelConfig, Predictor
from .hooks import HookPoint, caching
from .init import default_init_, uninitialised
from .layouts import interleave, x_positions

# Where the final LayerNorm applies in the per-layer read-out (module docstring).
LnF = Literal["last", "every", "none"]
LN_F_CHOICES: tuple[str, ...] = ("last", "every", "none")

# Garg et al.'s sizes: (layers, width, heads).
PRESETS: dict[str, tuple[int, int, int]] = {
    "tiny": (3, 64, 2),
    "small": (6, 128, 4),
    "standard": (12, 256, 8),
}


@MODELS.register("gpt2")
@dataclass(frozen=True)
class GPT2Config(ModelConfig):
    """A GPT-2 backbone for interleaved prompts.

    Attributes:
        d: input dimension of x.
        preset: Garg et al.'s size: tiny (3 layers, width 64, 2 heads), small (6/128/4) or
            standard (12/256/8).
        layers: number of blocks; overrides the preset.
        width: width of the residual stream; overrides the preset.
        heads: number of attention heads (must divide the width); overrides the preset.
        max_n: the longest prompt, in (x, y) pairs; the model learns 2 max_n positions.
        dropout: dropout on the embedding, the attention pattern and each residual branch.
    """

    d: int = 20
    preset: Literal["tiny", "small", "standard"] = "standard"
    layers: int | None = None
    width: int | None = None
    heads: int | None = None
    max_n: int = 101
    dropout: float = 0.0

    def __post_init__(self) -> None:
        check(self.preset in PRESETS, f"gpt2: preset must be one of {', '.join(PRESETS)}")
        check(self.d >= 1, f"gpt2: d must be at least 1, got {self.d}")
        check(self.n_layer >= 1, f"gpt2: layers must be at least 1, got {self.n_layer}")
        check(self.n_embd >= 1, f"gpt2: width must be at least 1, got {self.n_embd}")
        check(self.n_head >= 1, f"gpt2: heads must be at least 1, got {self.n_head}")
        check(
            self.n_embd % self.n_head == 0,
            f"gpt2: width {self.n_embd} is not divisible by heads {self.n_head}; "
            "set width to a multiple of heads",
        )
        check(self.max_n >= 1, f"gpt2: max_n must be at least 1, got {self.max_n}")
        check(0 <= self.dropout < 1, f"gpt2: dropout must lie in [0, 1), got {self.dropout}")

    @property
    def n_layer(self) -> int:
        """The number of blocks."""
        return PRESETS[self.preset][0] if self.layers is None else self.layers

    @property
    def n_embd(self) -> int:
        """The width of the residual stream."""
        return PRESETS[self.preset][1] if self.width is None else self.width

    @property
    def n_head(self) -> int:
        """The number of attention heads."""
        return PRESETS[self.preset][2] if self.heads is None else self.heads

    def build(self, generator: torch.Generator | None = None) -> GPT2Regressor:
        return GPT2Regressor(self, generator)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention, softmax(Q K^T / sqrt(hd) + mask) V per head of width hd.

    ``c_attn`` computes Q, K, V at once (width -> 3 width) and ``c_proj`` mixes the heads.
    The plain forward uses fused ``scaled_dot_product_attention``; when ``hook_pattern`` is
    hooked, the pattern (B, H, T, T) is materialised and passed through it instead.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.c_attn = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)
        self.attn_drop = nn.Dropout(dropout)
        self.resid_drop = nn.Dropout(dropout)
        self.hook_pattern = HookPoint()

    def forward(self, h: Tensor) -> Tensor:
        """(B, T, width) -> (B, T, width)."""
        B, T, W = h.shape
        q, k, v = self.c_attn(h).split(W, dim=2)  # 3 x (B, T, W)
        q = q.view(B, T, self.heads, W // self.heads).transpose(1, 2)  # (B, H, T, hd)
        k = k.view(B, T, self.heads, W // self.heads).transpose(1, 2)  # (B, H, T, hd)
        v = v.view(B, T, self.heads, W // self.heads).transpose(1, 2)  # (B, H, T, hd)
        if self.hook_pattern.active:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, T)
            future = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)  # (T, T)
            pattern = self.hook_pattern(scores.masked_fill(future, -math.inf).softmax(-1))
            out = self.attn_drop(pattern) @ v  # (B, H, T, hd)
        else:
            p = self.dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        out = out.transpose(1, 2).contiguous().view(B, T, W)  # (B, T, W): heads side by side
        return self.resid_drop(self.c_proj(out))


# gelu_new's constants: z = sqrt(2/pi) (u + 0.044715 u^3); _TWO_C = 2 sqrt(2/pi) scales 2z.
_KAPPA = 0.044715
_TWO_C = 2 * math.sqrt(2 / math.pi)


class _SigmoidGeluNew(torch.autograd.Function):
    """GPT-2's gelu_new, 0.5 u (1 + tanh z), evaluated as u sigmoid(2z): the same function
    (1 + tanh z = 2 sigmoid(2z)), equal to ``F.gelu(u, approximate="tanh")`` to rounding (about
    1e-16 in float64, 5e-7 in float32).

    On the CPU PyTorch's tanh is several times slower than its sigmoid (at the quick size of
    ``reproduce newton``, a (64, 26, 128) activation on one thread, ``F.gelu``'s tanh form takes
    0.35 ms forward against 0.1 ms for the exact erf GELU); this form trains that model's step
    about 5% faster. The backward is written out, d/du u s(w) = s + u s (1 - s) w' with
    s = sigmoid(w), w = 2z, w' = 2 sqrt(2/pi) (1 + 3 * 0.044715 u^2), in place on one new tensor;
    it is not itself differentiable (``once_differentiable``).
    """

    @staticmethod
    def forward(ctx: Any, u: Tensor) -> Tensor:
        s = u * u
        s.mul_(_KAPPA).add_(1).mul_(u).mul_(_TWO_C).sigmoid_()  # sigmoid(2z)
        ctx.save_for_backward(u, s)
        return u * s

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        u, s = ctx.saved_tensors
        t = u * u  # the one new tensor: the rest works in place (each new one costs here)
        t.mul_(3 * _KAPPA * _TWO_C).add_(_TWO_C).mul_(u)  # u w'
        t.addcmul_(t, s, value=-1).add_(1).mul_(s)  # s (1 + u w' (1 - s))
        return t.mul_(grad)


class GeluNew(nn.Module):
    """GPT-2's activation, the tanh approximation of GELU (Hugging Face's ``gelu_new``): on the
    CPU as u sigmoid(2z) (:class:`_SigmoidGeluNew`, faster there), elsewhere ``F.gelu``'s."""

    def forward(self, u: Tensor) -> Tensor:
        if u.device.type == "cpu":
            return _SigmoidGeluNew.apply(u)
        return F.gelu(u, approximate="tanh")


class MLP(nn.Module):
    """Position-wise MLP: width -> 4 width -> width with GPT-2's tanh-approximated GELU."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.act = GeluNew()  # GPT-2's gelu_new
        self.c_proj = nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:
        """(B, T, width) -> (B, T, width)."""
        return self.drop(self.c_proj(self.act(self.c_fc(h))))


class Block(nn.Module):
    """A pre-LayerNorm transformer block with hooks on the residual stream."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads, dropout)
        self.hook_resid_mid = HookPoint()
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = MLP(width, dropout)
        self.hook_resid_post = HookPoint()

    def forward(self, h: Tensor) -> Tensor:
        """(B, T, width) -> (B, T, width)."""
        h = self.hook_resid_pre(h)
        h = self.hook_resid_mid(h + self.attn(self.ln_1(h)))
        return self.hook_resid_post(h + self.mlp(self.ln_2(h)))


class GPT2Regressor(Predictor):
    """GPT-2 on interleaved prompts: ``forward(x (B, n, d), y (B, n)) -> (B, n)``.

    Weights follow GPT-2's initialisation (normal with std 0.02, residual projections scaled
    by 1 / sqrt(2 layers)) in the backbone, and PyTorch's default ``nn.Linear`` one in the
    read-in and read-out, as in Garg et al.'s code; they are drawn from ``generator``
    (torch's default generator when ``None``, as for any ``nn.Module``). The generator first
    gives the draws of PyTorch's default initialisation of every submodule (``init.py``), then
    GPT-2's: what constructing the modules and then ``reset_parameters`` draws, so a seed gives
    the weights it gave when the construction drew from the global generator.
    """

    config: GPT2Config

    def __init__(self, config: GPT2Config, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        W = config.n_embd
        with uninitialised(self):
            self.read_in = nn.Linear(config.d, W)
            self.wpe = nn.Embedding(2 * config.max_n, W)
            self.drop = nn.Dropout(config.dropout)
            self.hook_embed = HookPoint()
            self.blocks = nn.ModuleList(
                Block(W, config.n_head, config.dropout) for _ in range(config.n_layer))
            self.ln_f = nn.LayerNorm(W)
            self.read_out = nn.Linear(W, 1)
        default_init_(self, generator)  # discarded below; drawn to keep each seed's weights
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw fresh weights from ``generator``."""
        for linear in (self.read_in, self.read_out):
            bound = 1 / math.sqrt(linear.in_features)  # nn.Linear's default
            nn.init.uniform_(linear.weight, -bound, bound, generator=generator)
            nn.init.uniform_(linear.bias, -bound, bound, generator=generator)
        nn.init.normal_(self.wpe.weight, 0.0, 0.02, generator=generator)
        for name, m in [*self.blocks.named_modules(), ("ln_f", self.ln_f)]:
            if isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                # GPT-2 scales the projections into the residual stream by 1/sqrt(2 layers).
                scale = math.sqrt(2 * self.config.n_layer) if name.endswith("c_proj") else 1.0
                nn.init.normal_(m.weight, 0.0, 0.02 / scale, generator=generator)
                nn.init.zeros_(m.bias)

    # --- the forward pass, in pieces ---------------------------------------------------------
    def embed(self, x: Tensor, y: Tensor) -> Tensor:
        """Read-in plus positions: (B, n, d), (B, n) -> (B, 2n, width)."""
        cfg = self.config
        check(
            x.ndim == 3 and x.shape[-1] == cfg.d and y.shape == x.shape[:2],
            f"gpt2: expected x (B, n, {cfg.d}) and y (B, n), got {tuple(x.shape)} and {tuple(y.shape)}",
        )
        n = x.shape[1]
        check(
            n <= cfg.max_n,
            f"gpt2: the prompt has n={n} pairs but the model has positions for max_n={cfg.max_n}; "
            f"use prompts of at most {cfg.max_n} pairs or a model built with max_n >= {n}",
        )
        tokens = interleave(x, y)  # (B, 2n, d)
        positions = self.wpe(torch.arange(2 * n, device=x.device))  # (2n, width)
        return self.hook_embed(self.drop(self.read_in(tokens) + positions))  # (B, 2n, width)

    def read(self, h: Tensor) -> Tensor:
        """Final LayerNorm and read-out at the x tokens: (B, 2n, width) -> (B, n)."""
        return self.read_out(self.ln_f(x_positions(h))).squeeze(-1)  # (B, n)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Predictions (B, n) of y from x (B, n, d) and y (B, n), under the prefix contract."""
        return self.read(self.residual(x, y))

    # --- interpretability --------------------------------------------------------------------
    def residual(self, x: Tensor, y: Tensor, stop_at_layer: int | None = None) -> Tensor:
        """The residual stream after ``stop_at_layer`` blocks (all if ``None``), before ``ln_f``.

        Later blocks are not computed. Returns (B, 2n, width).
        """
        layers = self.config.n_layer
        stop = layers if stop_at_layer is None else stop_at_layer
        check(0 <= stop <= layers, f"gpt2: stop_at_layer must lie in 0..{layers}, got {stop}")
        h = self.embed(x, y)  # (B, 2n, width)
        for block in self.blocks[:stop]:
            h = block(h)  # (B, 2n, width)
        return h

    def run_with_cache(
        self, x: Tensor, y: Tensor, names: Iterable[str] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The predictions (B, n) and the activations at ``names`` (every hook if ``None``).

        Residual-stream hooks hold (B, 2n, width) and ``blocks.{l}.attn.hook_pattern`` holds
        (B, heads, 2n, 2n), row t being the attention of token t over tokens 0..t.

        Raises:
            UsageError: for a name that is not a hook point (the message lists them).
        """
        with caching(self, names) as cache:
            pred = self(x, y)
        return pred, cache

    def hidden_states(self, x: Tensor, y: Tensor, ln_f: LnF = "last") -> Tensor:
        """The residual stream after each of 0..n_layer blocks: (n_layer + 1, B, 2n, width).

        With ``ln_f="last"`` (the default) this is Hugging Face's ``output_hidden_states``, the
        read-out Fu et al. probe: entries 0..n_layer-1 are the raw residual stream (entry 0 the
        embedding) and entry n_layer is ``ln_f`` of the last block's output. ``"every"`` applies
        ``ln_f`` to every entry, ``"none"`` to none.

        Raises:
            UsageError: for an ``ln_f`` other than last, every or none.
        """
        check(ln_f in LN_F_CHOICES, f"gpt2: ln_f must be one of {', '.join(LN_F_CHOICES)}, got '{ln_f}'")
        h = self.embed(x, y)  # (B, 2n, width)
        states = [h]
        for block in self.blocks:
            h = block(h)  # (B, 2n, width)
            states.append(h)
        last = len(states) - 1
        return torch.stack([
            self.ln_f(s) if ln_f == "every" or (ln_f == "last" and l == last) else s
            for l, s in enumerate(states)
        ])  # (n_layer + 1, B, 2n, width)

    def layer_predictions(self, x: Tensor, y: Tensor, ln_f: LnF = "last") -> Tensor:
        """The shared read-out of ``hidden_states(x, y, ln_f)`` at the x tokens.

        Returns (n_layer + 1, B, n). With ``ln_f="last"`` (Fu et al.'s convention) or
        ``"every"`` the last entry equals ``forward``.
        """
        hidden = self.hidden_states(x, y, ln_f)  # (n_layer + 1, B, 2n, width)
        return self.read_out(hidden[:, :, ::2]).squeeze(-1)  # (n_layer + 1, B, n): x tokens
