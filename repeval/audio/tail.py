"""What ends an audio file after its audio, found in its tail by the checks that it is whole
(:mod:`repeval.audio.integrity`, :mod:`repeval.audio.ogg_end`): tags some taggers append (:func:`audio_end`) and a run
of zero bytes (:func:`zeros_start`: a download or copy that preallocated the file at its full size and stopped).
"""

from __future__ import annotations

import struct
from typing import Any


def audio_end(buf: bytes) -> int:
    """Where the audio ends in ``buf``, the end of an audio file (an MP3, an Ogg file): before the tags written after it
    — ID3v1 (with a TAG+ extension), APEv1/v2, Lyrics3 v1/v2, an ID3v2 tag with a footer — in any order; -1 when a tag
    reaches beyond ``buf``."""
    end = len(buf)
    if end >= 128 and buf[end - 128 : end - 125] == b"TAG":  # ID3v1, always last
        end -= 128 + 227 * (end >= 355 and buf[end - 355 : end - 351] == b"TAG+")
    while end > 0:
        if end >= 32 and buf[end - 32 : end - 24] == b"APETAGEX":  # the footer: its size counts the items and itself
            size, flags = struct.unpack("<I4xI", buf[end - 20 : end - 8])
            if size < 32:
                return -1
            end -= size + 32 * (flags >> 31)  # + a header when flagged
        elif end >= 15 and buf[end - 9 : end] == b"LYRICS200" and buf[end - 15 : end - 9].isdigit():
            end -= int(buf[end - 15 : end - 9]) + 15
        elif end >= 9 and buf[end - 9 : end] == b"LYRICSEND":  # Lyrics3 v1: at most 5,100 bytes after LYRICSBEGIN
            end = buf.rfind(b"LYRICSBEGIN", max(0, end - 5120), end)
        elif end >= 10 and buf[end - 10 : end - 7] == b"3DI":  # an ID3v2 footer: syncsafe size, header and footer
            end -= 20 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(buf[end - 4 : end]))
        else:
            return end
    return -1


def zeros_start(fh: Any, end: int, floor: int = 0) -> int:
    """Where the run of zero bytes that ends at byte ``end`` of the seekable binary file ``fh`` starts (``end`` when
    byte ``end - 1`` is not zero; not before ``floor``): reads backwards in blocks of 1 MiB."""
    while end > floor:
        n = min(1 << 20, end - floor)
        fh.seek(end - n)
        kept = fh.read(n).rstrip(b"\0")
        if kept:
            return end - n + len(kept)
        end -= n
    return floor


#: what ends each tag :func:`audio_end` knows, and how many bytes after the start of that marker it ends
_TAG_ENDS = ((b"TAG", 128), (b"APETAGEX", 32), (b"LYRICS200", 9), (b"LYRICSEND", 9), (b"3DI", 10))


def tags_and_zeros(buf: bytes) -> bool:
    """Whether ``buf`` holds nothing but tags (:func:`audio_end`) and zero bytes, in any order
    (:func:`tags_and_zeros_start`)."""
    return tags_and_zeros_start(buf) == 0


#: the most tags and runs of zeros :func:`tags_and_zeros_start` looks behind (a file has a few)
MAX_TAG_LAYERS = 8


def tags_and_zeros_start(buf: bytes) -> int:
    """Where the tags (:func:`audio_end`) and zero bytes that end ``buf``, in any order, start (``len(buf)`` when it
    ends in neither) — zeros after a tag too, though a tag may end in zero bytes itself (an APE footer always does, an
    ID3v1 tag of genre 0): each tag marker that only zeros follow is tried (an ``APETAGEX`` holds a ``TAG``), up to
    :data:`MAX_TAG_LAYERS` tags deep, each prefix once (a crafted file cannot make it search long)."""
    if not buf.endswith(b"\0") and audio_end(buf) == len(buf):  # audio to the end (most files: at once)
        return len(buf)
    starts: dict[int, int] = {}  # the answer for buf[:n], by n

    def start_of(n: int, depth: int) -> int:
        if n not in starts:
            head = buf[:n]
            start = len(head.rstrip(b"\0"))
            ends = {n} | {at + k for marker, k in _TAG_ENDS if (at := head.rfind(marker)) >= 0 and at + k < n}
            for cut in sorted(ends, reverse=True):
                if start and depth and not head[cut:].strip(b"\0") and 0 <= (end := _tags_start(head[:cut])) < cut:
                    start = min(start, start_of(end, depth - 1))
            starts[n] = start
        return starts[n]

    return start_of(len(buf), MAX_TAG_LAYERS)


def _tags_start(buf: bytes) -> int:
    """:func:`audio_end` of ``buf``, but 0 when tags fill it (:func:`audio_end`: -1, as when a tag runs past it)."""
    return audio_end(b"\1" + buf) - 1
