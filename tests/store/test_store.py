"""The Parquet embedding store: schema, provenance, any pyarrow filesystem, reading rows, frames and embeddings,
where a partition's audio came from, resume bookkeeping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from store_helpers import DIM, PROV, _block, _write
from typer.testing import CliRunner

from repeval.pipeline.assemble import RowBlock, rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import DamagedPartFile, embedding_schema


def test_schema_and_provenance_readable_by_pyarrow_and_pandas(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c", "d"], keep_frames=True)
    m = part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    assert m["rows"] == 4 and m["errors"] == 1 and m["config_hash"] == "abc123" and m["model_version"] == "1"
    assert m["store_format"] == 2 and m["repeval_version"] and m["created_at"] <= m["completed_at"]
    t = pq.read_table(part.path)  # the partition folder; _errors/ and _*.json are skipped
    assert t.schema.equals(embedding_schema(DIM, keep_frames=True))
    assert t.num_rows == 4 and set(t.column("config_hash").to_pylist()) == {"abc123"}
    assert str(t.schema.field("created_at").type) == "timestamp[ms, tz=UTC]"
    df = t.to_pandas()
    assert df.loc[df.track_id == "c", "embedding"].iloc[0].tolist() == [8.0, 9.0, 10.0, 11.0]
    assert np.stack(df.loc[df.track_id == "b", "frames"].iloc[0]).shape == (2, DIM)
    assert df.deformation_params.isna().sum() == 2
    assert part.read_errors().column("reason").to_pylist() == ["cannot decode"]
    ids, _splits, mat = part.embeddings()
    assert sorted(ids) == ["a", "b", "c", "d"] and mat.shape == (4, DIM) and mat.dtype == np.float32


def test_duckdb_reads_the_store(tmp_path):
    import duckdb

    part = _write(EmbeddingStore(str(tmp_path / "s")), ["a", "b"])
    con = duckdb.connect()
    rows = con.execute(f"select track_id, len(embedding) from read_parquet('{part.path}/part-*.parquet') order by 1")
    assert rows.fetchall() == [("a", DIM), ("b", DIM)]


@pytest.mark.parametrize("kind", ["file_uri", "mock_uri", "subtree"])
def test_any_pyarrow_filesystem(tmp_path, kind):
    if kind == "file_uri":
        store = EmbeddingStore(f"file://{tmp_path}/s")
    elif kind == "mock_uri":
        store = EmbeddingStore("mock:///stores/s")
    else:
        (tmp_path / "sub").mkdir()
        store = EmbeddingStore("/s", filesystem=pafs.SubTreeFileSystem(str(tmp_path / "sub"), pafs.LocalFileSystem()))
    part = _write(store, ["a", "b", "c", "d", "e"], part_rows=2)
    part.finish({"dataset": "ds"})
    assert [p.name for p in store.partitions()] == ["ds/m/clean"]
    assert part.complete and part.counts() == (5, 1)
    assert sorted(part.done_ids().to_pylist()) == ["a", "b", "bad", "c", "d", "e"]
    if kind == "subtree":
        assert (tmp_path / "sub" / "s" / "ds" / "m" / "clean" / "_manifest.json").exists()


def test_dedupe_keeps_one_row_per_track(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b", "c"])
    part = _write(store, ["b", "c", "d"])
    assert part.dedupe() == 2
    t = part.read()
    assert sorted(t.column("track_id").to_pylist()) == ["a", "b", "c", "d"]
    assert part.dedupe() == 0
    assert part.finish({})["rows"] == 4


def test_unsafe_components_rejected(tmp_path):
    store = EmbeddingStore(str(tmp_path / "s"))
    assert store.partition("../x", "m/y", "c").path.startswith(store.root + "/")
    with pytest.raises(ValueError):
        store.partition("..", "m", "c")


def test_frames_reads_every_rows_frames_in_order_across_part_files(tmp_path):
    """``Partition.frames`` (what ``embedding_aggregation: prediction`` trains on): the rows' frames flattened in
    row order, with one count per row, across part files; a partition without frames names the fix."""
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    schema = embedding_schema(DIM, keep_frames=True)
    w = PartitionWriter(part, schema, 2)
    block = rows_table(_block(["a", "b", "c", "d", "e"], keep_frames=True), schema, PROV)
    for start in (0, 2, 4):  # three part files, the later ones Arrow slices with offsets into the frames
        w.add_table(block.slice(start, 2))
    w.flush()
    assert len(part.part_files()) == 3
    ids, splits, flat, counts = part.frames()
    assert sorted(ids) == ["a", "b", "c", "d", "e"] and splits == ["train"] * 5
    assert flat.dtype == np.float32 and flat.shape == (1 + 2 + 3 + 4 + 5, DIM)
    by_id = dict(zip(ids, np.split(flat, np.cumsum(counts)[:-1]), strict=True))
    for i, t in enumerate(["a", "b", "c", "d", "e"]):  # row i has i + 1 frames, each filled with i
        np.testing.assert_array_equal(by_id[t], np.full((i + 1, DIM), i, np.float32))
    plain = _write(EmbeddingStore(str(tmp_path / "p")), ["a", "b"])
    with pytest.raises(ValueError, match=r"no frame-level embeddings.*repeval store rm .* --yes.*keep_frames: true"):
        plain.frames()


def test_read_parquet_is_read_table(tmp_path):
    """The store's reader of one part file (the plain file reader, not a dataset per file) gives what
    ``pq.read_table`` gives: every column, or the ones asked for in their order, with the file's schema metadata; a
    file that is not Parquet raises what the partition names as damaged."""
    from repeval.store.layout import read_parquet

    part = _write(EmbeddingStore(str(tmp_path / "s")), ["a", "b", "c", "d"], keep_frames=True)
    fs = part.fs
    for f in part.part_files() + part.error_files():
        for columns in (None, ["split", "track_id"], ["frames"]):
            if columns == ["frames"] and "_errors" in f:
                continue
            got, want = read_parquet(fs, f, columns), pq.read_table(f, columns=columns, filesystem=fs)
            assert got.equals(want, check_metadata=True) and got.column_names == want.column_names
    bad = part.part_files()[0]
    Path(bad).write_bytes(b"not parquet")
    with pytest.raises(DamagedPartFile, match=re.escape(bad) + r" is not a readable Parquet file"):
        part.done_ids()


def test_show_and_finish_open_each_part_file_once_for_counts(tmp_path):
    """Finishing a partition opens each part file twice (its ids, its footer's counts: rows and whether it may hold an
    audio note), `store show` once but for the first (its schema too) — each a round trip on object
    storage, thousands for a catalog's partition — and both count what they counted before."""
    from repeval.store.inspect import show_text
    from repeval.testing.fs import Counting

    handler = Counting()
    store = EmbeddingStore(str(tmp_path / "s"), filesystem=pafs.PyFileSystem(handler))
    part = _write(store, ["a", "b"])
    schema = embedding_schema(DIM)
    writer = PartitionWriter(part, schema, 2)
    for ids in (["c", "d"], ["e", "f"], ["g"]):
        writer.add_table(rows_table(_block(ids), schema, PROV))
    writer.flush()
    files, errors = part.part_files(), part.error_files()
    assert len(files) == 4 and len(errors) == 1
    handler.clear()
    manifest = part.finish({"model": "m"})
    assert {f: handler.opened[f] for f in files} == dict.fromkeys(files, 2), handler.opened
    assert manifest["rows"] == 7 and manifest["errors"] == 1 and manifest["noted_rows"] == {"cut": 0, "ogg": 0}
    handler.clear()
    text = show_text(part, n_rows=0)  # (the first rows are read file by file until there are enough)
    assert {f: handler.opened[f] for f in files[1:]} == dict.fromkeys(files[1:], 1), handler.opened
    assert "7 rows in 4 part files;" in text and "1 error record:" in text and "rows per split: train 7" in text


