"""A catalog manifest's header as spreadsheets write it: names with spaces (``track id``), stray spaces typed around a
name (`` Audio File ``), and a column the dataset names that the header lacks — named alike by the load and by
``repeval validate``, with the closest header cell."""

from __future__ import annotations

import pytest
from dataset_fixtures import ds_cfg, refused_alike, task_cfg

import repeval.datasets.catalog as catalog
from repeval.datasets import load_dataset
from repeval.datasets.manifest_format import ManifestEncodingError

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


def test_a_name_two_header_cells_hold_with_other_spaces_is_named_with_both(audio_dir):
    """`` label`` and ``label `` for ``label``: neither was read (right: which one is meant?), but the load and
    ``repeval validate`` said "no column 'label' — did you mean 'label'?", the name the user had written. They name
    both cells and the fix."""
    ds = _ds(audio_dir / "m.csv", "track_id,audio_path, label,label ", label_column="label")
    said = (
        "label_column: the manifest has no column 'label' but 2 that differ from it only by the spaces around them, "
        "' label', 'label ' — rename the one to read 'label' in the header, or set label_column to the one to read "
        "(label_column: ' label')"
    )
    refused_alike(ds, TASK, said)
    table, report = load_dataset(ds.model_copy(update={"label_column": " label"}), TASK)
    assert table.column("label").to_pylist() == [["rock"], ["pop"], ["rock"]] and report.lines() == []


def test_a_header_cell_in_windows_1252_is_refused_naming_its_row_and_the_conversion(audio_dir):
    """``Durée`` in a header saved as Windows-1252 (Excel's 'CSV (Comma delimited)' in a French locale) stopped the
    load and ``repeval validate`` with Python's ``UnicodeDecodeError`` and a traceback, even in a column the
    catalog does not read. Both name the header row and the conversion, as for a row of such bytes."""
    path = audio_dir / "m.csv"
    path.write_bytes("\n".join(["track_id,audio_path,genre,Dur\xe9e", "r0,audio/a0.wav,rock,3"]).encode("cp1252"))
    ds = ds_cfg("cat", "catalog", manifest=str(path))
    said = (
        f"{path} row 1 is not UTF-8 (byte 0xe9 in b'Dur\\xe9e', 'Durée' in Windows-1252) — save the manifest as "
        "UTF-8 (Excel: File > Save As > 'CSV UTF-8 (Comma delimited)'; LibreOffice: 'Text CSV', character set "
        "UTF-8), or convert it: iconv -f WINDOWS-1252 -t UTF-8 (or the encoding it was written in)"
    )
    assert catalog.manifest_problems(ds, TASK) == [f"manifest: {said}"]
    with pytest.raises(ManifestEncodingError) as err:
        load_dataset(ds, TASK)
    assert str(err.value) == said
