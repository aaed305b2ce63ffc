"""Weight patterns of one-layer multi-head attention (He et al., arXiv 2503.12734).

For each head h, with the effective bilinear form KQ_h = K_h^T Q_h / sqrt(d+1) and the
output-value vector OV_h = O_h V_h: a trained head computes approximately
mu_h * sum_i y_i softmax_i(omega_h <x_i, x_q>) when the x-block of KQ_h is omega_h I and
OV_h keeps only its label entry mu_h. This module reads (omega_h, mu_h) off the weights and
measures how far the weights are from that form.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.softmax_attention import SoftmaxAttention


@dataclass(frozen=True)
class HeadPatterns:
    """Per-head quantities of a single-task attention layer (H heads, dimension d).

    Attributes:
        omega: mean diagonal of the x-block of KQ_h, (H,).
        mu: label entry of OV_h, (H,).
        offdiag_ratio: mean |off-diagonal| / mean |diagonal| of the x-block, (H,).
        diag_spread: std / |mean| of the x-block's diagonal, (H,).
        ov_ratio: max |x entries of OV_h| / |label entry|, (H,).
        contribution: |omega_h mu_h| / sum_h |omega_h mu_h|, (H,) (the head's share of the
            linear, GD-like part of the output).
        kq: the (H, d+1, d+1) matrices; ov: the (H, d+1) vectors.
    """

    omega: torch.Tensor
    mu: torch.Tensor
    offdiag_ratio: torch.Tensor
    diag_spread: torch.Tensor
    ov_ratio: torch.Tensor
    contribution: torch.Tensor
    kq: torch.Tensor
    ov: torch.Tensor


def head_patterns(model: SoftmaxAttention) -> HeadPatterns:
    """Read each head's (omega_h, mu_h) and the pattern measures off a trained model."""
    d = model.config.d
    with torch.no_grad():
        kq = model.kq_matrices().double().cpu()  # (H, p, p)
        ov = model.ov_vectors()[:, 0].double().cpu()  # (H, p), first output
    block = kq[:, :d, :d]
    diag = torch.diagonal(block, dim1=-2, dim2=-1)  # (H, d)
    off = block - torch.diag_embed(diag)
    omega, mu = diag.mean(-1), ov[:, d]
    strength = (omega * mu).abs()
    return HeadPatterns(
        omega=omega,
        mu=mu,
        offdiag_ratio=off.abs().sum((-2, -1)) / (d * (d - 1)) / diag.abs().mean(-1),
        diag_spread=diag.std(-1) / omega.abs(),
        ov_ratio=ov[:, :d].abs().amax(-1) / mu.abs(),
        contribution=strength / strength.sum(),
        kq=kq,
        ov=ov,
    )
