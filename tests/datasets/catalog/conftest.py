"""The catalog loader's tests' audio folder: four clips, one more than tests/datasets/conftest.py gives."""

from __future__ import annotations

import pytest
from dataset_fixtures import write_audio


@pytest.fixture()
def audio_dir(tmp_path):
    for i in range(4):
        write_audio(tmp_path / "audio" / f"a{i}.wav", i)
    return tmp_path
