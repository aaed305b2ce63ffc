"""Math as math in the reports of ``demystified`` and ``test-time`` (issue #28): the prose of every
section (Notes included) writes its formulas as ``$...$`` TeX that ``report.math`` renders
without falling back on an unknown command, and no ASCII math ("sqrt(", "omega_h", "sigma^2",
"E||w||^2") is left outside the ``$...$`` spans and code spans; the claims' statements render too.
Each reproduction runs once at toy size (its report is written as a user gets it)."""

from __future__ import annotations

import html
import re

import pytest

from iclreg.report.math import split_math, tex_to_mathml

ASCII_MATH = re.compile(r"sqrt\(|(?<!\\)\b(omega|mu|sum|Sigma)_|(?<!\\)\b(sigma|Sigma|tau)\^|\^T\b|\|\||"
                        r"\blambda =|\bE\|")
CODE = re.compile(r"(`+).*?\1")
COMMAND = re.compile(r"\\([A-Za-z]+)")
ANNOTATION = re.compile(r"<annotation encoding='application/x-tex'>(.*?)</annotation>", re.S)


def _unknown_commands(spans: list[str]) -> set[str]:
    """The TeX commands of rendered spans that ``report.math`` shows by name (its fallback)."""
    unknown = set()
    for span in spans:
        tex = html.unescape(ANNOTATION.search(span).group(1))
        for name in COMMAND.findall(tex):
            if f"<mi mathvariant='normal'>{name}</mi>" in tex_to_mathml(f"\\{name}{{x}}"):
                unknown.add(name)
    return unknown


def _outside_math(text: str) -> str:
    """``text`` without its math spans and code spans."""
    plain, _ = split_math(text)
    return CODE.sub("", plain)


def test_the_checks_see_ascii_math_and_unknown_commands():
    assert ASCII_MATH.search("omega_h = diag(K^T Q) / sqrt(d+1)") and ASCII_MATH.search("E||w_T - w*||^2")
    assert ASCII_MATH.search("ridge-GD (lambda = sigma^2)") and ASCII_MATH.search("Sigma^-1")
    assert not ASCII_MATH.search(_outside_math(r"$\omega_h$ and $\sigma^2$, `kernel:omega=[0.1]`"))
    _, spans = split_math(r"$\lvert x \rvert$ and $\lVert w \rVert$")
    assert _unknown_commands(spans) == {"lvert", "rvert"}


@pytest.fixture(params=["demystified", "test-time"])
def toy_report(request, toy_demo):
    demo, results = toy_demo
    return results[request.param], demo / request.param


def test_section_prose_writes_math_as_tex_that_renders(toy_report):
    result, out = toy_report
    for section in result.sections:
        text = "\n".join(section.text)
        plain, spans = split_math(text)
        assert not _unknown_commands(spans), (section.title, _unknown_commands(spans))
        leftover = [line for line in section.text if ASCII_MATH.search(_outside_math(line))]
        assert not leftover, (section.title, leftover)
    statements = [c.statement for c in result.claims]
    assert not _unknown_commands([s for text in statements for s in split_math(text)[1]])
    page = (out / "report.html").read_text()
    assert page.count("<math>") >= 10 and "ICLREGMATH" not in page
    assert "$" in (out / "report.md").read_text()  # GitHub renders the TeX itself
