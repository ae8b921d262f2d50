"""Rows and partitions the store's tests write: a block of rows of a few tracks, a stamped partition holding them
and an error record."""

from __future__ import annotations

import numpy as np

from repeval.pipeline.assemble import ErrorBlock, RowBlock, errors_table, rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import ERROR_SCHEMA, embedding_schema

DIM = 4
PROV = {
    "model": "m",
    "config_hash": "abc123",
    "repeval_version": "0.1.0",
    "created_at": np.datetime64(1_700_000_000_000, "ms"),
}


def _block(ids: list[str], keep_frames: bool = False) -> RowBlock:
    n = len(ids)
    frames = np.empty(n, dtype=object)
    frames[:] = [np.full((i + 1, DIM), i, np.float32) for i in range(n)]
    return RowBlock(
        track_id=np.array(ids),
        split=np.array(["train"] * n),
        scenario=np.array(["clean"] * n),
        embedding=np.arange(n * DIM, dtype=np.float32).reshape(n, DIM),
        n_frames=np.arange(1, n + 1, dtype=np.int32),
        n_chunks=np.ones(n, np.int32),
        audio_seconds=np.full(n, 1.5, np.float32),
        deformation_params=np.array(["", '[{"type": "Gain"}]'] * (n // 2) + [""] * (n % 2)),
        model_version=np.array(["1"] * n),
        frames=frames if keep_frames else None,
    )


def _write(store: EmbeddingStore, ids: list[str], keep_frames: bool = False, part_rows: int = 3):
    part = store.partition("ds", "m", "clean")
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    schema = embedding_schema(DIM, keep_frames)
    w = PartitionWriter(part, schema, part_rows)
    w.add_table(rows_table(_block(ids, keep_frames), schema, PROV))
    errs = ErrorBlock()
    errs.add("bad", "test", "clean", "decode", "cannot decode")
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    return part
