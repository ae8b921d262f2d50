"""A catalog manifest as a database or a spreadsheet exports it: quoted cells over several lines, a byte-order mark,
CRLF line ends, blank lines and empty rows after the last one, a workbook instead of a CSV, text in another encoding
than UTF-8; audio file names in another Unicode normalization than the manifest's, paths relative to the current
directory; tags joined by several separators."""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest
from dataset_fixtures import ds_cfg, task_cfg, write_audio

import repeval.datasets.catalog as catalog
import repeval.datasets.manifest as manifest
from repeval.datasets import load_dataset
from repeval.datasets.manifest_format import ManifestEncodingError, WorkbookManifestError

TASK = task_cfg("label", "multiclass_classification")


def _load(path, task=TASK, **kw):
    ds = ds_cfg("cat", "catalog", manifest=str(path), label_column="label", **kw)
    return load_dataset(ds, task), catalog.manifest_problems(ds, task)


def _refused(path, error: type[Exception]) -> str:
    """What the load of the manifest ``path`` stops with (an ``error``), which ``repeval validate`` says too."""
    with pytest.raises(error) as err:
        _load(path)
    ds = ds_cfg("cat", "catalog", manifest=str(path), label_column="label")
    assert catalog.manifest_problems(ds, TASK) == [f"manifest: {err.value}"]
    return str(err.value)


def test_a_quoted_cell_over_lines_is_read_whole_across_csv_blocks(audio_dir, monkeypatch):
    """A title written over two lines inside quotes: a CSV block ending between its lines cut its row in two — a
    parse error naming no row, or (its second line holding as many commas as the header) a row of its own with the
    track id ``Live at…``. Read whole wherever the blocks end, and rows after it numbered as a spreadsheet shows
    them (one per record)."""
    monkeypatch.setattr(manifest, "CSV_BLOCK_BYTES", 64)
    lines = ["track_id,audio_path,label,title"]
    for i in range(12):
        title = f'"Song {i}\nLive at x,y,z"' if i % 2 else f"Song {i}"
        lines.append(f"t{i},audio/a{i % 3}.wav,{'ab'[i % 2]},{title}")
    lines.append("t12,audio/ghost.wav,a,Last")  # row 14 (record 14; line 20)
    (path := audio_dir / "m.csv").write_text("\n".join(lines) + "\n")
    (table, report), problems = _load(path)
    assert table.column("track_id").to_pylist() == [f"t{i}" for i in range(12)]
    assert [r.split(":")[0] for r in report.missing_audio] == ["t12 (row 14"] and problems == []


def test_blank_lines_and_a_spreadsheets_trailing_empty_rows(audio_dir):
    """A spreadsheet's export (byte-order mark, CRLF, ``;;`` rows after the last one) and a blank line: the empty
    rows were each reported as ``None (row N: empty track id)`` (failing ``--strict``), and a blank line, skipped,
    numbered every row after it one too low. They are skipped with a note, and rows keep their line numbers."""
    text = (
        "\ufefftrack_id;audio_path;label\r\n"
        "t0;audio/a0.wav;a\r\n"
        "\r\n"  # row 3: a blank line
        "t1;audio/ghost.wav;b\r\n"  # row 4
        ";audio/a1.wav;b\r\n"  # row 5: no track id, a real problem
        "t2;audio/a2.wav;b\r\n"
        ";;\r\n;;\r\n"
    )
    (path := audio_dir / "m.csv").write_bytes(text.encode("utf-8"))
    (table, report), problems = _load(path, delimiter=";")
    assert table.column("track_id").to_pylist() == ["t0", "t2"] and problems == []
    assert [m.split(":")[0] for m in report.missing_audio] == ["t1 (row 4"]
    assert report.other == ["'' (row 5: empty track id)"]
    assert report.counts() == {"missing_audio": 1, "other": 1}  # the empty rows are no problem
    assert report.notes == [
        "3 empty rows skipped (e.g. row 3: no track id, audio path or label — a blank line, or the empty rows a "
        "spreadsheet exports after its last one)"
    ]
    # a header followed by empty rows only: repeval validate says it has no rows, as of a header alone
    (empty := audio_dir / "e.csv").write_text("track_id;audio_path;label\r\n\r\n;;\r\n")
    ds = ds_cfg("cat", "catalog", manifest=str(empty), label_column="label", delimiter=";")
    assert catalog.manifest_problems(ds, TASK) == [f"manifest: {empty} has a header but no rows — write its rows first"]


