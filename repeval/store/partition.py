"""One store partition, ``<root>/<dataset>/<model>/<scenario>/``: its stamp and manifest, the track ids and counts
of its part files, the compatibility check, and its readers (:meth:`Partition.embeddings`, :meth:`Partition.frames`).

:class:`Partition` adds its readers and its writes (clearing errors, removing tracks, deleting, deduplicating,
finishing) to :class:`~repeval.store.partition_stamp.PartitionStamp` (the compatibility check and the stamp), which builds on
:class:`~repeval.store.partition_files.PartitionFiles` (its files, ids and counts)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.store.layout import (
    AUDIO_NOTE,
    ERROR_SCHEMA,
    ERRORS_DIR,
    MANIFEST,
    RETRIED,
    STAMP,
    STORE_FORMAT,
    _atomic_write_bytes,
    parquet_file,
    read_parquet,
    repeval_version,
    write_table_atomic,
)
from repeval.store.partition_files import rm_command as rm_command
from repeval.store.partition_files import show_errors_command as show_errors_command
from repeval.store.partition_stamp import STOPPED_FAILING, PartitionStamp
from repeval.store.rewrite import Removed, Settled, pending, remove_rows, say_settled, settle, stuck_text
from repeval.words import counted

log = logging.getLogger(__name__)

#: the manifest's count of the rows embedded from part of their file (``audio_note`` not null), by kind:
#: :data:`CUT` — a WAV, MP3 or FLAC cut short, embedded under ``run.truncated_audio: decode`` only —, :data:`OGG` — an
#: Ogg file without its end, embedded under either setting (:mod:`repeval.audio.partial`)
NOTED_ROWS = "noted_rows"
CUT, OGG = "cut", "ogg"


def _undeleted(named: str, where: str, exc: OSError) -> OSError:
    """The error for the manifest ``where`` of partition ``named`` that could not be deleted (``exc``), with the fix:
    the partition is left as it was."""
    import errno

    from repeval.cloud_reach import bucket_error, error_line, refusal, refused

    what = f"{named}: its manifest {where} could not be deleted, to mark the partition incomplete before changing it"
    if refused(exc):
        why, fix = refusal(exc, deleting=True)
        denied = PermissionError(f"{what} ({why}) — {fix}; nothing was changed")
        denied.errno = exc.errno or errno.EACCES  # still a storage error (``repeval.cli.errors._storage_hint``)
        return denied
    text, check = bucket_error(error_line(exc))
    said = OSError(f"{what} ({text}){check}; nothing was changed")
    said.errno = exc.errno
    return said


def _parquet_bytes(table: pa.Table) -> bytes:
    """``table`` as the bytes of a Parquet file."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def _is_cut(notes: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Which of ``notes`` (``audio_note`` values) say a file cut short (:data:`CUT`; null stays null)."""
    return pc.starts_with(notes, "cut ")


def _may_hold_note(meta: pq.FileMetaData) -> bool:
    """Whether the part file of footer ``meta`` may hold a row with an ``audio_note``: not when the column's null count
    is every row's, nor without the column (written before it was kept, every row whole)."""
    try:
        leaf = [meta.schema.column(i).path for i in range(meta.num_columns)].index(AUDIO_NOTE)
    except ValueError:
        return False
    stats = [meta.row_group(g).column(leaf).statistics for g in range(meta.num_row_groups)]
    return not (
        all(s is not None and s.has_null_count for s in stats) and sum(s.null_count for s in stats) == meta.num_rows
    )


