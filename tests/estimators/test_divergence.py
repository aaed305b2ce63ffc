"""GD that diverges says so (DivergenceWarning) and names the largest stable lr, computed here
independently from the eigenvalues of the prompts' Gram matrices; stable GD stays silent."""

from __future__ import annotations

import re
import warnings

import pytest
import torch

from iclreg.estimators import build
from iclreg.estimators.iterative import DivergenceWarning
from iclreg.tasks import build as build_task


def _prompts(spec: str, B: int = 256, seed: int = 0):
    p = build_task(spec).sample(B, seed, 0, dtype=torch.float64)
    return p.x, p.y


def _top_eigenvalues(x: torch.Tensor) -> torch.Tensor:
    """lambda_max(X_k^T X_k) for every prompt and prefix k (B, n), one prefix at a time."""
    B, n, d = x.shape
    out = torch.zeros(B, n, dtype=torch.float64)
    for k in range(1, n):
        X = x[:, :k]
        out[:, k] = torch.linalg.eigvalsh(X.mT @ X)[:, -1]
    return out


def _named_lr(record) -> float:
    return float(re.search(r"lr below (\S+) is stable", str(record.message)).group(1))


def test_divergent_gd_warns_and_names_the_stable_lr(seed):
    x, y = _prompts("gaussian:d=5,n=41", seed=seed)
    gd = build("gd:steps=10,lr=0.1")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        pred = gd(x, y)
        gd(x, y)  # the same estimator again: no second warning
    assert len(records) == 1 and records[0].category is DivergenceWarning
    assert re.match(r"gd:steps=10,lr=0\.1 diverges on these prompts \(from k = \d+ on, its step grew "
                    r"\d\.\de\+\d\d-fold over 10 steps\): lr exceeds the stability bound",
                    str(records[0].message))
    assert pred.abs().max() > 1e6  # it did diverge
    stable = 2 / _top_eigenvalues(x).max().item()  # the last prefix decides without mean
    assert _named_lr(records[0]) == pytest.approx(stable, rel=5e-3)  # printed to 3 digits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # half the named lr: silent, and it converges
        assert build(f"gd:steps=10,lr={0.5 * stable}")(x, y).abs().max() < 100


def test_the_bound_with_mean_checks_every_prefix(seed):
    x, y = _prompts("gaussian:d=5,n=12", seed=seed)
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        build("gd:steps=6,lr=1.0,mean=true")(x, y)
    assert [r.category for r in records] == [DivergenceWarning]
    assert "mean=true" in str(records[0].message)
    k = torch.arange(12, dtype=torch.float64).clamp_min(1)
    stable = (2 * k[1:] / _top_eigenvalues(x)[:, 1:].amax(0)).min().item()  # lr_k = lr / k
    assert _named_lr(records[0]) == pytest.approx(stable, rel=5e-3)  # printed to 3 digits


def test_overflow_is_reported_and_pgd_warns_too():
    x, y = _prompts("gaussian:d=5,n=41", B=16)
    with pytest.warns(DivergenceWarning, match=r"its step grew to inf/nan over 400 steps"):
        out = build("gd:steps=400,lr=10")(x, y)
    assert not torch.isfinite(out).all()
    task = build_task("gaussian:d=5,n=41")
    with pytest.warns(DivergenceWarning, match=r"^pgd:steps=10,lr=0\.1 diverges"):
        build("pgd:steps=10,lr=0.1,precond=identity", task=task)(x, y)


@pytest.mark.parametrize("spec", ["gd:steps=100,lr=0.01", "gd:steps=1,lr=5", "gd:steps=3,lr=0.02,mean=true",
                                  "pgd:steps=20,lr=0.01"])
def test_stable_or_single_step_gd_is_silent(spec):
    x, y = _prompts("gaussian:d=20,n=41", B=64)  # lambda_max(S_40) about 120 < 2 / 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = build(spec, task=build_task("gaussian:d=20,n=41"))(x, y)
    assert torch.isfinite(out).all()
