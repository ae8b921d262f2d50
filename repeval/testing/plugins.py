"""Plugins a test registers, forgotten after it: the session's other tests see repeval's own models."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from repeval.models import MODELS
from repeval.models import plugins as plugins_mod


@contextlib.contextmanager
def plugins_forgotten() -> Iterator[None]:
    """What plugins register inside is forgotten after it (the session's other tests see repeval's own models)."""
    before = set(MODELS.names())
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plugins_mod, "_LOADED", dict(plugins_mod._LOADED))
        mp.setattr(plugins_mod, "_ORIGIN", dict(plugins_mod._ORIGIN))
        mp.setattr(plugins_mod, "_ENTRY_POINTS", None)
        yield
    for name in set(MODELS.names()) - before:
        MODELS.remove(name)
