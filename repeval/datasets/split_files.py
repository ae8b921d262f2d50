"""A run's splits on disk: every track's split (with its group and labels) written to and read back from Parquet,
so a resumed run reuses them (:func:`apply_saved_splits`). How the splits are drawn: :mod:`repeval.datasets.splits`."""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

SPLITS_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("group", pa.string()),
        pa.field("label", pa.list_(pa.string())),
    ]
)


def save_splits(rows: pa.Table, path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> str:
    """Write the split of every track (with its group and labels) to a Parquet file; returns the path.

    ``metadata`` (e.g. dataset name, seed, fold) goes into the Parquet key-value metadata. The
    file is written to a temporary name and renamed, so a crash never leaves a partial file.
    """
    path = os.fspath(path)
    table = rows.select([f.name for f in SPLITS_SCHEMA]).cast(SPLITS_SCHEMA)
    if metadata:
        table = table.replace_schema_metadata({str(k): str(v) for k, v in metadata.items()})
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    log.info("saved splits of %d tracks to %s", table.num_rows, path)
    return path


def load_splits(path: str | os.PathLike[str]) -> pa.Table:
    """Read a file written by :func:`save_splits`."""
    return pq.read_table(os.fspath(path))


def apply_saved_splits(rows: pa.Table, saved: pa.Table) -> pa.Table:
    """Reuse saved splits (e.g. to resume a run): each row takes its saved split; new rows keep theirs."""
    ids = rows.column("track_id").combine_chunks()
    idx = pc.index_in(ids, value_set=saved.column("track_id").combine_chunks())
    saved_split = saved.column("split").combine_chunks().take(idx)
    new = pc.coalesce(saved_split, rows.column("split").combine_chunks())
    return rows.set_column(rows.schema.get_field_index("split"), "split", new)
