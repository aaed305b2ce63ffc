r"""Theory for test-time computing on in-context linear regression (our derivations).

Setting of Chen, Lu, Wu, Zou (arXiv 2508.07571) as far as it is known (papers.md section 2; the
paper's text is not available, so every result below is OUR construction, checked against Monte
Carlo in tests/theory/test_testtime.py). Design X (n, d), S = X^T X = U diag(s) U^T,
y = X w* + eps, w* ~ N(0, tau^2 I), eps ~ N(0, s_y^2 I) (``noise_std`` = s_y), x_q ~ N(0, I).

1. GD-T and ridge-GD-T. w_{t+1} = w_t - eta (X^T (X w_t - y) + lam w_t), w_0 = 0, gives
   w_T = A_T X^T y with A_T = eta sum_{j<T} B^j, B = I - eta (S + lam I). In S's eigenbasis
   a_i = (1 - b_i^T) / (s_i + lam), b_i = 1 - eta (s_i + lam) (a_i = eta T when s_i + lam = 0), and

   .. math::
       E\|w_T - w^*\|^2 = \tau^2 \sum_i (1 - a_i s_i)^2 + s_y^2 \sum_i a_i^2 s_i,
       \qquad R_q = E\langle w_T - w^*, x_q\rangle^2 + s_y^2 = E\|w_T - w^*\|^2 + s_y^2.

2. Multiplicative-noise decoding. w_{t+1} = w_t - eta (X^T (X w_t - y) + zeta_t),
   zeta_t = (xi^T w_t) xi, xi ~ N(0, sigma^2 I). Since E[zeta_t | w_t] = sigma^2 w_t and the step is
   linear in w_t, m_t = E w_t obeys m_{t+1} = B m_t + eta g (g = X^T y, lam = sigma^2): the mean
   is exactly the ridge-GD trajectory. With E[(xi^T w)^2 xi xi^T] = sigma^4 (||w||^2 I + 2 w w^T),
   the covariance Sigma_t = Cov(w_t | X, y) obeys (exactly)

   .. math::
       \Sigma_{t+1} = B \Sigma_t B + \eta^2 \sigma^4 \big(\mathrm{tr}(M_t) I + M_t\big),
       \qquad M_t = \Sigma_t + m_t m_t^\top,\ \Sigma_0 = 0.

   The N-average of i.i.d. decodes has E||avg_N - w*||^2 = ||m_T - w*||^2 + V_T / N with
   V_T = tr Sigma_T. Averaged over (w*, eps): E[m_t m_t^T] = A_t (tau^2 S^2 + s_y^2 S) A_t is
   diagonal in S's eigenbasis, so E Sigma_t stays diagonal and E V_T is a d-vector recursion.
   Leading order in eta at fixed time u = eta T (gradient flow, K = S + sigma^2 I,
   m(u) = K^{-1} (I - e^{-K u}) g):

   .. math::
       V_T = \eta \sigma^4 \int_0^{u} \big(\|m(v)\|^2 \mathrm{tr}\, e^{-2K(u - v)}
             + m(v)^\top e^{-2K(u - v)} m(v)\big)\, dv + O(\eta^2),

   which tends to (eta sigma^4 / 2) (||m_inf||^2 tr K^{-1} + m_inf^T K^{-1} m_inf) as u -> inf.

3. Majority vote over N i.i.d. samples with answer probabilities p (K,): exact probability that
   the true answer wins the plurality (ties lose, or ties win), by a dynamic programme over
   counts; a rigorous Chernoff lower bound for many answers; the N -> inf limit; the smallest N
   at which the vote beats a given greedy rate.

4. Extrapolation: least-squares fit of err(N) = a + b / N on small N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "affine_noisy_decode_moments",
    "fit_inverse_n",
    "gd_filter",
    "gd_query_risk",
    "gd_weight_risk",
    "gd_weight_risk_mc",
    "noisy_decode_covariance",
    "noisy_decode_variance",
    "noisy_decode_variance_expected",
    "noisy_decode_variance_leading",
    "predict_inverse_n",
    "vote_limit",
    "vote_rate",
    "vote_rate_lower_bound",
    "votes_to_beat",
]


def gd_filter(eigs: torch.Tensor, steps: int, eta: float, lam: float = 0.0) -> torch.Tensor:
    """Spectral filter a_i of A_T = eta sum_{j<T} (I - eta (S + lam I))^j.

    Args:
        eigs: (..., d) eigenvalues s_i of S = X^T X.
        steps: T >= 0.
        eta: step size; lam: ridge penalty (lam = sigma^2 for the noisy decode's mean).
    Returns:
        (..., d) a_i = (1 - (1 - eta c_i)^T) / c_i with c_i = s_i + lam (eta T when c_i = 0).
    """
    c = eigs + lam
    b = 1.0 - eta * c
    small = c.abs() < 1e-12
    safe = torch.where(small, torch.ones_like(c), c)
    return torch.where(small, torch.full_like(c, eta * steps), (1.0 - b**steps) / safe)


def gd_weight_risk(
    x: torch.Tensor, steps: int, eta: float, lam: float, tau: float, noise_std: float
) -> torch.Tensor:
    """Exact E||w_T - w*||^2 of (ridge-)GD-T given the design, over w* and the label noise.

    Args:
        x: (B, n, d) designs. steps, eta, lam: as in ``gd_filter``.
        tau: prior std of w*; noise_std: label-noise std s_y.
    Returns:
        (B,) tau^2 sum (1 - a s)^2 + s_y^2 sum a^2 s.
    """
    s = torch.linalg.eigvalsh(x.transpose(-1, -2) @ x).clamp_min(0.0)  # (B, d)
    a = gd_filter(s, steps, eta, lam)
    return tau**2 * ((1.0 - a * s) ** 2).sum(-1) + noise_std**2 * (a**2 * s).sum(-1)


def gd_query_risk(
    x: torch.Tensor, steps: int, eta: float, lam: float, tau: float, noise_std: float
) -> torch.Tensor:
    """Exact query risk E(<w_T - w*, x_q> )^2 + s_y^2, x_q ~ N(0, I), given the design: (B,)."""
    return gd_weight_risk(x, steps, eta, lam, tau, noise_std) + noise_std**2


def gd_weight_risk_mc(
    n: int,
    d: int,
    steps: int,
    eta: float,
    lam: float,
    tau: float,
    noise_std: float,
    num_designs: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[float, float]:
    """E||w_T - w*||^2 averaged over Gaussian designs x_i ~ N(0, I_d) by Monte Carlo (float64).

    The inner expectation over (w*, eps) is exact (``gd_weight_risk``); only X is sampled, in one
    batch of ``num_designs``. Returns (mean, standard error).
    """
    x = torch.randn(num_designs, n, d, generator=generator, dtype=torch.float64, device=device)
    r = gd_weight_risk(x, steps, eta, lam, tau, noise_std)
    se = r.std().item() / math.sqrt(num_designs) if num_designs > 1 else float("nan")
    return r.mean().item(), se


def noisy_decode_covariance(
    x: torch.Tensor, y: torch.Tensor, steps: int, eta: float, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and covariance of the multiplicative-noise decode w_T given (X, y).

    Args:
        x: (B, n, d); y: (B, n); steps: T; eta: step size; sigma: std of xi ~ N(0, sigma^2 I).
    Returns:
        m_T (B, d), the ridge-GD iterate with lam = sigma^2, and Sigma_T (B, d, d) = Cov(w_T).
    """
    s, u = torch.linalg.eigh(x.transpose(-1, -2) @ x)  # (B, d), (B, d, d)
    g = (u.transpose(-1, -2) @ (x.transpose(-1, -2) @ y.unsqueeze(-1))).squeeze(-1)  # (B, d)
    b = 1.0 - eta * (s + sigma**2)  # (B, d), B = U diag(b) U^T
    bb = b.unsqueeze(-1) * b.unsqueeze(-2)  # (B, d, d)
    eye = torch.eye(s.shape[-1], dtype=s.dtype, device=s.device)
    m = torch.zeros_like(g)
    cov = torch.zeros_like(bb)
    for _ in range(steps):
        mom = cov + m.unsqueeze(-1) * m.unsqueeze(-2)  # M_t in the eigenbasis
        tr = mom.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
        cov = bb * cov + eta**2 * sigma**4 * (tr * eye + mom)
        m = b * m + eta * g
    m_out = (u @ m.unsqueeze(-1)).squeeze(-1)
    return m_out, u @ cov @ u.transpose(-1, -2)


def affine_noisy_decode_moments(
    p: torch.Tensor, b: torch.Tensor, steps: int, eta: float, sigma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and covariance of a multiplicative-noise decode of any affine step.

    w_{t+1} = P w_t + b - eta zeta_t, zeta_t = (xi^T w_t) xi, w_0 = 0 (a trained chain-of-thought
    transformer's emitted map is affine, ``iclreg.models.cot``). As in item 2 of the module
    docstring, with P' = P - eta sigma^2 I and M_t = Sigma_t + m_t m_t^T:

        m_{t+1} = P' m_t + b,   Sigma_{t+1} = P' Sigma_t P'^T + eta^2 sigma^4 (tr(M_t) I + M_t).

    For P = I - eta X^T X, b = eta X^T y this is ``noisy_decode_covariance``.

    Args:
        p: (B, d, d); b: (B, d).
    Returns:
        m_T (B, d), Sigma_T (B, d, d).
    """
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    shrunk = p - eta * sigma**2 * eye
    m = torch.zeros_like(b)
    cov = torch.zeros_like(p)
    for _ in range(steps):
        mom = cov + m.unsqueeze(-1) * m.unsqueeze(-2)
        tr = mom.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
        cov = shrunk @ cov @ shrunk.transpose(-1, -2) + eta**2 * sigma**4 * (tr * eye + mom)
        m = (shrunk @ m.unsqueeze(-1)).squeeze(-1) + b
    return m, cov


def noisy_decode_variance(
    x: torch.Tensor, y: torch.Tensor, steps: int, eta: float, sigma: float
) -> torch.Tensor:
    """V_T = tr Cov(w_T | X, y) of one multiplicative-noise decode: (B,).

    The N-average's excess over ridge-GD (lam = sigma^2) in E||. - w*||^2 is exactly V_T / N.
    """
    return noisy_decode_covariance(x, y, steps, eta, sigma)[1].diagonal(dim1=-2, dim2=-1).sum(-1)


def noisy_decode_variance_expected(
    x: torch.Tensor, steps: int, eta: float, sigma: float, tau: float, noise_std: float
) -> torch.Tensor:
    """E[V_T | X] over w* ~ N(0, tau^2 I) and label noise: exact d-vector recursion, (B,).

    Args:
        x: (B, n, d) designs; steps, eta, sigma as in ``noisy_decode_covariance``.
    """
    s = torch.linalg.eigvalsh(x.transpose(-1, -2) @ x).clamp_min(0.0)  # (B, d)
    gg = tau**2 * s**2 + noise_std**2 * s  # E g_i^2 in the eigenbasis
    b = 1.0 - eta * (s + sigma**2)
    var = torch.zeros_like(s)  # diagonal of E Sigma_t
    for t in range(steps):
        mom = var + gd_filter(s, t, eta, sigma**2) ** 2 * gg  # diag E M_t
        var = b**2 * var + eta**2 * sigma**4 * (mom.sum(-1, keepdim=True) + mom)
    return var.sum(-1)


def _exp_integral(p: torch.Tensor, q: torch.Tensor, u: float) -> torch.Tensor:
    """int_0^u e^{-p (u - v)} e^{-q v} dv = (e^{-q u} - e^{-p u}) / (p - q), stable at p = q."""
    diff = p - q
    small = diff.abs() < 1e-9
    safe = torch.where(small, torch.ones_like(diff), diff)
    exact = (torch.exp(-q * u) - torch.exp(-p * u)) / safe
    return torch.where(small, u * torch.exp(-p * u), exact)


def noisy_decode_variance_leading(
    x: torch.Tensor, y: torch.Tensor, steps: int, eta: float, sigma: float
) -> torch.Tensor:
    """Leading order in eta of V_T at fixed u = eta T (module docstring, item 2): (B,).

    Closed form: with c_i = s_i + sigma^2 and m_j(v) = g_j (1 - e^{-c_j v}) / c_j, every term is
    int_0^u e^{-2 c_i (u - v)} (1 - e^{-c_j v})^2 dv, expanded into three exponential integrals.
    Relative error O(eta).
    """
    s, u_mat = torch.linalg.eigh(x.transpose(-1, -2) @ x)
    g = (u_mat.transpose(-1, -2) @ (x.transpose(-1, -2) @ y.unsqueeze(-1))).squeeze(-1)
    c = s.clamp_min(0.0) + sigma**2  # (B, d)
    u = eta * steps
    p = (2.0 * c).unsqueeze(-1)  # (B, d_i, 1)
    q = c.unsqueeze(-2)  # (B, 1, d_j)
    # kern[i, j] = int e^{-2 c_i (u - v)} (1 - e^{-c_j v})^2 dv
    kern = (
        _exp_integral(p, torch.zeros_like(q), u)
        - 2.0 * _exp_integral(p, q, u)
        + _exp_integral(p, 2.0 * q, u)
    )
    h = (g / c) ** 2  # (B, d): m_j(v)^2 = h_j (1 - e^{-c_j v})^2
    first = (kern * h.unsqueeze(-2)).sum((-1, -2))  # sum_i sum_j
    second = (kern.diagonal(dim1=-2, dim2=-1) * h).sum(-1)
    return eta * sigma**4 * (first + second)


def _binom_table(r_max: int, prob: float, dtype: torch.dtype) -> torch.Tensor:
    """(r_max + 1, r_max + 1) table P[r, k] = Binomial(r, prob) pmf at k (0 for k > r)."""
    r = torch.arange(r_max + 1, dtype=dtype).unsqueeze(-1)
    k = torch.arange(r_max + 1, dtype=dtype).unsqueeze(0)
    valid = k <= r
    kk = torch.where(valid, k, torch.zeros_like(k))
    logc = torch.lgamma(r + 1) - torch.lgamma(kk + 1) - torch.lgamma(r - kk + 1)
    if prob <= 0.0:
        out = (kk == 0).to(dtype)
    elif prob >= 1.0:
        out = (kk == r).to(dtype)
    else:
        out = torch.exp(logc + kk * math.log(prob) + (r - kk) * math.log1p(-prob))
    return torch.where(valid, out, torch.zeros_like(out))


def vote_rate(p: Sequence[float] | torch.Tensor, true_index: int, num_samples: int,
              ties: str = "lose") -> float:
    """Exact probability that the plurality vote of N i.i.d. samples is the true answer.

    P = sum_c P(N_true = c) P(every other count < c | N - c votes left) ("lose": a tie for the top
    is a failure) or <= c ("win": a tie counts as success); any tie rule lies between the two.
    The inner probability is a dynamic programme over answers on the number of votes left, each
    answer taking Binomial(r, p_j / (mass of the answers not yet placed)) of the r left. Exact up
    to float64 rounding; cost O(K N^3) time, so meant for K N^3 <~ 1e9 (``vote_rate_lower_bound``
    otherwise).

    Args:
        p: (K,) probabilities of the K possible answers (sum 1). true_index: the true answer.
        num_samples: N >= 1. ties: "lose" or "win".
    """
    if ties not in ("lose", "win"):
        raise ValueError(f"ties must be 'lose' or 'win', got {ties!r}")
    pt = torch.as_tensor(p, dtype=torch.float64).flatten()
    p_true = pt[true_index].item()
    others = torch.cat([pt[:true_index], pt[true_index + 1:]])
    others = others[others > 0]
    n = num_samples
    head = _binom_table(n, p_true, torch.float64)[n]  # (N+1,) P(N_true = c)
    if others.numel() == 0:  # every vote goes to the true answer
        return 1.0
    tail = others.flip(0).cumsum(0).flip(0)  # mass of answers j.. onward
    tables = [_binom_table(n, min(1.0, (others[j] / tail[j]).item()), torch.float64)
              for j in range(others.numel() - 1)]
    shift = torch.arange(n + 1).unsqueeze(-1) - torch.arange(n + 1).unsqueeze(0)  # r - r'
    total = 0.0
    for c in range(n + 1):
        limit = c if ties == "win" else c - 1  # largest count allowed to any other answer
        if limit < 0 or head[c] == 0:
            continue
        left = torch.zeros(n + 1, dtype=torch.float64)
        left[n - c] = 1.0
        for table in tables:  # answer takes k = r - r' votes, k <= limit
            trans = torch.where((shift >= 0) & (shift <= limit),
                                table.gather(1, shift.clamp_min(0)), torch.zeros(()))
            left = left @ trans
        total += head[c].item() * left[: limit + 1].sum().item()  # last answer takes the rest
    return total


def vote_rate_lower_bound(p: Sequence[float] | torch.Tensor, true_index: int,
                          num_samples: int) -> float:
    """Rigorous lower bound 1 - sum_j (1 - (sqrt p_true - sqrt p_j)^2)^N on the strict-win rate.

    Union bound over rivals j of P(N_true <= N_j), each bounded by Chernoff with the optimal
    exponent (E exp(theta (N_j - N_true)) minimised at e^theta = sqrt(p_true / p_j)). Cheap for
    any number of answers; tight (the exact exponential rate) when failures are rare, vacuous
    (clipped at 0) when the true answer is not the unique mode.
    """
    pt = torch.as_tensor(p, dtype=torch.float64).flatten()
    rivals = torch.cat([pt[:true_index], pt[true_index + 1:]])
    gap = (math.sqrt(pt[true_index].item()) - rivals.sqrt()) ** 2
    fail = torch.exp(num_samples * torch.log1p(-gap)).sum().item()
    return max(0.0, 1.0 - fail)


def vote_limit(p: Sequence[float] | torch.Tensor, true_index: int) -> float:
    """lim_{N -> inf} of the vote rate: 1 if the true answer is the unique mode, 0 if it is not
    a mode, 1/m if it ties with m - 1 others for the mode (exchangeable counts, either tie rule).
    """
    pt = torch.as_tensor(p, dtype=torch.float64).flatten()
    top = pt.max()
    if pt[true_index] < top:
        return 0.0
    return 1.0 / int((pt == top).sum().item())


def votes_to_beat(p: Sequence[float] | torch.Tensor, true_index: int, rate: float,
                  n_max: int = 200, ties: str = "lose") -> int | None:
    """Smallest N <= n_max whose exact vote rate exceeds ``rate`` (e.g. greedy's), else None.

    Returns None at once when the N -> inf limit does not exceed ``rate``.
    """
    if vote_limit(p, true_index) <= rate:
        return None
    for n in range(1, n_max + 1):
        if vote_rate(p, true_index, n, ties) > rate:
            return n
    return None


def fit_inverse_n(num_samples: Sequence[float] | torch.Tensor,
                  err: Sequence[float] | torch.Tensor) -> tuple[float, float]:
    """Least-squares fit of err(N) = a + b / N (use small N, e.g. N <= 16). Returns (a, b).

    The simple-regression closed form on u = 1 / N, summed exactly (``math.fsum``): the same
    inputs give the same bits in any process, which a LAPACK solver does not promise.

    Args:
        num_samples: (m,) values of N, at least two distinct. err: (m,) measured errors.
    """
    u = [1.0 / float(n) for n in torch.as_tensor(num_samples, dtype=torch.float64).flatten().tolist()]
    e = torch.as_tensor(err, dtype=torch.float64).flatten().tolist()
    u_mean, e_mean = math.fsum(u) / len(u), math.fsum(e) / len(e)
    du = [u_ - u_mean for u_ in u]
    spread = math.fsum(x * x for x in du)
    if spread == 0.0:
        raise ValueError(f"fit_inverse_n needs at least two distinct N, got {sorted(set(u))} as 1 / N")
    b = math.fsum(x * (y - e_mean) for x, y in zip(du, e, strict=True)) / spread
    return e_mean - b * u_mean, b


def predict_inverse_n(coef: tuple[float, float],
                      num_samples: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """a + b / N for the fitted (a, b): (m,) float64."""
    n = torch.as_tensor(num_samples, dtype=torch.float64)
    return coef[0] + coef[1] / n
