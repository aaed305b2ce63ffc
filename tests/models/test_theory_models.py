"""Linear self-attention, He et al.'s multi-head attention and the LSTM, against slow
single-query references written from the papers' formulas."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.models import MODELS, build
from iclreg.tasks import build as build_task

torch.set_default_dtype(torch.float32)


def prompts(B=3, n=7, d=3, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, n, d, generator=gen, dtype=dtype), torch.randn(B, n, generator=gen, dtype=dtype)


def gd_reference(x, y, steps, lr):
    """Mean-gradient GD from 0 on each prefix, one prompt and position at a time."""
    B, n, d = x.shape
    out = torch.zeros(B, n, dtype=x.dtype)
    for b in range(B):
        for i in range(1, n):
            X, Y, w = x[b, :i], y[b, :i], torch.zeros(d, dtype=x.dtype)
            for _ in range(steps):
                w = w - lr / i * X.T @ (X @ w - Y)
            out[b, i] = x[b, i] @ w
    return out


def lsa_reference(model, x, y):
    """f(Z) = Z + (1/k) W^PV Z M Z^T W^KQ Z on the (d+1) x (k+1) matrix of each prefix."""
    B, n, d = x.shape
    out = torch.zeros(B, n, dtype=x.dtype)
    for b in range(B):
        for i in range(n):
            Z = torch.cat([x[b, : i + 1].T, torch.cat([y[b, :i], y.new_zeros(1)])[None]], 0)
            M = torch.diag(torch.cat([torch.ones(i), torch.zeros(1)])).to(x.dtype)
            for W_kq, W_pv in zip(model.W_kq, model.W_pv, strict=True):
                Z = Z + W_pv @ Z @ M @ Z.T @ W_kq @ Z / max(i, 1)
            out[b, i] = -Z[-1, -1]
    return out


@pytest.mark.parametrize("layers", [1, 2, 4])
def test_gd_construction_equals_gd_steps(layers):
    x, y = prompts(n=9, d=4)
    model = build(f"linear_attention:d=4,layers={layers},init=gd,lr=0.5").double()
    torch.testing.assert_close(model(x, y), gd_reference(x, y, layers, 0.5), rtol=0, atol=1e-13)


@pytest.mark.parametrize("layers", [1, 3])
def test_linear_attention_matches_matrix_formula(layers):
    torch.manual_seed(1)
    x, y = prompts(n=6, d=3)
    model = build(f"linear_attention:d=3,layers={layers},init_scale=0.5").double()
    torch.testing.assert_close(model(x, y), lsa_reference(model, x, y), rtol=1e-12, atol=1e-12)


def test_one_layer_fast_path_equals_general_path():
    torch.manual_seed(2)
    x, y = prompts(n=8, d=2)
    model = build("linear_attention:d=2,layers=1,init_scale=0.7").double()
    from iclreg.models.linear_attention import _deep, _one_layer

    W_kq, W_pv, xe, ye = model.W_kq[None], model.W_pv[None], x[None], y[None]
    torch.testing.assert_close(_one_layer(W_kq[:, 0], W_pv[:, 0], xe, ye), _deep(W_kq, W_pv, xe, ye),
                               rtol=1e-12, atol=1e-12)


def he_reference(model, x, y, activation="softmax", scale=None):
    """TF(Z, z_q) = sum_h O_h V_h Z softmax(Z^T K_h^T Q_h z_q / sqrt(p)), one query at a time;
    ``linear``: the scores over the number of examples i, or over a fixed ``scale``."""
    labels = y.unsqueeze(-1) if y.dim() == 2 else y
    B, n, d = x.shape
    K = labels.shape[-1]
    p = d + K
    out = torch.zeros(B, n, K, dtype=x.dtype)
    for b in range(B):
        for i in range(1, n):
            Z = torch.cat([x[b, :i], labels[b, :i]], -1).T  # (p, i)
            zq = torch.cat([x[b, i], torch.zeros(K, dtype=x.dtype)])
            for h in range(model.config.heads):
                s = Z.T @ model.K[h].T @ model.Q[h] @ zq / math.sqrt(p)
                a = torch.softmax(s, 0) if activation == "softmax" else s / (i if scale is None else scale)
                out[b, i] += model.O[:, h] @ (model.V[h] @ Z @ a)
    return out.squeeze(-1) if y.dim() == 2 else out


@pytest.mark.parametrize("heads", [1, 2, 5])
@pytest.mark.parametrize("activation", ["softmax", "linear"])
def test_softmax_attention_matches_he_formula(heads, activation):
    torch.manual_seed(heads)
    x, y = prompts(n=7, d=3)
    model = build(f"softmax_attention:d=3,heads={heads},activation={activation}").double()
    torch.testing.assert_close(model(x, y), he_reference(model, x, y, activation), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [1, 4, 40])
def test_linear_attention_with_a_fixed_scale_matches_he_formula(scale):
    """linear_scale=c divides the scores by c at every prefix; at k = c it equals scores / k."""
    torch.manual_seed(11)
    x, y = prompts(n=7, d=3)
    model = build(f"softmax_attention:d=3,heads=2,activation=linear,linear_scale={scale}").double()
    reference = he_reference(model, x, y, "linear", scale)
    torch.testing.assert_close(model(x, y), reference, rtol=1e-12, atol=1e-12)
    by_k = build("softmax_attention:d=3,heads=2,activation=linear").double()
    by_k.load_state_dict(model.state_dict())
    fixed, scaled = model(x, y), by_k(x, y)
    if scale < 7:  # the same parameters, bitwise the same prediction where k = scale
        assert torch.equal(fixed[:, scale], scaled[:, scale])
    torch.testing.assert_close(fixed[:, 1:], scaled[:, 1:] * torch.arange(1, 7, dtype=x.dtype) / scale,
                               rtol=1e-12, atol=1e-12)


def test_linear_scale_is_checked():
    from iclreg.errors import UsageError

    for bad in ("activation=linear,linear_scale=0", "linear_scale=40"):
        with pytest.raises(UsageError, match="linear_scale"):
            build(f"softmax_attention:d=3,{bad}")


def test_multitask_attention_matches_formula_with_k_slots():
    torch.manual_seed(3)
    x, _ = prompts(n=6, d=4)
    y = torch.randn(3, 6, 2, dtype=torch.float64)
    model = build("softmax_attention:d=4,heads=3,labels=2").double()
    out = model(x, y)
    assert out.shape == (3, 6, 2)
    torch.testing.assert_close(out, he_reference(model, x, y), rtol=1e-12, atol=1e-12)


def test_kq_and_ov_accessors_give_the_scores_and_outputs():
    torch.manual_seed(4)
    x, y = prompts(B=1, n=5, d=3)
    model = build("softmax_attention:d=3,heads=2").double()
    z = torch.cat([x[0, 0], y[0, :1]])
    zq = torch.cat([x[0, 4], torch.zeros(1, dtype=x.dtype)])
    for h in range(2):
        score = (model.K[h] @ z) @ (model.Q[h] @ zq) / 2.0  # sqrt(d + 1) = 2
        assert torch.isclose(z @ model.kq_matrices()[h] @ zq, score)
        assert torch.allclose(model.ov_vectors()[h, 0], model.O[0, h] @ model.V[h])


def test_small_identity_initialisations():
    model = build("softmax_attention:d=2,heads=4,init=oppo_small_id,init_scale=0.1")
    kq = model.kq_matrices().detach()
    eye = torch.eye(3) * 0.01 / math.sqrt(3)
    for h in range(4):
        torch.testing.assert_close(kq[h], (-1) ** h * eye)
    ov = model.ov_vectors().detach()  # V and O keep the default init: the heads differ
    assert (ov[0] - ov[1]).abs().max() > 1e-3
    same = build("softmax_attention:d=2,heads=2,init=small_id,init_scale=0.1")
    torch.testing.assert_close(same.kq_matrices()[0], same.kq_matrices()[1])
    torch.testing.assert_close(same.V.detach(), 0.1 * torch.eye(3).repeat(2, 1, 1))


@pytest.mark.parametrize("heads,labels", [(1, 1), (3, 1), (2, 2)])
def test_aligned_small_identity_starts_every_head_with_omega_mu_positive(heads, labels):
    """aligned_small_id: small_id with each Q_h signed as its OV label entry, so omega_h mu_h > 0
    (omega_h: the KQ diagonal, mu_h: the OV label entries summed over the label slots); where the
    entry is positive it is small_id bit for bit. Control: small_id itself starts some heads at
    omega_h mu_h < 0, the side of the saddle at 0 that aligned_small_id avoids."""
    spec = f"softmax_attention:d=3,heads={heads},labels={labels},init_scale=0.1,init="

    def label_entries(model):  # mu_h: the OV label entries, summed over the label slots
        ov = model.ov_vectors().detach()  # (H, K, p)
        return torch.stack([ov[:, k, 3 + k] for k in range(labels)]).sum(0)

    flipped = 0
    for seed in range(12):
        aligned, small = (build(spec + init, torch.Generator().manual_seed(seed))
                          for init in ("aligned_small_id", "small_id"))
        omega = aligned.kq_matrices().detach().diagonal(0, -2, -1)[:, 0]  # (H,)
        mu = label_entries(aligned)
        assert (omega * mu > 0).all()
        torch.testing.assert_close(mu, label_entries(small), rtol=0, atol=0)  # V and O are small_id's
        for name in ("K", "V", "O"):
            assert torch.equal(getattr(aligned, name), getattr(small, name))
        same = mu > 0
        assert torch.equal(aligned.Q[same], small.Q[same]) and torch.equal(aligned.Q[~same], -small.Q[~same])
        flipped += int((~same).sum())
    assert flipped > 0  # the control: small_id started some head at omega mu < 0


SMALL_SPECS = {
    "cot": "cot:d=3,steps=3,lr=0.2,init_scale=0.3",
    "linear_attention": "linear_attention:d=3,layers=2,init_scale=0.3",
    "softmax_attention": "softmax_attention:d=3,heads=2",
    "lstm": "lstm:d=3,hidden=8,layers=2",
    "reduced_attention": "reduced_attention:d=3",
}


@pytest.mark.parametrize("activation", ["softmax", "linear"])
def test_reduced_attention_matches_slow_loop(activation):
    """y_hat_i = b sum_{j<i} y_j a_ij with a = softmax(x_j^T A x_i) or x_j^T A x_i / i."""
    torch.manual_seed(3)
    model = build(f"reduced_attention:d=3,activation={activation}").double()
    x, y = prompts(B=2, n=7, d=3)
    ref = torch.zeros(2, 7, dtype=torch.float64)
    for b in range(2):
        for i in range(1, 7):
            scores = torch.stack([x[b, j] @ model.A @ x[b, i] for j in range(i)])
            attn = torch.softmax(scores, 0) if activation == "softmax" else scores / i
            ref[b, i] = model.b * (attn * y[b, :i]).sum()
    torch.testing.assert_close(model(x, y), ref, rtol=0, atol=1e-12)


def test_reduced_attention_activations_share_initial_weights():
    """Boursier & Boyer compare softmax and linear attention trained from the same weights."""
    torch.manual_seed(4)
    soft = build("reduced_attention:d=4")
    torch.manual_seed(4)
    lin = build("reduced_attention:d=4,activation=linear")
    assert torch.equal(soft.A, lin.A) and torch.equal(soft.b, lin.b)


def test_every_registered_theory_model_has_a_prefix_test():
    assert set(SMALL_SPECS) | {"gpt2"} >= set(MODELS.names())


@pytest.mark.parametrize("name", sorted(SMALL_SPECS))
def test_prefix_contract(name):
    torch.manual_seed(5)
    model = build(SMALL_SPECS[name]).double()
    x, y = prompts(B=2, n=8, d=3)
    base = model(x, y)
    for i in range(8):
        x2, y2 = x.clone(), y.clone()
        x2[:, i + 1:] += 1.0
        y2[:, i:] += 1.0  # y_i itself is what position i predicts: it must not be seen
        torch.testing.assert_close(model(x2, y2)[:, : i + 1], base[:, : i + 1], rtol=0, atol=1e-12)


def test_attention_runs_at_any_length():
    model = build("softmax_attention:d=3,heads=2")
    for n in (2, 41, 200):
        x, y = prompts(B=2, n=n, d=3, dtype=torch.float32)
        assert torch.isfinite(model(x, y)).all() and model(x, y).shape == (2, n)


def test_single_head_attention_learns_on_he_task():
    """150 Adam steps take the loss at L = 40 well below the zero predictor's 1.1."""
    torch.manual_seed(0)
    task = build_task("gaussian:d=5,n=41,noise_std=0.3162,w_std=0.4472")
    model = build("softmax_attention:d=5,heads=1")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        p = task.sample(64, seed=0, step=step)
        loss = (model(p.x, p.y)[:, -1] - p.y[:, -1]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = task.sample(4096, seed=1, step=0)
    with torch.no_grad():
        final = (model(p.x, p.y)[:, -1] - p.y[:, -1]).square().mean().item()
    assert final < 0.6  # the single-head optimum is ~0.41, the zero predictor 1.1


@pytest.mark.parametrize("spec", [
    "softmax_attention:d=3,heads=2", "softmax_attention:d=3,heads=3,activation=linear",
    "softmax_attention:d=3,heads=2,activation=linear,linear_scale=4",
    "softmax_attention:d=3,heads=2,labels=2", "linear_attention:d=3,layers=1",
    "linear_attention:d=3,layers=3,init_scale=0.3", "reduced_attention:d=3",
    "reduced_attention:d=3,activation=linear", "cot:d=3,steps=3,init_scale=0.3",
])
def test_ensemble_equals_members_and_last_only_equals_the_last_row(spec):
    from iclreg.models import Ensemble

    torch.manual_seed(7)
    members = [build(spec).double() for _ in range(3)]
    ensemble = Ensemble(members)
    x = torch.randn(3, 4, 7, 3, dtype=torch.float64)
    y = torch.randn(3, 4, 7, *((2,) if "labels=2" in spec else ()), dtype=torch.float64)
    full = ensemble(x, y)
    for e, member in enumerate(members):
        torch.testing.assert_close(member.predict_last(x[e], y[e]), member(x[e], y[e])[:, -1],
                                   rtol=0, atol=1e-12)
        assert torch.equal(full[e], member(x[e], y[e]))
    torch.testing.assert_close(ensemble(x, y, last_only=True), full[:, :, -1:], rtol=1e-13, atol=1e-13)
