"""Fixtures of the model tests: plugins a test registers are forgotten after it; stand-in weights, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeval.testing.plugins import plugins_forgotten


@pytest.fixture
def forget_plugins():
    """What a test's plugins register is forgotten after it (:func:`plugins_forgotten`)."""
    with plugins_forgotten():
        yield


@pytest.fixture(scope="session")
def dummy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stand-in weights of the session's model tests (:mod:`repeval.models.dummies`: the Essentia graphs, written by a
    tensorflow process, once)."""
    return tmp_path_factory.mktemp("model-weights")


@pytest.fixture(scope="module")
def forget_module_plugins():
    """What a test module's plugins register is forgotten after its last test (a module fixture's run uses them)."""
    with plugins_forgotten():
        yield
