"""repeval's TensorBoard scalar writer against the format's reference (tensorboardX's protobufs and writer)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from tensorboardX import SummaryWriter
from tensorboardX.proto import event_pb2

from repeval.tuning.events import crc32c, masked_crc32c, write_scalars


def read_events(path: Path) -> list[event_pb2.Event]:
    """Parse a TFRecord event file, checking both CRCs of every record."""
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        header = data[i : i + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8 : i + 12])[0] == masked_crc32c(header)
        body = data[i + 12 : i + 12 + n]
        assert len(body) == n, "record cut short"
        assert struct.unpack("<I", data[i + 12 + n : i + 16 + n])[0] == masked_crc32c(body)
        out.append(event_pb2.Event.FromString(body))
        i += 16 + n
    return out


def scalars(events: list[event_pb2.Event]) -> list[tuple[str, float, int]]:
    return [(v.tag, v.simple_value, e.step) for e in events for v in e.summary.value]


def test_crc32c_matches_the_published_check_values():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720, B.4
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


@pytest.mark.parametrize(
    "points",
    [
        [("train_loss", 0.25, 0), ("val_loss", 1.5, 1), ("val_criterion", 0.875, 1)],
        [("ünïcode/tag", -3.0, 2**40), ("neg", 1e-30, -5), ("big", 3.0e38, 7)],
        [("inf", math.inf, 1), ("x", 0.1, 2)],
        [],
    ],
)
def test_event_file_reads_like_tensorboardx_writes_it(tmp_path, points):
    path = Path(write_scalars(str(tmp_path / "ours"), points))
    assert path.name.startswith("events.out.tfevents.")
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    ours = read_events(path)
    assert ours[0].file_version == "brain.Event:2" and ours[0].wall_time > 0

    w = SummaryWriter(logdir=str(tmp_path / "ref"))
    for tag, value, step in points:
        w.add_scalar(tag, value, step)
    w.close()
    (ref_path,) = (tmp_path / "ref").glob("events.out.tfevents*")
    ref = read_events(ref_path)
    assert ref[0].file_version == "brain.Event:2"
    assert scalars(ours) == scalars(ref)
    assert len(ours) == len(ref) == len(points) + 1
    assert [e.step for e in ours] == [e.step for e in ref]


def test_values_round_to_float32_like_tensorboard(tmp_path):
    path = Path(write_scalars(str(tmp_path), [("a", 0.1, 1)]))
    (value,) = [v.simple_value for e in read_events(path) for v in e.summary.value]
    assert value == struct.unpack("<f", struct.pack("<f", 0.1))[0] != 0.1
