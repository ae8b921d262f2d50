"""A corpus of bad (and oddly shaped but valid) audio files for reliability tests.

:func:`make_corpus` writes one file per kind into a folder and returns, for each, whether the
pipeline must embed it (``valid``) or record it in the errors table, and a fragment of the
error reason it must give. Everything is generated, small and fast; the 3-hour file is a
*sparse* 1 kHz 16-bit WAV (21.6 MB logical size, a few kB on disk) with a tone at both ends.

Decisions (what is an error and what is audio):

- errors: empty file, truncated header, truncated FLAC data (its frames end before the samples its STREAMINFO
  declares: refused where it opens; the decoder would lose sync), a WAV whose data
  chunk is cut short (libsndfile would read the frames that are there; the size the header declares
  says the file is incomplete — a copy or download that stopped — so it is refused rather than embedded
  as shorter audio; so is an MP3 holding less than the stream size its Xing/Info header declares, or, without such
  a header, ending inside an audio frame), an MP3, Ogg or FLAC whose second
  half is zeros (a download or copy that preallocated the file at its full size and stopped: the MP3 and the Ogg
  are refused before decoding — libsndfile would decode the Ogg as shorter audio —, the FLAC loses sync and the
  reason says it ends in zeros), non-audio bytes behind a ``.wav`` or ``.flac`` extension, a valid header with zero frames, NaN or inf float samples, a dangling symlink, a FIFO, a directory named ``*.wav``, a symlink loop;
- audio: all-silent, 8 channels (down-mixed), 1 kHz and 192 kHz (resampled), a 3-hour file
  (streamed in windows), FLAC content behind a ``.wav`` name (the content decides), a whole MP3, a WAV whose second
  half is zeros (zeros are valid samples: silence; nothing tells it from a recording that ends in silence), an Ogg
  file ending inside a page (nothing tells it from a live stream's recording that stopped: the audio its whole pages
  hold is decoded, with a warning).

"Unreadable path": the tests run as root, for whom ``chmod 000`` changes nothing, so the
unreadable kinds are paths that cannot be opened as a regular file by anyone: a dangling
symlink, a FIFO (opening one for reading blocks until a writer appears — the decoder must refuse
it rather than hang) and a directory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from repeval.audio.integrity import mpeg_frame_bytes

GOOD_RATE_HZ = 8000


@dataclass(frozen=True)
class BadFile:
    kind: str
    path: Path
    #: the pipeline must embed it (True) or record an error (False)
    valid: bool
    #: a fragment the error reason must contain (lower case; empty for valid kinds)
    reason: str = ""
    #: audio duration in seconds for valid kinds (after any truncation)
    seconds: float = 0.0


def tone(seconds: float, sample_rate_hz: int, freq_hz: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A sine plus a little seeded noise, float32, shape ``(n,)`` or ``(n, channels)``."""
    n = round(seconds * sample_rate_hz)
    t = np.arange(n) / sample_rate_hz
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * freq_hz * t) + 0.01 * rng.standard_normal(n)
    x = x.astype(np.float32)
    if channels > 1:
        x = np.stack([x * (1 - 0.05 * c) for c in range(channels)], axis=1)
    return x


def write_good(
    path: Path, seconds: float = 1.0, freq_hz: float = 440.0, sample_rate_hz: int = GOOD_RATE_HZ, seed: int = 0
) -> Path:
    sf.write(path, tone(seconds, sample_rate_hz, freq_hz, seed=seed), sample_rate_hz, subtype="PCM_16")
    return path


def _wav_header(n_frames: int, sample_rate_hz: int, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    data = n_frames * block
    return (
        b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate_hz, sample_rate_hz * block, block, bits)
        + b"data" + struct.pack("<I", data)
    )  # fmt: skip


def write_sparse_long_wav(path: Path, seconds: float, sample_rate_hz: int = 1000) -> Path:
    """A long 16-bit mono WAV written sparsely: header, 1 s of tone, a hole of zeros, 1 s of tone."""
    n = int(seconds * sample_rate_hz)
    edge = (tone(1.0, sample_rate_hz, 100.0) * 32767).astype("<i2").tobytes()
    header = _wav_header(n, sample_rate_hz)
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(edge)
        fh.seek(len(header) + 2 * n - len(edge))
        fh.write(edge)
    return path


