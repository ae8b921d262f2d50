"""Checks that an Ogg file (Vorbis, Opus; FLAC or Speex in Ogg: the checks read pages, not the codec) is whole, run
where it opens (:func:`repeval.audio.integrity.shortfall`): zero-filled (:func:`ogg_zero_tail`), cut short inside a page
or at a page boundary, or its last page damaged (:func:`ogg_shortfall`). An Ogg file without its end — which a live
stream's recording is too — is decoded as far as its whole pages go, with a warning (:data:`OGG_UNENDED`,
:func:`unended_ogg`); the others are refused (:func:`repeval.audio.integrity.refusal`).
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from repeval.audio.tail import audio_end, zeros_start

#: an Ogg file (Vorbis, Opus, FLAC) whose last page is not the end of its stream and that ends in more zero bytes than
#: this is zero-filled (:func:`ogg_zero_tail`)
OGG_ZERO_TAIL_BYTES = 4096

#: bytes read from the end of an Ogg file to find its last page (one read; libvorbis writes pages of about 4 kB)
OGG_TAIL_BYTES = 16384


def ogg_zero_tail(fh: Any, size: int, base: int, buf: bytes) -> int | None:
    """How many zero bytes end an Ogg file (``fh`` starts with an ``OggS`` page) when it was zero-filled — a download
    or copy that preallocated it at its full size and stopped; libsndfile decodes the pages before the zeros as the
    whole file, shorter, without a word —, else ``None``. Zero-filled: it ends in more than
    :data:`OGG_ZERO_TAIL_BYTES` zero bytes and the last page before them is not a whole page marking the end of its
    stream (the EOS flag), so zeros appended to a whole file are not (libsndfile decodes all of it). ``buf`` is the
    file's tail from byte ``base`` on (the last :data:`OGG_TAIL_BYTES`); when all of those are zeros, reads on
    backwards to where the zeros start; ``fh`` is a seekable binary file of ``size`` bytes."""
    kept = buf.rstrip(b"\0")
    zeros_at = base + len(kept) if kept else zeros_start(fh, base)
    if size - zeros_at <= OGG_ZERO_TAIL_BYTES:
        return None
    if not kept:  # the tail is all zeros: the bytes before them (and a page header's worth of zeros)
        base = max(0, zeros_at - OGG_TAIL_BYTES)
        fh.seek(base)
        buf = fh.read(min(size, zeros_at + 282) - base)
    at = buf.rfind(b"OggS", 0, zeros_at - base)
    # zeros after a whole last page that marks the end of its stream (EOS) were appended to a whole file
    if 0 <= at <= len(buf) - 27 and buf[at + 5] & 4 and base + at + _ogg_page_bytes(buf, at) <= size:
        return None
    return size - zeros_at


def _ogg_page_bytes(buf: bytes, at: int) -> int:
    """The length of the Ogg page whose header starts at byte ``at`` of ``buf`` (its 27-byte header, segment table and
    body, as the segment table declares them; ``buf`` holds the header and the table)."""
    n_segments = buf[at + 26]
    return 27 + n_segments + sum(buf[at + 27 : at + 27 + n_segments])


#: the longest an Ogg page can be: a 27-byte header, a segment table of 255 entries, 255 segments of 255 bytes
#: (libvorbis writes pages of about 4 kB, libopus through libsndfile up to some 15 kB)
OGG_MAX_PAGE_BYTES = 27 + 255 + 255 * 255

#: each byte with its bits in reverse order (:func:`ogg_page_crc`)
_BITS_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_page_crc(page: bytes) -> int:
    """The CRC of an Ogg page whose CRC field (bytes 22-25) holds zeros: CRC-32 with the polynomial 0x04C11DB7, not
    reflected, initial value and final XOR 0. zlib's CRC-32 is the same polynomial reflected: taken over the page's
    bytes with their bits reversed, from a zero register, its result's bits reversed are Ogg's (in C: a 4 kB page in
    a few microseconds, where a Python loop takes milliseconds)."""
    reflected = zlib.crc32(page.translate(_BITS_REVERSED), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{reflected:032b}"[::-1], 2)


def _ogg_page_at(buf: bytes, at: int, stop: int) -> int | None:
    """Where the Ogg page whose header starts at byte ``at`` of ``buf`` ends, when it is one — its capture pattern,
    version 0, a header, segment table and body ending by ``stop`` and the CRC it carries matching its bytes —, else
    ``None``."""
    if buf[at : at + 5] != b"OggS\0" or stop - at < 27 or stop - at < 27 + buf[at + 26]:
        return None
    end = at + _ogg_page_bytes(buf, at)
    if end > stop:
        return None
    page = bytearray(buf[at:end])
    page[22:26] = bytes(4)
    return end if ogg_page_crc(bytes(page)) == struct.unpack("<I", buf[at + 22 : at + 26])[0] else None


def _ogg_last_page_shortfall(buf: bytes, at: int, stop: int) -> tuple[str, int, int] | None:
    """What is wrong with the end of the Ogg pages of ``buf[:stop]``, walked from the whole page at ``at`` by the
    lengths their headers declare: ``("Ogg page", bytes the last page needs, bytes left)`` when the bytes after the
    last whole page are the start of a page (its capture pattern ``OggS``) running past ``stop`` — ``"Ogg page
    header"`` when its header or segment table does (the bytes it needs at least) —; ``("Ogg EOS", 0, 0)`` when the
    last whole page is not the end of its stream (no EOS flag); ``("Ogg CRC", 0, 0)`` when it is, and its CRC does not
    match its bytes (a page zero-filled within, which libogg drops); else ``None``. Bytes after the last whole page
    that are no page (tags, padding, junk some tools append) are let be after a page with the EOS flag."""
    last = at
    while at < stop:
        left = stop - at
        if left < 4 or buf[at : at + min(5, left)] != b"OggS\0"[: min(5, left)]:
            break  # no page: bytes after the last one
        if left < 27 or left < 27 + buf[at + 26]:
            return ("Ogg page header", 27 if left < 27 else 27 + buf[at + 26], left)
        n = _ogg_page_bytes(buf, at)
        if n > left:
            return ("Ogg page", n, left)
        last, at = at, at + n
    if not buf[last + 5] & 4:
        return ("Ogg EOS", 0, 0)
    return None if _ogg_page_at(buf, last, stop) is not None else ("Ogg CRC", 0, 0)


def ogg_shortfall(fh: Any, size: int) -> tuple[str, int, int] | None:
    """``(cause, declared bytes, held bytes)`` when an Ogg file (``fh`` starts with an ``OggS`` page: Vorbis, Opus,
    FLAC, Speex — the check reads the pages, not the codec's packets) was cut short or zero-filled, else ``None``;
    libsndfile decodes the pages that are there as the whole file, shorter, without a word. Cause ``"Ogg zeros"`` (the
    zero bytes, the file's size): :func:`ogg_zero_tail`. Else the last Ogg pages are found in the file's tail
    (:data:`OGG_TAIL_BYTES`; when no whole page is there, the last two :data:`OGG_MAX_PAGE_BYTES`): the first whole page
    there, its CRC matching (an ``OggS`` inside a page's data is not one), and on from it the pages their headers chain
    to; cause ``"Ogg page"`` / ``"Ogg page header"`` (bytes the last page needs, bytes left): the file ends inside a
    page; ``"Ogg EOS"`` (0, 0): its last whole page is not the end of its stream — a file cut at a page boundary; ``"Ogg
    CRC"`` (0, 0): it is, but its bytes do not match its CRC (:func:`_ogg_last_page_shortfall`). Which files: every
    logical stream ends with a page flagged EOS (the Ogg spec), so the last page of a whole file, one stream or several
    chained (one after another) or multiplexed (interleaved), has the flag; only the last page is checked: a chained or
    multiplexed file cut where another stream's last page ends passes. Tags or junk after a whole stream's last page
    (ID3v1, APE: some taggers append them) are let be; a page cut before tags is found behind ID3v1, APE, Lyrics3 and
    ID3v2-footer tags (:func:`~repeval.audio.tail.audio_end`). Not found: a file cut inside its first page (no whole
    page to start from; libsndfile cannot open it). An Ogg file whose writer never set the flag (a live stream's
    recording) looks like one cut at a page boundary: both are decoded with a warning (:data:`OGG_UNENDED`). ``fh`` is a
    seekable binary file of ``size`` bytes (left at its start)."""
    try:
        base = max(0, size - OGG_TAIL_BYTES)
        fh.seek(base)
        buf = fh.read(size - base)  # one read (a remote file: one range request)
        zeros = ogg_zero_tail(fh, size, base, buf)
        if zeros is not None:
            return ("Ogg zeros", zeros, size)
        at = _ogg_first_page(buf)
        if at is None and base > 0:  # no whole page in the tail: pages longer than 8 kB (Opus, FLAC)
            base = max(0, size - 2 * OGG_MAX_PAGE_BYTES)
            fh.seek(base)
            buf = fh.read(size - base)
            at = _ogg_first_page(buf)
        if at is None:
            return None  # no whole page: nothing to tell by
        end = audio_end(buf)
        short = _ogg_last_page_shortfall(buf, at, end if end >= 0 else len(buf))
        # what looked like tags after the pages may be their last bytes: then the pages end at the end of the file
        if short is not None and 0 <= end < len(buf) and _ogg_last_page_shortfall(buf, at, len(buf)) is None:
            return None
        return short
    finally:
        fh.seek(0)


def _ogg_first_page(buf: bytes) -> int | None:
    """Where the first whole Ogg page of ``buf`` starts (its CRC matching: :func:`_ogg_page_at`), or ``None``."""
    at = buf.find(b"OggS")
    while at >= 0 and _ogg_page_at(buf, at, len(buf)) is None:
        at = buf.find(b"OggS", at + 1)
    return None if at < 0 else at


#: the causes (:func:`ogg_shortfall`) of an Ogg file without its end — its last page not flagged as its stream's end
#: (``"Ogg EOS"``: cut at a page boundary, or a live stream's recording whose writer never set the flag: ``ffmpeg … -f
#: ogg`` stopped) or cut (``"Ogg page"``, ``"Ogg page header"``: killed mid-write, a download that stopped) —, which
#: nothing tells from each other: decoded as far as its whole pages go, with a warning (:func:`unended_ogg`), as
#: librosa/audioread decode it; refused only when those pages hold no audio
OGG_UNENDED = ("Ogg EOS", "Ogg page", "Ogg page header")


def unended_ogg(path: str, short: tuple[str, int, int], seconds: float | None) -> str:
    """The warning an Ogg file without its end (``short``: a cause of :data:`OGG_UNENDED` and its numbers, bytes the
    last page needs and bytes left) is decoded with, ``seconds`` being what its whole pages hold; ``seconds`` ``None``:
    the reason it is refused with when they hold no audio."""
    cause, needs, held = short
    if cause == "Ogg EOS":
        what = f"{path}'s last Ogg page is not its stream's end (no end-of-stream flag)"
    else:
        at_least = "at least " if cause == "Ogg page header" else ""
        left = f"{held:,} {'is' if held == 1 else 'are'} left"
        what = f"{path} ends inside an Ogg page (its last page needs {at_least}{needs:,} bytes, {left})"
    if seconds is None:
        return (
            f"truncated Ogg: {what}, and its whole pages hold no audio — the file was cut short (copy or download it "
            "again)"
        )
    return (
        f"Ogg file without its end: {what} — decoded the {seconds:.3f} s its whole pages hold. A file cut short: copy "
        "or download it again; a live stream's recording that stopped there: remux it to write its end, e.g. "
        "`ffmpeg -i in.ogg -c copy out.ogg`"
    )
