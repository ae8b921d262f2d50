"""The fix for a number YAML read as text, where a param takes a number (:func:`with_number_hint`): ``hop_s: 1e-1``
is the text ``'1e-1'`` to YAML 1.1, refused as a number; the problem says the number to write."""

from __future__ import annotations

import re
from typing import Any


def with_number_hint(problem: str, value: Any) -> str:
    """``problem`` (a number expected), and the fix when ``value`` is a number YAML read as text: exponent notation
    without a dot and a signed exponent (``hop_s: 1e-1``, ``n_fft: 2e3``; YAML 1.1 reads ``1.0e-1`` as a number) — or a
    list holding such numbers (``rates: [1e-3, 1e-4]``), said as the list to write; not where what it would say to
    write is refused too (``1e-1`` where an integer is expected, ``[1e-3, abc]``)."""
    if isinstance(value, list | tuple):
        if not any(_exponent(v) for v in value) or not (
            "a list of integers" in problem or "a list of numbers" in problem
        ):
            return problem
        integers = "a list of numbers" not in problem
        items = [_written(v, integers) if _exponent(v) else v for v in value]
        if not all(_number(x, integers) for x in items):
            return problem
        return f"{problem} (YAML reads exponent notation as text: write [{', '.join(map(str, items))}])"
    if not _exponent(value) or ("an integer" not in problem and "a number" not in problem):
        return problem
    written = _written(value, integer := "a number" not in problem)
    if not _number(written, integer):
        return problem
    return f"{problem} (YAML reads this exponent notation as text: write {written})"


def _number(value: Any, integer: bool) -> bool:
    """Whether ``value`` is a number (an integer, where ``integer``), as the problem's fix must write one."""
    return isinstance(value, int if integer else int | float) and not isinstance(value, bool)


def _exponent(value: Any) -> bool:
    """Whether ``value`` is exponent notation YAML 1.1 reads as text (``1e-1``: no dot, or no sign to the exponent)."""
    return isinstance(value, str) and bool(re.fullmatch(r"[+-]?[0-9]*\.?[0-9]+[eE][+-]?[0-9]+", value.strip()))


def _written(value: str, integer: bool) -> int | float:
    """``value`` (exponent notation) as the number to write: a whole one as an integer where one is ``integer``."""
    number = float(value)
    return int(number) if integer and number.is_integer() else number
