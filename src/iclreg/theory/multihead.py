r"""Exact large-D risk of the multi-head softmax kernel predictor: why two heads beat one
(Cui, Ren, He, Tang, Xing, arXiv 2401.17426, AISTATS 2025), papers.md section 4.

With D context pairs (x_i, y_i) and a query x_q, H heads predict

.. math::
    \hat y = \sum_h \sum_i p_{h,i} (\mu_h y_i + v_h^\top x_i), \qquad
    p_{h,i} = \mathrm{softmax}_i(\omega_h\, x_i^\top P x_q),

with P = I and v = 0 unless said. Data: x_i, x_q ~ N(0, S), w ~ N(w_0, w_var I) (w_var = 1/d
by default), y = w.x + sigma eps with noise on the query label too. We expand the risk as
L = L_inf + L_1 / D + o(1/D) and report the O(1/D) constant C of the best heads.

Derivation (ours: only the paper's abstract could be retrieved, not its formulas, so nothing
here is checked against them). Given (w, x_q), head h is a self-normalised average over i.i.d.
tokens with weights u_h = exp(omega_h x^T P x_q). Gaussian tilting (E[f(x) e^{b.x}] / E e^{b.x}
= E f(x + S b)) gives its D -> infinity limit r_h = omega_h c_h^T S P x_q with c_h = mu_h w + v_h;
the delta method for the ratio gives a fluctuation with D Cov(r_g, r_h) = E[u_g u_h (a_g - r_g)
(a_h - r_h)] / (E u_g E u_h) and a bias -E[u_h^2 (a_h - r_h)] / (D (E u_h)^2), a_h = mu_h y + v_h.x.
Tilting again, with s = omega_g omega_h and M = P^T S P,

.. math::
    D\,\mathrm{Cov}_{gh} = e^{s\, x_q^\top M x_q} \big(c_g^\top S c_h + \mu_g \mu_h \sigma^2
        + s\, (c_g^\top S P x_q)(c_h^\top S P x_q)\big),

and the bias of head h is -omega_h e^{omega_h^2 x_q^T M x_q} c_h^T S P x_q / D. It enters the
risk only through its product with the D = infinity error, so it is O(1/D^2) at the optimum.

Isotropic case (S = P = I, w_0 = 0, v = 0), averaging with |x_q|^2 ~ chi^2_d:

.. math::
    K_{gh} = (1 - 2s)^{-d/2} \Big(E|w|^2 + \sigma^2 + \frac{s\, E|w|^2}{1 - 2s}\Big), \quad
    \mathcal L = \sigma^2 + E|w|^2 (1 - \nu)^2 + \frac{\mu^\top K \mu + 2 (1 - \nu) \mu^\top \beta}{D},

nu = mu.omega, beta_h = omega_h E|w|^2 (1 - 2 omega_h^2)^{-d/2-1}, E|w|^2 = d w_var; it needs
omega_h^2 < 1/2. Minimising over mu, L - sigma^2 = C(omega) / D + O(D^-2) with
C(omega) = 1 / (omega^T K^{-1} omega). Write K_gh = k(omega_g omega_h), k(s) = sum_n c_n s^n
(|s| < 1/2): every c_n >= 0, as (1 - 2s)^{-d/2} and s / (1 - 2s) have nonnegative coefficients,
so K = Phi Phi^T with rows phi(omega_h) = (sqrt(c_n) omega_h^n)_n and, as
omega_h = <phi(omega_h), e_1> / sqrt(c_1), omega^T K^{-1} omega = sup_mu 2 mu.omega - |Phi^T mu|^2
<= 1 / c_1. Hence for every H and every omega

.. math::
    C_H \ge k'(0) = d\,(E|w|^2 + \sigma^2) + E|w|^2 =: C_2,

with equality only in the limit of two opposite heads omega = (t, -t), mu = (1, -1)/(2t), t -> 0
(the debiased-GD limit); no finite omega attains it, so H >= 3 heads cannot do better. One head
gets C_1 = min_{0 < s < 1/2} k(s)/s > C_2. He et al.'s approximate kernel (1 + sigma^2) e^{d s}
gives C_1 / C_2 = e exactly; here the ratio is larger at finite d (at He's s = 1/d the factor
(1 - 2/d)^{-d/2} is 3.59, not e, at d = 5) and tends to e from above, C_1 ~ e (d (1 + sigma^2) +
2 + sigma^2), C_1 / C_2 ~ e (1 + 1/d). With w_var = 1/d (omega*^2 d is the single-head optimum):

=====  =======  =======  ======  =====  ==============
d      sigma^2  C_1      C_2     ratio  omega*^2 d
=====  =======  =======  ======  =====  ==============
5      0        19.156   6.0     3.193  0.614
5      0.1      20.801   6.5     3.200  0.621
5      0.5      27.359   8.5     3.219  0.641
5      1        35.526   11.0    3.230  0.656
10     0.1      35.692   12.0    2.974  0.770
20     0.1      65.556   23.0    2.850  0.871
100    0.1      304.73   111.0   2.745  0.972
1000   0.1      2995.8   1101.0  2.721  0.997
=====  =======  =======  ======  =====  ==============

(He et al.'s values at d = 5, sigma^2 = 0.1: C_1 = 14.95, C_2 = 5.5.) At finite D the omega -> 0
limit is not reachable (mu ~ 1/t inflates the O(D^-2) terms), so trained heads sit at a finite
omega. The approach to the limit is slower than 1/D once omega_h^2 is not small, because the
higher moments E e^{k omega_h^2 |x_q|^2} behind the O(D^-2) terms diverge: at d = 5,
omega = (0.4, -0.2), mu = (1.5, -2), sigma^2 = 1, D (L - sigma^2) / (mu^T K mu) measured 0.864,
0.913, 0.964 (s.e. <= 0.009) at D = 100, 250, 1000 (80k prompts each).

Scenarios (``gaussian_expansion`` handles any S, P, w_0, v; each is checked by Monte Carlo):

(a) noisy labels: sigma^2 enters K only as above.
(b) correlated features x ~ N(0, S): with P = S^{-1}, x_q^T S^{-1} x_q ~ chi^2_d and the whole
    expansion is the isotropic one with E|w|^2 replaced by w_var tr(S): the constants depend on
    S only through tr(S)/d (equal to the isotropic ones when tr S = d). With P = I the D = inf
    bias is w_var tr((nu S - I) S (nu S - I)), at best (nu = tr S^2 / tr S^3)
    w_var (tr S - (tr S^2)^2 / tr S^3) > 0 unless S is a multiple of I; its 1/D term is in
    ``gaussian_expansion`` (it needs 2 omega_g omega_h lambda_max(S)^2 < 1).
(c) prior w ~ N(w_0, w_var I), values reading x: with v_h = (lambda_h - mu_h) w_0 the risk splits
    into two problems sharing omega: the random part (E|w - w_0|^2 = d w_var, noise sigma^2,
    coefficients mu) and a noise-free one for w_0 (E|w|^2 = |w_0|^2, sigma = 0, coefficients
    lambda); the D = inf constraints are mu.omega = lambda.omega = 1. Value parts orthogonal to
    w_0 only add variance. At a fixed omega, C(omega) is the sum of the two problems' C's, never
    more than the v = 0 value (the kernel with E|w|^2 = |w_0|^2 + d w_var), but the two kernels
    differ only through sigma^2, so the gain is tiny (< 3e-5 relative at d = 5, sigma^2 <= 1),
    zero for one head (v = 0 is forced) and for symmetric opposite heads, and both problems meet
    the same bound k'(0): the best constant is unchanged, C_2 = d (|w_0|^2 + d w_var + sigma^2)
    + |w_0|^2 + d w_var. The model has no skip path from x_q, so even the known part w_0.x_q has
    to be estimated by attention, at the same variance cost as the unknown part.
(d) local examples x_i = x_q + r g_i (``iclreg.tasks.local``): |x_q|^2 cancels in the softmax,
    so the tilt acts on g with b = r omega x_q, r_h = mu_h (1 + r^2 omega_h) w.x_q, and K is the
    isotropic kernel at (r omega, r^2 w_var); the D = inf constraint is kappa = sum_h mu_h
    (1 + r^2 omega_h) = 1, met by plain averaging (omega = 0, C = r^2 E|w|^2 + sigma^2). The
    same argument gives C_H >= 1 / (1/c_0 + r^2/c_1) for every H (c_n the Taylor coefficients in
    t = r^2 omega_g omega_h), approached by two heads. One head is close: at d = 5, sigma^2 = 0.1,
    C_1 / C_2 = 1.001, 1.013, 1.092 for r = 0.5, 1, 2 (C_2 = 0.335, 0.941, 2.456, while plain
    averaging gives r^2 + sigma^2): local examples need few heads.
"""

