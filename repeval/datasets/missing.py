"""The rows a loader dropped because their audio file does not exist, as data: each row's track id, audio path and
where in the manifest it is, kept apart (never joined into a message that would have to be parsed back) and all of
them, in memory that does not grow with their number.

:class:`MissingTracks` holds them in Arrow record batches of :data:`MISSING_SCHEMA`, in a
:class:`~repeval.datasets.spill.TableSpool`: in memory up to :data:`~repeval.datasets.spill.PARTITION_ROWS` rows,
beyond that in a spill file under :func:`~repeval.datasets.spill.spill_root` that is unlinked as it is created
(nothing is left behind, even after a crash). :class:`~repeval.datasets.base.LoadReport` records each row here
(:meth:`LoadReport.add_missing <repeval.datasets.base.LoadReport.add_missing>`) besides its capped, human-readable
``missing_audio`` list; ``repeval data check --out`` lists them from here (:func:`reason`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.datasets.spill import (
    PARTITION_ROWS,
    Partitions,
    TableSpool,
    hash64,
    n_partitions,
    partition_of,
)

#: why a row's audio is missing (the ``cause`` column)
NOT_FOUND = "not_found"  # its audio path names no file
EMPTY_PATH = "empty_path"  # the manifest row's audio path is empty
NOT_INDEXED = "not_indexed"  # the data set's index names no audio file for the track
REPORTED = "reported"  # a loader's own words (``LoadReport.add("missing_audio", text)``), kept whole in ``track_id``
CAUSES = (NOT_FOUND, EMPTY_PATH, NOT_INDEXED, REPORTED)

#: one missing row: ``audio_path`` null when the row names none, ``row`` the manifest row (``row N``) or null
MISSING_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("audio_path", pa.string()),
        pa.field("row", pa.string()),
        pa.field("cause", pa.string(), nullable=False),
    ]
)

#: rows added one at a time are gathered into a record batch of this many
BATCH_ROWS = 8_192


class MissingTracks:
    """Missing rows in the order they were added (:data:`MISSING_SCHEMA`): in memory up to ``memory_rows`` rows
    (default :data:`~repeval.datasets.spill.PARTITION_ROWS`), then all of them in a spill file."""

    def __init__(self, memory_rows: int | None = None) -> None:
        self.memory_rows = PARTITION_ROWS if memory_rows is None else memory_rows
        self._reset()

    def _reset(self) -> None:
        self._pending: dict[str, list[Any]] = {f.name: [] for f in MISSING_SCHEMA}
        self._spool = TableSpool(MISSING_SCHEMA, self.memory_rows, prefix="repeval-missing-")

    def __len__(self) -> int:
        return self._spool.num_rows + len(self._pending["track_id"])

    @property
    def spilled(self) -> bool:
        """Whether the rows are in the spill file."""
        return self._spool.spilled

    def add(self, track_id: str, audio_path: str | None, row: str | None = None, cause: str | None = None) -> None:
        """One missing row (``cause``: see :func:`cause_of`)."""
        cause = cause_of(audio_path, row, cause)
        for name, value in zip(MISSING_SCHEMA.names, (track_id, audio_path or None, row, cause), strict=True):
            self._pending[name].append(value)
        if len(self._pending["track_id"]) >= BATCH_ROWS:
            self._flush()

    def add_batch(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Rows of :data:`MISSING_SCHEMA` (its columns, by name), after those added before."""
        self._flush()
        if isinstance(batch, pa.Table):
            for b in batch.select(MISSING_SCHEMA.names).to_batches():
                self._spool.write(pa.RecordBatch.from_arrays(b.columns, schema=MISSING_SCHEMA))
            return
        self._spool.write(
            pa.RecordBatch.from_arrays([batch.column(n) for n in MISSING_SCHEMA.names], schema=MISSING_SCHEMA)
        )

    def extend(self, other: MissingTracks) -> None:
        """``other``'s rows after these."""
        for batch in other.batches():
            self.add_batch(batch)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, a record batch at a time, in the order they were added (as often as needed)."""
        self._flush()
        yield from self._spool.batches()

    def table(self) -> pa.Table:
        """Every row as one table (memory-mapped from the spill file once spilled)."""
        self._flush()
        return self._spool.table()

    def close(self) -> None:
        """Drop the rows and the spill file."""
        self._spool.close()
        self._reset()

    def __getstate__(self) -> dict[str, Any]:  # a copy carries the rows, not the spill file
        return {"memory_rows": self.memory_rows, "batches": list(self.batches())}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.memory_rows = state["memory_rows"]
        self._reset()
        for batch in state["batches"]:
            self.add_batch(batch)

    def _flush(self) -> None:
        if self._pending["track_id"]:
            arrays = [pa.array(self._pending[f.name], f.type) for f in MISSING_SCHEMA]
            self._pending = {f.name: [] for f in MISSING_SCHEMA}
            self._spool.write(pa.RecordBatch.from_arrays(arrays, schema=MISSING_SCHEMA))


def cause_of(audio_path: str | None, row: str | None, cause: str | None = None) -> str:
    """``cause`` when given (``ValueError`` unless one of :data:`CAUSES`), else :data:`NOT_FOUND` when there is an
    ``audio_path``, :data:`EMPTY_PATH` for a manifest ``row`` without one, else :data:`NOT_INDEXED`."""
    cause = cause or (NOT_FOUND if audio_path else EMPTY_PATH if row else NOT_INDEXED)
    if cause not in CAUSES:
        raise ValueError(f"unknown missing-audio cause {cause!r}; valid: {', '.join(CAUSES)}")
    return cause


def union(parts: Iterable[MissingTracks], partition_rows: int | None = None) -> MissingTracks:
    """The distinct rows of ``parts`` (rows equal in every column are one), each where it first occurs. One part is
    returned as it is; several are compared track id partition by track id partition
    (:class:`~repeval.datasets.spill.Partitions` of about ``partition_rows`` rows, default
    :data:`~repeval.datasets.spill.PARTITION_ROWS`), so memory holds one partition and a byte per row."""
    parts = [p for p in parts if len(p)]
    if len(parts) == 1:
        return parts[0]
    out = MissingTracks()
    total = sum(len(p) for p in parts)
    if not total:
        return out
    keyed = MISSING_SCHEMA.append(pa.field("pos", pa.int64()))
    k = n_partitions(total, partition_rows)
    with Partitions(k, keyed) as spread:
        pos = 0
        for part in parts:
            for batch in part.batches():
                n = batch.num_rows
                numbered = pa.RecordBatch.from_arrays(
                    [*batch.columns, pa.array(np.arange(pos, pos + n, dtype=np.int64))], schema=keyed
                )
                spread.add(numbered, partition_of(hash64(batch.column("track_id")), k))
                pos += n
        keep = np.zeros(total, dtype=bool)
        for table in spread:
            if table.num_rows:
                first = table.group_by(MISSING_SCHEMA.names, use_threads=False).aggregate([("pos", "min")])
                keep[first.column("pos_min").to_numpy()] = True
    pos = 0
    for part in parts:
        for batch in part.batches():
            mine = keep[pos : pos + batch.num_rows]
            pos += batch.num_rows
            out.add_batch(batch if mine.all() else batch.filter(pa.array(mine)))
    return out


def reason(track_id: str, audio_path: str | None, row: str | None, cause: str) -> str:
    """The ``reason`` of a missing row in ``repeval data check --out``: it starts with ``missing:`` and names the fix."""
    if cause == EMPTY_PATH:
        return f"missing: {row} of the manifest has an empty audio path — fill it in, or remove the row"
    if cause == NOT_INDEXED:
        return "missing: the data set's index names no audio file for this track"
    if cause == REPORTED:
        return f"missing: {track_id}"
    where = f" ({row} of the manifest)" if row else ""
    return f"missing: file not found: {audio_path}{where} — restore the file, or correct its path"


def message(track_id: str, audio_path: str | None, row: str | None, cause: str) -> str:
    """How :class:`~repeval.datasets.base.LoadReport`'s ``missing_audio`` list names a missing row, for people: a
    catalog's ``ID (row N: PATH)`` (``empty path`` for an empty audio cell), the other loaders' ``ID (PATH)`` or
    ``ID (no audio file in the index)``."""
    if cause == REPORTED:
        return track_id
    what = audio_path if cause == NOT_FOUND else "empty path" if cause == EMPTY_PATH else "no audio file in the index"
    return f"{track_id} ({row}: {what})" if row else f"{track_id} ({what})"


#: how many missing files :func:`case_hint` looks for under other letter case
CASE_CHECKED = 100


def _case_twin(path: str, listings: dict[str, list[str]]) -> str | None:
    """The existing local file whose path differs from ``path`` only in letter case (one per folder level: a
    level where two names match is ambiguous), else ``None``; ``listings`` caches each folder's names."""
    import os

    here, _, rest = os.path.abspath(path).partition(os.sep)
    here += os.sep
    for i, name in enumerate(parts := rest.split(os.sep)):
        if not os.path.exists(os.path.join(here, name)):
            if here not in listings:
                try:
                    listings[here] = os.listdir(here)
                except OSError:
                    listings[here] = []
            alike = [n for n in listings[here] if n.lower() == name.lower()]
            if len(alike) != 1:
                return None
            name = alike[0]
        here = os.path.join(here, name)
        if i < len(parts) - 1 and not os.path.isdir(here):
            return None
    return here if os.path.isfile(here) else None


