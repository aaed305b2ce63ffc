"""The negative control of every claim of ``iclreg reproduce multihead``, at toy size: under its
control (``multihead_controls.CONTROLS``) each claim must miss. The claims are built by the
reproduction's own measurement and claim functions from substituted values (no training): excess
risks at the committed quick demo's values (the unperturbed twins, which hold) and their
perturbations."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from iclreg.experiments import multihead as mh
from iclreg.experiments import multihead_claims as mc
from iclreg.experiments import multihead_measure as measure
from iclreg.experiments.claims import Claim
from iclreg.experiments.multihead import QUICK, SCENARIOS, Multihead, run_name
from iclreg.experiments.multihead_controls import CONTROLS

DEMO = Path(__file__).parents[2] / "docs" / "demo" / "multihead" / "claims.json"
C = {1: 20.013, 2: 6.253}  # D x excess of the best kernel predictors at D = 1000 (quick demo)
TRAINED_RATIO = {1: [1.045, 0.970, 0.972, 0.994], 2: [1.030, 1.004, 1.012, 1.033]}  # trained / kernel
SCENARIO_RATIO = {"base": 2.031, "noise0.5": 1.993, "noise1": 1.927, "local": 0.994, "toeplitz": 1.943,
                  "prior": 1.889}  # trained excess single / two heads at D = 40
KERNEL_HEADS = {1: 0.2953, 2: 0.1396, 3: 0.1388}  # best kernel excess at D = 40 by H
TWO = 0.1413  # trained two-head excess at D = 40
D_RATIO = {mh.D_IN: 2.031, 10: 3.992}  # trained single / two heads by input dimension


def _kernel(rate: float = 1.0, one_for_two: bool = False) -> dict[int, dict[int, float]]:
    """The best kernel excess C_H / D^rate at the family's D (the single head's for both when
    ``one_for_two``)."""
    return {h: {D: C[1 if one_for_two else h] / D**rate * 1000 ** (rate - 1) for D in QUICK.family_lengths}
            for h in (1, 2)}


def _order(**kernel) -> dict[str, Claim]:
    return {c.id: c for c in mc.order_claims(_kernel(**kernel), QUICK)}


def _trained(one_for_two: bool = False) -> Claim:
    kernel = _kernel()
    trained = {h: {D: kernel[1 if one_for_two else h][D] * r
                    for D, r in zip(QUICK.lengths, TRAINED_RATIO[h], strict=True)} for h in (1, 2)}
    return mc.trained_claim(trained, kernel)


def _excess(ratio: dict[str, float], dims: dict[int, float], tied: bool = False) -> dict[str, float]:
    """Run prefix -> trained excess at the scenario D (``tied``: two heads at one head's)."""
    D, table = QUICK.scenario_D, {}
    for key, r in ratio.items():
        table[run_name(key, mh.D_IN, D, 1)] = r * TWO
        table[run_name(key, mh.D_IN, D, 2)] = r * TWO if tied else TWO
    for d, r in dims.items():
        table[run_name("base", d, D, 1)] = r * TWO
        table[run_name("base", d, D, 2)] = r * TWO if tied else TWO
    table[run_name("base", mh.D_IN, D, 4)] = TWO
    return table


def _measured(excess: dict[str, float], kernel: dict[int, float] = KERNEL_HEADS) -> dict[str, Claim]:
    """Sections 2 and 3's claims with ``excess`` for the trained runs and ``kernel`` for the family."""
    D = QUICK.scenario_D

    def of(prefix: str, task: object) -> float:  # a trained run's excess: the substituted value
        return excess[prefix]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure, "best_heads", lambda task, omegas, heads, *a, **k: {
            h: {"excess": kernel[h], "omega": 0.1} for h in heads})
        built = [*mc.scenario_claims(measure.scenarios(of, QUICK, "cpu"), D),
                 mc.heads_claim(*measure.heads(of, QUICK, "cpu"), D),
                 mc.dimension_claim(*measure.dimension(of, QUICK), D)]
    return {c.id: c for c in built}


def _base_for_local() -> dict[str, float]:
    return {**SCENARIO_RATIO, "local": SCENARIO_RATIO["base"]}


CASES = {
    "1-order": lambda: _order(rate=0.5)["1-order"],
    "1-constant": lambda: _order(one_for_two=True)["1-constant"],
    "1-derivation": lambda: mc.order_claims(
        {h: {D: mh.constants()["approximate"][1] / D for D in QUICK.family_lengths} for h in (1, 2)},
        QUICK)[2],
    "1-trained": lambda: _trained(one_for_two=True),
    "2-scenarios": lambda: _measured(_excess(SCENARIO_RATIO, D_RATIO, tied=True))["2-scenarios"],
    "2-local": lambda: _measured(_excess(_base_for_local(), D_RATIO))["2-local"],
    "3-heads": lambda: _measured(_excess(SCENARIO_RATIO, D_RATIO), {**KERNEL_HEADS, 2: KERNEL_HEADS[1]})[
        "3-heads"],
    "3-dimension": lambda: _measured(_excess(SCENARIO_RATIO, D_RATIO, tied=True))["3-dimension"],
}
DEFECTS: dict[str, str] = {}  # claims that hold under their control: none (each was made one that misses)


@pytest.mark.parametrize("cid", [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=DEFECTS[c]))
                                 if c in DEFECTS else c for c in sorted(CASES)])
def test_every_claim_misses_under_its_negative_control(cid):
    claim = CASES[cid]()
    assert claim.id == cid
    assert not claim.holds, f"{cid} holds under its control ({CONTROLS[cid]}): {claim.measured}"


def test_the_unperturbed_twins_hold():
    claims = {**_order(), "1-trained": _trained(), **_measured(_excess(SCENARIO_RATIO, D_RATIO))}
    assert set(claims) == set(CONTROLS)
    # the demo's local scenario is a tie (0.994; our theory: 1.00), so "superior in every scenario"
    # misses there; with local's advantage restored it holds
    assert {c.id for c in claims.values() if not c.holds} == {"2-scenarios"}, {
        c.id: c.reason for c in claims.values() if not c.holds}
    assert _measured(_excess({**SCENARIO_RATIO, "local": 1.2}, D_RATIO))["2-scenarios"].holds
    assert math.isclose(claims["1-order"].measured["two heads"], -1.0)


def test_every_claim_has_a_control_and_a_case():
    assert set(CASES) == set(CONTROLS) and Multihead.controls is CONTROLS
    assert {s.key for s in SCENARIOS} == set(SCENARIO_RATIO)
    if DEMO.exists():
        assert {c["id"] for c in json.loads(DEMO.read_text())["claims"]} <= set(CONTROLS)
