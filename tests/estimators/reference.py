"""Slow, obviously-correct reference implementations of every registered estimator.

Each reference works on one prompt and one position at a time in float64 NumPy/SciPy and
follows the formulas of the estimator module docstrings and papers.md (section 5, He et al.,
arXiv 2503.12734; section 3, Fu et al., arXiv 2310.17086), written out directly: no prefix
sums, no Cholesky tricks, no shared code with ``iclreg.estimators``.

Conventions (the predictor contract of DESIGN.md): position i predicts y_i from the query
x_q = x_i and the first k = i pairs (X = x[:i] of shape (k, d), y[:i] of shape (k,));
position 0 has no examples.

The only things read from the library are configuration values: the fields of the built
estimator (``est.lr``, ``est.steps``, ...) and the task's parameters (``d``, ``rho``,
``w_mean``, ``subsets``, ...). Prior moments and covariances are rebuilt here from those
parameters; only the random rotation of ``cov=rotated`` is taken from the task (its
properties are tested in tests/tasks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import scipy.linalg
import scipy.special

# --- the task's moments, rebuilt from its parameters -------------------------------------


def x_covariance(task) -> np.ndarray:
    """Sigma, the covariance of x, (d, d)."""
    d = task.d
    if task.cov == "identity":
        return np.eye(d)
    if task.cov == "toeplitz":
        return scipy.linalg.toeplitz(task.rho ** np.arange(d))
    if task.cov == "spectrum":
        return np.diag(np.asarray(task.spectrum, dtype=float))
    if task.cov == "rotated":
        return task.covariance.double().numpy()
    raise AssertionError(f"reference: unknown covariance {task.cov}")


def prior_moments(task, slot: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(m, P, sigma) of label slot ``slot``: w ~ N(m, P), noise std sigma."""
    d, tau, sigma = task.d, task.w_std, task.noise_std
    if task.name == "multitask":
        sub = list(task.subsets[slot])
        diag = np.zeros(d)
        diag[sub] = 1.0
        return np.zeros(d), tau**2 * np.diag(diag), math.sqrt(len(sub)) * sigma
    if task.name in ("gaussian", "local"):
        mean = np.broadcast_to(np.asarray(task.w_mean, dtype=float), (d,)).copy()
        return mean, tau**2 * np.eye(d), sigma
    if task.name == "binary":
        return np.zeros(d), tau**2 * np.eye(d), sigma
    if task.name == "sparse":
        return np.zeros(d), (task.s / d) * tau**2 * np.eye(d), sigma
    raise AssertionError(f"reference: no prior for task {task.name}")


# --- one position of one prompt: (est, task, slot, X (k, d), y (k,), xq (d,)) -> float ----