def test_a_workbook_or_another_encoding_than_utf8_is_refused_naming_the_conversion(audio_dir):
    """An Excel workbook (``.xlsx``, or an ``.xls`` saved under a ``.csv`` name) was "empty (0 bytes)"; a UTF-16 export
    ("Unicode Text") had a row of one cell ``'\\x00'``; a Windows-1252 one stopped with pyarrow's ``invalid UTF8 data``
    naming no row. Each is refused naming what it is and the conversion, by the load and ``repeval validate``."""
    sheet = pd.DataFrame(
        {"track_id": ["007", "008"], "audio_path": ["audio/a0.wav", "audio/a1.wav"], "label": list("ab")}
    )
    sheet.to_excel(path := audio_dir / "tracks.xlsx", index=False)  # openpyxl: mirdata's dependency
    (ole := audio_dir / "export.csv").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    for book, kind in ((path, "an Excel workbook"), (ole, "an Excel 97-2003 workbook")):
        said = _refused(book, WorkbookManifestError)
        assert said.startswith(f"{book} is {kind}, but a catalog manifest is CSV or Parquet — export the sheet as CSV")
    # the line it names (run as a user would) gives the catalog as written, ids such as '007' kept
    code = str(WorkbookManifestError(str(path), "")).split("with pandas (and openpyxl): ", 1)[1].split(" (dtype", 1)[0]
    exec(f"import pandas\n{code}")
    (table, report), _ = _load(audio_dir / "tracks.parquet")
    assert table.column("track_id").to_pylist() == ["007", "008"] and report.lines() == []
    rows = "track_id\taudio_path\tlabel\r\nt0\taudio/a0.wav\tBeyoncé\r\n"
    (utf16 := audio_dir / "m.tsv").write_bytes(rows.encode("utf-16"))
    with pytest.raises(ManifestEncodingError, match=r"m.tsv is UTF-16 text .* iconv -f UTF-16 -t UTF-8"):
        _load(utf16)
    ds = ds_cfg("cat", "catalog", manifest=str(utf16), label_column="label")
    assert catalog.manifest_problems(ds, TASK)[0].startswith(f"manifest: {utf16} is UTF-16 text")
    (latin := audio_dir / "w.csv").write_bytes(
        "track_id,audio_path,label\r\nt0,audio/a0.wav,a\r\nt1,audio/a1.wav,Beyoncé\r\n".encode("cp1252")
    )
    with pytest.raises(ManifestEncodingError) as err:
        _load(latin)
    assert str(err.value).startswith(
        f"{latin} row 3 is not UTF-8 (byte 0xe9 in b'Beyonc\\xe9', 'Beyoncé' in Windows-1252) — save the manifest "
        "as UTF-8 (Excel: File > Save As > 'CSV UTF-8 (Comma delimited)'"
    )


def test_audio_named_in_another_unicode_normalization_is_read_and_paths_from_the_cwd_are_named(audio_dir, monkeypatch):
    """A database writes ``Beyoncé`` composed (NFC); files copied from macOS keep their names decomposed (NFD), which a
    Linux file system tells apart: every such track was "missing audio", with no hint. It is read from the file that
    exists, with a note; a path with spaces and accents is read as it is. Paths written relative to the directory a
    tool ran in (not the manifest's folder), or with Windows's ``\\``, are missing, with a note naming the fix."""
    nfd = unicodedata.normalize("NFD", "Beyoncé – Halo.wav")
    write_audio(audio_dir / "audio" / nfd, 5)
    write_audio(audio_dir / "audio" / "My Songs" / "Café Olé.wav", 6)
    nfc = unicodedata.normalize("NFC", nfd)
    rows = [
        f"t0,audio/{nfc},a",
        "t1,audio/My Songs/Café Olé.wav,b",
        "t2,audio/a0.wav,a",
        f"t3,{audio_dir}/audio/a1.wav,b",
        "t4,audio\\a2.wav,a",  # a manifest written on Windows
    ]
    (path := audio_dir / "lists" / "m.csv").parent.mkdir()
    path.write_text("track_id,audio_path,label\n" + "\n".join(rows) + "\n")
    (table, report), _ = _load(path, dir=str(audio_dir))
    assert table.column("track_id").to_pylist() == ["t0", "t1", "t2", "t3"]  # not t4
    assert table.column("audio_path").to_pylist()[0] == f"{audio_dir}/audio/{nfd}"  # the file that exists
    assert report.counts() == {"missing_audio": 1} and report.notes == [
        "1 audio path names a file whose name is written in another Unicode normalization on disk (e.g. "
        "'Beyonc\\xe9 \\u2013 Halo.wav' is 'Beyonce\\u0301 \\u2013 Halo.wav': decomposed, NFD, as macOS writes names): "
        "read from that file",
        f"the missing audio file exists with '/' in place of '\\' (e.g. {audio_dir}/audio\\a2.wav): write "
        "the manifest's paths with '/' (a manifest written on Windows)",
    ]
    # without dir, the paths start from the manifest's folder, lists/: they exist from the current directory
    monkeypatch.chdir(audio_dir)
    (table, report), _ = _load(path)
    assert table.column("track_id").to_pylist() == ["t3"] and report.count("missing_audio") == 4
    assert report.notes[-1] == (
        f"3 of the first 4 missing audio files exist relative to the current directory {audio_dir} (e.g. audio/"
        f"{nfc}), but relative paths start from {audio_dir}/lists (dataset.dir, else the manifest's folder) — set "
        f"dataset.dir: {audio_dir}, or write the paths relative to the manifest's folder"
    )


