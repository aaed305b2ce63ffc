"""The negative control of every claim of ``iclreg reproduce demystified``, at toy size: under its
control (``demystified.controls.CONTROLS``) each claim must miss. One case per claim id; a claim
of the reproduction without a case (or without a control phrase) fails the suite."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from iclreg.analysis.patterns import HeadPatterns
from iclreg.estimators import build as build_estimator
from iclreg.experiments import demystified as he
from iclreg.experiments.claims import Claim
from iclreg.experiments.demystified import CONTROLS, TOY, Demystified, Trained, aniso, sweep
from iclreg.experiments.demystified import length as part
from iclreg.experiments.demystified import multitask as multi
from iclreg.experiments.demystified.heads import (
    exact_h1_claim,
    magnitude_claim,
    pattern_claims,
    split_trend_claim,
    theory_h1_claim,
)
from iclreg.experiments.demystified.mechanism import (
    debiased_claim,
    debiased_measures,
    disagreement,
    single_head_claim,
    theory_h2_claim,
)
from iclreg.experiments.demystified.sweep_claims import estimator_claims, training_claims
from iclreg.experiments.demystified.sweep_text import lengths_section
from iclreg.tasks import build as build_task
from iclreg.theory import single_head_optimum

DEMO = Path(__file__).parents[2] / "docs" / "demo" / "demystified" / "claims.json"


def _patterns(omega: list[float], mu: list[float], off: float = 0.01, ov: float = 0.01) -> HeadPatterns:
    omega_t, mu_t = torch.tensor(omega), torch.tensor(mu)
    strength = (omega_t * mu_t).abs()
    h = len(omega)
    return HeadPatterns(omega=omega_t, mu=mu_t, offdiag_ratio=torch.full((h,), off),
                        diag_spread=torch.full((h,), 0.02), ov_ratio=torch.full((h,), ov),
                        contribution=strength / strength.sum(), kq=torch.zeros(h, 6, 6), ov=torch.zeros(h, 6))


GOOD = ([-0.2, 0.2], [3.0, -3.0])  # an H = 2 pair that passes 3-KQ, 3-OV, 3-opposite


def _trained(heads: int, mse: float, patterns: HeadPatterns | None = None,
             curve: list[float] | None = None) -> Trained:
    return Trained(heads, 0, torch.nn.Identity(), curve or [mse] * (he.LONGEST + 1), patterns)


def _pattern_claim(cid: str, **h2: float) -> Claim:
    stats = {2: [_trained(2, 0.24, _patterns(*GOOD, **h2))]}
    claims = {c.id: c for c in pattern_claims(stats)}
    return claims[cid]


def _estimator_control(cid: str) -> Claim:
    """Section 1 at toy size with each SPEC replaced: ridge for every row, the single head for ridge."""
    swapped = {label: "single_head:L=40" if label == "ridge" else "bayes" for label in he.ESTIMATORS}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep, "ESTIMATORS", swapped)  # the name the measurement reads
        claims = {c.id: c for c in estimator_claims(sweep.estimator_curves(Demystified(), TOY))}
    return claims[cid]


def _training_control(cid: str) -> Claim:
    """H = 1 gets an H = 2 loss, every H >= 2 seed an H = 1 (plateau) loss."""
    stats = {1: [_trained(1, 0.24)], 2: [_trained(2, 0.40)], 4: [_trained(4, 0.41)]}
    return {c.id: c for c in training_claims(stats)}[cid]


def _prompts():
    return build_task(he.TASK).sample(TOY.eval_samples, seed=13, step=0)


def _h1_control() -> Claim:
    p = _prompts()
    omega1, mu1 = single_head_optimum(he.D, he.L, he.NOISE_VAR)
    single = build_estimator(f"kernel:omega={omega1:.6f},mu={mu1:.6f}")(p.x, p.y)[:, he.L]
    dgd = build_estimator(f"debiased_gd:lr={he.HE_LR}")(p.x, p.y)[:, he.L]
    return single_head_claim([disagreement(dgd, single)], he.L)


def _hge2_control() -> Claim:
    p = _prompts()
    gd = build_estimator(f"gd:steps=1,lr={he.HE_LR},mean=true")
    return debiased_claim({"GD": debiased_measures(gd, he.HE_LR, p.x, p.y, he.L)}, he.L)


def _length_control() -> Claim:
    theory = part.Theory.at(he.LONGEST)
    stops = [v if k <= he.L else theory.debiased[he.L] for k, v in enumerate(theory.debiased)]
    stats = {1: [_trained(1, 0.4)], 2: [_trained(2, 0.24, curve=stops)]}
    (claim,) = lengths_section(stats, {}).claims
    return claim


def _near_bayes_control() -> Claim:
    theory = part.Theory.at(he.LONGEST)
    single = dict(zip((10, 20, 40), he.PUBLISHED["single head"], strict=True))
    return part.near_bayes_claim([single.get(k, v) for k, v in enumerate(theory.debiased)], theory)


def _aniso_measured(cov: str, model_spec: str | None) -> aniso.Measured:
    """One run's measures with W = I (``model_spec`` None) or plain GD's predictions as the model's."""
    task = build_task(aniso.task_spec(cov))
    eye = torch.eye(he.D, dtype=torch.float64)
    inverse = torch.linalg.inv(task.covariance.double())
    agree = (0.01, 0.2)
    if model_spec is not None:
        model = build_estimator(model_spec, task=task)
        fit, test = (task.sample(TOY.eval_samples, seed=s, step=0) for s in (14, 13))
        pgd = build_estimator("pgd:steps=1,lr=1,precond=inverse_cov", task=task)
        gd = build_estimator("gd:steps=1,lr=1", task=task)
        agree = (aniso.fitted_disagreement(model, pgd, fit, test)[1],
                 aniso.fitted_disagreement(model, gd, fit, test)[1])
    return aniso.Measured(cov, 2, 0, eye, aniso.cosine(eye, inverse), aniso.cosine(eye, eye), 0.0, [], [],
                          *agree, 1.0, 1.0)