from __future__ import annotations

import math

import torch
from scipy.optimize import minimize_scalar
from torch import Tensor

from ..errors import check

__all__ = [
    "fixed_omega_constant",
    "gaussian_expansion",
    "large_d_kernel",
    "large_d_loss",
    "local_constant",
    "local_loss",
    "optimal_constant",
]

F64 = torch.float64


def _kernel_series(s: Tensor, d: int, noise_var: float, w_norm: float) -> Tensor:
    """k(s) = (1 - 2s)^{-d/2} (E|w|^2 + sigma^2 + s E|w|^2 / (1 - 2s)), elementwise; w_norm = E|w|^2."""
    check(bool((2 * s < 1).all()), f"multihead: need 2 omega_g omega_h < 1, got max {s.max().item():.4g}")
    return (1 - 2 * s) ** (-d / 2) * (w_norm + noise_var + s * w_norm / (1 - 2 * s))


def _log_k(s: float, d: int, noise_var: float, w_norm: float) -> float:
    """log k(s) for a float s in (-1/2, 1/2) (the scalar searches work on logs: k blows up at 1/2)."""
    return -d / 2 * math.log1p(-2 * s) + math.log(w_norm + noise_var + s * w_norm / (1 - 2 * s))


def _w_var(d: int, w_var: float | None) -> float:
    return 1.0 / d if w_var is None else w_var


