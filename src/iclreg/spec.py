"""The SPEC grammar shared by tasks, estimators and models.

A SPEC is ``name`` or ``name:key=value,key=value``. Values are parsed as Python literals
where possible (``3``, ``0.5``, ``1e-3``, ``[0.13,-0.13]``, ``[[0,1],[2,3]]``), ``true`` /
``false`` / ``none`` in any case, as bare strings otherwise (``cov=toeplitz``), and a
bracketed list of such values item by item (``[ols,ridge:lam=0.1]``). Commas
inside brackets do not split pairs, so list values need no quoting.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

_KEYWORDS = {"true": True, "false": False, "none": None}


@dataclass(frozen=True)
class Spec:
    """A parsed SPEC: a registered name and its raw parameter values."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    text: str = ""


def parse_value(text: str) -> Any:
    """Parse one value: a Python literal, a keyword (true/false/none) or a bare string."""
    stripped = text.strip()
    if stripped.lower() in _KEYWORDS:
        return _KEYWORDS[stripped.lower()]
    try:
        value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if stripped.startswith("[") and stripped.endswith("]"):  # bare words: [ols,ridge:lam=0.1]
            inner = stripped[1:-1]
            try:
                return [parse_value(part) for part in _split_top_level(inner)] if inner.strip() else []
            except RecursionError:
                return stripped
        return stripped
    if isinstance(value, (int, float, list, tuple, str)) and not isinstance(value, bool):
        return value
    return stripped


def _split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split ``text`` on ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise UsageError(f"unbalanced brackets in '{text}'")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise UsageError(f"unbalanced brackets in '{text}'")
    parts.append(text[start:])
    return parts


def parse_spec(text: str) -> Spec:
    """Parse ``name`` or ``name:key=value,...`` into a :class:`Spec`.

    Raises:
        UsageError: on an empty name, a pair without ``=``, or a repeated key.
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError("empty SPEC: write 'name' or 'name:key=value,...'")
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"SPEC '{text}' has no name before ':'")
    params: dict[str, Any] = {}
    if rest.strip():
        for pair in _split_top_level(rest):
            key, eq, value = pair.partition("=")
            key = key.strip()
            if not eq or not key:
                raise UsageError(f"'{pair.strip()}' in SPEC '{text}' is not key=value")
            if key in params:
                raise UsageError(f"key '{key}' is given twice in SPEC '{text}'")
            params[key] = parse_value(value)
    elif _:
        raise UsageError(f"SPEC '{text}' ends with ':' but gives no key=value pairs")
    return Spec(name=name, params=params, text=text.strip())
