"""What the model family tests share: the repository, and a mark for tests whose optional dependencies are missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from repeval.models._common import missing_modules

REPO = Path(__file__).resolve().parents[2]


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = missing_modules(*modules)
    return pytest.mark.skipif(bool(missing), reason=f"optional dependencies missing: {', '.join(missing)}")
