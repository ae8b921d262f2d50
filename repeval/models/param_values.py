"""The kinds of plain values a param's annotation allows — true or false, an integer, a number, a string, null, a
list of one of them, a ``Literal``'s values beside an ``Enum`` — whether a value is of one, and each in words: what
:mod:`repeval.models.param_kinds` checks a value against."""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from typing import Any

from repeval.models.param_said import among, either_of
from repeval.words import counted

_UNIONS = (typing.Union, types.UnionType)
_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS = {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}


@dataclasses.dataclass(frozen=True)
class _Choice:
    """The values of a ``Literal[...]`` beside an ``Enum`` (``Literal['auto'] | Color``), as a kind: a value among them
    stays as written."""

    values: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class _Fixed:
    """A tuple of fixed length (``tuple[int, int]``, ``tuple[float, str | None]``), as a kind: a list of as many items,
    each of its place's kinds (:func:`_kinds`)."""

    items: tuple[tuple[Any, ...], ...]


def _kinds(hint: Any) -> list[Any] | None:
    """The kinds ``hint`` allows (a scalar type, ``(list, scalar type)`` or a :class:`_Fixed` tuple of them), or None
    when one is not checked here."""
    if hint in _NAMES:
        return [hint]
    origin = typing.get_origin(hint)
    if origin in _UNIONS:
        parts = [_kinds(a) for a in typing.get_args(hint)]
        return None if any(p is None for p in parts) else [k for p in parts if p for k in p]
    args = typing.get_args(hint)
    if origin is tuple and args and Ellipsis not in args:  # (each place's kinds: no tuple in a tuple)
        each = [_kinds(a) for a in args]
        if any(k is None or any(isinstance(i, _Fixed) for i in k) for k in each):
            return None
        return [_Fixed(tuple(tuple(k or ()) for k in each))]
    if origin in (list, tuple) and args and args[0] in _PLURALS:
        return [(list, args[0])] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else None
    return None


def sequence_of(hint: Any) -> type | None:
    """``tuple`` when the sequences ``hint`` allows are tuples alone (``tuple[int, int]``, ``tuple[float, ...] |
    None``, ``tuple[Color, ...]``): the constructor gets a list given as one; else None (``list[int]``, ``Sequence[int]``,
    ``tuple[int, int] | list[int]``: as it is)."""
    parts = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    kinds = {typing.get_origin(p) or p for p in parts} & {list, tuple, collections.abc.Sequence}
    return tuple if kinds == {tuple} else None


def length_error(hint: Any, param: str, value: Any) -> str | None:
    """Why the list ``value`` is not a tuple of the one kind of items ``hint`` names, of fixed length (``tuple[Color,
    Color]``, ``tuple[Look, Look] | None``; whose items are read as a list's): its length; None when it has that length
    or ``hint`` names no such tuple (or one of plain items: :func:`fixed_why` says it of ``tuple[int, int]``)."""
    parts = [
        p for p in (typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)) if p is not type(None)
    ]
    args = typing.get_args(parts[0]) if len(parts) == 1 and typing.get_origin(parts[0]) is tuple else ()
    if not args or Ellipsis in args or len(set(args)) != 1 or _kinds(args[0]) or not isinstance(value, list | tuple):
        return None
    n = len(args)
    return (
        None if len(value) == n else f"{param} takes a list of {counted(n, 'item')}, got {value!r}{_length(value, n)}"
    )


def _length(value: Any, n: int) -> str:
    return f" ({counted(len(value), 'item')}, not {n})"


def fixed_why(value: Any, kinds: list[Any]) -> str:
    """Why the list ``value`` is not the one tuple of fixed length ``kinds`` allows (`` (3 items, not 2)``, ``: item 1
    ('b') is not an integer``); empty when ``kinds`` allows no such tuple, or more than one, or ``value`` is no list."""
    fixed = [k for k in kinds if isinstance(k, _Fixed)]
    if len(fixed) != 1 or not isinstance(value, list | tuple):
        return ""
    items = fixed[0].items
    if len(value) != len(items):
        return _length(value, len(items))
    for i, (v, each) in enumerate(zip(value, items, strict=True)):
        if not any(_fits(v, k) for k in each):
            return f": item {i} ({v!r}) is not {either_of([n for k in each for n in _said(k)])}"
    return ""


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(kind, _Choice):
        return among(value, list(kind.values))
    if isinstance(kind, tuple):
        return isinstance(value, list | tuple) and all(_fits(v, kind[1]) for v in value)
    if isinstance(kind, _Fixed):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(kind.items)
            and all(any(_fits(v, k) for k in each) for v, each in zip(value, kind.items, strict=True))
        )
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
    if isinstance(kind, _Fixed):
        each = [either_of([n for k in item for n in _said(k)]) for item in kind.items]
        if len(each) > 1 and len(set(each)) == 1 and len(kind.items[0]) == 1 and kind.items[0][0] in _PLURALS:
            return [f"a list of {len(each)} {_PLURALS[kind.items[0][0]]}"]
        return [f"a list of {counted(len(each), 'item')} ({', '.join(each)})"]
    return ["true", "false"] if kind is bool else [_NAMES[kind]]
