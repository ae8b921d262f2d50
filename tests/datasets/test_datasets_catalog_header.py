"""A catalog manifest's header as spreadsheets write it: names with spaces (``track id``), stray spaces typed around a
name (`` Audio File ``), and a column the dataset names that the header lacks — named alike by the load and by
``repeval validate``, with the closest header cell."""

from __future__ import annotations

from dataset_fixtures import ds_cfg, refused_alike, task_cfg

import repeval.datasets.catalog as catalog
from repeval.datasets import load_dataset

TASK = task_cfg("genre", "multiclass_classification")
ROWS = ["r0,audio/a0.wav,rock,train", "r1,audio/a1.wav,pop,test", "r2,audio/a2.wav,rock,"]


def _ds(path, header, **columns):
    path.write_text("\n".join([header, *ROWS]) + "\n")
    return ds_cfg("cat", "catalog", manifest=str(path), **columns)


def test_a_header_cell_with_stray_spaces_matches_its_name(audio_dir):
    """`` Audio File `` and `` label `` (spaces typed around the names in a spreadsheet) were no column
    ``Audio File`` or ``label``: the load stopped, ``repeval validate`` said "did you mean ' Audio File '?" — the name
    the user had written. They match, and so does a name the dataset writes with spaces around it."""
    header = "track id, Audio File , label ,Split "
    ds = _ds(audio_dir / "m.csv", header, track_id_column="track id", audio_column="Audio File",
             label_column="label", split_column="Split")  # fmt: skip
    table, report = load_dataset(ds, TASK)
    assert catalog.manifest_problems(ds, TASK) == [] and report.lines() == []
    assert table.column("track_id").to_pylist() == ["r0", "r1", "r2"]
    assert table.column("label").to_pylist() == [["rock"], ["pop"], ["rock"]]
    assert table.column("split").to_pylist()[:2] == ["train", "test"]
    spaced = _ds(audio_dir / "n.csv", "track_id,audio_path,label,split", label_column=" label ")
    assert catalog.manifest_problems(spaced, TASK) == []
    assert load_dataset(spaced, TASK)[0].column("label").to_pylist() == [["rock"], ["pop"], ["rock"]]


def test_a_missing_column_is_named_with_the_closest_header_cell_by_load_and_validate(audio_dir):
    """The load said "has no column(s) ['audio_file']; it has [...]" naming no close cell (``repeval validate`` did):
    both now say the same, the closest header cell as it would match (without its stray spaces) and the header with
    those spaces shown."""
    ds = _ds(audio_dir / "m.csv", "track id, Audio File ,label,split", track_id_column="track id",
             audio_column="audio_file", label_column="label")  # fmt: skip
    said = (
        "audio_column: the manifest has no column 'audio_file' — did you mean 'Audio File'? (its columns: track id, "
        "' Audio File ', label, split)"
    )
    refused_alike(ds, TASK, said)
