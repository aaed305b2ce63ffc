"""mean, vote and best against hand-built cases and a slow Counter-based vote."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from iclreg.errors import UsageError
from iclreg.testtime import TECHNIQUES


def _stack(rows: list[list[list[float]]]) -> torch.Tensor:
    """rows[b][i] = sample i of prompt b -> (N, B, d)."""
    return torch.tensor(rows, dtype=torch.float64).transpose(0, 1)


def test_mean_averages_the_samples():
    w = _stack([[[1.0, 2.0], [3.0, -2.0], [2.0, 3.0]]])
    out = TECHNIQUES.build("mean")(w, None, None)
    assert torch.equal(out, torch.tensor([[2.0, 1.0]], dtype=torch.float64))


def test_vote_picks_the_most_frequent_support_and_breaks_ties_by_first_occurrence():
    a, b, c = [1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]
    w = _stack([
        [a, b, b, c, a, b],  # b wins 3 to 2
        [c, a, a, c, b, b],  # c, a and b tie at 2; c occurs first
        [b, a, a, b, c, c],  # b and a and c tie at 2; b occurs first
        [c, c, c, a, a, a],  # tie at 3; c first
    ])
    out = TECHNIQUES.build("vote")(w, None, None)
    assert torch.equal(out, torch.tensor([b, c, b, c], dtype=torch.float64))


def test_vote_reads_supports_of_real_valued_samples():
    w = _stack([[[0.3, 0.0, -2.0], [1.0, 0.0, 5.0], [0.0, 4.0, 0.0]]])
    out = TECHNIQUES.build("vote")(w, None, None)
    assert torch.equal(out, torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))


@pytest.mark.parametrize("d", [4, 70, 130])  # one, two and three packed words
def test_vote_matches_a_counter(seed: int, d: int):
    gen = torch.Generator().manual_seed(seed)
    base = (torch.rand(5, d, generator=gen) < 0.5).double()  # 5 candidate supports
    pick = torch.randint(0, 5, (40, 16), generator=gen)  # (N, B)
    w = base[pick]  # (N, B, d): many repeats, many ties
    out = TECHNIQUES.build("vote")(w, None, None)
    for b in range(16):
        rows = [tuple(w[i, b].tolist()) for i in range(40)]
        counts = Counter(rows)
        top = max(counts.values())
        winner = next(r for r in rows if counts[r] == top)  # earliest first occurrence
        assert out[b].tolist() == list(winner)


def test_best_rewards():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]], dtype=torch.float64)  # (1, 3, 2)
    y = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    samples = [[3.0, 0.0], [1.0, 2.0], [-1.5, 1.4], [2.0, 1.9]]
    w = _stack([samples])
    # norms: l2 = 3, 2.236, 2.052, 2.759; l1 = 3, 3, 2.9, 3.9; residual: 2.45, 0, 3.68, 1.10
    assert TECHNIQUES.build("best:reward=norm2")(w, x, y).tolist() == [samples[2]]
    assert TECHNIQUES.build("best:reward=norm1")(w, x, y).tolist() == [samples[2]]
    assert TECHNIQUES.build("best:reward=residual")(w, x, y).tolist() == [samples[1]]
    assert TECHNIQUES.build("best")(w, x, y).tolist() == [samples[2]]  # norm2 by default


def test_best_takes_the_first_sample_on_ties_and_works_per_prompt():
    w = _stack([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]])
    out = TECHNIQUES.build("best:reward=norm2")(w, None, None)
    assert out.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_unknown_reward_is_refused():
    with pytest.raises(UsageError, match="reward must be one of"):
        TECHNIQUES.build("best:reward=norm3")
