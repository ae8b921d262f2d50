"""Driver side of the stream: chunk rows from the embedding actors → store rows per (track, scenario).

A short clip is a single chunk and takes the columnar fast path (numpy → Arrow, no Python object
per row). Chunks of long tracks are held until a track's last chunk has arrived (chunks of one
track may come from different actors, in any order), then combined in chunk order — so the
result does not depend on arrival order and reruns are bit-identical. Only tracks in flight are
held, and only their per-chunk means (plus frames when they are kept).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.words import counted

log = logging.getLogger(__name__)


@dataclass
class RowBlock:
    """Finished rows of one batch, column by column (one scenario or several)."""

    track_id: np.ndarray
    split: np.ndarray
    scenario: np.ndarray
    embedding: np.ndarray  # (n, dim) float32
    n_frames: np.ndarray
    n_chunks: np.ndarray
    audio_seconds: np.ndarray
    deformation_params: np.ndarray
    model_version: np.ndarray
    frames: np.ndarray | None = None  # object array of (n_frames_i, dim) arrays
    #: the ``audio_note`` of each row: "" when its file was decoded whole (:mod:`repeval.audio.partial`; not given:
    #: every row's was)
    audio_note: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.audio_note is None:
            self.audio_note = np.full(len(self.track_id), "", dtype=object)

    def __len__(self) -> int:
        return len(self.track_id)

    def take(self, idx: np.ndarray) -> RowBlock:
        fields: dict[str, Any] = {k: (None if v is None else v[idx]) for k, v in self.__dict__.items()}
        return RowBlock(**fields)

    @staticmethod
    def concat(blocks: list[RowBlock]) -> RowBlock:
        if len(blocks) == 1:
            return blocks[0]
        fields: dict[str, Any] = {
            k: (None if v is None else np.concatenate([b.__dict__[k] for b in blocks]))
            for k, v in blocks[0].__dict__.items()
        }
        return RowBlock(**fields)


@dataclass
class ErrorBlock:
    track_id: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    scenario: list[str] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.track_id)

    def add(self, tid: str, split: str, sid: str, stage: str, reason: str) -> None:
        self.track_id.append(tid)
        self.split.append(split)
        self.scenario.append(sid)
        self.stage.append(stage)
        self.reason.append(reason)


@dataclass
class _Pending:
    split: str = ""
    params: str = ""
    model_version: str = ""
    note: str = ""
    seen: int = 0
    total: int | None = None
    error: tuple[str, str] | None = None
    chunks: dict[int, tuple[np.ndarray, int, float, np.ndarray | None]] = field(default_factory=dict)


def _str(a: Any) -> np.ndarray:
    return np.asarray(a).astype(str)


def _notes(batch: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """The ``note`` of the chunks at ``idx`` ("" each in a batch without the column)."""
    return np.asarray(batch["note"][idx], dtype=object) if "note" in batch else np.full(len(idx), "", dtype=object)


class TrackAssembler:
    """Turns embedded chunk batches into finished rows and error records."""

    def __init__(self, keep_frames: bool) -> None:
        self.keep_frames = keep_frames
        self.pending: dict[tuple[str, str], _Pending] = {}

    def add(self, batch: dict[str, np.ndarray]) -> tuple[RowBlock | None, ErrorBlock]:
        errors = ErrorBlock()
        err = _str(batch["error"])
        chunk = np.asarray(batch["chunk"])
        n_chunks = np.asarray(batch["n_chunks"])
        whole = (chunk == 0) & (n_chunks == 1)
        for i in np.flatnonzero(whole & (err != "")):
            errors.add(
                str(batch["track_id"][i]),
                str(batch["split"][i]),
                str(batch["scenario"][i]),
                str(batch["stage"][i]),
                str(err[i]),
            )
        ok = np.flatnonzero(whole & (err == ""))
        blocks = []
        if len(ok):
            blocks.append(
                RowBlock(
                    track_id=_str(batch["track_id"][ok]),
                    split=_str(batch["split"][ok]),
                    scenario=_str(batch["scenario"][ok]),
                    embedding=np.asarray(batch["embedding"][ok], np.float32),
                    n_frames=np.asarray(batch["n_frames"][ok], np.int32),
                    n_chunks=np.ones(len(ok), np.int32),
                    audio_seconds=np.asarray(batch["audio_seconds"][ok], np.float32),
                    deformation_params=_str(batch["deformation_params"][ok]),
                    model_version=_str(batch["model_version"][ok]),
                    frames=batch["frames"][ok] if self.keep_frames else None,
                    audio_note=_notes(batch, ok),
                )
            )
        done: list[tuple[str, str, _Pending]] = []
        for i in np.flatnonzero(~whole):
            key = (str(batch["track_id"][i]), str(batch["scenario"][i]))
            p = self.pending.setdefault(key, _Pending(split=str(batch["split"][i])))
            p.seen += 1
            c = int(chunk[i])
            if n_chunks[i] > 0:
                p.total = int(n_chunks[i])
            if err[i]:
                p.error = p.error or (str(batch["stage"][i]), str(err[i]))
            else:
                frames = np.asarray(batch["frames"][i], np.float32) if self.keep_frames else None
                p.chunks[c] = (
                    np.asarray(batch["embedding"][i], np.float32),
                    int(batch["n_frames"][i]),
                    float(batch["audio_seconds"][i]),
                    frames,
                )
                p.model_version = str(batch["model_version"][i])
                if "note" in batch and batch["note"][i]:
                    p.note = str(batch["note"][i])
                if c == 0:
                    p.params = str(batch["deformation_params"][i])
            if p.total is not None and p.seen >= p.total:
                done.append((*key, self.pending.pop(key)))
        if done:
            blocks.append(self._finish(done, errors))
        blocks = [b for b in blocks if len(b)]
        return (RowBlock.concat(blocks) if blocks else None), errors

    def _finish(self, done: list[tuple[str, str, _Pending]], errors: ErrorBlock) -> RowBlock:
        rows = []
        notes: list[str] = []
        for tid, sid, p in done:
            if p.error is not None:
                errors.add(tid, p.split, sid, *p.error)
                continue
            order = sorted(p.chunks)
            means = np.stack([p.chunks[c][0] for c in order]).astype(np.float64)
            counts = np.array([p.chunks[c][1] for c in order], np.float64)
            emb = ((means * counts[:, None]).sum(axis=0) / counts.sum()).astype(np.float32)
            frames = np.concatenate([p.chunks[c][3] for c in order]) if self.keep_frames else None
            seconds = float(sum(p.chunks[c][2] for c in order))
            rows.append(
                (tid, p.split, sid, emb, int(counts.sum()), len(order), seconds, p.params, p.model_version, frames)
            )
            notes.append(p.note)
        if not rows:
            return RowBlock(*(np.zeros(0) for _ in range(9)))
        cols = list(zip(*rows, strict=True))
        frames_col = None
        if self.keep_frames:
            frames_col = np.empty(len(rows), dtype=object)
            frames_col[:] = list(cols[9])
        return RowBlock(
            track_id=np.array(cols[0]),
            split=np.array(cols[1]),
            scenario=np.array(cols[2]),
            embedding=np.stack(cols[3]),
            n_frames=np.array(cols[4], np.int32),
            n_chunks=np.array(cols[5], np.int32),
            audio_seconds=np.array(cols[6], np.float32),
            deformation_params=np.array(cols[7]),
            model_version=np.array(cols[8]),
            frames=frames_col,
            audio_note=np.array(notes, dtype=object),
        )

    def abandon(self) -> int:
        """Drop tracks whose chunks did not all arrive (the stream stopped); returns how many."""
        n = len(self.pending)
        if n:
            log.info(
                "%s in flight when the stream stopped: %s recomputed on the next run",
                counted(n, "track"),
                "it is" if n == 1 else "they are",
            )
        self.pending.clear()
        return n


def _fixed_list(mat: np.ndarray, dim: int) -> pa.Array:
    flat = np.ascontiguousarray(mat, dtype=np.float32).reshape(-1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)


def rows_table(block: RowBlock, schema: pa.Schema, provenance: dict[str, Any]) -> pa.Table:
    """One Arrow table in the store schema; ``provenance`` fills model, config_hash, repeval_version, created_at."""
    n = len(block)
    dim = schema.field("embedding").type.list_size
    params = block.deformation_params
    cols: dict[str, pa.Array] = {
        "track_id": pa.array(block.track_id, pa.string()),
        "split": pa.array(block.split, pa.string()),
        "embedding": _fixed_list(block.embedding, dim),
        "n_frames": pa.array(block.n_frames, pa.int32()),
        "n_chunks": pa.array(block.n_chunks, pa.int32()),
        "audio_seconds": pa.array(block.audio_seconds, pa.float32()),
        "deformation_params": pa.array(params, pa.string(), mask=params == ""),
        "model": pa.array([provenance["model"]] * n, pa.string()),
        "model_version": pa.array(block.model_version, pa.string()),
        "scenario": pa.array(block.scenario, pa.string()),
        "config_hash": pa.array([provenance["config_hash"]] * n, pa.string()),
        "repeval_version": pa.array([provenance["repeval_version"]] * n, pa.string()),
        "created_at": pa.array(np.full(n, provenance["created_at"], "datetime64[ms]"), schema.field("created_at").type),
    }
    if "audio_note" in schema.names:
        notes = np.asarray(block.audio_note, dtype=object)
        cols["audio_note"] = pa.array(notes, pa.string(), mask=notes == "")
    if "frames" in schema.names:
        frames = [np.asarray(f, np.float32).reshape(-1, dim) for f in block.frames]  # type: ignore[union-attr]
        offsets = np.concatenate([[0], np.cumsum([len(f) for f in frames])]).astype(np.int32)
        values = np.concatenate(frames) if frames else np.zeros((0, dim), np.float32)
        cols["frames"] = pa.ListArray.from_arrays(pa.array(offsets), _fixed_list(values, dim))
    return pa.table([cols[name] for name in schema.names], schema=schema)


def errors_table(errors: ErrorBlock, schema: pa.Schema, provenance: dict[str, Any]) -> pa.Table:
    n = len(errors)
    return pa.table(
        {
            "track_id": pa.array(errors.track_id, pa.string()),
            "split": pa.array(errors.split, pa.string()),
            "stage": pa.array(errors.stage, pa.string()),
            "reason": pa.array(errors.reason, pa.string()),
            "model": pa.array([provenance["model"]] * n, pa.string()),
            "scenario": pa.array(errors.scenario, pa.string()),
            "config_hash": pa.array([provenance["config_hash"]] * n, pa.string()),
            "created_at": pa.array(
                np.full(n, provenance["created_at"], "datetime64[ms]"), schema.field("created_at").type
            ),
        },
        schema=schema,
    )
