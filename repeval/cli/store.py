"""``repeval store``: ls, show, rm, settle, unlock (the listings read without a store: :mod:`repeval.cli.listings`)."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import store_app
from repeval.cli.common import cli_path, windows_checked
from repeval.cli.errors import _guard
from repeval.words import counted


def _store_root(positional: str | None, option: str | None) -> str:
    """The store root of a ``repeval store`` command, given as its leading argument or as ``--store`` (default
    ``store``); the argument read as ``--store`` and ``run.store`` are (:func:`_given_root`)."""
    positional = _given_root(positional)
    if positional and option and positional != option:
        raise ValueError(f"two store roots given ({positional} and --store {option}): give one")
    return positional or option or "store"


def _given_root(value: str | None) -> str | None:
    """A store root given as a command's leading argument, read as ``--store`` and ``run.store`` are
    (:func:`repeval.cli.common.cli_path`): ``~`` expanded, an environment variable or a ``~user`` of no user here
    refused (said as STORE's) — ``store show '~/x' …`` opened a folder named ``~``."""
    if value is None:
        return None
    try:
        return cli_path(value) or value
    except typer.BadParameter as exc:
        exc.param_hint = "STORE"
        raise


def open_store(positional: str | None, option: str | None) -> Any:
    """The existing store of a ``repeval store`` command (:func:`_store_root`); a store under the home folder that
    holds nothing while ``./~/…`` does is said first (:func:`~repeval.store.store.note_store_left_under_tilde`), as a
    run says it."""
    from repeval.store import EmbeddingStore
    from repeval.store.store import note_store_left_under_tilde

    root = _store_root(positional, option)
    note_store_left_under_tilde(root)
    return EmbeddingStore(root, create=False)


#: ``repeval store ls|unlock [STORE]``, or ``--store STORE``
_RootArg = Annotated[
    str | None,
    typer.Argument(
        metavar="STORE", callback=_given_root, help="store root (path or pyarrow filesystem URI; default: store)"
    ),
]
_StoreOpt = Annotated[str | None, typer.Option("--store", callback=cli_path, help="the store root, as an option")]


@store_app.command("ls")
def store_ls(
    root: _RootArg = None,
    store: _StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List store partitions: state, rows, errors, dimension, frames kept, model version, config hash, when
    completed, size; a partition whose track removal was stopped is `unsettled` (`repeval store settle` finishes it),
    an incomplete one whose model a run stopped for failing on each of its first tracks `stopped` (why on stderr),
    one this user cannot read `unreadable` (its fix on stderr, as a damaged one's)."""
    from repeval.store.inspect import (
        NOT_A_PARTITION,
        STOPPED,
        ls_text,
        partition_info,
        stopped_text,
        stray,
        stray_note,
        unlisted_folder,
        unsettled_note,
    )

    def go() -> None:
        st = open_store(root, store)
        unlisted: list[tuple[str, OSError]] = []  # folders it may not list: said, the others listed
        files: list[str] = []
        parts = st.partitions(unlisted, files)
        infos = [partition_info(p) for p in parts]
        typer.echo(ls_text(st, as_json, infos))
        for part, info in zip(parts, infos, strict=True):  # readable by repeval: a note, not a failure
            if info["unsettled"] is not None:
                typer.echo(unsettled_note(part, info["unsettled"]), err=True)
            if info["state"] == STOPPED:  # not "rerun to finish it": a rerun leaves the model out
                typer.echo(f"{part.name}: {stopped_text(part, info['stopped'])}", err=True)
        foreign = {i["partition"] for i in infos if i["state"] == NOT_A_PARTITION}  # each listed as such already
        if len(foreign) < len(infos):  # a store: not a runs directory (said as that), nor a folder of no partition
            strays = [f for f in files if stray(f) and "/".join(f.split("/")[:3]) not in foreign]
            if strays:
                in_partition = any(f.count("/") >= 3 for f in strays)
                typer.echo(stray_note(st.uri, sorted(strays), in_partition), err=True)
        damaged = [i["damage"] for i in infos if i["damage"]] + [unlisted_folder(st, f, e) for f, e in unlisted]
        for message in damaged:  # every partition is listed; each damaged one's fix goes to stderr, and the exit is 1
            typer.echo(message, err=True)
        if damaged:
            raise typer.Exit(1)

    _guard(go, writes=False)  # reads only: a storage error gets a read fix


@store_app.command("show")
def store_show(
    target: Annotated[
        list[str],
        typer.Argument(
            metavar="[STORE] DATASET/MODEL/SCENARIO",
            help="the partition, after the store root unless --store gives it (default store: store)",
        ),
    ],
    root: Annotated[
        str | None, typer.Option("--store", callback=cli_path, help="store root (path or pyarrow filesystem URI)")
    ] = None,
    rows: Annotated[
        int | None,
        typer.Option(
            "--rows",
            help="rows and error records to print (default 5; 0: counts only); with --errors, error records "
            "(default: all)",
        ),
    ] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="only the error records, one line each: all of them, or the first --rows")
    ] = False,
) -> None:
    """Show a partition's manifest, schema, counts, first rows and error records (--errors: only the records)."""
    from repeval.rundir import is_uri
    from repeval.store.inspect import errors_text, partition_strays, show_text, store_alone, stray_note

    def go() -> None:
        if rows is not None and rows < 0:
            raise ValueError(f"--rows must be 0 or more (0 prints the counts without rows), got {rows}")
        if len(target) > 2:
            raise ValueError("give [STORE] DATASET/MODEL/SCENARIO (see `repeval store ls STORE`)")
        alone = (
            store_alone(target[0], _given_root(target[0]) or target[0]) if len(target) == 1 and root is None else None
        )
        if alone is not None:  # the store, read as a partition of the default store `store`
            raise ValueError(alone)
        if len(target) == 1 and root is None and (target[0].startswith(("/", "~", ".")) or is_uri(target[0])):
            given = open_store(target[0], None)  # a store root, not a partition: none there is said naming it
            raise ValueError(_not_a_partition(target[0], given))
        store = open_store(target[0] if len(target) == 2 else None, root)
        part = store.find(target[-1])
        typer.echo(errors_text(part, rows) if errors else show_text(part, 5 if rows is None else rows))
        strays = partition_strays(part)
        if strays:
            typer.echo(stray_note(f"{part.name} of {store.uri}", strays), err=True)

    _guard(go, writes=False)  # reads only: a storage error gets a read fix


@store_app.command("rm")
def store_rm(
    target: Annotated[
        list[str],
        typer.Argument(
            metavar="[STORE] PARTITION...",
            help="partitions as dataset/model/scenario, shell-style patterns allowed (notes/mfcc-stats/*); "
            "the first argument is the store root when it is not a partition (give a relative root with two "
            "slashes as ./a/b/c; default store: store)",
        ),
    ],
    root: Annotated[
        str | None, typer.Option("--store", callback=cli_path, help="store root (path or pyarrow filesystem URI)")
    ] = None,
    tracks: Annotated[
        list[str] | None,
        typer.Option(
            "--track",
            metavar="ID",
            help="delete only this track's rows and error records from the partitions (repeat it for more); "
            "the next run computes just those again",
        ),
    ] = None,
    tracks_from: Annotated[
        str | None,
        typer.Option(
            "--tracks-from",
            metavar="FILE",
            callback=windows_checked,
            help="as --track, for each track id in FILE (one a line; blank lines and lines starting with # skipped; "
            "- reads them from stdin)",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="delete; without it, only list what would be deleted")] = False,
) -> None:
    """Delete store partitions, or with --track/--tracks-from only those tracks' rows and error records from them (the
    next run computes them again); takes the store's lock, so not during a run."""
    from repeval.store.lock import StoreLock

    # this command as given, with --yes: what a refusal for a store in use says to run again
    command = shlex.join(
        ["repeval", "store", "rm", *target, *(["--store", root] if root is not None else [])]
        + [w for t in tracks or [] for w in ("--track", t)]
        + (["--tracks-from", tracks_from] if tracks_from is not None else [])
        + ["--yes"]
    )

    def go() -> None:
        store, chosen = _store_and_partitions(list(target), root, alone=False)
        if tracks or tracks_from is not None:
            from repeval.cli.store_tracks import remove_tracks

            remove_tracks(store, list(chosen.values()), _track_ids(tracks or [], tracks_from), yes, command)
            return
        _rm_partitions(store, chosen, yes, StoreLock, command)

    _guard(go)


def _not_a_partition(given: str, folder: Any) -> str:
    """What ``store show GIVEN`` is told when GIVEN, a URI or an absolute or ./ path, is a folder (``folder``: it opened as a
    store) rather than a partition of the default store: the command that shows the partition when it is a partition's
    own folder (``STORE/DATASET/MODEL/SCENARIO``); to give the store when it holds no partition; else to name the
    partition after it."""
    from repeval.store.inspect import holds_partition

    path, query, rest = given.partition("?")
    parts = path.rstrip("/").rsplit("/", 3)
    if (
        len(parts) == 4
        and parts[0] not in ("", "~")
        and not parts[0].endswith(":/")
        and holds_partition(folder.fs, folder.root)
    ):
        store, name = shlex.quote(parts[0] + query + rest), "/".join(parts[1:])
        return (
            f"{given} is the folder of the store partition {name}: give the store, then the partition (`repeval store "
            f"show {store} {name}`)"
        )
    if not any(holds_partition(folder.fs, p.path) for p in folder.partitions()):  # a run's folder, a dataset's
        return (
            f"{given} holds no store partition (no DATASET/MODEL/SCENARIO folder with part-*.parquet, _stamp.json or "
            "_manifest.json): give the embedding store (a configuration's run.store, `store` by default), then the "
            "partition (`repeval store show STORE DATASET/MODEL/SCENARIO`)"
        )
    quoted = shlex.quote(given)
    return (
        f"{given} is not a partition: name the partition after it (`repeval store show {quoted} "
        f"DATASET/MODEL/SCENARIO`); `repeval store ls {quoted}` lists them"
    )


def _looks_like_root(first: str) -> bool:
    """Whether a command's first argument is a store root rather than a partition (``dataset/model/scenario``, a
    pattern of one: relative, exactly two slashes): a URI, an absolute, ./-relative, ~ or $VAR path (refused), or
    anything else (relative roots with two slashes: ./a/b/c)."""
    from repeval.rundir import is_uri

    return is_uri(first) or first.startswith(("/", "~", ".", "$")) or first.strip("/").count("/") != 2


def _store_and_partitions(args: list[str], root: str | None, alone: bool) -> tuple[Any, dict[str, Any]]:
    """The store and the partitions (name → partition) of ``[STORE] PARTITION...`` (``store rm``, ``store settle``);
    ``alone``: a lone argument that looks like a store root is the store (``settle STORE``: every partition)."""
    args = list(args)
    first = args[0] if args else ""
    given = args.pop(0) if args and (len(args) > 1 or alone) and root is None and _looks_like_root(first) else None
    store = open_store(given, root)
    chosen: dict[str, Any] = {}
    for pattern in args:
        hits = store.matching(pattern)
        if not hits and any(c in pattern for c in "*?["):
            raise ValueError(f"no partition of {store.uri} matches {pattern} (`repeval store ls` lists them)")
        if not hits:
            store.find(pattern)  # raises naming the closest partitions
        chosen.update((p.name, p) for p in hits)
        store.refuse_foreign(list(chosen.values()))  # a runs directory given as the store: its tune/ is not deleted
    return store, chosen


@store_app.command("settle")
def store_settle(
    target: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[STORE] [PARTITION...]",
            help="the store root (default: store) and, if given, only these partitions (dataset/model/scenario, "
            "shell-style patterns allowed)",
        ),
    ] = None,
    root: Annotated[
        str | None, typer.Option("--store", callback=cli_path, help="store root (path or pyarrow filesystem URI)")
    ] = None,
) -> None:
    """Finish the track removals (`store rm … --track`) that were stopped or could not delete the files they replaced,
    so plain Parquet readers see each row once; takes the store's lock, so not during a run."""
    from repeval.cli.store_tracks import settle_partitions

    def go() -> None:
        store, chosen = _store_and_partitions(list(target or []), root, alone=True)
        command = shlex.join(["repeval", "store", "settle", *(target or []), *(["--store", root] if root else [])])
        unlisted: list[tuple[str, OSError]] = []  # another user's folder: said with its fix, before anything is done
        parts = list(chosen.values()) if chosen else store.partitions(unlisted)
        unread = [str(store.unlisted_error(f, e, "its partitions are not looked at")) for f, e in unlisted]
        settle_partitions(store, parts, command, unread)  # every one it can read settled, each other one said

    _guard(go)


