"""A catalog's regression targets with a decimal comma (``decimal: ','``) in the formats a spreadsheet exports: quoted
between commas, tab-separated, a Parquet column of numbers, and numbers with a thousands separator; and a manifest
written as JSON, which a catalog does not read."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_fixtures import ds_cfg, refused_alike, task_cfg

import repeval.datasets.catalog as catalog
import repeval.datasets.manifest as manifest
from repeval.datasets import load_dataset
from repeval.datasets.encoding import InvalidLabelError, encode_labels
from repeval.datasets.manifest import JsonManifestError, ManifestRowError
from repeval.run.groups import tracks_digest
from repeval.run.split_digest import digest_test_rows

TASK = task_cfg("valence", "regression")
HEADER = ["track_id", "audio_path", "valence"]
#: targets with a decimal point: negative, whole, with an exponent
VALUES = ["-0.05", "0.75", "2", "1.5e-2", "-1.25", "0.031"]


def _write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)  # quotes a cell that holds the delimiter, as a spreadsheet does
        w.writerows([HEADER, *rows])
    return path


def _rows(values: list[str], comma: bool = False) -> list[list[str]]:
    return [[f"r{i}", f"audio/a{i % 3}.wav", v.replace(".", ",") if comma else v] for i, v in enumerate(values)]


def _same_rows(got: pa.Table, want: pa.Table) -> None:
    """The rows, the labels' digest and the test rows' digest of ``got`` are ``want``'s."""
    assert got.to_pylist() == want.to_pylist()
    assert tracks_digest(got) == tracks_digest(want) and digest_test_rows(got) == digest_test_rows(want)


def test_quoted_decimal_commas_between_commas_read_as_decimal_points(audio_dir):
    """A comma-separated export whose numbers with a decimal comma are quoted (``"0,75"``, as Python's ``csv`` and
    spreadsheets write them) is unambiguous: with ``decimal: ','`` (no longer refused with a ``.csv``) it gives the
    rows, labels and digests of the same catalog with decimal points, as a tab-separated one does. An unquoted
    ``0,75`` is two cells: the load and ``repeval validate`` (``manifest_problems``) name its row and the fix."""
    point = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(VALUES))),
                   label_column="valence")  # fmt: skip
    want, _ = load_dataset(point, TASK)
    quoted = _write_csv(audio_dir / "quoted.csv", _rows(VALUES, comma=True))
    assert '"0,75"' in quoted.read_text()
    comma = ds_cfg("cat", "catalog", manifest=str(quoted), label_column="valence", decimal=",")
    got, report = load_dataset(comma, TASK)
    assert report.lines() == [] and catalog.manifest_problems(comma, TASK) == []
    assert got.column("label").to_pylist()[:2] == [["-0.05"], ["0.75"]]
    _same_rows(got, want)
    tabbed = _write_csv(audio_dir / "m.tsv", _rows(VALUES, comma=True), delimiter="\t")
    _same_rows(load_dataset(comma.model_copy(update={"manifest": str(tabbed)}), TASK)[0], want)

    # unquoted, 0,75 is two cells: the first such row named (counted like a spreadsheet's), with the fix
    text = quoted.read_text().replace('"0,75"', "0,75")
    (unquoted := audio_dir / "unquoted.csv").write_text(text)
    said = (
        f"{unquoted} row 3 has 4 cells, its header 3 ('r1,audio/a1.wav,0,75') — a number with a decimal comma, such "
        "as 0,75, is two cells between commas: quote it (\"0,75\", read with decimal: ','), or separate the columns "
        "by ';' and set delimiter: ';'"
    )
    bad = comma.model_copy(update={"manifest": str(unquoted)})
    with pytest.raises(ManifestRowError) as err:
        load_dataset(bad, TASK)
    assert str(err.value) == said and catalog.manifest_problems(bad, TASK) == [f"manifest: {said}"]
    (short := audio_dir / "short.csv").write_text(text.replace("r1,audio/a1.wav,0,75", "r1,audio/a1.wav"))
    with pytest.raises(ManifestRowError, match=r"row 3 has 2 cells, its header 3 \('r1,audio/a1.wav'\) — write a cell"):
        load_dataset(comma.model_copy(update={"manifest": str(short)}), TASK)


