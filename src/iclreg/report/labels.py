"""Text in figures: a SPEC in a title or legend written for a reader, titles wrapped."""

from __future__ import annotations

import re
import textwrap

from matplotlib.axes import Axes

_SPEC = re.compile(r"\b([a-z][a-z0-9_]*):((?:[a-z_][a-z0-9_]*=(?:\[[^\]]*\]|[^,\s\]]+),?)+)")


def readable(text: str) -> str:
    """``text`` with each SPEC (``name:key=value,...``) written for a reader: ``name (key = value,
    ...)``, the symbols of the notation in math (``d``, ``n``, ``k``); a title or legend shows no raw
    SPEC."""
    def one(m: re.Match[str]) -> str:
        pairs = re.findall(r"([a-z_][a-z0-9_]*)=(\[[^\]]*\]|[^,\s\]]+)", m.group(2))
        shown = ", ".join(f"${k}$ = {v}" if k in ("d", "n", "k", "H") else f"{k.replace('_', ' ')} {v}"
                          for k, v in pairs)
        return f"{m.group(1)} ({shown})"

    return _SPEC.sub(one, text)


def set_title(ax: Axes, title: str) -> None:
    """A readable title, wrapped to the axes' width (about 60 characters a line)."""
    if title:
        ax.set_title("\n".join(textwrap.wrap(readable(title), 60, break_on_hyphens=False)))
