"""float32 accuracy of the all-prefix least-squares solvers near k = d (issue 13, A.1).

The normal equations square the condition number of X_k, which is worst at k = d (a square
Gaussian X_d). The bar is the solver of the reference codebases: Garg et al.'s
``LeastSquaresModel`` moves the prompts to the CPU and calls ``torch.linalg.lstsq`` per prefix
with the default driver, ``gelsy`` there (Householder QR with column pivoting); ``gels``
(plain QR, the only driver on CUDA) is checked too. Both are backward stable, error
~ kappa(X_k) eps, not kappa(X_k)^2 eps. iclreg's float32 answer must be within 10x of that
reference's maximum relative error over 1,024 noiseless prompts at k = d - 1, d and d + 1,
where "exact" is the float64 SVD solution (``gelsd``) of the very float32 data both solvers
see. Ridge and Bayes are held to the same bar against QR on the stacked system
[X_k; sqrt(lam) I] w = [y_k; 0] (256 prompts: float32 ``lstsq`` is slow on the CPU), and
rank-deficient prompts (the pseudo-inverse fallback) against ``gelsd`` in float32, the
rank-revealing driver they need.

On the code before the float64 solvers (seed 0) every test here failed, e.g. OLS at
k = d = 20: iclreg 3.1 against gelsy's 1.2e-3; ridge lam = 1e-3 (primal) at k = 19: 1.0
against gels' 1.8e-3; bayes sigma = 0.01 at k = 20: 0.11 against 4.6e-4.
"""

from __future__ import annotations

import pytest
import torch

from iclreg import estimators, tasks

PROMPTS = 1024


def prefix_lstsq(x: torch.Tensor, y: torch.Tensor, k: int, driver: str, lam: float = 0.0) -> torch.Tensor:
    """Prediction at position k from ``torch.linalg.lstsq`` on the first k pairs, (B,), in x's
    dtype; with lam > 0 the ridge problem as least squares on [X_k; sqrt(lam) I]."""
    X, Y = x[:, :k], y[:, :k]  # (B, k, d), (B, k)
    if lam:
        B, _, d = x.shape
        eye = (lam**0.5 * torch.eye(d, dtype=x.dtype)).expand(B, d, d)
        X, Y = torch.cat([X, eye], 1), torch.cat([Y, Y.new_zeros(B, d)], 1)
    w = torch.linalg.lstsq(X, Y.unsqueeze(-1), driver=driver).solution.squeeze(-1)  # (B, d)
    return (x[:, k] * w).sum(-1)


def max_rel_err(pred: torch.Tensor, exact: torch.Tensor) -> float:
    """max over prompts of |pred - exact| / |exact|."""
    return ((pred.double() - exact).abs() / exact.abs()).max().item()


def noiseless(d: int, seed: int, prompts: int = PROMPTS) -> tuple[torch.Tensor, torch.Tensor]:
    """Noiseless Gaussian prompts of n = d + 2 pairs, rounded to float32."""
    p = tasks.build(f"gaussian:d={d},n={d + 2}").sample(prompts, seed=seed, step=0, dtype=torch.float64)
    return p.x.float(), p.y.float()


def assert_within_10x_of_reference(ours, x, y, ks, driver, lam=0.0):
    """ours: (B, n) float32 predictions; checks each k in ks against the float32 reference."""
    x64, y64 = x.double(), y.double()
    for k in ks:
        exact = prefix_lstsq(x64, y64, k, "gelsd", lam)
        ref = max_rel_err(prefix_lstsq(x, y, k, driver, lam), exact)
        err = max_rel_err(ours[:, k], exact)
        assert err <= 10 * ref, f"k={k}: iclreg {err:.2e}, lstsq({driver}) {ref:.2e}"


