"""A reproduction's report in Markdown: the claims table, each section with its figures, and the
references written out.

Values go through ``report.format.format_value``, as in the HTML index page.
"""

from __future__ import annotations

from typing import Any

from .format import format_value
from .references import markdown_references


def _cell(value: Any) -> str:
    return format_value(value).replace("|", "\\|").replace("\n", " ")


def claims_table(claims: list[Any]) -> list[str]:
    """Markdown rows: claim, statement (its negative control below it), published, ours, tolerance,
    holds (a miss with its reason)."""
    lines = ["| claim | statement | published | ours | tolerance | holds |", "|---|---|---|---|---|---|"]
    for c in claims:
        mark = "yes" if c.holds else f"**no**: {_cell(c.reason)}"
        control = f"<br>_control: {_cell(getattr(c, 'control', '') or 'none listed')}_"
        lines.append(f"| {c.id} | {_cell(c.statement)}{control} | {_cell(c.published)} | "
                     f"{_cell(c.measured)} | {_cell(c.tolerance)} | {mark} |")
    return lines


def reproduction_report(result: Any) -> str:
    """The report of a ``Reproduction``: title, summary line, claims table, sections, references."""
    claims = result.claims
    held = sum(c.holds for c in claims)
    lines = [f"# {result.title}", "",
             f"Mode: **{result.mode}** ({result.seconds:.0f} s). "
             + (f"{held} of {len(claims)} claims hold. " if claims else "")
             + "Every measured number is computed by this run.", ""]
    if claims:
        lines += [*claims_table(claims), ""]
    for section in result.sections:
        lines += [f"## {section.title}", ""]
        if section.text:
            lines += [*section.text, ""]
        for name in section.figures:
            lines += [f"![{name.rsplit('.', 1)[0]}]({name})", ""]
    references = getattr(result, "references", ())
    if references:
        lines += ["## References", "", *markdown_references(references), ""]
    return "\n".join(lines).rstrip("\n") + "\n"
