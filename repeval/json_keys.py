"""JSON text of configuration values whose mappings may have keys of any kind YAML reads.

The keys of a value a model's or a transform's parameter takes are its data, as YAML read them (``{0: 0.5}``,
``{null: none, 1: one}``, a date): ``json.dumps`` cannot sort keys of several kinds in one mapping, nor write a date
key, and it writes the key ``1`` as the key ``'1'``. :func:`json_text` writes such keys as JSON writes a key (``null``,
``1``) or as their text (a date), for people to read; :func:`sorted_json` — a fingerprint's and a cache's — tells
them apart (``{1: x}`` and ``{'1': x}`` are different YAML keys, and different params to a plugin), and a date value
from its text alike (``since: 2024-01-01`` gives a plugin a ``datetime.date``, ``since: '2024-01-01'`` a string;
``json.dumps`` writes both as the text). Both leave the text of every value whose keys are all strings and that holds
no date as ``json.dumps`` writes it (so a fingerprint made of it keeps its value).
"""

from __future__ import annotations

import datetime
import json
from typing import Any

#: what :func:`sorted_json` writes before a key that is not a string (``1`` is ``"\\u00001"``, ``'1'`` is ``"1"``) and
#: before a date value's text: a character no YAML key or text holds unless escaped into a double-quoted one
OTHER_KEY = "\x00"


def sorted_json(obj: Any) -> str:
    """``obj`` as JSON, its keys sorted (values JSON does not take as their text), a key that is not a string and a
    date value written after :data:`OTHER_KEY` (as the module says) — the same text as ``json.dumps`` when every key
    is a string and no value a date."""
    if not other_keys(obj) and not date_values(obj):
        return json.dumps(obj, sort_keys=True, default=str)
    return json.dumps(_text_keys(obj, OTHER_KEY), sort_keys=True, default=str)


def json_text(obj: Any, sort_keys: bool = False) -> str:
    """``obj`` as JSON (values JSON does not take as their text), keys of any kind as the module says."""
    try:
        return json.dumps(obj, sort_keys=sort_keys, default=str)
    except TypeError:
        return json.dumps(_text_keys(obj), sort_keys=sort_keys, default=str)


def other_keys(obj: Any) -> bool:
    """Whether a mapping in ``obj`` (in its lists and mappings, all through) has a key that is not a string."""
    if isinstance(obj, dict):
        return any(not isinstance(k, str) or other_keys(v) for k, v in obj.items())
    if isinstance(obj, list | tuple):
        return any(other_keys(v) for v in obj)
    return False


def date_values(obj: Any) -> bool:
    """Whether a value in ``obj`` (in its lists and mappings, all through) is a date (``datetime.date``, or a
    ``datetime``: YAML reads ``2024-01-01`` and ``2024-01-01 10:00:00`` so)."""
    if isinstance(obj, dict):
        return any(date_values(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return any(date_values(v) for v in obj)
    return isinstance(obj, datetime.date)


def _text_keys(obj: Any, mark: str = "") -> Any:
    """``obj`` with each key that is not a string as its text after ``mark`` — and, given a ``mark``, each date value
    too (without one: as ``json.dumps(default=str)`` writes it, the text alone)."""
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else mark + _key_text(k): _text_keys(v, mark) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_text_keys(v, mark) for v in obj]
    if mark and isinstance(obj, datetime.date):
        return mark + str(obj)
    return obj


def _key_text(key: Any) -> str:
    """A mapping key as ``json.dumps`` writes it (``true``, ``null``, ``1``, ``0.5``), else its text (a date)."""
    try:
        return str(next(iter(json.loads(json.dumps({key: 0})))))
    except TypeError:
        return str(key)
