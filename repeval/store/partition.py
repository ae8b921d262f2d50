"""One store partition, ``<root>/<dataset>/<model>/<scenario>/``: its stamp and manifest, the track ids and counts
of its part files, the compatibility check, and its readers (:meth:`Partition.embeddings`, :meth:`Partition.frames`)."""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.store.fingerprint import (
    WINDOWING_ENTRIES,
    WINDOWING_HINTS,
    StoreConflict,
    _described_diff,
    merge_sources,
)
from repeval.store.layout import (
    ERROR_SCHEMA,
    ERRORS_DIR,
    MANIFEST,
    STAMP,
    STORE_FORMAT,
    DamagedPartFile,
    _atomic_write_bytes,
    repeval_version,
    write_table_atomic,
)

if TYPE_CHECKING:
    from repeval.store.store import EmbeddingStore

log = logging.getLogger(__name__)


def show_errors_command(store_uri: str, partition: str) -> str:
    """The ``repeval store show --errors`` command for ``partition`` (``dataset/model/scenario``), quoted for a shell."""
    return f"repeval store show {shlex.quote(store_uri)} {shlex.quote(partition)} --errors"


@dataclass
class Partition:
    store: EmbeddingStore
    path: str
    dataset: str
    model: str
    scenario: str
    # the fingerprint :meth:`check_compatible` last accepted by the windowing rule (:meth:`_only_windowing_added`):
    # :meth:`stamp` and :meth:`restamp` need not read every part file's ``n_chunks`` again
    _windowing_accepted: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def fs(self) -> pafs.FileSystem:
        return self.store.fs

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{self.scenario}"

    def show_errors_command(self) -> str:
        """The ``repeval store show --errors`` command that lists this partition's error records (and only those)."""
        return show_errors_command(self.store.uri, self.name)

    def rm_command(self) -> str:
        """The ``repeval store rm`` command that deletes this partition, quoted for a shell."""
        return f"repeval store rm {shlex.quote(self.store.uri)} {shlex.quote(self.name)} --yes"

    def _read_json(self, name: str) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(f"{self.path}/{name}") as fh:
                return json.loads(fh.read().decode())
        except (FileNotFoundError, OSError):
            return None

    def manifest(self) -> dict[str, Any] | None:
        return self._read_json(MANIFEST)

    def stamped(self) -> dict[str, Any] | None:
        """What the partition was stamped with (its manifest, else its stamp): ``fingerprint``, ``described``, …"""
        m = self.manifest()
        return m if m is not None else self._read_json(STAMP)

    @property
    def complete(self) -> bool:
        return self.manifest() is not None

    def _files(self, sub: str = "") -> list[str]:
        sel = pafs.FileSelector(f"{self.path}{sub}", allow_not_found=True)
        return sorted(
            i.path
            for i in self.fs.get_file_info(sel)
            if i.type == pafs.FileType.File and i.base_name.startswith("part-")
        )

    def part_files(self) -> list[str]:
        return self._files()

    def foreign(self) -> bool:
        """Whether the folder holds something, none of it a partition's (``part-*`` files, ``_stamp.json``,
        ``_manifest.json``, ``_errors/``, temporary names) and not only hidden files: a folder three deep that is not a
        partition — a runs directory's ``tune/`` experiments, say, given as the store. ``store ls`` lists it as such;
        ``store rm`` refuses it."""
        sel = pafs.FileSelector(self.path, allow_not_found=True)
        names = [i.base_name for i in self.fs.get_file_info(sel)]
        own = any(n.startswith(("part-", "_", ".tmp-")) for n in names)
        return not own and any(not n.startswith(".") for n in names)  # a folder of hidden files alone: as empty

    def error_files(self) -> list[str]:
        return self._files(f"/{ERRORS_DIR}")

    def damaged(self, path: str, exc: Exception) -> DamagedPartFile:
        """The error for a part file that cannot be read (cut short, overwritten, not Parquet), naming the fix."""
        why = str(exc).splitlines()[0].rsplit(": ", 1)[-1] if str(exc) else type(exc).__name__  # not the path again
        return DamagedPartFile(
            f"store partition {self.name} in {self.store.uri}: {path} is not a readable Parquet file ({why}) — "
            "delete that file (the next run computes its tracks again) or the whole partition "
            f"(`{self.rm_command()}`)"
        )

    def _column(self, f: str, name: str) -> pa.ChunkedArray:
        """Column ``name`` of part file ``f``; a file that cannot be read is :meth:`damaged`."""
        try:
            return pq.read_table(f, columns=[name], filesystem=self.fs).column(0)
        except (pa.ArrowException, OSError) as exc:
            raise self.damaged(f, exc) from None

    def _ids(self, files: list[str]) -> pa.ChunkedArray:
        chunks = [self._column(f, "track_id") for f in files]
        return pa.chunked_array([c for ch in chunks for c in ch.chunks], pa.string())

    def _num_rows(self, files: list[str]) -> int:
        """Rows in ``files``, from their Parquet footers."""
        n = 0
        for f in files:
            try:
                n += pq.read_metadata(f, filesystem=self.fs).num_rows
            except (pa.ArrowException, OSError) as exc:
                raise self.damaged(f, exc) from None
        return n

    def done_ids(self) -> pa.Array:
        """Unique track ids with an embedding or an error record already written (an Arrow array)."""
        return pc.unique(self._ids(self.part_files() + self.error_files()).combine_chunks())

    def embedded_ids(self) -> pa.Array:
        """Unique track ids with an embedding (error records left out)."""
        return pc.unique(self._ids(self.part_files()).combine_chunks())

    def error_ids(self) -> pa.Array:
        """Track ids of the error records, one per record (an Arrow array)."""
        return self._ids(self.error_files()).combine_chunks()

    def done_track_ids(self) -> set[str]:
        """Like :meth:`done_ids`, as a Python set (small partitions, tools)."""
        return set(self.done_ids().to_pylist())

    def counts(self) -> tuple[int, int]:
        """(rows, error rows) from the Parquet footers, without reading data."""
        return self._num_rows(self.part_files()), self._num_rows(self.error_files())

    def check_compatible(self, fingerprint: dict[str, Any], described: dict[str, Any] | None = None) -> bool:
        """Refuse to mix rows computed under another configuration into this partition.

        Returns ``True`` when the partition differs only by keeping frames that ``fingerprint`` does not ask for
        (``keep_frames``): its rows serve such a run, but rows computed without frames must not be added to it (the
        embedding stage completes it with frames: :func:`repeval.pipeline.partitions.accepted_spec`).
        ``described`` (fingerprint key path → the value its hash stands for, as :meth:`stamp` keeps it) lets the
        error name what differs inside a hash — ``model.params.n_mfcc: stored 20, now 30`` — where the stamp has it
        too (partitions stamped before it was kept: the hashes)."""
        stamp = self.stamped()
        if stamp is None:
            self._check_unstamped_rows(fingerprint)
            return False
        old = stamp.get("fingerprint")
        if isinstance(old, dict) and old.get("keep_frames") is True and fingerprint.get("keep_frames") is False:
            if {**old, "keep_frames": False} == fingerprint:
                return True
        if old is not None and old != fingerprint and self._only_windowing_added(old, fingerprint):
            self._windowing_accepted = fingerprint
        elif old is not None and old != fingerprint:
            diff = _described_diff(old, fingerprint, stamp.get("described"), described)
            hint = ""
            if isinstance(old, dict) and old.get("keep_frames") is False and fingerprint.get("keep_frames") is True:
                hint = (
                    " (its rows have no frame-level embeddings, which this run keeps there: a task reads this dataset "
                    "with this model with embedding_aggregation: prediction or attention, or run.keep_frames: true)"
                )
            if isinstance(old, dict):
                for k, v in WINDOWING_ENTRIES.items():
                    if k not in old and fingerprint.get(k) == v:
                        hint += f" ({WINDOWING_HINTS[k]})"
                if "seed" in old and old.get("seed") != fingerprint.get("seed"):
                    hint += (
                        " (run.seed also draws each track's deformation: another run.seed deforms the tracks anew; for "
                        f"more probe seeds on these embeddings keep run.seed: {old['seed']} and raise run.seeds)"
                    )
            raise StoreConflict(
                f"store partition {self.path} was computed with a different configuration — {diff}{hint}; "
                f"{self._conflict_fix(old, fingerprint)}"
            )
        return False

    def _conflict_fix(self, old: Any, fingerprint: dict[str, Any]) -> str:
        """How to go on from a partition stamped ``old``: when the model differs, every scenario of it differs alike
        (the run stops at the first), so the id to give it and the command that deletes them all are named too."""
        if not (isinstance(old, dict) and old.get("model") != fingerprint.get("model")):
            return (
                "give the model or scenario a new id, point run.store elsewhere, or delete the partition to recompute "
                f"it (`{self.rm_command()}`)"
            )
        now = fingerprint.get("model")
        family = now.get("family") if isinstance(now, dict) else None
        every = f"{self.name.rsplit('/', 1)[0]}/*"
        return (
            f"give the model a new id (in embedding_models, `id: {self.model}-2`{f' with `type: {family}`' * bool(family)}"
            f"), point run.store elsewhere, or delete the partition to recompute it (`{self.rm_command()}`) — every "
            f"scenario of this model differs alike: `repeval store rm {shlex.quote(self.store.uri)} "
            f"{shlex.quote(every)} --yes` deletes them all"
        )

    def _only_windowing_added(self, old: Any, fingerprint: dict[str, Any]) -> bool:
        """``fingerprint`` is ``old`` plus :data:`WINDOWING_ENTRIES` only, and every stored row is one window long:
        the rows are what ``fingerprint`` computes (a track of one window is deformed alike either way)."""
        if not isinstance(old, dict):
            return False
        added = {k: v for k, v in fingerprint.items() if k not in old}
        if not added or not added.items() <= WINDOWING_ENTRIES.items():
            return False
        if {k: v for k, v in fingerprint.items() if k not in added} != old:
            return False
        for f in self.part_files():
            n_chunks = pc.max(self._column(f, "n_chunks")).as_py()
            if n_chunks is not None and n_chunks > 1:
                return False
        return True

    def _check_unstamped_rows(self, fingerprint: dict[str, Any]) -> None:
        """A partition whose ``_stamp.json`` and ``_manifest.json`` are gone (deleted by hand) but whose part files
        remain: their ``config_hash`` column says what they were computed with, and rows of another configuration are
        never added to them."""
        from repeval.config.loader import config_hash

        files = self.part_files() + self.error_files()
        if not files:
            return
        want = config_hash(fingerprint)
        found: set[str] = set()
        for f in files:
            found.update(h for h in pc.unique(self._column(f, "config_hash")).to_pylist() if h is not None)
        other = sorted(found - {want})
        if other:
            raise StoreConflict(
                f"store partition {self.path} has no {STAMP} or {MANIFEST} (deleted?) and its part files hold rows "
                f"computed with another configuration (config_hash {', '.join(other)}, now {want}); give the model or "
                "scenario a new id, point run.store elsewhere, or delete the partition to recompute it "
                f"(`{self.rm_command()}`)"
            )

    def clear_errors(self) -> int:
        """Delete this partition's error records (``--retry-errors``) and mark it incomplete; returns how many.

        The tracks they named count as missing again, so the next stream recomputes them. Deleting first is
        safe: if the retry is interrupted, the tracks are still missing and the following run retries them."""
        files = self.error_files()
        if not files:
            return 0
        n = self._num_rows(files)
        self.reopen()
        for f in files:
            self.fs.delete_file(f)
        return n

    def delete(self) -> None:
        """Remove the partition (manifest first, so an interrupted delete leaves it incomplete, never complete)."""
        self.reopen()
        self.fs.delete_dir(self.path)

    def reopen(self) -> None:
        """Mark a complete partition incomplete again before adding rows to it."""
        try:
            self.fs.delete_file(f"{self.path}/{MANIFEST}")
        except (FileNotFoundError, OSError):
            pass

    def stamp(
        self,
        fingerprint: dict[str, Any],
        provenance: dict[str, Any] | None = None,
        described: dict[str, Any] | None = None,
        sources: list[dict[str, Any]] | None = None,
    ) -> None:
        """Record the configuration a partition is computed with (once: the first run's stamp stays); ``described``
        keeps readable what the fingerprint's hashes stand for (see :meth:`check_compatible`, which a run calls
        first, on this partition). ``sources`` (where the run's dataset takes its audio from) join the stamp's
        ``sources`` however old the stamp: the partition's rows are computed from them from here on."""
        existing = self._read_json(STAMP)
        if existing is None:
            body: dict[str, Any] = {"created_at": time.time()}
        elif existing.get("fingerprint") != fingerprint and self._windowing_accepted == fingerprint:
            # check_compatible accepted this stamp from before WINDOWING_ENTRIES for its one-window rows (having read
            # every part file's n_chunks: not again here); rows of several windows may join them now, so it says from
            # here on how they are computed
            body = existing
        else:
            merged = merge_sources(existing.get("sources"), sources)
            if merged != existing.get("sources"):
                _atomic_write_bytes(
                    self.fs,
                    f"{self.path}/{STAMP}",
                    json.dumps({**existing, "sources": merged}, sort_keys=True).encode(),
                )
            return
        self.fs.create_dir(self.path, recursive=True)
        body = {**body, **(provenance or {}), "fingerprint": fingerprint}
        if described:
            body["described"] = described
        if sources:
            body["sources"] = merge_sources(body.get("sources"), sources)
        _atomic_write_bytes(self.fs, f"{self.path}/{STAMP}", json.dumps(body, sort_keys=True).encode())

    def sources(self) -> list[dict[str, Any]] | None:
        """Where the audio of the partition's rows came from: the ``sources`` of its manifest (else its stamp), each
        a dataset's source as a run that computed or reused the rows defined it (:meth:`stamp`, :meth:`add_sources`);
        ``None`` when none is recorded (a partition stamped before repeval recorded them)."""
        body = self.manifest() or self._read_json(STAMP)
        found = body.get("sources") if body else None
        return found if isinstance(found, list) and found else None

    def add_sources(self, sources: list[dict[str, Any]]) -> bool:
        """Add ``sources`` to the stamp and manifest of a partition that records where its rows came from (one that
        records none is left alone: its rows' source is not known); returns whether anything was written."""
        wrote = False
        for name in (STAMP, MANIFEST):
            body = self._read_json(name)
            if body is None or not isinstance(body.get("sources"), list):
                continue
            merged = merge_sources(body["sources"], sources)
            if merged != body["sources"]:
                text = json.dumps({**body, "sources": merged}, indent=1 if name == MANIFEST else None, sort_keys=True)
                _atomic_write_bytes(self.fs, f"{self.path}/{name}", text.encode())
                wrote = True
        return wrote

    def restamp(self, fingerprint: dict[str, Any], provenance: dict[str, Any] | None = None) -> bool:
        """Write ``fingerprint`` into the stamp and manifest of a partition that :meth:`check_compatible` has just
        accepted under it by the windowing rule (a pre-:data:`WINDOWING_ENTRIES` stamp, rows all one window), so a
        complete partition is not re-checked row by row on every later run. Returns whether it wrote anything."""
        if self._windowing_accepted != fingerprint:
            return False
        for name in (STAMP, MANIFEST):
            body = self._read_json(name)
            if body is not None and body.get("fingerprint") != fingerprint:
                body = {**body, **(provenance or {}), "fingerprint": fingerprint}
                text = json.dumps(body, indent=1 if name == MANIFEST else None, sort_keys=True)
                _atomic_write_bytes(self.fs, f"{self.path}/{name}", text.encode())
        self._windowing_accepted = None
        return True

    def read(self, columns: list[str] | None = None) -> pa.Table:
        files = self.data_files()
        # part files from before a column was added (audio_note) lack it: null in their rows
        return pa.concat_tables(
            [pq.read_table(f, columns=columns, filesystem=self.fs) for f in files], promote_options="default"
        )

    def read_errors(self) -> pa.Table:
        files = self.error_files()
        if not files:
            return ERROR_SCHEMA.empty_table()
        return pa.concat_tables([pq.read_table(f, filesystem=self.fs) for f in files], promote_options="default")

    def head_errors(self, limit: int) -> tuple[pa.Table, int]:
        """The first ``limit`` error records (file by file) and how many there are (the others counted from the
        Parquet footers); a file that cannot be read is :meth:`damaged`."""
        head: list[pa.Table] = []
        total = shown = 0
        for f in self.error_files():
            try:
                if shown < limit:
                    t = pq.read_table(f, filesystem=self.fs).slice(0, limit - shown)
                    head.append(t)
                    shown += t.num_rows
                total += pq.read_metadata(f, filesystem=self.fs).num_rows
            except (pa.ArrowException, OSError) as exc:
                raise self.damaged(f, exc) from None
        table = pa.concat_tables(head, promote_options="default") if head else ERROR_SCHEMA.empty_table()
        return table, total

    def data_files(self) -> list[str]:
        """:meth:`part_files`, or the error naming the fix when there are none."""
        files = self.part_files()
        if not files:
            raise FileNotFoundError(
                f"store partition {self.path} has no data: embed it with `repeval embed CONFIG --store "
                f"{self.store.uri}` (the run's own --run-id and --runs-dir too, where it has them)"
            )
        return files

    def embeddings(self) -> tuple[list[str], list[str], np.ndarray]:
        """(track ids, splits, (n, dim) float32 matrix), read file by file into the matrix (its rows counted from
        the Parquet footers first): the peak is about the matrix itself."""
        files = self.data_files()
        dim = pq.read_schema(files[0], filesystem=self.fs).field("embedding").type.list_size
        mat = np.empty((sum(pq.read_metadata(f, filesystem=self.fs).num_rows for f in files), dim), np.float32)
        ids: list[str] = []
        splits: list[str] = []
        for f in files:
            t = pq.read_table(f, columns=["track_id", "split", "embedding"], filesystem=self.fs)
            emb = pc.list_flatten(t.column("embedding").combine_chunks())
            mat[len(ids) : len(ids) + t.num_rows] = emb.to_numpy(zero_copy_only=False).reshape(-1, dim)
            ids += t.column("track_id").to_pylist()
            splits += t.column("split").to_pylist()
        return ids, splits, mat

    def require_frames(self, schema: pa.Schema) -> None:
        """Raise the error naming the fix unless ``schema`` (one of the partition's files') has frames."""
        if "frames" not in schema.names:
            raise ValueError(
                f"store partition {self.path} holds no frame-level embeddings (computed for tasks with "
                f"embedding_aggregation: mean only); delete it (`{self.rm_command()}`) and run again: a run whose "
                "task reads frames here recomputes it with them (as does one with run.keep_frames: true)"
            )

    def frame_count_error(self, path: str) -> ValueError:
        """The error for a part file whose rows' ``n_frames`` differ from their number of frames."""
        return ValueError(
            f"store partition {self.path}: {path.rsplit('/', 1)[-1]} has rows whose n_frames differs from their number "
            f"of frames — the file was not written by repeval's embedding stage; delete the partition "
            f"(`{self.rm_command()}`) and embed it again"
        )

    def frames(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(track ids, splits, (total frames, dim) float32 matrix of every row's frames in row order, (n,) frame
        counts): the frame-level embeddings of a partition that keeps them (``keep_frames`` in its fingerprint). Read in two passes —
        the ids, splits and ``n_frames`` first, then the frames file by file into the matrix — so the peak is about
        the matrix itself."""
        files = self.data_files()
        schema = pq.read_schema(files[0], filesystem=self.fs)
        self.require_frames(schema)
        dim = schema.field("frames").type.value_type.list_size
        heads = [pq.read_table(f, columns=["track_id", "split", "n_frames"], filesystem=self.fs) for f in files]
        counts = np.concatenate(
            [pc.fill_null(h.column("n_frames"), 0).to_numpy().astype(np.int64) for h in heads]
            or [np.zeros(0, np.int64)]
        )
        mat = np.empty((int(counts.sum()), dim), np.float32)
        row = at = 0
        for f, h in zip(files, heads, strict=True):
            col = pq.read_table(f, columns=["frames"], filesystem=self.fs).column(0).combine_chunks()
            lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
            if not np.array_equal(lengths, counts[row : row + h.num_rows]):
                raise self.frame_count_error(f)
            flat = pc.list_flatten(pc.list_flatten(col)).to_numpy(zero_copy_only=False).reshape(-1, dim)
            mat[at : at + len(flat)] = flat
            row, at = row + h.num_rows, at + len(flat)
        ids = [i for h in heads for i in h.column("track_id").to_pylist()]
        return ids, [s for h in heads for s in h.column("split").to_pylist()], mat, counts

    def dedupe(self) -> int:
        """Drop duplicate track ids (keeping the first row) and return how many were dropped.

        Duplicates cannot come from one run (each run computes only missing ids); this is the
        guard for a retried task whose output was delivered twice. The check reads only the id
        column; rewriting happens only when a duplicate exists: the deduplicated rows go into a
        new part file first, then the old files are deleted, so a crash in between leaves
        duplicates (dropped by the next call), never missing rows.
        """
        files = self.part_files()
        if not files:
            return 0
        ids = self._ids(files).combine_chunks()
        n_unique = len(pc.unique(ids))
        if n_unique == len(ids):
            return 0
        table = pa.concat_tables([pq.read_table(f, filesystem=self.fs) for f in files], promote_options="default")
        codes = np.asarray(pc.dictionary_encode(ids).indices)
        keep = np.sort(np.unique(codes, return_index=True)[1])  # first occurrence of every id
        write_table_atomic(self.fs, self.path, table.take(pa.array(keep)))
        for f in files:
            self.fs.delete_file(f)
        dropped = len(ids) - len(keep)
        log.warning("%s: dropped %d duplicate row(s)", self.path, dropped)
        return dropped

    def finish(self, info: dict[str, Any]) -> dict[str, Any]:
        """Mark the partition complete (manifest written last, atomically) and return the manifest."""
        self.fs.create_dir(self.path, recursive=True)
        self.dedupe()
        files = self.part_files()
        rows, errors = self._num_rows(files), self._num_rows(self.error_files())
        stamp = self._read_json(STAMP) or {}
        manifest = {
            **stamp,
            **info,
            "rows": rows,
            "errors": errors,
            # which row part files hold the rows — each name unique to the write that made it — so a partition embedded
            # anew (deleted and computed again: fixed audio) tells from the one read before: the same counts differ here
            "parts_digest": hashlib.sha256("\n".join(f.rsplit("/", 1)[-1] for f in files).encode()).hexdigest()[:16],
            "store_format": STORE_FORMAT,
            "completed_at": time.time(),
            "repeval_version": repeval_version(),
        }
        _atomic_write_bytes(self.fs, f"{self.path}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())
        return manifest
