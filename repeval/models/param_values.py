"""The kinds of plain values a param's annotation allows — true or false, an integer, a number, a string, null, a
list of one of them, a ``Literal``'s values beside an ``Enum`` — whether a value is of one, and each in words: what
:mod:`repeval.models.param_kinds` checks a value against."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from repeval.models.param_said import among

_UNIONS = (typing.Union, types.UnionType)
_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS = {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}


@dataclasses.dataclass(frozen=True)
class _Choice:
    """The values of a ``Literal[...]`` beside an ``Enum`` (``Literal['auto'] | Color``), as a kind: a value among them
    stays as written."""

    values: tuple[Any, ...]


def _kinds(hint: Any) -> list[Any] | None:
    """The kinds ``hint`` allows (a scalar type, or ``(list, scalar type)``), or None when one is not checked here."""
    if hint in _NAMES:
        return [hint]
    origin = typing.get_origin(hint)
    if origin in _UNIONS:
        parts = [_kinds(a) for a in typing.get_args(hint)]
        return None if any(p is None for p in parts) else [k for p in parts if p for k in p]
    if origin in (list, tuple) and (args := typing.get_args(hint)) and args[0] in _PLURALS:
        return [(list, args[0])] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else None
    return None


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(kind, _Choice):
        return among(value, list(kind.values))
    if isinstance(kind, tuple):
        return isinstance(value, list | tuple) and all(_fits(v, kind[1]) for v in value)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _said(kind: Any) -> list[str]:
    """``kind`` in words, as items of the list of kinds allowed (``bool | None``: "true, false or null")."""
    if isinstance(kind, _Choice):
        return [repr(v) for v in kind.values]
    if isinstance(kind, tuple):
        return [f"a list of {_PLURALS[kind[1]]}"]
    return ["true", "false"] if kind is bool else [_NAMES[kind]]
