"""Every claim carries its negative control: ``Experiment.controls`` fills it in (``NO_CONTROL``
where none is listed), claims.json holds it and both reports show it below the statement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iclreg.experiments import REPRODUCTIONS
from iclreg.experiments.base import NO_CONTROL, Reproduction, Section, with_control
from iclreg.experiments.claims import Claim
from iclreg.report.html import reproduction_page
from iclreg.report.markdown import reproduction_report

DEMO = Path(__file__).parents[2] / "docs" / "demo"


def _result() -> Reproduction:
    claims = [Claim.within("a", "first", 1.0, 1.0), Claim.within("b", "second <b>", 2.0, 1.0)]
    controls = {"a": "shuffled labels & <tags>"}
    section = Section("s", ["text"], [with_control(c, controls) for c in claims])
    return Reproduction("p", "P", "quick", [section])


def test_with_control_fills_in_the_listed_control_or_the_marker():
    a, b = _result().claims
    assert (a.control, b.control) == ("shuffled labels & <tags>", NO_CONTROL)
    assert with_control(Claim.within("a", "x", 1.0, 1.0), {}).control == NO_CONTROL
    kept = Claim("a", "x", 1, 1, control="set by the builder")
    assert with_control(kept, {"a": "other"}).control == "set by the builder"
    assert a.to_json()["control"] == "shuffled labels & <tags>"


def test_both_reports_show_each_control_below_the_statement():
    result = _result()
    md = reproduction_report(result)
    assert "| a | first<br>_control: shuffled labels & <tags>_ |" in md
    assert f"second <b><br>_control: {NO_CONTROL}_ |" in md
    page = reproduction_page(result, "p")
    assert "<div class='control'>control: shuffled labels &amp; &lt;tags&gt;</div>" in page
    assert f"<div class='control'>control: {NO_CONTROL}</div>" in page


@pytest.mark.parametrize("paper", REPRODUCTIONS.names())
def test_every_claim_of_the_committed_demo_has_a_control(paper):
    """Each claim id a reproduction's quick report holds has a one-phrase control."""
    controls = REPRODUCTIONS.get(paper).controls
    path = DEMO / paper / "claims.json"
    if not path.exists():
        pytest.skip(f"no committed demo report for {paper}")
    ids = {c["id"] for c in json.loads(path.read_text())["claims"]}
    assert ids <= set(controls), f"{paper}: no control for {sorted(ids - set(controls))}"
    assert all(phrase and len(phrase) <= 90 for phrase in controls.values())
