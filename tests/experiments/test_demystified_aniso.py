"""He et al. anisotropic part: the one-step optimal preconditioner against a least-squares fit on
simulated prompts, the mu-weighted preconditioner and the fitted agreement on hand-built layers,
and the toy run end to end."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.estimators import build as build_estimator
from iclreg.experiments import demystified as he
from iclreg.experiments.base import Runs
from iclreg.experiments.demystified import Demystified
from iclreg.experiments.demystified.aniso import (
    QUICK,
    TOY,
    cosine,
    effective_preconditioner,
    fitted_disagreement,
    optimal_preconditioner,
    plan,
    sections,
    task_spec,
)
from iclreg.models.softmax_attention import SoftmaxAttentionConfig
from iclreg.tasks import build as build_task
from iclreg.train.loop import group_key
from iclreg.train.plan import train_plan


def test_cosine_is_the_frobenius_cosine():
    a = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    assert cosine(a, b) == pytest.approx((3 - 1) / (math.sqrt(6) * math.sqrt(11)))
    assert cosine(a, 2.5 * a) == pytest.approx(1.0)
    assert cosine(a, -a) == pytest.approx(-1.0)


def test_optimal_preconditioner_matches_a_least_squares_fit():
    """Regress y_q on the d^2 features vec(x_q h^T), h = X^T y / L, over simulated prompts: the
    fitted G is the population optimum up to Monte Carlo error (an independent computation)."""
    d, L, noise_var, w_var = 3, 6, 0.2, 0.5
    task = build_task(f"gaussian:d={d},n={L + 1},noise_std={math.sqrt(noise_var)},w_std={math.sqrt(w_var)},"
                      "cov=toeplitz,rho=0.6")
    p = task.sample(400_000, seed=0, step=0, dtype=torch.float64)
    x, y, xq, yq = p.x[:, :L], p.y[:, :L], p.x[:, L], p.y[:, L]
    h = torch.einsum("bld,bl->bd", x, y) / L  # (B, d)
    features = (xq[:, :, None] * h[:, None, :]).reshape(len(yq), d * d)  # x_q^T G h = <G, x_q h^T>
    fit = torch.linalg.lstsq(features, yq[:, None]).solution.reshape(d, d)
    exact = optimal_preconditioner(task.covariance, L, noise_var, w_var)
    assert torch.allclose(fit, exact, atol=0.03 * float(exact.abs().max()))
    assert not torch.allclose(exact, torch.linalg.inv(task.covariance), atol=0.1)  # finite L shrinks
    far = optimal_preconditioner(task.covariance, 10**7, noise_var, w_var)
    assert torch.allclose(far, torch.linalg.inv(task.covariance), atol=1e-5)


def _layer(blocks: list[torch.Tensor], mus: list[float], d: int) -> torch.nn.Module:
    """A softmax layer whose heads have KQ x-block = blocks[h] and OV = mu_h on the label."""
    model = SoftmaxAttentionConfig(d=d, heads=len(blocks)).build(torch.Generator().manual_seed(0))
    p = d + 1
    with torch.no_grad():
        model.K.copy_(torch.eye(p).repeat(len(blocks), 1, 1))
        Q = torch.zeros(len(blocks), p, p)
        for h, b in enumerate(blocks):
            Q[h, :d, :d] = b * math.sqrt(p)  # KQ = K^T Q / sqrt(p)
        model.Q.copy_(Q)
        model.V.copy_(torch.eye(p).repeat(len(blocks), 1, 1))
        O = torch.zeros(1, len(blocks), p)
        O[0, :, d] = torch.tensor(mus)
        model.O.copy_(O)
    return model


def test_effective_preconditioner_weights_heads_by_mu():
    d = 3
    m = torch.tensor([[1.0, 0.2, 0.0], [0.2, 2.0, 0.1], [0.0, 0.1, 0.5]])
    model = _layer([0.05 * m, -0.05 * m, torch.eye(d)], [3.0, -3.0, 1e-4], d)
    W, blocks, mu = effective_preconditioner(model)
    assert torch.allclose(W, 0.3 * m.double() + 1e-4 * torch.eye(d, dtype=torch.float64), atol=1e-6)
    assert mu.tolist() == pytest.approx([3.0, -3.0, 1e-4], rel=1e-5)
    assert torch.allclose(blocks[1], -0.05 * m.double(), atol=1e-7)
    assert cosine(W, m) > 0.999  # the dummy third head (mu ~ 0) barely counts


def test_a_layer_built_from_sigma_inverse_agrees_with_pgd_better_than_gd():
    """A cancelling pair with W_h = +-omega Sigma^-1 is first-order preconditioned (debiased) GD:
    its fitted disagreement with pgd is small and far below that with gd."""
    task = build_task(task_spec("toeplitz"))
    inverse = torch.linalg.inv(task.covariance).float()
    model = _layer([0.02 * inverse, -0.02 * inverse], [5.0, -5.0], he.D)
    fit, test = (task.sample(4000, seed=s, step=0) for s in (1, 2))
    c_pgd, pgd = fitted_disagreement(model, build_estimator("pgd:steps=1,lr=1,precond=inverse_cov",
                                                            task=task), fit, test)
    c_gd, gd = fitted_disagreement(model, build_estimator("gd:steps=1,lr=1", task=task), fit, test)
    # f ~ (2 omega mu / L) sum_i (y_i - ybar) x_i^T Sigma^-1 x_q: c_pgd ~ 2 * 0.02 * 5 / 40 = 0.005
    assert c_pgd == pytest.approx(0.005, rel=0.1) and c_gd > 0
    assert pgd < 0.05 < gd


def test_plan_shares_the_softmax_settings_and_one_ensemble_per_h():
    exp = Demystified(mode="quick", sizes=None)
    runs = plan(exp, QUICK)
    assert len(runs) == len(QUICK.heads) * 2 * QUICK.seeds and all(n.startswith("aniso/") for n in runs)
    config = next(iter(runs.values()))
    # the softmax part's learning rate and batch; 2k steps (the main part's 20k would double the budget)
    assert (config.optimizer.lr, config.train.steps, config.train.batch) == (he.QUICK.lr, 2_000,
                                                                             he.QUICK.batch)
    assert config.train.loss == "query"
    assert len({group_key(c) for c in runs.values()}) == len(QUICK.heads)


def test_toy_run_end_to_end(tmp_path):
    exp = Demystified(mode="quick", sizes=None)
    dirs = train_plan(plan(exp, TOY), tmp_path)
    (section,) = sections(exp, Runs(dirs, "cpu"), TOY)
    assert [c.id for c in section.claims] == ["aniso-KQ-toeplitz", "aniso-pgd-toeplitz", "aniso-KQ-spiked",
                                              "aniso-pgd-spiked"]
    assert all(c.measured for c in section.claims) and "aniso_kq.png" in section.figures
    assert all(math.isfinite(v) for c in section.claims for ch in c.checks for v in ch.numbers)
    (skipped,) = sections(exp, Runs({}, "cpu"), type(TOY)(heads=(), seeds=1, steps=1, batch=1, lr=0.1))
    assert not skipped.claims and "Skipped" in skipped.text[0]
