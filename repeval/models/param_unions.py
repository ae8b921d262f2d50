"""A param whose annotation is a union holding a dataclass — alone or as a list's items — beside other members
(``look: Look | str``, ``looks: list[Look] | Look``, ``Color | Look``): the dataclass is built of a mapping that fits
it, the other members' values are as :mod:`repeval.models.param_kinds` builds them, and a value that fits no member is
refused naming them all (a mapping: why it builds none, its bad key named). The model got the mapping before."""

from __future__ import annotations

import typing
from typing import Any

from repeval.models.param_kinds import (
    _UNIONS,
    _a_mapping,
    _built,
    _enum,
    _enum_error,
    _field_error,
    _got,
    _is_enum,
    _listed,
    _listed_error,
    _made_error,
    _mapping,
    _mapping_error,
    _Shape,
)
from repeval.models.param_said import close_to, either_of, literals
from repeval.models.param_values import _kinds, _said, length_error


class Union(typing.NamedTuple):
    """The members of a union holding a dataclass: ``mappings``, those a mapping may build (``Look``; a ``TypedDict``
    or ``dict[str, Color]`` too); ``lists``, those a list may (``list[Look]``); ``rest``, the union of the others
    (``str``, ``Color | int``; None: none); ``nullable``, null is one (``| None``)."""

    mappings: tuple[tuple[Any, _Shape], ...]
    lists: tuple[Any, ...]
    rest: Any
    nullable: bool


def union_of(hint: Any, depth: int = 0) -> Union | None:
    """The :class:`Union` of ``hint`` when it holds a dataclass (or a mapping or list :func:`_mapping` or
    :func:`_listed` builds) beside another member than null — ``Look | None`` alone is :func:`_mapping`'s —; None for
    any other annotation."""
    if typing.get_origin(hint) not in _UNIONS or depth > 4:
        return None
    parts = [p for p in typing.get_args(hint) if p is not type(None)]
    if len(parts) < 2:
        return None
    mappings = tuple((p, shape) for p in parts if (shape := _mapping(p, depth)) is not None)
    lists = tuple(p for p in parts if _listed(p, depth) is not None)
    if not (mappings or lists):
        return None
    others = [p for p in parts if all(p is not m for m, _ in mappings) and p not in lists]
    rest = typing.Union[tuple(others)] if others else None  # noqa: UP007 (members as a tuple)
    return Union(mappings, lists, rest, len(parts) < len(typing.get_args(hint)))


def union_error(union: Union, param: str, value: Any, depth: int) -> str | None:
    """Why ``value`` fits no member of ``union`` (``param``: ``model's key``): a mapping building none of its
    dataclasses (nor another member's mapping), a list none of its lists, a value of no other member's kind; None when
    it fits one, or a member is of a kind not checked here (a path, ``Any``, a plain ``dict``)."""
    if value is None and union.nullable:
        return None
    why = []
    if isinstance(value, dict):
        for member, shape in union.mappings:
            problem = _mapping_error(shape, param, value, depth) or _made_error(member, shape, param, value, depth)
            if problem is None:
                return None
            why.append(f"as {_kind_name(shape)}, {_relative(problem, param, shape)}")
    elif isinstance(value, list | tuple):
        for member in union.lists:
            problem = _list_error(member, param, value, depth)
            if problem is None:
                return None
            items = _kind_name(_mapping(_listed(member, depth), depth + 1), "s")
            why.append(f"as a list of {items}, {_relative(problem, param)}")
    said = _members_said(union, depth)
    if _rest_takes(union, value, depth):
        return None
    names = [n for p in _parts(union.rest) if _is_enum(p) for n in p.__members__]
    close = close_to(value, names + literals(_parts(union.rest))) if not why else ""
    if isinstance(value, dict) and union.lists and not union.mappings:  # (``list[Look] | str`` given one mapping)
        close = " (for one, write it as a list's item: `- key: value`)"
    return f"{param} takes {either_of(said or [])}, {_got(value, depth)}{close}" + (": " + "; ".join(why)) * bool(why)


