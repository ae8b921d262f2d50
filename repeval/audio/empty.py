"""Audio files with no audio frames, found where a file opens: a run would decode no sample of them (its error
record says "no audio samples"), and ``repeval data check`` finds them without decoding. libsndfile opens a WAV,
AIFF or Ogg file whose header or stream holds no frames with a length of 0 (:func:`repeval.audio.decode._checked_open`
refuses it; libsndfile — and soundfile — read no more frames than that length, so a length of 0 is no audio for
certain); a FLAC with no frames after its metadata it opens with its declared length — or, declared as 0, an unknown
one — and fails on the first read (:func:`flac_no_frames` finds it before). :func:`no_audio` is the reason they are
refused with: what the file holds and the fix.
"""

from __future__ import annotations

from typing import Any

#: bytes read from the start of a FLAC to walk its metadata blocks (one read; a block header beyond them, after a
#: large picture, one more read each)
FLAC_HEAD_BYTES = 8192

#: the most metadata blocks walked (a FLAC has a handful: STREAMINFO, SEEKTABLE, VORBIS_COMMENT, PICTURE, PADDING)
FLAC_MAX_BLOCKS = 1024


def flac_no_frames(fh: Any, size: int) -> int | None:
    """The samples a FLAC's STREAMINFO declares (0: none, or unknown, as a streaming encoder leaves it) when its
    metadata blocks end where the file ends — no audio frames after its header: an empty recording or export
    (nothing declared) or a file cut short right after its header —, else ``None``. libsndfile opens such a file, takes
    its length as unknown or as declared, and fails on the first read ("Internal psf_fseek() failed"). Walks the
    block headers (one read of :data:`FLAC_HEAD_BYTES`); a file whose metadata runs past its end is left to libsndfile,
    which refuses to open it. ``fh`` is a seekable binary file of ``size`` bytes (left at its start)."""
    try:
        fh.seek(0)
        buf = fh.read(FLAC_HEAD_BYTES)
        if len(buf) < 42 or buf[:4] != b"fLaC" or buf[4] & 0x7F != 0:  # STREAMINFO comes first
            return None
        declared = (buf[21] & 0xF) << 32 | int.from_bytes(buf[22:26], "big")  # 36 bits: total samples
        pos = 4
        for _ in range(FLAC_MAX_BLOCKS):
            if pos + 4 <= len(buf):
                head = buf[pos : pos + 4]
            else:
                fh.seek(pos)
                head = fh.read(4)
            if len(head) < 4:
                return None
            pos += 4 + int.from_bytes(head[1:4], "big")
            if head[0] & 0x80:  # the last metadata block: audio frames follow
                return declared if pos == size else None
        return None
    finally:
        fh.seek(0)


def no_audio(path: str, fmt: str, short: tuple[str, int, int] | None) -> str:
    """The reason a file with no audio frames is refused — a ``fmt`` file (libsndfile's name of its format) that
    opens with 0 frames, or a FLAC with no frames after its header (:func:`flac_no_frames`): the run would decode no
    sample of it. ``short`` is what its check found (:func:`repeval.audio.integrity.shortfall`): a WAV whose data chunk declares 0 bytes with
    bytes after it (``"WAV unsized"``) holds audio its header does not count."""
    if short is not None and short[0] == "WAV unsized":
        return (
            f"no audio samples: {path}'s WAV data chunk declares 0 bytes, but {short[2]:,} bytes follow it (a "
            "recording whose writer never went back to fill in the size) — rewrite its header, e.g. "
            "`sox --ignore-length in.wav out.wav`"
        )
    return (
        f"no audio samples: {path} holds 0 audio frames (an empty {fmt} recording or export) — re-export it from its "
        "source, or copy or download it again"
    )