def test_a_parquet_column_of_numbers_needs_no_decimal_mark(audio_dir):
    """A Parquet catalog's target column of numbers (floats, integers) is read as it is with ``decimal: ','`` — every
    row was reported non-numeric, its cells read as text with a decimal point — and the load notes once that
    ``decimal`` has no effect on it; a Parquet column of text with decimal commas is still read with them, file by
    file in a folder of both."""
    table = pa.table({"track_id": [r[0] for r in _rows(VALUES)], "audio_path": [r[1] for r in _rows(VALUES)]})
    numbers = table.append_column("valence", pa.array([float(v) for v in VALUES]))
    pq.write_table(numbers, audio_dir / "n.parquet")
    point = ds_cfg("cat", "catalog", manifest=str(audio_dir / "n.parquet"), label_column="valence")
    want, _ = load_dataset(point, TASK)
    comma = point.model_copy(update={"decimal": ","})
    got, report = load_dataset(comma, TASK)
    _same_rows(got, want)
    assert report.lines() == [
        "decimal ',' has no effect on label_column 'valence': a Parquet column of numbers (double), read as they are "
        "— remove decimal"
    ]
    assert catalog.manifest_problems(comma, TASK) == []
    whole = table.append_column("valence", pa.array(range(len(VALUES)), pa.int32()))
    pq.write_table(whole, audio_dir / "w.parquet")
    ints, report = load_dataset(comma.model_copy(update={"manifest": str(audio_dir / "w.parquet")}), TASK)
    assert ints.column("label").to_pylist() == [[str(i)] for i in range(len(VALUES))] and len(report.notes) == 1
    # a folder: the first file's numbers as they are, the second file's text with decimal commas converted
    (folder := audio_dir / "parts").mkdir()
    pq.write_table(numbers.slice(0, 3), folder / "part-0.parquet")
    text = table.slice(3).append_column("valence", pa.array([v.replace(".", ",") for v in VALUES[3:]]))
    pq.write_table(text, folder / "part-1.parquet")
    parts, report = load_dataset(comma.model_copy(update={"manifest": str(folder)}), TASK)
    labels = parts.column("label").to_pylist()
    assert labels[3:] == [[v] for v in VALUES[3:]] and [float(x) for (x,) in labels] == [float(v) for v in VALUES]
    # the note said "remove decimal" there too, which splits the text file's 1,5e-2 into the targets 1 and 5e-2
    assert report.lines() == [
        "decimal ',' has no effect on label_column 'valence': a Parquet column of numbers (double), read as they are; "
        "the files where it is text are read with it (keep decimal ',')"
    ]


