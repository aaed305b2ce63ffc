"""One layer of multi-head attention in He et al.'s parameterisation (arXiv 2503.12734).

With example tokens z_j = (x_j, y_j) in R^{d+K} (K label slots; K = 1 for one task) and
the query token z_q = (x_q, 0),

    TF(Z, z_q) = sum_h O_h V_h Z softmax(Z^T K_h^T Q_h z_q / sqrt(d+K)),

Q_h, K_h, V_h in R^{(d+K)x(d+K)}, O = (O_1 .. O_H) in R^{K x H(d+K)} mapping all heads to the
K outputs; no bias, no residual, no positions; the query does not attend to itself. With
``activation=linear`` the softmax is replaced by the scores divided by the number of
examples k (Boursier & Boyer's linear attention, arXiv 2512.11784), or with ``linear_scale=c``
by a fixed c (the training length: not renormalised at other lengths, so the output grows like
k / c). Without positions the model runs at any prompt length (length generalisation).

Initialisations, as in the authors' code: ``default`` (PyTorch's Linear init,
U(-1/sqrt(d+K), 1/sqrt(d+K))); ``small_id`` (Q_h = K_h = V_h = s I, s = ``init_scale``, O
default); ``oppo_small_id`` (Q_h = +-s I with the sign alternating over heads, K_h = s I, V and
O default: the random values break the symmetry between heads). And iclreg's
``aligned_small_id``: ``small_id`` with each head's Q_h = +-s I signed as its OV label entry
s O[k, h, d + k] (summed over the label slots k), so that every head starts with omega_h mu_h > 0,
on the descending side of the saddle at omega = mu = 0. A ``small_id`` head whose O entry is
negative starts on the other side and can sit at that saddle: 2 of 4 single-head seeds at
D = 20 for all of Cui et al.'s 100k steps (excess 0.91 against 0.45). Where the entry is
positive the two initialisations are the same, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import check
from .base import MODELS, ModelConfig, StackedPredictor
from .causal import causal_attention, causal_weights


def _heads(tokens: Tensor, weights: Tensor) -> Tensor:
    """Every head's projection W_h z of every token: tokens (E, B, n, p), weights (E, H, p, p)
    -> (E, B, H, n, p).

    One matrix product per member, (B n, p) by (p, H p), whatever E and H: a product whose
    other operand broadcasts over a size-1 batch (E = 1, H = 1) is folded by torch into one
    larger product with another summation order, so member e of an ensemble would differ from
    e trained alone in the last bits.
    """
    E, B, n, p = tokens.shape
    H = weights.shape[1]
    stacked = weights.transpose(-1, -2).permute(0, 2, 1, 3).reshape(E, p, H * p)  # (E, p, H p)
    return (tokens.reshape(E, B * n, p) @ stacked).view(E, B, n, H, p).permute(0, 1, 3, 2, 4)


@MODELS.register("softmax_attention")
@dataclass(frozen=True)
class SoftmaxAttentionConfig(ModelConfig):
    """Multi-head single-layer attention (He et al.).

    Attributes:
        heads: number of heads H.
        labels: number of label slots K (multi-task when K > 1; y is then (B, n, K)).
        activation: ``softmax`` or ``linear`` (scores / k).
        linear_scale: ``linear`` only: divide the scores by this fixed number instead of the
            number of examples k (None: by k).
        init: ``default``, ``small_id``, ``oppo_small_id`` or ``aligned_small_id``.
        init_scale: s of the small-identity initialisations.
    """

    member_fields = ("init", "init_scale")
    heads: int = 1
    labels: int = 1
    activation: Literal["softmax", "linear"] = "softmax"
    linear_scale: int | None = None
    init: Literal["default", "small_id", "oppo_small_id", "aligned_small_id"] = "default"
    init_scale: float = 0.1

    def __post_init__(self) -> None:
        check(self.d >= 1, f"softmax_attention: d must be at least 1, got {self.d}")
        check(self.heads >= 1, f"softmax_attention: heads must be at least 1, got {self.heads}")
        check(self.labels >= 1, f"softmax_attention: labels must be at least 1, got {self.labels}")
        check(self.init_scale > 0, f"softmax_attention: init_scale must be positive, got {self.init_scale}")
        check(self.linear_scale is None or self.linear_scale >= 1,
              f"softmax_attention: linear_scale must be at least 1 (or none), got {self.linear_scale}")
        check(self.linear_scale is None or self.activation == "linear",
              "softmax_attention: linear_scale needs activation=linear (softmax weights are not scaled)")

    @property
    def width(self) -> int:
        """Token width d + K."""
        return self.d + self.labels

    def build(self, generator: torch.Generator | None = None) -> SoftmaxAttention:
        return SoftmaxAttention(self, generator)


class SoftmaxAttention(StackedPredictor):
    """Parameters ``Q``, ``K``, ``V``: (H, p, p) and ``O``: (K, H, p), with p = d + K.

    The default values of Q, K, V and O are drawn from ``generator`` in that order under every
    ``init`` (the identities then replace some), so O is the same for every ``init``.
    """

    def __init__(self, config: SoftmaxAttentionConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        H, p, K = config.heads, config.width, config.labels
        bound = 1 / math.sqrt(p)
        Q, Km, V = (torch.empty(H, p, p).uniform_(-bound, bound, generator=generator) for _ in range(3))
        O = torch.empty(K, H, p).uniform_(-1 / math.sqrt(H * p), 1 / math.sqrt(H * p), generator=generator)
        s = config.init_scale
        if config.init in ("small_id", "aligned_small_id"):  # the authors' code: Q, K, V small
            Q, Km, V = (s * torch.eye(p).repeat(H, 1, 1) for _ in range(3))  # identities, O default
            if config.init == "aligned_small_id":  # Q_h signed as the OV label entries s O[k, h, d + k]
                k = torch.arange(K)
                entry = O[k, :, config.d + k].sum(0)  # (H,)
                Q = torch.where(entry < 0, -1.0, 1.0).view(H, 1, 1) * Q
        elif config.init == "oppo_small_id":  # Q = +-s I over heads, K = s I; V and O default
            signs = torch.tensor([(-1.0) ** h for h in range(H)]).view(H, 1, 1)
            Q, Km = signs * s * torch.eye(p).repeat(H, 1, 1), s * torch.eye(p).repeat(H, 1, 1)
        self.Q, self.K, self.V, self.O = (nn.Parameter(t) for t in (Q, Km, V, O))

    @staticmethod
    def stacked_forward(
        config: SoftmaxAttentionConfig, params: dict[str, Tensor], x: Tensor, y: Tensor,
        last_only: bool = False,
    ) -> Tensor:
        """Predictions for every prefix of E models at once.

        Args:
            params: Q, K, V (E, H, p, p) and O (E, K, H, p).
            x: (E, B, n, d); y: (E, B, n) or (E, B, n, K).
            last_only: predict the last position only.
        Returns:
            the shape of y (n -> 1 with ``last_only``).
        """
        single = y.dim() == 3
        labels = y.unsqueeze(-1) if single else y  # (E, B, n, K)
        check(
            labels.shape[-1] == config.labels,
            f"softmax_attention: the model has {config.labels} label slots, y has {labels.shape[-1]}",
        )
        n = x.shape[2]
        tokens = torch.cat([x, labels], -1)  # (E, B, n, p)
        queries = torch.cat([x, torch.zeros_like(labels)], -1)  # (E, B, n, p)
        rows = slice(n - 1, n) if last_only else slice(0, n)
        queries = queries[:, :, rows]  # (E, B, n_q, p)
        q = _heads(queries, params["Q"])  # (E, B, H, n_q, p)
        k, v = _heads(tokens, params["K"]), _heads(tokens, params["V"])  # (E, B, H, n, p)
        if torch.is_grad_enabled():
            scores = q @ k.transpose(-1, -2) / math.sqrt(config.width)  # (E, B, H, n_q, n)
            # over the examples j < i, linear weights divided by k or by the fixed linear_scale
            attn = causal_weights(scores, config.activation, rows, config.linear_scale)
            heads = attn @ v  # (E, B, H, n_q, p)
        else:  # the same numbers bit for bit, in cache-sized blocks (evaluation at every prefix)
            heads = causal_attention(q, k, v, config.activation, math.sqrt(config.width), rows,
                                     config.linear_scale)
        E, B, H, n_q, p = heads.shape
        flat = heads.permute(0, 1, 3, 2, 4).reshape(E, B, n_q, H * p)  # (E, B, n_q, H p)
        out = flat @ params["O"].reshape(E, 1, -1, H * p).transpose(-1, -2)  # (E, B, n_q, K)
        return out.squeeze(-1) if single else out

    def kq_matrices(self) -> Tensor:
        """Each head's effective bilinear form K_h^T Q_h / sqrt(d+K): (H, p, p).

        The score of example z for query z_q is z^T (K_h^T Q_h / sqrt(p)) z_q.
        """
        return self.K.transpose(-1, -2) @ self.Q / math.sqrt(self.config.width)

    def ov_vectors(self) -> Tensor:
        """Each head's output-value map O_h V_h: (H, K, p) (for K = 1 the OV row vector)."""
        return torch.einsum("khp,hpr->hkr", self.O, self.V)