def _multitask(heads: int, roles: list[str], loss: float = 1.0) -> multi.Trained:
    z = torch.zeros(heads, 2)
    return multi.Trained(heads, 0, [loss, loss], multi.HeadRoles(z, z, z, z, roles),
                         torch.zeros(heads, 6, 6), torch.zeros(heads, 2, 8))


def _multitask_control(cid: str) -> Claim:
    stats = {1: [_multitask(1, ["both"], 1.7)],
             3: [_multitask(3, ["task 1", "task 2", "task 1"], 1.7)],  # no superposition; H = 1's loss
             6: [_multitask(6, ["both"] + ["task 1"] * 5, 0.96)]}  # a head of H = 6 serves both
    claims = {c.id: c for c in [*multi.regime_claims(stats), multi.loss_claim(stats)]}
    return claims[cid]


omega1, mu1 = single_head_optimum(he.D, he.L, he.NOISE_VAR)
CASES = {
    **{cid: (lambda cid=cid: _estimator_control(cid))
       for cid in ("1-multi-head", "1-GD", "1-debiased-GD", "1-single-head", "1-ridge")},
    **{cid: (lambda cid=cid: _training_control(cid)) for cid in ("2-H1", "2-Hge2", "2-plateau")},
    "3-KQ": lambda: _pattern_claim("3-KQ", off=0.5),
    "3-OV": lambda: _pattern_claim("3-OV", ov=1.0),
    "3-opposite": lambda: pattern_claims(
        {2: [_trained(2, 0.24, _patterns([0.2, 0.2], [3.0, 3.0]))]})[2],
    "3-magnitude": lambda: magnitude_claim([[0.518]], [[1.5]], he.D),
    "3-dummies": lambda: {c.id: c for c in pattern_claims(
        {2: [_trained(2, 0.24, _patterns(*GOOD))],
         4: [_trained(4, 0.24, _patterns([0.2, -0.2, 0.2, -0.2], [3.0, -3.0, 3.0, -3.0]))]})}["3-dummies"],
    "3-split-trend": lambda: split_trend_claim({1: [(0, 0.17, 2.4), (500, 0.25, 1.6), (1000, 0.30, 1.0)]}),
    "4-H1": _h1_control,
    "4-Hge2": _hge2_control,
    "4-theory-H1": lambda: theory_h1_claim([(1.16 * omega1, mu1)], omega1, mu1),
    "4-exact-H1": lambda: exact_h1_claim([(omega1, mu1)], (0.52, 1.49), {40: (0.52, 1.49)},
                                           {40: (omega1, mu1)}),
    "4-theory-H2": lambda: theory_h2_claim({"seed 0": {"mu": [2.66, -2.63], "mu*(omega)": [3.17, -3.17]}}),
    "5-length": _length_control,
    "5-linear-length": lambda: part.linear_claim(part.Theory.at(200).debiased,
                                                 {"linear / L, seed 0": part.Theory.at(200).debiased}, {}),
    "5-near-bayes": _near_bayes_control,
    **{f"aniso-KQ-{cov}": (lambda cov=cov: aniso.kq_claim(cov, [_aniso_measured(cov, None)]))
       for cov in aniso.COVARIANCES},
    **{f"aniso-pgd-{cov}": (lambda cov=cov: aniso.agree_claim(
        cov, [_aniso_measured(cov, "gd:steps=1,lr=0.8")])) for cov in aniso.COVARIANCES},
    **{cid: (lambda cid=cid: _multitask_control(cid))
       for cid in ("multitask-superposition", "multitask-one-task", "multitask-loss")},
}


