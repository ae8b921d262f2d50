"""Rows dropped for missing audio kept as data (:mod:`repeval.datasets.missing`): whole, all of them, in bounded
memory."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pytest

from repeval.datasets import missing
from repeval.datasets.base import LoadReport
from repeval.datasets.missing import MissingTracks
from repeval.datasets.spill import TableSpool

ODD = ["a (row 2: b)", 'c, "d"', "e\nf", " (g) ", "ü (no audio file in the index)"]


def _ids(found: MissingTracks) -> list[str]:
    return [t for b in found.batches() for t in b.column("track_id").to_pylist()]


def test_rows_spill_to_an_unlinked_file_and_read_back_whole_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(missing, "BATCH_ROWS", 4)  # rows added one by one become batches of 4
    found = MissingTracks(memory_rows=6)
    for i in range(5):
        found.add(f"t{i}", f"/x/t{i}.wav")
    assert not found.spilled and len(found) == 5 and _ids(found) == [f"t{i}" for i in range(5)]
    for tid in ODD:
        found.add(tid, f"/x/{tid}.wav", "row 9")
    found.add("none", None)
    assert found.spilled and len(found) == 11
    assert list(tmp_path.iterdir()) == []  # unlinked as it was made: nothing left behind, even after a crash
    table = found.table()
    assert table.column("track_id").to_pylist() == [f"t{i}" for i in range(5)] + ODD + ["none"]
    assert table.column("audio_path").to_pylist()[5:] == [f"/x/{t}.wav" for t in ODD] + [None]
    assert table.column("cause").to_pylist()[-2:] == [missing.NOT_FOUND, missing.NOT_INDEXED]
    found.add_batch(table.slice(0, 2))  # more rows after reading: read back as often as needed
    assert _ids(found) == [f"t{i}" for i in range(5)] + ODD + ["none", "t0", "t1"]
    copy = pickle.loads(pickle.dumps(found))  # a copy carries the rows, not the spill file
    assert copy.table().equals(found.table())
    found.close()
    assert len(found) == 0 and copy.table().num_rows == 13


def test_a_spool_spills_past_its_rows_and_reads_back_mapped_as_often_as_needed(tmp_path, monkeypatch):
    """The one spill primitive (:class:`TableSpool`, which :class:`MissingTracks` keeps its rows in): in memory up to
    ``max_rows``, then every batch, in order, in a file unlinked as it was made; its table is memory-mapped from
    that file, and it reads back again, written to after reading."""
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(tmp_path))
    schema = pa.schema([("track_id", pa.string()), ("n", pa.int64())])
    spool = TableSpool(schema, max_rows=4)

    def write(*ids: str) -> None:
        spool.write(pa.record_batch([pa.array(ids), pa.array([len(i) for i in ids], pa.int64())], schema=schema))

    write("a", "bb")
    write("ccc", "d")
    assert not spool.spilled and spool.table().column("track_id").to_pylist() == ["a", "bb", "ccc", "d"]
    write("e (1)")
    assert spool.spilled and spool.num_rows == 5 and list(tmp_path.iterdir()) == []
    table = spool.table()
    assert table.column("track_id").to_pylist() == ["a", "bb", "ccc", "d", "e (1)"]
    address = table.column("track_id").chunk(2).buffers()[2].address
    mapped = [
        ln.split()[0].split("-") for ln in Path("/proc/self/maps").read_text().splitlines() if "repeval-table-" in ln
    ]
    assert any(int(lo, 16) <= address < int(hi, 16) for lo, hi in mapped)  # zero-copy: the file's pages
    write("f")
    assert [b.column("track_id").to_pylist() for b in spool.batches()] == [["a", "bb"], ["ccc", "d"], ["e (1)"], ["f"]]
    assert spool.table().column("n").to_pylist() == [1, 2, 3, 1, 5, 1]
    spool.close()
    assert spool.num_rows == 0 and table.num_rows == 5 and table.column("n").to_pylist()[-1] == 5


def test_report_keeps_every_missing_row_whole_and_names_the_first_for_people():
    report = LoadReport(max_items=3)
    report.add_missing("a (1)", "/m/a (1).wav")
    report.add_missing("b", None)
    report.add_missing("c", None, "row 4")
    report.add_missing("d, e", "/m/d.wav", "row 5")
    report.add("missing_audio", "a loader's own words")
    # the human-readable list as before: the first max_items, in the loaders' words
    assert report.missing_audio == ["a (1) (/m/a (1).wav)", "b (no audio file in the index)", "c (row 4: empty path)"]
    assert report.count("missing_audio") == 5 == len(report.missing_rows)
    assert report.missing_rows.table().to_pylist() == [
        {"track_id": "a (1)", "audio_path": "/m/a (1).wav", "row": None, "cause": missing.NOT_FOUND},
        {"track_id": "b", "audio_path": None, "row": None, "cause": missing.NOT_INDEXED},
        {"track_id": "c", "audio_path": None, "row": "row 4", "cause": missing.EMPTY_PATH},
        {"track_id": "d, e", "audio_path": "/m/d.wav", "row": "row 5", "cause": missing.NOT_FOUND},
        {"track_id": "a loader's own words", "audio_path": None, "row": None, "cause": missing.REPORTED},
    ]
    with pytest.raises(ValueError, match="valid: not_found"):
        report.add_missing("x", None, cause="gone")
    batch = LoadReport(max_items=2)
    s = pa.array(["p (1)", "q", "r"])
    batch.add_missing_batch(s, pa.array(["/p (1).wav", None, "/r.wav"]), pa.array(["row 2", "row 3", "row 4"]),
                            pa.array([missing.NOT_FOUND, missing.EMPTY_PATH, missing.NOT_FOUND]))  # fmt: skip
    assert batch.missing_audio == ["p (1) (row 2: /p (1).wav)", "q (row 3: empty path)"]
    assert batch.count("missing_audio") == 3 and _ids(batch.missing_rows) == s.to_pylist()
    merged = LoadReport()
    merged.merge(report)
    merged.merge(batch)  # the rows move with the counts, not as the loaders' words
    assert merged.count("missing_audio") == 8 == len(merged.missing_rows)
    assert _ids(merged.missing_rows) == ["a (1)", "b", "c", "d, e", "a loader's own words", "p (1)", "q", "r"]


@pytest.mark.parametrize("partition_rows", [None, 2])  # in memory; spread over several partition files
def test_union_keeps_each_distinct_row_once_where_it_first_occurs(partition_rows):
    one, two, three = MissingTracks(), MissingTracks(), MissingTracks(memory_rows=1)
    for tid, path in [("a", "/a.wav"), ("b", None), ("c (1)", "/c.wav")]:
        one.add(tid, path)
    for tid, path, row in [("b", None, None), ("c (1)", "/c.wav", "row 3"), ("a", "/a.wav", None), ("d", "/d", None)]:
        two.add(tid, path, row)
    three.add("b", None, "row 7")
    three.add("d", "/d", None)
    got = missing.union([one, two, MissingTracks(), three], partition_rows).table().to_pylist()
    assert [(r["track_id"], r["audio_path"], r["row"]) for r in got] == [
        ("a", "/a.wav", None),
        ("b", None, None),
        ("c (1)", "/c.wav", None),
        ("c (1)", "/c.wav", "row 3"),  # another row of the manifest: listed too
        ("d", "/d", None),
        ("b", None, "row 7"),  # an empty audio cell, not a track without audio in an index: another cause
    ]
    assert missing.union([MissingTracks(), one]) is one  # one list: as it is
