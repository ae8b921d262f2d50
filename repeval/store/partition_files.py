"""A store partition's folder, ``<root>/<dataset>/<model>/<scenario>/``, as read without its rows: its names and the
commands that show or delete it, its stamp and manifest, its part and error files, the track ids and counts they
hold (from the id column and the Parquet footers), and the error naming the fix for a part file that cannot be read.
:class:`~repeval.store.partition.Partition` builds on it."""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.cloud_reach import refusal, refused
from repeval.store.layout import (
    ERRORS_DIR,
    MANIFEST,
    RETRIED,
    STAMP,
    DamagedPartFile,
    PartFileDenied,
    is_part_file,
    read_parquet,
)
from repeval.store.rewrite import REWRITE, denied, visible

log = logging.getLogger("repeval.store")
#: the partition files :meth:`PartitionFiles._read_json` has said are unreadable (once each per process)
_UNREADABLE_SAID: set[str] = set()

if TYPE_CHECKING:
    from repeval.store.store import EmbeddingStore


def show_errors_command(store_uri: str, partition: str) -> str:
    """The ``repeval store show --errors`` command for ``partition`` (``dataset/model/scenario``), quoted for a shell."""
    return f"repeval store show {shlex.quote(store_uri)} {shlex.quote(partition)} --errors"


def rm_command(store_uri: str, partition: str) -> str:
    """The ``repeval store rm`` command that deletes ``partition`` (``dataset/model/scenario``), quoted for a shell."""
    return f"repeval store rm {shlex.quote(store_uri)} {shlex.quote(partition)} --yes"


def settle_command(store_uri: str, *partitions: str) -> str:
    """The ``repeval store settle`` command that finishes the stopped track removals of ``partitions``
    (``dataset/model/scenario``), quoted for a shell."""
    return shlex.join(["repeval", "store", "settle", store_uri, *partitions])