def large_d_kernel(omega: Tensor, d: int, noise_var: float, w_var: float | None = None) -> Tensor:
    r"""Isotropic O(1/D) kernel K_gh = (1 - 2s)^{-d/2} (E|w|^2 + sigma^2 + s E|w|^2 / (1 - 2s)).

    s = omega_g omega_h, E|w|^2 = d w_var. Scenario (b) with P = S^{-1} is this kernel with
    w_var tr(S) / d for w_var; scenario (c) with v = 0 with w_var + |w_0|^2 / d.

    Args:
        omega: score scales (..., H), omega_h^2 < 1/2.
        d: input dimension.
        noise_var: sigma^2.
        w_var: prior variance per coordinate of w (default 1/d).

    Returns:
        K (..., H, H), symmetric positive definite for distinct omega_h.
    """
    s = omega.unsqueeze(-1) * omega.unsqueeze(-2)  # (..., H, H)
    return _kernel_series(s, d, noise_var, d * _w_var(d, w_var))


def large_d_loss(
    omega: Tensor, mu: Tensor, D: int, d: int, noise_var: float, w_var: float | None = None
) -> Tensor:
    r"""Risk of the isotropic kernel predictor to O(1/D) (module docstring):

    .. math::
        \sigma^2 + E|w|^2 (1 - \nu)^2 + \frac{1}{D}\big(\mu^\top K \mu + 2 (1 - \nu) \mu^\top \beta\big),

    nu = mu.omega, beta_h = omega_h E|w|^2 (1 - 2 omega_h^2)^{-d/2-1}; the beta term (the softmax
    ratio bias) vanishes at nu = 1.

    Args:
        omega, mu: (..., H). D: number of context pairs. d, noise_var, w_var: as in
            ``large_d_kernel``.

    Returns:
        (...,).
    """
    w_norm = d * _w_var(d, w_var)
    K = large_d_kernel(omega, d, noise_var, w_var)
    nu = (mu * omega).sum(-1)
    beta = omega * w_norm * (1 - 2 * omega**2) ** (-d / 2 - 1)  # (..., H)
    quad = (mu.unsqueeze(-2) @ K @ mu.unsqueeze(-1))[..., 0, 0]
    return noise_var + w_norm * (1 - nu) ** 2 + (quad + 2 * (1 - nu) * (mu * beta).sum(-1)) / D


def fixed_omega_constant(omega: Tensor, d: int, noise_var: float, w_var: float | None = None) -> Tensor:
    r"""C(omega) = 1 / (omega^T K(omega)^{-1} omega): D (risk - sigma^2) with the best mu, D -> inf.

    From min_mu A (1 - mu.omega)^2 + mu^T K mu / D = A / (1 + A D omega^T K^{-1} omega).

    Args:
        omega: (..., H). Other arguments as in ``large_d_kernel``.

    Returns:
        (...,).
    """
    K = large_d_kernel(omega, d, noise_var, w_var)
    return 1.0 / (omega * torch.linalg.solve(K, omega.unsqueeze(-1)).squeeze(-1)).sum(-1)


