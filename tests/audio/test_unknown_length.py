"""A FLAC whose STREAMINFO holds 0 samples — what a streaming encoder writes (``ffmpeg … -f flac -`` to a pipe, which
cannot seek back to fill in the length) — is a whole, valid file: it decodes to the same samples as the file with its
length filled in, at its own rate and resampled, locally and through a pyarrow filesystem URI. soundfile's reads fail
at the end of such a file ("Internal psf_fseek() failed"), which made every such file an error record."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from repeval.audio.decode import UNKNOWN_FRAMES, DecodeError, decode, iter_chunks

RATE_HZ = 22050
#: STREAMINFO's data starts after ``fLaC`` and the 4-byte metadata block header; its bytes 10–17 hold the sample
#: rate (20 bits), channels − 1 (3), bits per sample − 1 (5) and the total samples (36)
TOTAL_AT = 8 + 10


def _streamed(path, seconds: float, channels: int = 1):
    """Write a FLAC at ``path`` and a copy with its total samples zeroed; return (whole, streamed) paths."""
    rng = np.random.default_rng(7)
    x = (0.2 * rng.standard_normal((int(seconds * RATE_HZ), channels))).astype(np.float32)
    whole = path / f"whole_{seconds}_{channels}.flac"
    sf.write(whole, x, RATE_HZ, subtype="PCM_16")
    data = bytearray(whole.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first
    field = int.from_bytes(data[TOTAL_AT : TOTAL_AT + 8], "big")
    assert field & ((1 << 36) - 1) == len(x)
    data[TOTAL_AT : TOTAL_AT + 8] = (field & ~((1 << 36) - 1)).to_bytes(8, "big")
    streamed = path / f"streamed_{seconds}_{channels}.flac"
    streamed.write_bytes(bytes(data))
    return whole, streamed


# 0.5 s: shorter than one read block (the whole file was refused); 4.1 s: several blocks and a partial last one
@pytest.mark.parametrize(("seconds", "channels"), [(0.5, 1), (4.1, 2)])
def test_a_flac_of_unknown_length_decodes_whole(tmp_path, seconds, channels):
    whole, streamed = _streamed(tmp_path, seconds, channels)
    with sf.SoundFile(streamed) as f:
        assert f.frames == UNKNOWN_FRAMES  # what libsndfile makes of it
    for rate_hz in (RATE_HZ, 16000):
        want = decode(str(whole), rate_hz)
        np.testing.assert_array_equal(decode(str(streamed), rate_hz), want)
        np.testing.assert_array_equal(decode(streamed.as_uri(), rate_hz), want)
    assert len(decode(str(streamed), RATE_HZ)) == int(seconds * RATE_HZ)
    native = decode(str(whole), RATE_HZ)
    chunks = list(iter_chunks(str(streamed), RATE_HZ, chunk_s=1.0))
    np.testing.assert_array_equal(np.concatenate(chunks), native)
    np.testing.assert_array_equal(decode(str(streamed), RATE_HZ, max_duration_s=0.25), native[: RATE_HZ // 4])


def test_a_cut_flac_of_unknown_length_is_still_refused(tmp_path):
    _, streamed = _streamed(tmp_path, 4.1)
    data = streamed.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DecodeError, match=r"corrupt audio data in .*cut\.flac after \d+ frames: .*lost sync"):
        decode(str(cut), RATE_HZ)
