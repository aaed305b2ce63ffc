"""Registries: one per family (tasks, estimators, models), filled by decorators.

A member is a frozen dataclass whose fields are its SPEC keys. ``build`` parses a SPEC,
checks every key against the fields, converts each value to the field's annotated type, and
constructs the member, whose ``__post_init__`` validates ranges. Fields marked with
``context()`` are not SPEC keys: they are filled from keyword arguments given to ``build``
(for instance the task an estimator is evaluated on). A member whose construction reads
something (a trained run from disk) defines a classmethod ``from_spec`` taking the SPEC keys,
which ``build`` calls instead of the constructor, so the constructor itself only takes values.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Generic, Literal, TypeVar, Union

from .errors import UsageError
from .spec import Spec, parse_spec

T = TypeVar("T")


def context(default: Any = None) -> Any:
    """A dataclass field filled from ``build(..., name=value)``, not from the SPEC."""
    return dataclasses.field(default=default, metadata={"context": True}, compare=False)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = _type_name(args[0]) if args else "value"
        return f"a list of {inner}"
    if tp is type(None):
        return "none"
    return {int: "an integer", float: "a finite number", bool: "true/false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def coerce(value: Any, tp: Any) -> Any:
    """Convert a parsed SPEC value to the annotated type ``tp``; raise TypeError if it can't."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise TypeError
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if origin is tuple:
        args = typing.get_args(tp)
        items = value if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0]) for v in items)
        if len(items) != len(args):
            raise TypeError
        return tuple(coerce(v, a) for v, a in zip(items, args, strict=True))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():  # is_integer is False for inf, nan
            return int(value)
        raise TypeError
    if tp is float:  # finite numbers only: inf and nan would only turn results into nan
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise TypeError from None
            if math.isfinite(number):
                return number
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


class Registry(Generic[T]):
    """Named constructors of one family, e.g. ``TASKS`` or ``ESTIMATORS``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._members: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: register a frozen dataclass under ``name``."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._members:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            if not dataclasses.is_dataclass(cls):
                raise RuntimeError(f"{self.kind} '{name}' must be a dataclass")
            cls.name = name  # type: ignore[attr-defined]
            self._members[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        return sorted(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def get(self, name: str) -> type[T]:
        if name not in self._members:
            raise UsageError(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            )
        return self._members[name]

    def spec_fields(self, name: str) -> dict[str, Any]:
        """The SPEC keys of member ``name`` with their annotated types."""
        cls = self.get(name)
        hints = typing.get_type_hints(cls)
        return {
            f.name: hints[f.name]
            for f in dataclasses.fields(cls)
            if f.init and not f.metadata.get("context")
        }

    def build(self, spec: str | Spec, **ctx: Any) -> T:
        """Build a member from a SPEC string; context keywords fill ``context()`` fields."""
        parsed = parse_spec(spec) if isinstance(spec, str) else spec
        cls = self.get(parsed.name)
        fields = self.spec_fields(parsed.name)
        kwargs: dict[str, Any] = {}
        for key, raw in parsed.params.items():
            if key not in fields:
                valid = ", ".join(fields) or "none"
                raise UsageError(
                    f"unknown key '{key}' for {self.kind} '{parsed.name}'; valid keys: {valid}"
                )
            try:
                kwargs[key] = coerce(raw, fields[key])
            except TypeError:
                raise UsageError(
                    f"{self.kind} '{parsed.name}': {key} must be {_type_name(fields[key])}, "
                    f"got {raw!r}"
                ) from None
        for f in dataclasses.fields(cls):
            if f.metadata.get("context") and ctx.get(f.name) is not None:
                kwargs[f.name] = ctx[f.name]
        factory = getattr(cls, "from_spec", None)
        return factory(**kwargs) if factory is not None else cls(**kwargs)
