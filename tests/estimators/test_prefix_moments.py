"""prefix_moments against a slow loop, at every start position."""

from __future__ import annotations

import pytest
import torch

from iclreg.estimators import prefix_moments


@pytest.mark.parametrize("start", [0, 1, 4, 6])
def test_prefix_moments_equal_a_loop_over_positions(start: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    B, n, d = 3, 7, 4
    x = torch.randn(B, n, d, dtype=torch.float64, generator=g)
    y = torch.randn(B, n, dtype=torch.float64, generator=g)
    S, b = prefix_moments(x, y, start)
    assert S.shape == (B, n - start, d, d) and b.shape == (B, n - start, d)
    for i in range(start, n):
        for k in range(B):
            S_ref = sum((torch.outer(x[k, j], x[k, j]) for j in range(i)), torch.zeros(d, d, dtype=x.dtype))
            b_ref = sum((y[k, j] * x[k, j] for j in range(i)), torch.zeros(d, dtype=x.dtype))
            torch.testing.assert_close(S[k, i - start], S_ref, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(b[k, i - start], b_ref, rtol=1e-12, atol=1e-12)


def test_prefix_moments_never_read_the_last_pair():
    x, y = torch.randn(2, 5, 3), torch.randn(2, 5)
    S, b = prefix_moments(x, y, 2)
    x[:, -1], y[:, -1] = float("nan"), float("nan")
    S_nan, b_nan = prefix_moments(x, y, 2)
    torch.testing.assert_close(S_nan, S, rtol=0, atol=0)
    torch.testing.assert_close(b_nan, b, rtol=0, atol=0)
