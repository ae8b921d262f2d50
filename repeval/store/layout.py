"""The on-disk format of a store partition: its file names, row and error-record schemas, folder names, and the
atomic writes every file goes through (written under a temporary name, then renamed into place)."""

from __future__ import annotations

import time
import uuid

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

MANIFEST = "_manifest.json"
STAMP = "_stamp.json"
ERRORS_DIR = "_errors"
#: the track ids of error records deleted to compute them again (``--retry-errors``, ``--retry-model``, ``repeval store
#: rm --track``), kept until the partition is complete again: a run finishing one that an interrupted retry (or a
#: removal) left incomplete knows them as retried (:class:`repeval.pipeline.failing.FailingModel`); ``_``-named, so
#: no Parquet reader of the partition reads it
RETRIED = "_retried.parquet"
#: bumped when the row schema changes so that rows written before cannot be read as rows written now; part of every
#: partition's fingerprint. A nullable column added for what older rows never had (``audio_note``: null in their part
#: files, which lack it) leaves it as it is, so the partitions written before are completed and read as they were
STORE_FORMAT = 2

#: the row column saying a row's audio was decoded from part of its file (:mod:`repeval.audio.partial`); null: whole.
#: Part files written before it lack it: read as null (:func:`audio_notes`)
AUDIO_NOTE = "audio_note"

TIMESTAMP = pa.timestamp("ms", tz="UTC")


class DamagedPartFile(RuntimeError):
    """A partition's part file (rows or error records) is not a readable Parquet file."""


class PartFileDenied(DamagedPartFile):
    """A partition's part file this user may not read (another user's): perhaps whole, its permissions are the fix."""


def embedding_schema(dim: int, keep_frames: bool = False) -> pa.Schema:
    """The fixed row schema of a partition (``frames`` only when frame-level embeddings are kept)."""
    fields = [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("n_frames", pa.int32()),
        pa.field("n_chunks", pa.int32()),
        pa.field("audio_seconds", pa.float32()),
        pa.field(AUDIO_NOTE, pa.string()),
        pa.field("deformation_params", pa.string()),
        pa.field("model", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("scenario", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("repeval_version", pa.string()),
        pa.field("created_at", TIMESTAMP),
    ]
    if keep_frames:
        fields.append(pa.field("frames", pa.list_(pa.list_(pa.float32(), dim))))
    return pa.schema(fields)


ERROR_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("model", pa.string()),
        pa.field("scenario", pa.string()),
        pa.field("config_hash", pa.string()),
        pa.field("created_at", TIMESTAMP),
    ]
)


def stored_name(component: str, keep: str = "") -> str:
    """``component`` as the store's folder names it: letters, digits and ``-_.=`` (and ``keep``) kept, the rest ``_``."""
    return "".join(c if c.isalnum() or c in "-_.=" or c in keep else "_" for c in component)


def _safe(component: str) -> str:
    """A path component that cannot escape the store (no separators, no '..')."""
    out = stored_name(component)
    if out in {"", ".", ".."}:
        raise ValueError(f"invalid store path component {component!r}")
    return out


def repeval_version() -> str:
    from repeval import __version__

    return __version__


def _atomic_write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as fh:
        fh.write(data)
    fs.move(tmp, path)


def missing(fs: pafs.FileSystem, path: str) -> bool:
    """Whether ``path`` is not there (``False`` when that cannot be told either)."""
    try:
        return bool(fs.get_file_info(path).type == pafs.FileType.NotFound)
    except OSError:
        return False


def read_if_there(fs: pafs.FileSystem, path: str) -> bytes | None:
    """The bytes of ``path``; ``None`` when it is not there — also said by a filesystem in words of its own (an
    ``OSError`` for a path :func:`missing` finds absent, an object store's NO_SUCH_KEY). Any other error is raised."""
    try:
        with fs.open_input_stream(path) as fh:
            return bytes(fh.read())
    except FileNotFoundError:
        return None
    except OSError:
        if missing(fs, path):
            return None
        raise


def parquet_file(fs: pafs.FileSystem, fh: pa.NativeFile) -> pq.ParquetFile:
    """The Parquet reader of ``fh``, a file of ``fs`` open for reading: on object storage the columns read are fetched
    together (``pre_buffer``, as ``pq.read_table`` does: one request for their byte ranges), on the local disk as they
    come (faster there)."""
    return pq.ParquetFile(fh, pre_buffer=not isinstance(fs, pafs.LocalFileSystem))


def read_parquet(fs: pafs.FileSystem, path: str, columns: list[str] | None = None) -> pa.Table:
    """The ``columns`` (all: ``None``) of the one Parquet file ``path``, by the plain file reader: the same table as
    ``pq.read_table(path, columns=columns, filesystem=fs)``, which builds a dataset for each file it reads — on a
    partition's small part files (``run.part_rows``, 256 rows each) 2–4× the time of the read itself and three
    storage requests instead of one (docs/benchmarks.md, session 52)."""
    with fs.open_input_file(path) as fh:
        return parquet_file(fs, fh).read(columns=columns)


def is_part_file(name: str) -> bool:
    """Whether the file ``name`` (a base name) is a part file, ``part-*.parquet`` — not a ``part-0.parquet.crc`` a
    Hadoop or Spark tool leaves beside a copy (a stray file, :func:`repeval.store.inspect.stray`)."""
    return name.startswith("part-") and name.endswith(".parquet")


def part_name() -> str:
    """A new part file's name, ``part-<time ns>-<id>.parquet``: unique to the write, its time read by stale-work checks."""
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"


def write_table_atomic(fs: pafs.FileSystem, directory: str, table: pa.Table, name: str | None = None) -> str:
    """Write ``table`` as a part file of ``directory`` (under a temporary name, renamed into place); ``name``: one
    :func:`part_name` gave before (a rewrite names its files in its journal first), else a new one."""
    fs.create_dir(directory, recursive=True)
    name = name or part_name()
    tmp = f"{directory}/.tmp-{name}"
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, f"{directory}/{name}")
    return f"{directory}/{name}"
