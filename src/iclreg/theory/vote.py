r"""The exact majority-vote rate at any N from M decodes of a prompt (our construction, for the
test-time reproduction of Chen, Lu, Wu, Zou, arXiv 2508.07571).

A vote over N i.i.d. decodes picks the most frequent answer (ties broken uniformly at random
among the tied answers: the first occurrence in an exchangeable sample). Its success rate
r(N) depends on the decode distribution p over answers, which for support sampling is spread
over thousands of supports and cannot be written down. Plugging the frequencies of M decodes
into r is biased (a support drawn once stands for the whole unseen tail, and its collisions
are overcounted). Instead we compute, exactly, the U-statistic

.. math::
    \hat r(N) = \binom{M}{N}^{-1} \sum_{|A| = N} 1[\text{vote of the decodes in } A
    \text{ is the true answer}],

the vote rate of a uniformly random N-subset of the M decodes, which is an unbiased estimate of
r(N) for every N <= M (each subset is N i.i.d. decodes). With counts m_j of the answers among
the M decodes (m_t for the true one), a random N-subset is Bernoulli(rho) thinning conditioned
on its size, so for any rho in (0, 1)

.. math::
    \hat r(N) = \sum_{c \ge 1} h(c)\, \frac{[z^{R}] \prod_j \big(\sum_{i < c} b_{m_j}(i) z^i
    + s\, b_{m_j}(c) z^c\big)\big|_{s^k \to 1 / (k + 1)}}{b_{M - m_t}(R)},\qquad R = N - c,

with h the hypergeometric law of the true answer's count, b_m the Binomial(m, rho) pmf and s
marking the rivals tied with the true answer at c (k of them: the true answer wins the tie with
probability 1 / (k + 1)). Rivals with equal counts share one factor, raised to its multiplicity
by repeated squaring; products are 2-D FFT convolutions truncated at R votes (exact: every
coefficient is non-negative and only low ones are kept) and at ``ties`` tied rivals, the rest
pooled in one bucket whose weight 1 / (k + 1) lies in [0, 1 / (ties + 1)]: the returned
``bound`` is half that range, a deterministic bound on the error. Float64 rounding adds ~1e-14.
"""

from __future__ import annotations

import torch

__all__ = ["subset_vote_rate"]


def _log_binom(n: torch.Tensor | float, k: torch.Tensor) -> torch.Tensor:
    n = torch.as_tensor(n, dtype=torch.float64)
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def _binom_pmf(m: int, rho: torch.Tensor, upto: int) -> torch.Tensor:
    """Binomial(m, rho_c) pmf at 0..upto (0 beyond m) for each rho_c in [0, 1]: (C, upto + 1)."""
    k = torch.arange(upto + 1, dtype=torch.float64)
    valid = k <= m
    kk = torch.where(valid, k, torch.zeros_like(k))
    r = rho.unsqueeze(-1)  # (C, 1)
    log = _log_binom(m, kk) + torch.special.xlogy(kk, r) + torch.special.xlogy(m - kk, 1.0 - r)
    return torch.where(valid, log.exp(), torch.zeros_like(log))


