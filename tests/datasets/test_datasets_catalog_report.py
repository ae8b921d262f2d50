"""What a catalog's load report says of the rows it drops: counts in the singular or the plural as they are, and a
regression row with another number of targets than the others named by its row, as every other dropped row is."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from dataset_fixtures import ds_cfg, task_cfg

import repeval.datasets.manifest as manifest
from repeval.datasets import load_dataset
from repeval.datasets.base import LoadReport
from repeval.datasets.catalog import _same_target_count
from repeval.datasets.target_text import TargetCounts


def _manifest(path, rows):
    path.write_text("\n".join(["track_id,audio_path,label", *rows]) + "\n")
    return str(path)


def test_counts_of_one_are_singular_and_of_several_plural(audio_dir):
    """The report read "1 duplicate ids" and "1 unknown labels", then "1 missing audio", "2 other" and "2 unknown
    labels" of regression targets that are no label unknown to anything; every kind now reads in plain words, and a
    hint about one missing file "1 of the first 1 missing audio files exist"."""
    task = task_cfg("genre", "multiclass_classification")
    rows = ["a,audio/a0.wav,rock", "a,audio/a1.wav,rock", "b,audio/a2.wav,polka", "c,audio/gone.wav,rock"]
    one = _manifest(audio_dir / "one.csv", [*rows, ",audio/a0.wav,rock"])
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=one, label_column="label", classes=["rock"]), task)
    assert report.lines()[:4] == [
        f"1 missing audio file: c (row 5: {audio_dir}/audio/gone.wav)",
        "1 duplicate id: a (row 3: repeats the id of row 2 — only an id's first row is read)",
        "1 unusable label: b (row 4: label 'polka' not in dataset.classes)",
        "1 other problem: '' (row 6: empty track id)",
    ]
    rows = ["a,audio/a0.wav,rock", "a,audio/a1.wav,rock", "a,audio/a2.wav,rock", "b,audio/a2.wav,polka"]
    rows += ["c,audio/a2.wav,jazz", "d,audio/gone.wav,rock", "e,audio/gone2.wav,rock", ",audio/a0.wav,rock", ",x,y"]
    two = _manifest(audio_dir / "two.csv", rows)
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=two, label_column="label", classes=["rock"]), task)
    assert [line.split(":")[0] for line in report.lines()] == [
        "2 missing audio files",
        "2 duplicate ids",
        "2 unusable labels",
        "2 other problems",
    ]
    ids = _manifest(audio_dir / "ids.csv", [",audio/a0.wav,rock", " ,audio/a1.wav,rock"])
    with pytest.raises(ValueError) as err:  # was "check split_column None: train, validation or test"
        load_dataset(ds_cfg("cat", "catalog", manifest=ids, label_column="label"), task)
    assert str(err.value).endswith(
        "(2 other problems: '' (row 2: empty track id), '' (row 3: empty track id)) — write a track id in each row "
        "of track_id_column 'track_id'"
    )
    (audio_dir / "A0.wav").write_bytes((audio_dir / "audio" / "a0.wav").read_bytes())
    case = _manifest(audio_dir / "case.csv", ["a,a0.wav,rock", "b,audio/a1.wav,rock"])
    _, report = load_dataset(ds_cfg("cat", "catalog", manifest=case, label_column="label"), task)
    assert report.notes == [
        f"the missing audio file exists under other upper/lower case (e.g. {audio_dir}/a0.wav is "
        f"{audio_dir}/A0.wav): paths are case-sensitive here — correct their case in the manifest"
    ]


def test_a_row_with_another_number_of_targets_is_named_by_its_row(audio_dir, monkeypatch):
    """Rows refused because their number of regression targets is not most rows' were named by track id alone,
    unlike every other refused row: now by row too — the manifest read in several batches (small CSV blocks), the
    count most rows have known only at its end."""
    monkeypatch.setattr(manifest, "CSV_BLOCK_BYTES", 64)
    cells = ["0.5", '"1,5"', "-0.25", "0.75", "2", "3", '"0.1,0.2"', "4", "5"]
    rows = [f"t{i},audio/a{i % 3}.wav,{c}" for i, c in enumerate(cells)]
    ds = ds_cfg("cat", "catalog", manifest=_manifest(audio_dir / "m.csv", rows), label_column="label")
    table, report = load_dataset(ds, task_cfg("valence", "regression"))
    assert table.num_rows == 7
    assert report.unknown_labels == [
        "t1 (row 3: 2 regression targets in label, '1,5', where 7 of its 9 rows have 1 — every row needs as many)",
        "t6 (row 8: 2 regression targets in label, '0.1,0.2', where 7 of its 9 rows have 1 — every row needs as many)",
    ]
    small = LoadReport(max_items=1)  # past max_items rows named, the others counted
    counts = TargetCounts(1)
    counts.add(np.arange(4), pa.array(list("abcd")), pa.array([["1"], ["2", "3"], ["4"], ["5", "6"]]))
    _same_target_count(table, small, "label", ",", "csv", counts)
    assert small.count("unknown_labels") == 2 and small.unknown_labels[0].startswith("b (row 3: 2 regression targets")


def test_the_rows_usable_line_reads_at_catalog_scale(audio_dir, caplog):
    """A 12,000-row catalog's load said "catalog catalog.csv: 11292 of 12000 rows usable" beside a report of "706
    missing audio files": its counts now have thousands separators, and one row is said in the singular."""
    import logging

    task = task_cfg("genre", "multiclass_classification")
    rows = [f"t{i},audio/a{i % 3}.wav,rock" for i in range(1100)] + ["gone,audio/gone.wav,rock"]
    big = _manifest(audio_dir / "big.csv", rows)
    caplog.set_level(logging.INFO, logger="repeval.datasets.catalog")
    load_dataset(ds_cfg("cat", "catalog", manifest=big, label_column="label"), task)
    assert f"catalog {big}: 1,100 of 1,101 rows usable" in caplog.messages, caplog.messages
    one = _manifest(audio_dir / "one.csv", ["a,audio/a0.wav,rock"])
    load_dataset(ds_cfg("cat", "catalog", manifest=one, label_column="label"), task)
    assert f"catalog {one}: 1 of 1 row usable" in caplog.messages, caplog.messages