@dataclass
class Partition(PartitionStamp):
    def clear_errors(self, ids: pa.Array | None = None) -> int:
        """Delete this partition's error records (``--retry-errors``) and mark it incomplete; returns how many.

        The tracks they named count as missing again, so the next stream recomputes them. Deleting first is
        safe: if the retry is interrupted, the tracks are still missing and the following run retries them."""
        files = self.error_files()
        if not files:
            return 0
        n = self._num_rows(files)
        self.reopen()
        self.note_retried(self.error_ids() if ids is None else ids)  # ``ids``: theirs, read already
        for f in files:
            self.fs.delete_file(f)
        return n

    def remove_tracks(self, ids: pa.Array) -> Removed:
        """Delete the rows and error records of the tracks ``ids`` (``repeval store rm PARTITION --track ID``) and mark
        the partition incomplete: the next run computes those tracks again (error records removed: a run's stop of the
        model for failing on each of its first tracks, ``stopped_failing``, goes too — else the model would be left out
        again, not run). Returns the rows and error records
        removed, and the replaced files it could not delete after (:class:`~repeval.store.rewrite.Removed`, named by
        their path in the partition), which the caller says.

        Only the part files holding one of them are rewritten, each into a new part file (its name a new write time,
        so a probe grid trained on the partition is trained again) before the old one is deleted, under a journal
        (:mod:`repeval.store.rewrite`): stopped anywhere, the partition shows the old files or the new, never both."""
        stuck = self.settle_stuck()
        if stuck:  # a new journal would show the files the stuck one leaves out: rows twice
            raise RuntimeError(
                f"store partition {self.name}: nothing was removed — {stuck_text(stuck, self.settle_command())}"
            )
        rows, errors, found = self.track_hits(ids)
        if not found:
            return Removed()
        self.reopen()  # first: stopped midway, the partition is incomplete, never complete with rows missing
        n_rows, stuck_rows = remove_rows(self.fs, self.path, rows, ids)
        if errors:  # computed again by the next run, as --retry-errors computes them
            failed = pa.chunked_array(list(errors.values()), pa.string()).combine_chunks()
            self.note_retried(pc.filter(failed, pc.is_in(failed, value_set=ids)))
        n_errors, stuck_errors = remove_rows(self.fs, f"{self.path}/{ERRORS_DIR}", errors, ids)
        if n_errors:
            self.record(STOPPED_FAILING, None)
        return Removed(
            n_rows, n_errors, {**stuck_rows, **{f"{ERRORS_DIR}/{n}": why for n, why in stuck_errors.items()}}
        )

    def note_retried(self, ids: pa.Array) -> None:
        """Add ``ids``, tracks whose error records are about to be deleted to compute them again, to the partition's
        record of them (:data:`~repeval.store.layout.RETRIED`, read by :meth:`retried_ids`), which :meth:`finish`
        deletes: a run that finishes the partition after an interrupted retry knows them as retried."""
        before = self.retried_ids()
        both = pc.unique(pa.chunked_array([before, ids.cast(pa.string())]).combine_chunks())
        if len(both) > len(before):
            _atomic_write_bytes(self.fs, f"{self.path}/{RETRIED}", _parquet_bytes(pa.table({"track_id": both})))

    def settle(self, say: bool = True) -> list[Settled]:
        """Finish a track removal that was stopped (:func:`repeval.store.rewrite.settle`), rows and error records:
        what was done in each folder that had a journal, logged (:func:`repeval.store.rewrite.say_settled`) unless
        ``say`` is false — a caller that says it itself (``repeval store settle``) says it once."""
        self.store.check_lock()
        rm = self.rm_command()
        folders = (self.path, f"{self.path}/{ERRORS_DIR}")
        done = [d for d in (settle(self.fs, f, rm) for f in folders) if d is not None]
        for d in done if say else ():
            say_settled(d, self.settle_command())
        return done

    def settle_stuck(self) -> dict[str, str]:
        """:meth:`settle`, then the files it could not delete (their path in the partition → why): a new removal, or
        the manifest, must wait for them — the caller refuses naming them, so they are not logged too."""
        done = self.settle(say=False)
        for d in done:
            if not d.stuck:
                say_settled(d, self.settle_command())
        return {
            f"{d.directory[len(self.path) :].strip('/')}/{n}".lstrip("/"): why
            for d in done
            for n, why in d.stuck.items()
        }

    def unsettled(self) -> list[str] | None:
        """The files a stopped (or unfinished) track removal left over, which a plain Parquet reader reads besides
        the others (``_errors/`` ones named so); ``None`` when no journal is there
        (:func:`repeval.store.rewrite.pending`)."""
        rm = self.rm_command()
        rows, errors = pending(self.fs, self.path, rm), pending(self.fs, f"{self.path}/{ERRORS_DIR}", rm)
        if rows is None and errors is None:
            return None
        return [*(rows or []), *(f"{ERRORS_DIR}/{n}" for n in errors or [])]

    def delete(self) -> None:
        """Remove the partition (manifest first, so an interrupted delete leaves it incomplete, never complete)."""
        self.store.check_lock()
        self._unmark()  # not reopen(): a stopped track removal whose journal cannot be read is deleted too
        self.fs.delete_dir(self.path)

    def reopen(self) -> None:
        """Mark a complete partition incomplete again before adding rows to it (and finish a track removal that was
        stopped: :meth:`settle`). A complete partition's retried tracks' record (:meth:`note_retried`) is one that
        :meth:`finish` left — the run killed between its manifest and the record's delete, a delete the storage refused
        — of tracks computed since: deleted first, so this run does not take them as retried."""
        self.store.check_lock()
        if self.complete:
            self._drop_retried()
        self._unmark()
        self.settle()

    def _unmark(self) -> None:
        """Delete the manifest: the partition counts as incomplete (before rows are added or removed, or it is
        deleted). One that cannot be deleted — this user may not (a bucket's access denied), the storage out of
        reach — stops the change before it starts, named with the fix: ignored, it left the partition counted as
        complete while its rows were removed (`repeval store rm … --track` said "now incomplete") or added."""
        where = f"{self.path}/{MANIFEST}"
        try:
            self.fs.delete_file(where)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _undeleted(self.named, where, exc) from None

    def read(self, columns: list[str] | None = None) -> pa.Table:
        files = self.data_files()
        # part files from before a column was added (audio_note) lack it: null in their rows
        return pa.concat_tables([read_parquet(self.fs, f, columns) for f in files], promote_options="default")

    def read_counted(self, files: list[str], columns: list[str]) -> tuple[pa.Table, list[tuple[int, bool]]]:
        """``columns`` of ``files`` (every one has them) and what :meth:`footer_counts` reads of each — one storage
        request per file for both (``store show``); a file that cannot be read is :meth:`damaged`."""
        tables, counted = [], []
        for f in files:
            try:
                with self.fs.open_input_file(f) as fh:
                    pf = parquet_file(self.fs, fh)
                    counted.append((pf.metadata.num_rows, _may_hold_note(pf.metadata)))
                    tables.append(pf.read(columns=columns))
            except (pa.ArrowException, OSError) as exc:
                raise self.damaged(f, exc) from None
        return pa.concat_tables(tables), counted

    def read_errors(self) -> pa.Table:
        files = self.error_files()
        if not files:
            return ERROR_SCHEMA.empty_table()
        return pa.concat_tables([read_parquet(self.fs, f) for f in files], promote_options="default")

    def head_errors(self, limit: int) -> tuple[pa.Table, int]:
        """The first ``limit`` error records (file by file) and how many there are (the others counted from the
        Parquet footers); a file that cannot be read is :meth:`damaged`."""
        head: list[pa.Table] = []
        total = shown = 0
        for f in self.error_files():
            try:
                if shown < limit:
                    t = read_parquet(self.fs, f).slice(0, limit - shown)
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
            t = read_parquet(self.fs, f, ["track_id", "split", "embedding"])
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
        heads = [read_parquet(self.fs, f, ["track_id", "split", "n_frames"]) for f in files]
        counts = np.concatenate(
            [pc.fill_null(h.column("n_frames"), 0).to_numpy().astype(np.int64) for h in heads]
            or [np.zeros(0, np.int64)]
        )
        mat = np.empty((int(counts.sum()), dim), np.float32)
        row = at = 0
        for f, h in zip(files, heads, strict=True):
            col = read_parquet(self.fs, f, ["frames"]).column(0).combine_chunks()
            lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
            if not np.array_equal(lengths, counts[row : row + h.num_rows]):
                raise self.frame_count_error(f)
            flat = pc.list_flatten(pc.list_flatten(col)).to_numpy(zero_copy_only=False).reshape(-1, dim)
            mat[at : at + len(flat)] = flat
            row, at = row + h.num_rows, at + len(flat)
        ids = [i for h in heads for i in h.column("track_id").to_pylist()]
        return ids, [s for h in heads for s in h.column("split").to_pylist()], mat, counts

    def count_noted(
        self, files: list[str] | None = None, footers: list[tuple[int, bool]] | None = None
    ) -> dict[str, int]:
        """The rows of ``files`` (default: every part file) with an ``audio_note``, by kind (:data:`NOTED_ROWS`). A
        file's footer tells how many of its rows have none (the column's null count, or no such column: written before
        it), so only the files holding a note have that one column read — a catalog's partition of whole files is
        counted from its footers alone (``footers``: what :meth:`footer_counts` read of them, when the caller has)."""
        counts = {CUT: 0, OGG: 0}
        for f in self.noted_files(files, footers):
            noted = self._column(f, AUDIO_NOTE).drop_null()
            cut = int(pc.sum(_is_cut(noted)).as_py() or 0)
            counts[CUT] += cut
            counts[OGG] += len(noted) - cut
        return counts

    def cut_ids(self) -> pa.Array:
        """Track ids of the rows embedded from a file cut short (:data:`CUT`, :data:`NOTED_ROWS`): the ``track_id`` and
        ``audio_note`` columns of the part files that hold a note (:meth:`noted_files`, from the footers), no other."""
        ids: list[pa.Array] = []
        for f in self.noted_files():
            try:
                t = read_parquet(self.fs, f, ["track_id", AUDIO_NOTE])
            except (pa.ArrowException, OSError) as exc:
                raise self.damaged(f, exc) from None
            cut = pc.fill_null(_is_cut(t.column(AUDIO_NOTE)), False)
            ids += t.column("track_id").filter(cut).chunks
        return pa.chunked_array(ids, pa.string()).combine_chunks()

    def footer_counts(self, files: list[str]) -> list[tuple[int, bool]]:
        """Each of ``files``' rows and whether it may hold a row with an ``audio_note`` (:func:`_may_hold_note`), from
        its footer — read once for both where both are needed (a storage request per file), the footers not kept."""
        return [(meta.num_rows, _may_hold_note(meta)) for meta in self._footers(files)]

    def noted_files(self, files: list[str] | None = None, footers: list[tuple[int, bool]] | None = None) -> list[str]:
        """Those of ``files`` (default: every part file) that may hold a row with an ``audio_note``, in order: a
        file's footer tells how many of its rows have none (the column's null count, or no such column: written
        before it, every row whole). ``footers``: what :meth:`footer_counts` read of them, when the caller has."""
        files = self.part_files() if files is None else files
        counted = self.footer_counts(files) if footers is None else footers
        return [f for f, (_, noted) in zip(files, counted, strict=True) if noted]

    def noted_rows(self) -> dict[str, int]:
        """:meth:`count_noted` as the manifest recorded it when the partition was finished; counted from the part
        files of an incomplete partition (a footer per part file, the column read only where a file holds notes). A
        manifest without the count was written by a repeval whose rows had no ``audio_note`` (the count came with the
        column): none of its rows is noted, and its part files are not read — a store of earlier partitions, in a
        bucket, is not listed and read again by every run."""
        manifest = self.manifest()
        if manifest is None:
            return self.count_noted()
        recorded = manifest.get(NOTED_ROWS)
        if isinstance(recorded, dict) and {CUT, OGG} <= recorded.keys():
            return {CUT: int(recorded[CUT]), OGG: int(recorded[OGG])}
        return {CUT: 0, OGG: 0}

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
        table = pa.concat_tables([read_parquet(self.fs, f) for f in files], promote_options="default")
        codes = np.asarray(pc.dictionary_encode(ids).indices)
        keep = np.sort(np.unique(codes, return_index=True)[1])  # first occurrence of every id
        write_table_atomic(self.fs, self.path, table.take(pa.array(keep)))
        for f in files:
            self.fs.delete_file(f)
        dropped = len(ids) - len(keep)
        log.warning("%s: dropped %s", self.path, counted(dropped, "duplicate row"))
        return dropped

    def finish(self, info: dict[str, Any]) -> dict[str, Any]:
        """Mark the partition complete (manifest written last, atomically) and return the manifest. Not while a track
        removal's journal leaves files out that cannot be deleted: a plain Parquet reader, trusting the manifest,
        would read them (:meth:`settle`)."""
        self.store.check_lock()
        self.fs.create_dir(self.path, recursive=True)
        stuck = self.settle_stuck()
        if stuck:
            raise RuntimeError(
                f"store partition {self.name}: not marked complete (its rows are kept) — "
                f"{stuck_text(stuck, self.settle_command())}"
            )
        self.dedupe()
        files = self.part_files()
        footers = self.footer_counts(files)  # once, for the rows and the noted rows
        rows, errors = sum(n for n, _ in footers), self._num_rows(self.error_files())
        stamp = self._read_json(STAMP) or {}
        manifest = {
            **stamp,
            **info,
            "rows": rows,
            "errors": errors,
            NOTED_ROWS: self.count_noted(files, footers),
            # which row part files hold the rows — each name unique to the write that made it — so a partition embedded
            # anew (deleted and computed again: fixed audio) tells from the one read before: the same counts differ here
            "parts_digest": hashlib.sha256("\n".join(f.rsplit("/", 1)[-1] for f in files).encode()).hexdigest()[:16],
            "store_format": STORE_FORMAT,
            "completed_at": time.time(),
            "repeval_version": repeval_version(),
        }
        _atomic_write_bytes(self.fs, f"{self.path}/{MANIFEST}", json.dumps(manifest, indent=1, sort_keys=True).encode())
        self._drop_retried()  # complete again: its retried tracks computed (a later run's failures on them are that run's)
        return manifest

    def _drop_retried(self) -> None:
        """Delete the partition's record of retried tracks (:meth:`note_retried`), if any."""
        try:
            self.fs.delete_file(f"{self.path}/{RETRIED}")
        except FileNotFoundError:
            pass
        except OSError as exc:  # a tidy-up: its tracks are computed (or to compute) all the same
            log.warning("store partition %s: could not delete its %s (%s)", self.name, RETRIED, exc)
