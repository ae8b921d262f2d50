"""A FLAC file cut short, found from its end without decoding it (:func:`flac_shortfall`): libsndfile opens such a file
with the length its STREAMINFO declares and fails only when a read reaches the cut ("lost sync", "Internal
psf_fseek() failed"), so ``repeval data check`` without ``--decode`` passed it, and a run decoded it up to the cut
before making it an error record. The last frame headers in the file's tail tell how many samples its frames hold: a
whole file's last frame ends at the sample count STREAMINFO declares. One read of the tail, some 15-35 µs.
"""

from __future__ import annotations

import re
from typing import Any

#: bytes read from the end of a FLAC to find its last frame headers, when STREAMINFO does not give its longest frame
#: (0: unknown); else twice that, and :data:`FLAC_TAG_BYTES` for tags appended after the frames
FLAC_TAIL_BYTES = 65536

#: room for tags some taggers append after a FLAC's frames (ID3v1, APE: FLAC keeps its own tags in its header)
FLAC_TAG_BYTES = 4096

#: samples per block by a frame header's block-size code (0: reserved; 6 and 7: in the header, after the number)
_BLOCK_SIZES = (0, 192, 576, 1152, 2304, 4608, -1, -2, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)

#: a frame header's sync code: 14 set bits, a reserved 0 bit, the blocking strategy (fixed or variable block size)
_SYNC = re.compile(b"\xff[\xf8\xf9]")

_CRC8 = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c << 1) ^ 0x07 if _c & 0x80 else _c << 1
    _CRC8.append(_c & 0xFF)


def _crc8(data: bytes) -> int:
    """FLAC's frame-header CRC-8 (polynomial 0x07, from 0)."""
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


def _frame_header(buf: bytes, at: int, fixed_block: int) -> tuple[int, int] | None:
    """``(its first sample, its samples)`` of the FLAC frame whose header starts at byte ``at`` of ``buf`` — sync code,
    reserved bits 0, a valid UTF-8-coded frame or sample number, its CRC-8 matching — or ``None`` when it is none.
    ``fixed_block``: the stream's block size (STREAMINFO's), by which a fixed-block stream's frames are numbered."""
    head = buf[at : at + 16]
    if len(head) < 6 or head[0] != 0xFF or head[1] & 0xFE != 0xF8 or head[3] & 1 or head[2] >> 4 == 0:
        return None
    if head[2] & 0xF == 0xF or head[3] >> 4 > 10 or (head[3] >> 1) & 7 == 3:  # reserved rate, channels, sample size
        return None
    first, n = head[4], 0  # UTF-8-coded number: its leading ones count its bytes
    while n < 7 and first & (0x80 >> n):
        n += 1
    if n == 1 or n > 7:
        return None
    length = max(n, 1)
    number = first & (0x7F >> n)
    for byte in head[5 : 4 + length]:
        if byte & 0xC0 != 0x80:
            return None
        number = number << 6 | byte & 0x3F
    pos = 4 + length
    code = head[2] >> 4
    block = _BLOCK_SIZES[code]
    if block < 0:  # 8 or 16 bits after the number: the block size less one
        width = 1 if block == -1 else 2
        block = int.from_bytes(head[pos : pos + width], "big") + 1
        pos += width
    rate_code = head[2] & 0xF
    pos += 1 if rate_code == 12 else 2 if rate_code in (13, 14) else 0
    if len(head) < pos + 1 or _crc8(head[:pos]) != head[pos]:
        return None
    variable = head[1] & 1
    return (number if variable else number * fixed_block), block


def flac_shortfall(fh: Any, size: int) -> tuple[int, int] | None:
    """``(samples STREAMINFO declares, samples its frames hold)`` when a FLAC file (``fh``: a seekable binary file of
    ``size`` bytes starting with ``fLaC``, left at its start) was cut short — its last frame ends before the samples
    STREAMINFO declares —, else ``None``; also whenever that cannot be told (0 samples declared: unknown, a streaming
    encoder's; no frame header in the tail). The last frame is the last header in the tail — sync code, a valid
    frame or sample number, its CRC-8 matching — that follows another one numbered right before it (a frame's
    compressed data can hold what looks like a header; two in a row, numbered in order, it does not). Not found: a
    file cut inside its last frame (at most one block, about 0.1 s; libsndfile fails on it when decoding)."""
    try:
        fh.seek(0)
        info = fh.read(42)
        if len(info) < 42 or info[:4] != b"fLaC" or info[4] & 0x7F != 0:  # STREAMINFO comes first
            return None
        declared = (info[21] & 0xF) << 32 | int.from_bytes(info[22:26], "big")
        max_block = int.from_bytes(info[10:12], "big")
        max_frame = int.from_bytes(info[15:18], "big")
        if declared == 0:
            return None
        tail = 2 * max_frame + 64 + FLAC_TAG_BYTES if max_frame else FLAC_TAIL_BYTES  # two frames and tags
        base = max(42, size - tail)
        fh.seek(base)
        buf = fh.read(size - base)
        fixed = max_block  # a fixed-block stream: every block but the last
        later: tuple[int, int] | None = None  # the header after the one looked at
        for sync in reversed([m.start() for m in _SYNC.finditer(buf)]):
            found = _frame_header(buf, sync, fixed)
            if found is None:
                continue
            if later is not None and found[0] + found[1] == later[0]:
                end = later[0] + later[1]
                return None if end >= declared else (declared, end)
            later = found
        return None
    finally:
        fh.seek(0)
