"""Embedding store: ``<root>/<dataset>/<model>/<scenario>/part-*.parquet`` + ``_manifest.json``.

Readable by plain pyarrow / pandas / duckdb. Every file is written under a temporary name and
renamed into place; a partition is complete only when its ``_manifest.json`` exists, and the
manifest is written last. Part files of an unfinished partition are kept: a rerun reads their
track ids and computes only what is missing. The root may be any pyarrow filesystem URI.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
ERRORS_DIR = "_errors"


class StoreConflict(RuntimeError):
    """A partition exists but was computed with a different configuration."""


def embedding_schema(dim: int, keep_frames: bool = False) -> pa.Schema:
    fields = [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
        pa.field("n_frames", pa.int32()),
        pa.field("deformation_params", pa.string()),
        pa.field("model", pa.string()),
        pa.field("scenario", pa.string()),
        pa.field("audio_seconds", pa.float32()),
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
    ]
)


def _safe(component: str) -> str:
    """A path component that cannot escape the store (no separators, no '..')."""
    out = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in component)
    if out in {"", ".", ".."}:
        raise ValueError(f"invalid store path component {component!r}")
    return out


class EmbeddingStore:
    def __init__(self, root: str) -> None:
        self.uri = root
        if "://" in root:
            self.fs, self.root = pafs.FileSystem.from_uri(root)
        else:
            import os

            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        self.fs.create_dir(self.root, recursive=True)

    def partition(self, dataset: str, model: str, scenario: str) -> Partition:
        return Partition(self, f"{self.root}/{_safe(dataset)}/{_safe(model)}/{_safe(scenario)}", dataset, model, scenario)

    def partitions(self) -> list[Partition]:
        out = []
        sel = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(sel):
            if info.type == pafs.FileType.Directory:
                rel = info.path[len(self.root) :].strip("/").split("/")
                if len(rel) == 3 and ERRORS_DIR not in rel:
                    out.append(Partition(self, info.path, *rel))
        return sorted(out, key=lambda p: p.path)


@dataclass
class Partition:
    store: EmbeddingStore
    path: str
    dataset: str
    model: str
    scenario: str

    @property
    def fs(self) -> pafs.FileSystem:
        return self.store.fs

    def manifest(self) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(f"{self.path}/{MANIFEST}") as fh:
                return json.loads(fh.read().decode())
        except (FileNotFoundError, OSError):
            return None

    @property
    def complete(self) -> bool:
        return self.manifest() is not None

    def _files(self, sub: str = "") -> list[str]:
        sel = pafs.FileSelector(f"{self.path}{sub}", allow_not_found=True)
        return sorted(
            i.path for i in self.fs.get_file_info(sel) if i.type == pafs.FileType.File and i.base_name.startswith("part-")
        )

    def part_files(self) -> list[str]:
        return self._files()

    def error_files(self) -> list[str]:
        return self._files(f"/{ERRORS_DIR}")

    def done_track_ids(self) -> set[str]:
        """Track ids with an embedding or an error record already written."""
        done: set[str] = set()
        for f in self.part_files() + self.error_files():
            t = pq.read_table(f, columns=["track_id"], filesystem=self.fs)
            done.update(t.column("track_id").to_pylist())
        return done

    def check_compatible(self, fingerprint: dict[str, Any]) -> None:
        """Refuse to mix rows computed under another configuration into this partition."""
        m = self.manifest()
        stamp = m if m is not None else self._read_stamp()
        if stamp is None:
            return
        old = stamp.get("fingerprint")
        if old is not None and old != fingerprint:
            raise StoreConflict(
                f"store partition {self.path} was computed with a different configuration "
                f"({old} != {fingerprint}); give the model or scenario a new id, point run.store elsewhere, "
                f"or delete the partition to recompute it"
            )

    def _read_stamp(self) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(f"{self.path}/_stamp.json") as fh:
                return json.loads(fh.read().decode())
        except (FileNotFoundError, OSError):
            return None

    def reopen(self) -> None:
        """Mark a complete partition incomplete again before adding rows to it."""
        try:
            self.fs.delete_file(f"{self.path}/{MANIFEST}")
        except (FileNotFoundError, OSError):
            pass

    def stamp(self, fingerprint: dict[str, Any]) -> None:
        if self._read_stamp() is None:
            self.fs.create_dir(self.path, recursive=True)
            _atomic_write_bytes(self.fs, f"{self.path}/_stamp.json", json.dumps({"fingerprint": fingerprint}).encode())

    def read(self, columns: list[str] | None = None) -> pa.Table:
        files = self.part_files()
        if not files:
            raise FileNotFoundError(f"store partition {self.path} has no data: run `repeval embed` first")
        return pa.concat_tables([pq.read_table(f, columns=columns, filesystem=self.fs) for f in files])

    def read_errors(self) -> pa.Table:
        files = self.error_files()
        if not files:
            return ERROR_SCHEMA.empty_table()
        return pa.concat_tables([pq.read_table(f, filesystem=self.fs) for f in files])

    def embeddings(self) -> tuple[list[str], list[str], np.ndarray]:
        """(track ids, splits, (n, dim) float32 matrix)."""
        t = self.read(["track_id", "split", "embedding"])
        emb = t.column("embedding").combine_chunks()
        dim = emb.type.list_size
        mat = emb.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
        return t.column("track_id").to_pylist(), t.column("split").to_pylist(), mat

    def finish(self, info: dict[str, Any]) -> None:
        """Mark the partition complete (written last, atomically)."""
        self.fs.create_dir(self.path, recursive=True)
        rows = sum(pq.read_metadata(f, filesystem=self.fs).num_rows for f in self.part_files())
        errors = sum(pq.read_metadata(f, filesystem=self.fs).num_rows for f in self.error_files())
        stamp = self._read_stamp() or {}
        manifest = {**info, **stamp, "rows": rows, "errors": errors, "completed_at": time.time()}
        _atomic_write_bytes(self.fs, f"{self.path}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())


def _atomic_write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with fs.open_output_stream(tmp) as fh:
        fh.write(data)
    fs.move(tmp, path)


def write_table_atomic(fs: pafs.FileSystem, directory: str, table: pa.Table) -> str:
    fs.create_dir(directory, recursive=True)
    name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
    tmp = f"{directory}/.tmp-{name}"
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, f"{directory}/{name}")
    return f"{directory}/{name}"


class PartitionWriter:
    """Buffers rows for one partition and flushes them as atomic part files."""

    def __init__(self, partition: Partition, schema: pa.Schema, part_rows: int) -> None:
        self.partition = partition
        self.schema = schema
        self.part_rows = part_rows
        self.rows: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.written = 0
        self.error_count = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.part_rows:
            self.flush()

    def add_error(self, row: dict[str, Any]) -> None:
        self.errors.append(row)
        if len(self.errors) >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            write_table_atomic(self.partition.fs, self.partition.path, pa.Table.from_pylist(self.rows, schema=self.schema))
            self.written += len(self.rows)
            self.rows = []
        if self.errors:
            write_table_atomic(
                self.partition.fs, f"{self.partition.path}/{ERRORS_DIR}", pa.Table.from_pylist(self.errors, schema=ERROR_SCHEMA)
            )
            self.error_count += len(self.errors)
            self.errors = []
