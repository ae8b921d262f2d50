"""Counts and lists in words, for every message a user reads: "1 row", "2 rows", "scenarios D1, D2" — not "row(s)".
Standard library only: imported by trial actors and report code that must not pull in the audio pipeline."""

from __future__ import annotations

from collections.abc import Iterable


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and ``noun``, in the plural (``plural``, by default ``noun`` + s) unless ``n`` is 1: "1 row", "2 rows",
    "0 errors", "1,200 rows" — not "1 row(s)"."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def named(noun: str, names: Iterable[str], plural: str | None = None) -> str:
    """``noun`` followed by ``names`` joined by commas, in the plural (``plural``, by default ``noun`` + s) unless there
    is one: "scenario D2", "scenarios D1, D2" — not "scenario(s) D1, D2"."""
    names = list(names)
    return f"{noun if len(names) == 1 else plural or noun + 's'} {', '.join(names)}"


def each_of_first(n: int, noun: str) -> str:
    """``each of the first 3 tracks``; ``the first track`` (not "each of the first 1 track")."""
    return f"the first {noun}" if n == 1 else f"each of the first {counted(n, noun)}"
