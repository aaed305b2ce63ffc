"""The demo's index page: every reproduction's claims and figures on one HTML page.

Values go through ``report.format.format_value``, as in the Markdown reports.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .format import format_value


def _cell(value: Any) -> str:
    return html.escape(format_value(value))


def index_page(entries: Sequence[tuple[str, Any]]) -> str:
    """HTML linking each entry's report.md, with its claims table and figures inline.

    Args:
        entries: (directory name, Reproduction) pairs.
    """
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>iclreg demo</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
             "padding:3px 6px}.no{color:#b00;font-weight:bold}img{max-width:520px;margin:4px}"
             "</style></head><body><h1>iclreg quick tour</h1>"]
    for name, result in entries:
        claims = result.claims
        held = sum(c.holds for c in claims)
        parts.append(f"<h2>{html.escape(result.title)}</h2>")
        parts.append(f"<p><a href='{name}/report.md'>{name}/report.md</a> &mdash; "
                     f"{result.mode} mode, {result.seconds:.0f} s")
        if claims:
            parts.append(f"; {held} of {len(claims)} claims hold")
        parts.append("</p>")
        if claims:
            parts.append("<table><tr><th>claim</th><th>statement</th><th>published</th>"
                         "<th>ours</th><th>tolerance</th><th>holds</th></tr>")
            for c in claims:
                mark = "yes" if c.holds else f"<span class='no'>no</span>: {_cell(c.reason)}"
                parts.append(f"<tr><td>{_cell(c.id)}</td><td>{_cell(c.statement)}</td>"
                             f"<td>{_cell(c.published)}</td><td>{_cell(c.measured)}</td>"
                             f"<td>{_cell(c.tolerance)}</td><td>{mark}</td></tr>")
            parts.append("</table>")
        parts.append("<div>" + "".join(f"<img src='{name}/{html.escape(f)}'>" for f in result.figures)
                     + "</div>")
    parts.append("</body></html>")
    return "\n".join(parts)
