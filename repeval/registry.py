"""Explicit plug-in registries.

Every plug-in family (datasets, models, metrics, probes, ...) owns one :class:`Registry`.
A plug-in registers itself with the registry's decorator; an unknown name raises a
``ValueError`` that lists the valid names and suggests the closest one.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def closest(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """Return the closest valid spelling of ``name`` among ``choices`` (or None); one that differs only in case
    first (``addgaussiansnr`` is ``AddGaussianSNR``, not the closer-by-letters ``AddGaussianNoise``)."""
    folded = [c for c in sorted(choices) if c.casefold() == name.casefold()]
    if folded:
        return folded[0]
    matches = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_name_message(kind: str, name: str, choices: list[str] | set[str]) -> str:
    hint = closest(name, list(choices))
    msg = f"unknown {kind} '{name}'"
    msg += f" — did you mean '{hint}'?" if hint else "."
    msg += f" Valid {kind}s: {', '.join(sorted(choices))}"
    return msg


class Registry(Generic[T]):
    """A name → plug-in mapping with a registering decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(unknown_name_message(self.kind, name, set(self._items))) from None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._items.items()))
