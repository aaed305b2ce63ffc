"""Support sampling against the exact law of sampling k of d indices without replacement,
enumerated over every ordered draw for a small d."""

from __future__ import annotations

import itertools

import pytest
import torch

from iclreg.testtime import NOISES

N = 200_000


def subset_probabilities(f: list[float], k: int, temperature: float) -> dict[frozenset, float]:
    """P(S) for every k-subset S: the sum over orderings of prod_i q_{j_i} / (1 - q_{j_1} - ...),
    q = clip(f, 1e-10)^(1/temperature), normalised."""
    p = [max(v, 1e-10) for v in f]
    p = [v / sum(p) for v in p]
    q = [v ** (1 / temperature) for v in p]
    q = [v / sum(q) for v in q]
    out: dict[frozenset, float] = {}
    for order in itertools.permutations(range(len(f)), k):
        prob, left = 1.0, 1.0
        for j in order:
            prob *= q[j] / left
            left -= q[j]
        out[frozenset(order)] = out.get(frozenset(order), 0.0) + prob
    return out


def inclusion(f: list[float], k: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """P(j in S) (d,) and P(i, j in S) (d, d) from the enumeration."""
    d = len(f)
    single, pair = torch.zeros(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    for subset, prob in subset_probabilities(f, k, temperature).items():
        for i in subset:
            single[i] += prob
            for j in subset:
                pair[i, j] += prob
    return single, pair


def test_the_enumeration_is_a_distribution():
    probs = subset_probabilities([0.5, -1.0, 2.0, 0.3, 1.2], 3, 0.7)
    assert len(probs) == 10
    assert abs(sum(probs.values()) - 1) < 1e-12
    single, _ = inclusion([0.5, -1.0, 2.0, 0.3, 1.2], 3, 0.7)
    assert abs(float(single.sum()) - 3) < 1e-12


@pytest.mark.parametrize(("k", "temperature"), [(1, 1.0), (2, 0.7), (3, 2.0)])
def test_subset_frequencies_match_sampling_without_replacement(seed: int, k: int,
                                                               temperature: float):
    f = [0.5, -1.0, 2.0, 0.3, 1.2]  # one entry below the clip
    noise = NOISES.build(f"support:k={k},temperature={temperature}")
    fw = torch.tensor(f, dtype=torch.float64).expand(N, 1, 5)
    draw = noise.draw(fw.shape, torch.Generator().manual_seed(seed), fw.dtype, fw.device)
    out = noise.apply(fw, fw, 0.1, draw)[:, 0]  # (N, d)
    assert (out.sum(-1) == k).all() and ((out == 0) | (out == 1)).all()
    codes = (out.long() * 2 ** torch.arange(5)).sum(-1)
    counts = torch.bincount(codes, minlength=32).double()
    for subset, prob in subset_probabilities(f, k, temperature).items():
        code = sum(2**j for j in subset)
        se = (prob * (1 - prob) / N) ** 0.5
        assert abs(counts[code] / N - prob) <= 5 * se + 1e-9, (subset, prob)
    assert counts.sum() == N


def test_temperature_zero_is_top_k_with_ties_to_the_smallest_index():
    noise = NOISES.build("support:k=3,temperature=0")
    fw = torch.tensor([[[0.2, -1.0, 3.0, -2.0, 0.1]], [[-1.0, -1.0, -1.0, 0.5, -3.0]]])
    out = noise.apply(fw, fw, 0.1, noise.draw(fw.shape, None, fw.dtype, fw.device))
    expected = torch.tensor([[[1.0, 0, 1, 0, 1]], [[1.0, 1, 0, 1, 0]]])
    assert torch.equal(out, expected)
