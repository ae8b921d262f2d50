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


def _tone(sample_rate_hz: int, seconds: float = 1.0, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def test_resample_returns_audio_at_the_models_rate():
    """audiomentations' Resample returns the audio at its new rate; fed on as the model's rate, a 440 Hz tone
    resampled to 8 kHz was heard at 880 Hz in half the time. It is resampled back: same rate, same length, same
    pitch, band-limited to the lower rate's Nyquist frequency."""
    sr = 16_000
    audio = _tone(sr) + _tone(sr, freq_hz=6000.0)  # a partial above 4 kHz, lost at 8 kHz
    out, sampled = Scenario("D1", [("Resample", {"min_sample_rate": 8000, "max_sample_rate": 8000, "p": 1.0})])(
        audio, sr, seed=1
    )
    assert sampled[0]["target_sample_rate"] == 8000
    assert out.dtype == np.float32 and len(out) == len(audio)
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(len(out), 1 / sr)
    assert abs(freqs[spectrum.argmax()] - 440.0) < 2.0
    assert spectrum[np.abs(freqs - 6000.0) < 5].max() < 1e-3 * spectrum.max()


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        (
            [("LowPassFilter", {"min_cutoff_freq": 9000, "max_cutoff_freq": 10000})],
            r"step 1: LowPassFilter.*max_cutoff_freq is 10000 Hz, at or above",
        ),
        (
            [("Gain", {}), ("PeakingFilter", {"min_center_freq": 9000, "max_center_freq": 9500})],
            r"step 2: PeakingFilter.*max_center_freq is 9500 Hz",
        ),
        (
            [("HighShelfFilter", {})],
            r"step 1: HighShelfFilter.*max_center_freq is 7500 Hz, .*keep it below 4000 Hz \(the default: set it\)",
        ),
    ],
)
def test_a_filter_frequency_above_the_rates_nyquist_fails_before_the_run(steps, match):
    """Validated at 44.1 kHz, a filter at 9–10 kHz passed; at a 16 kHz model's rate it did nothing (low-pass),
    cut everything (high-pass) or made NaN on every track (peaking). Checked at the rate the audio is deformed at."""
    from repeval.deformations import validate_steps_at

    for type_, params in steps:
        validate_step(type_, params)  # fine at 44.1 kHz
    rate = 8000 if steps[0][0] == "HighShelfFilter" else 16_000
    with pytest.raises(ValueError, match=rf"^deformation scenario 'D1', {match}"):
        validate_steps_at("D1", steps, rate)
    validate_steps_at("D1", steps, 44_100)


def test_a_step_that_makes_nan_fails_validation():
    with pytest.raises(ValueError, match=r"Gain\(.*\) makes non-finite samples"):
        validate_step("Gain", {"min_gain_db": float("nan"), "max_gain_db": 0.0})


def test_an_empty_noise_folder_is_named_with_the_fix(tmp_path):
    """audiomentations' bare assert (`len(self.sound_file_paths) > 0`) was the reason given for an empty folder."""
    (tmp_path / "noise").mkdir()
    (tmp_path / "noise" / "readme.txt").write_text("noise goes here")
    with pytest.raises(ValueError, match=r"sounds_path: the folder holds no audio files .*put the recordings there"):
        validate_step("AddBackgroundNoise", {"sounds_path": str(tmp_path / "noise")})
    with pytest.raises(ValueError, match=r"ir_path: the file is not an audio file"):
        validate_step("ApplyImpulseResponse", {"ir_path": str(tmp_path / "noise" / "readme.txt")})


@pytest.mark.parametrize(
    ("step", "n"),
    [(("Aliasing", {"min_sample_rate": 4000, "max_sample_rate": 8000}), 1), (("Mp3Compression", {}), 800)],
)
def test_a_clip_too_short_for_a_step_names_the_step_and_the_clip(step, n):
    """A 1-sample clip through Aliasing failed with numpy's "array of sample points is empty": the error record
    did not say which step of the scenario failed, nor on what."""
    type_, params = step
    scenario = Scenario("D1", [("Gain", {"p": 1.0}), (type_, {**params, "p": 1.0})])
    with pytest.raises(ValueError, match=rf"^step 2 \({type_}\) fails on {n} samples .*too short for {type_}"):
        scenario(_tone(16_000)[:n], 16_000, seed=3)