def optimal_constant(
    d: int, noise_var: float, heads: int, w_var: float | None = None
) -> tuple[float, Tensor]:
    r"""The best O(1/D) constant C_H = inf_omega C(omega) and the omega that reaches it.

    heads = 1: C_1 = min_{0 < s < 1/2} k(s) / s at omega = sqrt(s*) (bounded scalar search).
    heads >= 2: C_H = k'(0) = d (E|w|^2 + sigma^2) + E|w|^2, the bound of the module docstring,
    reached only as omega = (t, -t, 0, ...) -> 0; the returned omega is that limit, zeros (H,).

    Returns:
        (C, omega*) with omega* (H,) float64.
    """
    check(heads >= 1, f"multihead: heads must be >= 1, got {heads}")
    w_norm = d * _w_var(d, w_var)
    if heads >= 2:
        return d * (w_norm + noise_var) + w_norm, torch.zeros(heads, dtype=F64)

    def log_ratio(s: float) -> float:  # log(k(s) / s)
        return _log_k(s, d, noise_var, w_norm) - math.log(s)

    bounds = (1e-9, 0.5 - 1e-9)
    res = minimize_scalar(log_ratio, bounds=bounds, method="bounded", options={"xatol": 1e-12})
    return math.exp(res.fun), torch.tensor([math.sqrt(res.x)], dtype=F64)


def gaussian_expansion(
    omega: Tensor,
    mu: Tensor,
    values: Tensor,
    S: Tensor,
    P: Tensor,
    w_mean: Tensor,
    w_var: float,
    noise_var: float,
) -> tuple[Tensor, Tensor]:
    r"""(L_inf, L_1) with risk = L_inf + L_1 / D + o(1/D) for x ~ N(0, S), w ~ N(w_0, w_var I).

    With q = x_q = S^{1/2} z, A = S^{1/2} P^T S P S^{1/2}, phi(s) = det(I - 2sA)^{-1/2} and
    Q(s) = S^{1/2} (I - 2sA)^{-1} S^{1/2} (so E[e^{s q^T M q} q q^T] = phi Q), v~_h = v_h + mu_h w_0,
    V = sum_h omega_h v~_h, B = nu S P - I and g = P^T S V - w_0:

    .. math::
        L_\infty = \sigma^2 + w_{var} \mathrm{tr}(B S B^\top) + g^\top S g, \\
        L_1 = \sum_{gh} \phi(s)\big[\mu_g\mu_h (w_{var} \mathrm{tr} S + \sigma^2
              + s\, w_{var} \mathrm{tr}(P^\top S^2 P Q)) + \tilde v_g^\top S \tilde v_h
              + s\, \tilde v_g^\top S P Q P^\top S \tilde v_h\big]_{s = \omega_g\omega_h} \\
            - 2 \sum_h \omega_h \phi(s) \big[\mu_h w_{var} \mathrm{tr}(B^\top S P Q)
              + g^\top Q P^\top S \tilde v_h\big]_{s = \omega_h^2}.

    Args:
        omega, mu: (H,). values: v (H, d). S: feature covariance (d, d). P: score matrix (d, d).
        w_mean: w_0 (d,). w_var: prior variance per coordinate. noise_var: sigma^2.

    Returns:
        (L_inf, L_1), 0-dim float64 tensors.
    """
    d = S.shape[-1]
    eye = torch.eye(d, dtype=F64)
    evals, evecs = torch.linalg.eigh(S)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T  # S^{1/2}
    A = root @ P.T @ S @ P @ root
    s = omega[:, None] * omega[None, :]  # (H, H)
    shifted = eye - 2 * s[..., None, None] * A  # (H, H, d, d)
    check(
        bool((torch.linalg.eigvalsh(shifted)[..., 0] > 0).all()),
        "multihead: the risk is infinite: need 2 omega_g omega_h lambda_max(A) < 1",
    )
    phi = torch.linalg.det(shifted) ** -0.5  # (H, H)
    Q = root @ torch.linalg.inv(shifted) @ root  # (H, H, d, d)
    vt = values + mu[:, None] * w_mean  # (H, d)
    nu = (mu * omega).sum()
    B = nu * S @ P - eye
    g = P.T @ S @ (omega @ vt) - w_mean  # (d,)
    limit = noise_var + w_var * torch.trace(B @ S @ B.T) + g @ S @ g

    SP = S @ P
    tr_mu = w_var * torch.trace(S) + noise_var + s * w_var * (SP.T @ SP * Q).sum((-2, -1))  # (H, H)
    vSPQ = torch.einsum("gi,ij,ghjk,kl,hl->gh", vt, SP, Q, SP.T, vt)  # v~_g^T S P Q P^T S v~_h
    var = phi * (mu[:, None] * mu[None, :] * tr_mu + vt @ S @ vt.T + s * vSPQ)
    Qd, phid = Q.diagonal(dim1=0, dim2=1).permute(2, 0, 1), phi.diagonal()  # (H, d, d), (H,)
    cross = mu * w_var * (B.T @ SP * Qd).sum((-2, -1)) + torch.einsum("i,hij,jk,hk->h", g, Qd, SP.T, vt)
    return limit, var.sum() - 2 * (omega * phid * cross).sum()


