"""Decode any soundfile-readable file (wav, flac, ogg, mp3) to mono float32 at a target rate.

Long files are read and resampled block by block (soxr's streaming resampler), so a
multi-hour file never has to be held at its native rate and channel count.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf
import soxr

#: frames read per block for streaming decode
BLOCK_FRAMES = 1 << 18


class DecodeError(RuntimeError):
    """A file could not be decoded; the message says why (it becomes an error record)."""


def _open(path: str) -> sf.SoundFile:
    if "://" in path:
        import pyarrow.fs as pafs

        fs, p = pafs.FileSystem.from_uri(path)
        return sf.SoundFile(fs.open_input_file(p))
    return sf.SoundFile(path)


def decode(path: str, sample_rate_hz: int, max_duration_s: float | None = None) -> np.ndarray:
    """Return mono float32 audio at ``sample_rate_hz`` (optionally truncated)."""
    try:
        f = _open(path)
    except FileNotFoundError:
        raise DecodeError(f"file not found: {path}") from None
    except PermissionError:
        raise DecodeError(f"permission denied: {path}") from None
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from None
    with f:
        sr = f.samplerate
        if sr <= 0:
            raise DecodeError(f"invalid sample rate {sr} in {path}")
        limit = None if max_duration_s is None else int(max_duration_s * sr)
        resampler = None if sr == sample_rate_hz else soxr.ResampleStream(sr, sample_rate_hz, 1, dtype="float32")
        chunks = []
        read = 0
        try:
            while True:
                n = BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - read)
                if n <= 0:
                    break
                block = f.read(n, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                read += len(block)
                mono = block.mean(axis=1, dtype=np.float32)
                chunks.append(resampler.resample_chunk(mono) if resampler else mono)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise DecodeError(f"corrupt audio data in {path} after {read} frames: {exc}") from None
        if resampler is not None:
            chunks.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if audio.size == 0:
        raise DecodeError(f"no audio samples in {path} (zero-length file)")
    if not np.isfinite(audio).all():
        raise DecodeError(f"non-finite samples (NaN/inf) in {path}")
    return audio.astype(np.float32, copy=False)
