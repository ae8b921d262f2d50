"""JSON text of configuration values whose mappings may have keys of any kind YAML reads.

The keys of a value a model's or a transform's parameter takes are its data, as YAML read them (``{0: 0.5}``,
``{null: none, 1: one}``, a date): ``json.dumps`` cannot sort keys of several kinds in one mapping, nor write a date
key. These write such keys as JSON writes a key (``null``, ``1``) or as their text (a date), and leave the text of
every mapping ``json.dumps`` takes as it was (so a fingerprint made of it keeps its value).
"""

from __future__ import annotations

import json
from typing import Any


def sorted_json(obj: Any) -> str:
    """``obj`` as JSON, its keys sorted (values JSON does not take as their text; keys as the module says)."""
    return json_text(obj, sort_keys=True)


def json_text(obj: Any, sort_keys: bool = False) -> str:
    """``obj`` as JSON (values JSON does not take as their text), keys of any kind as the module says."""
    try:
        return json.dumps(obj, sort_keys=sort_keys, default=str)
    except TypeError:
        return json.dumps(_text_keys(obj), sort_keys=sort_keys, default=str)


def _text_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else _key_text(k): _text_keys(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_text_keys(v) for v in obj]
    return obj


def _key_text(key: Any) -> str:
    """A mapping key as ``json.dumps`` writes it (``true``, ``null``, ``1``, ``0.5``), else its text (a date)."""
    try:
        return str(next(iter(json.loads(json.dumps({key: 0})))))
    except TypeError:
        return str(key)
