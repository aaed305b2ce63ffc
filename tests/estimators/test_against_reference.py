"""Vectorised estimators against the per-prompt, per-position reference (reference.py), and
common tests run on every registered estimator (scikit-learn style): a new estimator gets
the causality, dtype and batch-independence checks for free, and fails the coverage test
until it has a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from iclreg import estimators, tasks
from iclreg.estimators import ESTIMATORS

from .reference import REFERENCES, reference_predict

# Some GD settings here diverge on some prompts (lr lambda_max > 2): they check the arithmetic,
# divergent regime included, against the reference; the warning itself is tested in test_divergence.py.
pytestmark = pytest.mark.filterwarnings("ignore::iclreg.estimators.iterative.DivergenceWarning")

# Every registered name appears at least once; several settings per family. "{diag}" is
# replaced by d positive numbers (a diagonal preconditioner for the task at hand).
SPECS = [
    "zero",
    "averaging",
    "knn:k=1",
    "knn:k=3",
    "ols",
    "ridge:lam=0.5",
    "ridge:lam=2.0,method=kernel",
    "ridge:lam=0.1,method=primal",
    "bayes",
    "gd:steps=3,lr=0.05",
    "gd:steps=4,lr=0.5,mean=true",
    "pgd:steps=3,lr=0.05",
    "pgd:steps=2,lr=0.3,mean=true,precond=identity",
    "pgd:steps=3,lr=0.04,precond={diag}",
    "newton:steps=0",
    "newton:steps=3",
    "newton:steps=8,scale=spectral",
    "kernel",
    "kernel:omega=0.5,mu=1.5",
    "kernel:omega=[0.2,-0.1,0.7],mu=[1.0,2.0,-0.5]",
    "single_head",
    "single_head:L=40",
    "single_head:L=7,noise_std=0.5",
    "debiased_gd",
    "debiased_gd:lr=0.897",
    "sparse_bayes",  # the task's s on sparse tasks, else s = d
    "sparse_bayes:s=2",
]

TASK_SPECS = [
    "gaussian:d=4,n=9,noise_std=0.5",  # k < d and k > d
    "gaussian:d=3,n=12,noise_std=0.3,cov=toeplitz,rho=0.6,w_mean=[0.5,-1.0,0.2]",
    "gaussian:d=6,n=4,noise_std=0.2,w_std=0.7",  # n < d: every position has k < d
    "gaussian:d=4,n=9,cov=rotated,cond=10",  # noiseless: bayes is the sigma -> 0 limit
    # He et al.'s two tasks plus a third of another size: per-slot priors and noise differ
    "multitask:d=6,n=10,noise_std=0.3,subsets=[[0,1,2,3],[2,3,4,5],[1,4]]",
    "multitask:d=5,n=8,subsets=[[0,1],[1,2,3,4]]",  # singular prior and no noise
    "sparse:d=5,n=8,s=2,noise_std=0.2,w_std=1.5",  # bayes uses the moments (s/d) tau^2 I
    "sparse:d=4,n=7,s=2",  # noiseless: sparse_bayes interpolates from k = s + 1 on
    "local:d=3,n=7,r=0.3,noise_std=0.1,w_mean=0.5",  # clustered inputs, scalar prior mean
]

BATCH = 5


def _spec_for(spec: str, d: int) -> str:
    diag = ",".join(f"{0.5 + 0.25 * j:g}" for j in range(d))
    return spec.replace("{diag}", f"[{diag}]")


def _scale(a: np.ndarray) -> float:
    return max(1.0, float(np.abs(a).max()))


def test_specs_cover_the_registry():
    names = {s.partition(":")[0] for s in SPECS}
    assert names == set(ESTIMATORS.names()), "add a SPEC for every registered estimator"
    assert set(REFERENCES) == set(ESTIMATORS.names()), "add a reference for every estimator"


@pytest.mark.parametrize("task_spec", TASK_SPECS)
@pytest.mark.parametrize("spec", SPECS)
def test_float64_matches_reference(spec: str, task_spec: str, seed: int):
    task = tasks.build(task_spec)
    est = estimators.build(_spec_for(spec, task.d), task=task)
    p = task.sample(BATCH, seed=seed, step=1, dtype=torch.float64)
    out = est(p.x, p.y)
    assert out.dtype == torch.float64 and out.shape == p.y.shape
    ref = reference_predict(est, task, p.x.numpy(), p.y.numpy())
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-9, atol=1e-9 * _scale(ref))


def _float32_mask(spec: str, n: int, d: int) -> np.ndarray:
    """Positions compared in float32: OLS is ill-conditioned at k = d and k = d + 1
    (relative errors up to ~1e-3 there, ~1e-5 elsewhere)."""
    keep = np.ones(n, dtype=bool)
    if spec == "ols":
        keep[d : d + 2] = False
    return keep


# bayes on the noiseless tasks is OLS-like; float32 is compared on the noisy tasks only
FLOAT32_TASKS = [TASK_SPECS[0], TASK_SPECS[1], TASK_SPECS[2], TASK_SPECS[4]]


@pytest.mark.parametrize("task_spec", FLOAT32_TASKS)
@pytest.mark.parametrize("spec", SPECS)
def test_float32_close_to_reference(spec: str, task_spec: str, seed: int):
    task = tasks.build(task_spec)
    est = estimators.build(_spec_for(spec, task.d), task=task)
    p = task.sample(BATCH, seed=seed, step=2, dtype=torch.float32)
    out = est(p.x, p.y)
    assert out.dtype == torch.float32 and out.shape == p.y.shape
    ref = reference_predict(est, task, p.x.double().numpy(), p.y.double().numpy())
    keep = _float32_mask(spec, task.n, task.d)
    np.testing.assert_allclose(out.numpy()[:, keep], ref[:, keep], rtol=2e-4, atol=2e-4 * _scale(ref))


# --- common tests over the registry ------------------------------------------------------
COMMON_TASKS = ["gaussian:d=3,n=8,noise_std=0.5", "gaussian:d=5,n=4,noise_std=0.1"]


def assert_causal(predict, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator) -> None:
    """For every i: replacing x[:, i+1:] and y[:, i:] by fresh values leaves out[:, :i+1]."""
    base = predict(x, y)
    n = x.shape[1]
    for i in range(n):
        x2, y2 = x.clone(), y.clone()
        x2[:, i + 1 :] = 3 * torch.randn(x2[:, i + 1 :].shape, generator=gen, dtype=x.dtype)
        y2[:, i:] = 3 * torch.randn(y2[:, i:].shape, generator=gen, dtype=y.dtype)
        out = predict(x2, y2)
        torch.testing.assert_close(out[:, : i + 1], base[:, : i + 1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("task_spec", COMMON_TASKS)
@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_prefix_causality(name: str, task_spec: str, seed: int):
    task = tasks.build(task_spec)
    est = estimators.build(name, task=task)
    p = task.sample(6, seed=seed, step=3, dtype=torch.float64)
    assert_causal(est, p.x, p.y, torch.Generator().manual_seed(seed))


def test_causality_check_detects_a_leak(seed: int):
    """The checker above fails on a predictor that peeks at its own label or the future."""
    task = tasks.build(COMMON_TASKS[0])
    p = task.sample(4, seed=seed, step=3, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    own_label = estimators.build("averaging")
    with pytest.raises(AssertionError):
        assert_causal(lambda x, y: own_label(x, y) + 1e-3 * y, p.x, p.y, gen)
    with pytest.raises(AssertionError):
        assert_causal(lambda x, y: own_label(x, y) + 1e-3 * x[:, -1:, 0], p.x, p.y, gen)


@pytest.mark.parametrize("name", ESTIMATORS.names())
def test_dtype_shape_and_batch_independence(name: str, seed: int):
    """float32 in -> float32 out; (B, n, K) labels -> (B, n, K); prompts do not interact."""
    task = tasks.build("multitask:d=4,n=7,noise_std=0.2,subsets=[[0,1,2],[1,3]]")
    est = estimators.build(name, task=task)
    p = task.sample(6, seed=seed, step=4, dtype=torch.float64)
    out = est(p.x, p.y)
    assert out.shape == (6, 7, 2) and out.dtype == torch.float64
    assert torch.isfinite(out).all()
    halves = torch.cat([est(p.x[:3], p.y[:3]), est(p.x[3:], p.y[3:])])
    torch.testing.assert_close(halves, out, rtol=1e-12, atol=1e-12)
    slot0 = est(p.x, p.y[..., 0])  # (B, n) labels are predicted as label slot 0
    assert slot0.shape == (6, 7)
    torch.testing.assert_close(slot0, out[..., 0], rtol=1e-12, atol=1e-12)
    out32 = est(p.x.float(), p.y.float())
    assert out32.dtype == torch.float32 and out32.shape == out.shape


@pytest.mark.parametrize(
    ("name", "task_spec"),
    [(name, t) for name in ESTIMATORS.names() for t in COMMON_TASKS],
)
def test_later_non_finite_values_do_not_leak(name: str, task_spec: str, seed: int):
    """out[:, :n-1] may not depend on y[:, n-1] or x[:, n-1] at all, even when they are nan."""
    task = tasks.build(task_spec)
    est = estimators.build(name, task=task)
    p = task.sample(4, seed=seed, step=5, dtype=torch.float64)
    base = est(p.x, p.y)[:, :-1]
    x_nan, y_nan = p.x.clone(), p.y.clone()
    x_nan[:, -1] = float("nan")
    y_nan[:, -1] = float("nan")
    torch.testing.assert_close(est(x_nan, p.y)[:, :-1], base, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(est(p.x, y_nan)[:, :-1], base, rtol=1e-10, atol=1e-12)
