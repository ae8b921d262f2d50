"""Shared fixtures of the pipeline tests: the stage tests' audio files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from stages_cases import SR


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    sf.write(d / "short.wav", (0.3 * rng.standard_normal(int(1.5 * SR))).astype(np.float32), SR)
    sf.write(d / "long.wav", (0.3 * rng.standard_normal(int(23.0 * SR))).astype(np.float32), SR)
    (d / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    return d
