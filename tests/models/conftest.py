"""Fixtures of the model tests: plugins a test registers are forgotten after it; stand-in weights, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeval.models import MODELS
from repeval.models import plugins as plugins_mod


@pytest.fixture
def forget_plugins(monkeypatch):
    """What a test's plugins register is forgotten after it (the session's other tests see repeval's own models)."""
    before = set(MODELS.names())
    monkeypatch.setattr(plugins_mod, "_LOADED", dict(plugins_mod._LOADED))
    monkeypatch.setattr(plugins_mod, "_ORIGIN", dict(plugins_mod._ORIGIN))
    monkeypatch.setattr(plugins_mod, "_ENTRY_POINTS", None)
    yield
    for name in set(MODELS.names()) - before:
        MODELS.remove(name)


@pytest.fixture(scope="session")
def dummy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in weights of the session's model tests (:mod:`repeval.models.dummies`: the Essentia graphs, written by a
    tensorflow process, once)."""
    return tmp_path_factory.mktemp("model-weights")
