"""Per-layer probes of a GPT-2 regressor and similarity of its layers to algorithms
(Fu, Chen, Jia, Sharan, arXiv 2310.17086).

Probe: for each layer l (0 = the embedding), a fresh linear read-out of the layer's hidden
state at the x tokens, fitted in closed form (ridge with a tiny lambda, bias included) on a
probe set of prompts and evaluated on held-out prompts. Fu et al. train this read-out with the
backbone frozen; least squares is the honest cheaper variant. The hidden state is Fu et al.'s
``hidden_states[l]`` of Hugging Face's GPT-2 (``GPT2Regressor.hidden_states``): the raw
residual stream after l blocks for l < n_layer and ``ln_f`` of it at l = n_layer only
(``ln_f="last"``); ``ln_f="every"`` normalises every layer, ``ln_f="none"`` none.

Similarity: the residual vector of a predictor on one prompt is (y_hat_i - y_i) over the n
positions; the similarity of a layer to an algorithm step is the cosine of the two residual
vectors, averaged over prompts. The best-matching step per layer is the argmax; GD is swept at
every step 1..1300, so its best step is not tied to a grid of powers of two. A predictor
that outputs 0 everywhere already scores high against early steps (its residual is -y), so
the report gives that floor beside the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..estimators import gd_trajectory, newton_weights, prefix_moments
from ..estimators.base import dot_query
from ..models.gpt2 import GPT2Regressor, LnF


def layer_hidden(model: GPT2Regressor, x: Tensor, y: Tensor, ln_f: LnF = "last") -> Tensor:
    """Hidden states at the x tokens after 0..n_layer blocks: (n_layer + 1, B, n, width).

    ``ln_f="last"``: Fu et al.'s (Hugging Face's) ``hidden_states``, raw except the last layer's,
    which passes through ``ln_f``; ``"every"`` / ``"none"``: ``ln_f`` at every / no layer.
    """
    with torch.no_grad():
        hidden = model.hidden_states(x, y, ln_f)  # (n_layer + 1, B, 2n, width)
    return hidden[:, :, ::2]  # the x tokens


def fit_probes(hidden: Tensor, y: Tensor, lam: float = 1e-4) -> Tensor:
    """Least-squares read-outs per layer: hidden (L, B, n, w), y (B, n) -> weights (L, w + 1)."""
    L, B, n, w = hidden.shape
    feats = torch.cat([hidden, hidden.new_ones(L, B, n, 1)], -1).reshape(L, B * n, w + 1).double()
    target = y.reshape(B * n, 1).double()
    gram = feats.transpose(1, 2) @ feats  # (L, w + 1, w + 1)
    gram = gram + lam * B * n * torch.eye(w + 1, dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram, feats.transpose(1, 2) @ target).squeeze(-1)  # (L, w + 1)


def apply_probes(hidden: Tensor, weights: Tensor) -> Tensor:
    """Probe predictions: (L, B, n, w), (L, w + 1) -> (L, B, n)."""
    w = weights.to(hidden.dtype)
    return torch.einsum("lbnw,lw->lbn", hidden, w[:, :-1]) + w[:, -1].view(-1, 1, 1)


def newton_predictions(x: Tensor, y: Tensor, steps: list[int], scale: str = "fro") -> Tensor:
    """Iterative Newton predictions after each of ``steps``: (len(steps), B, n)."""
    S, b = prefix_moments(x, y)
    return torch.stack([dot_query(x, newton_weights(S, b, k, scale)) for k in steps])


def gd_predictions(x: Tensor, y: Tensor, steps: list[int], lr: float = 0.01) -> Tensor:
    """GD predictions (summed loss, step ``lr``) after each of ``steps``: (len(steps), B, n)."""
    return gd_trajectory(x, y, steps, lr)


def residual_cosine(preds: Tensor, algorithm: Tensor, y: Tensor) -> Tensor:
    """Mean over prompts of cos(pred - y, algo - y): (L, B, n), (S, B, n), (B, n) -> (L, S)."""
    a = preds - y
    b = algorithm - y
    a = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.einsum("lbn,sbn->lsb", a.double(), b.double()).mean(-1)


NEWTON_STEPS = list(range(1, 24))
GD_STEPS = list(range(1, 1301))  # every step up to ~1300, as Fu et al. sweep them


def probe_model(model: GPT2Regressor, task, samples: int = 320, probe_samples: int = 2048,
                seed: int = 0, device: str = "cpu", ln_f: LnF = "last") -> dict:
    """Per-layer probe errors and similarity to Newton and GD steps, JSON-ready.

    Args:
        ln_f: where the final LayerNorm applies to the probed hidden states: ``"last"`` (Fu et
            al.'s ``hidden_states``), ``"every"`` or ``"none"`` (``layer_hidden``).

    Returns:
        {"layers", "k", "ln_f", "probe_mse" (L, n), "ols_mse" (n), "newton": {"steps",
        "similarity" (L, S), "best", "mse" (S, n)}, "gd": {...}, "floor": similarity of the zero
        predictor to Newton-1}.
    """
    dtype = next(model.parameters()).dtype
    fit = task.sample(probe_samples, seed, 0, device=device, dtype=dtype)
    test = task.sample(samples, seed, 1, device=device, dtype=dtype)
    weights = fit_probes(layer_hidden(model, fit.x, fit.y, ln_f), fit.y)
    preds = apply_probes(layer_hidden(model, test.x, test.y, ln_f), weights).double()  # (L, B, n)
    x, y = test.x.double(), test.y.double()
    newton = newton_predictions(x, y, NEWTON_STEPS)
    gd = gd_predictions(x, y, GD_STEPS)
    sim_newton = residual_cosine(preds, newton, y)
    sim_gd = residual_cosine(preds, gd, y)
    floor = residual_cosine(torch.zeros_like(y)[None], newton[:1], y)[0, 0]
    ols = newton_predictions(x, y, [60])[0]  # converged Newton = least squares for k > d
    return {
        "layers": list(range(preds.shape[0])),
        "k": list(range(y.shape[1])),
        "ln_f": ln_f,
        "probe_mse": (preds - y).square().mean(1).tolist(),
        "ols_mse": (ols - y).square().mean(0).tolist(),
        "newton": {"steps": NEWTON_STEPS, "similarity": sim_newton.tolist(),
                   "best": [NEWTON_STEPS[i] for i in sim_newton.argmax(1).tolist()],
                   "mse": (newton - y).square().mean(1).tolist()},
        "gd": {"steps": GD_STEPS, "similarity": sim_gd.tolist(),
               "best": [GD_STEPS[i] for i in sim_gd.argmax(1).tolist()],
               "mse": (gd - y).square().mean(1).tolist()},
        "floor": float(floor),
    }
