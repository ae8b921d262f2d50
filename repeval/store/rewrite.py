"""Removing given tracks from a folder of part files (a partition's rows, or its ``_errors/`` records) without ever
showing a reader two copies of a row or none: ``repeval store rm PARTITION --track ID``.

Only the part files holding one of the tracks are rewritten, each into a new part file (a new name, so a new write
time: :meth:`~repeval.store.partition_files.PartitionFiles.newest_write_ns`) that holds its other rows. A journal,
``_rewrite.json`` in the folder, makes the swap one atomic step:

1. the journal names the old files and the new ones (``committed: false``): the new ones are not part of the folder;
2. the new files are written;
3. the journal is written again with ``committed: true``: from here the old ones are not part of the folder;
4. the old files are deleted, then the journal.

A listing of the folder (:func:`visible`) leaves out the files the journal says are not part of it, so a rewrite
stopped anywhere (Ctrl-C, ``kill -9``, a lost connection to a bucket) shows either the old files or the new ones,
never both; :func:`settle` deletes what is left over (the new files before the commit, the old ones after) — the next
``store rm``, the next run writing to the partition and ``repeval store settle`` call it. A file that cannot be deleted
(a read-only file, a bucket refusing the delete) leaves the journal in place, so the listing stays right; step 4
failing after the commit leaves the removal done, which its caller says with the files left over (:class:`Removed`;
:func:`pending` tells what is left over later)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.cloud_reach import refused
from repeval.store.layout import (
    DamagedPartFile,
    _atomic_write_bytes,
    missing,
    part_name,
    read_if_there,
    write_table_atomic,
)

log = logging.getLogger(__name__)

#: the journal of a rewrite in progress (or stopped), in the folder whose part files it rewrites
REWRITE = "_rewrite.json"


def _journal(fs: pafs.FileSystem, directory: str, rm_command: str | None = None) -> dict | None:
    """The journal of ``directory`` (None when there is none). One that cannot be read — a lost connection, a file
    that is not this module's — raises: read as none, the folder would show the old files and the new, rows twice.
    The error names ``rm_command``, the ``repeval store rm`` that deletes the partition (quoted for a shell)."""
    path = f"{directory}/{REWRITE}"
    try:
        raw = read_if_there(fs, path)
    except OSError as exc:
        if refused(exc):  # another user's folder (or journal): its permissions are the fix, not deleting it
            raise denied(fs, directory, path, exc) from None
        raise _unreadable(path, exc, rm_command) from None
    if raw is None:
        return None
    try:
        journal = json.loads(raw.decode())
    except ValueError as exc:
        raise _unreadable(path, exc, rm_command) from None
    if not isinstance(journal, dict):
        raise _unreadable(path, ValueError("not a JSON object"), rm_command)
    return journal


def denied(fs: pafs.FileSystem, directory: str, path: str, exc: OSError, prefix: str = "") -> PermissionError:
    """The error for a file or folder ``path`` of a partition (its journal, its manifest, its _errors/) this user may
    not read (``exc``: a ``PermissionError``, or a bucket's access denied: :func:`repeval.cloud_reach.refused`), after
    ``prefix``: its folder ``directory`` named when it is the one that cannot be listed (then the file may not even be
    there), with the fix — its owner and permissions, or a bucket's credentials."""
    import errno

    from repeval.cloud_reach import refusal

    try:
        fs.get_file_info(pafs.FileSelector(directory))
    except OSError:
        path = directory
    said = PermissionError(f"{prefix}{path}: {' — '.join(refusal(exc))}")
    said.errno = exc.errno or errno.EACCES  # still a storage error (``repeval.cli.errors._storage_hint``)
    return said


def _unreadable(path: str, exc: Exception, rm_command: str | None) -> DamagedPartFile:
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return DamagedPartFile(
        f"{path}, the journal of a track removal (`repeval store rm … --track`) that was stopped, cannot be read "
        f"({why}): which of the part files beside it hold the rows is unknown — run again if the storage was "
        f"unreachable, else delete the partition (`{rm_command or 'repeval store rm STORE PARTITION --yes'}`): the "
        "next run computes it again"
    )


def _write_journal(fs: pafs.FileSystem, directory: str, old: list[str], new: list[str], committed: bool) -> None:
    data = {"old": old, "new": new, "committed": committed}
    _atomic_write_bytes(fs, f"{directory}/{REWRITE}", json.dumps(data, indent=1).encode())


def _left_out(journal: dict) -> set[str]:
    """The names a journal says are not part of the folder: the new files until it is committed, then the old."""
    return {str(n) for n in journal.get("old" if journal.get("committed") else "new", [])}


def visible(fs: pafs.FileSystem, directory: str, files: list[str], rm_command: str | None = None) -> list[str]:
    """``files`` (paths of ``directory``'s part files) without those a stopped rewrite's journal leaves out (one that
    cannot be read: the error names ``rm_command``)."""
    journal = _journal(fs, directory, rm_command)
    if journal is None:
        return files
    hidden = _left_out(journal)
    return [f for f in files if f.rsplit("/", 1)[-1] not in hidden]


@dataclass
class Settled:
    """What :func:`settle` did in one folder: whether the journal it found was committed (the old files left over,
    else the new), the names it deleted, and those it could not delete (name → why: the journal is kept then)."""

    directory: str
    committed: bool
    deleted: list[str] = field(default_factory=list)
    stuck: dict[str, str] = field(default_factory=dict)


def _delete_all(fs: pafs.FileSystem, directory: str, names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Delete ``names`` in ``directory``, going on past a failure: (those deleted, name → why it could not be). One
    not there (deleted before, or never written) is neither."""
    deleted: list[str] = []
    stuck: dict[str, str] = {}
    for name in names:
        try:
            fs.delete_file(f"{directory}/{name}")
        except FileNotFoundError:
            continue
        except OSError as exc:
            if not missing(fs, f"{directory}/{name}"):
                stuck[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        deleted.append(name)
    return deleted, stuck


def pending(fs: pafs.FileSystem, directory: str, rm_command: str | None = None) -> list[str] | None:
    """The files of ``directory`` a stopped rewrite's journal leaves out that still lie there (what a plain Parquet
    reader, which does not read the journal, reads besides the others); ``None`` when there is no journal."""
    journal = _journal(fs, directory, rm_command)
    if journal is None:
        return None
    return [n for n in sorted(_left_out(journal)) if not missing(fs, f"{directory}/{n}")]


def settle(fs: pafs.FileSystem, directory: str, rm_command: str | None = None) -> Settled | None:
    """Finish a rewrite of ``directory`` that was stopped: delete the files its journal leaves out, then the journal
    (``None`` when there is none). A file it cannot delete keeps the journal, so the folder still lists the rows once
    (:attr:`Settled.stuck`). Says nothing: its caller says what it did, once — in a log (:func:`say_settled`), or in
    its own output or error (``repeval store settle``, a refused ``store rm``). ``rm_command``: what a journal that
    cannot be read names."""
    journal = _journal(fs, directory, rm_command)
    if journal is None:
        return None
    committed = bool(journal.get("committed"))
    done = Settled(directory, committed, *_delete_all(fs, directory, sorted(_left_out(journal))))
    if not done.stuck:
        done.stuck.update(_delete_all(fs, directory, [REWRITE])[1])
    return done


def say_settled(done: Settled, settle_command: str) -> None:
    """Log what :func:`settle` did: the files it could not delete (a warning naming ``settle_command``, ``repeval
    store settle …`` quoted for a shell), a stopped removal finished, or one stopped before it took effect."""
    if done.stuck:
        log.warning("%s: %s", done.directory, stuck_text(done.stuck, settle_command))
    elif done.committed:
        log.info("%s: finished a track removal (`repeval store rm --track`) that was stopped", done.directory)
    else:
        log.warning(
            "%s: a track removal (`repeval store rm … --track`) was stopped before it took effect: these part files "
            "are as they were before it — run that command again to remove the tracks",
            done.directory,
        )


def stuck_text(stuck: dict[str, str], settle_command: str) -> str:
    """What to say of the files a track removal could not delete (name → why); ``settle_command`` (``repeval store
    settle …``, quoted for a shell) deletes them once they can be."""
    shown = "; ".join(f"{n} ({why})" for n, why in list(stuck.items())[:3]) + ("; …" if len(stuck) > 3 else "")
    one = len(stuck) == 1
    them, their = ("it", "its") if one else ("them", "their")
    return (
        f"could not delete {len(stuck)} {'file' if one else 'files'} a track removal (`repeval store rm … --track`) "
        f"left over: {shown} — repeval reads around {them} (its journal, _rewrite.json, stays), but a plain Parquet "
        f"reader (duckdb, pq.read_table) reads {their} rows besides the others; make {them} deletable (permissions, "
        f"the storage's connection) and run `{settle_command}` (or the next `store rm` or run writing to the partition)"
    )


def _delete_replaced(fs: pafs.FileSystem, directory: str, old: list[str]) -> dict[str, str]:
    """Step 4: the old files, then the journal (the point a test stops a rewrite at). The removal has taken effect:
    the files that cannot be deleted (name → why) are returned, and keep the journal (:func:`settle` finishes it
    later)."""
    stuck = _delete_all(fs, directory, old)[1]
    if not stuck:
        stuck = _delete_all(fs, directory, [REWRITE])[1]
    return stuck


@dataclass
class Removed:
    """What a track removal did in a partition (:meth:`repeval.store.partition.Partition.remove_tracks`): the rows
    and error records it removed, and the files it replaced but could not delete once the removal had taken effect
    (their path in the partition → why): its caller says so, once (:func:`stuck_text`)."""

    rows: int = 0
    errors: int = 0
    stuck: dict[str, str] = field(default_factory=dict)


def remove_rows(
    fs: pafs.FileSystem, directory: str, held: dict[str, pa.Array], ids: pa.Array
) -> tuple[int, dict[str, str]]:
    """Rewrite the part files of ``directory`` among ``held`` (path → its ``track_id`` column) that hold one of
    ``ids`` without those rows (module docstring); returns how many rows were removed, and the files it could not
    delete once the removal had taken effect (name → why; the journal kept, :func:`settle` finishes it later) —
    not logged: the caller says it, once."""
    hits = [f for f, col in held.items() if pc.any(pc.is_in(col, value_set=ids)).as_py()]
    if not hits:
        return 0, {}
    kept: dict[str, pa.Table] = {}
    removed = 0
    for f in hits:
        table = pq.read_table(f, filesystem=fs)
        kept[f] = table.filter(pc.invert(pc.is_in(table.column("track_id"), value_set=ids)))
        removed += table.num_rows - kept[f].num_rows
    names = {f: part_name() for f, t in kept.items() if t.num_rows}  # a file of removed rows only: no new file
    old = [f.rsplit("/", 1)[-1] for f in hits]
    _write_journal(fs, directory, old, list(names.values()), committed=False)
    for f, name in names.items():
        write_table_atomic(fs, directory, kept[f], name=name)
    _write_journal(fs, directory, old, list(names.values()), committed=True)
    return removed, _delete_replaced(fs, directory, old)
