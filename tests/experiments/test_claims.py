"""Claims: ``holds`` and the stated tolerance come from one object, and agree.

The agreement test reads each tolerance text back with an independent parser (regular
expressions over the words the report shows) and decides the claim again from the text
alone, on synthetic values on both sides of every boundary.
"""

from __future__ import annotations

import math
import re

import pytest

from iclreg.experiments.claims import (
    AtLeast,
    AtMost,
    Between,
    Check,
    Claim,
    Falls,
    Interval,
    Near,
    Rises,
    leaves,
    paired,
    versus_theory,
)
from iclreg.report.format import format_value

NUMBER = r"(-?[0-9.]+(?:e[-+]?[0-9]+)?)"


def decide_from_text(text: str, values: list[float]) -> bool:
    """An independent reading of one check's tolerance text."""
    text = re.sub(r"^(paired|vs theory): ", "", text)
    if m := re.fullmatch(rf"at most {NUMBER} \+ .*\(= {NUMBER}\)", text):
        return all(v <= float(m[1]) + float(m[2]) * (1 + 1e-3) for v in values)
    if m := re.fullmatch(rf"at least {NUMBER} - .*\(= {NUMBER}\)", text):
        return all(v >= float(m[1]) - float(m[2]) * (1 + 1e-3) for v in values)
    if m := re.fullmatch(rf"above {NUMBER} \+ .*\(= {NUMBER}\)", text):
        return all(v > float(m[1]) + float(m[2]) * (1 - 1e-3) for v in values)
    if m := re.fullmatch(rf"below {NUMBER} - .*\(= {NUMBER}\)", text):
        return all(v < float(m[1]) - float(m[2]) * (1 - 1e-3) for v in values)
    if m := re.fullmatch(rf"at most {NUMBER}", text):
        return all(v <= float(m[1]) for v in values)
    if m := re.fullmatch(rf"below {NUMBER}", text):
        return all(v < float(m[1]) for v in values)
    if m := re.fullmatch(rf"at least {NUMBER}", text):
        return all(v >= float(m[1]) for v in values)
    if m := re.fullmatch(rf"above {NUMBER}", text):
        return all(v > float(m[1]) for v in values)
    if m := re.fullmatch(rf"in \[{NUMBER}, {NUMBER}\]", text):
        return all(float(m[1]) <= v <= float(m[2]) for v in values)
    if m := re.fullmatch(rf"within .*?(?:\(= {NUMBER}\)|{NUMBER}) of {NUMBER}", text):
        allowance = float(m[1] or m[2])
        return all(abs(v - float(m[3])) <= allowance * (1 + 1e-3) for v in values)  # 4 digits shown
    if text == "falls strictly":
        return all(b < a for a, b in zip(values, values[1:], strict=False))
    if m := re.fullmatch(r"falls \(([0-9.]+)% slack\)", text):
        return all(b <= a * (1 + float(m[1]) / 100) for a, b in zip(values, values[1:], strict=False))
    if text == "non-decreasing":
        return all(b >= a for a, b in zip(values, values[1:], strict=False))
    raise AssertionError(f"unparsed tolerance text: {text!r}")


BOUNDS = [AtMost(0.2), AtMost(0.01, strict=True), AtLeast(2.0), AtLeast(0.3, strict=True),
          Between(-1.2, -0.75), Near(0.243, abs=0.02), Near(0.1145, se=0.0011, k=3), Near(1.0, rel=0.15),
          Near(0.604, abs=0.02, se=0.008, k=5.88), Falls(), Falls(slack=0.05), Rises(),
          Interval("paired", 0.0, 0.004), Interval("paired", 0.0, 0.004, side="at_most"),
          Interval("paired", 0.1, 0.004, z=2, side="at_least"),
          Interval("vs theory", 0.31, 0.01, theory_se=0.003, grid=0.002),
          Interval("paired", 0.0, 0.01, side="above"), Interval("paired", 0.2, 0.01, side="below")]


