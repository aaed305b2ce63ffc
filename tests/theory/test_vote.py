"""The exact vote rate of random N-subsets of M decodes: against enumeration of every subset,
and unbiased for the vote rate of N i.i.d. decodes (every sequence enumerated), which plugging
the frequencies in is not."""

from __future__ import annotations

import itertools

import pytest
import torch

from iclreg.theory.vote import subset_vote_rate


def _enumerate(counts: list[int], true: int, n: int) -> float:
    """Mean over every n-subset of the decodes of 1[vote is true] (ties: 1 / number tied)."""
    items = [j for j, m in enumerate(counts) for _ in range(m)]
    total = num = 0.0
    for subset in itertools.combinations(items, n):
        votes = {a: subset.count(a) for a in set(subset)}
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        total += 1 / len(winners) if true in winners else 0.0
        num += 1
    return total / num


@pytest.mark.parametrize(("counts", "true", "n"), [
    ([3, 2, 1, 1], 0, 3), ([2, 2, 2, 1, 1], 1, 4), ([4, 1, 1, 1, 1, 1, 2], 0, 5), ([1] * 10, 0, 4),
    ([5, 3, 3], 2, 6), ([2, 3], 0, 5), ([0, 4, 1], 0, 2)])
def test_equals_the_mean_over_every_subset(counts, true, n):
    rate, bound = subset_vote_rate(counts, true, n)
    assert bound < 1e-12
    assert rate == pytest.approx(_enumerate(counts, true, n), abs=1e-12)


def test_pooled_ties_are_bounded():
    """Tracking few tied rivals pools the rest; the bound covers the exact answer."""
    counts, n = [2] + [1] * 11, 8
    exact = _enumerate(counts, 0, n)
    rate, bound = subset_vote_rate(counts, 0, n, ties=1)
    assert bound > 1e-4 and abs(rate - exact) <= bound + 1e-12


def _iid_rate(p: list[float], true: int, n: int) -> float:
    """The vote rate of n i.i.d. draws from p, ties broken at random: every sequence enumerated."""
    total = 0.0
    for seq in itertools.product(range(len(p)), repeat=n):
        votes = {a: seq.count(a) for a in set(seq)}
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        if true in winners:
            prob = 1.0
            for a in seq:
                prob *= p[a]
            total += prob / len(winners)
    return total


def test_unbiased_for_the_iid_vote_rate_where_plug_in_is_not():
    p = [0.3, 0.2, 0.2, 0.1, 0.1, 0.1]
    n, m, reps = 5, 8, 600
    exact = _iid_rate(p, 0, n)
    gen = torch.Generator().manual_seed(0)
    ours, plug = [], []
    for _ in range(reps):
        draws = torch.multinomial(torch.tensor(p, dtype=torch.float64), m, replacement=True, generator=gen)
        counts = torch.bincount(draws, minlength=len(p))
        ours.append(subset_vote_rate(counts, 0, n)[0])
        plug.append(_iid_rate((counts.double() / m).tolist(), 0, n))
    ours_t, plug_t = torch.tensor(ours), torch.tensor(plug)
    assert abs(ours_t.mean().item() - exact) < 4 * ours_t.std().item() / reps**0.5
    # negative control: the plug-in rate of the same decodes is biased by many of its SEs
    assert abs(plug_t.mean().item() - exact) > 4 * plug_t.std().item() / reps**0.5


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="num_samples"):
        subset_vote_rate([1, 2], 0, 4)
    assert subset_vote_rate([0, 3], 0, 2) == (0.0, 0.0)
