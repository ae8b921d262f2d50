"""Checks that an audio file is whole, run where it opens, before libsndfile decodes it: libsndfile decodes a file cut
short (a WAV, MP3 or Ogg), zero-filled (an MP3 or Ogg preallocated at its full size by a download or copy that stopped)
or a VBR MP3 without a Xing header as shorter audio, without a word. Each check reads a header and the file's tail — a
few reads, a few microseconds (a remote file: a few range requests); :func:`shortfall` says which applies and what it
found, :func:`refusal` the reason a file it found wrong is refused with (the cause, what the file holds, the fix), and
:func:`repeval.audio.decode._checked_open` raises it — except for an Ogg file without its end, which a live stream's
recording is too: decoded as far as its whole pages go, with a warning (:mod:`repeval.audio.ogg_end`). Files with no
audio frames: :mod:`repeval.audio.empty`.
"""

from __future__ import annotations

import struct
from typing import Any

from repeval.audio.empty import flac_no_frames, no_audio
from repeval.audio.flac_end import flac_shortfall

# the Ogg checks moved to ogg_end.py, and what ends a file to tail.py: importable from here as before (`X as X`)
from repeval.audio.ogg_end import OGG_MAX_PAGE_BYTES as OGG_MAX_PAGE_BYTES
from repeval.audio.ogg_end import OGG_TAIL_BYTES as OGG_TAIL_BYTES
from repeval.audio.ogg_end import OGG_UNENDED as OGG_UNENDED
from repeval.audio.ogg_end import OGG_ZERO_TAIL_BYTES as OGG_ZERO_TAIL_BYTES
from repeval.audio.ogg_end import ogg_page_crc as ogg_page_crc
from repeval.audio.ogg_end import ogg_shortfall as ogg_shortfall
from repeval.audio.ogg_end import ogg_zero_tail as ogg_zero_tail
from repeval.audio.ogg_end import unended_ogg as unended_ogg
from repeval.audio.partial import DECODE_HINT
from repeval.audio.tail import audio_end, tags_and_zeros, tags_and_zeros_start
from repeval.audio.tail import zeros_start as zeros_start


def wav_shortfall(fh: Any, size: int) -> tuple[int, int] | None:
    """``(bytes the data chunk declares, bytes the file holds after its header)`` when a RIFF/WAVE file's data
    chunk is cut short (a copy or download that stopped), else ``None``. Reads chunk headers only; ``fh`` is a
    seekable binary file of ``size`` bytes (left at its start)."""
    found = wav_data_chunk(fh, size)
    return None if found is None else _wav_cut(*found)


def _wav_cut(declared: int, held: int) -> tuple[int, int] | None:
    """``(declared, held)`` when a data chunk declaring ``declared`` bytes, ``held`` after its header, is cut short."""
    # 0 and 0xFFFFFFFF: a stream whose writer never went back to fill in the size
    return (declared, held) if declared not in (0, 0xFFFFFFFF) and declared > held else None


def wav_data_chunk(fh: Any, size: int) -> tuple[int, int] | None:
    """``(bytes the data chunk declares, bytes the file holds after its header)`` of a RIFF/WAVE file, or ``None``
    when ``fh`` is none or its data chunk is not found. Reads chunk headers only; ``fh`` is a seekable binary file of
    ``size`` bytes (left at its start)."""
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
                return n, size - pos - 8
            pos += 8 + n + (n & 1)
        return None
    finally:
        fh.seek(0)


#: an MP3 holding less than this fraction of the stream size its Xing/Info header declares is truncated (mpg123
#: itself warns from a 1% difference on)
MP3_HELD_FRACTION = 0.99

#: bytes read from the end of an MP3 to find its last frames behind any tags and a zero-filled tail (one read; a
#: frame is at most 2,881 bytes long)
MP3_TAIL_BYTES = 16384

#: an MP3 whose audio ends in more zero bytes than this, and than two of the stream's longest frames, is zero-filled
#: (:func:`mp3_zero_tail`: a download or copy that preallocated the file at its full size and stopped). A whole file
#: cannot end in more than one frame's worth of zeros: every frame starts with a sync word (11 set bits), so a run of
#: zeros in the audio ends at the next frame's header — at most one frame's data (LAME's Info frame at 320 kbit/s and
#: 32 kHz holds 1,263 zero bytes, the longest run found in its files; its frames of silence, a few) plus the few
#: padding bytes some encoders add. Two frames leave a frame of margin; 4 KiB also covers padding to a disk sector or
#: block (2,048 or 4,096 bytes). What a shorter zero tail hides is at most a quarter second at 128 kbit/s (libmpg123
#: gives up after 1,024 bytes that are no frame: the read error then names the zeros,
#: :func:`repeval.audio.decode._why_corrupt`).
MP3_ZERO_TAIL_BYTES = 4096

