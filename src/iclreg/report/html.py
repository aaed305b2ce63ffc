"""Self-contained HTML reports: one page per reproduction (``report.html``) and the demo's index.

Everything ``report.md`` holds is on the page: the summary, the claims table with the reason for
each miss beside its red "no" and each claim's negative control below its statement, every
section's text (Markdown rendered to HTML, tables included, by markdown-it-py with raw HTML
disabled, so nothing a text holds can inject markup; ``$...$`` math as MathML, ``report.math``),
every figure as a relative ``<img>`` (or, with ``embed``, a data URI: one file to mail), and the
references written out. The index holds every reproduction's full content under a table of
contents. The CSS is embedded and nothing is loaded from elsewhere; figures keep their natural
size and tables their columns' widths, each scrolling sideways in its own box on a narrow screen,
so the page itself never overflows horizontally (tests/report/test_html_browser.py checks this
in a headless browser at 390 and 1200 px). Values go through ``report.format.format_value``, as
in the Markdown report.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .format import format_value
from .html_style import CSS
from .math import restore_math, split_math
from .references import Reference, table_rows

_CLAIM_COLUMNS = ("claim", "statement", "published", "ours", "tolerance", "holds")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    return _esc(format_value(value))


def slug(text: str) -> str:
    """An HTML id made of ``text``'s letters and digits (lower case, dashes between)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render_markdown(lines: Sequence[str]) -> str:
    """HTML of Markdown ``lines`` (CommonMark with tables, as GitHub shows report.md); raw HTML in
    the text is escaped, and each table sits in a box that scrolls sideways when too wide."""
    text, spans = split_math("\n".join(lines))
    out = restore_math(_markdown().render(text), spans)
    return out.replace("<table>", "<div class='wide'><table>").replace("</table>", "</table></div>")


def render_inline(text: str) -> str:
    """HTML of one line of Markdown (a claim's statement), its ``$...$`` math as MathML."""
    text, spans = split_math(text)
    return restore_math(_markdown().renderInline(text), spans)


def png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) in pixels of the PNG at ``path``; None when it is missing or not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


_MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def data_uri(path: Path) -> str:
    """The file at ``path`` as a ``data:`` URI (base64), for a page that holds its own images."""
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


class _Page:
    """The parts of one reproduction's content, with ids prefixed by ``key`` (unique on the index)
    and figure paths by ``prefix`` (``""`` on the reproduction's own page, ``name/`` on the index)."""

    def __init__(self, result: Any, key: str, prefix: str, root: Path | None, level: int,
                 embed: bool = False) -> None:
        self.result, self.key, self.prefix, self.root, self.level = result, slug(key), prefix, root, level
        self.embed = embed
        self.toc: list[tuple[str, str]] = []  # (id, title) of each part

    def heading(self, title: str, anchor: str, level: int | None = None) -> str:
        self.toc.append((anchor, title))
        h = level or self.level + 1
        return f"<h{h} id='{anchor}'>{_esc(title)}</h{h}>"

    def figure_id(self, name: str) -> str:
        return f"{self.key}-fig-{slug(name)}"

    def summary(self, links: Sequence[tuple[str, str]]) -> str:
        r, claims = self.result, self.result.claims
        held = sum(c.holds for c in claims)
        text = f"Mode: <b>{_esc(r.mode)}</b> ({r.seconds:.0f} s). "
        if claims:
            cls = "yes" if held == len(claims) else "no"
            text += f"<span class='{cls}'>{held} of {len(claims)} claims hold</span>. "
        text += "Every measured number is computed by this run."
        files = " · ".join(f"<a href='{_esc(href)}'>{_esc(label)}</a>" for label, href in links)
        return f"<p class='summary'>{text}</p>" + (f"<p class='files'>Files: {files}</p>" if files else "")

    def claims(self) -> str:
        claims = self.result.claims
        if not claims:
            return ""
        rows = ["<div class='wide'><table class='claims'><colgroup>"
                + "".join(f"<col class='c-{c}'>" for c in _CLAIM_COLUMNS) + "</colgroup><thead><tr>"
                + "".join(f"<th>{c}</th>" for c in _CLAIM_COLUMNS) + "</tr></thead><tbody>"]
        for c in claims:
            ident = _cell(c.id)
            if c.figure and c.figure in self.result.figures:
                ident += f"<br><a class='fig' href='#{self.figure_id(c.figure)}'>figure</a>"
            if c.holds:
                mark, cls = "<span class='yes'>yes</span>", "hold"
            else:
                mark, cls = f"<span class='no'>no</span><div class='reason'>{_cell(c.reason)}</div>", "miss"
            control = _cell(getattr(c, "control", "") or "none listed")
            rows.append(f"<tr class='{cls}' id='{self.key}-claim-{slug(c.id)}'><td>{ident}</td>"
                        f"<td>{render_inline(str(c.statement))}"
                        f"<div class='control'>control: {control}</div></td><td>{_cell(c.published)}</td>"
                        f"<td>{_cell(c.measured)}</td><td>{_cell(c.tolerance)}</td><td>{mark}</td></tr>")
        rows.append("</tbody></table></div>")
        return self.heading("Claims", f"{self.key}-claims") + "\n".join(rows)

    def figure(self, name: str) -> str:
        """A figure at its natural size in a box that scrolls sideways on a narrow screen (never
        shrunk until its text cannot be read); tapping it opens the image alone. Embedded
        (``self.embed``): the image is a data URI and the page needs no file beside it."""
        src = self.prefix + name
        path = self.root / name if self.root is not None else None
        size = png_size(path) if path is not None else None
        dims = f" width='{size[0]}' height='{size[1]}'" if size else ""
        if self.embed and path is not None and path.is_file():
            image = f"<img src='{data_uri(path)}' alt='{_esc(name)}'{dims}>"
            return (f"<figure id='{self.figure_id(name)}'><div class='figscroll'>{image}</div>"
                    f"<figcaption>{_esc(name)}</figcaption></figure>")
        links = [f"<a href='{_esc(src)}'>{_esc(name)}</a>"]
        pdf = name.rsplit(".", 1)[0] + ".pdf"
        if self.root is not None and (self.root / pdf).is_file():
            links.append(f"<a href='{_esc(self.prefix + pdf)}'>PDF</a>")
        return (f"<figure id='{self.figure_id(name)}'><div class='figscroll'><a href='{_esc(src)}'>"
                f"<img src='{_esc(src)}' alt='{_esc(name)}'{dims}></a></div>"
                f"<figcaption>{' · '.join(links)}</figcaption></figure>")

    def sections(self) -> str:
        parts = []
        for i, section in enumerate(self.result.sections, 1):
            parts.append(self.heading(section.title, f"{self.key}-s{i}"))
            if section.text:
                parts.append(render_markdown(section.text))
            if section.figures:
                parts.append("<div class='figures'>" + "".join(self.figure(n) for n in section.figures)
                             + "</div>")
        return "\n".join(parts)

    def references(self) -> str:
        refs: Sequence[Reference] = getattr(self.result, "references", ())
        if not refs:
            return ""
        rows = ["<div class='wide'><table class='refs'><thead><tr><th>cited as</th><th>work</th>"
                "<th>year</th><th>link</th></tr></thead><tbody>"]
        for ref, (key, title, authors, when, where) in zip(refs, table_rows(refs), strict=True):
            link = f"<a href='{_esc(ref.link)}'>{_esc(where)}</a>" if ref.link else "-"
            rows.append(f"<tr><td>{_esc(key)}</td><td><i>{_esc(title)}</i><br>{_esc(authors)}</td>"
                        f"<td>{_esc(when)}</td><td>{link}</td></tr>")
        rows.append("</tbody></table></div>")
        return self.heading("References", f"{self.key}-refs") + "\n".join(rows)

    def body(self) -> str:
        """Claims, sections and references (the title and summary are the caller's)."""
        return "\n".join(p for p in (self.claims(), self.sections(), self.references()) if p)


