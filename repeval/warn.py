"""Warnings said once per process (:func:`warn_once`), not once per probe, trial, validation or scenario."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Hashable
from typing import Any

_lock = threading.Lock()
#: (logger or warning category, key) of every warning said in this process
_said: set[tuple[str, Hashable]] = set()


def _scope(to: logging.Logger | type[Warning]) -> str:
    return f"log {to.name}" if isinstance(to, logging.Logger) else f"warning {to.__module__}.{to.__qualname__}"


def warn_once(to: logging.Logger | type[Warning], key: Hashable, message: str, *args: Any, stacklevel: int = 1) -> bool:
    """Say ``message`` the first time this process asks with ``key`` (for ``to``), and nothing after; returns whether
    it said it. ``to``: a logger (``to.warning(message, *args)``) or a warning category (``warnings.warn(message %
    args, to)``). ``stacklevel`` counts from the caller (1: the line that calls this). Thread-safe: of threads asking
    with one key at once, one says it."""
    said = (_scope(to), key)
    with _lock:
        if said in _said:
            return False
        _said.add(said)
    if isinstance(to, logging.Logger):
        to.warning(message, *args, stacklevel=stacklevel + 1)
    else:
        warnings.warn(message % args if args else message, to, stacklevel=stacklevel + 1)
    return True


def reset_warned() -> None:
    """Forget every warning said, so each is said again (tests that check a warning is said once)."""
    with _lock:
        _said.clear()