@store_app.command("unlock")
def store_unlock(
    root: _RootArg = None,
    store: _StoreOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="remove it; without it, only say who holds it")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="with --yes, remove it even though its holder's pid runs on this host (another program that took the "
            "pid since)",
        ),
    ] = False,
) -> None:
    """Remove the lease of a store on object storage left by a run that is gone (killed, its machine down) before it
    expires; a local store's lock needs none (the kernel frees it). Refused while the holder runs on this host."""
    import pyarrow.fs as pafs

    from repeval.store.lock import LOCK

    def go() -> None:
        st = open_store(root, store)
        if isinstance(st.fs, pafs.LocalFileSystem):
            typer.echo(
                f"{st.uri} is a local store: its lock is an flock on {LOCK}, freed by the "
                "kernel when its holder ends, however it ends — there is nothing to remove"
            )
            return
        unlock(st, yes, force)

    _guard(go)


def unlock(st: Any, yes: bool, force: bool = False) -> None:
    """``repeval store unlock`` on the store ``st`` (not a local one): say whose lease it holds, and with ``yes``
    remove it — refused (a ``RuntimeError`` naming the pid and how to stop it) while the holder is a live process on
    this host, unless ``force``."""
    from repeval.store.lease import LEASE, LeaseError, read_lease
    from repeval.store.lock import alive_here, describe, utc

    try:
        info = read_lease(st.fs, st.root, st.uri)
    except LeaseError:  # not a lease: what that error names as the fix is this command
        info, said = {}, f"{LEASE}, which is not a lease repeval wrote"
    else:
        said = ""
    if info is None:
        typer.echo(f"{st.uri}: no lease — no run holds the store")
        return
    running = ""
    if info:
        expired = "expired" if info["expires_at"] <= time.time() else "runs until"
        said = f"the lease of {describe(info)} ({expired} {utc(info['expires_at'])})"
        if alive_here(info):
            pid = info["pid"]
            running = (
                f"its process, pid {pid}, is still running on this host: stop it (`kill {pid}`; it lets its lease go "
                f"as it ends) rather than remove its lease — a run still writing would share the store with the next; "
                f"if pid {pid} is another program now, {'add --force' if yes else 'run it with --yes --force'}"
            )
    if not yes:
        typer.echo(
            f"{st.uri}: {said}; "
            + (running or "rerun with --yes to remove it — only once that process is gone: a run still writing "
               "would share the store with the next")
        )  # fmt: skip
        return
    if running and not force:
        raise RuntimeError(f"{st.uri}: {said} not removed — {running}")
    st.fs.delete_file(f"{st.root}/{LEASE}")
    typer.echo(f"{st.uri}: removed {said}")