def test_tags_joined_by_another_separator_in_some_cells_are_named(audio_dir):
    """A tag column joined from two sources, ``rock,pop`` beside ``jazz; blues``: the second cell was one tag
    ``jazz; blues`` and nothing said, since other cells did split. The load notes it; ``/`` and ``+``, which tag
    names hold (``AC/DC``, ``drum+bass``), are not taken for separators there."""
    cells = ['"rock,pop"', "jazz; blues", '"drum+bass,AC/DC"', "soul|funk"]
    text = "track_id,audio_path,label\n" + "".join(f"t{i},audio/a{i % 3}.wav,{c}\n" for i, c in enumerate(cells))
    (path := audio_dir / "m.csv").write_text(text)
    (table, report), _ = _load(path, task_cfg("label", "multilabel_classification"))
    assert table.column("label").to_pylist() == [
        ["rock", "pop"],
        ["jazz; blues"],
        ["drum+bass", "AC/DC"],
        ["soul|funk"],
    ]
    assert report.notes == [
        "2 of the 6 tags of label hold ';' or '|' (e.g. 'jazz; blues', 'soul|funk'), which label_separator ',' does "
        "not split: if some cells separate their tags by ';' or '|', write them with ',' (one separator for the whole "
        "column)"
    ]


def test_a_windows_1252_byte_far_into_the_file_is_found_by_validate_as_by_the_load(audio_dir, monkeypatch):
    """``repeval validate`` read only the first rows: a Windows-1252 byte in a later row passed it, and the load
    stopped on it. Validate streams every byte (a UTF-8 decoder, block by block) and names the row the load names;
    a byte in a column the load does not read (pyarrow reads only the catalog's columns) stops neither — and the
    load named the first bad row of any column, not of those it reads."""
    monkeypatch.setattr(manifest, "CSV_BLOCK_BYTES", 256)  # the load's rows come in many blocks
    rows = [f"t{i},audio/a{i % 3}.wav,{'ab'[i % 2]},song {i}".encode() for i in range(200)]
    rows[20] = rows[20].replace(b"song 20", b"Caf\xe9 song")  # row 22: the title, a column the load does not read
    (title := audio_dir / "t.csv").write_bytes(b"\r\n".join([b"track_id,audio_path,label,title", *rows]) + b"\r\n")
    (table, report), problems = _load(title)
    assert table.num_rows == 200 and report.lines() == [] and problems == []
    rows[180] = rows[180].replace(b",a,", b",Beyonc\xe9,")  # row 182: a label
    (label := audio_dir / "l.csv").write_bytes(b"\r\n".join([b"track_id,audio_path,label,title", *rows]) + b"\r\n")
    said = _refused(label, ManifestEncodingError)
    assert said.startswith(f"{label} row 182 is not UTF-8 (byte 0xe9 in b'Beyonc\\xe9', 'Beyoncé' in Windows-1252)")


def test_labels_written_in_several_cases_are_noted(audio_dir):
    """A catalog joined from several exports writes one genre ``Rock``, ``rock `` and `` ROCK``, ``Hip  Hop`` beside
    ``hip hop``, and ``Café`` composed beside ``Café`` decomposed (a macOS export): each was read as a class of its
    own, the genre's tracks split between them, and nothing said. The load notes them (a single-label and a
    multilabel task alike), its fix for labels that name one class (a case may tell classes apart: keys written
    'C' major, 'c' minor); labels that differ otherwise are not named."""
    nfd = unicodedata.normalize("NFD", "Café")
    cells = ["Rock", "rock ", " ROCK", "jazz", '"Hip  Hop,jazz"', "hip hop", "Café", nfd]
    text = "track_id,audio_path,label\n" + "".join(f"t{i},audio/a{i % 3}.wav,{c}\n" for i, c in enumerate(cells))
    (path := audio_dir / "m.csv").write_text(text)
    said = (
        "7 labels of label differ only in letter case, spaces or Unicode normalization ('ROCK', 'Rock', 'rock'; "
        "'Hip  Hop', 'hip hop'; 'Cafe\\u0301', 'Caf\\xe9'): each is read as a class of its own, its tracks apart from "
        "the others' — if they name one class, write it one way in the manifest (e.g. 'rock'; a case that tells "
        "classes apart, 'C' major beside 'c' minor, is read as it is)"
    )
    (table, report), _ = _load(path, task_cfg("label", "multilabel_classification"))
    assert table.column("label").to_pylist()[:3] == [["Rock"], ["rock"], ["ROCK"]] and report.notes == [said]
    (table, report), _ = _load(path, TASK)  # one label a track: 'Hip  Hop,jazz' is one, alike to none
    assert report.notes == [said.replace("7 labels", "5 labels").replace("; 'Hip  Hop', 'hip hop'", "")]
    plain = audio_dir / "plain.csv"
    plain.write_text(
        text.replace("rock ", "pop").replace(" ROCK", "Rocks").replace("hip hop", "hip-hop").replace(nfd, "Cafe")
    )
    (table, report), _ = _load(plain, TASK)
    assert report.notes == []