def _ols_weights(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(X, y, rcond=None)[0]  # minimum-norm least squares


def zero(est, task, slot, X, y, xq):
    return 0.0


def averaging(est, task, slot, X, y, xq):
    k = len(y)
    if k == 0:
        return 0.0
    return float(xq @ (sum(y[j] * X[j] for j in range(k)) / k))


def knn(est, task, slot, X, y, xq):
    k = len(y)
    if k == 0:
        return 0.0
    dist = [math.sqrt(float(((X[j] - xq) ** 2).sum())) for j in range(k)]
    nearest = sorted(range(k), key=lambda j: dist[j])[: est.k]
    return float(np.mean([y[j] for j in nearest]))


def ols(est, task, slot, X, y, xq):
    if len(y) == 0:
        return 0.0
    return float(xq @ _ols_weights(X, y))


def ridge(est, task, slot, X, y, xq):
    if len(y) == 0:
        return 0.0
    if est.lam == 0:
        return ols(est, task, slot, X, y, xq)
    d = X.shape[1]
    w = np.linalg.solve(X.T @ X + est.lam * np.eye(d), X.T @ y)
    return float(xq @ w)


def bayes(est, task, slot, X, y, xq):
    """Posterior mean m + P X^T (X P X^T + sigma^2 I)^-1 (y - X m), predicted at xq."""
    m, P, sigma = prior_moments(task, slot)
    k = len(y)
    if k == 0:
        return float(xq @ m)
    A = X @ P @ X.T + sigma**2 * np.eye(k)
    r = y - X @ m
    # sigma = 0: the noiseless limit, with the pseudo-inverse where X P X^T is singular
    alpha = np.linalg.solve(A, r) if sigma > 0 else np.linalg.lstsq(A, r, rcond=1e-10)[0]
    return float(xq @ (m + P @ X.T @ alpha))


def sparse_bayes(est, task, slot, X, y, xq):
    """The mixture over every support T of size s (a slow loop over supports): the Gaussian
    posterior mean on T, weighted by N(y; 0, tau^2 X_T X_T^T + sigma^2 I) (observation space);
    at sigma = 0 and k > s, the support that interpolates the examples (least residual)."""
    d, k = X.shape[1], len(y)
    s = est.s if est.s is not None else getattr(task, "s", d)
    tau, sigma = task.w_std, prior_moments(task, slot)[2]
    if k == 0:
        return 0.0
    logs, preds, residuals = [], [], []
    for T in itertools.combinations(range(d), s):
        XT = X[:, list(T)]
        if sigma == 0 and k > s:
            wT = np.linalg.lstsq(XT, y, rcond=None)[0]
            residuals.append(float(np.sum((y - XT @ wT) ** 2)))
            preds.append(float(xq[list(T)] @ wT))
            continue
        C = tau**2 * XT @ XT.T + sigma**2 * np.eye(k)
        alpha = np.linalg.solve(C, y)
        logs.append(-0.5 * y @ alpha - 0.5 * np.linalg.slogdet(C)[1])
        preds.append(tau**2 * float(xq[list(T)] @ XT.T @ alpha))
    if residuals:
        return preds[int(np.argmin(residuals))]
    weights = np.exp(np.array(logs) - max(logs))
    return float(weights @ np.array(preds) / weights.sum())


def _gd_loop(est, X, y, P):
    k, d = X.shape
    lr = est.lr / max(k, 1) if est.mean else est.lr
    w = np.zeros(d)
    for _ in range(est.steps):
        w = w - lr * P @ (X.T @ (X @ w - y))
    return w


def gd(est, task, slot, X, y, xq):
    return float(xq @ _gd_loop(est, X, y, np.eye(X.shape[1])))


def pgd(est, task, slot, X, y, xq):
    d = X.shape[1]
    if isinstance(est.precond, str):
        P = np.eye(d) if est.precond == "identity" else np.linalg.inv(x_covariance(task))
    else:
        P = np.diag(np.asarray(est.precond, dtype=float))
    return float(xq @ _gd_loop(est, X, y, P))


def newton(est, task, slot, X, y, xq):
    """Newton-Schulz on S = X^T X: M_0 = S / ||S S^T||, M <- 2M - M S M, w = M X^T y."""
    if len(y) == 0:
        return 0.0
    S = X.T @ X
    norm = np.linalg.norm(S @ S.T, "fro" if est.scale == "fro" else 2)
    M = S / norm
    for _ in range(est.steps):
        M = 2 * M - M @ S @ M
    return float(xq @ (M @ X.T @ y))


def _softmax_kernel(X, y, xq, omegas, mus):
    """sum_h mu_h sum_i y_i exp(omega_h <x_i, xq>) / sum_j exp(omega_h <x_j, xq>)."""
    if len(y) == 0:
        return 0.0
    total = 0.0
    for omega, mu in zip(omegas, mus, strict=True):
        scores = np.array([omega * float(X[j] @ xq) for j in range(len(y))])
        total += mu * float(scipy.special.softmax(scores) @ y)
    return total


def _heads(value) -> list[float]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def kernel(est, task, slot, X, y, xq):
    return _softmax_kernel(X, y, xq, _heads(est.omega), _heads(est.mu))


def single_head(est, task, slot, X, y, xq):
    """omega = 1/sqrt(d), mu = sqrt(d) / (1 + (1 + sigma^2) d e / L), L = k unless fixed."""
    k, d = X.shape
    sigma = est.noise_std if est.noise_std is not None else prior_moments(task, slot)[2]
    L = est.L if est.L is not None else max(k, 1)
    mu = math.sqrt(d) / (1 + (1 + sigma**2) * d * math.e / L)
    return _softmax_kernel(X, y, xq, [1 / math.sqrt(d)], [mu])


def debiased_gd(est, task, slot, X, y, xq):
    """(lr / k) sum_i y_i <x_i - x_bar, xq>."""
    k = len(y)
    if k == 0:
        return 0.0
    xbar = X.mean(axis=0)
    return est.lr / k * sum(y[j] * float((X[j] - xbar) @ xq) for j in range(k))


REFERENCES: dict[str, Callable[..., float]] = {
    "averaging": averaging,
    "bayes": bayes,
    "debiased_gd": debiased_gd,
    "gd": gd,
    "kernel": kernel,
    "knn": knn,
    "newton": newton,
    "ols": ols,
    "pgd": pgd,
    "ridge": ridge,
    "single_head": single_head,
    "sparse_bayes": sparse_bayes,
    "zero": zero,
}


def reference_predict(est, task, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Predictions of ``est`` by the reference formulas, prompt by prompt, position by position.

    Args:
        est: a built estimator (its ``name`` and fields are read, nothing else).
        task: the task it is evaluated on (its parameters are read).
        x: (B, n, d); y: (B, n) or (B, n, K), any float dtype (computed in float64).
    Returns:
        (B, n) or (B, n, K) float64 predictions.
    """
    fn = REFERENCES[est.name]
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    slots = y[..., None] if y.ndim == 2 else y  # (B, n, K)
    B, n, K = slots.shape
    out = np.zeros((B, n, K))
    for b in range(B):
        for i in range(n):
            for s in range(K):
                out[b, i, s] = fn(est, task, s, x[b, :i], slots[b, :i, s], x[b, i])
    return out[..., 0] if y.ndim == 2 else out


def gd_one_step_mse(lr: float, d: int, L: int, sigma2: float, tau2: float) -> float:
    """Exact risk of one mean-gradient step y_hat = (lr / L) sum_i y_i <x_i, x_q> on the
    isotropic task x ~ N(0, I_d), w ~ N(0, tau^2 I), noisy query label.

    With S_hat = X^T X / L (Wishart: E S_hat = I, E S_hat^2 = (L + d + 1)/L I):
    MSE = sigma^2 + tau^2 [d - 2 lr d + lr^2 d (L + d + 1)/L] + lr^2 sigma^2 d / L.
    """
    return sigma2 + tau2 * d * (1 - 2 * lr + lr**2 * (L + d + 1) / L) + lr**2 * sigma2 * d / L
