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


def suggestions(name: str, choices: list[str] | tuple[str, ...] | set[str], n: int = 3) -> list[str]:
    """The valid spellings ``name`` may have meant, best first: one that differs only in case (``addgaussiansnr`` is
    ``AddGaussianSNR``, not the closer-by-letters ``AddGaussianNoise``); else the closest whole name (difflib); else,
    for a name of three or more characters, up to ``n`` names it abbreviates or misspells the start of (``medly`` →
    ``medley_solos_db``, ``medleydb_melody``, ``medleydb_pitch``; ``mfcc`` → ``mfcc-stats``) or that contain it."""
    ordered = sorted(choices)
    folded = [c for c in ordered if c.casefold() == name.casefold()]
    if folded:
        return folded[:1]
    matches = difflib.get_close_matches(name, ordered, n=1, cutoff=0.6)
    if matches or len(name) < 3:
        return matches
    key = name.casefold()

    def score(choice: str) -> float:
        c = choice.casefold()
        if key in c:
            return 1.0
        return max(difflib.SequenceMatcher(None, key, c[:k]).ratio() for k in (len(key), len(key) + 1))

    scored = sorted((-s, c) for c in ordered if (s := score(c)) >= 0.8)
    return [c for _, c in scored[:n]]


def closest(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str | None:
    """The best of :func:`suggestions` (or None)."""
    found = suggestions(name, choices, n=1)
    return found[0] if found else None


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """`` — did you mean 'a'?`` (or ``'a', 'b' or 'c'``: :func:`suggestions`), or "" when nothing is close."""
    return did_you_mean_any(suggestions(name, choices))


def did_you_mean_any(found: list[str]) -> str:
    """`` — did you mean 'a'?`` (or ``'a', 'b' or 'c'``) of the names ``found``, or "" for none."""
    said = [repr(c) for c in found]
    if not said:
        return ""
    return " — did you mean " + (said[0] if len(said) == 1 else f"{', '.join(said[:-1])} or {said[-1]}") + "?"


def unknown_name_message(kind: str, name: str, choices: list[str] | set[str]) -> str:
    hint = did_you_mean(name, choices)
    msg = f"unknown {kind} '{name}'"
    msg += hint or "."
    msg += f" Valid {kind}s: {', '.join(sorted(choices))}"
    return msg


def unknown_param(owner: str, key: str, params: list[str]) -> tuple[str, str]:
    """The problem of ``key`` given to ``owner`` (a model family, a transform) whose parameters are ``params`` (listed
    in this order), as a :class:`ParamProblems` entry: ``(key, "<owner> has no parameter '<key>' — did you mean
    '<closest>'? (parameters: …)")``."""
    hint = closest(key, params)
    return (
        key,
        f"{owner} has no parameter '{key}'"
        + (f" — did you mean '{hint}'?" if hint else "")
        + f" (parameters: {', '.join(params)})",
    )


class ParamProblems(ValueError):
    """Every problem of one set of ``params`` (a model's, a transform's): ``problems`` holds ``(key, message)``, one
    per parameter at fault, so a configuration's check names each at its own path (``….params.<key>``) in one run."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(msg for _, msg in problems))


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

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plug-in whose import failed half-way, so that importing it again registers it anew)."""
        self._items.pop(name, None)

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
