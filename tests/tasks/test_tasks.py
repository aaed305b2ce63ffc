"""Tasks: determinism in (seed, step), shapes and dtypes, and the sampled distributions
against their stated moments (covariance of x, prior of w, label noise).

Statistical checks compare an empirical moment with its target within 5 standard errors,
computed from Gaussian fourth moments: for zero-mean Gaussian x, Var(x_i x_j) =
Sigma_ii Sigma_jj + Sigma_ij^2, so the mean of N products has SE sqrt(that / N).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from iclreg import UsageError, tasks

TASK_SPECS = [
    "gaussian:d=4,n=6,noise_std=0.3",
    "gaussian:d=3,n=5,w_mean=[1.0,-2.0,0.5],cov=toeplitz,rho=0.4",
    "binary:d=5,n=4,w_std=0.7,noise_std=0.1",
    "sparse:d=6,n=5,s=2",
    "local:d=3,n=7,r=0.2,noise_std=0.5",
    "multitask:d=6,n=5,noise_std=0.2",
]

Z = 5.0  # standard errors allowed in statistical checks


def _second_moment_se(cov: np.ndarray, N: int) -> np.ndarray:
    """SE of the entries of (1/N) sum x x^T for x ~ N(0, cov)."""
    diag = np.diag(cov)
    return np.sqrt((np.outer(diag, diag) + cov**2) / N)


def _assert_second_moment(samples: np.ndarray, cov: np.ndarray) -> None:
    """samples (N, d) zero-mean: (1/N) X^T X = cov entrywise within Z standard errors."""
    N = samples.shape[0]
    emp = samples.T @ samples / N
    err = np.abs(emp - cov) / _second_moment_se(cov, N)
    assert err.max() < Z, (emp.round(3), cov.round(3))


# --- determinism, shapes, dtypes -----------------------------------------------------------
@pytest.mark.parametrize("spec", TASK_SPECS)
def test_pure_function_of_seed_and_step(spec: str, seed: int):
    task = tasks.build(spec)
    a = task.sample(8, seed=seed, step=3)
    task.sample(8, seed=seed, step=4)  # no hidden state between calls
    b = task.sample(8, seed=seed, step=3)
    for t, u in ((a.x, b.x), (a.y, b.y), (a.w, b.w)):
        assert torch.equal(t, u)
    for other in (task.sample(8, seed=seed, step=4), task.sample(8, seed=seed + 1, step=3)):
        assert not torch.allclose(a.x, other.x) and not torch.allclose(a.y, other.y)
    # neighbouring (seed, step) pairs must not share a stream
    c, e = task.sample(8, seed=seed, step=seed + 1), task.sample(8, seed=seed + 1, step=seed)
    assert not torch.allclose(c.x, e.x)


@pytest.mark.parametrize("spec", TASK_SPECS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_dtype(spec: str, dtype: torch.dtype):
    task = tasks.build(spec)
    K = task.num_labels
    p = task.sample(3, dtype=dtype)
    assert p.x.shape == (3, task.n, task.d)
    assert p.y.shape == ((3, task.n) if K == 1 else (3, task.n, K))
    assert p.w.shape == ((3, task.d) if K == 1 else (3, task.d, K))
    assert p.x.dtype == p.y.dtype == p.w.dtype == dtype
    q = task.sample(2, n=11, dtype=dtype)  # prompt length override
    assert q.x.shape == (2, 11, task.d) and q.y.shape[:2] == (2, 11)
    priors = task.priors()
    assert len(priors) == K
    for prior in priors:
        assert prior.mean.shape == (task.d,) and prior.cov.shape == (task.d, task.d)
        assert prior.mean.dtype == prior.cov.dtype == torch.float64


@pytest.mark.parametrize(
    "spec",
    [
        "gaussian:rho=1.0",
        "gaussian:d=3,cov=spectrum,spectrum=[1.0,2.0]",
        "gaussian:d=2,cov=spectrum,spectrum=[1.0,-2.0]",
        "gaussian:d=3,w_mean=[1.0,2.0]",
        "gaussian:cond=0.5",
        "gaussian:noise_std=-1",
        "sparse:d=4,s=5",
        "local:r=0",
        "multitask:d=4,subsets=[[0,4]]",
        "multitask:d=4,subsets=[[0,0]]",
    ],
)
def test_invalid_parameters_are_usage_errors(spec: str):
    with pytest.raises(UsageError):
        tasks.build(spec)


@pytest.mark.parametrize("spec", [
    "gaussian:d=3,noise_std=1e200", "gaussian:d=3,w_std=1e200", "gaussian:d=3,w_mean=[0,1e200,0]",
    "gaussian:d=2,cov=spectrum,spectrum=[1e300,1]", "local:d=3,r=1e300", "binary:d=4,w_std=1e20",
    "sparse:d=6,s=2,noise_std=1e16", "multitask:d=6,noise_std=1e100",
])
def test_scales_whose_results_overflow_are_refused(spec: str):
    """Labels whose second moment exceeds 1e30 would turn errors into inf (float32 holds 3.4e38),
    so the task is refused, naming its scales; 1e14 is still a task."""
    with pytest.raises(UsageError, match="would have a second moment of about .* which results cannot hold"):
        tasks.build(spec)
    assert tasks.build("gaussian:d=3,noise_std=1e14,w_std=1e14").noise_std == 1e14


# --- covariance of x -------------------------------------------------------------------------
COV_SPECS = {
    "gaussian:d=4,n=50": np.eye(4),
    "gaussian:d=4,n=50,cov=toeplitz,rho=-0.6": scipy.linalg.toeplitz((-0.6) ** np.arange(4)),
    "gaussian:d=4,n=50,cov=spectrum,spectrum=[0.1,1.0,2.0,5.0]": np.diag([0.1, 1.0, 2.0, 5.0]),
    "gaussian:d=4,n=50,cov=rotated,cond=30": None,  # checked through its spectrum below
    "gaussian:d=5,n=50,cov=rotated,cond=100,cov_seed=3": None,
}


@pytest.mark.parametrize("spec", list(COV_SPECS))
def test_covariance_of_x(spec: str, seed: int):
    task = tasks.build(spec)
    sigma = task.covariance.numpy()
    assert task.covariance.dtype == torch.float64
    expected = COV_SPECS[spec]
    if expected is not None:
        np.testing.assert_allclose(sigma, expected, rtol=1e-12, atol=1e-12)
    root = task.covariance_sqrt.numpy()
    np.testing.assert_allclose(root, root.T, atol=1e-12)
    np.testing.assert_allclose(root @ root, sigma, rtol=1e-10, atol=1e-10)
    x = task.sample(4000, seed=seed, step=0, dtype=torch.float64).x.reshape(-1, task.d).numpy()
    _assert_second_moment(x, sigma)
    assert np.abs(x.mean(0)).max() < Z * np.sqrt(np.diag(sigma).max() / len(x))


@pytest.mark.parametrize(("d", "cond"), [(4, 30.0), (5, 100.0), (8, 10.0)])
def test_rotated_covariance_spectrum(d: int, cond: float):
    """Fu et al.'s sampler: eigenvalues cond * c on floor(d/2) coordinates and c on the rest,
    with trace d; a genuinely rotated (non-diagonal) matrix that depends on cov_seed."""
    task = tasks.build(f"gaussian:d={d},cov=rotated,cond={cond}")
    sigma = task.covariance.numpy()
    np.testing.assert_allclose(sigma, sigma.T, atol=1e-12)
    evals = np.linalg.eigvalsh(sigma)
    assert evals[-1] / evals[0] == pytest.approx(cond, rel=1e-9)
    assert np.trace(sigma) == pytest.approx(d, rel=1e-12)
    c = d / (d // 2 * cond + (d - d // 2))
    np.testing.assert_allclose(evals, [c] * (d - d // 2) + [cond * c] * (d // 2), rtol=1e-9)
    assert np.abs(sigma - np.diag(np.diag(sigma))).max() > 0.1
    other = tasks.build(f"gaussian:d={d},cov=rotated,cond={cond},cov_seed=1").covariance
    assert not torch.allclose(other, task.covariance)


# --- priors of w and the label noise ---------------------------------------------------------
PRIOR_SPECS = [
    "gaussian:d=4,n=3,w_std=0.6,noise_std=0.4",
    "gaussian:d=3,n=3,w_mean=[1.0,-2.0,0.5],w_std=1.5,noise_std=0.1",
    "gaussian:d=3,n=3,w_mean=0.7,noise_std=0.2",
    "binary:d=4,n=3,w_std=0.7,noise_std=0.3",
    "sparse:d=6,n=3,s=2,w_std=2.0,noise_std=0.5",
    "local:d=3,n=3,w_std=0.8,noise_std=0.25,w_mean=0.3",
    "multitask:d=6,n=3,w_std=1.3,noise_std=0.2",
    "multitask:d=5,n=3,subsets=[[0],[1,2,3,4],[0,4]],noise_std=0.5",
]


@pytest.mark.parametrize("spec", PRIOR_SPECS)
def test_priors_match_sampled_w(spec: str, seed: int):
    """priors() gives the mean and covariance of the sampled w (per label slot). Binary and
    sparse w are not Gaussian, so the standard errors are the empirical ones."""
    task = tasks.build(spec)
    N = 40_000
    w = task.sample(N, seed=seed, step=1, dtype=torch.float64).w.numpy()
    w = w[..., None] if w.ndim == 2 else w  # (N, d, K)
    for k, prior in enumerate(task.priors()):
        mean, cov = prior.mean.numpy(), prior.cov.numpy()
        wk = w[:, :, k]
        se_mean = wk.std(0, ddof=1) / math.sqrt(N)
        assert np.all(np.abs(wk.mean(0) - mean) <= Z * se_mean + 1e-12), (k, wk.mean(0), mean)
        products = (wk - mean)[:, :, None] * (wk - mean)[:, None, :]  # (N, d, d)
        se_cov = products.std(0, ddof=1) / math.sqrt(N)
        emp = products.mean(0)
        assert np.all(np.abs(emp - cov) <= Z * se_cov + 1e-12), (k, emp.round(3), cov.round(3))


@pytest.mark.parametrize("spec", PRIOR_SPECS)
def test_label_noise(spec: str, seed: int):
    """y - <w, x> has variance noise_std^2 (sqrt(d_k) noise_std for multitask slot k), and it
    matches the noise_std reported by priors()."""
    task = tasks.build(spec)
    p = task.sample(20_000, seed=seed, step=2, dtype=torch.float64)
    w = p.w if p.w.dim() == 3 else p.w.unsqueeze(-1)  # (B, d, K)
    y = p.y if p.y.dim() == 3 else p.y.unsqueeze(-1)  # (B, n, K)
    resid = (y - torch.einsum("bnd,bdk->bnk", p.x, w)).reshape(-1, task.num_labels).numpy()
    if task.name == "multitask":
        expected = [math.sqrt(len(s)) * task.noise_std for s in task.subsets]
    else:
        expected = [task.noise_std]
    for k, std in enumerate(expected):
        assert task.priors()[k].noise_std == pytest.approx(std, rel=1e-12)
        var = float((resid[:, k] ** 2).mean())
        assert abs(var - std**2) <= Z * std**2 * math.sqrt(2 / len(resid)), (k, var, std**2)
        assert abs(resid[:, k].mean()) <= Z * std / math.sqrt(len(resid))


def test_noiseless_labels_are_exact(seed: int):
    for spec in ("gaussian:d=4,n=6", "sparse:d=5,n=6,s=2", "multitask:d=6,n=5"):
        task = tasks.build(spec)
        p = task.sample(16, seed=seed, dtype=torch.float64)
        w = p.w if p.w.dim() == 3 else p.w.unsqueeze(-1)
        y = p.y if p.y.dim() == 3 else p.y.unsqueeze(-1)
        torch.testing.assert_close(y, torch.einsum("bnd,bdk->bnk", p.x, w), rtol=0, atol=1e-12)


# --- task-specific structure -------------------------------------------------------------------
def test_binary_w_is_plus_or_minus_w_std(seed: int):
    task = tasks.build("binary:d=6,n=2,w_std=0.7")
    w = task.sample(20_000, seed=seed, dtype=torch.float64).w
    assert torch.all(w.abs() == 0.7)
    frac = (w > 0).double().mean(0).numpy()  # each coordinate a fair coin
    assert np.all(np.abs(frac - 0.5) <= Z * 0.5 / math.sqrt(w.shape[0]))


def test_sparse_w_has_exactly_s_nonzeros(seed: int):
    task = tasks.build("sparse:d=7,n=2,s=3,w_std=1.0")
    w = task.sample(20_000, seed=seed, dtype=torch.float64).w
    assert torch.all((w != 0).sum(-1) == 3)
    frac = (w != 0).double().mean(0).numpy()  # a uniform support: each coordinate s/d
    p = 3 / 7
    assert np.all(np.abs(frac - p) <= Z * math.sqrt(p * (1 - p) / w.shape[0]))


def test_local_context_lies_around_the_query(seed: int):
    """x_q ~ N(0, Sigma) is the last point; x_i - x_q ~ N(0, r^2 Sigma) for the others."""
    r, rho = 0.3, 0.5
    task = tasks.build(f"local:d=3,n=9,r={r},cov=toeplitz,rho={rho}")
    sigma = scipy.linalg.toeplitz(rho ** np.arange(3))
    x = task.sample(5000, seed=seed, dtype=torch.float64).x.numpy()
    query = x[:, -1]  # (B, d)
    offsets = (x[:, :-1] - query[:, None]).reshape(-1, 3)  # (B (n-1), d)
    _assert_second_moment(query, sigma)
    _assert_second_moment(offsets, r**2 * sigma)
    # the spread per coordinate, as asked of the sampler: within 5 SE of r^2 Sigma_jj
    var = (offsets**2).mean(0)
    assert np.all(np.abs(var - r**2 * np.diag(sigma)) <= Z * r**2 * np.sqrt(2 / len(offsets)))


def test_multitask_w_lives_on_its_subset(seed: int):
    subsets = [[0, 1, 2, 3], [2, 3, 4, 5]]
    task = tasks.build("multitask:d=6,n=4,noise_std=0.3,w_std=1.0")
    assert [list(s) for s in task.subsets] == subsets and task.num_labels == 2
    w = task.sample(5000, seed=seed, dtype=torch.float64).w  # (B, d, K)
    for k, sub in enumerate(subsets):
        outside = [j for j in range(6) if j not in sub]
        assert torch.all(w[:, outside, k] == 0)
        assert torch.all(w[:, sub, k] != 0)
        var = w[:, sub, k].square().mean().item()
        assert abs(var - 1.0) <= Z * math.sqrt(2 / (5000 * len(sub)))
    # the two slots are independent draws on the shared coordinates 2, 3
    corr = np.corrcoef(w[:, 2, 0].numpy(), w[:, 2, 1].numpy())[0, 1]
    assert abs(corr) < Z / math.sqrt(5000)


def test_seeds_lie_in_one_range():
    """0 <= seed < 2^63 for prompts and covariances alike (what torch.manual_seed takes)."""
    top = 2**63 - 1
    assert tasks.generator(top, 0).initial_seed() != tasks.generator(top - 1, 0).initial_seed()
    for seed in (-1, 2**63, 2**70):
        with pytest.raises(UsageError, match=r"seed must be an integer in \[0, 2\*\*63\)"):
            tasks.generator(seed, 0)
        with pytest.raises(UsageError, match=r"cov_seed must be an integer in \[0, 2\*\*63\)"):
            tasks.build(f"gaussian:d=3,cov=rotated,cov_seed={seed}")


@pytest.mark.parametrize("spec", TASK_SPECS)
def test_meta_prompts_have_the_real_shapes_and_no_storage(spec):
    task = tasks.build(spec)
    real = task.sample(3, 0, 0, n=7, dtype=torch.float64)
    meta = task.sample(3, 0, 0, n=7, device="meta", dtype=torch.float64)
    for r, m in zip((real.x, real.y, real.w), (meta.x, meta.y, meta.w), strict=True):
        assert m.is_meta and m.shape == r.shape and m.dtype == r.dtype
    huge = task.sample(10**9, 0, 0, device="meta")  # shapes only: no memory
    assert huge.x.shape == (10**9, task.n, task.d)


@pytest.mark.parametrize("value", ["1e999", "-1e999", "nan", "inf"])
def test_task_numbers_must_be_finite(value):
    with pytest.raises(UsageError, match="must be a finite number"):
        tasks.build(f"gaussian:noise_std={value}")