def test_a_thousands_separator_is_refused_by_row_not_read_as_other_numbers(audio_dir):
    """A spreadsheet's number format with a 1000 separator exports ``1.234,5`` (or ``1 234,5`` with a no-break
    space, French) where the decimal mark is a comma, and a quoted ``"1,234.5"`` where it is a point — which
    ``label_separator`` ``,`` split into the two targets 1 and 234.5. Each such row is refused, named with the cell
    written without the separator; the rows beside it are kept, and ``repeval validate`` names the fix when no row
    holds a target."""
    cells = ["1.234,5", "0,5", "1\u00a0234,5", "-12.345.678", "2"]
    eu = _write_csv(audio_dir / "eu.csv", _rows(cells), delimiter=";")
    ds = ds_cfg("cat", "catalog", manifest=str(eu), label_column="valence", delimiter=";", decimal=",")
    table, report = load_dataset(ds, TASK)
    assert table.column("label").to_pylist() == [["0.5"], ["2"]]
    fix = "in a spreadsheet, a number format without a 1000 separator"
    assert report.lines() == [
        f"3 unusable labels: r0 (row 2: regression target '1.234,5' in valence has a thousands separator — write its "
        f"numbers without a thousands separator ('1234,5'; {fix})), r2 (row 4: regression target '1\\xa0234,5' in "
        f"valence has a thousands separator — write its numbers without a thousands separator ('1234,5'; {fix})), "
        f"r3 (row 5: regression target '-12.345.678' in valence has a thousands separator — write its numbers without "
        f"a thousands separator ('-12345678'; {fix}))"
    ]
    us = _write_csv(audio_dir / "us.csv", _rows(["1,234.5", "0.5,1", "-2,000.25", "0,100.5"]))
    table, report = load_dataset(ds_cfg("cat", "catalog", manifest=str(us), label_column="valence"), TASK)
    assert table.column("label").to_pylist() == [["0.5", "1"], ["0", "100.5"]]  # no number's thousands start with 0
    (line,) = report.lines()
    assert line.startswith("2 unusable labels: r0 (row 2: regression target '1,234.5' in valence has a thousands")
    assert "r2 (row 4: regression target '-2,000.25' in valence" in line and "('-2000.25'; " in line
    grouped = _write_csv(audio_dir / "grouped.csv", _rows(["1.234,5", "2.000"]), delimiter=";")
    assert catalog.manifest_problems(ds.model_copy(update={"manifest": str(grouped)}), TASK) == [
        "label_column: no row of 'valence' holds a regression target, it has cells such as '1.234,5' (row 2) — it has "
        f"a thousands separator: write its numbers without a thousands separator ('1234,5'; {fix})"
    ]


def test_a_json_manifest_is_refused_naming_the_conversion(audio_dir):
    """A manifest written as JSON lines (or one array) was read as a CSV whose columns were pieces of its first object:
    "no column 'track_id' — did you mean '{"track_id": "r0"'?". The load and ``repeval validate`` say it is JSON and
    how to convert it, whatever its name."""
    lines = "".join(f'{{"track_id": "{i}", "audio_path": "{p}", "valence": {v}}}\n' for i, p, v in _rows(VALUES))
    for name in ("m.jsonl", "m.txt"):
        (path := audio_dir / name).write_text(lines)
        ds = ds_cfg("cat", "catalog", manifest=str(path), label_column="valence")
        beside = str(audio_dir / "m.parquet")
        said = (
            f"{path} is JSON, but a catalog manifest is CSV or Parquet — convert it, e.g. with pandas: "
            f"pandas.read_json({str(path)!r}, lines=True, dtype=False).to_parquet({beside!r}) (lines=False for one "
            "JSON array; dtype=False keeps ids such as '007' as written), and set manifest to that file"
        )
        with pytest.raises(JsonManifestError) as err:
            load_dataset(ds, TASK)
        assert str(err.value) == said and catalog.manifest_problems(ds, TASK) == [f"manifest: {said}"]
    # the line it names gives the catalog as written: ids such as '007' kept (pandas read them as the number 7), the
    # file beside the JSON so that audio paths relative to its folder still point at the audio
    (path := audio_dir / "ids.jsonl").write_text(lines.replace('"track_id": "r', '"track_id": "00'))
    with pytest.raises(JsonManifestError) as err:
        load_dataset(ds_cfg("cat", "catalog", manifest=str(path), label_column="valence"), TASK)
    code = str(err.value).split("with pandas: ", 1)[1].split(" (lines=False", 1)[0]
    exec(f"import pandas\n{code}")  # the message's own line, run as a user would
    converted, report = load_dataset(
        ds_cfg("cat", "catalog", manifest=str(audio_dir / "ids.parquet"), label_column="valence"), TASK
    )
    assert sorted(converted.column("track_id").to_pylist()) == [f"00{i}" for i in range(len(VALUES))]
    assert report.lines() == [] and converted.num_rows == len(VALUES)
    (array := audio_dir / "array.csv").write_text("[\n" + lines.replace("}\n", "},\n")[:-2] + "\n]\n")
    with pytest.raises(JsonManifestError):
        load_dataset(ds_cfg("cat", "catalog", manifest=str(array), label_column="valence"), TASK)