def local_loss(
    omega: Tensor, mu: Tensor, D: int, d: int, r: float, noise_var: float, w_var: float | None = None
) -> Tensor:
    r"""Risk to O(1/D) with local examples x_i = x_q + r g_i, x_q, g_i ~ N(0, I), scores omega x_i.x_q:

    .. math::
        \sigma^2 + E|w|^2 (1 - \kappa)^2 + \frac{1}{D}\big(\mu^\top K^{loc} \mu
            + 2 (1 - \kappa) \mu^\top \beta^{loc}\big), \quad \kappa = \sum_h \mu_h (1 + r^2\omega_h),

    K^loc = ``large_d_kernel(r omega, d, noise_var, r^2 w_var)`` and beta^loc_h = r^2 omega_h E|w|^2
    (1 - 2 r^2 omega_h^2)^{-d/2-1}.

    Args:
        omega, mu: (..., H). D: context pairs. d: dimension. r: spread of the context around x_q.
        noise_var: sigma^2. w_var: prior variance per coordinate (default 1/d).

    Returns:
        (...,).
    """
    w_norm = d * _w_var(d, w_var)
    K = large_d_kernel(r * omega, d, noise_var, r**2 * _w_var(d, w_var))
    kappa = (mu * (1 + r**2 * omega)).sum(-1)
    beta = r**2 * omega * w_norm * (1 - 2 * r**2 * omega**2) ** (-d / 2 - 1)
    quad = (mu.unsqueeze(-2) @ K @ mu.unsqueeze(-1))[..., 0, 0]
    return noise_var + w_norm * (1 - kappa) ** 2 + (quad + 2 * (1 - kappa) * (mu * beta).sum(-1)) / D


def local_constant(
    d: int, r: float, noise_var: float, heads: int, w_var: float | None = None
) -> tuple[float, Tensor]:
    r"""Best O(1/D) constant with local examples: C = 1 / sup_omega a^T (K^loc)^{-1} a, a = 1 + r^2 omega.

    With theta = r omega and k the isotropic series at w_var r^2 (c_0 = r^2 E|w|^2 + sigma^2,
    c_1 = d c_0 + r^2 E|w|^2): heads >= 2 give 1 / (1/c_0 + r^2/c_1), reached as omega = (t, -t)
    -> 0 (zeros returned); heads = 1 maximises (1 + r theta)^2 / k(theta^2) over 0 < theta < 1/sqrt 2.

    Returns:
        (C, omega*) with omega* (H,) float64.
    """
    check(heads >= 1, f"multihead: heads must be >= 1, got {heads}")
    w_norm = r**2 * d * _w_var(d, w_var)
    c0 = w_norm + noise_var
    if heads >= 2:
        return 1.0 / (1.0 / c0 + r**2 / (d * c0 + w_norm)), torch.zeros(heads, dtype=F64)

    def neg_log_gain(theta: float) -> float:  # log(k(theta^2) / (1 + r theta)^2)
        return _log_k(theta**2, d, noise_var, w_norm) - 2 * math.log1p(r * theta)

    bounds = (0.0, 0.5**0.5 - 1e-9)
    res = minimize_scalar(neg_log_gain, bounds=bounds, method="bounded", options={"xatol": 1e-12})
    return math.exp(res.fun), torch.tensor([res.x / r], dtype=F64)