def _first_missing(rows: MissingTracks) -> list[str]:
    """The paths of the first :data:`CASE_CHECKED` rows whose local audio file does not exist (the files the hints
    below look for elsewhere)."""
    out: list[str] = []
    for batch in rows.batches():
        for path, cause in zip(batch.column("audio_path").to_pylist(), batch.column("cause").to_pylist(), strict=True):
            if cause == NOT_FOUND and path and "://" not in path:
                out.append(path)
                if len(out) >= CASE_CHECKED:
                    return out
    return out


def _of_first(found: int, looked: int, what: str) -> str:
    """``found`` of the first ``looked`` missing audio files and the verb ``what`` says of them ("exist", in the
    plural), in plain words: "the missing audio file exists", "2 of the first 3 missing audio files exist", "1 of the
    first 3 missing audio files exists" — not "1 of the first 1 … exist"."""
    verb = what.split(" ", 1)
    said = f"{verb[0]}s" if found == 1 else verb[0]
    rest = f" {verb[1]}" if len(verb) > 1 else ""
    if looked == 1:
        return f"the missing audio file {said}{rest}"
    if found == looked:
        return f"the first {looked} missing audio files all {verb[0]}{rest}"
    return f"{found} of the first {looked} missing audio files {said}{rest}"


def case_hint(rows: MissingTracks) -> str | None:
    """A note when local files a manifest names and that do not exist do under other letter case (a manifest made
    on macOS or Windows, whose file systems ignore case, read on Linux), naming the first and the fix; ``None``
    otherwise. Looks at the first :data:`CASE_CHECKED` missing files only."""
    listings: dict[str, list[str]] = {}
    looked = _first_missing(rows)
    found = [(path, twin) for path in looked if (twin := _case_twin(path, listings)) is not None]
    if not found:
        return None
    path, twin = found[0]
    return (
        f"{_of_first(len(found), len(looked), 'exist under other upper/lower case')} (e.g. {path} is {twin}): paths "
        "are case-sensitive here — correct their case in the manifest"
    )