def test_plan_reads_a_partitions_ids_once_for_its_state_and_error_records(tmp_path):
    """`repeval plan`'s state of a partition and its error records' tracks share one read of its ids (a partition with
    error records read its part files twice), and count what each counted alone."""
    from repeval.pipeline.partitions import PartitionSpec, StoredIds, error_tracks, partition_state
    from repeval.testing.fs import Counting

    handler = Counting()
    part = _write(EmbeddingStore(str(tmp_path / "s"), filesystem=pafs.PyFileSystem(handler)), ["a", "b", "c", "d"])
    spec = PartitionSpec("clean", part.stamped()["fingerprint"], {})
    ids = pa.array(["a", "b", "bad", "e"])
    wanted = np.array([True, True, True, False])
    alone = partition_state(part, spec, ids, wanted), error_tracks(part, ids, wanted)
    for retry in (False, True):
        handler.clear()
        stored = StoredIds(part)
        state, what, done = partition_state(part, spec, ids, wanted, retry, stored)
        tracks = error_tracks(part, ids, wanted, stored)
        assert tracks == alone[1] == (1, ["bad"])  # "bad": an error record, no row
        parquet = {f: n for f, n in handler.opened.items() if f.endswith(".parquet")}
        assert parquet == dict.fromkeys(part.part_files() + part.error_files(), 1), handler.opened
        assert done is not None and done.tolist() == [True, True, not retry, False]
        assert (state, what) == (("todo", "1 of 3 tracks to embed") if retry else alone[0][:2])