def test_a_minus_sign_is_read_and_other_typographic_characters_are_refused_naming_the_cell_in_ascii(audio_dir):
    """A spreadsheet in a Swedish, Norwegian or Finnish locale writes negative numbers with the minus sign U+2212:
    each such row was refused as "non-numeric" without a fix. It is read as ``-`` (the rows, labels and digests of
    the same manifest written with ``-``); a dash that only looks like one, full-width or Arabic-Indic digits are
    refused by row, named with their characters and the cell written in ASCII; never read as another number."""
    minus = [v.replace("-", "\u2212") for v in VALUES]
    for delimiter, decimal in ((",", "."), (";", ",")):
        comma = decimal == ","
        want, _ = load_dataset(
            ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(VALUES, comma), delimiter)),
                   label_column="valence", delimiter=delimiter, decimal=decimal), TASK)  # fmt: skip
        ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "minus.csv", _rows(minus, comma), delimiter)),
                    label_column="valence", delimiter=delimiter, decimal=decimal)  # fmt: skip
        got, report = load_dataset(ds, TASK)
        assert report.lines() == [] and got.column("label").to_pylist()[0] == ["-0.05"]
        _same_rows(got, want)
    cells = ["\u20130.5", "\uff10.\uff15", "\u0660.\u0665", "0.25"]
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "t.csv", _rows(cells))), label_column="valence")
    table, report = load_dataset(ds, TASK)
    assert table.column("label").to_pylist() == [["0.25"]]
    assert report.unknown_labels == [
        "r0 (row 2: regression target '–0.5' in valence holds '–' (U+2013 EN DASH) — write it '-0.5')",
        "r1 (row 3: regression target '０.５' in valence holds '０' (U+FF10 FULLWIDTH DIGIT ZERO), '５' (U+FF15 "
        "FULLWIDTH DIGIT FIVE) — write it '0.5')",
        "r2 (row 4: regression target '٠.٥' in valence holds '٠' (U+0660 ARABIC-INDIC DIGIT ZERO), '٥' (U+0665 "
        "ARABIC-INDIC DIGIT FIVE) — write it '0.5')",
    ]
    only = ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "d.csv", _rows(cells[:1])))})
    assert catalog.manifest_problems(only, TASK) == [
        "label_column: no row of 'valence' holds a regression target, it has cells such as '–0.5' (row 2) — it holds "
        "'–' (U+2013 EN DASH) — write it '-0.5'"
    ]


def test_one_group_of_three_digits_after_the_other_mark_is_refused_as_ambiguous(audio_dir):
    """With ``decimal: ','``, ``1.234`` is 1234 with a thousands separator or 1.234 with a decimal point: it was
    refused as "it has a decimal point — remove decimal", which reads the column's ``0,5`` wrong. Refused by row
    naming both readings and their fixes; ``12.5`` (no group of three) keeps the decimal point's hint, and a grouped
    ``12.345.678`` the thousands separator's."""
    cells = ["1.234", "0,5", "12.345", "12.5", "12.345.678"]
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(cells), ";")),
                label_column="valence", delimiter=";", decimal=",")  # fmt: skip
    table, report = load_dataset(ds, TASK)
    assert table.column("label").to_pylist() == [["0.5"]]
    why = (
        "regression target '{0}' in valence is ambiguous with decimal ',': {1} with '.' grouping its thousands, or "
        "{0} with '.' as its decimal mark — write it '{1}' if it is {1} (in a spreadsheet, a number format without a "
        "1000 separator), or remove decimal if '.' is the column's decimal mark"
    )
    assert report.unknown_labels[:3] == [
        "r4 (row 6: regression target '12.345.678' in valence has a thousands separator — write its numbers without "
        "a thousands separator ('12345678'; in a spreadsheet, a number format without a 1000 separator))",
        f"r0 (row 2: {why.format('1.234', '1234')})",
        f"r2 (row 4: {why.format('12.345', '12345')})",
    ]
    assert report.unknown_labels[3] == (
        "r3 (row 5: non-numeric regression target in valence — it has a decimal point, but decimal is ',': remove "
        "decimal if '.' is its decimal mark)"
    )
    only = ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "a.csv", _rows(cells[:1]), ";"))})
    assert catalog.manifest_problems(only, TASK) == [
        "label_column: no row of 'valence' holds a regression target, it has cells such as '1.234' (row 2) — it "
        + why.format("1.234", "1234").split(" in valence ", 1)[1]
    ]


