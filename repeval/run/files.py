"""Small files of a run directory written whole or not at all, and read back tolerantly."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _read_json(path: Path) -> Any:
    """A small JSON file's content; ``None`` when it is missing or unreadable (then the work is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def unreadable_parquet(path: Path) -> str | None:
    """Why the Parquet file at ``path`` cannot be read — cut short, corrupted, not Parquet — in one line; ``None``
    when its footer reads (a missing file is the caller's to tell). A file this user may not read raises its
    ``PermissionError``: its content may be whole (another user's file), so nothing is trained again nor moved aside
    for it — the command stops naming the file (``repeval.cli.errors._guard``)."""
    try:
        pq.read_metadata(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise
    except (OSError, pa.ArrowException) as exc:
        return parquet_error(exc)
    return None


def damaged(exc: BaseException, fix: str) -> str:
    """What a run file that raised ``exc`` on reading is, with ``fix`` (what writes it anew) after it: cut short or
    corrupted; or, a ``PermissionError``, a file this user may not read — its content may be whole, nothing to
    rewrite: its permissions are the fix."""
    if isinstance(exc, PermissionError):
        return may_not_read()
    return f"cut short or corrupted; {fix}"


def may_not_read(many: bool = False) -> str:
    """The fix of a run file (``many``: several) this user may not read: its owner and permissions."""
    them, their = ("them", "their") if many else ("it", "its")
    return f"this user may not read {them}: check {their} owner and permissions (`ls -l`)"


def parquet_error(exc: BaseException) -> str:
    """Why pyarrow could not read a Parquet file (or another run file's reader: its error's first line), in one line,
    without the file's path it repeats; ``permission denied`` for a file this user may not read (pyarrow's message
    names the path twice and its errno)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    said = (str(exc).splitlines() or [""])[0]
    said = re.sub(r"^Could not open Parquet input source '.*?': ", "", said)
    return said or type(exc).__name__


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: a reader never sees half a file."""
    tmp = _tmp_name(path)
    pq.write_table(table, tmp)
    tmp.replace(path)


def _write_text_atomic(path: Path, text: str) -> None:
    """:func:`_write_atomic` for a small text file: whole or not at all."""
    tmp = _tmp_name(path)
    tmp.write_text(text)
    tmp.replace(path)


def _tmp_name(path: Path) -> Path:
    """``.<name>.tmp`` beside ``path`` (what syncing a run directory skips)."""
    return path.with_name(f".{path.name}.tmp")


def copy_hashed(src: Any, out: Any) -> str:
    """Copy ``src`` to ``out`` in 1 MiB chunks; the sha256 of what was copied."""
    digest = hashlib.sha256()
    while chunk := src.read(1 << 20):
        digest.update(chunk)
        out.write(chunk)
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    """The sha256 of the file at ``path``."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
