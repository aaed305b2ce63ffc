"""One formatter for measured and published values, shared by the Markdown and HTML reports.

Numbers get four significant digits (``0.1235``, ``1.2e-07``, ``0``), lists are comma
separated, mappings read ``key: value`` (nested ones in parentheses); no Python reprs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def format_number(x: float) -> str:
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    return f"{x:.4g}"


def format_value(value: Any) -> str:
    """A value for people: numbers, strings, and lists and mappings of them."""
    if value is None:
        return "-"
    if isinstance(value, (bool, int, float)):
        return format_number(value)
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            text = format_value(item)
            nested = isinstance(item, Mapping) or (isinstance(item, (list, tuple)) and len(item) > 1)
            items.append(f"{key}: ({text})" if nested else f"{key}: {text}")
        return ", ".join(items)
    if isinstance(value, (list, tuple)):
        nested = any(isinstance(v, (list, tuple, Mapping)) for v in value)
        return ", ".join(f"({format_value(v)})" if nested else format_value(v) for v in value)
    if hasattr(value, "tolist"):  # a tensor or an array
        return format_value(value.tolist())
    return str(value)
