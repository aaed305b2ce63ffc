"""The causal mask and its normalisations against an explicit loop over queries i and examples j."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.models.causal import causal_mask, causal_weights, example_counts


def slow_weights(scores: torch.Tensor, normalisation: str, positions: list[int],
                 scale: float | None = None) -> torch.Tensor:
    """a_ij over the examples j < i, one query and one example at a time; (n_q, n) scores;
    ``scale``: linear weights divided by this fixed number instead of max(i, 1)."""
    n_q, n = scores.shape
    out = torch.zeros(n_q, n, dtype=scores.dtype)
    for q, i in enumerate(positions):
        if normalisation == "softmax":
            total = sum(math.exp(scores[q, j].item()) for j in range(i))
            for j in range(i):
                out[q, j] = math.exp(scores[q, j].item()) / total
        else:
            for j in range(i):
                out[q, j] = scores[q, j] / (max(i, 1) if scale is None else scale)
    return out


@pytest.mark.parametrize("normalisation", ["softmax", "linear"])
@pytest.mark.parametrize("rows", [None, slice(6, 7), slice(2, 5), torch.tensor([0, 3, 6])])
def test_weights_match_the_explicit_loop(normalisation: str, rows) -> None:
    n = 7
    positions = list(range(n))[rows] if isinstance(rows, slice) else (
        list(range(n)) if rows is None else rows.tolist())
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, len(positions), n, generator=gen, dtype=torch.float64)
    got = causal_weights(scores, normalisation, rows)
    assert got.shape == scores.shape
    for b in range(2):
        for h in range(3):
            expected = slow_weights(scores[b, h], normalisation, positions)
            torch.testing.assert_close(got[b, h], expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("rows", [None, slice(6, 7), torch.tensor([0, 3, 6])])
@pytest.mark.parametrize("scale", [1, 4, 40])
def test_fixed_linear_scale_matches_the_explicit_loop(rows, scale: int) -> None:
    """Linear weights divided by a fixed number (the training length) at every position."""
    n = 7
    positions = list(range(n))[rows] if isinstance(rows, slice) else (
        list(range(n)) if rows is None else rows.tolist())
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(2, len(positions), n, generator=gen, dtype=torch.float64)
    got = causal_weights(scores, "linear", rows, scale)
    for b in range(2):
        expected = slow_weights(scores[b], "linear", positions, scale)
        torch.testing.assert_close(got[b], expected, rtol=1e-12, atol=0)
    last = positions.index(6)  # at k = 6 = scale the two linear normalisations agree bitwise
    fixed, by_k = causal_weights(scores, "linear", rows, 6), causal_weights(scores, "linear", rows)
    assert torch.equal(fixed[:, last], by_k[:, last])


def test_fixed_scale_is_refused_for_softmax() -> None:
    with pytest.raises(ValueError, match="linear weights"):
        causal_weights(torch.zeros(3, 3), "softmax", scale=3)


def test_later_scores_never_reach_a_query() -> None:
    """Scores at j >= i (inf or nan included) change nothing; position 0 gets no weight."""
    n = 6
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(4, n, n, generator=gen)
    spoiled = scores.clone()
    later = ~causal_mask(n)
    values = torch.tensor([float("nan"), float("inf"), -float("inf")])
    spoiled[:, later] = values[torch.arange(int(later.sum())) % 3]
    for normalisation in ("softmax", "linear"):
        clean, dirty = causal_weights(scores, normalisation), causal_weights(spoiled, normalisation)
        assert torch.equal(clean, dirty)
        assert torch.equal(clean[:, 0], torch.zeros(4, n))
    rows_sum = causal_weights(scores, "softmax")[:, 1:].sum(-1)
    torch.testing.assert_close(rows_sum, torch.ones(4, n - 1))


def test_mask_and_counts() -> None:
    assert causal_mask(4).tolist() == [[False] * 4, [True, False, False, False],
                                       [True, True, False, False], [True, True, True, False]]
    assert causal_mask(4, rows=slice(3, 4)).tolist() == [[True, True, True, False]]
    assert example_counts(5, dtype=torch.float64).tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert example_counts(5, rows=torch.tensor([0, 4])).tolist() == [1.0, 4.0]
    assert torch.equal(example_counts(9), causal_mask(9).sum(1).clamp_min(1).float())


def test_unknown_normalisation_is_refused() -> None:
    with pytest.raises(ValueError, match="softmax or linear"):
        causal_weights(torch.zeros(3, 3), "relu")  # type: ignore[arg-type]
