"""The digest of a saved split's test set (``splits/<task>__<dataset>[__fold<k>].parquet``), computed once when the run
writes the file and kept in its footer, so that ``repeval runs``, ``repeval report`` and ``repeval table`` tell runs
scored on the same test set apart without reading every run's track ids and labels
(:mod:`repeval.report.comparable`).

The digest is of the file's test rows: their track ids, each with its labels sorted, the lines sorted (the same
tracks in another order, or a track's labels in another order, are one test set), hashed (SHA-256, 16 hex digits);
``None`` for a file without test rows. :data:`DIGEST_KEY` in the file's schema metadata holds it with the rows it was
computed over; a file without it (written before it was kept, or by hand), or holding another number of rows (read
and written back with rows added or dropped, which keeps the metadata), has its digest computed from its rows — the
same either way. A file rewritten by hand with as many rows, other ones, keeping the metadata keeps a stale digest:
drop the key (``table.replace_schema_metadata(None)``) when editing one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

#: a split file's schema metadata: JSON ``{"digest": <digest_test_rows of its rows, or null>, "rows": <its row count>}``
DIGEST_KEY = b"repeval.test_digest"

#: the columns the digest is of
DIGEST_COLUMNS = ("track_id", "label", "split")


def digest_test_rows(table: pa.Table) -> str | None:
    """The digest of ``table``'s test rows (``split`` is ``test``): their sorted track ids with their sorted labels;
    ``None`` when it has none."""
    split = table.column("split")
    test = table.select(["track_id", "label"]).filter(pc.fill_null(pc.equal(split, "test"), False))
    lines = []
    for track, label in zip(test.column("track_id").to_pylist(), test.column("label").to_pylist(), strict=True):
        labels = label if isinstance(label, list) else [label]
        lines.append(f"{track}\x1e" + "\x1f".join(sorted(str(x) for x in labels)))
    if not lines:
        return None
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


def with_digest(rows: pa.Table) -> pa.Table:
    """``rows`` (a split the run saves) with :data:`DIGEST_KEY` in its schema metadata (what it had kept); as it is
    without the columns the digest is of."""
    if not set(DIGEST_COLUMNS) <= set(rows.column_names):
        return rows
    record = json.dumps({"digest": digest_test_rows(rows), "rows": rows.num_rows})
    return rows.replace_schema_metadata({**(rows.schema.metadata or {}), DIGEST_KEY: record.encode()})


def stored_digest(metadata: pq.FileMetaData) -> tuple[bool, str | None]:
    """``(found, digest)``: the digest a split file's footer holds — ``found`` is false without one, or when it was
    computed over another number of rows than the file holds."""
    raw = (metadata.metadata or {}).get(DIGEST_KEY)
    if raw is None:
        return False, None
    try:
        record = json.loads(raw)
        if record["rows"] != metadata.num_rows:
            return False, None
        digest = record["digest"]
    except (ValueError, KeyError, TypeError):
        return False, None
    return (True, digest) if digest is None or isinstance(digest, str) else (False, None)


def file_digest(
    path: Path | str, filesystem: pafs.FileSystem | None = None, failures: list[tuple[str, Exception]] | None = None
) -> str | None:
    """The digest of the split file ``path`` (on ``filesystem``, local without one): the one its footer holds, else
    computed from its rows; ``None`` when it records no test rows or cannot be read (then added, with its error, to
    ``failures``)."""
    fs = filesystem or pafs.LocalFileSystem()
    try:
        with fs.open_input_file(str(path)) as fh:
            pf = pq.ParquetFile(fh)
            found, digest = stored_digest(pf.metadata)
            if found:
                return digest
            return digest_test_rows(pf.read(columns=list(DIGEST_COLUMNS)))
    except (OSError, ValueError, KeyError, pa.ArrowInvalid) as exc:
        log.debug("test set of %s not read: %s", path, exc)
        if failures is not None:
            failures.append((str(path), exc))
        return None
