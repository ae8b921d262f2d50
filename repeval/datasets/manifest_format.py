"""What a text manifest must be before its CSV is read: not a spreadsheet workbook (:class:`WorkbookManifestError`),
and text in UTF-8 (:class:`ManifestEncodingError`: a UTF-16 export, or a row in another encoding such as Windows-1252)
— each refused naming its conversion, rather than read as an empty file or stopped by pyarrow's ``invalid UTF8 data``
without a row."""

from __future__ import annotations

import codecs
import csv
import io
import re
from typing import Any

import pyarrow.fs as pafs

#: suffixes of a spreadsheet workbook, which is no manifest (:class:`WorkbookManifestError`)
WORKBOOK_SUFFIXES = {
    ".xlsx": "an Excel workbook",
    ".xlsm": "an Excel workbook",
    ".xlsb": "an Excel binary workbook",
    ".xls": "an Excel 97-2003 workbook",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "a Numbers spreadsheet",
}
#: the first bytes of a ZIP archive (xlsx, ods, numbers) and of an OLE2 file (xls)
_ZIP, _OLE2 = b"PK\x03\x04", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: what the CSV exports of a spreadsheet are called, for the fixes
CSV_UTF8 = "Excel: File > Save As > 'CSV UTF-8 (Comma delimited)'; LibreOffice: 'Text CSV', character set UTF-8"


#: a byte that is not UTF-8, as the ``surrogateescape`` error handler reads it
_ESCAPED = re.compile("[\udc80-\udcff]")


def _beside(uri: str, suffix: str) -> str:
    """``uri`` with its suffix replaced by ``suffix``: a converted manifest beside it, so that audio paths relative
    to its folder still resolve."""
    head, sep, name = uri.rpartition("/")
    stem = re.sub(r"\.[^.]*$", "", name) or name
    return f"{head}{sep}{stem}{suffix}"


class WorkbookManifestError(ValueError):
    """A manifest that is a spreadsheet workbook (``.xlsx``, ``.xls``, ``.ods``, ...), which a catalog does not read:
    named with its export to CSV — it was read as a CSV file of 0 bytes (\"is empty\")."""

    def __init__(self, uri: str, kind: str) -> None:
        super().__init__(
            f"{uri} is {kind}, but a catalog manifest is CSV or Parquet — export the sheet as CSV ({CSV_UTF8}), or "
            f"convert it with pandas (and openpyxl): pandas.read_excel({uri!r}, dtype=str).to_parquet("
            f"{_beside(uri, '.parquet')!r}) (dtype=str keeps ids such as '007' as written), and set manifest to "
            "that file"
        )


class ManifestEncodingError(ValueError):
    """A text manifest that is not UTF-8: UTF-16 (a spreadsheet's "Unicode text" export) or a row with bytes that are
    not UTF-8 (Windows-1252 or Latin-1: ``Beyonc\\xe9``), named with its row and the conversion."""


def workbook_kind(path: str, head: bytes) -> str | None:
    """What kind of spreadsheet workbook a manifest is, from its suffix or its first bytes (a ZIP archive or an OLE2
    file); ``None`` for any other file."""
    for suffix, kind in WORKBOOK_SUFFIXES.items():
        if path.lower().endswith(suffix):
            return kind
    if head.startswith(_ZIP):
        return "a ZIP archive (an Excel or OpenDocument workbook, or a zipped CSV — unzip it)"
    if head.startswith(_OLE2):
        return "an Excel 97-2003 workbook"
    return None


def utf16_error(uri: str, head: bytes) -> ManifestEncodingError | None:
    """The error of a manifest written in UTF-16 (its byte-order mark, or NUL bytes between its first characters);
    ``None`` otherwise."""
    if not (head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:64].count(b"\x00") >= 4):
        return None
    return ManifestEncodingError(
        f"{uri} is UTF-16 text (a spreadsheet's 'Unicode Text' export), but a catalog manifest is UTF-8 — save it "
        f"as UTF-8 ({CSV_UTF8}), or convert it: iconv -f UTF-16 -t UTF-8 (tabs between its columns: name it .tsv "
        "or set delimiter: tab)"
    )


def check_text(fs: pafs.FileSystem, path: str, uri: str) -> None:
    """Raise :class:`WorkbookManifestError` or :class:`ManifestEncodingError` for a text manifest that is a workbook
    or UTF-16 text."""
    with fs.open_input_stream(path) as fh:
        head = fh.read(256)
    if kind := workbook_kind(path, head):
        raise WorkbookManifestError(uri, kind)
    if err := utf16_error(uri, head):
        raise err


def all_utf8(fh: Any, block: int = 1 << 20) -> bool:
    """Whether every byte of the stream ``fh`` is UTF-8, read block by block (memory of one block; a character split
    between two blocks is decoded whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := fh.read(block):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def not_utf8_error(uri: str, fh: Any, delimiter: str, columns: list[str] | None = None) -> ManifestEncodingError | None:
    """The error of a manifest with bytes that are not UTF-8 in its header or in its ``columns`` (``None``: any), read
    from ``fh`` with the ``csv`` module: its first such row (counted like
    :func:`~repeval.datasets.manifest_rows._rowref`'s: the header is row 1), the cell read as Windows-1252 and the
    conversion; ``None`` when every byte of them is UTF-8 — as pyarrow reads only the columns a catalog needs, a
    Windows-1252 byte in a column it does not read stops no load."""
    text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")
    read: list[int] | None = None
    for row, cells in enumerate(csv.reader(text, delimiter=delimiter), start=1):
        if row == 1 and columns is not None:
            header = [c.lstrip("\ufeff") if i == 0 else c for i, c in enumerate(cells)]
            read = [i for i, c in enumerate(header) if c in columns]
        bad = next(
            (c for i, c in enumerate(cells) if (read is None or row == 1 or i in read) and _ESCAPED.search(c)), None
        )
        if bad is None:
            continue
        raw = bad.encode("utf-8", "surrogateescape")
        try:
            raw.decode("utf-8")
            byte = 0
        except UnicodeDecodeError as exc:
            byte = raw[exc.start]
        return ManifestEncodingError(
            f"{uri} row {row} is not UTF-8 (byte 0x{byte:02x} in {raw!r}, "
            f"{raw.decode('cp1252', 'replace')!r} in Windows-1252) — save the manifest as UTF-8 ({CSV_UTF8}), or "
            "convert it: iconv -f WINDOWS-1252 -t UTF-8 (or the encoding it was written in)"
        )
    return None
