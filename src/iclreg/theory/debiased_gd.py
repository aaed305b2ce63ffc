r"""Exact risk of one-step GD and debiased GD on the isotropic Gaussian task, in closed form.

Task (papers.md, "Common data model"): x_i, x_q ~ N(0, I_d), w ~ N(0, tau^2 I_d),
y = <w, x> + sigma eps on every label, the query's included. With L examples and step c,

.. math::
    \text{GD:}\quad \hat y = \frac{c}{L} \sum_i y_i\, x_i^\top x_q, \qquad
    \text{debiased GD:}\quad \hat y = \frac{c}{L} \sum_i y_i\, (x_i - \bar x)^\top x_q

(He et al., arXiv 2503.12734, with c = 2 omega mu; ``gd:steps=1,lr=c,mean=true`` and
``debiased_gd:lr=c``). Both are \hat y = x_q^T v with v = (c/L)(S w + sigma sum_i u_i eps_i),
u_i = x_i (GD) or u_i = x_i - \bar x (debiased: sum_i u_i x_i^T = sum_i u_i u_i^T because
sum_i u_i = 0), and S = sum_i u_i u_i^T is Wishart W_d(I, m) with m = L (GD) or m = L - 1 (the
centred scatter of L Gaussian points). Since x_q is independent of v,

.. math::
    R = \sigma^2 + \mathbb{E}\|v - w\|^2
      = \sigma^2 + \tau^2\, \mathbb{E}\,\mathrm{tr}\big((\tfrac{c}{L} S - I)^2\big)
        + \frac{c^2 \sigma^2}{L^2}\, \mathbb{E}\,\mathrm{tr}\, S,

(the noise enters through sum_i ||u_i||^2 = tr S; cross terms vanish with E eps = 0), and the
Wishart moments E tr S = d m, E tr S^2 = d m (m + d + 1) (E S_aa^2 = m^2 + 2m, E S_ab^2 = m)
give

.. math::
    R(L) = \sigma^2 + \tau^2 d \Big(1 - \frac{2 c m}{L} + \frac{c^2 m (m + d + 1)}{L^2}\Big)
           + \frac{\sigma^2 c^2 d m}{L^2}.

With no example both predict 0: R(0) = sigma^2 + d tau^2. As L -> infinity,
R -> sigma^2 + d tau^2 (1 - c)^2: a fixed step is consistent only at c = 1, so the ratio to
the Bayes risk (``bayes_risk``, -> sigma^2) stays bounded but above 1 for c != 1.
"""

from __future__ import annotations

from ..errors import check

__all__ = ["debiased_gd_optimal_lr", "debiased_gd_risk", "gd_optimal_lr", "gd_risk"]


def _one_step_risk(d: int, L: int, m: int, noise_std: float, w_std: float, lr: float) -> float:
    """R = sigma^2 + tau^2 E tr((c/L S - I)^2) + (c sigma / L)^2 E tr S, S ~ W_d(I, m)."""
    check(d >= 1 and L >= 0, f"need d >= 1 and L >= 0, got d={d}, L={L}")
    check(noise_std >= 0 and w_std >= 0, f"need noise_std, w_std >= 0, got {noise_std}, {w_std}")
    sigma2, tau2 = float(noise_std) ** 2, float(w_std) ** 2
    if L == 0:
        return sigma2 + d * tau2
    a = lr / L
    bias = tau2 * d * (1 - 2 * a * m + a * a * m * (m + d + 1))
    return sigma2 + bias + sigma2 * a * a * d * m


def debiased_gd_risk(d: int, L: int, noise_std: float, w_std: float, lr: float) -> float:
    """Exact risk E (y_hat - y_q)^2 (noise floor included) of debiased GD with L examples:
    y_hat = (lr / L) sum_i y_i (x_i - x_bar)^T x_q (module docstring, m = L - 1).

    Args:
        d: input dimension.
        L: number of examples (>= 0; 0 and 1 give sigma^2 + d tau^2: the prediction is 0).
        noise_std: sigma, on every label including the query's.
        w_std: tau, the prior std of each entry of w.
        lr: the step c (He et al.'s 2 omega mu).
    """
    return _one_step_risk(d, L, max(L - 1, 0), noise_std, w_std, lr)


def gd_risk(d: int, L: int, noise_std: float, w_std: float, lr: float) -> float:
    """Exact risk of one mean-gradient GD step from 0, y_hat = (lr / L) sum_i y_i x_i^T x_q
    (module docstring, m = L); arguments as :func:`debiased_gd_risk`."""
    return _one_step_risk(d, L, L, noise_std, w_std, lr)


def gd_optimal_lr(d: int, L: int, noise_std: float, w_std: float) -> float:
    """The step c minimising :func:`gd_risk` at L examples: tau^2 L / (tau^2 (L + d + 1) + sigma^2)
    (set dR/dc = 0 in the module docstring's formula with m = L)."""
    check(L >= 1 and w_std > 0, f"gd_optimal_lr needs L >= 1 and w_std > 0, got L={L}, w_std={w_std}")
    tau2 = float(w_std) ** 2
    return tau2 * L / (tau2 * (L + d + 1) + float(noise_std) ** 2)


def debiased_gd_optimal_lr(d: int, L: int, noise_std: float, w_std: float) -> float:
    r"""The step c minimising :func:`debiased_gd_risk` at L >= 2 examples:
    tau^2 L / (tau^2 (L + d) + sigma^2) (dR/dc = 0 with m = L - 1).

    With the step refitted at each L the excess risk R - sigma^2 over the Bayes excess tends to
    1 + (d + 1) tau^2 / sigma^2 as L -> infinity (both are of order 1/L): He et al.'s "Bayes
    optimal up to a proportional factor". A step fixed at one L leaves the bias d tau^2 (1 - c)^2,
    so the ratio grows without bound."""
    check(L >= 2 and w_std > 0,
          f"debiased_gd_optimal_lr needs L >= 2 and w_std > 0, got L={L}, w_std={w_std}")
    tau2 = float(w_std) ** 2
    return tau2 * L / (tau2 * (L + d) + float(noise_std) ** 2)