@pytest.mark.parametrize("d", [20, 5])
@pytest.mark.parametrize("driver", ["gelsy", "gels"])
@pytest.mark.parametrize("name", ["ols", "bayes"])  # bayes on a noiseless task is OLS
def test_float32_least_squares_near_k_equals_d(name: str, driver: str, d: int, seed: int):
    x, y = noiseless(d, seed)
    est = estimators.build(name, task=tasks.build(f"gaussian:d={d},n={d + 2}"))
    ours = est(x, y)
    assert ours.dtype == torch.float32
    assert_within_10x_of_reference(ours, x, y, [d - 1, d, d + 1], driver)


@pytest.mark.parametrize("method", ["kernel", "primal"])
@pytest.mark.parametrize("lam", [1e-3, 0.1])
def test_float32_ridge_near_k_equals_d(method: str, lam: float, seed: int):
    d = 20
    x, y = noiseless(d, seed, prompts=256)
    ours = estimators.build(f"ridge:lam={lam},method={method}")(x, y)
    assert ours.dtype == torch.float32
    assert_within_10x_of_reference(ours, x, y, [d - 1, d, d + 1], "gels", lam)
    # every position against the float64 closed form, to float32 round-off
    x64, y64 = x.double(), y.double()
    exact = torch.zeros_like(y64)
    for k in range(1, d + 2):
        X, Y = x64[:, :k], y64[:, :k]
        w = torch.linalg.solve(X.mT @ X + lam * torch.eye(d, dtype=X.dtype), X.mT @ Y.unsqueeze(-1))
        exact[:, k] = (x64[:, k] * w.squeeze(-1)).sum(-1)  # (B,)
    torch.testing.assert_close(ours[:, 1:].double(), exact[:, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["kernel", "primal"])
def test_float32_ridge_with_a_large_lam_keeps_its_relative_accuracy(method: str, seed: int):
    """Predictions ~ 1e-8 |y| (lam = 1e8): every digit float32 can hold is right."""
    d, lam = 5, 1e8
    p = tasks.build(f"gaussian:d={d},n=15,noise_std=0.5").sample(64, seed=seed, step=0)
    x, y = p.x.float(), p.y.float()
    ours = estimators.build(f"ridge:lam={lam},method={method}")(x, y)
    x64, y64 = x.double(), y.double()
    for k in range(1, 15):
        exact = prefix_lstsq(x64, y64, k, "gelsd", lam)
        torch.testing.assert_close(ours[:, k], exact.float(), rtol=1e-6, atol=0)


def test_float32_bayes_with_small_noise(seed: int):
    """bayes with sigma = 0.01 is ridge with lam = sigma^2 = 1e-4 (identity prior)."""
    d = 20
    task = tasks.build(f"gaussian:d={d},n={d + 2},noise_std=0.01")
    p = task.sample(256, seed=seed, step=0, dtype=torch.float64)
    x, y = p.x.float(), p.y.float()
    ours = estimators.build("bayes", task=task)(x, y)
    assert_within_10x_of_reference(ours, x, y, [d - 1, d, d + 1], "gels", lam=0.01**2)


def test_float32_rank_deficient_prompts_use_an_accurate_pseudo_inverse(seed: int):
    """x has d - r exactly zero coordinates: X_k^T X_k is always singular and X_k X_k^T from
    k = r + 1 on, Cholesky fails and the pseudo-inverse answers (minimum-norm least squares)."""
    d, r = 8, 6
    x, y = noiseless(d, seed)
    x[..., r:] = 0.0
    y = (x * torch.linspace(-1, 1, d)).sum(-1)  # noiseless labels of a fixed w
    ours = estimators.build("ols")(x, y)
    assert ours.dtype == torch.float32
    assert_within_10x_of_reference(ours, x, y, [r - 1, r, r + 1, d + 1], "gelsd")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("spec", ["ols", "ridge:lam=0.001,method=kernel", "ridge:lam=0.001,method=primal"])
def test_float32_accuracy_on_cuda(spec: str, seed: int):
    """Same data on CUDA as on the CPU: float32 out, agreement to float32 round-off."""
    x, y = noiseless(20, seed)
    est = estimators.build(spec)
    cpu = est(x, y)
    cuda = est(x.cuda(), y.cuda())
    assert cuda.dtype == torch.float32 and cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-5, atol=1e-5)