def _files(result: Any, prefix: str) -> list[tuple[str, str]]:
    links = [("report.md", prefix + "report.md"), ("claims.json", prefix + "claims.json")]
    if any(s.data for s in result.sections):
        links.append(("results.json", prefix + "results.json"))
    return links


def _toc(entries: Sequence[tuple[str, str]], cls: str = "toc") -> str:
    items = "".join(f"<li><a href='#{a}'>{_esc(t)}</a></li>" for a, t in entries)
    return f"<nav class='{cls}'><ol>{items}</ol></nav>"


def _document(title: str, body: str) -> str:
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{_esc(title)}</title><style>{CSS}</style></head>\n"
            f"<body id='top'>\n{body}\n</body></html>\n")


def reproduction_page(result: Any, name: str, root: Path | None = None, embed: bool = False) -> str:
    """One reproduction's self-contained page (``report.html`` beside its figures).

    Args:
        result: a ``Reproduction``.
        name: its directory name (the registry name); ids on the page derive from it.
        root: the reproduction's directory, when written: figure sizes are read from its PNGs.
        embed: hold the figures as data URIs (``--self-contained``: one file to mail or attach).
    """
    page = _Page(result, name, "", root, level=1, embed=embed)
    body = page.body()
    parts = [f"<h1>{_esc(result.title)}</h1>", page.summary(_files(result, "")),
             _toc(page.toc), body]
    return _document(result.title, "\n".join(parts))


def index_page(entries: Sequence[tuple[str, Any]], root: Path | None = None,
               title: str = "iclreg quick tour", embed: bool = False) -> str:
    """Every reproduction's full content on one page, under a table of contents.

    Args:
        entries: (directory name, Reproduction) pairs, in the order shown.
        root: the directory holding the reproductions' directories (figure sizes are read there).
        embed: hold the figures as data URIs (one file, no directory beside it).
    """
    held = sum(c.holds for _, r in entries for c in r.claims)
    total = sum(len(r.claims) for _, r in entries)
    toc, blocks = [], []
    for name, result in entries:
        page = _Page(result, name, f"{name}/", root / name if root is not None else None, level=2,
                     embed=embed)
        body = page.body()
        key, claims = page.key, result.claims
        count = f" — {sum(c.holds for c in claims)} of {len(claims)} claims hold" if claims else ""
        toc.append(f"<li><a href='#{key}'>{_esc(result.title)}</a>{_esc(count)} "
                   f"(<a href='{_esc(name)}/report.html'>own page</a>){_toc(page.toc, 'sub')}</li>")
        links = [("own page", f"{name}/report.html"), *_files(result, f"{name}/")]
        blocks.append(f"<section id='{key}'><h2>{_esc(result.title)}</h2>{page.summary(links)}\n{body}\n"
                      "<p class='top'><a href='#top'>↑ contents</a></p></section>")
    head = (f"<h1>{_esc(title)}</h1><p class='summary'>{len(entries)} reproductions; {held} of {total} "
            "claims hold. Each reproduction's claims (with the reason for every miss), sections, figures "
            "and references follow in full below.</p>")
    nav = f"<nav class='toc'><h2>Contents</h2><ol>{''.join(toc)}</ol></nav>"
    return _document(title, "\n".join([head, nav, *blocks]))
