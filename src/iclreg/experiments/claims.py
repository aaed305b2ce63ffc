"""Claims: a paper's statement, the published value, ours, and the check that decides it.

A claim's tolerance is never written apart from its check. Each :class:`Check` tests one
measured quantity against a :class:`Bound`; the bound produces both the decision and the
words in the report's tolerance column, from the same numbers. A claim holds when every
check holds, and a miss carries the reason (which quantity, which value, which bound).

    Claim.within("1-ols", "OLS error at k = 40", measured=0.241, published=0.243, abs=0.02)
    Claim.in_range("2-slope", "log-log slope", "-1", slope, low=-1.2, high=-0.8)
    Claim.falls_with("3-gap", "gap by L", "falls with L", {"L = 10": 0.1, "L = 100": 0.02})
    Claim.of("6-lstm", "LSTM vs transformer", "markedly worse", {"LSTM": a, "transformer": b},
             Check("LSTM / transformer", a / b, AtLeast(2)))
    Claim.of("7-split", "best split", "theory", m, paired("theory's best - best", err_t, err_b,
             side="at_most"), versus_theory("N = 4", mean, se, 0.31, theory_se=0.002))

Two quantities measured on the same prompts are compared by ``paired`` (the interval of the
per-prompt difference), a measurement against theory by ``versus_theory`` (the theory's own
Monte Carlo error and any grid/truncation bound are part of the tolerance, and stated).

Measured values are data (numbers, lists, mappings with string keys); the report formats them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..report.format import format_value


def leaves(value: Any) -> list[float]:
    """The numbers inside ``value`` (a number, or nested lists and mappings of numbers)."""
    if isinstance(value, Mapping):
        return [v for item in value.values() for v in leaves(item)]
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in leaves(item)]
    return [value]


def _num(x: float) -> str:
    return format_value(float(x))


# --- bounds ---------------------------------------------------------------------------------
class Bound:
    """What a measured number (``ok``) or sequence (``ok_sequence``) must satisfy."""

    sequence = False  # True: the bound judges the whole sequence, not each number

    @property
    def text(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def ok(self, x: float) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def ok_sequence(self, xs: list[float]) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class AtMost(Bound):
    limit: float
    strict: bool = False

    @property
    def text(self) -> str:
        return f"{'below' if self.strict else 'at most'} {_num(self.limit)}"

    def ok(self, x: float) -> bool:
        return x < self.limit if self.strict else x <= self.limit


@dataclass(frozen=True)
class AtLeast(Bound):
    limit: float
    strict: bool = False

    @property
    def text(self) -> str:
        return f"{'above' if self.strict else 'at least'} {_num(self.limit)}"

    def ok(self, x: float) -> bool:
        return x > self.limit if self.strict else x >= self.limit


@dataclass(frozen=True)
class IsTrue(Bound):
    """A yes/no fact measured as 1.0 (yes) or 0.0 (no); the check's ``what`` words the fact.
    Build it with :func:`fact`."""

    @property
    def text(self) -> str:
        return "holds"

    def ok(self, x: float) -> bool:
        return x == 1.0


@dataclass(frozen=True)
class Between(Bound):
    low: float
    high: float

    @property
    def text(self) -> str:
        return f"in [{_num(self.low)}, {_num(self.high)}]"

    def ok(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class Near(Bound):
    """|x - target| <= abs + rel |target| + k se: a fixed allowance (the published rounding),
    a relative one, and ``k`` standard errors of our Monte Carlo estimate."""

    target: float
    abs: float = 0.0
    rel: float = 0.0
    se: float = 0.0
    k: float = 3.0

    @property
    def allowance(self) -> float:
        return self.abs + self.rel * abs(self.target) + self.k * self.se

    @property
    def text(self) -> str:
        parts = [_num(self.abs)] if self.abs else []
        if self.rel:
            parts.append(f"{100 * self.rel:g}%")
        if self.se:
            parts.append(f"{self.k:g} SE")
        what = " + ".join(parts) or "0"
        total = f" (= {_num(self.allowance)})" if len(parts) > 1 or self.se or self.rel else ""
        return f"within {what}{total} of {_num(self.target)}"

    def ok(self, x: float) -> bool:
        return abs(x - self.target) <= self.allowance


@dataclass(frozen=True)
class Interval(Bound):
    """A mean difference judged by its own interval: |x - target| (``side`` "both"), x - target
    (``"at_most"``) or target - x (``"at_least"``) at most z sqrt(se^2 + theory_se^2) + grid;
    ``"above"`` / ``"below"``: x beyond the target by more than that (a significant difference).

    ``se`` is the standard error of the measured difference: for a ``paired`` comparison the
    spread over prompts of the per-prompt difference, so what the prompts share cancels;
    ``theory_se`` the Monte Carlo error of a theory value and ``grid`` a deterministic bound on
    its error (a truncation or a finite grid). The text names which were used.
    """

    kind: str  # "paired" or "vs theory": what the report says was compared
    target: float
    se: float
    z: float = 3.0
    side: str = "both"
    theory_se: float = 0.0
    grid: float = 0.0
    grid_what: str = "theory bound"  # what ``grid`` is, in the text (a bound, an approximation)

    def __post_init__(self) -> None:
        if self.side not in ("both", "at_most", "at_least", "above", "below"):
            raise ValueError(f"side must be both, at_most, at_least, above or below, got {self.side!r}")

    @property
    def allowance(self) -> float:
        return self.z * math.hypot(self.se, self.theory_se) + self.grid

    @property
    def text(self) -> str:
        parts = [f"{self.z:g} x sqrt(SE^2 + theory MC SE^2)" if self.theory_se else f"{self.z:g} SE"]
        if self.grid:
            parts.append(f"{self.grid_what} {_num(self.grid)}")
        what = f"{' + '.join(parts)} (= {_num(self.allowance)})"
        if self.side == "both":
            return f"{self.kind}: within {what} of {_num(self.target)}"
        word = {"at_most": "at most", "at_least": "at least", "above": "above", "below": "below"}[self.side]
        sign = "+" if self.side in ("at_most", "above") else "-"
        return f"{self.kind}: {word} {_num(self.target)} {sign} {what}"

    def ok(self, x: float) -> bool:
        if self.side == "above":
            return x - self.target > self.allowance
        if self.side == "below":
            return self.target - x > self.allowance
        if self.side == "at_most":
            return x - self.target <= self.allowance
        if self.side == "at_least":
            return self.target - x <= self.allowance
        return abs(x - self.target) <= self.allowance


@dataclass(frozen=True)
class Falls(Bound):
    """Each value below the one before it; ``slack``: up to that fraction above is allowed."""

    sequence = True
    slack: float = 0.0

    @property
    def text(self) -> str:
        return f"falls ({100 * self.slack:g}% slack)" if self.slack else "falls strictly"

    def ok_sequence(self, xs: list[float]) -> bool:
        if self.slack:
            return all(b <= a * (1 + self.slack) for a, b in zip(xs, xs[1:], strict=False))
        return all(b < a for a, b in zip(xs, xs[1:], strict=False))


@dataclass(frozen=True)
class Rises(Bound):
    """Each value at least the one before it (``strict``: above it), and the last above the
    first when ``grows``."""

    sequence = True
    strict: bool = False
    grows: bool = False

    @property
    def text(self) -> str:
        text = "increasing" if self.strict else "non-decreasing"
        return text + (", last above first" if self.grows else "")

    def ok_sequence(self, xs: list[float]) -> bool:
        pairs = list(zip(xs, xs[1:], strict=False))
        steps = all(b > a for a, b in pairs) if self.strict else all(b >= a for a, b in pairs)
        return steps and (not self.grows or (len(xs) > 1 and xs[-1] > xs[0]))


# --- comparisons on the same prompts, and with theory -------------------------------------
def _mean_se(values: Any) -> tuple[float, float]:
    xs = [float(v) for v in leaves(list(values))]
    if len(xs) < 2:
        raise ValueError("a paired comparison needs at least two prompts")
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var / len(xs))


def paired(what: str, a: Any, b: Any, *, z: float = 3.0, side: str = "both", target: float = 0.0,
           theory_se: float = 0.0, grid: float = 0.0, grid_what: str = "theory bound") -> Check:
    """Two quantities measured on the same prompts (per-prompt sequences ``a``, ``b``; ``b`` may be
    a per-prompt theory value): the mean of a_i - b_i against ``target`` with the interval
    mean +- z SE of the paired difference (``side``: both ways, "at_most" / "at_least" the target,
    or significantly "above" / "below" it). A theory's own error enters as ``theory_se`` (Monte
    Carlo) and ``grid`` (a bound)."""
    diffs = [float(x) - float(y) for x, y in zip(leaves(list(a)), leaves(list(b)), strict=True)]
    mean, se = _mean_se(diffs)
    return Check(what, mean, Interval("paired", target, se, z, side, theory_se, grid, grid_what))


def fact(what: str, value: bool) -> Check:
    """A check of a yes/no fact (``what`` words it: "theory: interior minimum"); its tolerance
    reads "<what> holds", its miss "<what>: does not hold"."""
    return Check(what, float(bool(value)), IsTrue())


def versus_theory(what: str, measured: float, se: float, theory: float, *, theory_se: float = 0.0,
                  grid: float = 0.0, z: float = 3.0) -> Check:
    """A measured mean (standard error ``se``) against a theory value whose own error is stated:
    its Monte Carlo standard error ``theory_se`` and a deterministic bound ``grid`` (a finite grid,
    a truncation). Holds when |measured - theory| <= z sqrt(se^2 + theory_se^2) + grid."""
    return Check(what, measured, Interval("vs theory", theory, se, z, "both", theory_se, grid))


# --- checks and claims ----------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """``value`` (a number, or every number inside it) satisfies ``bound``; nothing measured
    is a miss."""

    what: str
    value: Any
    bound: Bound

    @property
    def numbers(self) -> list[float]:
        return [float(v) for v in leaves(self.value)]

    @property
    def holds(self) -> bool:
        xs = self.numbers
        if not xs or not all(math.isfinite(x) for x in xs):
            return False
        return self.bound.ok_sequence(xs) if self.bound.sequence else all(self.bound.ok(x) for x in xs)

    @property
    def text(self) -> str:
        return f"{self.what} {self.bound.text}" if self.what else self.bound.text

    @property
    def reason(self) -> str | None:
        if self.holds:
            return None
        xs = self.numbers
        if not xs:
            return f"{self.what or 'the value'}: nothing was measured"
        if isinstance(self.bound, IsTrue):
            return f"{self.what}: does not hold"
        shown = [x for x in xs if not math.isfinite(x) or (not self.bound.sequence and not self.bound.ok(x))]
        value = format_value(self.value if self.bound.sequence or len(xs) == 1 else shown)
        return f"{self.what or 'measured'} = {value}, not {self.bound.text}"


@dataclass(frozen=True)
class Claim:
    """One claim of a paper, checked by this run: it holds when every check holds."""

    id: str
    statement: str
    published: Any
    measured: Any
    checks: tuple[Check, ...] = ()
    figure: str | None = None
    missing: str | None = field(default=None)  # why nothing could be measured
    control: str = ""  # the negative control under which the claim must miss (one short phrase)

    @property
    def holds(self) -> bool:
        return self.missing is None and bool(self.checks) and all(c.holds for c in self.checks)

    @property
    def tolerance(self) -> str:
        return "; ".join(c.text for c in self.checks) or "-"

    @property
    def reason(self) -> str | None:
        if self.holds:
            return None
        if self.missing is not None:
            return self.missing
        return "; ".join(c.reason for c in self.checks if not c.holds) or "no check was made"

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def of(cls, id: str, statement: str, published: Any, measured: Any, *checks: Check,
           figure: str | None = None) -> Claim:
        """The general form: any number of checks on named quantities."""
        return cls(id, statement, published, measured, tuple(checks), figure)

    @classmethod
    def within(cls, id: str, statement: str, measured: float, published: float, *, abs: float = 0.0,
               rel: float = 0.0, se: float = 0.0, k: float = 3.0, what: str = "", value: Any = None,
               figure: str | None = None) -> Claim:
        """Ours within ``abs + rel |published| + k se`` of the published number. ``what`` names
        the checked quantity and ``value`` gives it when it is not ``measured`` itself (as in
        every constructor below)."""
        bound = Near(published, abs, rel, se, k)
        return cls._one(id, statement, published, measured, what, value, bound, figure)

    @classmethod
    def in_range(cls, id: str, statement: str, published: Any, measured: Any, *,
                 low: float | None = None, high: float | None = None, strict: bool = False,
                 what: str = "", value: Any = None, figure: str | None = None) -> Claim:
        """Every number of ``measured`` (or ``value``) in [low, high] (an open end: None)."""
        if low is not None and high is not None:
            bound: Bound = Between(low, high)
        elif high is not None:
            bound = AtMost(high, strict)
        elif low is not None:
            bound = AtLeast(low, strict)
        else:
            raise ValueError("in_range needs low or high")
        return cls._one(id, statement, published, measured, what, value, bound, figure)

    @classmethod
    def falls_with(cls, id: str, statement: str, published: Any, measured: Any, *, slack: float = 0.0,
                   what: str = "", value: Any = None, figure: str | None = None) -> Claim:
        """The numbers of ``measured`` (or ``value``), in their order, fall (with ``slack``)."""
        return cls._one(id, statement, published, measured, what, value, Falls(slack), figure)

    @classmethod
    def rises_with(cls, id: str, statement: str, published: Any, measured: Any, *, strict: bool = False,
                   grows: bool = False, what: str = "", value: Any = None,
                   figure: str | None = None) -> Claim:
        """The numbers of ``measured`` (or ``value``), in their order, rise (``strict``: every
        step; ``grows``: the last above the first)."""
        return cls._one(id, statement, published, measured, what, value, Rises(strict, grows), figure)

    @classmethod
    def _one(cls, id: str, statement: str, published: Any, measured: Any, what: str, value: Any,
             bound: Bound, figure: str | None) -> Claim:
        checked = measured if value is None else value
        return cls.of(id, statement, published, measured, Check(what, checked, bound), figure=figure)

    @classmethod
    def unmeasured(cls, id: str, statement: str, published: Any, why: str,
                   figure: str | None = None) -> Claim:
        """A claim this run could not measure: a miss, with the reason."""
        return cls(id, statement, published, None, (), figure, missing=why)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "statement": self.statement, "published": self.published,
                "measured": self.measured, "tolerance": self.tolerance, "holds": self.holds,
                "reason": self.reason, "control": self.control}
