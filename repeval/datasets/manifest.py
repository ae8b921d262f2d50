"""Reading a ``catalog`` manifest (CSV or Parquet, a local path or any pyarrow filesystem URI): its columns, its
rows streamed as record batches of strings (:func:`iter_manifest`; a Parquet column of numbers marked
:data:`NUMERIC_TYPE`), a cheap estimate of its row count, and the problems
:func:`~repeval.datasets.catalog.load_catalog` would refuse, found from its header and first rows."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.datasets.manifest_format import (
    ManifestEncodingError,
    WorkbookManifestError,
    check_text,
    not_utf8_error,
)

#: rows per record batch when streaming a Parquet manifest (CSV batches are blocks of CSV_BLOCK_BYTES)
BATCH_ROWS = 65_536
#: bytes per block of a CSV manifest (the CSV reader's read-ahead holds up to 32 of them)
CSV_BLOCK_BYTES = 1 << 20


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


#: suffixes of a Parquet manifest (a directory is read as one too)
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def _is_parquet(path: str) -> bool:
    return path.endswith(PARQUET_SUFFIXES)


#: suffixes of a manifest whose columns are separated by tabs (any other non-Parquet one: commas)
TSV_SUFFIXES = (".tsv", ".tab")


def csv_delimiter(path: str, delimiter: str | None = None) -> str:
    """The character between a text manifest's columns: ``delimiter`` (the dataset's key) when set, else a tab for a
    ``.tsv``/``.tab`` manifest and a comma for any other."""
    return delimiter or ("\t" if path.lower().endswith(TSV_SUFFIXES) else ",")


def _csv_parse(path: str, delimiter: str | None) -> pacsv.ParseOptions:
    """How a text manifest's CSV is parsed: a quoted cell may hold line breaks (a title, a tag list written over two
    lines; without ``newlines_in_values`` a block boundary inside one cut its row in two — the second half a row of
    its own when it held as many delimiters as the header); a blank line is a row of empty cells (the loader skips
    it) so that row N stays line N."""
    return pacsv.ParseOptions(
        delimiter=csv_delimiter(path, delimiter), newlines_in_values=True, ignore_empty_lines=False
    )


def read_manifest(uri: str, delimiter: str | None = None) -> pa.Table:
    """Read a whole manifest into memory (small manifests, tools). Loaders use :func:`iter_manifest`."""
    return pa.Table.from_batches([b for _, b in iter_manifest(uri, delimiter=delimiter)])


class EmptyManifestError(ValueError):
    """A text manifest without a byte (a spreadsheet export or a copy that failed): no header to read columns from."""

    def __init__(self, uri: str) -> None:
        super().__init__(
            f"{uri} is empty (0 bytes) — write its header (the track id, audio path and label columns) and its rows "
            "first, or check dataset.manifest"
        )


class ManifestRowError(ValueError):
    """A row of a text manifest with more or fewer cells than its header (pyarrow's ``Expected 3 columns, got 4``),
    named by its row (counted like :func:`~repeval.datasets.manifest_rows._rowref`'s: the header is row 1), with the
    fix — for an unquoted number with a decimal comma between commas, quoting it."""

    def __init__(self, uri: str, row: int, cells: list[str], n_header: int, delimiter: str) -> None:
        text = delimiter.join(cells)
        if len(cells) > n_header and delimiter == "," and re.search(r"\d,\d", text):
            fix = (
                'a number with a decimal comma, such as 0,75, is two cells between commas: quote it ("0,75", read '
                "with decimal: ','), or separate the columns by ';' and set delimiter: ';'"
            )
        elif len(cells) > n_header:
            fix = f"quote its cells that hold {delimiter!r}, or set delimiter to the character between its columns"
        else:
            fix = f"write a cell for each column of the header, empty ones too ({delimiter!r} between each two)"
        super().__init__(f"{uri} row {row} has {len(cells)} cells, its header {n_header} ({text!r}) — {fix}")


#: pyarrow's error for a row with another number of cells than the header
_CELL_COUNT = re.compile(r"Expected \d+ columns, got \d+")


def _row_error(uri: str, delimiter: str, exc: pa.ArrowInvalid) -> Exception:
    """``exc``, pyarrow's error reading a text manifest, as a :class:`ManifestRowError` when a row has another number
    of cells than the header: the first such row, found by reading the file again with the ``csv`` module (whose
    quoting rules pyarrow's reader follows) — only on this error, never on a manifest that reads; as a
    :class:`~repeval.datasets.manifest_format.ManifestEncodingError` naming the first row that is not UTF-8 when a
    read column is not (pyarrow's ``invalid UTF8 data``, which names none); ``exc`` itself otherwise."""
    fs, path = _filesystem(uri)
    if "invalid UTF8" in str(exc):
        with fs.open_input_stream(path) as fh:
            return not_utf8_error(uri, fh, delimiter) or exc
    if not _CELL_COUNT.search(str(exc)):
        return exc
    try:
        with fs.open_input_stream(path) as fh:
            text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
            records = csv.reader(text, delimiter=delimiter)
            header = next(records, [])
            for row, cells in enumerate(records, start=2):
                if cells and len(cells) != len(header):
                    return ManifestRowError(uri, row, cells, len(header), delimiter)
    except csv.Error:  # a cell past the csv module's size limit: pyarrow's own message
        return exc
    return exc


def _open_csv(fh: Any, uri: str, **options: Any) -> pacsv.CSVStreamingReader:
    """pyarrow's streaming CSV reader over ``fh``; a file of no bytes (``Empty CSV file`` to pyarrow) raises
    :class:`EmptyManifestError`, naming it and the fix, and a first block with a row of another number of cells than
    the header :class:`ManifestRowError`."""
    try:
        return pacsv.open_csv(fh, **options)
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            raise EmptyManifestError(uri) from None
        raise _row_error(uri, options["parse_options"].delimiter, exc) from None


class JsonManifestError(ValueError):
    """A manifest written as JSON (lines, or one array of objects), which a catalog does not read: named with the
    conversion to Parquet — rather than read as a CSV whose columns are pieces of its first object."""

    def __init__(self, uri: str) -> None:
        # beside it, so that audio paths relative to its folder still resolve; dtype=False, or pandas reads ids such
        # as "007" as the number 7
        head, sep, name = uri.rpartition("/")
        stem = re.sub(r"\.[^.]*$", "", name) or name
        target = f"{head}{sep}{stem}.parquet"
        super().__init__(
            f"{uri} is JSON, but a catalog manifest is CSV or Parquet — convert it, e.g. with pandas: "
            f"pandas.read_json({uri!r}, lines=True, dtype=False).to_parquet({target!r}) (lines=False for one JSON "
            "array; dtype=False keeps ids such as '007' as written), and set manifest to that file"
        )


#: suffixes of a JSON file, which is no manifest (:class:`JsonManifestError`)
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


def _is_json(fs: pafs.FileSystem, path: str) -> bool:
    """Whether a text manifest is JSON: so named, or its first bytes open an object or an array of objects."""
    if path.lower().endswith(JSON_SUFFIXES):
        return True
    with fs.open_input_stream(path) as fh:
        head = fh.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") or re.match(rb"\[\s*(\{|$)", head) is not None


def manifest_columns(uri: str, delimiter: str | None = None) -> list[str]:
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"catalog manifest not found: {uri} — check dataset.manifest")
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        return list(pads.dataset(path, filesystem=fs, format="parquet").schema.names)
    check_text(fs, path, uri)
    if _is_json(fs, path):
        raise JsonManifestError(uri)
    with fs.open_input_stream(path) as fh:
        reader = _open_csv(
            fh, uri, read_options=pacsv.ReadOptions(block_size=1 << 16), parse_options=_csv_parse(path, delimiter)
        )
        return list(reader.schema.names)


#: what a one-column header is looked for to hold, in this order: the characters its columns may be separated by
_DELIMITERS = {"\t": "tabs", ";": "semicolons", "|": "vertical bars", ",": "commas"}


def one_column_problem(ds: Any, have: list[str]) -> str | None:
    """The problem of a CSV manifest whose header reads as one column holding another usual delimiter than the one
    it is read with (a ``;``-separated spreadsheet export read with commas): the character, and ``delimiter`` set to
    it as the fix; ``None`` otherwise."""
    if len(have) != 1:
        return None
    now = csv_delimiter(ds.manifest, ds.delimiter)
    seps = [sep for sep in _DELIMITERS if sep != now and sep in have[0]]
    if not seps:
        return None
    sep = seps[0]
    return (
        f"manifest: {ds.manifest}'s header reads as one column, {have[0]!r}: its columns are separated by "
        f"{_DELIMITERS[sep]} ({sep!r}), not {_DELIMITERS.get(now, repr(now))} — set delimiter: "
        + ("tab" if sep == "\t" else repr(sep))
        + " (or write it as Parquet)"
    )


#: what the columns a catalog names by default hold, for the error when a manifest lacks them
_WHAT = {"track_id_column": "track ids", "audio_column": "audio file paths"}


def manifest_problems(ds: Any, task: Any) -> list[str]:
    """What ``load_catalog`` would refuse, from the manifest's header and first rows: columns the dataset names that
    the manifest lacks (with the closest column), a manifest without rows (or without a byte), one written as JSON
    (:class:`JsonManifestError`), a row of another number of cells than the header (:class:`ManifestRowError`, in the
    rows read), and a regression task's label column with no target (:func:`_no_targets`: read until a batch holds
    one — the first, for a usable manifest; the whole column only when it holds none)."""
    try:
        return _problems(ds, task)
    except (
        EmptyManifestError,
        JsonManifestError,
        ManifestRowError,
        WorkbookManifestError,
        ManifestEncodingError,
    ) as exc:
        return [f"manifest: {exc}"]


def _problems(ds: Any, task: Any) -> list[str]:
    """:func:`manifest_problems`, raising :class:`EmptyManifestError` and :class:`ManifestRowError`."""
    from repeval.registry import closest

    have = manifest_columns(ds.manifest, ds.delimiter)
    wanted = {
        "track_id_column": ds.track_id_column,
        "audio_column": ds.audio_column,
        "label_column": ds.label_column or task.label or task.name,
        "split_column": ds.split_column,
        "group_column": ds.group_column,
        "annotated_column": ds.annotated_column,
    }
    if one := one_column_problem(ds, have):
        # every column would be reported missing, each "did you mean" the whole header
        return [one]
    out = []
    for key, col in wanted.items():
        if col and col not in have:
            hint = closest(col, have)
            field = getattr(type(ds), "model_fields", {}).get(key)
            default = key in _WHAT and field is not None and col == field.default
            out.append(
                f"{key}: the manifest has no column {col!r}"
                + (f" — did you mean {hint!r}?" if hint else "")
                + (
                    f" — set {key} to its column of {_WHAT[key]} ({col!r} is the default)"
                    if default and not hint
                    else ""
                )
                + f" (its columns: {', '.join(have)})"
            )
    if not out and (one := one_value_problem(ds)):
        return [one]
    if not out:
        with contextlib.closing(iter_manifest(ds.manifest, [ds.track_id_column], delimiter=ds.delimiter)) as rows:
            # a blank line is a row of empty cells (the load skips it): read on to the first track id, the first
            # batch's in a manifest that has one
            if not any(pc.any(pc.not_equal(pc.utf8_trim_whitespace(b.column(0)), "")).as_py() for _, b in rows):
                out.append(f"manifest: {ds.manifest} has a header but no rows — write its rows first")
    if not out and getattr(task, "effective_type", None) == "regression" and (text := _no_targets(ds, task)):
        out.append(text)
    return out


def label_fix(ds: Any, task: Any) -> str:
    """What to check when a catalog's labels left no usable row: the label column and what the task needs of it."""
    kind = getattr(task, "effective_type", None)
    decimal = getattr(ds, "decimal", ".")
    want = {
        "regression": "numbers, or name=value pairs"
        + (f" (decimal mark {decimal!r}, as decimal sets)" if decimal != "." else ""),
        "key_estimation": "keys such as 'C# minor'",
    }.get(str(kind), "labels" + (" in dataset.classes" if ds.classes else ""))
    return f"check that label_column {ds.label_column or task.label or task.name!r} holds {want} for a {kind} task"


def _manifest_format(uri: str) -> str:
    """``parquet`` for a Parquet manifest (a file so named, or a folder of them), else ``csv``: how rows are numbered."""
    fs, path = _filesystem(uri)
    return "parquet" if _is_parquet(path) or fs.get_file_info(path).type == pafs.FileType.Directory else "csv"


def _no_targets(ds: Any, task: Any) -> str | None:
    """The problem of a regression task whose label column holds no target in any cell (a column of words: every row
    would be dropped and the load stop with :func:`label_fix`), with its first cell of text; ``None`` as soon as a
    batch holds a target — the first one, for a usable manifest."""
    from repeval.datasets.manifest_rows import (
        _rowref,
        column_decimal,
        target_cells,
        target_hint,
        target_separator,
    )

    column = ds.label_column or task.label or task.name
    decimal = getattr(ds, "decimal", ".")
    example, hint = None, ""
    with contextlib.closing(iter_manifest(ds.manifest, [column], delimiter=ds.delimiter)) as batches:
        for start, batch in batches:
            mark = column_decimal(batch.schema.field(0), decimal)
            ok, text = target_cells(batch.column(0), target_separator(ds), mark)
            if ok.any():
                return None
            if example is None and text.any():
                i = int(np.flatnonzero(text)[0])
                example = f"{batch.column(0)[i].as_py()!r} ({_rowref(_manifest_format(ds.manifest), start + i)})"
                hint = target_hint(batch.column(0).slice(i, 1), target_separator(ds), mark)
    what = f"cells such as {example}" if example else "empty cells only"
    fix = hint or f" — {label_fix(ds, task)}"  # the other decimal mark's numbers: that mark's fix
    return f"label_column: no row of {column!r} holds a regression target, it has {what}{fix}"


#: a label cell of two whole numbers split at ``,`` — ``0,31``, a number with a decimal comma read as two targets
_COMMA_CELL = r"^\s*[-+]?\d+\s*,\s*\d+\s*$"


def decimal_comma_warning(ds: Any, task: Any) -> str | None:
    """What ``repeval validate`` warns of a regression catalog read with a decimal point whose first rows' target cells
    (a CSV block, a Parquet batch) are each two whole numbers split at ``label_separator`` ``,`` (``0,31``: two targets,
    0 and 31), naming ``decimal: ','``; the load notes the same of every row. ``None`` otherwise."""
    from repeval.datasets.manifest_rows import COMMA_FIX, target_separator

    if getattr(task, "effective_type", None) != "regression" or target_separator(ds) != ",":
        return None
    column = ds.label_column or task.label or task.name
    with contextlib.closing(iter_manifest(ds.manifest, [column], delimiter=ds.delimiter)) as batches:
        first = next(batches, None)
    if first is None:
        return None
    if list_type(first[1].schema.field(0)) is not None:  # each item one target: nothing split at ','
        return None
    cells = pc.utf8_trim_whitespace(first[1].column(0).fill_null(""))
    cells = cells.filter(pc.not_equal(cells, ""))
    if not len(cells) or not pc.all(pc.match_substring_regex(cells, _COMMA_CELL)).as_py():
        return None
    return (
        f"label_column: the first {len(cells)} cells of {column!r} each hold two whole numbers split at "
        f"label_separator ',' (e.g. {cells[0].as_py()!r}), read as two targets — if ',' is its decimal mark, "
        f"{COMMA_FIX}"
    )


#: field metadata of a manifest column read as strings from a Parquet column of numbers: the column's Arrow type
#: (its numbers written with a decimal point, whatever ``decimal`` says of a text column's)
NUMERIC_TYPE = b"repeval.numeric_type"


#: field metadata of a manifest column read as lists of strings from a Parquet list column (``list<string>``, a
#: pandas column of lists; ``large_list``, ``list<large_string>``, dictionary-encoded strings): the column's Arrow type
LIST_TYPE = b"repeval.list_type"


def is_list_type(type_: pa.DataType) -> bool:
    """Whether a Parquet column of ``type_`` holds a list per row (``list``, ``large_list``, ``fixed_size_list``)."""
    return pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_)


def _is_number(type_: pa.DataType) -> bool:
    return pa.types.is_integer(type_) or pa.types.is_floating(type_) or pa.types.is_decimal(type_)


def _as_text(field: pa.Field) -> pa.Field:
    """``field`` read as strings, a column of numbers (integers, floating-point or decimal) marked
    :data:`NUMERIC_TYPE`; a list column (:func:`is_list_type`) read as lists of strings, marked :data:`LIST_TYPE`
    (and :data:`NUMERIC_TYPE` when its items are numbers)."""
    t = field.type
    if is_list_type(t):
        if pa.types.is_nested(t.value_type):
            raise ValueError(
                f"the manifest's column {field.name!r} is a list column whose items are not strings or numbers "
                f"({t}) — write each row's labels as one list of strings (or of numbers: regression targets)"
            )
        meta = {LIST_TYPE: str(t)} | ({NUMERIC_TYPE: str(t)} if _is_number(t.value_type) else {})
        return pa.field(field.name, pa.list_(pa.string()), metadata=meta)
    return pa.field(field.name, pa.string(), metadata={NUMERIC_TYPE: str(t)} if _is_number(t) else None)


def list_type(field: pa.Field) -> str | None:
    """The Arrow type of the Parquet list column a batch's ``field`` was read from (:data:`LIST_TYPE`), else
    ``None``."""
    type_ = (field.metadata or {}).get(LIST_TYPE)
    return type_.decode() if type_ is not None else None


def list_columns(uri: str) -> dict[str, str]:
    """The list columns of a Parquet manifest (:func:`is_list_type`), each with its Arrow type; none for a text one."""
    fs, path = _filesystem(uri)
    if not (_is_parquet(path) or fs.get_file_info(path).type == pafs.FileType.Directory):
        return {}
    schema = pads.dataset(path, filesystem=fs, format="parquet").schema
    return {f.name: str(f.type) for f in schema if is_list_type(f.type)}


#: the columns a catalog reads one value per row of (its label and annotated columns may be lists)
ONE_VALUE = ("track_id_column", "audio_column", "split_column", "group_column")


def one_value_problem(ds: Any) -> str | None:
    """The problem of a Parquet manifest whose track id, audio, split or group column is a list column: the column,
    and that it takes one value per row; ``None`` otherwise."""
    lists = list_columns(ds.manifest)
    for key in ONE_VALUE:
        column = getattr(ds, key)
        if column and column in lists:
            return (
                f"{key}: the manifest's column {column!r} is a list column ({lists[column]}), but it takes one value "
                "per row — write it as a column of strings (only label_column and annotated_column may hold lists)"
            )
    return None


def numeric_type(field: pa.Field) -> str | None:
    """The Arrow type of the Parquet column of numbers a batch's ``field`` was read from (:data:`NUMERIC_TYPE`), else
    ``None`` (a text column, or a CSV manifest's)."""
    type_ = (field.metadata or {}).get(NUMERIC_TYPE)
    return type_.decode() if type_ is not None else None


def iter_manifest(
    uri: str, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS, delimiter: str | None = None
) -> Generator[tuple[int, pa.RecordBatch], None, None]:
    """Yield ``(first row index, batch)`` of the manifest, reading ``columns`` as strings (a Parquet column of numbers
    marked :data:`NUMERIC_TYPE`); a text manifest's columns separated by ``delimiter`` (:func:`csv_delimiter`)."""
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"catalog manifest not found: {uri} — check dataset.manifest")
    start = 0
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
        cols = columns or list(dataset.schema.names)
        # file by file, batch by batch, nothing read ahead and no row group buffered whole: the dataset scanner
        # read 16 batches and 4 files ahead (peak anonymous memory grew with the manifest: +401 MB at 4,000,000
        # rows) and, even without read-ahead, decoded a row group at a time (+254 MB for pyarrow's default
        # 1 Mi-row groups; this reader: +76 MB)
        for file in dataset.files:
            with fs.open_input_file(file) as fh:
                pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
                for batch in pf.iter_batches(batch_size=batch_rows, columns=cols, use_threads=False):
                    if batch.num_rows == 0:
                        continue
                    schema = pa.schema([_as_text(f) for f in batch.schema])
                    batch = pa.RecordBatch.from_arrays(
                        [pc.cast(batch.column(i), schema.field(i).type) for i in range(batch.num_columns)],
                        schema=schema,
                    )
                    yield start, batch
                    start += batch.num_rows
        return
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns or []},
        strings_can_be_null=True,
        **({"include_columns": columns} if columns else {}),
    )
    # pyarrow's streaming CSV reader reads up to 32 blocks ahead of the consumer on its I/O thread, whatever
    # the source (measured on pyarrow 26: ~200 MB beyond the Arrow heap with 8 MiB blocks, ~58 MB with 1 MiB
    # ones): blocks of CSV_BLOCK_BYTES keep that bound small; batches are then ~CSV_BLOCK_BYTES / row bytes
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    with fs.open_input_stream(path) as fh:
        reader = _open_csv(
            fh, uri, read_options=read, parse_options=_csv_parse(path, delimiter), convert_options=convert
        )
        try:
            for batch in reader:
                if batch.num_rows:
                    yield start, batch
                    start += batch.num_rows
        except pa.ArrowInvalid as exc:
            raise _row_error(uri, csv_delimiter(path, delimiter), exc) from None


def estimate_rows(uri: str) -> int:
    """About how many rows a manifest has, without reading it: Parquet metadata, or a CSV's size
    over the mean line length of its first MiB. Sizes the spill partitions of a plan."""
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        return int(pads.dataset(path, filesystem=fs, format="parquet").count_rows())
    with fs.open_input_stream(path) as fh:
        head = fh.read(1 << 20)
    lines = max(head.count(b"\n"), 1)
    return int((info.size or len(head)) / (len(head) / lines)) + 1
