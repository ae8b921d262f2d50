"""The lazy catalog loader: batch streaming, per-row problem reports, CSV/Parquet parity."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from catalog_cases import _write_csv
from dataset_fixtures import ds_cfg, task_cfg

import repeval.datasets.catalog as catalog
from repeval.datasets import load_dataset, spill
from repeval.datasets.base import ROW_SCHEMA


def test_split_ratios_and_seed_unused_by_a_complete_split_column_are_named(audio_dir, caplog):
    """``split_ratios`` / ``split_seed`` draw the splits of the tracks without one: with a split column that gives
    every track its split they were ignored without notice. A note names them (log and load report), and drops no
    row: ``--strict`` does not count it."""
    rows = [[f"t{i}", f"audio/a{i % 4}.wav", "ab"[i % 2], ["train", "validation", "test"][i % 3]] for i in range(12)]
    manifest = str(_write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label", "split"], rows))
    task = task_cfg("label", "multiclass_classification")
    kw = {"manifest": manifest, "label_column": "label", "split_column": "split"}
    with caplog.at_level("WARNING", logger="repeval.datasets.load"):
        table, report = load_dataset(ds_cfg("cat", "catalog", split_ratios=[0.6, 0.2, 0.2], split_seed=3, **kw), task)
    note = (
        "split_ratios ([0.6, 0.2, 0.2]) and split_seed (3) not used: the manifest's split column 'split' "
        "(dataset.split_column) gives every track its split, so no split is drawn — remove split_ratios and "
        "split_seed, or drop split_column to draw the splits"
    )
    assert report.lines() == [note] and report.counts() == {} and table.num_rows == 12
    assert f"dataset cat: {note}" in caplog.messages
    # a max_tracks cap is drawn with split_seed: only split_ratios went unused
    capped = load_dataset(
        ds_cfg("cat", "catalog", split_ratios=[0.6, 0.2, 0.2], split_seed=3, max_tracks=6, **kw), task
    )
    assert capped[1].lines() == [note.replace(" and split_seed (3)", "").replace(" and split_seed,", ",")]
    # the keys at their defaults ask for nothing; a split column with gaps draws the rest with them
    assert load_dataset(ds_cfg("cat", "catalog", **kw), task)[1].lines() == []
    rows[0][3] = ""
    _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label", "split"], rows)
    assert load_dataset(ds_cfg("cat", "catalog", split_ratios=[0.6, 0.2, 0.2], **kw), task)[1].lines() == []


def test_problems_are_reported_with_row_numbers(audio_dir):
    rows = [
        ["001", "audio/a0.wav", "piano", "train", "artistA"],  # row 2
        ["002", "audio/a1.wav", "violin", "val", "artistB"],  # row 3
        ["001", "audio/a2.wav", "piano", "", ""],  # row 4: duplicate id
        ["003", "audio/ghost.wav", "piano", "", ""],  # row 5: missing file
        ["004", "audio/a2.wav", "", "", ""],  # row 6: no label
        ["005", "", "flute", "", ""],  # row 7: empty path
        ["006", "audio/a3.wav", "kazoo", "", ""],  # row 8: label outside classes
        ["007", "audio/a3.wav", "violin", "holdout", ""],  # row 9: unknown split
        ["008", str(audio_dir / "audio" / "a3.wav"), "flute", "TEST", ""],  # row 10: absolute path, split alias
        ["009", "audio/a3.wav", "violin", "tset", ""],  # row 11: a typo of a split
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["id", "path", "instrument", "subset", "artist"], rows)
    ds = ds_cfg(
        "cat",
        "catalog",
        manifest=str(manifest),
        track_id_column="id",
        audio_column="path",
        label_column="instrument",
        split_column="subset",
        group_column="artist",
        classes=["piano", "violin", "flute"],
    )
    table, report = load_dataset(ds, task_cfg("instrument", "multiclass_classification"))
    assert table.schema == ROW_SCHEMA
    assert table.column("track_id").to_pylist() == ["001", "002", "008"]  # ids stay strings ("001", not 1)
    assert report.duplicate_ids == ["001 (row 4: repeats the id of row 2 — only an id's first row is read)"]
    missing = sorted(report.missing_audio)
    assert missing[0].startswith("003 (row 5: ") and missing[0].endswith("ghost.wav)")
    assert missing[1] == "005 (row 7: empty path)"
    by_id = report.missing_rows.table().select(["track_id", "row", "cause"]).sort_by("track_id")
    assert by_id.to_pylist() == [
        {"track_id": "003", "row": "row 5", "cause": "not_found"},
        {"track_id": "005", "row": "row 7", "cause": "empty_path"},
    ]
    assert report.unlabelled == ["004 (row 6: empty instrument)"]
    assert report.unknown_labels == ["006 (row 8: label 'kazoo' not in dataset.classes)"]
    assert report.other[0].startswith("007 (row 9: unknown split 'holdout'")
    # the names a split cell may hold, in words (it said "expected ('train', 'validation', 'test')"), and for a typo
    # the split it is close to
    assert report.other[0] == (
        "007 (row 9: unknown split 'holdout': a split cell holds train, validation or test (also training, val, valid, "
        "dev, testing), an empty one gets a drawn split)"
    ), report.other
    assert report.other[1].startswith("009 (row 11: unknown split 'tset': a split cell holds "), report.other
    assert report.other[1].endswith("an empty one gets a drawn split — did you mean 'test'?)"), report.other
    assert table.column("split").to_pylist() == ["train", "validation", "test"]
    assert table.column("group").to_pylist() == ["artistA", "artistB", None]
    assert table.column("audio_path").to_pylist()[0] == str((audio_dir / "audio" / "a0.wav").resolve())


def test_streaming_batches_give_the_same_result(audio_dir, monkeypatch):
    rows = [[f"t{i}", f"audio/a{i % 5}.wav", f"c{i % 3}", "", f"g{i // 4}"] for i in range(60)]
    rows[41][0] = "t7"  # duplicate across batches
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label", "split", "group"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label", group_column="group")
    task = task_cfg("label", "multiclass_classification")
    whole, rep_whole = load_dataset(ds, task)
    real_iter = catalog.iter_manifest
    monkeypatch.setattr(
        catalog, "iter_manifest", lambda uri, cols, batch_rows=7, delimiter=None: real_iter(uri, cols, 7, delimiter)
    )
    streamed, rep_streamed = load_dataset(ds, task)
    assert streamed.to_pylist() == whole.to_pylist()
    assert (
        rep_streamed.duplicate_ids
        == rep_whole.duplicate_ids
        == ["t7 (row 43: repeats the id of row 9 — only an id's first row is read)"]
    )
    # a4.wav does not exist: every 5th row is missing, reported with its own row number
    assert rep_streamed.missing_audio == rep_whole.missing_audio
    assert rep_whole.missing_audio[0] == f"t4 (row 6: {(audio_dir / 'audio' / 'a4.wav').resolve()})"
    # groups never straddle splits
    by_group: dict[str, set[str]] = {}
    for r in whole.to_pylist():
        by_group.setdefault(r["group"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_group.values())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_spilled_plan_matches_the_in_memory_one(audio_dir, monkeypatch, tmp_path_factory, fmt):
    """With partitions of 16 rows the plan (duplicates, usable rows, splits) goes through spill files
    and a memory-mapped table, and is identical to the in-memory plan; no spill file is left."""
    rows = [[f"t{i % 230}", f"audio/a{i % 5}.wav", f"c{i % 3}", "", f"g{i // 4}"] for i in range(260)]
    header = ["track_id", "audio_path", "label", "split", "group"]
    manifest = _write_csv(audio_dir / "m.csv", header, rows)
    if fmt == "parquet":
        table = pacsv.read_csv(
            manifest, convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
        )
        manifest = audio_dir / "m.parquet"
        pq.write_table(table, manifest, row_group_size=50)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label", group_column="group")
    task = task_cfg("label", "multiclass_classification")
    whole, rep_whole = load_dataset(ds, task)
    spill_dir = tmp_path_factory.mktemp("spill")
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(spill_dir))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 16)
    real_iter = catalog.iter_manifest
    monkeypatch.setattr(
        catalog, "iter_manifest", lambda uri, cols, batch_rows=40, delimiter=None: real_iter(uri, cols, 40, delimiter)
    )
    assert catalog.estimate_rows(str(manifest)) >= 200
    spilled, rep_spilled = load_dataset(ds, task)
    assert spilled.equals(whole)
    assert rep_spilled.duplicate_ids == rep_whole.duplicate_ids
    first, of = ("row 232", "row 2") if fmt == "csv" else ("row 230", "row 0")  # 1-based with header vs 0-based
    assert (
        rep_whole.duplicate_ids[0] == f"t0 ({first}: repeats the id of {of} — only an id's first row is read)"
        and len(rep_whole.duplicate_ids) == 30
    )
    assert rep_spilled.missing_audio == rep_whole.missing_audio
    assert list(spill_dir.iterdir()) == []


def test_parquet_manifest_matches_csv(audio_dir):
    rows = [[f"t{i}", f"audio/a{i % 4}.wav", f"rock|{'pop' if i % 2 else 'jazz'}| ", ""] for i in range(20)]
    csv_path = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "tags", "split"], rows)
    pq.write_table(pacsv.read_csv(csv_path), audio_dir / "m.parquet", row_group_size=6)
    task = task_cfg("tags", "multilabel_classification")
    out = []
    for m in (csv_path, audio_dir / "m.parquet"):
        ds = ds_cfg("cat", "catalog", manifest=str(m), label_column="tags", label_separator="|", split_column="split")
        table, _ = load_dataset(ds, task)
        out.append(table.to_pylist())
    assert out[0] == out[1]
    assert out[0][0]["label"] == ["rock", "jazz"] and out[0][1]["label"] == ["rock", "pop"]
    # a tab-separated manifest named .tsv reads the same; named otherwise, validation names the separator and the fix
    text = csv_path.read_text().replace(",", "\t")
    (audio_dir / "m.tsv").write_text(text)
    ds = ds_cfg("cat", "catalog", manifest=str(audio_dir / "m.tsv"), label_column="tags", label_separator="|")
    assert load_dataset(ds, task)[0].to_pylist() == out[0]
    (audio_dir / "m.txt").write_text(text)
    ds = ds_cfg("cat", "catalog", manifest=str(audio_dir / "m.txt"), label_column="tags", label_separator="|")
    # a manifest of its own column names: the defaults the dataset did not override are named, with the key to set
    own = ds_cfg("cat", "catalog", manifest=str(audio_dir / "m.parquet"), label_column="tags", audio_column="file")
    assert catalog.manifest_problems(own, task) == [
        "audio_column: the manifest has no column 'file' (its columns: track_id, audio_path, tags, split)"
    ]
    pq.write_table(pq.read_table(audio_dir / "m.parquet").rename_columns(["SongID", "File", "tags", "s"]),
                   audio_dir / "own.parquet")  # fmt: skip
    own = ds_cfg("cat", "catalog", manifest=str(audio_dir / "own.parquet"), label_column="tags")
    assert catalog.manifest_problems(own, task) == [
        f"{key}: the manifest has no column {col!r} — set {key} to its column of {what} ({col!r} is the default) "
        "(its columns: SongID, File, tags, s)"
        for key, col, what in [
            ("track_id_column", "track_id", "track ids"),
            ("audio_column", "audio_path", "audio file paths"),
        ]
    ]
    assert catalog.manifest_problems(ds, task) == [
        f"manifest: {audio_dir / 'm.txt'}'s header reads as one column, 'track_id\\taudio_path\\ttags\\tsplit': its "
        "columns are separated by tabs ('\\t'), not commas — set delimiter: tab (or write it as Parquet)"
    ]
    tabbed = ds_cfg("cat", "catalog", manifest=str(audio_dir / "m.txt"), label_column="tags", label_separator="|",
                    delimiter="tab")  # fmt: skip
    assert tabbed.delimiter == "\t" and load_dataset(tabbed, task)[0].to_pylist() == out[0]
    # a spreadsheet's export in a locale whose decimal mark is a comma: ';' between columns, read with delimiter ';'
    (audio_dir / "eu.csv").write_text(csv_path.read_text().replace(",", ";"))
    eu = ds_cfg("cat", "catalog", manifest=str(audio_dir / "eu.csv"), label_column="tags", label_separator="|")
    one = (f"manifest: {audio_dir / 'eu.csv'}'s header reads as one column, 'track_id;audio_path;tags;split': its "
           "columns are separated by semicolons (';'), not commas — set delimiter: ';' (or write it as Parquet)")  # fmt: skip
    assert catalog.manifest_problems(eu, task) == [one]
    with pytest.raises(ValueError, match="set delimiter: ';'") as err:  # the load says it too, not four missing columns
        load_dataset(eu, task)
    assert str(err.value) == f"catalog {one}"
    eu = eu.model_copy(update={"delimiter": ";"})
    assert catalog.manifest_problems(eu, task) == [] and load_dataset(eu, task)[0].to_pylist() == out[0]
    assert catalog.manifest_problems(eu.model_copy(update={"manifest": str(csv_path)}), task) == [
        f"manifest: {csv_path}'s header reads as one column, 'track_id,audio_path,tags,split': its columns are "
        "separated by commas (','), not semicolons — set delimiter: ',' (or write it as Parquet)"
    ]


def test_a_directory_of_parquet_files_reads_as_one_manifest(audio_dir):
    """A dataset directory: files in order, row numbers running on across them (a duplicate in the second file
    is reported by its row in the whole manifest)."""
    rows = [[f"t{i}", f"audio/a{i % 4}.wav", f"c{i % 3}"] for i in range(30)]
    rows[25][0] = "t3"
    header = ["track_id", "audio_path", "label"]
    table = pa.table({h: [r[j] for r in rows] for j, h in enumerate(header)})
    folder = audio_dir / "manifest"
    folder.mkdir()
    pq.write_table(table.slice(0, 12), folder / "part-0.parquet", row_group_size=5)
    pq.write_table(table.slice(12), folder / "part-1.parquet", row_group_size=5)
    ds = ds_cfg("cat", "catalog", manifest=str(folder), label_column="label")
    out, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert out.column("track_id").to_pylist() == [f"t{i}" for i in range(30) if i != 25]
    assert report.duplicate_ids == ["t3 (row 25: repeats the id of row 3 — only an id's first row is read)"]
    assert catalog.estimate_rows(str(folder)) == 30


def test_parquet_row_numbers_are_zero_based(audio_dir):
    table = pa.table(
        {
            "track_id": ["a", "b", "a"],
            "audio_path": ["audio/a0.wav", "audio/x.wav", "audio/a1.wav"],
            "label": ["x", "y", "x"],
        }
    )
    pq.write_table(table, audio_dir / "m.parquet")
    ds = ds_cfg("cat", "catalog", manifest=str(audio_dir / "m.parquet"), label_column="label")
    _, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert report.duplicate_ids == ["a (row 2: repeats the id of row 0 — only an id's first row is read)"]
    assert report.missing_audio[0].startswith("b (row 1: ")


def test_check_files_false_keeps_remote_and_missing_paths(audio_dir):
    rows = [["r1", "s3://bucket/x.wav", "a"], ["r2", "audio/nope.wav", "b"], ["r3", "gs://b/y.wav", "a"]]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label", check_files=False)
    table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert table.num_rows == 3 and not report.missing_audio
    assert table.column("audio_path").to_pylist()[0] == "s3://bucket/x.wav"


def test_manifest_and_audio_as_filesystem_uris(audio_dir):
    rows = [
        ["u1", "audio/a0.wav", "a"],
        ["u2", "audio/nope.wav", "b"],
        ["u3", (audio_dir / "audio" / "a1.wav").as_uri(), "a"],
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=manifest.as_uri(), label_column="label")
    table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert table.column("track_id").to_pylist() == ["u1", "u3"]
    assert table.column("audio_path").to_pylist()[0] == f"{audio_dir.as_uri()}/audio/a0.wav"
    assert report.missing_rows.table().select(["track_id", "audio_path", "row"]).to_pylist() == [
        {"track_id": "u2", "audio_path": f"{audio_dir.as_uri()}/audio/nope.wav", "row": "row 3"}
    ]


def test_a_spill_directory_that_cannot_be_used_names_the_fix(audio_dir, monkeypatch, tmp_path_factory):
    rows = [[f"t{i}", f"audio/a{i % 4}.wav", f"c{i % 3}"] for i in range(40)]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label")
    not_a_dir = tmp_path_factory.mktemp("spill") / "file"
    not_a_dir.write_text("")
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(not_a_dir / "spill"))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 8)
    with pytest.raises(
        OSError, match=r"spills its rows to .*file/spill.*set REPEVAL_SPILL_DIR to a writable directory"
    ):
        load_dataset(ds, task_cfg("label", "multiclass_classification"))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 1 << 17)  # small enough to stay in memory: no spill directory needed
    assert load_dataset(ds, task_cfg("label", "multiclass_classification"))[0].num_rows == 40