def _mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Product of (C, R + 1, S + 1) polynomials in (z, s): truncated at z^R, s^S pooled."""
    rows, cols = a.shape[-2:]
    shape = (2 * rows, 2 * cols)
    full = torch.fft.irfft2(torch.fft.rfft2(a, shape) * torch.fft.rfft2(b, shape), shape)
    out = full[..., :rows, : 2 * cols - 1].clamp_min(0.0)  # (C, R + 1, 2S + 1)
    return torch.cat([out[..., : cols - 1], out[..., cols - 1:].sum(-1, keepdim=True)], -1)


def _power(a: torch.Tensor, g: int) -> torch.Tensor:
    out = None
    while g:
        if g & 1:
            out = a if out is None else _mul(out, a)
        g >>= 1
        if g:
            a = _mul(a, a)
    return out


def _rivals_below(values: list[int], mult: list[int], cs: list[int], n: int, rival_total: int,
                  ties: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each true count c of ``cs`` (all < n), E[1 / (k + 1); every rival count <= c] given the
    rivals take the other n - c of the subset: (values with the pooled bucket at its midpoint,
    half the bucket's range), each (C,). All c at once: row r of c's polynomial is exact up to
    r = n - c, the only row read."""
    c = torch.tensor(cs, dtype=torch.int64)
    rest = n - c  # (C,)
    rows = int(rest.max()) + 1
    cols = min(ties, int(rest.max()) // min(cs)) + 2  # k = 0 .. ties, and the pooled bucket
    rho = rest.double() / rival_total
    index = torch.arange(rows)
    total = None
    for v, g in zip(values, mult, strict=True):
        pmf = _binom_pmf(v, rho, rows - 1)  # (C, rows)
        factor = torch.zeros(len(cs), rows, cols, dtype=torch.float64)
        factor[..., 0] = torch.where(index < c.unsqueeze(-1), pmf, 0.0)
        factor[..., 1] = torch.where(index == c.unsqueeze(-1), pmf, 0.0)
        part = _power(factor, g)
        total = part if total is None else _mul(total, part)
    norm = _binom_pmf(rival_total, rho, rows - 1).gather(1, rest.unsqueeze(-1)).squeeze(-1)  # (C,)
    row = total[torch.arange(len(cs)), rest] / norm.unsqueeze(-1)  # (C, cols)
    weights = 1.0 / torch.arange(1, cols + 1, dtype=torch.float64)
    weights[-1] = 0.5 / (cols - 1)  # the pooled bucket: k >= cols - 1, weight in [0, 1 / (cols - 1)]
    return (row * weights).sum(-1), row[:, -1] * 0.5 / (cols - 1)


def subset_vote_rate(counts: torch.Tensor | list[int], true_index: int, num_samples: int,
                     ties: int = 8, cut: float = 1e-13) -> tuple[float, float]:
    """Exact vote rate of a uniformly random N-subset of M decodes (module docstring).

    Args:
        counts: (K,) how many of the M decodes gave each answer. true_index: the true answer.
        num_samples: N, 1 <= N <= M. ties: tied rivals tracked exactly before pooling.
        cut: values c of the true count with hypergeometric probability below ``cut`` are
            skipped (their total is added to the bound).
    Returns:
        (rate, bound): |rate - exact U-statistic| <= bound.
    """
    cnt = torch.as_tensor(counts, dtype=torch.int64).flatten()
    total, m_t, n = int(cnt.sum()), int(cnt[true_index]), num_samples
    if not 1 <= n <= total:
        raise ValueError(f"num_samples must lie in [1, M={total}], got {n}")
    if m_t == 0:
        return 0.0, 0.0
    rivals = torch.cat([cnt[:true_index], cnt[true_index + 1:]])
    rivals = rivals[rivals > 0]
    values, mult = (t.tolist() for t in torch.unique(rivals, return_counts=True))
    c = torch.arange(1, min(m_t, n) + 1, dtype=torch.float64)
    all_n = torch.tensor(float(n), dtype=torch.float64)
    log_h = _log_binom(m_t, c) + _log_binom(total - m_t, n - c) - _log_binom(total, all_n)
    h = log_h.exp()
    keep = h >= cut
    rate, bound = 0.0, float(h[~keep].sum())
    cs = c[keep].long().tolist()
    last = [ci for ci in cs if ci == n]  # every vote to the true answer: no rival
    cs = [ci for ci in cs if ci < n]
    if last:
        rate += h[n - 1].item()
    if cs:
        value, err = _rivals_below(values, mult, cs, n, total - m_t, ties)
        hc = h[torch.tensor(cs) - 1]
        rate, bound = rate + float((hc * value).sum()), bound + float((hc * err).sum())
    return rate, bound
