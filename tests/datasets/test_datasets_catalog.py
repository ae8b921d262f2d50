"""The lazy catalog loader: batch streaming, per-row problem reports, CSV/Parquet parity."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from dataset_fixtures import ds_cfg, task_cfg, write_audio
from typer.testing import CliRunner

import repeval.datasets.catalog as catalog
from repeval.cli import app
from repeval.datasets import load_dataset, spill
from repeval.datasets.base import ROW_SCHEMA
from repeval.datasets.splits import split_counts


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture()
def audio_dir(tmp_path):
    for i in range(4):
        write_audio(tmp_path / "audio" / f"a{i}.wav", i)
    return tmp_path


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


def test_key_labels_are_normalised_and_invalid_keys_reported(audio_dir):
    rows = [
        ["k1", "audio/a0.wav", "Db major"],
        ["k2", "audio/a1.wav", "bb minor"],
        ["k3", "audio/a2.wav", "X"],
        ["k4", "audio/a3.wav", "D minor"],
        ["k5", "audio/a0.wav", "Db major"],
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "key"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="key")
    table, report = load_dataset(ds, task_cfg("key_estimation", "key_estimation"))
    assert table.column("label").to_pylist() == [["C# major"], ["A# minor"], ["D minor"], ["C# major"]]
    assert report.unknown_labels == ["k3 (row 4: 'X' is not a key (expected e.g. 'C# minor'))"]
    # dataset.classes written with flats are normalised like the labels
    table, report = load_dataset(
        ds.model_copy(update={"classes": ("Db major", "D minor")}), task_cfg("key_estimation", "key_estimation")
    )
    assert table.column("label").to_pylist() == [["C# major"], ["D minor"], ["C# major"]]
    assert report.unknown_labels[1:] == ["k2 (row 3: label 'A# minor' not in dataset.classes)"]


def test_multilabel_unknown_tags_dropped_and_regression_validated(audio_dir):
    rows = [["m1", "audio/a0.wav", "rock,kazoo"], ["m2", "audio/a1.wav", ""]]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "tags"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags", classes=["rock", "pop"])
    table, report = load_dataset(ds, task_cfg("tags", "multilabel_classification"))
    assert table.column("label").to_pylist() == [["rock"], []]
    assert report.unknown_labels == ["m1 (row 2: label 'kazoo' not in dataset.classes, dropped)"]

    rows = [
        ["r1", "audio/a0.wav", "0.5;-1"],
        ["r2", "audio/a1.wav", "high;0"],
        ["r3", "audio/a2.wav", "valence=1e-3;arousal=2"],
        ["r4", "audio/a3.wav", ""],
    ]
    manifest = _write_csv(audio_dir / "r.csv", ["track_id", "audio_path", "va"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="va", label_separator=";")
    table, report = load_dataset(ds, task_cfg("emotion", "regression", label="va"))
    assert table.column("label").to_pylist() == [["0.5", "-1"], ["valence=1e-3", "arousal=2"]]
    assert report.unknown_labels[0].startswith("r2 (row 3: non-numeric")
    assert report.unlabelled[0].startswith("r4 (row 5")


def test_tags_joined_by_another_separator_than_label_separator_are_named_with_the_fix(audio_dir):
    """``label_separator`` defaults to ``,``; a manifest joining its tags with ``;`` loaded with every cell one tag
    (``piano;voice`` a class of its own) and nothing said. The report now notes the separator the tags hold."""
    rows = [[f"t{i}", f"audio/a{i}.wav", tags] for i, tags in enumerate(["piano;voice", "piano", "drums;voice"])]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "tags"], rows)
    task = task_cfg("tags", "multilabel_classification")
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags"), task)
    assert report.notes == [
        "every track has one tag of tags split at label_separator ',', but 2 of its 3 tags hold ';' (e.g. "
        "'piano;voice'): if ';' separates the tags, set label_separator: ';'"
    ]
    right = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="tags", label_separator=";")
    table, report = load_dataset(right, task)
    assert not report.notes and table.column("label").to_pylist()[0] == ["piano", "voice"]


def test_missing_manifest_and_columns_name_the_fix(tmp_path):
    ds = ds_cfg("cat", "catalog", manifest=str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError, match=r"dataset\.manifest"):
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    m = _write_csv(tmp_path / "m.csv", ["track_id", "audio_path", "label"], [["a", "b", "c"]])
    ds = ds_cfg("cat", "catalog", manifest=str(m), label_column="genre")
    with pytest.raises(ValueError, match="has no column"):
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    ds = ds_cfg("cat", "catalog", manifest=str(m), label_column="label")
    with pytest.raises(ValueError, match="no usable rows") as err:
        load_dataset(ds, task_cfg("x", "multiclass_classification"))
    assert str(err.value).endswith(f"— check audio_column 'audio_path' and where its relative paths start ({tmp_path}: "
                                   "dataset.dir, else the manifest's folder)")  # fmt: skip
    # a regression task on a column of words: the error names the column and what it must hold
    write_audio(tmp_path / "b")
    with pytest.raises(ValueError, match="non-numeric regression target") as err:
        load_dataset(ds, task_cfg("x", "regression"))
    assert str(err.value).endswith("— check that label_column 'label' holds numbers, or name=value pairs for a "
                                   "regression task")  # fmt: skip
    # …which `repeval validate` says too (it stops at the first batch holding a target: only a column without one)
    fix = "check that label_column 'label' holds numbers, or name=value pairs for a regression task"
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'c' (row 2) — {fix}"
    ]
    m = _write_csv(tmp_path / "m.csv", ["track_id", "audio_path", "label"], [["a", "b", ""], ["c", "b", "high"]])
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'high' (row 3) — {fix}"
    ]
    folder = tmp_path / "m.d"  # a Parquet manifest in a folder: its rows numbered as the load numbers them, from 0
    folder.mkdir()
    pq.write_table(
        pa.table({"track_id": ["a", "c"], "audio_path": ["b", "b"], "label": ["", "high"]}), folder / "0.parquet"
    )
    assert catalog.manifest_problems(ds.model_copy(update={"manifest": str(folder)}), task_cfg("x", "regression")) == [
        f"label_column: no row of 'label' holds a regression target, it has cells such as 'high' (row 1) — {fix}"
    ]
    _write_csv(m, ["track_id", "audio_path", "label"], [["a", "b", "high"], ["c", "b", "valence=0.5"]])
    assert catalog.manifest_problems(ds, task_cfg("x", "regression")) == []  # one target: the load drops row 2
    assert catalog.manifest_problems(ds, task_cfg("x", "multiclass_classification")) == []


def test_report_caps_examples_but_counts_everything():
    from repeval.datasets.base import LoadReport

    report = LoadReport(max_items=3)
    for i in range(10):
        report.add("missing_audio", f"t{i}")
    assert len(report.missing_audio) == 3 and report.count("missing_audio") == 10
    assert report.lines()[0].startswith("10 missing audio files: t0, t1, t2 … (+5)")
    with pytest.raises(ValueError, match="unknown report kind"):
        report.add("typo", "x")


# ---------------------------------------------------------------- the shared data's manifests


def test_shared_manifests_load_as_catalogs(shared_data):
    medley = shared_data / "medley_solos_db_small" / "manifest.csv"
    ds = ds_cfg(
        "medley",
        "catalog",
        manifest=str(medley),
        track_id_column="uuid4",
        audio_column="path",
        label_column="instrument",
        split_column="subset",
    )
    table, report = load_dataset(ds, task_cfg("instrument", "multiclass_classification"))
    assert table.num_rows == 97 and not report.lines()
    assert split_counts(table) == {"train": 80, "validation": 9, "test": 8}

    tinysol = shared_data / "tinysol_mini" / "manifest.csv"
    ds = ds_cfg(
        "tinysol_mini",
        "catalog",
        manifest=str(tinysol),
        track_id_column="path",
        audio_column="path",
        label_column="pitch_class",
    )
    table, report = load_dataset(ds, task_cfg("pitch_class", "multiclass_classification"))
    assert table.num_rows == 12 and not report.lines()

    librosa = shared_data / "librosa_examples" / "manifest.csv"
    ds = ds_cfg(
        "librosa",
        "catalog",
        manifest=str(librosa),
        track_id_column="key",
        audio_column="path",
        label_column="description",
        label_separator=";",
    )
    table, report = load_dataset(ds, task_cfg("description", "multilabel_classification"))
    assert table.num_rows == 5 and not report.lines()
    assert ["jazz", "CC BY 3.0"] in table.column("label").to_pylist()


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


def test_first_row_of_an_id_wins_even_if_a_later_copy_is_broken(audio_dir, monkeypatch):
    """A later row of an id is a duplicate whatever happens to the first; when the first is left out itself (its
    audio missing), the id has no track though the later row was usable: its line said "only an id's first row is
    read" alone, as if that row had been — it now says the first was left out and to correct or delete it, whether
    the two rows are in one batch or not."""
    rows = [
        ["d1", "audio/a0.wav", "x"],
        ["d2", "audio/gone.wav", "x"],  # first d2 is unusable ...
        ["d1", "audio/gone.wav", "y"],  # ... a later copy of d1 is reported as a duplicate, not as missing audio
        ["d2", "audio/a1.wav", "y"],  # ... and a later d2 never silently replaces the first one
        ["", "audio/a1.wav", "y"],
        ["", "audio/a2.wav", "y"],  # empty ids are not duplicates of each other
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label")
    for block in (catalog.CSV_BLOCK_BYTES, 40):  # one batch; a batch or two a row
        monkeypatch.setattr("repeval.datasets.manifest.CSV_BLOCK_BYTES", block)
        table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
        assert table.column("track_id").to_pylist() == ["d1"]
        assert report.duplicate_ids == [
            "d1 (row 4: repeats the id of row 2 — only an id's first row is read)",
            "d2 (row 5: repeats the id of row 3, itself left out: correct row 3 or delete it — only an id's first row "
            "is read)",
        ]
        assert report.missing_rows.table().column("track_id").to_pylist() == ["d2"]
        assert len(report.other) == 2 and all("empty track id" in o for o in report.other)


def test_a_repeated_ids_first_row_dropped_for_its_number_of_targets_is_said_left_out(audio_dir):
    """A regression row whose number of targets is not most rows' is dropped after the rows are read: when it was the
    first row of a repeated id, the later row's line read as if it had been kept ("only an id's first row is read"),
    though the id had no track — it now says that row was left out itself, with the fix."""
    rows = [["r0", "audio/a0.wav", "0.1"], ["d1", "audio/a1.wav", "0.1;0.2"], ["r2", "audio/a2.wav", "0.3"]]
    rows.append(["d1", "audio/a3.wav", "0.4"])
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "va"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="va", label_separator=";")
    table, report = load_dataset(ds, task_cfg("va", "regression"))
    assert table.column("track_id").to_pylist() == ["r0", "r2"]
    assert report.duplicate_ids == [
        "d1 (row 5: repeats the id of row 3, itself left out: correct row 3 or delete it — only an id's first row is "
        "read)"
    ]
    assert report.unknown_labels[0].startswith("d1 (row 3: 2 regression targets in va, '0.1;0.2', where 2 of its")


def test_dot_dot_steps_of_local_audio_paths_follow_one_rule(audio_dir):
    """An absolute audio path kept its '..' steps (one file under two names beside a relative path to it) while a
    relative one had them resolved as text — where a folder is a symlink, to another file than the one the system
    opens (``link/../audio`` is the link's target's parent's ``audio``): both are now resolved where the system finds
    the same file, and opened as written where it does not."""
    elsewhere = audio_dir / "elsewhere"
    write_audio(elsewhere / "audio" / "b.wav")
    (elsewhere / "sub").mkdir()
    (audio_dir / "link").symlink_to(elsewhere / "sub")
    rows = [
        ["t0", str(audio_dir / "audio" / ".." / "audio" / "a0.wav"), "x"],
        ["t1", "link/../audio/b.wav", "y"],
        ["t2", "audio/../audio/a1.wav", "y"],
    ]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "label"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="label")
    table, report = load_dataset(ds, task_cfg("label", "multiclass_classification"))
    assert table.column("audio_path").to_pylist() == [
        str(audio_dir / "audio" / "a0.wav"),
        str(audio_dir / "link" / ".." / "audio" / "b.wav"),
        str(audio_dir / "audio" / "a1.wav"),
    ]
    assert report.lines() == []


def test_regression_targets_get_a_plain_seeded_split(audio_dir):
    """Each distinct target is not a stratum of its own (those all landed in train): 80/10/10 exactly."""
    rows = [[f"r{i}", f"audio/a{i % 4}.wav", f"{0.001 * i:.3f}"] for i in range(200)]
    manifest = _write_csv(audio_dir / "m.csv", ["track_id", "audio_path", "valence"], rows)
    ds = ds_cfg("cat", "catalog", manifest=str(manifest), label_column="valence")
    table, _ = load_dataset(ds, task_cfg("valence", "regression"))
    assert split_counts(table) == {"train": 160, "validation": 20, "test": 20}
    classes, _ = load_dataset(ds, task_cfg("valence", "multiclass_classification"))
    assert split_counts(classes)["train"] == 200  # as classes, every value is a one-track stratum
    # a ';'-separated export whose decimal mark is a comma: '0,031' split at label_separator ',' into 0 and 31 — noted
    (audio_dir / "eu.csv").write_text("".join(f"{a};{p};{v.replace('.', ',')}\n" for a, p, v in [
        ("track_id", "audio_path", "valence"), *rows]))  # fmt: skip
    eu = ds_cfg("cat", "catalog", manifest=str(audio_dir / "eu.csv"), label_column="valence", delimiter=";")
    table, report = load_dataset(eu, task_cfg("valence", "regression"))
    assert table.column("label")[31].as_py() == ["0", "031"] and report.notes == [
        "every track has two targets in valence, split at label_separator ',', each a whole number (e.g. '0,000': 0 "
        "and 000): if ',' is its decimal mark, set decimal: ',' — each cell is then one target (0.000)"
    ]
    assert not load_dataset(ds, task_cfg("valence", "regression"))[1].notes  # decimal points: nothing to note


def test_decimal_commas_of_a_semicolon_export_are_read_as_the_same_labels_as_decimal_points(audio_dir):
    """A spreadsheet exported where the decimal mark is a comma: ``;`` between the columns (``delimiter``), ``0,031``
    for 0.031 (``decimal: ','``, as pandas' ``decimal=``). Its rows are the point-decimal manifest's — the same labels
    (kept with a decimal point), splits and digests, so a group trained on either is not trained again and runs on
    either compare — while reading it with the default ``decimal`` gives other labels, two whole numbers each: the
    group's tracks digest tells them apart, and the note names the fix. A cell is one target unless
    ``label_separator`` is another character than the mark; the wrong mark either way names its fix."""
    from repeval.run.groups import tracks_digest
    from repeval.run.split_digest import digest_test_rows

    task = task_cfg("valence", "regression")
    rows = [[f"r{i}", f"audio/a{i % 4}.wav", f"{0.001 * i - 0.05:.3f}", "x=1.5e-2|y=2"] for i in range(60)]
    header = ["track_id", "audio_path", "valence", "xy"]
    point = ds_cfg(
        "cat", "catalog", label_column="valence", manifest=str(_write_csv(audio_dir / "m.csv", header, rows))
    )
    (audio_dir / "eu.csv").write_text(
        "".join(";".join(r[:2] + [c.replace(".", ",") for c in r[2:]]) + "\n" for r in [header, *rows])
    )
    eu = ds_cfg("cat", "catalog", manifest=str(audio_dir / "eu.csv"), label_column="valence", delimiter=";",
                decimal=",")  # fmt: skip
    want, _ = load_dataset(point, task)
    got, report = load_dataset(eu, task)
    assert catalog.manifest_problems(eu, task) == [] and report.lines() == []
    assert got.column("label")[31].as_py() == ["-0.019"] and got.to_pylist() == want.to_pylist()
    assert tracks_digest(got) == tracks_digest(want) and digest_test_rows(got) == digest_test_rows(want)
    as_points, report = load_dataset(eu.model_copy(update={"decimal": "."}), task)  # the setting changes the labels
    assert as_points.column("label")[31].as_py() == ["-0", "019"] and "set decimal: ','" in report.notes[0]
    assert tracks_digest(as_points) != tracks_digest(want) and digest_test_rows(as_points) != digest_test_rows(want)

    # the same cells quoted in a comma-separated file: the same note, and decimal ',' reads them (its own module)
    quoted = _write_csv(audio_dir / "quoted.csv", ["track_id", "audio_path", "valence"],
                        [[i, p, v.replace(".", ",")] for i, p, v, _ in rows])  # fmt: skip
    note = load_dataset(point.model_copy(update={"manifest": str(quoted)}), task)[1].notes[0]
    assert note.endswith(": if ',' is its decimal mark, set decimal: ',' — each cell is then one target (-0.050)")

    # `repeval validate` warns of it from the first rows, naming the fix; with decimal ',' it has nothing to say
    config = {"experiments": [{
        "task": {"name": "valence", "type": "regression"},
        "datasets": [eu.model_dump(include={"name", "type", "manifest", "label_column", "delimiter"})],
        "deformations": [], "embedding_models": ["mfcc-stats"], "metrics": ["r2"],
        "downstream_models": [{"type": "linear"}],
    }]}  # fmt: skip
    warned = (
        "warning: experiments[0].datasets[0].label_column: the first 60 cells of 'valence' each hold two whole numbers "
        "split at label_separator ',' (e.g. '-0,050'), read as two targets — if ',' is its decimal mark, set "
        "decimal: ','\n"
    )
    for decimal, said in ((".", warned), (",", "")):
        config["experiments"][0]["datasets"][0]["decimal"] = decimal
        (audio_dir / "c.yaml").write_text(yaml.safe_dump(config))
        res = CliRunner().invoke(app, ["validate", "--skip-model-check", str(audio_dir / "c.yaml")])
        assert (res.exit_code, res.stderr) == (0, said), res.output

    # several targets per cell: at a label_separator other than the mark, named ones too (a name's comma stays)
    xy = task_cfg("xy", "regression")
    pairs, _ = load_dataset(eu.model_copy(update={"label_column": "xy", "label_separator": "|"}), xy)
    assert pairs.column("label")[0].as_py() == ["x=1.5e-2", "y=2"]
    assert pairs.to_pylist() == load_dataset(point.model_copy(update={"label_column": "xy", "label_separator": "|"}),
                                             xy)[0].to_pylist()  # fmt: skip
    # the other mark than the one set: every row named with the fix, and `repeval validate` (manifest_problems) says it
    (points := audio_dir / "points.csv").write_text((audio_dir / "m.csv").read_text().replace(",", ";"))
    wrong = [
        (
            eu.model_copy(update={"label_separator": "|", "decimal": "."}),
            "if ',' is its decimal mark, set decimal: ','",
        ),
        (
            eu.model_copy(update={"manifest": str(points)}),
            "it has a decimal point, but decimal is ',': remove decimal if '.' is its decimal mark",
        ),
    ]
    for ds, fix in wrong:
        with pytest.raises(ValueError, match="no usable rows among 60") as err:
            load_dataset(ds, task)
        assert f"r0 (row 2: non-numeric regression target in valence — {fix})" in str(err.value)
        (problem,) = catalog.manifest_problems(ds, task)
        assert problem.startswith("label_column: no row of 'valence' holds a regression target, it has cells such as")
        assert problem.endswith(f"(row 2) — {fix}")


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


def test_annotated_column_masks_the_labels_a_track_leaves_unannotated(audio_dir):
    """A catalog manifest names each track's annotated labels (``annotated_column``, cells split like the labels):
    with ``unannotated: mask`` the rows carry them (a track's own labels count as annotated, labels outside
    ``dataset.classes`` are left out, an empty cell annotates every label) and the targets are NaN elsewhere;
    ``unannotated: absent`` reads every unannotated pair as absent; the key is a catalog's."""
    from repeval.datasets.base import OBSERVED
    from repeval.tuning.data import encode

    rows = [
        ["t0", "audio/a0.wav", "piano|violin", "piano | violin|flute"],
        ["t1", "audio/a1.wav", "flute", ""],  # every label annotated
        ["t2", "audio/a2.wav", "", "piano"],  # piano annotated absent; violin, flute unannotated
        ["t3", "audio/a3.wav", "violin", "piano|kazoo"],  # violin present: annotated though not listed
    ]
    header = ["track_id", "audio_path", "instruments", "rated"]
    manifest = str(_write_csv(audio_dir / "m.csv", header, rows))
    pq.write_table(pacsv.read_csv(manifest), audio_dir / "m.parquet")
    task = task_cfg("instruments", "multilabel_classification")
    kw = {"label_column": "instruments", "label_separator": "|", "classes": ["piano", "violin", "flute"]}
    for path in (manifest, str(audio_dir / "m.parquet")):
        table, _ = load_dataset(ds_cfg("cat", "catalog", manifest=path, annotated_column="rated", **kw), task)
        by_id = dict(zip(table.column("track_id").to_pylist(), table.column(OBSERVED).to_pylist(), strict=True))
        assert by_id == {"t0": ["flute", "piano", "violin"], "t1": None, "t2": ["piano"], "t3": ["piano", "violin"]}
    order = sorted(range(4), key=lambda i: table.column("track_id")[i].as_py())
    labels, observed = table.column("label").take(order), table.column(OBSERVED).take(order)
    y, _ = encode(task.type, labels.to_pylist(), ["flute", "piano", "violin"], observed.to_pylist())
    nan = np.nan
    np.testing.assert_array_equal(y, [[0, 1, 1], [1, 0, 0], [nan, 0, nan], [nan, 0, 1]])
    absent, _ = load_dataset(
        ds_cfg("cat", "catalog", manifest=manifest, annotated_column="rated", unannotated="absent", **kw), task
    )
    assert OBSERVED not in absent.column_names
    with pytest.raises(ValueError, match="'unannotated' does not apply"):
        ds_cfg("cat", "catalog", manifest=manifest, unannotated="absent", **kw)
    with pytest.raises(ValueError, match="'annotated_column' does not apply"):
        ds_cfg("tinysol", "mirdata", annotated_column="rated")
    missing = ds_cfg("cat", "catalog", manifest=manifest, annotated_column="rate", **kw)
    assert any(
        "annotated_column: the manifest has no column 'rate'" in p for p in catalog.manifest_problems(missing, task)
    )
