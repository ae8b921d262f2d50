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
        lines = f"on line {fault.line}" if fault.first == fault.line else f"(lines {fault.first} and {fault.line})"
        return f"key '{fault.text}' is given twice {lines} — YAML keeps the last: keep one"
    said = f"key {fault.text}{at} is read by YAML as {fault.read_as()}, not a name"
    if valid is None or fault.text in valid:
        return f"{said} — quote it ('{fault.text}': …)"
    return f"{said}; quoted, '{fault.text}' is no key here either{hint}"


def plain_key_faults(
    value: Any, loc: tuple[Any, ...] = (), names: bool = True, deep_names: bool = True
) -> tuple[Any, list[tuple[tuple[Any, ...], str]]]:
    """``value`` (a mapping of free keys, or a list, and what they hold) without its faulty keys, and each fault's
    ``(loc, message)``; a mapping key's loc is its path under ``loc``. Its own keys are ``names`` (a model's
    parameters), and so are the keys of the values it holds if ``deep_names`` (a search's axes); else those are data
    (a parameter's label map ``{0: low, 1: high}``): kept as YAML read them, only one given twice said."""
    said: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            fault = as_fault(k)
            if isinstance(fault, Twice) or (fault is not None and names):
                said.append(((*loc, fault.text), key_fault(fault)))
                continue
            key = k if fault is None else fault.value
            out[key], found = plain_key_faults(v, (*loc, key), deep_names, deep_names)
            said += found
        return (value if out == value and not said else out), said
    if isinstance(value, list):
        items = []
        for i, v in enumerate(value):
            item, found = plain_key_faults(v, (*loc, i), deep_names, deep_names)
            items.append(item)
            said += found
        return (value if items == value and not said else items), said
    return value, said


_MERGE = "tag:yaml.org,2002:merge"


def _ident(key_node: yaml.Node) -> Any:
    """What makes two key nodes of a mapping the same key, not yet constructed: a scalar's tag and text."""
    return (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) else id(key_node)


class Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` keeping a key that is not a name as a :class:`NotText` and a key given twice in one mapping
    (not one a ``<<`` merge brings, which the mapping's own keys override) as a :class:`Twice` — also one given twice
    in a mapping it merges (an anchor under an ``x-`` key, which is not checked where it is written)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        #: id(mapping node) → its own key nodes and the mappings its ``<<`` merges, first the one that wins, as
        #: written: a merge moves the merged keys into the node (a mapping merged is flattened when first met, which
        #: may be before it is constructed)
        self._written: dict[int, tuple[list[yaml.Node], list[yaml.MappingNode]]] = {}

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) not in self._written:
            merged: list[yaml.MappingNode] = []
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    items = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                    merged += [m for m in items if isinstance(m, yaml.MappingNode)]
            self._written[id(node)] = ([k for k, _ in node.value if k.tag != _MERGE], merged)
        super().flatten_mapping(node)

    def _twice_merged(self, node: yaml.MappingNode) -> dict[Any, Twice]:
        """The keys given twice in the mappings ``node`` merges (or they merge), which its own keys do not
        override."""
        own, merged = self._written[id(node)]
        mine = {_ident(k) for k in own}
        found: dict[Any, Twice] = {}
        for source in merged:
            seen: dict[Any, int] = {}
            for key_node in self._written[id(source)][0]:
                ident, line = _ident(key_node), key_node.start_mark.line + 1
                if ident in seen and ident not in mine:
                    found.setdefault(ident, Twice(str(key_node.value), seen[ident], line))
                seen.setdefault(ident, line)
            for ident, twice in self._twice_merged(source).items():
                if ident not in mine:
                    found.setdefault(ident, twice)
        return found

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        self.flatten_mapping(node)
        own = {id(k) for k in self._written[id(node)][0]}
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
        for twice in self._twice_merged(node).values():  # (its value, the last, is the key's)
            mapping[twice] = None
        return mapping