#: libmpg123 gives up on an MP3 after this many bytes that are no frame ("Giving up resync after 1024 bytes"), and
#: libsndfile's read then fails ("Unspecified internal error"): a whole file padded with more zero bytes after its last
#: frame (up to :data:`MP3_ZERO_TAIL_BYTES`; a Xing/Info size stops the reads before them) is read up to that frame
#: (``"MP3 padded"``: :func:`mp3_shortfall`, :func:`repeval.audio.decode._checked_open`)
MPG123_RESYNC_BYTES = 1024

#: the longest frame any MPEG audio header declares (layer II, 160 kbit/s at 8 kHz, padded): the longest frame taken for
#: a free-format stream, whose headers do not tell its frame length
MPEG_MAX_FRAME_BYTES = 2881

# MPEG audio frame headers (ISO 11172-3, ISO 13818-3 and MPEG 2.5): kbit/s by bitrate index 1-14 for (MPEG-1?, layer)
_MPEG_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
#: sample rates by version bits (0: MPEG 2.5, 2: MPEG-2, 3: MPEG-1) and sample-rate index
_MPEG_RATES_HZ = {0: (11025, 12000, 8000), 2: (22050, 24000, 16000), 3: (44100, 48000, 32000)}
#: the header bits every frame of a stream shares with its first: sync, version, layer, sample rate
_MPEG_STREAM_BITS = 0xFFFE0C00


