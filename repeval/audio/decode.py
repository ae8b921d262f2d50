"""Decode any soundfile-readable file (wav, flac, ogg, mp3) to mono float32 at a target rate.

Files are read and resampled block by block (soxr's streaming resampler). :func:`iter_chunks`
yields the audio as windows of about ``chunk_s`` seconds, so a multi-hour file never sits in
memory at once: at most one window and one read block are held. :func:`decode` returns the
whole signal (short clips, tools, tests).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import soundfile as sf
import soxr

#: frames read per block for streaming decode
BLOCK_FRAMES = 1 << 16

#: a trailing remainder shorter than this fraction of a window is merged into the last window
MIN_TAIL_FRACTION = 0.5

#: a sample beyond this magnitude (+36 dBFS) is not audio on the ±1 scale: a float file written with integer-scaled
#: samples (a 16-bit recording peaks in the thousands), which a model would hear tens of dB too loud. Mastered or
#: mixed float audio exceeds ±1 by a few dB at most; integer formats cannot exceed it.
MAX_PEAK = 64.0


class DecodeError(RuntimeError):
    """A file could not be decoded; the message says why (it becomes an error record)."""


# --- reliability (issue 9): refuse what is not a regular file before opening it -----------------
def _check_regular_file(path: str) -> None:
    """Opening a FIFO for reading blocks until a writer appears (a hung worker): refuse FIFOs,
    devices and directories; name dangling symlinks and symlink loops instead of libsndfile's
    "System error"."""
    import os
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DecodeError(f"file not found: {path} (or a dangling symlink)") from None
    except OSError as exc:
        raise DecodeError(f"cannot open {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise DecodeError(f"not a regular file (a directory, FIFO or device): {path}")


# --- end reliability ------------------------------------------------------------------------------


def wav_shortfall(fh: Any, size: int) -> tuple[int, int] | None:
    """``(bytes the data chunk declares, bytes the file holds after its header)`` when a RIFF/WAVE file's data
    chunk is cut short (a copy or download that stopped), else ``None``. Reads chunk headers only; ``fh`` is a
    seekable binary file of ``size`` bytes (left at its start)."""
    try:
        fh.seek(0)
        head = fh.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        for _ in range(64):  # fmt, LIST, fact, … then data
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, n = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                held = size - pos - 8
                # 0 and 0xFFFFFFFF: a stream whose writer never went back to fill in the size
                return (n, held) if n not in (0, 0xFFFFFFFF) and n > held else None
            pos += 8 + n + (n & 1)
        return None
    finally:
        fh.seek(0)


#: an MP3 holding less than this fraction of the stream size its Xing/Info header declares is truncated (mpg123
#: itself warns from a 1% difference on)
MP3_HELD_FRACTION = 0.99


def mp3_shortfall(fh: Any, size: int) -> tuple[int, int] | None:
    """``(bytes the Xing/Info header declares, bytes the file holds after its ID3v2 tag)`` when an MP3 whose first
    frame carries a Xing or Info header (LAME, ffmpeg and most encoders write one) with a stream size holds less
    than :data:`MP3_HELD_FRACTION` of it — a copy or download that stopped — else ``None``. libsndfile decodes such
    a file as shorter audio without a word. Reads the ID3v2 header and the first frame's start only; ``fh`` is a
    seekable binary file of ``size`` bytes (left at its start)."""
    try:
        fh.seek(0)
        frame = fh.read(64)  # one read for a file without an ID3v2 tag (a remote file: one request)
        start = 0
        if len(frame) >= 10 and frame[:3] == b"ID3":  # ID3v2: a syncsafe size, plus a footer when flagged
            start = (
                10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(frame[6:10])) + 10 * bool(frame[5] & 0x10)
            )
            fh.seek(start)
            frame = fh.read(64)
        if len(frame) < 4 or frame[0] != 0xFF or frame[1] & 0xE0 != 0xE0:  # not an MPEG audio frame
            return None
        for tag in (b"Xing", b"Info"):  # after the side information: 13, 21 or 36 bytes in (+2 with a CRC)
            at = frame.find(tag, 4)
            if at < 0 or len(frame) < at + 16:
                continue
            flags = struct.unpack(">I", frame[at + 4 : at + 8])[0]
            if not flags & 2:  # no stream size
                return None
            at += 8 + 4 * (flags & 1)  # after the frame count
            declared = struct.unpack(">I", frame[at : at + 4])[0]
            held = size - start
            return (declared, held) if held < MP3_HELD_FRACTION * declared else None
        return None
    finally:
        fh.seek(0)


def _shortfall(fh: Any, size: int) -> tuple[str, int, int] | None:
    """``(format, declared bytes, held bytes)`` of a WAV or MP3 file whose header says it was cut short."""
    for name, check in (("WAV", wav_shortfall), ("MP3", mp3_shortfall)):
        short = check(fh, size)
        if short is not None:
            return (name, *short)
    return None


def _refuse_truncated(path: str, short: tuple[str, int, int] | None) -> None:
    if short is not None:
        kind, declared, held = short
        raise DecodeError(
            f"truncated {kind}: {path} declares {declared:,} bytes of audio but holds {held:,} — the file was cut "
            "short (copy or download it again)"
        )


def _open(path: str) -> sf.SoundFile:
    if "://" not in path:
        _check_regular_file(path)  # reliability (issue 9)
    try:
        if "://" in path:
            import pyarrow.fs as pafs

            fs, p = pafs.FileSystem.from_uri(path)
            fh = fs.open_input_file(p)
            _refuse_truncated(path, _shortfall(fh, fh.size()))
            return sf.SoundFile(fh)
        with open(path, "rb") as local:
            _refuse_truncated(path, _shortfall(local, os.fstat(local.fileno()).st_size))
        return sf.SoundFile(path)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(f"file not found: {path}") from None
    except PermissionError:
        raise DecodeError(f"permission denied: {path}") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from None


def mixdown(block: np.ndarray) -> np.ndarray:
    """Mono float32 from a ``(frames, channels)`` float32 block (a copy): the channels' mean, bit-identical to
    ``block.mean(axis=1, dtype=np.float32)``.

    numpy's reduction along the short channel axis runs its inner loop once per frame: ~1 ms per 65,536 stereo
    frames, most of a WAV's decode time. Column by column it is ~20× faster (a 3-minute stereo track: ~6 ms
    instead of ~120 ms). Below 8 channels numpy adds them in order onto +0.0, then divides by their count, as
    done here; from 8 on it sums pairwise, so those blocks keep numpy's mean."""
    n_channels = block.shape[1]
    if n_channels == 1:
        return block[:, 0].copy()
    if n_channels >= 8:
        return block.mean(axis=1, dtype=np.float32)
    mono = block[:, 0] + np.float32(0.0)  # a new array; -0.0 becomes +0.0 as in numpy's sum
    for c in range(1, n_channels):
        mono += block[:, c]
    mono /= np.float32(n_channels)
    return mono


