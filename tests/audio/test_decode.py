"""Decoding: mono mixdown, streaming resample, block-wise windows for long files, decode errors and samples that are
not audio (non-finite, integer-scaled floats). Damaged files (cut short, zero-filled) are test_damaged_files.py's."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from repeval.audio import DecodeError, decode, iter_chunks
from repeval.audio.decode import mixdown


def _tone(path, seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.5 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    data = np.stack([y] * channels, axis=1) if channels > 1 else y
    sf.write(path, data, sr, subtype="FLOAT")
    return y


def test_decode_mono_mixdown_and_resample(tmp_path):
    y = _tone(tmp_path / "st.wav", 1.0, 16000, channels=2)
    np.testing.assert_allclose(decode(str(tmp_path / "st.wav"), 16000), y, atol=1e-6)
    out = decode(str(tmp_path / "st.wav"), 22050)
    assert out.dtype == np.float32 and abs(len(out) - 22050) <= 2


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 7, 8, 9])
def test_mixdown_is_numpys_mean_bit_for_bit(channels):
    """The column-wise mixdown returns exactly numpy's mean over channels (signed zeros, subnormals, overflow
    to inf alike), so stores written before it match: a rerun recomputes nothing and finds the same rows."""
    rng = np.random.default_rng(channels)
    block = rng.standard_normal((70_001, channels)).astype(np.float32)
    block[:50] = 0.0
    block[50:60] = -0.0
    block[60:70, 0] = -0.0
    block[70:80] = np.float32(1e-40)
    block[80:85] = np.float32(3e38)
    with np.errstate(over="ignore"):
        want = block[:, 0].copy() if channels == 1 else block.mean(axis=1, dtype=np.float32)
        got = mixdown(block)
    assert got.dtype == np.float32 and got.flags.c_contiguous and not np.shares_memory(got, block)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_decode_of_a_stereo_file_is_the_mean_of_its_channels(tmp_path):
    rng = np.random.default_rng(0)
    data = (0.3 * rng.standard_normal((100_000, 2))).astype(np.float32)  # two blocks of the reader
    sf.write(tmp_path / "st.wav", data, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(decode(str(tmp_path / "st.wav"), 16000), data.mean(axis=1, dtype=np.float32))


def test_decode_file_uri(tmp_path):
    y = _tone(tmp_path / "a.wav", 0.5, 8000)
    np.testing.assert_array_equal(decode(f"file://{tmp_path / 'a.wav'}", 8000), y)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "file not found"),
        (b"", r"empty file \(0 bytes\)"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt garbage", "cannot decode"),
    ],
)
def test_decode_errors(tmp_path, content, match):
    p = tmp_path / "bad.wav"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(DecodeError, match=match) as said:
        decode(str(p), 22050)
    # the path once (libsndfile's "Error opening '<path>': " repeated it) and, for a file it cannot read, the fix
    assert str(said.value).count(str(p)) == 1, said.value
    if match == "cannot decode":
        assert str(said.value).endswith("then `--retry-errors` computes its track again"), said.value


def test_zero_length_and_nan(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(DecodeError, match="no audio samples"):
        decode(str(tmp_path / "empty.wav"), 8000)
    sf.write(tmp_path / "nan.wav", np.full(100, np.nan, np.float32), 8000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite"):
        decode(str(tmp_path / "nan.wav"), 8000)


@pytest.mark.parametrize("source_sr", [8000, 11025])
def test_chunks_cover_the_file_in_bounded_windows(tmp_path, source_sr):
    _tone(tmp_path / "long.wav", 23.3, source_sr)
    whole = decode(str(tmp_path / "long.wav"), 8000)
    chunks = list(iter_chunks(str(tmp_path / "long.wav"), 8000, chunk_s=5.0))
    # windows of exactly 5 s, the 3.3 s remainder stays a window (≥ half a window)
    assert [len(c) for c in chunks[:-1]] == [40000] * 4
    assert 0.5 * 40000 <= len(chunks[-1]) <= 1.5 * 40000
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_short_remainder_is_merged_and_short_file_is_one_window(tmp_path):
    _tone(tmp_path / "a.wav", 11.0, 8000)
    assert [len(c) for c in iter_chunks(str(tmp_path / "a.wav"), 8000, chunk_s=5.0)] == [40000, 48000]
    _tone(tmp_path / "b.wav", 2.0, 8000)
    assert [len(c) for c in iter_chunks(str(tmp_path / "b.wav"), 8000, chunk_s=5.0)] == [16000]
    assert [len(c) for c in iter_chunks(str(tmp_path / "b.wav"), 8000, chunk_s=None)] == [16000]


def test_long_file_never_held_whole(tmp_path):
    """10 minutes of audio (19 MB as float32) streamed in 5 s windows: peak allocations stay a small fraction."""
    sr = 8000
    with sf.SoundFile(tmp_path / "long.wav", "w", sr, 1, subtype="PCM_16") as f:
        block = (0.1 * np.sin(np.arange(sr * 10) * 0.05)).astype(np.float32)
        for _ in range(60):
            f.write(block)
    full_bytes = 600 * sr * 4
    tracemalloc.start()
    n = 0
    for c in iter_chunks(str(tmp_path / "long.wav"), 16000, chunk_s=5.0):  # resampled 2×: 38 MB if held
        n += len(c)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert abs(n - 600 * 16000) <= 16
    assert peak < 0.1 * 2 * full_bytes


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("target_sr", [8000, 22050, 6000])
def test_non_finite_samples_at_the_end_are_refused_when_resampled_too(tmp_path, bad, target_sr):
    """A NaN or inf in a file's last samples: the resampler holds a block's end until its final flush, which was
    not checked — the track reached the model with NaN in its last samples. Refused whatever the rate."""
    y = np.full(4000, 0.1, np.float32)
    y[-1] = bad
    sf.write(tmp_path / "end.wav", y, 8000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite samples"):
        decode(str(tmp_path / "end.wav"), target_sr)


def test_float_samples_far_beyond_full_scale_are_refused_naming_the_fix(tmp_path):
    """A float WAV holding integer-scaled samples (peaks in the thousands) was passed on as is: the model heard it
    some 70 dB too loud. It is refused, naming the rescale; float audio a few dB over full scale is audio."""
    y = (0.5 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype(np.float32)
    sf.write(tmp_path / "int_scaled.wav", y * 32768, 8000, subtype="FLOAT")
    for sr in (8000, 16000):
        with pytest.raises(DecodeError, match=r"samples reach 1\.638e\+04 .* rescale it to ±1"):
            decode(str(tmp_path / "int_scaled.wav"), sr)
    sf.write(tmp_path / "hot.wav", y * 4, 8000, subtype="DOUBLE")  # +6 dBFS peaks
    np.testing.assert_allclose(decode(str(tmp_path / "hot.wav"), 8000), y * 4, rtol=1e-6)


def test_a_file_shorter_than_one_output_sample_says_so(tmp_path):
    """One frame at 96 kHz makes no sample at 16 kHz: the reason said "zero-length file" of a file that is not."""
    sf.write(tmp_path / "one.wav", np.array([0.5], np.float32), 96_000)
    with pytest.raises(DecodeError, match=r"its 1 frame at 96000 Hz makes less than one sample at 16000 Hz"):
        decode(str(tmp_path / "one.wav"), 16_000)
    assert decode(str(tmp_path / "one.wav"), 96_000).tolist() == [0.5]


@pytest.mark.parametrize(
    ("subtype", "raw", "want"),
    [
        ("PCM_U8", bytes([0, 64, 128, 192, 255]), [-1.0, -0.5, 0.0, 0.5, 127 / 128]),  # unsigned: 128 is silence
        ("PCM_24", bytes([0, 0, 0x80, 0, 0, 0, 0xFF, 0xFF, 0x7F]), [-1.0, 0.0, (2**23 - 1) / 2**23]),
    ],
)
def test_integer_wavs_decode_to_full_scale_floats(tmp_path, subtype, raw, want):
    from repeval.testing.badaudio import _wav_header

    bits = 8 if subtype == "PCM_U8" else 24
    p = tmp_path / "raw.wav"
    p.write_bytes(_wav_header(len(raw) * 8 // bits, 8000, 1, bits) + raw)
    np.testing.assert_array_equal(decode(str(p), 8000), np.array(want, np.float32))


def test_an_audio_file_at_an_unreachable_gs_uri_fails_after_the_bounded_retries(monkeypatch):
    """A ``gs://`` audio file on a machine without the network kept its decode task in Google Cloud Storage's 15
    minutes of retries; the retries are bounded as a run's load bounds them (a minute; one second here) and the
    track's error names the URI."""
    monkeypatch.setattr("repeval.cloud_reach.GCS_RETRY_SECONDS", 1)
    uri = "gs://repeval/a.wav?endpoint_override=127.0.0.1:1&scheme=http"
    with pytest.raises(DecodeError) as said:
        decode(uri, 8000)
    assert str(said.value).startswith(f"cannot decode {uri}: google::cloud::Status(UNAVAILABLE: Retry policy exhausted")