def mpeg_frame_bytes(header: int, first: int | None = None) -> int | None:
    """The length in bytes of the MPEG audio frame (MPEG-1/2/2.5, layer I/II/III) whose 32-bit header is ``header``
    — ``None`` when it is no valid header, a free-format one (its length is not in the header) or, given the
    stream's ``first`` header, not one of the same stream (version, layer and sample rate)."""
    version, layer, rate, kbps = (header >> 19) & 3, 4 - ((header >> 17) & 3), (header >> 10) & 3, (header >> 12) & 15
    if (
        header >> 21 != 0x7FF
        or (first is not None and header & _MPEG_STREAM_BITS != first & _MPEG_STREAM_BITS)
        or version == 1
        or layer == 4
        or rate == 3
        or kbps in (0, 15)
        or header & 3 == 2  # a reserved emphasis
    ):
        return None
    bits_per_s, rate_hz = 1000 * _MPEG_KBPS[(version == 3, layer)][kbps - 1], _MPEG_RATES_HZ[version][rate]
    padding = (header >> 9) & 1
    if layer == 1:
        return (12 * bits_per_s // rate_hz + padding) * 4
    return (144 if version == 3 or layer == 2 else 72) * bits_per_s // rate_hz + padding


def _mp3_tail(fh: Any, size: int, start: int) -> tuple[int, bytes]:
    """``(where it starts, the bytes)``: the last :data:`MP3_TAIL_BYTES` of an MP3 file of ``size`` bytes whose audio
    starts at ``start`` (one read; a remote file: one range request)."""
    base = max(start, size - MP3_TAIL_BYTES)
    fh.seek(base)
    return base, fh.read(size - base)


def mp3_zero_tail(fh: Any, start: int, first: bytes, base: int, buf: bytes) -> tuple[int, int] | None:
    """``(where they start, how many)``: the zero bytes that end the audio of an MP3 whose audio starts at ``start``
    with the frame header ``first``, when they are more than a whole file can end in — more than
    :data:`MP3_ZERO_TAIL_BYTES` and than two of the stream's longest frames (its version, layer and sample rate at the
    highest bitrate, padded) —, else ``None``. ``buf`` is the file's tail from byte ``base`` on (:func:`_mp3_tail`); the
    run is counted before any tags written after the audio (:func:`repeval.audio.tail.audio_end`), and only when the
    whole tail is zeros is the file read on backwards, in blocks of 1 MiB, to find where the run starts (a refused file
    only)."""
    head = int.from_bytes(first, "big")
    longest = mpeg_frame_bytes(head & ~0xF000 | 0xE200) if mpeg_frame_bytes(head) else None
    end = audio_end(buf)
    audio = buf[:end] if end >= 0 else buf  # tags longer than the tail: its last bytes
    kept = audio.rstrip(b"\0")
    if len(audio) - len(kept) <= max(MP3_ZERO_TAIL_BYTES, 2 * (longest or MPEG_MAX_FRAME_BYTES)):
        return None
    zeros_at = base + len(kept) if kept else zeros_start(fh, base, start)
    return zeros_at, base + len(audio) - zeros_at


def _mp3_last_frame_shortfall(
    start: int, first: bytes, base: int, buf: bytes
) -> tuple[tuple[int, int] | None, bool, int | None]:
    """``(bytes its last frame needs, bytes left of it)`` when the MPEG audio stream starting at ``start`` with the
    frame header ``first`` ends inside a frame, else ``None`` — also whenever that cannot be told (free format, no
    chain of frames found in the tail, bytes after the last frame that are no frame); whether a whole frame in
    the tail has another bitrate than the first frame (a VBR stream); and where (in ``buf``) its whole frames stop,
    ``None`` when no chain of frames was found. ``buf`` is the file's tail from byte ``base`` on (:func:`_mp3_tail`);
    a header there is trusted when the frame it declares ends where another header of the stream starts (or at the end
    of the audio); then the frames are walked to the end."""
    head = int.from_bytes(first, "big")
    longest = mpeg_frame_bytes(head & ~0xF000 | 0xE200)  # at the highest bitrate, padded
    if mpeg_frame_bytes(head) is None or longest is None:
        return None, False, None
    end = audio_end(buf)
    # two whole frames before a cut one at least, or before the zero bytes and tags that end the audio (padding)
    i = max(start - base, tags_and_zeros_start(buf[: max(end, 0)]) - 3 * longest - 4)
    if end < 0 or i < 0:  # tags longer than the tail (a file cut short has none)
        return None, False, None
    kbps = {head >> 12 & 15}  # the bitrate indexes of the whole frames walked

    def frame(at: int) -> int | None:
        return mpeg_frame_bytes(int.from_bytes(buf[at : at + 4], "big"), head)

    def walk(at: int, stop: int) -> int:  # where the whole frames from the header at ``at`` stop before ``stop``
        while stop - at >= 4 and (n := frame(at)) is not None and at + n <= stop:
            kbps.add(buf[at + 2] >> 4)
            at += n
        return at

    while True:  # the first header that chains on
        i = buf.find(b"\xff", i, end - 3)
        if i < 0:
            return None, False, None
        n = frame(i)
        if n is not None and (i == start - base or i + n == end or (i + n + 4 <= end and frame(i + n) is not None)):
            break
        i += 1
    i = walk(i, end)
    if i == end:
        return None, len(kbps) > 1, i
    if end - i >= 4:
        n = frame(i)  # a frame running past the end, or bytes that are not a frame (padding, an unknown tag)
        short = None if n is None else (n, end - i)
    else:  # 1 to 3 bytes: a cut header (its missing bytes taken from the first one)?
        n = mpeg_frame_bytes(int.from_bytes(buf[i:end] + first[end - i :], "big"), head)
        short = None if n is None else (n if end - i == 3 else 4, end - i)
    # what looked like tags after the audio may be its last bytes: then the frames end at the end of the file
    whole = short is None or (end < len(buf) and walk(i, len(buf)) == len(buf))
    return None if whole else short, len(kbps) > 1, i


def _mp3_stream_samples(fh: Any, size: int, start: int, first: bytes) -> tuple[int, int]:
    """``(samples, samples per frame)`` (per channel) of the whole frames of the MPEG audio stream starting at
    ``start`` with the frame header ``first``: reads the file and walks every frame header (for a VBR stream without a Xing/Info/VBRI header
    only, whose length nothing else tells)."""
    head = int.from_bytes(first, "big")
    version, layer = head >> 19 & 3, 4 - (head >> 17 & 3)
    per_frame = 384 if layer == 1 else 1152 if layer == 2 or version == 3 else 576
    fh.seek(start)
    buf = fh.read(size - start)
    at = frames = 0
    while (n := mpeg_frame_bytes(int.from_bytes(buf[at : at + 4], "big"), head)) is not None and at + n <= len(buf):
        at += n
        frames += 1
    return frames * per_frame, per_frame


def mp3_shortfall(fh: Any, size: int) -> tuple[str, int, int] | None:
    """``(cause, bytes declared, bytes held)`` when an MP3 was cut short or zero-filled (a copy or download that
    stopped), else ``None``; libsndfile decodes such a file as shorter audio without a word. Cause ``"MP3"``: its
    first frame carries a Xing or Info header (LAME, ffmpeg and most encoders write one) with a stream size, and the
    file holds less than :data:`MP3_HELD_FRACTION` of it after its ID3v2 tag. Cause ``"MP3 frame"``: with no such size, its
    last frame (before any trailing tags) needs more bytes than are left (:func:`_mp3_last_frame_shortfall`; a frame
    needs at least its 4 header bytes). Cause ``"MP3 VBR"``, a whole file: with no Xing/Info/VBRI header, its frames'
    bitrates vary — libsndfile guesses the length of such a file from its first frame's bitrate and stops there —;
    then ``(cause, samples its frames hold, samples per frame)`` (:func:`_mp3_stream_samples`,
    :func:`repeval.audio.decode._checked_open`).
    Cause ``"MP3 zeros"``, with or without a Xing/Info size: its audio ends in a run of zero bytes longer than a whole
    file can end in (:func:`mp3_zero_tail`: a download or copy that preallocated the file at its full size and
    stopped — its size is right, libsndfile gives up on the zeros with "Unspecified internal error" or, for a VBR
    file without a Xing header, stops short without a word); then ``(cause, zero bytes, file size)``. Cause ``"MP3
    padded"``, a whole file without a Xing/Info size: more than :data:`MPG123_RESYNC_BYTES` zero bytes (and not more
    than a whole file can end in) after its last whole frame, on which libsndfile's read would fail; then ``(cause,
    zero bytes, where its frames end)`` — not refused: read up to there (:func:`repeval.audio.decode._checked_open`).
    Reads the ID3v2 header and the first frame's start, then the file's tail (:data:`MP3_TAIL_BYTES`, one read; all
    of a VBR file without a header, and of a zero-filled one back to its last nonzero byte); ``fh`` is a seekable
    binary file of ``size`` bytes (left at its start)."""
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
        vbr_header = frame[36:40] == b"VBRI"  # Fraunhofer's VBR header: always 32 bytes after the frame header
        for tag in (b"Xing", b"Info"):  # after the side information: 13, 21 or 36 bytes in (+2 with a CRC)
            at = frame.find(tag, 4)
            if at < 0 or len(frame) < at + 16:
                continue
            vbr_header = True
            flags = struct.unpack(">I", frame[at + 4 : at + 8])[0]
            if not flags & 2:  # no stream size: the end tells
                break
            at += 8 + 4 * (flags & 1)  # after the frame count
            declared = struct.unpack(">I", frame[at : at + 4])[0]
            if declared == 0:  # flagged, never filled in (a writer that did not go back): the end tells, as without
                break
            held = size - start
            if held < MP3_HELD_FRACTION * declared:
                return ("MP3", declared, held)
            zeros = mp3_zero_tail(fh, start, frame[:4], *_mp3_tail(fh, size, start))
            # zeros after the stream the header declares (appended to a whole file) take no audio: libsndfile stops
            # reading at the end of that stream
            return None if zeros is None or zeros[0] >= start + declared else ("MP3 zeros", zeros[1], size)
        base, tail = _mp3_tail(fh, size, start)
        zeros = mp3_zero_tail(fh, start, frame[:4], base, tail)
        if zeros is not None:
            return ("MP3 zeros", zeros[1], size)
        short, vbr, frames_end = _mp3_last_frame_shortfall(start, frame[:4], base, tail)
        if short is not None:
            return ("MP3 frame", *short)
        if vbr and not vbr_header:
            return ("MP3 VBR", *_mp3_stream_samples(fh, size, start, frame[:4]))
        if frames_end is not None:
            # zeros and tags after the last frame, in any order: libmpg123 reads all of them as bytes that are no
            # frame (it looks for no tag at the end of a stream)
            if size - base - frames_end > MPG123_RESYNC_BYTES and tags_and_zeros(tail[frames_end:]):
                return ("MP3 padded", size - base - frames_end, base + frames_end)
        return None
    finally:
        fh.seek(0)


def shortfall(fh: Any, size: int) -> tuple[str, int, int] | None:
    """``(cause, declared bytes, held bytes)`` of a WAV or MP3 file that was cut short (``"WAV"``, ``"MP3"``: what its
    header declares; ``"MP3 frame"``: what its last frame needs) or an MP3 or Ogg file whose tail is zeros (``"MP3
    zeros"``, ``"Ogg zeros"``: the zero bytes and the file's size), or a VBR MP3 without a Xing header
    (:func:`mp3_shortfall`), or an Ogg file cut short (``"Ogg page"``, ``"Ogg page header"``: what its last page needs;
    ``"Ogg EOS"``, ``"Ogg CRC"``: its last page is not its stream's end, or is damaged — :func:`ogg_shortfall`), or a
    FLAC with no audio frames after its header (``"FLAC no frames"``: the samples it declares, 0 —
    :func:`flac_no_frames`) or cut short (``"FLAC"``: the samples it declares, those its frames hold —
    :func:`repeval.audio.flac_end.flac_shortfall`), or a WAV whose data chunk declares 0 bytes with bytes after it
    (``"WAV unsized"``: 0, the bytes after its header — a writer that never went back to fill in the size)."""
    fh.seek(0)
    magic = fh.read(4)  # which check applies (a remote file: one small range request)
    if magic == b"RIFF":
        data = wav_data_chunk(fh, size)
        if data is None:
            return None
        if data[0] == 0 and data[1] > 0:
            return ("WAV unsized", *data)
        short = _wav_cut(*data)
        return None if short is None else ("WAV", *short)
    if magic == b"OggS":
        return ogg_shortfall(fh, size)
    if magic == b"fLaC":
        declared = flac_no_frames(fh, size)
        if declared is not None:
            return ("FLAC no frames", declared, 0)
        cut = flac_shortfall(fh, size)
        return None if cut is None else ("FLAC", *cut)
    return mp3_shortfall(fh, size)


def refusal(path: str, short: tuple[str, int, int] | None) -> str | None:
    """The reason a file whose check found ``short`` (:func:`shortfall`) is refused — the cause, what the file holds and
    the fix — or ``None`` when there is nothing to refuse before opening it (``None``, or ``"MP3 VBR"``, whose length
    only the opened file tells: :func:`repeval.audio.decode._checked_open`; nor ``"MP3 padded"``, read up to its last
    frame there; nor ``"WAV unsized"``: libsndfile reads the rest of such a file as its data when its RIFF size is
    unfilled too — :func:`no_audio` says why when it does not; nor an Ogg file without its end, :data:`OGG_UNENDED`:
    decoded with a warning, :func:`~repeval.audio.ogg_end.unended_ogg`). The causes' numbers: ``"WAV"``, ``"MP3"`` bytes
    declared and held; ``"MP3 frame"`` bytes the last frame needs and bytes left; ``"MP3 zeros"``, ``"Ogg zeros"`` the
    zero bytes and the file's size; ``"FLAC no frames"`` the samples declared; ``"FLAC"`` the samples declared and those
    its frames hold; ``"Ogg CRC"`` none."""
    if short is None or short[0] in ("MP3 VBR", "MP3 padded", "WAV unsized", *OGG_UNENDED):  # not refused here
        return None
    cause, declared, held = short
    if cause == "FLAC no frames":
        if declared == 0:
            return no_audio(path, "FLAC", short)
        return (
            f"truncated FLAC: {path} declares {declared:,} samples but ends after its header, with no audio frames — "
            "the file was cut short (copy or download it again)"
        )
    if cause == "FLAC":
        return (
            f"truncated FLAC: {path} declares {declared:,} samples but its frames end at sample {held:,} "
            f"({held / declared:.0%}) — the file was cut short (copy or download it again, {DECODE_HINT})"
        )
    if cause in ("MP3 zeros", "Ogg zeros"):
        kind, units = ("MP3", "audio frames") if cause == "MP3 zeros" else ("Ogg", "Ogg pages")
        return (
            f"zero-filled {kind}: {path} ends in {declared:,} zero bytes ({declared / held:.0%} of the file) instead "
            f"of {units} — the file was not fully written (a download or copy that stopped; copy or download it again)"
        )
    if cause == "MP3 frame":
        needs = f"at least {declared}" if declared == 4 else f"{declared:,}"  # a header cut before its bitrate
        return (
            f"truncated MP3: {path} ends inside an audio frame (its last frame needs {needs} bytes, {held:,} "
            f"{'is' if held == 1 else 'are'} left) — the file was cut short (copy or download it again, {DECODE_HINT})"
        )
    if cause == "Ogg CRC":
        return (
            f"damaged Ogg: {path}'s last Ogg page does not match its CRC (its end was not fully written or was "
            "overwritten; libsndfile would drop the page) — copy or download it again"
        )
    return (
        f"truncated {cause}: {path} declares {declared:,} bytes of audio but holds {held:,} — the file was cut "
        f"short (copy or download it again, {DECODE_HINT})"
    )
