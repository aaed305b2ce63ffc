"""He et al. 2025 (``demystified``): the plan, the claim rules on synthetic heads, the quick run."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from iclreg.analysis.patterns import HeadPatterns
from iclreg.experiments import REPRODUCTIONS, runner
from iclreg.experiments.claims import Near
from iclreg.experiments.demystified import (
    K_SE,
    PLATEAU,
    QUICK,
    TASK,
    D,
    Demystified,
    Trained,
)
from iclreg.experiments.demystified.heads import (
    magnitude_claim,
    opposite_claim,
    pattern_claims,
    theory_h1_claim,
)
from iclreg.train.loop import group_key
from iclreg.train.sweep import expand

FACTOR = (7 / 6) ** 0.5  # sqrt((d+2)/(d+1)) at d = 5: ours / theirs


def test_demystified_omega_is_compared_in_the_published_normalisation():
    """The published |omega| 0.13 is read off figures of K^T Q / sqrt(d+2); ours is K^T Q / sqrt(d+1)."""
    ours = 0.13 * FACTOR
    claim = magnitude_claim([[-ours, ours], [ours, -ours]], [[-3.5, 3.5], [3.4, -3.6]], D)
    assert claim.measured == {"omega (figures)": pytest.approx(0.13, abs=1e-12),
                              "omega (ours)": pytest.approx(ours, abs=1e-12), "mu": pytest.approx(3.5)}
    assert claim.holds and "sqrt(d+2)" in claim.statement
    low = magnitude_claim([[0.09 * FACTOR, -0.09 * FACTOR]], [[3.5, -3.5]], D)  # 0.09 in their figures
    assert low.measured["omega (figures)"] == pytest.approx(0.09) and not low.holds  # beyond 25% of 0.13
    high = magnitude_claim([[0.17, -0.17]], [[3.5, -3.5]], D)  # 0.17 ours (> 1.25 x 0.13) is 0.157 theirs
    assert high.holds and high.measured["omega (figures)"] == pytest.approx(0.17 / FACTOR)
    far_mu = magnitude_claim([[-ours, ours]], [[-4.5, 4.5]], D)  # |mu| 4.5 > 1.25 x 3.5
    assert not far_mu.holds and "mu" in far_mu.reason


def test_the_estimator_allowance_is_one_and_a_half_ci_widths():
    """0.02 + 1.5 x (95% CI width) = 0.02 + 5.88 standard errors, as the tolerance text says."""
    width = 0.013
    bound = Near(0.243, abs=0.02, se=width / (2 * 1.96), k=K_SE)
    assert bound.allowance == pytest.approx(0.02 + 1.5 * width, rel=1e-12)
    assert "5.88 SE" in bound.text
    assert bound.ok(0.243 + 0.02 + 1.5 * width - 1e-9) and not bound.ok(0.243 - 0.02 - 1.5 * width - 1e-6)


def test_opposite_heads():
    holds = opposite_claim([[-0.2081, 0.2052], [-0.15, 0.16]], [[-3.1, 3.0], [-2.0, 2.1]])
    assert holds.holds
    same_sign = opposite_claim([[0.01, 0.2]], [[-3.0, 3.0]])
    assert not same_sign.holds and "omega: smaller x larger" in same_sign.reason
    unbalanced = opposite_claim([[-0.2, 0.2]], [[-2.5, 3.1]])  # |0.6| / 5.6 = 0.107 > 0.1
    assert not unbalanced.holds and "mu: |sum|" in unbalanced.reason
    balanced = opposite_claim([[-0.2, 0.2]], [[-2.6, 3.1]])  # |0.5| / 5.7 = 0.088
    assert balanced.holds


def test_theory_h1_claim_allows_the_sign_flip_and_15_percent():
    omega1, mu1 = 0.3, 2.0
    assert theory_h1_claim([(0.3, 2.0), (-0.33, -1.75)], omega1, mu1).holds  # 10%, 12.5% off
    assert not theory_h1_claim([(0.3, -2.0)], omega1, mu1).holds  # signs disagree
    assert not theory_h1_claim([(0.3 * 1.16, 2.0)], omega1, mu1).holds  # 16% off
    assert not theory_h1_claim([(0.3, 2.0 * 0.84)], omega1, mu1).holds


def test_plan_is_the_old_sweep(tmp_path):
    """One run per (H, seed) with exactly the config the old sweep expanded (its YAML, model.heads
    and train.seed overridden); the seeds of one H train as one ensemble."""
    old = {"task": TASK, "model": "softmax_attention:heads=1",
           "optimizer": {"name": "adam", "lr": QUICK.lr}, "schedule": QUICK.schedule,
           "train": {"steps": QUICK.steps, "batch": QUICK.batch, "loss": "query"},
           "eval": {"samples": 2000, "estimators": []},
           "run": {"device": "cpu", "checkpoint_every": QUICK.steps // 10, "keep": 11,
                   "log_every": QUICK.steps // 100,
                   "figures": False}}  # a reproduction's runs leave the figures to its report
    path = tmp_path / "train_config.yaml"
    path.write_text(yaml.safe_dump(old, sort_keys=False))
    plan = {name: c for name, c in Demystified().plan(QUICK).items() if name.startswith("H")}
    assert list(plan) == [f"H{h}/seed{s}" for h, n in QUICK.seeds.items() for s in range(n)]
    for heads, seeds in QUICK.seeds.items():
        swept = expand(path, [f"model.heads={heads}"], ["train.seed=" + ",".join(map(str, range(seeds)))])
        assert [c.to_dict() for _, c in swept] == [plan[f"H{heads}/seed{s}"].to_dict() for s in range(seeds)]
    assert plan["H2/seed3"].train.seed == 3
    keys = {name: group_key(config) for name, config in plan.items()}
    for h, n in QUICK.seeds.items():
        assert len({keys[f"H{h}/seed{s}"] for s in range(n)}) == 1
    assert len(set(keys.values())) == len(QUICK.seeds)


def _patterns(omega: list[float], mu: list[float], off: float = 0.01) -> HeadPatterns:
    omega_t, mu_t = torch.tensor(omega), torch.tensor(mu)
    strength = (omega_t * mu_t).abs()
    h = len(omega)
    return HeadPatterns(omega=omega_t, mu=mu_t, offdiag_ratio=torch.full((h,), off),
                        diag_spread=torch.full((h,), 0.02), ov_ratio=torch.full((h,), 0.01),
                        contribution=strength / strength.sum(), kq=torch.zeros(h, 6, 6), ov=torch.zeros(h, 6))


def _trained(heads: int, seed: int, mse: float, patterns: HeadPatterns | None) -> Trained:
    return Trained(heads, seed, torch.nn.Identity(), [mse] * 101, patterns)


def test_pattern_claims_from_synthetic_heads():
    stuck = {1: [_trained(1, 0, 0.40, None)], 2: [_trained(2, 0, PLATEAU + 0.01, None)]}
    (claim,) = pattern_claims(stuck)
    assert claim.id == "3-patterns" and not claim.holds and claim.measured is None
    assert "no H=2 seed left the plateau" in claim.reason
    stats = {2: [_trained(2, 0, 0.24, _patterns([-0.2, 0.2], [3.0, -3.0])),
                 _trained(2, 1, 0.40, _patterns([0.5, 0.5], [1.0, 1.0], off=0.9))],  # on the plateau
             4: [_trained(4, 0, 0.24, _patterns([0.2, -0.2, 0.01, 0.2], [3.0, -3.0, 0.1, 0.01]))],
             8: [_trained(8, 0, 0.24, _patterns([0.2, -0.2, 0.1] + [0.0] * 5, [3.0, -3.0, 3.0] + [0.0] * 5))]}
    claims = {c.id: c for c in pattern_claims(stats)}
    assert claims["3-KQ"].holds and claims["3-KQ"].measured["off/diag"] == pytest.approx(0.01)
    assert claims["3-OV"].holds and claims["3-opposite"].holds
    assert claims["3-opposite"].measured["omega"] == [[pytest.approx(-0.2), pytest.approx(0.2)]]
    # |omega mu|: H=4 0.6, 0.6, 0.001, 0.002 -> 2 heads over 10%; H=8 0.6, 0.6, 0.3 -> 3
    assert claims["3-dummies"].measured == {"H=4": [2], "H=8": [3]} and not claims["3-dummies"].holds
    assert all(isinstance(k, str) for c in claims.values() if isinstance(c.measured, dict)
               for k in c.measured)


@pytest.mark.slow
def test_quick_demystified_reproduction(tmp_path):
    """The quick run (29 claims): the 16 that held in the published example report hold."""
    out = tmp_path / "he"
    result = runner.reproduce("demystified", out, mode="quick")
    held = {c.id for c in result.claims if c.holds}
    expected = {"1-multi-head", "1-GD", "1-debiased-GD", "1-single-head", "1-ridge", "2-H1", "2-Hge2",
                "2-plateau", "3-KQ", "3-OV", "3-opposite", "4-H1", "4-Hge2", "4-exact-H1", "4-theory-H2",
                "5-length"}
    assert expected <= held, sorted(expected - held)
    data = json.loads((out / "claims.json").read_text())
    assert data["paper"] == "demystified" and len(data["claims"]) == 29
    assert all(math.isfinite(v) for v in data["claims"][0]["measured"])
    for name in ("report.md", "estimators.png", "loss_curves.png", "heads_H2.png", "trajectory_H2.png",
                 "lengths.png"):
        assert (out / name).stat().st_size > 1000
    assert "demystified" in REPRODUCTIONS


def test_split_trend_claim_reads_the_distance_to_the_published_split():
    from iclreg.experiments.demystified.heads import split_trend_claim

    towards = {1: [(0, 0.30, 1.0), (500, 0.25, 1.6), (1000, 0.17, 2.4)]}  # nearer 0.13 and 3.5
    claim = split_trend_claim(towards)
    assert claim.holds and claim.measured["(|omega|, |mu|)"]["seed 1"]["step 1000"] == [0.17, 2.4]
    away = {1: [(0, 0.30, 1.0), (500, 0.25, 1.6), (1000, 0.27, 1.7)]}  # omega moved away, mu towards
    assert not split_trend_claim(away).holds and "omega" in split_trend_claim(away).reason
    assert not split_trend_claim({}).holds  # nothing measured is a miss