# ------------------------------------------------------------------------ the kinds


def _empty(d: Path) -> Path:
    p = d / "empty.wav"
    p.write_bytes(b"")
    return p


def _truncated_header(d: Path) -> Path:
    p = d / "truncated_header.wav"
    write_good(p)
    p.write_bytes(p.read_bytes()[:20])
    return p


def _truncated_data_flac(d: Path) -> Path:
    p = d / "truncated_data.flac"
    sf.write(p, tone(2.0, GOOD_RATE_HZ), GOOD_RATE_HZ)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def _truncated_data_wav(d: Path) -> Path:
    p = d / "truncated_data.wav"
    write_good(p, seconds=2.0)
    b = p.read_bytes()
    p.write_bytes(b[: 44 + (len(b) - 44) // 2])  # half of the data chunk (1 s) stays
    return p


def _truncated_data_mp3(d: Path) -> Path:
    p = d / "truncated_data.mp3"
    sf.write(p, tone(2.0, GOOD_RATE_HZ), GOOD_RATE_HZ, format="MP3")  # LAME writes a Xing header: the stream's size
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    return p


def without_first_frame(mp3: bytes) -> bytes:
    """An MP3 (without an ID3v2 tag) minus its first frame. libsndfile's LAME writes a Xing/Info frame (no audio)
    first; without it a CBR file (``bitrate_mode="CONSTANT"``) is like the MP3s many encoders and rippers write: no
    stream size in its header. (libsndfile decodes a VBR file without one as short as its first frame's bitrate
    implies.)"""
    n = mpeg_frame_bytes(int.from_bytes(mp3[:4], "big"))
    if n is None:
        raise ValueError("not an MP3 starting with an MPEG audio frame")
    return mp3[n:]


def mp3_frame_starts(mp3: bytes) -> list[int]:
    """Where each frame of an MP3 without tags starts (walking the lengths its headers declare to its very end)."""
    starts: list[int] = []
    at, first = 0, int.from_bytes(mp3[:4], "big")
    while at < len(mp3):
        n = mpeg_frame_bytes(int.from_bytes(mp3[at : at + 4], "big"), first)
        if n is None or at + n > len(mp3):
            raise ValueError(f"no whole MPEG audio frame at byte {at} of {len(mp3)}")
        starts.append(at)
        at += n
    return starts


def _truncated_data_mp3_no_xing(d: Path) -> Path:
    p = d / "truncated_data_no_xing.mp3"
    sf.write(p, tone(2.0, GOOD_RATE_HZ), GOOD_RATE_HZ, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
    mp3 = without_first_frame(p.read_bytes())  # no stream size to check against: the last frame tells
    starts = mp3_frame_starts(mp3)
    p.write_bytes(mp3[: starts[len(starts) // 2] + 5])  # inside a frame, half the audio
    return p


def zero_filled(data: bytes, fraction: float = 0.5) -> bytes:
    """``data`` with its last ``fraction`` overwritten by zeros: a file a download or copy preallocated at its full
    size, that stopped."""
    keep = int(len(data) * (1 - fraction))
    return data[:keep] + bytes(len(data) - keep)


def _zero_filled_mp3(xing: bool) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"zero_filled{'' if xing else '_no_xing'}.mp3"
        rate_hz = 22050  # 3 s of it: some 16 kB VBR (Xing), 30 kB CBR — a zero tail of several frames
        if xing:  # LAME's Xing header: the stream's size, which the file has
            sf.write(p, tone(3.0, rate_hz), rate_hz, format="MP3")
            data = p.read_bytes()
        else:
            sf.write(p, tone(3.0, rate_hz), rate_hz, format="MP3", bitrate_mode="CONSTANT", compression_level=0.5)
            data = without_first_frame(p.read_bytes())
        p.write_bytes(zero_filled(data))
        return p

    return make


def write_ogg(path: Path, audio: np.ndarray, sample_rate_hz: int, subtype: str = "VORBIS") -> Path:
    """An Ogg Vorbis or Opus file written one second at a time (libsndfile 1.2 crashed writing a long stereo Ogg in
    one call)."""
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    with sf.SoundFile(path, "w", sample_rate_hz, channels, format="OGG", subtype=subtype) as f:
        for at in range(0, len(audio), sample_rate_hz):
            f.write(audio[at : at + sample_rate_hz])
    return path


def ogg_page_starts(ogg: bytes) -> list[int]:
    """Where each page of a whole Ogg file starts (walking the lengths its page headers declare to its very end)."""
    starts: list[int] = []
    at = 0
    while at < len(ogg):
        if ogg[at : at + 4] != b"OggS" or at + 27 > len(ogg):
            raise ValueError(f"no Ogg page at byte {at} of {len(ogg)}")
        starts.append(at)
        n_segments = ogg[at + 26]
        at += 27 + n_segments + sum(ogg[at + 27 : at + 27 + n_segments])
    if at != len(ogg):
        raise ValueError(f"the last Ogg page runs past the end ({at} of {len(ogg)} bytes)")
    return starts


def _truncated_ogg(d: Path) -> Path:
    p = write_ogg(d / "truncated.ogg", tone(3.0, 22050), 22050)  # some 20 kB of Vorbis, pages of about 4 kB
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # a download that stopped, or a live stream's recording: its whole pages
    return p


def vorbis_held_seconds(path: Path) -> float:
    """The seconds of audio the whole pages of an Ogg Vorbis file hold (cut short: those before the cut), from the last
    whole page's granule position (the samples decoded by its end) and the rate in the identification header."""
    data = path.read_bytes()
    rate_hz = struct.unpack("<I", data[28 + 12 : 28 + 16])[0]  # after the first page's header and one lacing byte
    at = granule = 0
    while at + 27 <= len(data) and data[at : at + 4] == b"OggS":
        n_segments = data[at + 26]
        end = at + 27 + n_segments + sum(data[at + 27 : at + 27 + n_segments])
        if end > len(data):
            break
        granule = max(granule, struct.unpack("<q", data[at + 6 : at + 14])[0])
        at = end
    return granule / rate_hz


def _zero_filled_ogg(d: Path) -> Path:
    p = d / "zero_filled.ogg"
    sf.write(p, tone(3.0, 22050), 22050, format="OGG")  # some 20 kB of Vorbis: a zero tail of several pages
    p.write_bytes(zero_filled(p.read_bytes()))
    return p


def _zero_filled_flac(d: Path) -> Path:
    p = d / "zero_filled.flac"
    sf.write(p, tone(2.0, GOOD_RATE_HZ), GOOD_RATE_HZ)
    p.write_bytes(zero_filled(p.read_bytes()))
    return p


def _zero_filled_wav(d: Path) -> Path:
    p = d / "zero_filled.wav"
    write_good(p, seconds=2.0)
    p.write_bytes(zero_filled(p.read_bytes()))
    return p


def _mp3(d: Path) -> Path:
    p = d / "whole.mp3"
    sf.write(p, tone(1.0, GOOD_RATE_HZ, 660.0), GOOD_RATE_HZ, format="MP3")
    return p


def _garbage(ext: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"not_audio.{ext}"
        p.write_bytes(b"<html><body>404 Not Found</body></html>\n" + os.urandom(2048))
        return p

    return make


def _zero_frames(d: Path) -> Path:
    p = d / "zero_frames.wav"
    sf.write(p, np.zeros(0, np.float32), GOOD_RATE_HZ, subtype="PCM_16")
    return p


def _silent(d: Path) -> Path:
    p = d / "silent.wav"
    sf.write(p, np.zeros(2 * GOOD_RATE_HZ, np.float32), GOOD_RATE_HZ, subtype="PCM_16")
    return p


def _non_finite(value: float, name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"{name}.wav"
        x = tone(1.0, GOOD_RATE_HZ)
        x[len(x) // 2 :: 97] = value
        sf.write(p, x, GOOD_RATE_HZ, subtype="FLOAT")
        return p

    return make


def _channels8(d: Path) -> Path:
    p = d / "channels8.wav"
    sf.write(p, tone(1.0, GOOD_RATE_HZ, 330.0, channels=8), GOOD_RATE_HZ, subtype="PCM_16")
    return p


def _rate(rate: int) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / f"rate_{rate}hz.wav"
        sf.write(p, tone(1.0, rate, min(200.0, rate / 4)), rate, subtype="PCM_16")
        return p

    return make


def _three_hours(d: Path) -> Path:
    return write_sparse_long_wav(d / "three_hours.wav", 3 * 3600.0)


def _flac_named_wav(d: Path) -> Path:
    p = d / "flac_content.wav"
    sf.write(p, tone(1.0, GOOD_RATE_HZ, 550.0), GOOD_RATE_HZ, format="FLAC")
    return p


def _dangling(d: Path) -> Path:
    p = d / "dangling.wav"
    p.symlink_to(d / "no_such_file.wav")
    return p


def _fifo(d: Path) -> Path:
    p = d / "fifo.wav"
    os.mkfifo(p)
    return p


def _directory(d: Path) -> Path:
    p = d / "directory.wav"
    p.mkdir()
    return p


def _symlink_loop(d: Path) -> Path:
    a, b = d / "loop_a.wav", d / "loop_b.wav"
    a.symlink_to(b)
    b.symlink_to(a)
    return a


#: kind → (writer, valid, error-reason fragment, seconds of audio for valid kinds — or what tells them from the file)
KINDS: dict[str, tuple[Callable[[Path], Path], bool, str, float | Callable[[Path], float]]] = {
    "empty_file": (_empty, False, "empty file (0 bytes)", 0),
    "truncated_header": (_truncated_header, False, "cannot decode", 0),
    "truncated_data_flac": (_truncated_data_flac, False, "truncated flac", 0),
    "not_audio_wav": (_garbage("wav"), False, "cannot decode", 0),
    "not_audio_flac": (_garbage("flac"), False, "cannot decode", 0),
    "zero_length_audio": (_zero_frames, False, "no audio samples", 0),
    "nan_samples": (_non_finite(np.nan, "nan_samples"), False, "non-finite", 0),
    "inf_samples": (_non_finite(np.inf, "inf_samples"), False, "non-finite", 0),
    "dangling_path": (_dangling, False, "not found", 0),
    "fifo": (_fifo, False, "not a regular file", 0),
    "directory": (_directory, False, "not a regular file", 0),
    "symlink_loop": (_symlink_loop, False, "symbolic link", 0),
    "all_silent": (_silent, True, "", 2.0),
    "channels_8": (_channels8, True, "", 1.0),
    "rate_1khz": (_rate(1000), True, "", 1.0),
    "rate_192khz": (_rate(192000), True, "", 1.0),
    "three_hours": (_three_hours, True, "", 3 * 3600.0),
    "flac_named_wav": (_flac_named_wav, True, "", 1.0),
    "truncated_data_wav": (_truncated_data_wav, False, "truncated wav", 0),
    "truncated_data_mp3": (_truncated_data_mp3, False, "truncated mp3", 0),
    "truncated_data_mp3_no_xing": (_truncated_data_mp3_no_xing, False, "truncated mp3", 0),
    "zero_filled_mp3": (_zero_filled_mp3(xing=True), False, "zero-filled mp3", 0),
    "zero_filled_mp3_no_xing": (_zero_filled_mp3(xing=False), False, "zero-filled mp3", 0),
    "zero_filled_ogg": (_zero_filled_ogg, False, "zero-filled ogg", 0),
    "truncated_ogg": (_truncated_ogg, True, "", vorbis_held_seconds),
    "zero_filled_flac": (_zero_filled_flac, False, "zero bytes", 0),
    "zero_filled_wav": (_zero_filled_wav, True, "", 2.0),
    "mp3": (_mp3, True, "", 1.0),
}


def make_corpus(directory: Path, kinds: list[str] | None = None) -> list[BadFile]:
    """Write the corpus (every kind, or ``kinds``) into ``directory``; returns one :class:`BadFile` per kind."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for kind in kinds or list(KINDS):
        if kind not in KINDS:
            raise ValueError(f"unknown bad-audio kind '{kind}'; valid: {', '.join(KINDS)}")
        make, valid, reason, seconds = KINDS[kind]
        path = make(directory)
        out.append(BadFile(kind, path, valid, reason, seconds(path) if callable(seconds) else seconds))
    return out
