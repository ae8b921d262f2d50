"""Reading a configuration's YAML so that two slips YAML itself lets pass are said with the file's other problems.

- A key YAML does not read as a name: YAML 1.1 reads an unquoted ``on``, ``off``, ``yes``, ``no``, ``true`` or
  ``false`` as a boolean, ``1`` as a number, ``~`` as null and ``2024-01-01`` as a date. :class:`Loader` keeps such a
  key as a :class:`NotText`, which says the key as written and its line.
- A key given twice in one mapping: YAML keeps the last value and says nothing. :class:`Loader` keeps the first under
  its key and the other under a :class:`Twice`, which says both lines.

:meth:`repeval.config.base.Strict._check_keys` says either fault at the mapping it is in, with the mapping's other
problems (:func:`key_fault` words it; :func:`plain_key_faults` finds them inside a mapping of free keys, such as a
model's ``params``).
"""

from __future__ import annotations

import datetime
from collections.abc import Hashable
from typing import Any

import yaml


class NotText:
    """A mapping key YAML read as a boolean, number, null or date: ``value`` as read, ``text`` as written, ``line``
    (1-based; None when not read from a file)."""

    __slots__ = ("line", "text", "value")

    def __init__(self, value: Any, text: str, line: int | None) -> None:
        self.value, self.text, self.line = value, text, line

    def __hash__(self) -> int:
        return hash((NotText, self.text))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotText) and other.text == self.text

    def __repr__(self) -> str:
        return self.text

    def read_as(self) -> str:
        """What YAML made of the key: ``the boolean true``, ``the number 1``, …"""
        v = self.value
        if isinstance(v, bool):
            return f"the boolean {str(v).lower()}"
        if isinstance(v, int | float):
            return f"the number {v}"
        if v is None:
            return "null (no value)"
        if isinstance(v, datetime.date):
            return f"the date {v}"
        return f"a {type(v).__name__}"


class Twice:
    """The second (or later) occurrence of key ``text`` in one mapping, at ``line``; the first is at ``first``."""

    __slots__ = ("first", "line", "text")

    def __init__(self, text: str, first: int, line: int) -> None:
        self.text, self.first, self.line = text, first, line

    def __hash__(self) -> int:
        return hash((Twice, self.text, self.line))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Twice) and (other.text, other.line) == (self.text, self.line)

    def __repr__(self) -> str:
        return self.text


def as_fault(key: Any) -> NotText | Twice | None:
    """``key`` as a fault of its mapping — a key read from Python or a plain ``yaml.safe_load`` (``True``, ``1``) as
    a :class:`NotText` written as YAML writes it — or None for a name."""
    if isinstance(key, NotText | Twice):
        return key
    if isinstance(key, str):
        return None
    text = "null" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
    return NotText(key, text, None)


def key_fault(fault: NotText | Twice, valid: set[str] | None = None, hint: str = "") -> str:
    """What is wrong with a key: ``valid``, the keys of the mapping it is in (None: a mapping of free keys — a
    model's params), and ``hint``, what to add when its text is none of them (``— did you mean 'x'?``)."""
    at = f" (line {fault.line})" if fault.line else ""
    if isinstance(fault, Twice):
        return (
            f"key '{fault.text}' is given twice (lines {fault.first} and {fault.line}) — YAML keeps the last: keep one"
        )
    said = f"key {fault.text}{at} is read by YAML as {fault.read_as()}, not a name"
    if valid is None or fault.text in valid:
        return f"{said} — quote it ('{fault.text}': …)"
    return f"{said}; quoted, '{fault.text}' is no key here either{hint}"


def plain_key_faults(value: Any, loc: tuple[Any, ...] = ()) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    """``value`` (a mapping of free keys, or a list, and what they hold) without its faulty keys, and each fault's
    ``(loc, message)``; a mapping key's loc is its path under ``loc``."""
    said: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            fault = as_fault(k)
            if fault is not None:
                said.append(((*loc, fault.text), key_fault(fault)))
                continue
            out[k], found = plain_key_faults(v, (*loc, k))
            said += found
        return (out if said else value), said
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            item, found = plain_key_faults(v, (*loc, i))
            items.append(item)
            said += found
        return (items if said else value), said
    return value, said


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` keeping a key that is not a name as a :class:`NotText` and a key given twice in one mapping
    (not one a ``<<`` merge brings, which the mapping's own keys override) as a :class:`Twice`."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        own = {id(k) for k, _ in node.value}
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        lines: dict[Any, int] = {}  # each own key → its line
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str) and isinstance(key_node, yaml.ScalarNode):
                key = NotText(key, key_node.value, line)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
                )
            value = self.construct_object(value_node, deep=deep)
            if id(key_node) in own:
                if key in lines:
                    mapping[Twice(key.text if isinstance(key, NotText) else str(key), lines[key], line)] = value
                    continue
                lines[key] = line
            mapping[key] = value
        return mapping