def iter_blocks(path: str, sample_rate_hz: int, max_duration_s: float | None = None) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at ``sample_rate_hz`` (block sizes vary; empty blocks are skipped).

    Raises :class:`DecodeError` (possibly after some blocks were yielded, for data corrupt
    part-way), for files without samples, for non-finite samples and for samples far beyond full scale
    (:data:`MAX_PEAK`).
    """
    f = _open(path)
    total = 0
    with f:
        sr = f.samplerate
        if sr <= 0:
            raise DecodeError(f"invalid sample rate {sr} in {path}")
        limit = None if max_duration_s is None else int(max_duration_s * sr)
        resampler = None if sr == sample_rate_hz else soxr.ResampleStream(sr, sample_rate_hz, 1, dtype="float32")
        read = 0
        while True:
            n = BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - read)
            if n <= 0:
                break
            try:
                block = f.read(n, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DecodeError(f"corrupt audio data in {path} after {read} frames: {exc}") from None
            if len(block) == 0:
                break
            # a mono file's one column is already a contiguous array of its own (the block is new each read)
            mono = block[:, 0] if block.shape[1] == 1 else mixdown(block)
            _check_samples(mono, path, read)  # before the resampler, which holds a block's end until the next
            read += len(block)
            out = resampler.resample_chunk(mono) if resampler else mono
            if len(out):
                total += len(out)
                yield out
        if resampler is not None:
            out = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(out):
                total += len(out)
                yield out
    if total == 0:
        if read:  # a few frames that make less than one sample at the target rate
            raise DecodeError(
                f"no audio samples in {path}: its {read} frame(s) at {sr} Hz make less than one sample at "
                f"{sample_rate_hz} Hz (a file too short to embed)"
            )
        raise DecodeError(f"no audio samples in {path} (zero-length file)")


def _check_samples(mono: np.ndarray, path: str, at: int) -> None:
    """Refuse a block holding NaN/inf or samples beyond :data:`MAX_PEAK` (``at``: the frame it starts at)."""
    if not len(mono):
        return
    hi, lo = float(mono.max()), float(mono.min())  # numpy's max/min propagate NaN
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise DecodeError(f"non-finite samples (NaN/inf) in {path} (from frame {at} on)")
    peak = max(hi, -lo)
    if peak > MAX_PEAK:
        raise DecodeError(
            f"samples reach {peak:.4g} in {path} (from frame {at} on), far beyond full scale (±1): a float file "
            "written with integer-scaled samples? — rescale it to ±1 (a 16-bit scale: divide by 32768)"
        )


def iter_chunks(
    path: str, sample_rate_hz: int, chunk_s: float | None, max_duration_s: float | None = None
) -> Iterator[np.ndarray]:
    """Yield mono float32 windows of ``chunk_s`` seconds (the whole file when ``chunk_s`` is None).

    A remainder shorter than half a window is appended to the last window, so every window holds
    between 0.5 and 1.5 × ``chunk_s`` seconds (a file shorter than that is one window). Memory:
    at most 1.5 windows plus one read block.
    """
    if chunk_s is None or not np.isfinite(chunk_s):
        yield decode(path, sample_rate_hz, max_duration_s)
        return
    yield from chunk_blocks(iter_blocks(path, sample_rate_hz, max_duration_s), sample_rate_hz, chunk_s)


def window_sizes(sample_rate_hz: int, chunk_s: float, hop: int = 1, min_size: int = 0) -> tuple[int, int]:
    """``(samples per window, samples from which a track has more than one window)`` for windows of ``chunk_s``
    seconds whose boundaries fall on multiples of ``hop`` samples (a model's frame hop; the window rounded down to
    whole hops) and that hold at least ``min_size`` samples. A track is cut where it was without ``hop``: one window
    below 1.5 × ``chunk_s``, the last window taking a remainder of at least half a window."""
    nominal = max(1, round(chunk_s * sample_rate_hz))
    hop = max(1, int(hop))
    size = max(hop, nominal // hop * hop, -(-int(min_size) // hop) * hop)
    # emit a window only when what follows it is long enough
    return size, max(nominal + int(MIN_TAIL_FRACTION * nominal), size + int(MIN_TAIL_FRACTION * size))


def chunk_blocks(
    blocks: Iterable[np.ndarray], sample_rate_hz: int, chunk_s: float, hop: int = 1, min_size: int = 0
) -> Iterator[np.ndarray]:
    """Cut a stream of audio blocks into the windows :func:`iter_chunks` yields: windows of ``chunk_s`` seconds from
    the start (on a grid of ``hop`` samples: :func:`window_sizes`), the last one taking a remainder shorter than half
    a window. Where the windows fall depends on the total length only, not on how the blocks are cut (one block
    holding a whole track gives the same windows)."""
    size, hold = window_sizes(sample_rate_hz, chunk_s, hop, min_size)
    pending: list[np.ndarray] = []
    n_pending = 0
    for block in blocks:
        pending.append(block)
        n_pending += len(block)
        if n_pending < hold:
            continue
        buf = pending[0] if len(pending) == 1 else np.concatenate(pending)  # (a whole track: not copied)
        while len(buf) >= hold:
            yield buf[:size].copy()
            buf = buf[size:]
        pending, n_pending = [buf], len(buf)
    if n_pending:
        yield np.concatenate(pending).astype(np.float32, copy=False)


def decode(path: str, sample_rate_hz: int, max_duration_s: float | None = None) -> np.ndarray:
    """Return mono float32 audio at ``sample_rate_hz`` (optionally truncated)."""
    blocks = list(iter_blocks(path, sample_rate_hz, max_duration_s))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return audio.astype(np.float32, copy=False)