def other_normalization(paths: list[str]) -> dict[str, str]:
    """Of local ``paths`` that name no file, those whose file exists under another Unicode normalization of the same
    name — ``Beyoncé.wav`` written composed (NFC, as a database or a Linux tool writes it) in the manifest, decomposed
    (NFD, as macOS wrote the file's name) on disk, or the other way: each mapped to the path that exists. Both are the
    same name (macOS opens either); a Linux file system tells them apart."""
    import os
    import unicodedata

    found = {}
    for path in paths:
        if path.isascii() or "://" in path:
            continue
        for form in ("NFC", "NFD"):
            other = unicodedata.normalize(form, path)
            if other != path and os.path.isfile(other):
                found[path] = other
                break
    return found


def relative_hint(rows: MissingTracks, base: str) -> str | None:
    """A note when missing audio files, named by paths relative to ``base`` (the manifest's folder, or ``dir``),
    exist relative to the current directory instead — a manifest written by a tool run from another folder — or
    with ``/`` for the ``\\`` of a manifest written on Windows, or with ``~`` or an environment variable (``$HOME``)
    they start with expanded, naming the first and the fix; ``None`` otherwise.
    Looks at the first :data:`CASE_CHECKED` missing files only."""
    import os

    def exists(path: str) -> bool:
        return os.path.isfile(path) or bool(other_normalization([path]))

    prefix = base.rstrip("/") + "/"
    looked = _first_missing(rows)
    relative = [p[len(prefix) :] for p in looked if p.startswith(prefix)]
    if found := [p for p in relative if exists(p)]:
        cwd = os.getcwd()
        return (
            f"{_of_first(len(found), len(looked), 'exist relative to the current directory')} {cwd} (e.g. {found[0]}), but relative paths start from {base} (dataset.dir, else the manifest's folder) "
            f"— set dataset.dir: {cwd}, or write the paths relative to the manifest's folder"
        )
    if found := [p for p in relative if p[:1] in "~$" and exists(os.path.expandvars(os.path.expanduser(p)))]:
        return (
            f"{_of_first(len(found), len(looked), 'exist with')} {found[0].split('/', 1)[0]} expanded (e.g. "
            f"{found[0]}): a manifest's audio paths are read as written, not by a shell — write them out in full, or "
            "relative to the manifest's folder"
        )
    if found := [p for p in looked if "\\" in p and exists(p.replace("\\", "/"))]:
        return f"{_of_first(len(found), len(looked), 'exist with')} '/' in place of '\\' (e.g. {found[0]}): write the manifest's paths with '/' (a manifest written on Windows)"
    return None