def synthetic(bound) -> list[list[float]]:
    """Values just inside and just outside the bound, and far on both sides."""
    if isinstance(bound, (Falls, Rises)):
        return [[3, 2, 1], [1, 2, 3], [1, 1.04, 0.5], [1, 1.06, 0.5], [1, 1], [2, 1, 1.5]]
    edges = {AtMost: lambda b: [b.limit], AtLeast: lambda b: [b.limit], Between: lambda b: [b.low, b.high],
             Near: lambda b: [b.target - b.allowance, b.target + b.allowance],
             Interval: lambda b: [b.target - b.allowance, b.target + b.allowance]}[type(bound)](bound)
    if isinstance(bound, Interval) and bound.side in ("above", "below"):
        edges = [bound.target + (1 if bound.side == "above" else -1) * bound.allowance]
    out = [] if isinstance(bound, (Near, Interval)) else [[e] for e in edges]  # on the edge: strict or not
    for e in edges:
        step = 1e-3 * max(abs(e), 1e-3)
        out += [[e - step], [e + step], [e - 100 * step], [e + 100 * step]]
    return out


@pytest.mark.parametrize("bound", BOUNDS, ids=lambda b: type(b).__name__)
def test_holds_agrees_with_the_stated_tolerance(bound):
    for values in synthetic(bound):
        value = values if bound.sequence else values[0]
        claim = Claim.of("c", "s", "p", value, Check("", value, bound))
        assert claim.holds == decide_from_text(claim.tolerance, values), (claim.tolerance, values)
        assert (claim.reason is None) == claim.holds


def test_constructors_state_what_they_test():
    c = Claim.within("1", "s", 0.25, 0.243, abs=0.02)
    assert c.holds and c.tolerance == "within 0.02 of 0.243"
    c = Claim.within("1", "s", 0.30, 0.243, abs=0.02)
    assert not c.holds and c.reason == "measured = 0.3, not within 0.02 of 0.243"
    c = Claim.in_range("2", "s", "p", {"a": 0.4, "b": 0.5}, low=0.38, high=0.45)
    assert not c.holds and c.tolerance == "in [0.38, 0.45]" and "0.5" in c.reason and "0.4," not in c.reason
    c = Claim.in_range("2", "s", "p", [0.1, 0.15], high=0.2)
    assert c.holds and c.tolerance == "at most 0.2"
    c = Claim.falls_with("3", "s", "p", {"L = 10": 0.3, "L = 100": 0.1, "L = 1000": 0.2})
    assert not c.holds and c.tolerance == "falls strictly"


def test_a_named_constructor_checks_a_named_value_beside_what_it_shows():
    """``what`` and ``value``: the claim shows ``measured`` but decides on ``value``; it reads,
    holds and misses exactly as the general form with that one check does."""
    shown = {"LSTM": 0.5, "transformer": 0.2}
    named = Claim.in_range("6", "s", "p", shown, low=2, what="LSTM / transformer", value=0.5 / 0.2)
    general = Claim.of("6", "s", "p", shown, Check("LSTM / transformer", 0.5 / 0.2, AtLeast(2)))
    assert named == general and named.holds and named.tolerance == "LSTM / transformer at least 2"
    missed = Claim.in_range("6", "s", "p", shown, low=3, strict=True, what="LSTM / transformer",
                            value=0.5 / 0.2)
    assert not missed.holds and missed.reason == "LSTM / transformer = 2.5, not above 3"
    assert missed.measured == shown  # the table shows the measured numbers, not the ratio
    rises = Claim.rises_with("7", "s", "p", [1, None, 2], grows=True, what="k(l)", value=[1, 2])
    assert rises.holds and rises.tolerance == "k(l) non-decreasing, last above first"
    flat = Claim.rises_with("7", "s", "p", [1, 1], grows=True, what="k(l)")
    assert not flat.holds and flat.reason == "k(l) = 1, 1, not non-decreasing, last above first"


