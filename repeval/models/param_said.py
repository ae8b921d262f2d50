"""How a param's problem is said (the values it takes in words, the one a wrong text may mean) and the ``Literal``
values an annotation allows: the words of :mod:`repeval.models.param_kinds`' messages."""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any

from repeval.registry import did_you_mean


def items_error(
    param: str, value: Any, takes: Callable[[Any], bool], said: list[str], close: list[Any], written: Any
) -> str | None:
    """Why ``value`` is not a list whose items ``param`` (``model's key``) each ``takes`` (a test; ``said``: its
    values in words), the first wrong item named (and ``close`` one of the values it may mean), or a lone value it
    takes said as a list (``written``, in it); None when it is such a list."""
    items = value if isinstance(value, list | tuple) else None
    wrong = [v for v in items if not takes(v)] if items is not None else [value]
    if not wrong:
        return None
    why = f": {wrong[0]!r} is not one{close_to(wrong[0], close)}" if items is not None else ""
    why = f" (a list: write [{written}])" if items is None and takes(value) else why
    return f"{param} takes a list whose items are {either_of(said)}, got {value!r}{why}"


def literals(parts: Any) -> list[Any]:
    """The values of the ``Literal[...]`` among ``parts`` (an annotation's union members)."""
    return [v for p in parts if typing.get_origin(p) is typing.Literal for v in typing.get_args(p)]


def among(value: Any, allowed: list[Any]) -> bool:
    """Whether ``value`` is one of ``allowed``, of its type too (``True`` is not ``1``)."""
    return any(value == v and type(value) is type(v) for v in allowed)


def close_to(value: Any, allowed: list[Any]) -> str:
    """`` — did you mean 'max'?`` for a text close to one of the texts ``allowed``, else empty."""
    words = [v for v in allowed if isinstance(v, str)]
    return did_you_mean(value, words) if isinstance(value, str) and words else ""


def either_of(names: list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