def test_store_show_reads_no_embeddings(tmp_path, monkeypatch):
    """`store show` prints counts, the schema and the first rows without reading the embeddings or frames (most of
    a partition's bytes: gigabytes at catalog scale); the first rows span part files when the first is short."""
    from repeval.store.inspect import show_text

    store = EmbeddingStore(str(tmp_path / "s"))
    schema = embedding_schema(DIM, keep_frames=True)
    part = _write(store, ["a"], keep_frames=True)
    writer = PartitionWriter(part, schema, 1)
    writer.add_table(rows_table(_block(["b", "c", "d"], keep_frames=True), schema, PROV))  # one file
    writer.add_table(rows_table(_block(["e"], keep_frames=True), schema, PROV))
    writer.flush()
    read = []
    from repeval.store import inspect, layout, partition, partition_files

    def recording(fs, source, columns=None):
        read.append((source, columns))
        return layout.read_parquet(fs, source, columns)

    for module in (inspect, partition, partition_files):  # every reader of part files there (store.layout's)
        monkeypatch.setattr(module, "read_parquet", recording)
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: pytest.fail(f"pq.read_table{a}: not store.layout's reader"))
    text = show_text(part, n_rows=3)
    data_reads = [cols for source, cols in read if source in part.part_files()]
    assert data_reads and all(c is not None and not {"embedding", "frames"} & set(c) for c in data_reads), read
    assert "5 rows in 3 part files;" in text and "frames: list<element: fixed_size_list" in text  # schema from a footer
    assert "frames: 8 total" in text  # a: 1; b, c, d: 1 + 2 + 3; e: 1
    shown = [line.split()[1] for line in text.splitlines() if re.match(r"\d+\s+\w\s+train\s", line)]
    assert shown == ["a", "b", "c"]


def test_embeddings_are_read_file_by_file_into_one_matrix(tmp_path):
    """``Partition.embeddings()`` (the store's documented reader) returns every row in file order and never holds
    the partition's whole Arrow column: Arrow's peak allocation (a fresh process) stays near one file's."""
    import subprocess
    import sys

    store = EmbeddingStore(str(tmp_path / "s"))
    part = store.partition("ds", "m", "clean")
    schema = embedding_schema(64)
    w = PartitionWriter(part, schema, 20)
    rng = np.random.default_rng(0)
    block = RowBlock(
        track_id=np.array([f"t{i:04d}" for i in range(2000)]), split=np.array(["train"] * 2000),
        scenario=np.array(["clean"] * 2000), embedding=rng.standard_normal((2000, 64)).astype(np.float32),
        n_frames=np.ones(2000, np.int32), n_chunks=np.ones(2000, np.int32), audio_seconds=np.ones(2000, np.float32),
        deformation_params=np.array([""] * 2000), model_version=np.array(["1"] * 2000),
    )  # fmt: skip
    for a in range(0, 2000, 20):
        w.add_table(rows_table(block.take(np.arange(a, a + 20)), schema, PROV))
    w.flush()
    ids, splits, mat = part.embeddings()
    assert splits == ["train"] * 2000
    files = part.part_files()
    assert len(files) == 100 and ids == [i for f in files for i in pq.read_table(f).column("track_id").to_pylist()]
    want = {t: e for f in files for t, e in zip(pq.read_table(f).column("track_id").to_pylist(),
                                                 pq.read_table(f).column("embedding").to_pylist(), strict=True)}  # fmt: skip
    np.testing.assert_array_equal(mat, np.array([want[t] for t in ids], np.float32))
    script = (
        "import sys, pyarrow as pa\nfrom repeval.store import EmbeddingStore\n"
        "p = EmbeddingStore(sys.argv[1], create=False).partition('ds', 'm', 'clean')\n"
        "before = pa.default_memory_pool().max_memory()\np.embeddings()\n"
        "print(pa.default_memory_pool().max_memory() - before)"
    )
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "s")], capture_output=True, text=True, check=True)
    # one 20-row file read takes ~8x its 5 KiB of embeddings (Arrow's reader buffers): ~47 KB in all, 100+ KB on a
    # loaded machine; the whole column is 512 KB. (With 50-row files the read alone neared the limit: flaky.)
    assert int(r.stdout.split()[-1]) < mat.nbytes / 4, (r.stdout, mat.nbytes)


def test_a_partition_records_where_its_audio_came_from_and_an_old_one_stays_unrecorded(tmp_path):
    store = EmbeddingStore(str(tmp_path / "store"))
    a, b = {"type": "catalog", "dir": "/data/a"}, {"type": "catalog", "dir": "/data/b"}
    part = store.partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[a])
    part.finish({"dataset": "ds"})
    assert part.sources() == [a]
    assert part.add_sources([a]) is False  # nothing new: nothing written
    assert part.add_sources([b]) is True
    assert part.sources() == [a, b] and json.loads(Path(part.path, "_stamp.json").read_text())["sources"] == [a, b]
    old = store.partition("ds", "m", "D1")
    old.stamp({"fp": 1})  # as before sources were recorded
    old.finish({"dataset": "ds"})
    assert old.add_sources([b]) is False and old.sources() is None  # its rows' source is not known: not guessed
    old.reopen()
    old.stamp({"fp": 1}, sources=[b])  # rows are added from b: recorded from here on
    assert old.finish({"dataset": "ds"})["sources"] == [b]


