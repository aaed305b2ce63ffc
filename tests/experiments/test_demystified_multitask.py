"""He et al. multi-task part: the head classifier on hand-built weights, the regime and loss claims on
synthetic results, and the toy run end to end."""

from __future__ import annotations

import math

import pytest
import torch

from iclreg.experiments.base import Runs
from iclreg.experiments.demystified import Demystified
from iclreg.experiments.demystified.multitask import (
    SUBSETS,
    TOY,
    D,
    Trained,
    head_roles,
    loss_claim,
    plan,
    regime_claims,
    sections,
)
from iclreg.train.loop import group_key
from iclreg.train.plan import train_plan

P = D + 2  # token width: d + two label slots


def _weights(diags: list[list[float]], mus: list[tuple[float, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """KQ with the given x-block diagonals, OV with mu_(h,k) on (output k, label k) and a small
    cross entry (output k, label j != k) that the rule must ignore."""
    H = len(diags)
    kq, ov = torch.zeros(H, P, P), torch.zeros(H, 2, P)
    for h, (diag, (m1, m2)) in enumerate(zip(diags, mus, strict=True)):
        kq[h, :D, :D] = torch.diag(torch.tensor(diag))
        ov[h, 0, D], ov[h, 1, D + 1] = m1, m2
        ov[h, 0, D + 1] = 5.0  # output 1 reading label 2: not an entry of either task
    return kq, ov


def test_classifier_on_the_superposition_pattern():
    """H = 3 as the authors describe: one head per task and one shared head of the other sign."""
    t1, t2, both = [0.3] * 4 + [0, 0], [0, 0] + [0.3] * 4, [-0.3] * 6
    kq, ov = _weights([t1, t2, both], [(2.0, 0.0), (0.0, 2.0), (-2.0, -2.0)])
    roles = head_roles(kq, ov, D, SUBSETS)
    assert roles.roles == ["task 1", "task 2", "both"] and roles.count("both") == 1
    # RMS over S_k x S_k: 4 of the 16 entries of S_1 are 0.3, 2 of S_2's
    assert roles.mu.tolist() == [[2.0, 0.0], [0.0, 2.0], [-2.0, -2.0]]
    assert roles.kq_mass[0].tolist() == pytest.approx([0.3 / 2, math.sqrt(2 * 0.09 / 16)])


def test_classifier_thresholds_and_dummies():
    """Shares relative to the largest head, at the 0.25 boundary on both sides; a head with a
    label entry but no scores on the task's coordinates does not serve it."""
    t1 = [0.4] * 4 + [0, 0]
    kq, ov = _weights([t1, t1, t1, [0.0] * 6, [0.0, 0.0, 0.0, 0.0, 0.4, 0.4]],
                      [(4.0, 1e-3), (1.0, 0.0), (0.99, 0.0), (4.0, 4.0), (0.0, 2.0)])
    roles = head_roles(kq, ov, D, SUBSETS)
    # mu shares for task 1: 1, 0.25, 0.2475, 1 (but no KQ), 0; head 5 serves task 2 only
    assert roles.roles == ["task 1", "task 1", "neither", "neither", "task 2"]
    assert roles.ov_share[:, 0].tolist() == pytest.approx([1.0, 0.25, 0.2475, 1.0, 0.0])
    assert head_roles(kq, ov, D, SUBSETS, share=0.2).roles[2] == "task 1"


def _trained(heads: int, seed: int, loss: float, roles: list[str]) -> Trained:
    kq, ov = _weights([[0.1] * 6] * heads, [(1.0, 1.0)] * heads)
    r = head_roles(kq, ov, D, SUBSETS)
    return Trained(heads, seed, [loss, loss], type(r)(r.mu, r.kq_mass, r.ov_share, r.kq_share, roles),
                   kq[:, :D, :D], ov)


def test_regime_and_loss_claims():
    stats = {1: [_trained(1, 0, 1.6, ["both"])],
             3: [_trained(3, 0, 1.00, ["task 1", "task 2", "both"]), _trained(3, 1, 1.2, ["both"] * 3)],
             4: [_trained(4, 0, 0.98, ["task 1"] * 2 + ["task 2"] * 2)],
             6: [_trained(6, 0, 0.97, ["task 1", "task 2", "both", "neither", "task 1", "task 2"])]}
    sup, one = regime_claims(stats)
    assert sup.id == "multitask-superposition" and sup.measured == {"H=3": [1, 3]} and sup.holds
    assert one.id == "multitask-one-task" and one.measured == {"H=6": [1]} and not one.holds
    loss = loss_claim(stats)
    assert loss.holds and loss.checks[0].value == pytest.approx((1.0 - 0.97) / 0.97)
    stats[3] = [_trained(3, 0, 1.03, ["both"] * 3)]  # 6.2% above 0.97
    assert not loss_claim(stats).holds
    assert loss_claim({1: stats[1], 3: stats[3]}) is None


def test_plan_one_ensemble_per_h():
    exp = Demystified(mode="quick", sizes=None)
    runs = plan(exp, TOY)
    assert list(runs) == [f"multitask/H{h}/seed{s}" for h in TOY.heads for s in range(TOY.seeds)]
    assert len({group_key(c) for c in runs.values()}) == len(TOY.heads)


def test_toy_run_end_to_end(tmp_path):
    exp = Demystified(mode="quick", sizes=None)
    dirs = train_plan(plan(exp, TOY), tmp_path)
    (section,) = sections(exp, Runs(dirs, "cpu"), TOY)
    assert [c.id for c in section.claims] == ["multitask-superposition"]  # TOY has H = 1, 3 only
    assert section.claims[0].measured
    assert set(section.figures) == {"multitask_heads.png", "multitask_loss.png"}
    assert all(len(v[0]["roles"]) == int(k[2:]) for k, v in section.data.items())
    (skipped,) = sections(exp, Runs({}, "cpu"), type(TOY)(heads=(), seeds=1, steps=1, batch=1, lr=0.1,
                                                          schedule={}, eval_samples=1))
    assert not skipped.claims and "Skipped" in skipped.text[0]
