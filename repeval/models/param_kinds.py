"""A parameter's kind from its constructor annotation, for the ``params`` whose default says nothing of it (None):
hf-audio's ``layers: list[int] | int | None = None`` refuses ``layers: last`` at validation, not with a TypeError
in every embedding actor."""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Any

_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
_PLURALS = {bool: "true or false values", int: "integers", float: "numbers", str: "strings"}


def annotated_kind_error(cls: type, key: str, value: Any) -> str | None:
    """Why ``value`` cannot stand for ``cls.__init__``'s parameter ``key`` as annotated (None when it can, or when the
    annotation is missing or of a kind not checked here: a path, a mapping, ``Any``, a class of the model's own)."""
    init = next((i for k in cls.__mro__ if key in _params(i := vars(k).get("__init__"))), None)
    try:  # the constructor that names ``key`` (a base's, as model_parameters reads it: essentia's graph_path)
        hint = typing.get_type_hints(init).get(key) if init is not None else None
    except Exception:  # an annotation that does not resolve here: not ours to judge
        return None
    said = _kinds(hint)
    if said is None or any(_fits(value, kind) for kind in said):
        return None
    names = [n for kind in said if kind is not type(None) for n in _said(kind)] + ["null"] * (type(None) in said)
    among = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return f"expected {among}, got {value!r}"


def _params(init: Any) -> Any:
    """The parameters ``init`` (a class' own ``__init__``, or None) names."""
    try:
        return inspect.signature(init).parameters if init is not None else {}
    except (TypeError, ValueError):  # a builtin's, without a signature
        return {}


def _kinds(hint: Any) -> list[Any] | None:
    """The kinds ``hint`` allows (a scalar type, or ``(list, scalar type)``), or None when one is not checked here."""
    if hint in _NAMES:
        return [hint]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_kinds(a) for a in typing.get_args(hint)]
        return None if any(p is None for p in parts) else [k for p in parts if p for k in p]
    if origin in (list, tuple) and (args := typing.get_args(hint)) and args[0] in _PLURALS:
        return [(list, args[0])] if origin is list or (len(args) == 2 and args[1] is Ellipsis) else None
    return None


def _fits(value: Any, kind: Any) -> bool:
    if isinstance(kind, tuple):
        return isinstance(value, list | tuple) and all(_fits(v, kind[1]) for v in value)
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _said(kind: Any) -> list[str]:
    """``kind`` in words, as items of the list of kinds allowed (``bool | None``: "true, false or null")."""
    if isinstance(kind, tuple):
        return [f"a list of {_PLURALS[kind[1]]}"]
    return ["true", "false"] if kind is bool else [_NAMES[kind]]


def with_number_hint(problem: str, value: Any) -> str:
    """``problem`` (a number expected), and the fix when ``value`` is a number YAML read as text: exponent notation
    without a dot and a signed exponent (``hop_s: 1e-1``, ``n_fft: 2e3``; YAML 1.1 reads ``1.0e-1`` as a number)."""
    if not (isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]*\.?[0-9]+[eE][+-]?[0-9]+", value.strip())):
        return problem
    if "an integer" not in problem and "a number" not in problem:
        return problem
    number = float(value)
    written = int(number) if number.is_integer() and "a number" not in problem else number
    return f"{problem} (YAML reads this exponent notation as text: write {written})"