def test_every_transform_is_windowed_or_track_level_and_the_windowed_ones_stream_as_applied_whole(tmp_path):
    """The inventory: each audiomentations waveform transform is either applied window by window (WINDOWED) or to
    the whole track (TRACK_LEVEL). A windowed one, streamed in 1 s windows (parameters sampled on the first, noise
    seeded per window), gives what it gives on the whole signal away from the windows' edges — on a signal whose
    level rises window by window, so a transform that measures the signal (Normalize, an SNR, a percentile) fails."""
    import pyarrow as pa
    import soundfile as sf

    from repeval.deformations import TRACK_LEVEL, WINDOWED, acts_on_whole_track, scenario_seed
    from repeval.pipeline.stages import DecodeDeform, table_to_batch

    assert WINDOWED | set(TRACK_LEVEL) == set(waveform_transforms()) and not WINDOWED & set(TRACK_LEVEL)
    assert acts_on_whole_track("Mp3Compression", {"preserve_delay": True})  # the encoder delay in every window
    sr = 22_050
    rng = np.random.default_rng(5)
    x = (np.convolve(rng.standard_normal(3 * sr), np.ones(8) / 8, "same") * np.linspace(0.02, 0.5, 3 * sr)).astype(
        np.float32
    )
    sf.write(tmp_path / "t.wav", x, sr, subtype="FLOAT")
    interior = np.ones(len(x), bool)
    for edge in (sr, 2 * sr):
        interior[edge - sr // 20 : edge + sr // 20] = False  # 50 ms either side of each window edge
    batch = {
        "track_id": np.array(["t"]),
        "audio_path": np.array([str(tmp_path / "t.wav")]),
        "split": np.array(["test"]),
        "scenarios": [np.array(["D1"])],
    }
    for name in sorted(WINDOWED):
        steps = [(name, {"p": 1.0})]
        out = table_to_batch(pa.concat_tables(DecodeDeform(sr, {"D1": steps}, 0, chunk_s=1.0)(batch)))
        streamed = np.concatenate(list(out["audio"]))
        whole, _ = Scenario("D1", steps)(x.copy(), sr, seed=scenario_seed(0, "t", "D1"))
        assert len(out["audio"]) == 3 and len(streamed) == len(whole) == len(x), name
        # what the step changes, window by window: as much streamed as applied whole
        for w in range(3):
            part = interior & (np.arange(len(x)) // sr == w)
            streamed_change, whole_change = np.std((streamed - x)[part]), np.std((whole - x)[part])
            assert abs(streamed_change - whole_change) <= 0.05 * whole_change + 1e-7, (name, w)
        if name not in ("AddGaussianNoise", "Aliasing", "Mp3Compression"):  # not another noise or codec realisation
            diff = np.sqrt(np.mean((streamed - whole)[interior] ** 2)) / np.sqrt(np.mean(whole[interior] ** 2))
            assert diff < 1e-3, (name, diff)


def test_what_a_clip_records_does_not_depend_on_the_clips_deformed_before(files):
    """A step its ``p`` skipped kept in its parameters the values audiomentations sampled for the clip before (a
    ``Gain`` not applied recorded the previous track's ``amplitude_ratio``): a row's ``deformation_params`` depended on
    which track its process had deformed last. Each clip records what a scenario built for it alone records, and a
    skipped step says only that it was skipped."""
    audio = np.random.default_rng(1).uniform(-0.3, 0.3, 22050).astype(np.float32)
    for name in sorted(waveform_transforms()):
        steps = [(name, {**NEEDS.get(name, lambda d: {})(files), "p": 0.5})]
        reused = Scenario("D1", steps)
        skipped = 0
        for seed in (1, 0):  # at p 0.5, seed 1 applies the step and seed 0 skips it
            out, sampled = reused(audio.copy(), 22050, seed=seed)
            alone, sampled_alone = Scenario("D1", steps)(audio.copy(), 22050, seed=seed)
            np.testing.assert_array_equal(out, alone, err_msg=name)
            assert sampled == sampled_alone, (name, seed)
            if not sampled[0]["should_apply"]:
                skipped += 1
                assert sampled == [{"type": name, "should_apply": False}], name
        assert skipped == 1, name  # both kinds of clip seen


def test_recorded_params_say_what_the_track_heard_in_the_configurations_units():
    """A sweep over a range (``min_snr_db: 5, max_snr_db: 25``) stored only audiomentations' noise level
    (``noise_std``), a ``Gain`` only its ``amplitude_ratio``, and ``SevenBandParametricEQ`` none of its seven gains
    (they live in its sub-filters): which SNR, gain or EQ curve a track was embedded under could not be read from its
    row. Each now records it, in the units the configuration uses."""
    rng = np.random.default_rng(3)
    audio = rng.uniform(-0.3, 0.3, 22050).astype(np.float32)
    snr = Scenario("D1", [("AddGaussianSNR", {"min_snr_db": 5, "max_snr_db": 25, "p": 1.0})])
    for seed in (1, 2, 3):
        out, sampled = snr(audio.copy(), 22050, seed=seed)
        heard = 20 * np.log10(np.sqrt(np.mean(audio**2)) / np.sqrt(np.mean((out - audio) ** 2)))
        assert 5 <= sampled[0]["snr_db"] <= 25 and abs(sampled[0]["snr_db"] - heard) < 0.2, (sampled, heard)
    steps = [
        ("Gain", {"min_gain_db": -12, "max_gain_db": -12, "p": 1.0}),
        ("AddColorNoise", {"min_snr_db": 10, "max_snr_db": 10, "p": 1.0}),
        ("SevenBandParametricEQ", {"min_gain_db": -6, "max_gain_db": 6, "p": 1.0}),
    ]
    _, sampled = Scenario("D1", steps)(audio.copy(), 22050, seed=5)
    assert sampled[0]["gain_db"] == -12.0 and sampled[1]["snr_db"] == 10.0  # the SNR of the step's own (quieter) input
    bands = sampled[2]["bands"]
    assert [b["type"] for b in bands] == ["LowShelfFilter", *["PeakingFilter"] * 5, "HighShelfFilter"]
    assert all(-6 <= b["gain_db"] <= 6 for b in bands) and len({b["gain_db"] for b in bands}) == 7
    assert [b["center_freq"] for b in bands] == sorted(b["center_freq"] for b in bands)
    json.dumps(sampled)
