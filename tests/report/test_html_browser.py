"""report.html in a real headless browser at a phone's width (390 px) and a laptop's (1200 px):
the page never overflows sideways (wide tables and figures scroll in their own boxes), the claims
table keeps readable columns, figures keep their natural size, math is MathML, and a
``--self-contained`` page shows its figures with no file beside it.

Skipped, with the reason, where no Chromium is installed; nothing is installed by the test.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import pytest
from matplotlib.figure import Figure

from iclreg.experiments.base import Reproduction, Section
from iclreg.experiments.claims import Claim
from iclreg.report.html import png_size, reproduction_page

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless browser: neither chromium nor "
                                "chromium-browser is on PATH (apt-get install chromium to run this test)")

CHECK = """<script>window.addEventListener('load', () => {
  const box = e => e.getBoundingClientRect();
  const claims = document.querySelector('table.claims');
  const wide = claims.closest('.wide');
  const out = {
    viewport: window.innerWidth, page: document.documentElement.scrollWidth,
    table: box(claims).width, tableBox: wide.clientWidth, tableScroll: wide.scrollWidth,
    headers: [...claims.querySelectorAll('th')].map(th => box(th).width),
    images: [...document.images].map(i => [box(i).width, i.naturalWidth, i.complete && i.naturalWidth > 0]),
    math: document.getElementsByTagName('math').length,
    mathHeights: [...document.getElementsByTagName('math')].map(m => box(m).height),
  };
  parent.postMessage(JSON.stringify(out), '*');
});</script>"""
# Chromium's windows are at least 500 px wide: the page is shown in a frame of the width tested,
# and reports its layout to the frame's holder, which writes it into the DOM that --dump-dom prints
FRAME = """<!doctype html><html><body style='margin:0'><script>
window.addEventListener('message', e => {{
  const pre = document.createElement('pre'); pre.id = 'iclreg-check';
  pre.textContent = e.data; document.body.appendChild(pre); }});
</script><iframe src='{src}' style='width:{width}px;height:2000px;border:0;display:block'></iframe>
</body></html>"""

SPEC = "gaussian:d=20,n=41,noise_std=0.5,w_std=0.35"


def _result(root) -> Reproduction:
    """A page like the demo's: a claims table with long SPECs, a 912 px figure, math in the text."""
    fig = Figure(figsize=(6.08, 3.6), dpi=150)  # 912 px wide, as the reports' single figures
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(root / "curve.png")
    claims = [Claim.within(f"c-{i}", f"error of `{SPEC}` at $k = d$ with $\\omega_h$ and "
                           "$K^\\top Q / \\sqrt{d+1}$", measured=0.11748, published=0.115, abs=0.02,
                           figure="curve.png") for i in range(3)]
    text = ["The score is $\\omega_h = \\mathrm{diag}(K^\\top Q) / \\sqrt{d+1}$, and $\\sigma^2 = 0.1$.",
            "", "| spec | error |", "|---|---:|", f"| `{SPEC}` | 0.25 |", "",
            # an inline formula wider than a phone (test-time's): it scrolls, the page does not
            r"Then $\mathbb{E}\lVert \hat w - w^*\rVert^2 = \lVert e \rVert^2 + \mathrm{tr}\,\Sigma"
            r" - (e_N\text{-skew term})\,\mathrm{Cov}(E, S) / \mathrm{sd}(S) + \sigma^2 d / (n - d - 1)$."]
    return Reproduction("toy", "Toy", "quick", [Section("Curves", text, claims, {"curve.png": fig})],
                        ["curve.png"], 3.2)


def _framed(page, width: int, check: bool = False):
    """A page holding ``page`` in a frame ``width`` px wide (with the layout check inside)."""
    if check:
        page = page.with_name(f"check-{page.name}")  # the page itself and the check script
        page.write_text(page.with_name("report.html").read_text().replace("</body>", CHECK + "</body>"))
    frame = page.with_name(f"frame-{width}-{page.name}")
    frame.write_text(FRAME.format(src=page.name, width=width))
    return frame


def _chromium(*args: str, profile) -> str:
    cmd = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout


def _layout(page, width: int, profile) -> dict:
    dom = _chromium("--window-size=1300,2000", "--virtual-time-budget=10000", "--dump-dom",
                    _framed(page, width, check=True).as_uri(), profile=profile)
    found = re.search(r"<pre id=\"iclreg-check\">(.*?)</pre>", dom)
    assert found, f"the check script did not run at {width} px"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.parametrize("embed", [False, True], ids=["files", "self-contained"])
@pytest.mark.parametrize("width", [390, 1200])
def test_report_page_layout_in_chromium(tmp_path, width, embed):
    result = _result(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(reproduction_page(result, "toy", root=tmp_path, embed=embed))
    if embed:  # the page alone, far from its figure
        (tmp_path / "alone").mkdir()
        page = page.rename(tmp_path / "alone" / "report.html")
    check = _layout(page, width, tmp_path / "profile")
    assert check["viewport"] == width
    assert check["page"] <= width, f"the page overflows sideways at {width} px: {check}"
    # the claims table keeps its columns (the header words apart, a SPEC not one letter a line)
    assert check["table"] >= 740 and min(check["headers"]) >= 70, check
    if width == 390:  # and scrolls inside its own box
        assert check["tableScroll"] > check["tableBox"] and check["tableBox"] <= width
    # every figure loads, at its natural size (912 px), scrolling in its box on the phone
    assert check["images"] and all(ok and shown == natural == 912 for shown, natural, ok in check["images"])
    assert check["math"] >= 7 and min(check["mathHeights"]) > 5, check


@pytest.mark.parametrize("width", [390, 1200])
def test_screenshot_shows_the_page(tmp_path, width):
    result = _result(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(reproduction_page(result, "toy", root=tmp_path))
    shot = tmp_path / f"shot-{width}.png"
    _chromium(f"--window-size={max(width, 500)},2000", f"--screenshot={shot}",
              _framed(page, width).as_uri(), profile=tmp_path / "profile")
    assert png_size(shot) == (max(width, 500), 2000) and shot.stat().st_size > 10_000
