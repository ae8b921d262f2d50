"""TensorBoard event files of scalar curves, written without tensorboardX.

A trial writes one event file per probe with its per-epoch curves. tensorboardX takes ~0.2–0.3 s to
import in a fresh trial process (its writer pulls in protobuf and its whole package) — on a small grid
that is a tenth of a trial's training. The format needed for scalars is small, so it is written here:

- a file is a sequence of records ``uint64 length | uint32 masked CRC-32C(length) | data | uint32
  masked CRC-32C(data)`` (TFRecord framing; little-endian);
- each record's data is a serialized ``tensorboard.Event`` protobuf: ``wall_time`` (field 1, double),
  ``step`` (2, int64), ``file_version`` (3, string; the first event says ``brain.Event:2``) or
  ``summary`` (5) holding ``Summary.Value`` entries with ``tag`` (1, string) and ``simple_value``
  (2, float) — what ``SummaryWriter.add_scalar`` writes and what TensorBoard reads as a scalar.

The file is written whole under a temporary name and renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterable


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord framing uses."""
    crc = 0xFFFFFFFF
    table = _TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    n &= 0xFFFFFFFFFFFFFFFF  # int64 as protobuf encodes it (negative steps take ten bytes)
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(
    wall_time: float, *, step: int | None = None, file_version: str | None = None, summary: bytes = b""
) -> bytes:
    out = b"\x09" + struct.pack("<d", wall_time)  # field 1, fixed64
    if step:
        out += b"\x10" + _varint(step)  # field 2, varint (proto3: 0 is not written)
    if file_version is not None:
        out += _field_bytes(3, file_version.encode())
    if summary:
        out += _field_bytes(5, summary)
    return out


def _scalar_value(tag: str, value: float) -> bytes:
    return _field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", value))


def _record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def write_scalars(logdir: str, scalars: Iterable[tuple[str, float, int]]) -> str:
    """Write ``(tag, value, step)`` scalars to a new event file in ``logdir``; returns its path."""
    os.makedirs(logdir, exist_ok=True)
    now = time.time()
    parts = [_record(_event(now, file_version="brain.Event:2"))]
    for tag, value, step in scalars:
        parts.append(_record(_event(now, step=int(step), summary=_scalar_value(tag, float(value)))))
    path = os.path.join(logdir, f"events.out.tfevents.{int(now)}.{socket.gethostname()}")
    tmp = os.path.join(logdir, f".partial-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(b"".join(parts))
    os.replace(tmp, path)
    return path
