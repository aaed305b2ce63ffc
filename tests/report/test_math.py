"""report.math: $...$ in report text as MathML (no library, no network), code spans left alone."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from iclreg.report.html import render_inline, render_markdown
from iclreg.report.math import split_math, tex_to_mathml


def _tags(mathml: str) -> list[str]:
    return [e.tag for e in ET.fromstring(mathml).iter()]  # well-formed XML, or this raises


def test_scripts_fractions_roots_and_greek():
    m = tex_to_mathml(r"\omega_h = \mathrm{diag}(K^\top Q) / \sqrt{d+1}")
    assert "<msub><mi>ω</mi><mi>h</mi></msub>" in m
    assert "<msup><mi>K</mi><mo>⊤</mo></msup>" in m
    assert "<mi mathvariant='normal'>diag</mi>" in m
    assert "<msqrt><mrow><mi>d</mi><mo>+</mo><mn>1</mn></mrow></msqrt>" in m
    assert "<annotation encoding='application/x-tex'>" in m  # the source kept
    tags = _tags(tex_to_mathml(r"\frac{1}{2} x_i^2 \hat{w} \sqrt[3]{n} \mathbb{E}[y] \le \sigma^{-2}"))
    assert {"mfrac", "msubsup", "mover", "mroot", "msup"} <= set(tags)


def test_unknown_commands_are_shown_and_markup_escaped():
    m = tex_to_mathml(r"\foo < b & c")
    assert "foo" in m and "&lt;" in m and "&amp;" in m
    _tags(m)


def test_split_math_skips_code_money_and_spaces():
    text, spans = split_math("`$x$` costs $5 and $6, $ a $ is not math, $x_1$ is")
    assert text == "`$x$` costs $5 and $6, $ a $ is not math, ICLREGMATH0X is" and len(spans) == 1


def test_markdown_renders_math_without_emphasis():
    out = render_markdown(["the head $a_1 b_1$ and *emphasis*, | not a table"])
    assert "<math>" in out and "<em>emphasis</em>" in out and "<em>1 b</em>" not in out
    assert "<msub><mi>a</mi><mn>1</mn></msub>" in out
    assert "<math>" in render_inline("score $\\omega_h$ of `kernel:omega=[0.1]`")