def test_a_reused_partition_is_of_other_audio_when_its_place_differs_or_its_files_are_newer(tmp_path):
    """A source's `audio` (files, bytes, newest time the loader found) tells audio written since into the same
    folder; another task that lists a subset of the same files (fewer, none newer) is the same audio."""
    from repeval.pipeline.partitions import changed_source

    def src(files: int, newest: str, folder: str = "/data/a") -> dict:
        return {"type": "custom", "dir": folder, "audio": {"files": files, "bytes": files * 10, "newest": newest}}

    part = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[src(20, "2026-01-02T00:00:00.000000+00:00")])
    part.finish({"dataset": "ds"})
    assert changed_source(part, [src(20, "2026-01-02T00:00:00.000000+00:00")]) is None
    assert changed_source(part, [src(8, "2026-01-01T00:00:00.000000+00:00")]) is None  # a subset of the files
    assert changed_source(part, [{"type": "custom", "dir": "/data/a"}]) is None  # files not checked: not known
    assert changed_source(part, [src(20, "2026-01-03T00:00:00.000000+00:00")]) == part.sources()  # written since
    assert changed_source(part, [src(20, "2026-01-02T00:00:00.000000+00:00", "/data/b")]) == part.sources()
    part.add_sources([src(20, "2026-01-03T00:00:00.000000+00:00")])  # recorded by the run that said so
    assert changed_source(part, [src(20, "2026-01-03T00:00:00.000000+00:00")]) is None


def test_a_reused_partition_is_of_other_audio_when_its_sampled_content_differs_at_the_same_size(tmp_path):
    """The files' content digest (``audio.content``) tells audio rewritten at the same size and no newer; it is
    compared only with a record of as many files of the same total size, and a record without one (an earlier
    repeval's) is compared as before."""
    from repeval.pipeline.partitions import changed_source

    def src(content: str | None, files: int = 20, newest: str = "2026-01-02T00:00:00.000000+00:00") -> dict:
        audio = {"files": files, "bytes": files * 10, "newest": newest, "content": content}
        return {"type": "custom", "dir": "/data/a", "audio": {k: v for k, v in audio.items() if v is not None}}

    part = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "clean")
    part.stamp({"fp": 1}, sources=[src("c1")])
    part.finish({"dataset": "ds"})
    assert changed_source(part, [src("c1")]) is None
    assert changed_source(part, [src("c2")]) == part.sources()  # same files and bytes, other content
    assert changed_source(part, [src("c2", newest="2026-01-01T00:00:00.000000+00:00")]) == part.sources()
    assert changed_source(part, [src("c3", files=8)]) is None  # a subset: another sample, not compared
    assert changed_source(part, [src(None)]) is None  # no digest now (files not read): as before
    older = EmbeddingStore(str(tmp_path / "store")).partition("ds", "m", "D1")
    older.stamp({"fp": 1}, sources=[src(None)])
    older.finish({"dataset": "ds"})
    assert changed_source(older, [src("c2")]) is None  # recorded without a digest: not compared


def test_a_manifest_cut_short_counts_as_incomplete_and_is_completed_from_the_part_files(tmp_path, caplog):
    """A partition's _manifest.json cut short (a copy, a bad disk) made `repeval store ls`, `plan`, `embed` and `run`
    stop on "error: Unterminated string starting at: line 2 column 2" — no file named, no way on but finding it. Now
    it is named once in a warning and the partition counts as incomplete: the next run completes it from its part
    files (listed as incomplete with their rows meanwhile), computing nothing they hold."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c"])
    part.finish({"dataset": "ds"})
    manifest = Path(part.path, "_manifest.json")
    manifest.write_text(manifest.read_text()[:10])
    caplog.set_level("WARNING", logger="repeval.store")
    assert part.manifest() is None and not part.complete and part.stamped()["fingerprint"] == {"fp": 1}
    res = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert re.search(r"ds/m/clean\s+incomplete\s+3\s+1\s", res.stdout), res.stdout
    said = [r.getMessage() for r in caplog.records if "_manifest.json is unreadable" in r.getMessage()]
    assert len(said) == 1, said  # once, however often it is read
    assert "the partition counts as incomplete — the next `repeval run` or `repeval embed` completes it" in said[0]
    assert part.done_track_ids() == {"a", "b", "bad", "c"}  # what the next run does not compute
    part.finish({"dataset": "ds"})
    assert part.complete and part.manifest()["rows"] == 3
