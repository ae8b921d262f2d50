"""Fixtures shared by the catalog tests of this folder."""

from __future__ import annotations

import pytest
from dataset_fixtures import write_audio


@pytest.fixture()
def audio_dir(tmp_path):
    """``tmp_path`` holding ``audio/a0.wav`` … ``audio/a2.wav`` (a test module may override it with more clips)."""
    for i in range(3):
        write_audio(tmp_path / "audio" / f"a{i}.wav", i)
    return tmp_path
