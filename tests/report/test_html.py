"""The HTML reports (report.html per reproduction, the demo's index.html): every section, claim,
miss reason, figure and reference on the page, rendered (no raw Markdown, no Python reprs), values
formatted; and, where Chromium is installed, the pages load every image and fit 1200 px."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from matplotlib.figure import Figure

from iclreg.experiments import REPRODUCTIONS
from iclreg.experiments.base import Reproduction, Section
from iclreg.experiments.claims import Claim
from iclreg.report.format import format_value
from iclreg.report.html import index_page, png_size, reproduction_page, slug
from iclreg.report.markdown import reproduction_report
from iclreg.report.references import HE_2025, own_measurement

PAPERS = REPRODUCTIONS.names()
OWN = own_measurement("a toy run of ours on 2 CPU cores")


def _toy(tmp_path) -> Reproduction:
    """A reproduction with a Markdown table, a list, markup to escape, a figure, a hit and a miss."""
    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "curve.png")
    hit = Claim.within("c-hit", "ridge MSE at `L = 40`", measured=0.11748, published=0.115, abs=0.02,
                       figure="curve.png")
    miss = Claim.in_range("c-miss", "OLS error <b>after</b> k = d", {"H=2": 0.239845678},
                          1.2345678e-07, low=1.0)
    text = ["Intro with <script>alert(1)</script> & an ampersand.", "",
            "| k | ours |", "|---:|---:|", "| 5 | 0.25 |", "", "- first note", "- second note"]
    sections = [Section("1. Estimators", text, [hit], {"curve.png": fig}),
                Section("Notes", ["- only text here"], [miss])]
    return Reproduction("toy", "Toy <reproduction>", "quick", sections, ["curve.png"], 3.2,
                        references=(HE_2025, OWN))


def test_reproduction_page_renders_everything(tmp_path):
    result = _toy(tmp_path)
    page = reproduction_page(result, "toy", root=tmp_path)
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<h1>Toy &lt;reproduction&gt;</h1>" in page
    for i, title in enumerate(["1. Estimators", "Notes"], 1):
        assert f"<h2 id='toy-s{i}'>{title}</h2>" in page and f"href='#toy-s{i}'" in page
    # the section's Markdown: a real table and list; its markup escaped, never executed
    assert "<th style=\"text-align:right\">ours</th>" in page and "<li>first note</li>" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; an ampersand" in page
    assert "<script>" not in page and "<b>after</b>" not in page and "|---" not in page
    # claims: the miss carries its reason, values formatted for people
    assert "<code>L = 40</code>" in page  # the statement's inline Markdown
    assert "<span class='no'>no</span><div class='reason'>measured = 1.235e-07, not at least 1</div>" in page
    assert "H=2: 0.2398" in page and "0.239845678" not in page and "{'" not in page
    assert page.count("<span class='yes'>yes</span>") == 1 and "1 of 2 claims hold" in page
    assert "href='#toy-fig-curve-png'" in page  # the claim links its figure
    # the figure: relative, with its size, fitted by CSS
    assert "<img src='curve.png' alt='curve.png' width='100' height='50'>" in page
    assert png_size(tmp_path / "curve.png") == (100, 50)
    # references written out, with the arXiv link; our own measurement described
    assert "In-Context Linear Regression Demystified" in page and "Jianliang He" in page
    assert "href='https://arxiv.org/abs/2503.12734'>arXiv 2503.12734</a>" in page
    assert "iclreg&#x27;s own measurement" in page and "a toy run of ours" in page
    assert "report.md" in page and "results.json" not in page  # no section holds data


def test_index_page_holds_every_reproduction_in_full(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        result = _toy(tmp_path / name)
    entries = [("a", result), ("b", result)]
    index = index_page(entries, root=tmp_path)
    assert "2 reproductions; 2 of 4 claims hold" in index
    for name in ("a", "b"):
        assert f"<section id='{name}'>" in index and f"href='#{name}'" in index
        assert f"href='{name}/report.html'" in index and f"href='{name}/report.md'" in index
        assert f"<h3 id='{name}-s1'>1. Estimators</h3>" in index and f"href='#{name}-s2'" in index
        assert f"<img src='{name}/curve.png' alt='curve.png' width='100' height='50'>" in index
    assert index.count("<div class='reason'>measured = 1.235e-07, not at least 1</div>") == 2
    assert len(re.findall(r"id='([^']+)'", index)) == len(set(re.findall(r"id='([^']+)'", index)))


def test_markdown_report_writes_the_references_out(tmp_path):
    report = reproduction_report(_toy(tmp_path))
    assert "## References" in report
    assert "[arXiv 2503.12734](https://arxiv.org/abs/2503.12734)" in report
    assert "| iclreg's own measurement | a toy run of ours on 2 CPU cores" in report


# --- the toy demo ---------------------------------------------------------------------------
@pytest.fixture
def demo(toy_demo):
    """Every reproduction at toy size, as ``iclreg demo`` writes it; (out, entries)."""
    return toy_demo


def test_demo_pages_show_every_section_claim_reason_and_reference(demo):
    out, results = demo
    assert [p.name for p in out.parent.iterdir()] == ["demo"]  # no temporary or kept runs beside it
    trained = [p for p in PAPERS if REPRODUCTIONS.get(p)().plan(REPRODUCTIONS.get(p).toy)]
    assert trained and all((out / p / "runs").is_dir() for p in trained)
    index = (out / "index.html").read_text()
    for paper, result in results.items():
        own = (out / paper / "report.html").read_text()
        assert result.references, f"{paper} cites no reference"
        for page in (index, own):
            for section in result.sections:
                assert f">{html.escape(section.title)}</h" in page, (paper, section.title)
            for c in result.claims:
                assert f"id='{slug(paper)}-claim-{slug(c.id)}'" in page and html.escape(c.id) in page
                if not c.holds:
                    assert html.escape(format_value(c.reason)) in page, (paper, c.id)
            for ref in result.references:
                assert html.escape(ref.title) in page
            for name in result.figures:
                assert f"src='{'' if page is own else paper + '/'}{name}'" in page
        for text in (own, (out / paper / "report.md").read_text(), (out / paper / "claims.json").read_text()):
            assert "papers.md" not in text and "{'" not in text
        assert "|---" not in own and "![" not in own
    assert "|---" not in index and "report.md'>report.md</a>" in index
    position = {p: index.index(html.escape(REPRODUCTIONS.get(p).title)) for p in PAPERS}
    assert position["tour"] == min(position.values())  # the demo opens with the estimator tour
    assert set(results) == set(PAPERS) and "{'" not in index


CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = {images: imgs.length, scrollWidth: document.documentElement.scrollWidth,
               broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))};
  const pre = document.createElement('pre'); pre.id = 'iclreg-check';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});</script>"""