def union_built(union: Union, value: Any, depth: int) -> Any:
    """``value`` as the constructor gets it under ``union``: a mapping as the first dataclass (or mapping) member it
    fits, built (its fields too), a list as the first list member it fits, anything else as the other members build
    it (``Color | Look``: ``GREEN`` is ``Color.GREEN``); as it is when it fits none."""
    if isinstance(value, dict) and union.mappings:
        fitting = [m for m, shape in union.mappings if _mapping_error(shape, "", value, depth) is None]
        failed: Exception | None = None
        for member in fitting:
            try:
                return _built(member, value, depth)
            except Exception as exc:  # (its __post_init__ refuses it: another member may take it)
                failed = failed or exc
        if failed is not None and not _rest_takes(union, value, depth):  # (``Look | dict[str, int]``: the dict)
            raise failed
    if isinstance(value, list | tuple):
        for member in union.lists:
            if _list_error(member, "", value, depth) is None:
                return _built(member, value, depth)
    return value if union.rest is None or value is None else _built(union.rest, value, depth)


def _parts(hint: Any) -> tuple[Any, ...]:
    if hint is None:
        return ()
    return typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)


def _list_error(member: Any, param: str, value: Any, depth: int) -> str | None:
    """Why ``value`` is not a list of the list ``member`` (``list[Look]``; ``tuple[Look, Look]``: of 2)."""
    return length_error(member, param, value) or _listed_error(member, param, value, depth)


def _rest_takes(union: Union, value: Any, depth: int) -> bool:
    """Whether a member of ``union`` beside its dataclasses and lists takes ``value`` (one of a kind not checked here
    takes anything)."""
    if union.rest is None:
        return False
    return _members_said(union, depth) is None or _rest_error(union.rest, "", value, depth) is None


def _rest_error(rest: Any, param: str, value: Any, depth: int) -> str | None:
    """Why ``value`` fits none of the members ``rest`` of a union beside its dataclass."""
    if _enum(rest) is not None or _mapping(rest, depth) is not None or _listed(rest, depth) is not None:
        return _enum_error(rest, param, value, depth)
    return _field_error(rest, param, value)


def _members_said(union: Union, depth: int) -> list[str] | None:
    """What ``union`` takes, in words — each dataclass' mapping, each list of them, the other members' values, null
    last —; None when a member is of a kind not checked here."""
    said = [_a_mapping(shape) for _, shape in union.mappings]
    said += [f"a list of {_a_mapping(_mapping(_listed(m, depth), depth + 1), 'mappings')}" for m in union.lists]
    for part in _parts(union.rest):
        if typing.get_origin(part) is typing.Literal:
            said += [repr(v) for v in typing.get_args(part)]
        elif _is_enum(part):
            said += [*part.__members__]
        elif (kinds := _kinds(part)) is not None:
            said += [n for kind in kinds for n in _said(kind)]
        else:
            return None
    return said + ["null"] * union.nullable


def _kind_name(shape: Any, plural: str = "") -> str:
    """``a Look`` (``Looks`` with ``plural``), ``a Box``, ``a mapping``: the member a mapping was read as."""
    kind = shape.made or shape.fields if shape is not None else None
    if kind is None:
        return f"mapping{plural}" if plural else "a mapping"
    name = kind.__name__
    return f"{name}{plural}" if plural else f"{'an' if name[:1] in 'AEIOU' else 'a'} {name}"


def _relative(problem: str, param: str, shape: Any = None) -> str:
    """``problem`` (which names ``param`` first) of the member it was read as: ``it has no field 'colour'…``, ``its
    size takes an integer…``, ``item 1 has no field…``; ``it does not build: …`` (its class named before)."""
    if not problem.startswith(param):
        return problem
    rest = problem[len(param) :]
    if shape is not None and shape.made is not None:
        rest = rest.replace(f" does not build its {shape.made.__name__}:", " does not build:", 1)
    if rest.startswith("["):
        index, _, after = rest[1:].partition("]")
        return f"item {index}{after}" if not after.startswith(".") else f"item {index}'s {after[1:]}"
    return f"its {rest[1:]}" if rest.startswith(".") else f"it{rest}"