@pytest.mark.parametrize("cid", sorted(CASES))
def test_every_claim_misses_under_its_negative_control(cid):
    claim = CASES[cid]()
    assert claim.id == cid
    assert not claim.holds, f"{cid} holds under its control ({CONTROLS[cid]}): {claim.measured}"


def test_every_claim_has_a_control_and_a_case():
    """The claim ids of the committed quick report, the controls listed and the cases run agree."""
    assert set(CASES) == set(CONTROLS)
    if DEMO.exists():
        assert {c["id"] for c in json.loads(DEMO.read_text())["claims"]} <= set(CONTROLS)
    assert all(phrase and len(phrase) <= 90 for phrase in CONTROLS.values())


def test_the_reproduction_lists_its_controls():
    """The report rows read the controls from ``Demystified.controls`` (base.with_control)."""
    assert Demystified.controls is CONTROLS
    assert math.isfinite(omega1)


def test_the_unperturbed_twins_hold():
    """The same builders on unperturbed inputs hold at toy size: the control is what makes each miss."""
    assert all(c.holds for c in estimator_claims(sweep.estimator_curves(Demystified(), TOY)))
    stats = {1: [_trained(1, 0.40)], 2: [_trained(2, 0.24)], 4: [_trained(4, 0.24)]}
    assert all(c.holds for c in training_claims(stats))
    assert all(_pattern_claim(cid).holds for cid in ("3-KQ", "3-OV", "3-opposite"))
    assert exact_h1_claim([(-0.518, -1.500), (0.518, 1.496)], (0.52, 1.49), {40: (0.52, 1.49)},
                          {40: (omega1, mu1)}).holds  # the committed demo's two H = 1 seeds
    for cov in aniso.COVARIANCES:
        measured = _aniso_measured(cov, "pgd:steps=1,lr=0.8,precond=inverse_cov")
        assert aniso.agree_claim(cov, [measured]).holds and measured.agree_pgd < 1e-10
    stats = {1: [_multitask(1, ["both"], 1.7)], 3: [_multitask(3, ["both", "task 2", "task 1"], 0.97)],
             6: [_multitask(6, ["task 2"] + ["task 1"] * 5, 0.96)]}
    assert all(c.holds for c in [*multi.regime_claims(stats), multi.loss_claim(stats)])