def _chromium(page, *args: str, profile) -> str:
    cmd = [shutil.which("chromium"), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--window-size=1200,900", f"--user-data-dir={profile}", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium is not installed")
def test_demo_pages_in_headless_chromium(demo, tmp_path):
    """Every image loads and nothing is wider than a 1200 px window; a screenshot is taken."""
    out, results = demo
    pages = {"index": (out / "index.html", sum(len(r.figures) for r in results.values()))}
    pages |= {p: (out / p / "report.html", len(r.figures)) for p, r in results.items()}
    for key, (page, figures) in pages.items():
        probe = page.with_name(f"check-{page.name}")
        probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
        dom = _chromium(probe, "--virtual-time-budget=20000", "--dump-dom", profile=tmp_path / "profile")
        found = re.search(r"<pre id=\"iclreg-check\">(.*?)</pre>", dom)
        assert found, f"{key}: the check script did not run"
        check = json.loads(html.unescape(found.group(1)))
        assert check["images"] == figures and figures > 0, (key, check)
        assert check["broken"] == [], (key, check["broken"])
        assert check["scrollWidth"] <= 1200, (key, check)
    shot = tmp_path / "index.png"
    _chromium(out / "index.html", f"--screenshot={shot}", profile=tmp_path / "profile")
    assert png_size(shot) == (1200, 900) and shot.stat().st_size > 20_000