def _track_ids(given: list[str], path: str | None) -> list[str]:
    """The ids of ``--track`` and ``--tracks-from`` in order, each once."""
    import sys

    ids = list(given)
    if path is not None:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()  # (~ expanded by --tracks-from)
        ids += [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not ids:
        raise ValueError(f"{path} names no track id (one a line): give the ids to delete, or no --tracks-from")
    return list(dict.fromkeys(ids))


def _rm_partitions(store: Any, chosen: dict[str, Any], yes: bool, lock: Any, command: str) -> None:
    """``store rm PARTITION...`` without tracks: list the partitions, or delete them with ``--yes``."""
    from repeval.store.layout import DamagedPartFile, PartFileDenied

    for n, part in chosen.items():
        try:  # a partition whose file is damaged, or another user's, is deleted all the same
            state = "complete" if part.complete else "incomplete"
            rows, errors = part.counts()
        except (PermissionError, PartFileDenied):
            typer.echo(f"{n}  (unreadable: this user may not read all of its files)")
        except DamagedPartFile:  # what the damaged file's error tells the user to delete: rm must still do it
            typer.echo(f"{n}  ({state}, a part file is not readable Parquet)")
        else:
            typer.echo(f"{n}  ({state}, {counted(rows, 'row')}, {counted(errors, 'error record')})")
    if not yes:
        typer.echo(
            f"{counted(len(chosen), 'partition')} would be deleted from {store.uri}; rerun with --yes to delete "
            f"{'it' if len(chosen) == 1 else 'them'}"
        )
        return
    with lock(store, run_id="repeval store rm", command=command):
        for part in chosen.values():
            part.delete()
    them = "it" if len(chosen) == 1 else "them"
    typer.echo(f"deleted {counted(len(chosen), 'partition')} from {store.uri}; the next run computes {them} again")
