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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.cloud_reach import error_line, filesystem
from repeval.datasets.manifest_format import ManifestEncodingError, all_utf8, check_text, not_utf8_error

#: rows per record batch when streaming a Parquet manifest (CSV batches are blocks of CSV_BLOCK_BYTES)
BATCH_ROWS = 65_536
#: bytes per block of a CSV manifest (the CSV reader's read-ahead holds up to 32 of them)
CSV_BLOCK_BYTES = 1 << 20


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` (a local path or any pyarrow URI; ``gs://``'s retries bounded:
    :func:`~repeval.cloud_reach.filesystem`) and the file's path on it."""
    if "://" in uri:
        return filesystem(uri)
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


def _row_error(uri: str, delimiter: str, exc: pa.ArrowInvalid, columns: list[str] | None = None) -> Exception:
    """``exc``, pyarrow's error reading a text manifest, as a :class:`ManifestRowError` when a row has another number
    of cells than the header: the first such row, found by reading the file again with the ``csv`` module (whose
    quoting rules pyarrow's reader follows) — only on this error, never on a manifest that reads; as a
    :class:`~repeval.datasets.manifest_format.ManifestEncodingError` naming the first row that is not UTF-8 in a
    read column (``columns``: pyarrow's ``invalid UTF8 data``, which names none); ``exc`` itself otherwise."""
    fs, path = _filesystem(uri)
    if "invalid UTF8" in str(exc):
        with fs.open_input_stream(path) as fh:
            return not_utf8_error(uri, fh, delimiter, columns) or exc
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
        convert = options.get("convert_options")
        columns = list(convert.include_columns) if convert is not None and convert.include_columns else None
        raise _row_error(uri, options["parse_options"].delimiter, exc, columns) from None


def manifest_format(uri: str) -> str:
    """``parquet`` for a Parquet manifest (a file so named, or a folder of them), else ``csv``: how rows are numbered."""
    fs, path = _filesystem(uri)
    return "parquet" if _is_parquet(path) or fs.get_file_info(path).type == pafs.FileType.Directory else "csv"


def encoding_error(uri: str, columns: list[str], delimiter: str | None = None) -> ManifestEncodingError | None:
    """What the load of a text manifest reading ``columns`` would stop on for a byte that is not UTF-8 in them, found
    before it (``repeval validate``) wherever it is in the file: every byte is streamed through a UTF-8 decoder, a
    block at a time; only a file with such a byte is read again as CSV (:func:`not_utf8_error`) for the first row
    of ``columns`` that holds one — ``None`` for a Parquet manifest, a UTF-8 one, or one whose other columns alone
    hold such bytes (pyarrow does not read them)."""
    if manifest_format(uri) == "parquet":
        return None
    fs, path = _filesystem(uri)
    with fs.open_input_stream(path) as fh:
        if all_utf8(fh):
            return None
    with fs.open_input_stream(path) as fh:
        return not_utf8_error(uri, fh, csv_delimiter(path, delimiter), columns)


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
        try:
            return list(reader.schema.names)
        except UnicodeDecodeError as exc:  # a header cell in Windows-1252 (an Excel 'CSV (Comma delimited)' export)
            cause = exc
    with fs.open_input_stream(path) as fh:
        raise not_utf8_error(uri, fh, csv_delimiter(path, delimiter)) or cause


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
    marked :data:`NUMERIC_TYPE`); a text manifest's columns separated by ``delimiter`` (:func:`csv_delimiter`). A
    manifest at a URI whose reading fails midway (the network lost) is named, with the rows read and the fix: the
    client's error named neither."""
    batches = _batches(uri, columns, batch_rows, delimiter)
    if "://" not in uri:
        yield from batches
        return
    read = 0
    try:
        with contextlib.closing(batches):  # closed with this generator (a caller that stops early)
            for start, batch in batches:
                yield start, batch
                read = start + batch.num_rows
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ValueError(
            f"catalog manifest: {uri} could not be read to the end ({read:,} rows read: {error_line(exc)}) — check "
            "the network and the credentials on this machine, then run the command again"
        ) from None


def _batches(
    uri: str, columns: list[str] | None, batch_rows: int, delimiter: str | None
) -> Generator[tuple[int, pa.RecordBatch], None, None]:
    """:func:`iter_manifest`'s batches, as the client reads them."""
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
            raise _row_error(uri, csv_delimiter(path, delimiter), exc, columns) from None


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
