"""Plain-text and Markdown tables of error curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .format import format_number as _fmt


def pick_rows(n: int, max_rows: int = 24) -> list[int]:
    """All k when n is small, otherwise about ``max_rows`` evenly spaced k (always the last)."""
    if n <= max_rows:
        return list(range(n))
    step = -(-n // max_rows)
    rows = list(range(0, n, step))
    return rows if rows[-1] == n - 1 else [*rows, n - 1]


def _ordinal(i: int) -> str:
    """2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if i % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(i % 10, "th")
    return f"{i}{suffix}"


def skipped_note(n: int, rows: Sequence[int]) -> str | None:
    """The line that says which k a table of ``rows`` out of ``n`` shows (None when all are)."""
    if len(rows) == n:
        return None
    step = rows[1] - rows[0]
    last = "" if (n - 1) % step == 0 else f" and the last (k = {n - 1})"
    return f"every {_ordinal(step)} k shown{last}, {len(rows)} of {n}; --json for all"


def text_table(k: Sequence[int], results: Mapping[str, Mapping[str, Any]]) -> str:
    """A fixed-width table: one row per k, one column per predictor (MSE); when n is long only
    evenly spaced k are shown, and a last line says so."""
    names = list(results)
    rows = pick_rows(len(k))
    widths = [max(10, len(name)) for name in names]
    head = "   k  " + "  ".join(name.rjust(w) for name, w in zip(names, widths, strict=True))
    lines = [head, "-" * len(head)]
    for i in rows:
        cells = (_fmt(results[nm]["mse"][i]).rjust(w) for nm, w in zip(names, widths, strict=True))
        lines.append(f"{k[i]:4d}  " + "  ".join(cells))
    note = skipped_note(len(k), rows)
    return "\n".join([*lines, note] if note else lines)


def markdown_table(
    k: Sequence[int], results: Mapping[str, Mapping[str, Any]], rows: Sequence[int]
) -> str:
    """Markdown table of MSE with its 95% interval at the chosen rows of k."""
    names = list(results)
    lines = ["| k | " + " | ".join(f"`{nm}`" for nm in names) + " |"]
    lines.append("|---:|" + "---:|" * len(names))
    for i in rows:
        cells = []
        for nm in names:
            lo, hi = results[nm]["ci95"][i]
            cells.append(f"{_fmt(results[nm]['mse'][i])} ± {_fmt((hi - lo) / 2)}")
        lines.append(f"| {k[i]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