def test_compound_claims_hold_only_when_every_check_does():
    lstm, transformer = 0.5, 0.2
    c = Claim.of("6", "s", "p", {"LSTM": lstm, "transformer": transformer},
                 Check("LSTM / transformer", lstm / transformer, AtLeast(2)),
                 Check("transformer", transformer, AtMost(0.2, strict=True)))
    assert c.tolerance == "LSTM / transformer at least 2; transformer below 0.2"
    assert not c.holds and c.reason == "transformer = 0.2, not below 0.2"


def test_nothing_measured_or_not_finite_is_a_miss():
    assert not Claim.in_range("1", "s", "p", [], high=1.0).holds
    assert not Claim.in_range("1", "s", "p", {"a": math.nan}, high=1.0).holds
    c = Claim.unmeasured("3-patterns", "s", "p", "no H=2 seed left the plateau")
    assert not c.holds and c.reason == "no H=2 seed left the plateau" and c.tolerance == "-"
    assert Claim.of("x", "s", "p", 1.0).holds is False  # a claim with no check decides nothing


def test_leaves_walk_nested_data():
    assert leaves({"a": [1, 2], "b": {"c": 3.5}}) == [1, 2, 3.5]


def test_one_formatter_for_people():
    assert format_value(0.123456) == "0.1235"
    assert format_value(1.234e-7) == "1.234e-07"
    assert format_value(0.0) == "0" and format_value(3) == "3" and format_value(True) == "yes"
    assert format_value({"H=2": 0.2398, "H=4": [0.25, 0.26]}) == "H=2: 0.2398, H=4: (0.25, 0.26)"
    assert format_value([[0.1, 0.2], [0.3]]) == "(0.1, 0.2), (0.3)"
    assert format_value({"kernel": {"1": 0.5}}) == "kernel: (1: 0.5)"
    assert format_value(None) == "-" and format_value("text") == "text"


def test_a_paired_comparison_uses_the_spread_of_the_difference_not_of_the_prompts():
    """Prompt-to-prompt spread (std 1) is shared by a and b and cancels; the difference has std 0.01."""
    import random

    rng = random.Random(0)
    base = [rng.gauss(0.0, 1.0) for _ in range(400)]
    a = [v + 0.05 + rng.gauss(0.0, 0.01) for v in base]
    b = [v + rng.gauss(0.0, 0.01) for v in base]
    check = paired("a - b", a, b)
    assert check.value == pytest.approx(0.05, abs=0.005)
    assert check.bound.se == pytest.approx(0.01 * math.sqrt(2 / 400), rel=0.2)
    assert not check.holds and "paired: within 3 SE" in check.text  # 0.05 is ~70 paired SE from 0
    assert paired("a - b", a, b, target=0.05).holds
    assert paired("a - b", b, a, side="at_most").holds and not paired("a - b", a, b, side="at_most").holds
    # negative control: shuffling the pairing destroys the cancellation and the SE grows ~100-fold
    shuffled = b[:]
    rng.shuffle(shuffled)
    assert paired("a - b", a, shuffled).bound.se > 30 * check.bound.se


def test_a_theory_comparison_states_and_uses_the_theory_error():
    check = versus_theory("rate", 0.50, 0.01, 0.53, theory_se=0.005, grid=0.004)
    assert check.bound.allowance == pytest.approx(3 * math.hypot(0.01, 0.005) + 0.004)
    assert "theory MC SE" in check.text and "theory bound" in check.text and check.holds
    # negative control: the theory shifted by its own tolerance (and a little) no longer agrees
    shifted = 0.53 + check.bound.allowance + 1e-3
    assert not versus_theory("rate", 0.50, 0.01, shifted, theory_se=0.005, grid=0.004).holds
    assert not versus_theory("rate", 0.495, 0.01, 0.53).holds  # without the theory's error: a miss
    with pytest.raises(ValueError):
        paired("x", [1.0], [2.0])


def test_a_fact_reads_as_a_fact_and_misses_when_false():
    from iclreg.experiments.claims import fact

    yes, no = fact("theory: interior minimum", True), fact("theory: interior minimum", False)
    assert yes.holds and yes.text == "theory: interior minimum holds" and yes.reason is None
    assert not no.holds and no.reason == "theory: interior minimum: does not hold"
    assert "at least" not in yes.text
