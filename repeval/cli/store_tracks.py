"""``repeval store rm PARTITION... --track ID``: delete given tracks' rows and error records from store partitions,
so the next run computes just those tracks again (:meth:`repeval.store.partition.Partition.remove_tracks`)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import typer

from repeval.store import EmbeddingStore
from repeval.store.partition_files import settle_command
from repeval.store.rewrite import stuck_text
from repeval.words import counted

#: track ids named in a line before the rest are counted
SHOWN = 5


def _some(ids: list[str]) -> str:
    return ", ".join(ids[:SHOWN]) + (f", … ({len(ids)} in all)" if len(ids) > SHOWN else "")


def remove_tracks(
    store: EmbeddingStore, parts: list[Any], track_ids: list[str], yes: bool, command: str | None = None
) -> None:
    """List, per partition, the rows and error records of ``track_ids`` it holds and the ids it does not; with
    ``yes``, delete them under the store's lock (``command``: this ``store rm``, quoted for a shell, which a refusal
    for a store in use says to run again). Ids found in none of ``parts`` are refused (nothing deleted): a mistyped id
    would otherwise never be computed again."""
    from repeval.store.lock import StoreLock

    ids = pa.array(track_ids, pa.string())
    found_any: set[str] = set()
    plan: list[tuple[Any, int, int]] = []  # (partition, rows, error records) of those that hold one of the tracks
    for part in parts:
        rows, errors, found = part.track_hits(ids)
        found_any |= found
        n_rows = sum(int(pc.sum(pc.is_in(c, value_set=ids)).as_py() or 0) for c in rows.values())
        n_errors = sum(int(pc.sum(pc.is_in(c, value_set=ids)).as_py() or 0) for c in errors.values())
        total_rows, total_errors = part.counts()
        state = f"{'complete' if part.complete else 'incomplete'}, {total_rows} rows, {total_errors} error records"
        if not found:
            typer.echo(f"{part.name}  ({state}): none of {counted(len(track_ids), 'track')}")
            continue
        plan.append((part, n_rows, n_errors))
        line = f"{part.name}  ({state}): {len(found)} of {counted(len(track_ids), 'track')} — "
        line += f"{counted(n_rows, 'row')}, {counted(n_errors, 'error record')}"
        absent = [t for t in track_ids if t not in found]
        typer.echo(line + (f"; not in it: {_some(absent)}" if absent else ""))
    missing = [t for t in track_ids if t not in found_any]
    if missing:
        raise ValueError(
            f"{'track id' if len(missing) == 1 else 'track ids'} in none of the {counted(len(parts), 'partition')} given ({store.uri}): {_some(missing)} — "
            "nothing was deleted; check the ids (as the catalog's track_id column spells them; `repeval store show "
            "STORE PARTITION` prints rows) or leave them out"
        )
    rows = sum(r for _, r, _ in plan)
    errors = sum(e for _, _, e in plan)
    what = f"{counted(rows, 'row')} and {counted(errors, 'error record')} of {counted(len(found_any), 'track')}"
    where = f"{counted(len(plan), 'partition')} of {store.uri}"
    if not yes:
        typer.echo(f"{what} would be deleted from {where}; rerun with --yes to delete them")
        return
    with StoreLock(store, run_id="repeval store rm", command=command):
        # every partition's stopped removals finished first: one that cannot be refuses them all, before any is changed
        stuck = {part.name: files for part, _, _ in plan if (files := part.settle_stuck())}
        if stuck:
            files = {f"{name}/{n}": why for name, named in stuck.items() for n, why in named.items()}
            raise RuntimeError(
                f"{store.uri}: nothing was removed — a stopped track removal cannot finish in "
                f"{counted(len(stuck), 'partition')} given ({', '.join(stuck)}): "
                f"{stuck_text(files, settle_command(store.uri, *stuck))}"
                + (f"; then run `{command}` again" if command else "")
            )
        left = {part.name: done.stuck for part, _, _ in plan if (done := part.remove_tracks(ids)).stuck}
    typer.echo(f"deleted {what} from {where} (now incomplete); the next run computes those tracks again")
    if left:  # the removal took effect; files it replaced that could not be deleted after are left over
        files = {f"{name}/{n}": why for name, named in left.items() for n, why in named.items()}
        typer.echo(f"warning: {stuck_text(files, settle_command(store.uri, *left))}", err=True)


def settle_partitions(
    store: EmbeddingStore, parts: list[Any], command: str | None = None, unread: list[str] | None = None
) -> None:
    """``repeval store settle``: finish, under the store's lock, the track removals of ``parts`` that were stopped
    (:meth:`repeval.store.partition.Partition.settle`), saying what each did; a file that cannot be deleted is an
    error naming it and the command that settles those partitions (the rest is settled). A partition it cannot read
    (another user's, a journal the storage refuses) does not stop the others: each is said on stderr with its fix, after
    ``unread`` (what the caller could not list), and the exit status is 1 — as ``store ls`` says them. ``command``:
    this ``store settle``, quoted for a shell, which a refusal for a store in use says to run again."""
    from repeval.store.inspect import unreadable
    from repeval.store.layout import DamagedPartFile
    from repeval.store.lock import StoreLock

    stuck: dict[str, str] = {}
    stuck_parts: list[str] = []
    unread = list(unread or [])
    settled = failed = 0
    with StoreLock(store, run_id="repeval store settle", command=command):
        for part in parts:
            try:
                done_all = part.settle(say=False)  # said once, here (a log line would repeat it)
            except (OSError, DamagedPartFile) as exc:  # one it cannot read: said below, the others settled
                unread.append(unreadable(part, exc))
                failed += 1
                continue
            for done in done_all:
                sub = done.directory[len(part.path) :].strip("/")
                where = f"{part.name}{'/' + sub if sub else ''}"
                stuck.update((f"{where}/{n}", why) for n, why in done.stuck.items())
                if done.stuck and part.name not in stuck_parts:
                    stuck_parts.append(part.name)
                settled += not done.stuck
                if done.stuck:
                    continue
                if done.committed:
                    deleted = counted(len(done.deleted), "replaced file")
                    typer.echo(f"{where}: finished a stopped track removal: deleted {deleted}")
                else:
                    typer.echo(
                        f"{where}: a track removal stopped before it took effect: deleted the "
                        f"{counted(len(done.deleted), 'new file')} it had written; the rows are as before — run that "
                        "`repeval store rm … --track` again to remove the tracks"
                    )
    for message in unread:
        typer.echo(message, err=True)
    if stuck:
        raise RuntimeError(f"{store.uri}: {stuck_text(stuck, settle_command(store.uri, *stuck_parts))}")
    said = f"settled {counted(settled, 'folder')}" if settled else "nothing to settle: no stopped track removal"
    typer.echo(f"{said} in {counted(len(parts) - failed, 'partition')} of {store.uri}")
    if unread:
        raise typer.Exit(1)