def test_rows_with_another_number_of_targets_are_refused_at_the_load_not_at_the_probes(audio_dir):
    """``"1,234"`` (a number with a thousands separator, quoted) split at ``label_separator`` ``,`` into the targets 1
    and 234 where every other row has one: the load kept it, and the run stopped at its probes — after the
    embedding — with "regression targets have different lengths". Such rows are refused by the load, each named with
    its cell (and, for a grouped number, the cell without the separator); the rows left encode."""
    cells = ["0.5", "1,234", "-0.25", "0.75", "0.1,0.2"]
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(cells))), label_column="valence")
    table, report = load_dataset(ds, TASK)
    assert table.column("label").to_pylist() == [["0.5"], ["-0.25"], ["0.75"]]
    assert report.unknown_labels == [
        "r1 (row 3: 2 regression targets in valence, '1,234', where 3 of its 5 rows have 1 — every row needs as many; if "
        "'1,234' is one number with a thousands separator, write it '1234' (in a spreadsheet, a number format without "
        "a 1000 separator))",
        "r4 (row 6: 2 regression targets in valence, '0.1,0.2', where 3 of its 5 rows have 1 — every row needs as many)",
    ]
    encode_labels("regression", table.column("label").to_pylist())  # raised on the rows as they were read
    with pytest.raises(InvalidLabelError, match="different lengths"):
        encode_labels("regression", [c.split(",") for c in cells])


#: how the load and validate name the readings of ``1,234`` split at ``label_separator`` ``,``, each with its fix
SPLIT_1234 = (
    "into 2 targets (1, 234) — ambiguous: if ',' groups its thousands, write the numbers without it ('1234'; in a "
    "spreadsheet, a number format without a 1000 separator); if ',' is its decimal mark, set decimal: ','; if a cell "
    "holds 2 targets, separate them by another character and set label_separator to it ('1;234' with label_separator: "
    "';') or name them ('y0=1,y1=234')"
)


def test_every_target_cell_a_number_with_comma_groups_is_refused_by_load_and_validate(audio_dir, monkeypatch):
    """``"1,234"`` in every row, read with a decimal point: split at ``label_separator`` ``,`` into the targets 1 and
    234 — only noted as a possible decimal comma. Every cell a number with ``,`` between groups of three digits is
    ambiguous (a thousands separator, a decimal comma, or two targets): the load and ``repeval validate`` refuse it
    alike, naming the three fixes; the column read in several batches, one other target cell in its last one makes it
    no longer so, for both."""
    monkeypatch.setattr(manifest, "CSV_BLOCK_BYTES", 128)  # several batches
    cells = ["1,234", "2,500", "-12,000", "7,250,000"] * 5
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(cells))), label_column="valence")
    said = (
        "label_column: each target cell of 'valence' (all 20) holds a number with ',' between groups of three "
        f"digits (e.g. '1,234', row 2), which label_separator ',' splits {SPLIT_1234}"
    )
    refused_alike(ds, TASK, said)
    table, _ = load_dataset(ds.model_copy(update={"decimal": ","}), TASK)  # its decimal comma's fix
    assert table.column("label").to_pylist()[:3] == [["1.234"], ["2.500"], ["-12.000"]]
    mixed = ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "n.csv", _rows([*cells[:-1], "0,31"])))})
    assert catalog.manifest_problems(mixed, TASK) == []
    assert load_dataset(mixed, TASK)[0].num_rows == 16  # the 7,250,000s' three targets refused by row, as before


