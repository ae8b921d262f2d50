"""Decode any soundfile-readable file (wav, flac, ogg, mp3) to mono float32 at a target rate.

Files are read and resampled block by block (soxr's streaming resampler). :func:`iter_chunks`
yields the audio as windows of about ``chunk_s`` seconds, so a multi-hour file never sits in
memory at once: at most one window and one read block are held. :func:`decode` returns the
whole signal (short clips, tools, tests). Where a file opens, :mod:`repeval.audio.integrity` checks it is whole
(cut short, zero-filled, a VBR MP3 without a Xing header); what it finds is refused with the fix.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import soundfile as sf
import soxr

# the checks that a file is whole (those that lived here before integrity.py stay importable from here: `X as X`)
from repeval.audio.empty import no_audio
from repeval.audio.integrity import MP3_HELD_FRACTION as MP3_HELD_FRACTION
from repeval.audio.integrity import MP3_TAIL_BYTES as MP3_TAIL_BYTES
from repeval.audio.integrity import mp3_shortfall as mp3_shortfall
from repeval.audio.integrity import mpeg_frame_bytes as mpeg_frame_bytes
from repeval.audio.integrity import refusal, shortfall
from repeval.audio.integrity import wav_shortfall as wav_shortfall
from repeval.audio.ogg_end import OGG_UNENDED, unended_ogg
from repeval.audio.partial import CUT_CAUSES, DEFAULT_TRUNCATED_AUDIO, Partial, TruncatedAudio, cut
from repeval.audio.tail import zeros_start
from repeval.words import counted

log = logging.getLogger(__name__)

#: frames read per block for streaming decode
BLOCK_FRAMES = 1 << 16

#: a trailing remainder shorter than this fraction of a window is merged into the last window
MIN_TAIL_FRACTION = 0.5

#: a sample beyond this magnitude (+36 dBFS) is not audio on the ±1 scale: a float file written with integer-scaled
#: samples (a 16-bit recording peaks in the thousands), which a model would hear tens of dB too loud. Mastered or
#: mixed float audio exceeds ±1 by a few dB at most; integer formats cannot exceed it.
MAX_PEAK = 64.0


#: libsndfile's length of a file whose length it does not know (a FLAC whose STREAMINFO holds 0 samples: written by a
#: streaming encoder, e.g. ``ffmpeg … -f flac -`` to a pipe)
UNKNOWN_FRAMES = 0x7FFFFFFFFFFFFFFF


#: an Ogg file without its end (:data:`~repeval.audio.ogg_end.OGG_UNENDED`) whose read fails no earlier than this many
#: seconds before the length libsndfile gives it keeps what was read: libsndfile's Opus reader reads such a file's
#: last page — one that trims the stream's last packet, as only a page flagged as its end may — up to its pre-skip
#: (6.5 ms from libopus) short of that length and then fails ("file is malformed"); a packet is at most 120 ms
UNENDED_SLACK_S = 0.2


def read_block(f: sf.SoundFile, n: int, at: int = 0, slack_frames: int | None = None) -> np.ndarray:
    """Up to ``n`` frames of ``f`` as a float32 ``(frames, channels)`` block (fewer at its end). A file of unknown
    length (:data:`UNKNOWN_FRAMES`) is read with libsndfile's own read: soundfile seeks to where each read ended, and
    that seek fails at the end of such a file ("Internal psf_fseek() failed"), which would lose its last block — or
    turn the whole file into an error when it is shorter than a block. So is a file read with ``slack_frames``
    (``at``: the frames read before), whose read error within its last ``slack_frames`` frames ends it instead of
    being raised, keeping the frames that read got (soundfile drops them): an Ogg file without its end
    (:data:`UNENDED_SLACK_S`)."""
    if f.frames != UNKNOWN_FRAMES and slack_frames is None:
        return f.read(n, dtype="float32", always_2d=True)
    block = np.empty((n, f.channels), np.float32)
    got = sf._snd.sf_readf_float(f._file, sf._ffi.cast("float *", block.ctypes.data), n)  # type: ignore[attr-defined]
    code = sf._snd.sf_error(f._file)  # type: ignore[attr-defined]
    if code and (slack_frames is None or at + got < f.frames - slack_frames):
        raise sf.LibsndfileError(code)
    return block[:got]


class DecodeError(RuntimeError):
    """A file could not be decoded; the message says why (it becomes an error record)."""


def error_reason(exc: BaseException) -> str:
    """The ``reason`` of the error record a file that raised ``exc`` while decoding becomes: a :class:`DecodeError`'s
    message (it names the file and the fix), else the exception's type and message (what the decode stage and
    ``repeval data check`` both say)."""
    return str(exc) if isinstance(exc, DecodeError) else f"{type(exc).__name__}: {exc}"


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


#: the last file decoded only in part (:mod:`repeval.audio.partial`) each thread warned about
_warned = threading.local()


def _warn_once(path: str, message: str) -> None:
    """Log ``message`` about the file at ``path`` unless this thread's last such warning was about it
    (``repeval data check --decode`` opens a file twice)."""
    if getattr(_warned, "path", None) != path:
        _warned.path = path
        log.warning("%s", message)


def _checked_open(
    path: str, short: tuple[str, int, int] | None, source: Any, truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO
) -> tuple[sf.SoundFile, Partial | None]:
    """``(sf.SoundFile(source), what of it is decoded when only part of it is)`` for the file at ``path``, or
    :class:`DecodeError` naming the fix when ``short``
    (:func:`repeval.audio.integrity.shortfall`) says it was cut short, zero-filled or damaged
    (:func:`~repeval.audio.integrity.refusal`), or says it is a VBR MP3 without a Xing header (``"MP3 VBR"``:
    samples its frames hold, samples per frame) and libsndfile's length — its guess from the first frame's bitrate,
    where its reads stop — falls short of those samples by more than two frames (an encoder's delay and padding); or
    when the file opens with a length of 0 (no frames are read past its length: the run would decode no sample of it,
    :func:`repeval.audio.empty.no_audio`). An Ogg file without its end (:data:`~repeval.audio.ogg_end.OGG_UNENDED`:
    cut, or a live stream's recording) opens with what its whole pages hold and a warning, logged once when a thread
    opens it twice in a row (:func:`~repeval.audio.ogg_end.unended_ogg`); refused when they hold no audio. With
    ``truncated`` ``"decode"`` (``run.truncated_audio``), a WAV, MP3 or FLAC cut short
    (:data:`~repeval.audio.partial.CUT_CAUSES`) opens too, with a warning logged likewise: its whole frames are
    decoded (:class:`~repeval.audio.partial.Partial`)."""
    cut_short = short if short is not None and truncated == "decode" and short[0] in CUT_CAUSES else None
    message = None if cut_short is not None else refusal(path, short)
    if message is not None:
        raise DecodeError(message)
    unended = short if short is not None and short[0] in OGG_UNENDED else None
    if short is not None and short[0] == "MP3 padded":  # libsndfile would fail on the zeros after its last frame
        source = _Head(open(path, "rb") if source is path else source, short[2])
    try:
        f = sf.SoundFile(source)
    except sf.LibsndfileError:
        if unended is not None:  # cut inside its header pages ("Supported file format but file is malformed")
            raise DecodeError(unended_ogg(path, unended, None)) from None
        raise
    if f.frames == 0:
        fmt = f.format
        f.close()
        if cut_short is not None:
            raise DecodeError(refusal(path, cut_short) or no_audio(path, fmt, short))
        raise DecodeError(no_audio(path, fmt, short) if unended is None else unended_ogg(path, unended, None))
    partial = None
    if unended is not None:
        _warn_once(path, unended_ogg(path, unended, f.frames / max(f.samplerate, 1)))
        partial = Partial("Ogg", None, int(UNENDED_SLACK_S * f.samplerate))
    elif cut_short is not None:
        partial = cut(*cut_short, f.frames, f.samplerate)
        _warn_once(path, partial.warning(path))
    if short is not None and short[0] == "MP3 VBR" and f.frames < short[1] - 2 * short[2]:
        f.close()
        raise DecodeError(
            f"VBR MP3 without a Xing header: {path} decodes to {f.frames:,} of its {short[1]:,} samples (libsndfile "
            "cannot tell the length of such a file) — re-encode it, or add a Xing header (e.g. `vbrfix` or "
            "`ffmpeg -i in.mp3 -c copy out.mp3`)"
        )
    return f, partial


class _Head:
    """The first ``size`` bytes of the seekable binary file ``fh``, a file soundfile reads through its virtual I/O: an
    MP3 whose frames are followed by more zero bytes than libmpg123 skips (``"MP3 padded"``,
    :data:`repeval.audio.integrity.MPG123_RESYNC_BYTES`) is read up to its last frame. ``fh`` is closed when this is
    freed, with the :class:`soundfile.SoundFile` reading it (which closes no file object it reads)."""

    def __init__(self, fh: Any, size: int) -> None:
        self._fh, self._size, self._at = fh, size, 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._at = max(0, (0, self._at, self._size)[whence] + offset)
        return self._at

    def tell(self) -> int:
        return self._at

    def __del__(self) -> None:
        self._fh.close()

    def read(self, n: int = -1) -> bytes:
        n = self._size - self._at if n < 0 else min(n, self._size - self._at)
        if n <= 0:
            return b""
        self._fh.seek(self._at)
        data = self._fh.read(n)
        self._at += len(data)
        return bytes(data)


def _raw_file(path: str) -> tuple[Any, int]:
    """``(seekable binary file, its size in bytes)`` of the audio at ``path``: a local path, or a URI of any pyarrow
    filesystem (``s3://``, ``file://``, ...)."""
    if "://" in path:
        from repeval.cloud_reach import filesystem

        fs, p = filesystem(path)  # gs://: a minute of retries, not 15
        fh = fs.open_input_file(p)
        return fh, fh.size()
    local = open(path, "rb")  # the caller closes it
    return local, os.fstat(local.fileno()).st_size


def _open(path: str, truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO) -> sf.SoundFile:
    """The file at ``path`` opened for decoding, once it passed the checks made where a file opens
    (:func:`_checked_open`; ``truncated``: ``run.truncated_audio``), else :class:`DecodeError` naming the fix."""
    return _open_noting(path, truncated)[0]


def _open_noting(path: str, truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO) -> tuple[sf.SoundFile, Partial | None]:
    """:func:`_open`, and what of the file is decoded when only part of it is (an Ogg file without its end, read with
    :data:`UNENDED_SLACK_S`; a file cut short under ``truncated`` ``"decode"``), else ``None``."""
    if "://" not in path:
        _check_regular_file(path)  # reliability (issue 9)
    try:
        fh, size = _raw_file(path)
        if size == 0:  # libsndfile's "Format not recognised" did not say the file holds nothing
            fh.close()
            raise DecodeError(
                f"empty file (0 bytes): {path} — it was never written (a copy, download or export that failed): copy, "
                "download or export it again"
            )
        if "://" in path:  # libsndfile reads the remote file through the handle the checks read
            return _checked_open(path, shortfall(fh, size), fh, truncated)
        with fh:
            short = shortfall(fh, size)
        return _checked_open(path, short, path, truncated)
    except DecodeError:
        raise
    except FileNotFoundError:
        raise DecodeError(f"file not found: {path}") from None
    except PermissionError:
        raise DecodeError(f"permission denied: {path}") from None
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        said = str(exc).removeprefix(f"Error opening {path!r}: ")  # libsndfile's, the path said twice
        # a file libsndfile cannot open: not audio it reads, or damaged beyond what the checks above name
        fix = UNREADABLE_FIX if isinstance(exc, sf.LibsndfileError) else ""
        said = said.rstrip(".") if fix else said
        raise DecodeError(f"cannot decode {path}: {said}{fix}") from None


#: what a file libsndfile cannot open needs (a DecodeError's reason, an error record's)
UNREADABLE_FIX = (
    " — not audio libsndfile reads (WAV, FLAC, Ogg, MP3, AIFF…) or damaged: replace it, or convert it to one of those "
    "(`ffmpeg -i FILE FILE.flac`), then `--retry-errors` computes its track again"
)


#: a file that fails to decode and ends in at least this many zero bytes is named zero-filled (:func:`_why_corrupt`)
CORRUPT_ZERO_TAIL_BYTES = 1024


def _why_corrupt(path: str) -> str:
    """What to add to the reason of a file libsndfile fails to read part-way: that it ends in a run of zero bytes —
    a download or copy that preallocated it at its full size and stopped (FLAC: "lost sync"; MP3: libmpg123 gives up
    after 1,024 bytes that are not a frame: "Unspecified internal error") — or else that it is damaged; each with the
    fix. Reads the file's tail again (a failing file only)."""
    try:
        fh, size = _raw_file(path)
        with fh:
            zeros = size - zeros_start(fh, size)
    except (OSError, ValueError):
        zeros = size = 0
    if zeros >= CORRUPT_ZERO_TAIL_BYTES:
        return (
            f" — it ends in {zeros:,} zero bytes ({zeros / size:.0%} of the file): it was not fully written (a "
            "download or copy that stopped; copy or download it again)"
        )
    return " — the file is damaged or incomplete (copy or download it again, or re-encode it from its source)"


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


def iter_blocks(
    path: str,
    sample_rate_hz: int,
    max_duration_s: float | None = None,
    truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
    notes: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at ``sample_rate_hz`` (block sizes vary; empty blocks are skipped).

    Raises :class:`DecodeError` (possibly after some blocks were yielded, for data corrupt
    part-way), for files without samples, for non-finite samples and for samples far beyond full scale
    (:data:`MAX_PEAK`). ``truncated`` (``run.truncated_audio``): what becomes of a file cut short
    (:mod:`repeval.audio.partial`). A file decoded only in part (cut short, under ``"decode"``; an Ogg file without its
    end) appends its ``audio_note`` to ``notes`` once its last block is yielded.
    """
    f, partial = _open_noting(path, truncated)
    total = 0
    with f:
        sr = f.samplerate
        if sr <= 0:
            raise DecodeError(f"invalid sample rate {sr} in {path}")
        slack = partial.slack_frames if partial is not None else None
        limit = None if max_duration_s is None else int(max_duration_s * sr)
        resampler = None if sr == sample_rate_hz else soxr.ResampleStream(sr, sample_rate_hz, 1, dtype="float32")
        read = 0
        while True:
            n = BLOCK_FRAMES if limit is None else min(BLOCK_FRAMES, limit - read)
            if n <= 0:
                break
            try:
                block = read_block(f, n, read, slack)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise DecodeError(
                    f"corrupt audio data in {path} after {read} frames: {exc}{_why_corrupt(path)}"
                ) from None
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
                f"no audio samples in {path}: its {counted(read, 'frame')} at {sr} Hz make{'s' * (read == 1)} less than one sample at "
                f"{sample_rate_hz} Hz (a file too short to embed)"
            )
        raise DecodeError(
            f"no audio samples: {path} decodes to 0 audio frames (an empty or damaged file) — re-export it from its "
            "source, or copy or download it again"
        )
    if partial is not None and notes is not None:
        notes.append(partial.note(read / sr))


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
    path: str,
    sample_rate_hz: int,
    chunk_s: float | None,
    max_duration_s: float | None = None,
    truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
    notes: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield mono float32 windows of ``chunk_s`` seconds (the whole file when ``chunk_s`` is None).

    A remainder shorter than half a window is appended to the last window, so every window holds
    between 0.5 and 1.5 × ``chunk_s`` seconds (a file shorter than that is one window). Memory:
    at most 1.5 windows plus one read block. ``truncated``, ``notes``: :func:`iter_blocks`'.
    """
    if chunk_s is None or not np.isfinite(chunk_s):
        yield decode(path, sample_rate_hz, max_duration_s, truncated, notes)
        return
    blocks = iter_blocks(path, sample_rate_hz, max_duration_s, truncated, notes)
    yield from chunk_blocks(blocks, sample_rate_hz, chunk_s)


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


def decode(
    path: str,
    sample_rate_hz: int,
    max_duration_s: float | None = None,
    truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Return mono float32 audio at ``sample_rate_hz`` (optionally truncated: ``max_duration_s``). ``truncated``,
    ``notes``: :func:`iter_blocks`'."""
    blocks = list(iter_blocks(path, sample_rate_hz, max_duration_s, truncated, notes))
    audio = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
    return audio.astype(np.float32, copy=False)
