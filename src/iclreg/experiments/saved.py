"""A reproduction's measurements on disk: ``measurements.json``, from which its report is drawn.

Everything a report shows is in a :class:`~.base.Reproduction`: section texts, claims (their
checks and bounds, so a redraw re-decides them from the saved numbers), figures as
:class:`~iclreg.report.plots.Plot` (kind and data) and raw numbers. :func:`save` writes it as
JSON and :func:`load` rebuilds it with the same types (tuples stay tuples, arrays arrays, keys
that are not strings keep their type), so a report drawn from the loaded copy is the report of
the original, byte for byte. The runner always draws from the loaded copy: ``iclreg report DIR``
then takes the same path as ``iclreg reproduce``.

Only the dataclasses listed in ``_CLASSES`` are written; anything else is an error at save time.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..report import write_text
from ..report.plots import Plot
from ..report.references import Reference
from . import claims
from .base import Reproduction, Section

FILE = "measurements.json"
FORMAT = 1  # bumped when the layout changes; load() refuses other formats
_CLASSES = {cls.__name__: cls for cls in (
    Reproduction, Section, Reference, claims.Claim, claims.Check, claims.AtMost, claims.AtLeast,
    claims.IsTrue, claims.Between, claims.Near, claims.Interval, claims.Falls, claims.Rises)}


def encode(value: Any) -> Any:
    """``value`` as JSON data, tagged where JSON would lose its type (or, for inf and nan, where
    strict JSON has no number: ``{"__float__": "inf"}``)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return {"__scalar__": encode(value.item()), "dtype": str(value.dtype)}
    if isinstance(value, (np.ndarray, torch.Tensor)):
        kind = "tensor" if isinstance(value, torch.Tensor) else "array"
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        return {f"__{kind}__": encode(array.tolist()), "dtype": str(array.dtype)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, Plot):
        return {"__plot__": value.kind, "args": encode(value.args), "kwargs": encode(value.kwargs)}
    name = type(value).__name__
    if dataclasses.is_dataclass(value) and _CLASSES.get(name) is type(value):
        return {"__class__": name, **{f.name: encode(getattr(value, f.name))
                                      for f in dataclasses.fields(value)}}
    raise TypeError(f"cannot save a {name} in {FILE}; give the analysis plain numbers, lists, "
                    "arrays or tensors")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__items__" in value:
        return {decode(k): decode(v) for k, v in value["__items__"]}
    if "__float__" in value:
        return float(value["__float__"])
    if "__scalar__" in value:
        return np.dtype(value["dtype"]).type(decode(value["__scalar__"]))
    if "__array__" in value:
        return np.array(decode(value["__array__"]), dtype=value["dtype"])
    if "__tensor__" in value:
        return torch.from_numpy(np.array(decode(value["__tensor__"]), dtype=value["dtype"]))
    if "__plot__" in value:
        return Plot(value["__plot__"], *decode(value["args"]), **decode(value["kwargs"]))
    if "__class__" in value:
        cls = _CLASSES[value["__class__"]]
        fields = {f.name: decode(value[f.name]) for f in dataclasses.fields(cls) if f.name in value}
        return cls(**fields)
    return {k: decode(v) for k, v in value.items()}


def save(result: Reproduction, out: Path) -> Path:
    """Write ``result`` to ``out/measurements.json`` (atomically)."""
    path = out / FILE
    write_text(path, json.dumps({"format": FORMAT, "reproduction": encode(result)}, indent=None,
                                 allow_nan=False))
    return path


def load(out: str | Path) -> Reproduction:
    """The reproduction saved in directory ``out``; a missing or foreign file is a usage error."""
    path = Path(out) / FILE
    if not path.is_file():
        raise UsageError(f"'{out}' holds no {FILE}; give the output directory of `iclreg reproduce` "
                         "or of one reproduction of `iclreg demo`")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        result = decode(data["reproduction"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"'{path}' is not a measurements file this iclreg reads ({error}); "
                         "rerun the reproduction to write it again") from None
    if not isinstance(result, Reproduction):
        raise UsageError(f"'{path}' holds no reproduction; rerun the reproduction to write it again")
    return result


__all__ = ["FILE", "decode", "encode", "load", "save"]