def test_comma_groups_beside_small_numbers_or_in_most_rows_are_refused_by_load_and_validate(audio_dir, monkeypatch):
    """A spreadsheet's number format with a 1000 separator writes ``523`` and ``1,234``: only a column whose every
    target cell held ``,`` was refused, so this one was read as two targets a row (1 and 234), ``523`` refused as one
    target where most rows have two, with a note to set ``decimal: ','`` (reading 1.234). Whole numbers below 1,000
    beside the grouped ones are refused alike by the load and ``repeval validate``, the column read in several
    batches (its first ones without ','); a column of such numbers alone, or with another target, loads. Most cells
    ``1,234``-shaped and a few one number (``5.5``, ``1500``): the load kept the many read as two targets and dropped
    the few, validate said nothing — refused alike too; where most cells are one number the few grouped ones are
    refused by row, each with its fix."""
    monkeypatch.setattr(manifest, "CSV_BLOCK_BYTES", 128)
    cells = ["523", "", "\u221287", "12"] * 6 + ["1,234", "-12,345,678", "2,000"]
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(cells))), label_column="valence")
    said = (
        "label_column: 3 target cells of 'valence' hold a number with ',' between groups of three digits (e.g. "
        "'1,234', row 26) and the others a whole number below 1,000 (e.g. '523', row 2), as a column whose "
        f"thousands ',' groups writes them; label_separator ',' splits '1,234' {SPLIT_1234}"
    )
    refused_alike(ds, TASK, said)
    for other in (cells[:24], [*cells[:-1], "0.5"]):
        fine = ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "n.csv", _rows(other)))})
        assert catalog.manifest_problems(fine, TASK) == []
        assert load_dataset(fine, TASK)[0].column("label").to_pylist()[:3] == [["523"], ["-87"], ["12"]]
    most = ["1,234", "2,500", "12,000"] * 4 + ["5.5", "1500"]
    refused_alike(
        ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "most.csv", _rows(most)))}),
        TASK,
        "label_column: 12 target cells of 'valence' hold a number with ',' between groups of three digits (e.g. "
        "'1,234', row 2) and the other 2 cells one number (e.g. '5.5', row 14), so that its rows differ in their "
        f"number of targets; label_separator ',' splits '1,234' {SPLIT_1234}",
    )
    refused_alike(
        ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "one.csv", _rows(["1,234", "2,500", "5.5"])))}),
        TASK,
        "label_column: 2 target cells of 'valence' hold a number with ',' between groups of three digits (e.g. "
        "'1,234', row 2) and the other cell one number (e.g. '5.5', row 4), so that its rows differ in their "
        f"number of targets; label_separator ',' splits '1,234' {SPLIT_1234}",
    )
    few = ds.model_copy(update={"manifest": str(_write_csv(audio_dir / "few.csv", _rows(["0.5", "1,234", "2.5"])))})
    assert catalog.manifest_problems(few, TASK) == []
    assert load_dataset(few, TASK)[0].column("label").to_pylist() == [["0.5"], ["2.5"]]


def test_a_target_beyond_a_64_bit_float_is_refused_by_row_not_read_as_infinite(audio_dir):
    """``1e999`` is a number as a catalog's cells are read, but beyond a 64-bit float: the load kept it and the task
    encoder read it as ``inf`` (refused as a word, ``inf`` reached the probes this way). Such a row is refused by the
    load, named with the range; a tiny ``5e-400`` (read as 0) is a target; the encoder refuses the cell alike."""
    cells = ["1e999", "0.5", "-3e400", "5e-400"]
    ds = ds_cfg("cat", "catalog", manifest=str(_write_csv(audio_dir / "m.csv", _rows(cells))), label_column="valence")
    table, report = load_dataset(ds, TASK)
    assert table.column("label").to_pylist() == [["0.5"], ["5e-400"]]
    beyond = "is beyond the range of a 64-bit float (±1.8e308), read as infinite — write it in that range"
    assert report.unknown_labels == [
        f"r0 (row 2: regression target '1e999' in valence {beyond} (rescale the column))",
        f"r2 (row 4: regression target '-3e400' in valence {beyond} (rescale the column))",
    ]
    with pytest.raises(InvalidLabelError, match=rf"^regression target '1e999' in row 1 {re.escape(beyond)}"):
        encode_labels("regression", [["0.5"], ["1e999"]])
