"""The negative control of every claim of ``iclreg reproduce tour``, at toy size: under its control
(``tour.CONTROLS``) each claim must miss, and the same builders on the unperturbed estimators hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iclreg.analysis import compare
from iclreg.estimators import build as build_estimator
from iclreg.experiments import tour
from iclreg.tasks import build as build_task

DEMO = Path(__file__).parents[2] / "docs" / "demo" / "tour" / "claims.json"
SAMPLES = 512  # tour.Tour.toy


def _curves(task_spec: str, specs: dict[str, str], seed: int) -> dict[str, dict]:
    task = build_task(task_spec)
    est = {label: build_estimator(spec, task=task) for label, spec in specs.items()}
    return compare(task, est, SAMPLES, seed=seed)["results"]


def _bayes(spec: str):
    return tour.bayes_claim(_curves(tour.HE_TASK, {"ridge": spec}, seed=1)["ridge"], tour.exact_bayes_risk())


def _newton(steps_spec: str):
    specs = {spec: steps_spec.format(steps=spec.rsplit("=", 1)[1]) for spec in tour.NEWTON_STEPS}
    curves = _curves(tour.GARG_TASK, {**specs, "zero": "zero"}, seed=2)
    return tour.newton_claim(curves, build_task(tour.GARG_TASK).n - 1)


CASES = {
    "bayes-exact": lambda: _bayes("ridge:lam=5"),  # the posterior mean is ridge with lam = sigma^2 d = 0.5
    "newton-converges": lambda: _newton("gd:steps={steps},lr=0.01"),
}


@pytest.mark.parametrize("cid", sorted(CASES))
def test_every_claim_misses_under_its_negative_control(cid):
    claim = CASES[cid]()
    assert claim.id == cid
    assert not claim.holds, f"{cid} holds under its control ({tour.CONTROLS[cid]}): {claim.measured}"


def test_the_unperturbed_twins_hold():
    assert _bayes("bayes").holds
    assert _newton("newton:steps={steps}").holds


def test_every_claim_has_a_control_and_a_case():
    assert set(CASES) == set(tour.CONTROLS) and tour.Tour.controls is tour.CONTROLS
    if DEMO.exists():
        assert {c["id"] for c in json.loads(DEMO.read_text())["claims"]} <= set(tour.CONTROLS)
