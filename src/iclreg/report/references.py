"""The works a reproduction cites, written out: title, authors, year, venue and arXiv link.

Each experiment lists its sources in ``Experiment.references`` (a tuple of :class:`Reference`);
the Markdown and HTML reports end with that table, so a reader never needs a file of notes to
know where a "published" number comes from. Numbers that come from iclreg's own earlier runs
rather than a paper are cited as :func:`own_measurement`, with a short description of the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """One cited work. ``key`` is how claims and texts name it (``He et al. 2025``)."""

    key: str
    title: str
    authors: str
    year: int | None = None
    venue: str = ""
    arxiv: str | None = None  # the arXiv id, e.g. ``2503.12734``
    url: str | None = None  # where there is no arXiv id (code, a repository)

    @property
    def link(self) -> str | None:
        """The arXiv abstract page, else ``url``."""
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else self.url


def own_measurement(what: str) -> Reference:
    """A value measured by iclreg's own independent code (not published), described by ``what``."""
    return Reference("iclreg's own measurement", what, "iclreg's independent code, not published")


# --- the papers iclreg reproduces and the work they build on ---------------------------------
BOURSIER_BOYER = Reference(
    "Boursier & Boyer 2025", "Softmax as Linear Attention in the Large-Prompt Regime: a Measure-based "
    "Perspective", "Etienne Boursier, Claire Boyer", 2025, arxiv="2512.11784")
CHEN_2025 = Reference(
    "Chen et al. 2025", "Towards Theoretical Understanding of Transformer Test-Time Computing: "
    "Investigation on In-Context Linear Regression", "Xingwu Chen, Miao Lu, Beining Wu, Difan Zou",
    2025, "ICML 2026", "2508.07571")
CHEN_EARLY_CODE = Reference(
    "the authors' early code", "gd_sampling: noisy GD decoding, averaging, best-of-N and majority "
    "vote (Dec 2024 - Jan 2025, before the paper; the direction, not the paper's numbers)",
    "Xingwu Chen et al.", 2025, "code", url="https://github.com/x1ng5/gd_sampling")
FU_2024 = Reference(
    "Fu et al. 2024", "Transformers Learn to Achieve Second-Order Convergence Rates for In-Context "
    "Linear Regression", "Deqing Fu, Tian-Qi Chen, Robin Jia, Vatsal Sharan", 2024, "NeurIPS 2024",
    "2310.17086")
CUI_2024 = Reference(
    "Cui et al. 2024", "Superiority of Multi-Head Attention in In-Context Linear Regression",
    "Yingqian Cui, Jie Ren, Pengfei He, Jiliang Tang, Yue Xing", 2024, "AISTATS 2025", "2401.17426")
HE_2025 = Reference(
    "He et al. 2025", "In-Context Linear Regression Demystified: Training Dynamics and Mechanistic "
    "Interpretability of Multi-Head Softmax Attention", "Jianliang He, Xintian Pan, Siyu Chen, Zhuoran Yang",
    2025, "ICML 2025", "2503.12734")
GARG_2022 = Reference(
    "Garg et al. 2022", "What Can Transformers Learn In-Context? A Case Study of Simple Function Classes",
    "Shivam Garg, Dimitris Tsipras, Percy Liang, Gregory Valiant", 2022, "NeurIPS 2022", "2208.01066")


def table_rows(references: Sequence[Reference]) -> list[tuple[str, str, str, str, str | None]]:
    """(key, title, authors, year and venue, arXiv id or link text) per reference, for both reports."""
    rows = []
    for r in references:
        parts = [r.venue] if r.year and str(r.year) in r.venue else [str(p) for p in (r.year, r.venue) if p]
        when = ", ".join(parts)
        where = f"arXiv {r.arxiv}" if r.arxiv else (r.url or "")
        rows.append((r.key, r.title, r.authors, when or "-", where or None))
    return rows


def markdown_references(references: Sequence[Reference]) -> list[str]:
    """A Markdown table of ``references`` (key, work, year, link)."""
    lines = ["| cited as | work | year | link |", "|---|---|---|---|"]
    for r, (key, title, authors, when, where) in zip(references, table_rows(references), strict=True):
        link = f"[{where}]({r.link})" if r.link else "-"
        cell = f"{title} ({authors})".replace("|", "\\|")
        lines.append(f"| {key} | {cell} | {when} | {link} |")
    return lines
