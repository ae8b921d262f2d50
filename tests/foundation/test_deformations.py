"""Every audiomentations waveform transform can be a deformation step: it validates, applies, and reruns
bit-identically from its seed (the issue: "every audiomentations waveform transform is allowed")."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from repeval.deformations import FORBIDDEN, Scenario, validate_step, waveform_transforms
from repeval.testing.badaudio import write_good

#: transforms that need more than their defaults: a file or folder to read, or a target length
NEEDS = {
    "AddBackgroundNoise": lambda d: {"sounds_path": str(d / "noise")},
    "AddShortNoises": lambda d: {
        "sounds_path": str(d / "noise"),
        "min_time_between_sounds": 0.1,
        "max_time_between_sounds": 0.2,
    },
    "ApplyImpulseResponse": lambda d: {"ir_path": str(d / "ir.wav")},
    "AdjustDuration": lambda d: {"duration_seconds": 0.3},
}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("deform")
    (d / "noise").mkdir()
    write_good(d / "noise" / "hum.wav", 1.0, 100.0, seed=1)
    write_good(d / "ir.wav", 0.05, 3000.0, seed=2)
    return d


def test_every_waveform_transform_validates_applies_and_reruns_identically(files):
    names = sorted(waveform_transforms())
    assert "Lambda" not in names and FORBIDDEN == {"Lambda"}
    assert {"Limiter", "LoudnessNormalization", "RoomSimulator", "Mp3Compression", "AirAbsorption"} <= set(names)
    audio = np.random.default_rng(0).uniform(-0.3, 0.3, 22050).astype(np.float32)
    for name in names:
        params = {**NEEDS.get(name, lambda d: {})(files), "p": 1.0}
        validate_step(name, params)  # builds the transform and tries it once
        scenario = Scenario("D1", [(name, params)])
        out, sampled = scenario(audio.copy(), 22050, seed=4_000_000_007 % 2**32)
        again, sampled_again = scenario(audio.copy(), 22050, seed=4_000_000_007 % 2**32)
        assert out.dtype == np.float32 and out.ndim == 1 and len(out) > 0, name
        assert np.isfinite(out).all(), name
        np.testing.assert_array_equal(out, again, err_msg=name)
        assert sampled == sampled_again and sampled[0]["type"] == name
        json.dumps(sampled)  # stored with the embedding