@dataclass
class PartitionFiles:
    """The files of one store partition and what their footers and id columns say (no embedding read)."""

    store: EmbeddingStore
    path: str
    dataset: str
    model: str
    scenario: str

    @property
    def fs(self) -> pafs.FileSystem:
        return self.store.fs

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.model}/{self.scenario}"

    @property
    def named(self) -> str:
        """How a message names the partition, before what it says of it: ``store partition D/M/S in STORE``."""
        return f"store partition {self.name} in {self.store.uri}"

    def show_errors_command(self) -> str:
        """The ``repeval store show --errors`` command that lists this partition's error records (and only those)."""
        return show_errors_command(self.store.uri, self.name)

    def rm_command(self) -> str:
        """The ``repeval store rm`` command that deletes this partition, quoted for a shell."""
        return rm_command(self.store.uri, self.name)

    def settle_command(self) -> str:
        """The ``repeval store settle`` command for this partition, quoted for a shell."""
        return settle_command(self.store.uri, self.name)

    def _read_json(self, name: str) -> dict[str, Any] | None:
        """The partition's small JSON file ``name`` (its manifest, its stamp); ``None`` when it is missing — or cut
        short or corrupted (repeval writes them whole: a copy, a bad disk), said once per file in a warning: the
        partition then counts as incomplete, and the next run completes it from its part files. One this user may not
        read (another user's, or in a folder it may not list) raises, with the fix: a complete partition must not be
        taken as incomplete, and computed again."""
        where = f"{self.path}/{name}"
        try:
            with self.fs.open_input_stream(where) as fh:
                body = json.loads(fh.read().decode())
        except OSError as exc:  # missing — or refused, in a bucket's words too (a plain OSError): not missing
            if refused(exc):
                raise denied(self.fs, self.path, where, exc) from None
            return None
        except ValueError as exc:  # JSON cut short, or bytes that are not UTF-8
            body, why = None, str(exc)
        else:
            why = "not a JSON object"
        if isinstance(body, dict):
            return body
        if where not in _UNREADABLE_SAID:
            _UNREADABLE_SAID.add(where)
            log.warning(
                "store partition %s: %s is unreadable (%s): cut short or corrupted; the partition counts as incomplete "
                "— the next `repeval run` or `repeval embed` completes it from its part files, computing only the "
                "tracks they lack",
                self.name, where, why,
            )  # fmt: skip
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
        try:
            infos = self.fs.get_file_info(sel)
        except OSError as exc:  # another user's folder (its own, or its _errors/): named, with the fix
            if not refused(exc):
                raise
            raise denied(self.fs, self.path, sel.base_dir, exc, f"{self.named}: ") from None
        files = sorted(i.path for i in infos if i.type == pafs.FileType.File and is_part_file(i.base_name))
        if any(i.base_name == REWRITE for i in infos):  # a track removal stopped midway: its old files or its new
            files = visible(self.fs, f"{self.path}{sub}", files, self.rm_command())
        return files

    def part_files(self) -> list[str]:
        return self._files()

    def newest_write_ns(self) -> int | None:
        """The latest write time (ns) its row part files' names hold (``part-<time ns>-<id>.parquet``,
        :func:`repeval.store.layout.write_table_atomic`: kept when the store is copied, unlike file times); ``None``
        for none (a name without a time is skipped). One listing."""
        times = []
        for f in self.part_files():
            stamp = f.rsplit("/", 1)[-1][len("part-") :].split("-", 1)[0]
            if stamp.isdigit():
                times.append(int(stamp))
        return max(times, default=None)

    def foreign(self) -> bool:
        """Whether the folder holds something, none of it a partition's (``part-*`` files, ``_stamp.json``,
        ``_manifest.json``, ``_errors/``, temporary names) and not only hidden files: a folder three deep that is not a
        partition — a runs directory's ``tune/`` experiments, say, given as the store. ``store ls`` lists it as such;
        ``store rm`` refuses it."""
        sel = pafs.FileSelector(self.path, allow_not_found=True)
        names = [i.base_name for i in self.fs.get_file_info(sel)]
        own = any(is_part_file(n) or n.startswith(("_", ".tmp-")) for n in names)
        return not own and any(not n.startswith(".") for n in names)  # a folder of hidden files alone: as empty

    def track_hits(self, ids: pa.Array) -> tuple[dict[str, pa.Array], dict[str, pa.Array], set[str]]:
        """Which of ``ids`` this partition holds: (row part file → its ``track_id`` column, the same for the error
        files — those holding one of ``ids`` only —, the ids found in either). Reads the id columns alone."""
        found: set[str] = set()
        held: list[dict[str, pa.Array]] = [{}, {}]
        for out, files in zip(held, (self.part_files(), self.error_files()), strict=True):
            for f in files:
                col = self._column(f, "track_id").combine_chunks()
                hit = pc.filter(col, pc.is_in(col, value_set=ids))
                if len(hit):
                    out[f] = col
                    found.update(hit.to_pylist())
        return held[0], held[1], found

    def error_files(self) -> list[str]:
        """The error record files; a folder this user may not list (another user's), or a file in its place, is said
        so, with the fix."""
        try:
            return self._files(f"/{ERRORS_DIR}")
        except NotADirectoryError as exc:  # a file in its place: pyarrow's "[Errno 20] Cannot list directory …"
            from repeval.report.run_files import unlisted  # one rule for a folder that cannot be listed

            folder = f"{self.path}/{ERRORS_DIR}"
            file_there = NotADirectoryError(f"{self.named}: " + unlisted(folder, "its error records are not read", exc))
            file_there.errno = exc.errno
            raise file_there from None

    def damaged(self, path: str, exc: Exception) -> DamagedPartFile:
        """The error for a part file that cannot be read (cut short, overwritten, not Parquet), naming the fix; one
        this user may not read (another user's) may be whole: its permissions are the fix, not deleting it."""
        if refused(exc):
            return PartFileDenied(f"{self.named}: {path}: {' — '.join(refusal(exc))}")
        why = str(exc).splitlines()[0].rsplit(": ", 1)[-1] if str(exc) else type(exc).__name__  # not the path again
        return DamagedPartFile(
            f"{self.named}: {path} is not a readable Parquet file ({why}) — "
            "delete that file (the next run computes its tracks again) or the whole partition "
            f"(`{self.rm_command()}`)"
        )

    def _column(self, f: str, name: str) -> pa.ChunkedArray:
        """Column ``name`` of part file ``f``; a file that cannot be read is :meth:`damaged`."""
        try:
            return read_parquet(self.fs, f, [name]).column(0)
        except (pa.ArrowException, OSError) as exc:
            raise self.damaged(f, exc) from None

    def _ids(self, files: list[str]) -> pa.ChunkedArray:
        chunks = [self._column(f, "track_id") for f in files]
        return pa.chunked_array([c for ch in chunks for c in ch.chunks], pa.string())

    def _footers(self, files: list[str]) -> Iterator[pq.FileMetaData]:
        """The Parquet footer of each of ``files`` in turn (row counts, schemas, column statistics; no data read); a
        file that cannot be read is :meth:`damaged`. Each is a storage request (on object storage a round trip) and
        ~30 KB parsed: use each as it comes, keep none — a catalog's partition has thousands (``run.part_rows`` rows a
        file)."""
        for f in files:
            try:
                meta = pq.read_metadata(f, filesystem=self.fs)
            except (pa.ArrowException, OSError) as exc:
                raise self.damaged(f, exc) from None
            yield meta

    def _num_rows(self, files: list[str]) -> int:
        """Rows in ``files``, from their Parquet footers."""
        return sum(meta.num_rows for meta in self._footers(files))

    def done_ids(self) -> pa.Array:
        """Unique track ids with an embedding or an error record already written (an Arrow array)."""
        return pc.unique(self._ids(self.part_files() + self.error_files()).combine_chunks())

    def embedded_ids(self) -> pa.Array:
        """Unique track ids with an embedding (error records left out)."""
        return pc.unique(self._ids(self.part_files()).combine_chunks())

    def error_ids(self) -> pa.Array:
        """Track ids of the error records, one per record (an Arrow array)."""
        return self._ids(self.error_files()).combine_chunks()

    def retried_ids(self) -> pa.Array:
        """The track ids whose error records were deleted to compute them again since the partition was last complete
        (:data:`~repeval.store.layout.RETRIED`); one that cannot be read counts as none (a tidy-up's record)."""
        where = f"{self.path}/{RETRIED}"
        try:
            if self.fs.get_file_info(where).type == pafs.FileType.NotFound:
                return pa.array([], pa.string())
            return read_parquet(self.fs, where, ["track_id"]).column(0).combine_chunks()
        except (pa.ArrowException, OSError) as exc:
            log.warning("store partition %s: %s is unreadable (%s); its tracks count as not retried", self.name,
                        RETRIED, exc)  # fmt: skip
            return pa.array([], pa.string())

    def done_track_ids(self) -> set[str]:
        """Like :meth:`done_ids`, as a Python set (small partitions, tools)."""
        return set(self.done_ids().to_pylist())

    def counts(self) -> tuple[int, int]:
        """(rows, error rows) from the Parquet footers, without reading data."""
        return self._num_rows(self.part_files()), self._num_rows(self.error_files())
