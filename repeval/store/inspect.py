"""Text views of the store for ``repeval store ls|show`` (pure functions: easy to test and reuse)."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.deformations import CLEAN
from repeval.store.layout import (
    AUDIO_NOTE,
    ERRORS_DIR,
    STAMP,
    DamagedPartFile,
    PartFileDenied,
    is_part_file,
    read_parquet,
)
from repeval.store.params import earlier_rows
from repeval.store.partition import Partition
from repeval.store.rewrite import REWRITE
from repeval.store.store import EmbeddingStore
from repeval.words import counted, each_of_first


def utc_time(ts: Any) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SSZ`` ("-" when unset)."""
    if not ts:
        return "-"
    return dt.datetime.fromtimestamp(float(ts), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def aligned(table: list[tuple[str, ...]]) -> list[str]:
    """Rows of text cells as left-aligned columns two spaces apart (the first row is the header)."""
    widths = [max(len(r[c]) for r in table) for c in range(len(table[0]))]
    return ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in table]


def cell(v: Any) -> str:
    """One value of a row as ``store show`` prints it: a null as ``-`` (as ``store ls`` and ``runs`` print theirs), a
    float to 6 significant digits, anything else as ``str`` — not pandas' ``NaN``/``None``, nor an int column with a
    null shown as floats."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return " ".join(str(v).splitlines())  # a row a line, however an error's reason was worded


def rows_text(table: pa.Table) -> str:
    """``table``'s rows as aligned columns under their names, each row numbered from 0 (:func:`cell`)."""
    cells: list[tuple[str, ...]] = [("", *table.column_names)]
    cells += [(str(i), *(cell(v) for v in r.values())) for i, r in enumerate(table.to_pylist())]
    return "\n".join(aligned(cells))


def _listing(part: Partition) -> list[pafs.FileInfo]:
    """Every file of the partition, ``_errors/`` included (one recursive listing)."""
    sel = pafs.FileSelector(part.path, recursive=True, allow_not_found=True)
    return [i for i in part.fs.get_file_info(sel) if i.type == pafs.FileType.File]


#: ``store ls``'s state of an incomplete partition whose model a run stopped for failing on each of its first tracks
#: (``stopped_failing``): runs leave the model out until it is fixed (``--retry-model``)
STOPPED = "stopped"

#: ``store ls``'s state of a partition whose track removal was stopped, or could not delete what it replaced
UNSETTLED = "unsettled"


def unsettled_note(part: Partition, left: list[str]) -> str:
    """What ``store ls`` and ``store show`` say of a partition with a track removal's journal (``left``: the files
    :meth:`Partition.unsettled` names)."""
    shown = ", ".join(left[:3]) + (", …" if len(left) > 3 else "")
    what = f"{counted(len(left), 'file')} it replaced or was writing ({shown})" if left else "its journal"
    return (
        f"{part.name}: a track removal (`repeval store rm … --track`) was stopped or could not finish, leaving "
        f"{what}; "
        "repeval reads around them, a plain Parquet reader (duckdb, pq.read_table) does not — settle it with "
        f"`{part.settle_command()}`"
    )


#: ``store ls``'s state of a folder three deep that holds files, none of them a partition's (:meth:`Partition.foreign`)
NOT_A_PARTITION = "not a partition"


#: ``store ls``'s state of a partition whose folder cannot be listed (:func:`unlisted_partition`)
UNREADABLE = "unreadable"


def _unknown(part: Partition, state: str, size: int | None) -> dict[str, Any]:
    """:func:`partition_info` of a folder whose content is not read: its ``state`` alone."""
    return {
        "partition": part.name, "state": state, "damage": None, "rows": None, "errors": None, "dim": None,
        "frames": None, "model_version": None, "config_hash": None, "created_at": None, "completed_at": None,
        "bytes": size, "unsettled": None, "stopped": None,
    }  # fmt: skip


def unlisted_partition(part: Partition, exc: OSError) -> str:
    """What ``store ls`` says of a partition whose folder it cannot list, with the fix (one rule for a folder that
    cannot be listed: :func:`repeval.report.run_files.unlisted`)."""
    from repeval.report.run_files import unlisted

    named = re.search(r"Cannot list directory '([^']+)'", str(exc))  # pyarrow's: its own folder, or its _errors/
    folder = named.group(1) if named else part.path
    return f"{part.named}: " + unlisted(folder, "its rows and error records are not counted", exc)


def unlisted_folder(store: EmbeddingStore, folder: str, exc: OSError) -> str:
    """What ``store ls`` says of a folder above the partitions (``dataset`` or ``dataset/model``, relative to the
    store's root) it cannot list, with the fix."""
    from repeval.report.run_files import unlisted

    return unlisted(f"{store.root}/{folder}", "the store's partitions under it are not listed", exc)


def stray(rel: str) -> bool:
    """Whether the file ``rel`` (its path under the store's root) is none of the store's — one rule at every depth:
    a partition's folder (``DATASET/MODEL/SCENARIO``) and its ``_errors/`` hold part files, ``_``-named files (its
    manifest, stamp, journal) and a write's ``.tmp-`` names; the root its ``_lock.json`` and ``_lease.json``; any
    other file is stray, however deep. Hidden files, and what lies under a folder the store skips (``_``-named above
    the partitions), are not looked at."""
    *folders, name = rel.split("/")
    if any(p.startswith(".") for p in rel.split("/")) or any(f.startswith("_") for f in folders[:3]):
        return False  # a write's temporary .tmp- names among them
    if len(folders) == 3 or (len(folders) == 4 and folders[3] == ERRORS_DIR):
        return not (is_part_file(name) or name.startswith("_"))
    return not (not folders and name.startswith("_"))


def stray_note(where: str, found: list[str], in_partition: bool = True) -> str:
    """What ``store ls`` and ``store show`` say of the stray files ``found`` (:func:`stray`) in ``where``;
    ``in_partition``: one of them is in a partition's folder, where a plain Parquet reader of it stops."""
    them = "it" if len(found) == 1 else "them"
    shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
    reader = (
        " — a plain Parquet reader of a partition (pq.read_table, duckdb) stops on one in the partition's folder"
        if in_partition
        else ""
    )
    return (
        f"warning: {counted(len(found), 'file')} in {where} {'is' if len(found) == 1 else 'are'} none of the store's "
        f"(repeval neither writes nor reads {them}): {shown}{reader}: move {them} out of the store"
    )


def partition_strays(part: Partition) -> list[str]:
    """The stray files (:func:`stray`) in ``part``'s folder, relative to it (one recursive listing)."""
    root = part.store.root
    found = [i.path[len(root) :].strip("/") for i in _listing(part)]
    return sorted(f[len(part.name) + 1 :] for f in found if stray(f))


def unreadable(part: Partition, exc: Exception) -> str:
    """What ``store ls`` and ``store settle`` say of partition ``part`` they cannot read (``exc``): one wording,
    ``store partition D/M/S in STORE: …`` (an error that names the partition so already: as it is)."""
    said = str(exc)
    return said if said.startswith("store partition ") else f"{part.named}: {said}"


def partition_info(part: Partition) -> dict[str, Any]:
    """One partition's state from its manifest (or stamp) and Parquet footers; reads no data pages."""
    try:
        listing = _listing(part)
    except OSError as exc:  # its folder cannot be listed (another user's): listed as such, with the fix
        return {**_unknown(part, UNREADABLE, None), "damage": unlisted_partition(part, exc)}
    size = sum(i.size or 0 for i in listing)
    try:
        m = part.manifest()
        if m is None and part.foreign():  # not a partition (a runs directory given as the store): nothing to read
            return _unknown(part, NOT_A_PARTITION, size)
        stamp = m or part._read_json(STAMP) or {}
    except PermissionError as exc:  # its manifest or stamp another user's: unreadable, not taken as incomplete
        return {**_unknown(part, UNREADABLE, size), "damage": unreadable(part, exc)}
    dim, frames, damage, left = None, None, None, None
    rows: int | None
    errors: int | None
    try:
        if any(i.base_name == REWRITE for i in listing):  # read only where a journal lies (one listing)
            left = part.unsettled()
        rows, errors = part.counts()
        files = part.part_files()
        if files:
            schema = pq.read_schema(files[0], filesystem=part.fs)
            dim = getattr(schema.field("embedding").type, "list_size", None)
            frames = "frames" in schema.names
    except PartFileDenied as exc:  # another user's part file: perhaps whole, listed as unreadable (not damaged)
        return {**_unknown(part, UNREADABLE, size), "damage": unreadable(part, exc)}
    except DamagedPartFile as exc:  # one damaged partition must not hide the others: it is listed as damaged
        rows = errors = None
        damage = str(exc)
    except OSError as exc:  # nor one it cannot read (its _errors/ a file, or another user's): listed as unreadable
        return {**_unknown(part, UNREADABLE, size), "damage": unreadable(part, exc)}
    if m and damage is None and isinstance(m.get("rows"), int) and rows != m["rows"]:
        damage = _rows_differ(part, rows, m["rows"])
    stop = None if m else part.stopped_failing()  # a run stopped its model: runs leave it out, not "rerun to finish"
    state = STOPPED if stop else "complete" if m else "incomplete"
    return {
        "partition": part.name,
        "state": "damaged" if damage else UNSETTLED if left is not None else state,
        "damage": damage,
        "unsettled": left,
        "stopped": {k: stop[k] for k in ("error", "tracks", "at")} if stop else None,
        "rows": rows,
        "errors": errors,
        "dim": dim,
        "frames": frames,
        "model_version": stamp.get("model_version"),
        "config_hash": stamp.get("config_hash"),
        "created_at": stamp.get("created_at"),
        "completed_at": stamp.get("completed_at"),
        "bytes": size,
    }


def _rows_differ(part: Partition, rows: Any, recorded: int) -> str:
    """The damage note of a complete partition whose part files hold another number of rows than its manifest."""
    said = f"store partition {part.name}: its part files hold {counted(rows, 'row')}, its manifest {recorded}"
    if rows > recorded:  # what probe data reading warns about (repeval.tuning.data): each track is read once
        return (
            f"{said} — {counted(rows - recorded, 'row')} of tracks it has already (a part file copied in, or two runs "
            "writing to one store); each track's first row is used: delete the part files copied in, or delete the "
            f"partition (`{part.rm_command()}`) to embed it again"
        )
    return (
        f"{said} — {counted(recorded - rows, 'row')} missing (a part file deleted or lost): the next run with its configuration "
        f"computes those tracks again, or delete the partition (`{part.rm_command()}`) to embed it again"
    )


def ls_text(store: EmbeddingStore, as_json: bool = False, infos: list[dict[str, Any]] | None = None) -> str:
    """The ``repeval store ls`` listing of ``infos`` (default: every partition's :func:`partition_info`); a damaged
    partition is a row of its own (``state`` damaged), its message is the caller's to print."""
    infos = [partition_info(p) for p in store.partitions()] if infos is None else infos
    if as_json:
        return json.dumps(infos, indent=1)
    if not infos:
        return f"{store.uri}: no partitions"
    head = ("partition", "state", "rows", "errors", "dim", "frames", "version", "config", "completed", "MiB")
    table = [head] + [
        (
            i["partition"],
            i["state"],
            "-" if i["rows"] is None else str(i["rows"]),
            "-" if i["errors"] is None else str(i["errors"]),
            str(i["dim"] or "-"),
            {True: "yes", False: "no"}.get(i["frames"], "-"),
            str(i["model_version"] or "-"),
            str(i["config_hash"] or "-"),
            utc_time(i["completed_at"]),
            "-" if i["bytes"] is None else f"{i['bytes'] / 2**20:.1f}",
        )
        for i in infos
    ]
    lines = aligned(table)
    done = sum(i["state"] == "complete" for i in infos)
    foreign = sum(i["state"] == NOT_A_PARTITION for i in infos)
    rows, errors = (sum(i[k] or 0 for i in infos) for k in ("rows", "errors"))
    not_parts = f", {counted(foreign, 'folder')} not a partition" if foreign else ""
    lines.append(
        f"{counted(len(infos) - foreign, 'partition')}, {done:,} complete, {counted(rows, 'row')}, "
        f"{counted(errors, 'error record')}{not_parts} — {store.uri}"
    )
    if all(i["state"] == NOT_A_PARTITION for i in infos):
        lines.append(
            f"{store.uri} holds no store partition: its folders three deep hold no part-*.parquet, _stamp.json or "
            "_manifest.json (a runs or run directory? the store is run.store, `store` by default)"
        )
    return "\n".join(lines)


def audio_notes(
    part: Partition, files: list[str] | None = None, footers: list[tuple[int, bool]] | None = None
) -> pa.Table:
    """``track_id`` and ``audio_note`` of the rows of ``part`` whose audio was decoded from part of its file
    (:mod:`repeval.audio.partial`), in row order; part files written before the column existed have none. ``files``
    and ``footers``: the part files and what :meth:`Partition.footer_counts` read of them, when the caller has."""
    found = []
    for f in part.noted_files(files, footers):  # the footers say which files hold a note: only those are read
        t = read_parquet(part.fs, f, ["track_id", AUDIO_NOTE])
        found.append(t.filter(pc.is_valid(t.column(AUDIO_NOTE))))
    if not found:
        return pa.table({"track_id": pa.array([], pa.string()), AUDIO_NOTE: pa.array([], pa.string())})
    return pa.concat_tables(found)


def _incomplete(part: Partition) -> str:
    """What ``store show`` says of an incomplete partition: rerun to finish it — unless a run stopped its model for
    failing on each of its first tracks (``stopped_failing``), which later runs leave out, not run, until it is fixed."""
    stop = part.stopped_failing()  # one edited by hand into other types: said in a warning, taken as none
    if stop is None:
        return "(incomplete: no manifest yet; rerun to finish it)"
    return f"(incomplete: {stopped_text(part, stop)})"


def retried_note(part: Partition) -> str | None:
    """What ``store show`` says of an incomplete partition whose error records were deleted to compute their tracks
    again (:meth:`~repeval.store.partition.Partition.note_retried`): how many of those tracks were embedded since,
    failed again, or are still to compute (a retry stopped midway); ``None`` when none were."""
    retried = part.retried_ids()
    if not len(retried):
        return None
    embedded = pc.is_in(retried, value_set=part.embedded_ids()).to_numpy(zero_copy_only=False)
    failed = pc.is_in(retried, value_set=part.error_ids()).to_numpy(zero_copy_only=False) & ~embedded
    n, n_embedded, n_failed = len(retried), int(embedded.sum()), int(failed.sum())
    became = {"embedded since": n_embedded, "failed again": n_failed, "still to compute": n - n_embedded - n_failed}
    one = n == 1
    return (
        f"{counted(n, 'track')} of it retried ({'its error record' if one else 'their error records'} deleted by "
        f"--retry-errors, --retry-model or `repeval store rm … --track` to compute {'it' if one else 'them'} again): "
        + (next(k for k, v in became.items() if v) if one else ", ".join(f"{v:,} {k}" for k, v in became.items()))
    )


def stopped_text(part: Partition, stop: dict[str, Any]) -> str:
    """What ``store show`` and ``store ls`` say of a partition whose model a run stopped (``stop``: its
    ``stopped_failing``): why, and that runs leave the model out until it is fixed and retried."""
    return (
        f"a run stopped its model when it failed on {each_of_first(stop['tracks'], 'track')} it was "
        f"given, with the same error: {stop['error']}; runs leave the model out, not run, until it is fixed — then "
        f"rerun with --retry-model {shlex.quote(part.model)}"
    )


def show_text(part: Partition, n_rows: int = 5) -> str:
    """The manifest, schema and counts of ``part``, then its first ``n_rows`` rows and error records (none: 0)."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be 0 or more, got {n_rows}")
    out = [f"partition {part.name} at {part.path}"]
    m = part.manifest()
    out.append(json.dumps(m, indent=1, sort_keys=True) if m else _incomplete(part))
    retried = None if m else retried_note(part)  # complete: its retried tracks' record is gone (or stale, not said)
    if retried:
        out.append(retried)
    left = part.unsettled()
    if left is not None:
        out.append(unsettled_note(part, left))
    files = part.part_files()
    part.footer_counts(part.error_files())  # a damaged error file is named, with the fix, before anything is read
    if files:
        # the embeddings (and frames) are most of a partition's bytes: read only the columns shown, each file opened
        # once for them and its footer's counts (a damaged file is named, with the fix)
        t, footers = part.read_counted(files, ["track_id", "split", "n_frames", "audio_seconds"])
        schema = pq.read_schema(files[0], filesystem=part.fs)
        out.append(f"\n{counted(t.num_rows, 'row')} in {counted(len(files), 'part file')}; schema:\n{schema}")
        splits = t.group_by("split").aggregate([("track_id", "count")]).to_pylist()
        out.append("rows per split: " + ", ".join(f"{cell(r['split'])} {r['track_id_count']}" for r in splits))
        frames, seconds = (pc.sum(t.column(c)).as_py() or 0 for c in ("n_frames", "audio_seconds"))
        out.append(f"frames: {frames} total; audio: {seconds:.1f} s")
        earlier = earlier_rows(part) if part.scenario != CLEAN else 0
        if earlier:
            out.append(
                f"{counted(earlier, 'row')} written by an earlier repeval {'holds' if earlier == 1 else 'hold'} in "
                "deformation_params, for a step its p "
                "skipped, the values drawn for another track (read should_apply first): the next `repeval run`, "
                "`embed` or `deform` that uses this partition mends them in place"
            )
        noted = audio_notes(part, files, footers)
        if noted.num_rows:
            out.append(
                f"{counted(noted.num_rows, 'row')} with an audio_note (decoded from part of their file): "
                + "; ".join(f"{r['track_id']}: {r[AUDIO_NOTE]}" for r in noted.slice(0, max(n_rows, 1)).to_pylist())
                + ("" if noted.num_rows <= max(n_rows, 1) else "; …")
            )
        head: list[pa.Table] = []
        for f in files if n_rows else []:  # the first rows, file by file (a file from before a column: null there)
            names = pq.read_schema(f, filesystem=part.fs).names
            shown = [c for c in names if c not in ("embedding", "frames")]
            head.append(read_parquet(part.fs, f, shown).slice(0, n_rows))
            if sum(h.num_rows for h in head) >= n_rows:
                break
        if head:
            out.append(rows_text(pa.concat_tables(head, promote_options="default").slice(0, n_rows)))
    else:
        out.append("(no rows: every track has an error record)" if m else "(no rows yet)")
    errs = part.read_errors()
    if errs.num_rows:
        by_stage = errs.group_by("stage").aggregate([("track_id", "count")]).to_pylist()
        out.append(
            f"\n{counted(errs.num_rows, 'error record')}: "
            + ", ".join(f"{r['stage']} {r['track_id_count']}" for r in by_stage)
        )
        if n_rows:
            out.append(rows_text(errs.slice(0, n_rows).select(["track_id", "split", "stage", "reason"])))
            if errs.num_rows > n_rows:
                out.append(f"(the first {n_rows}; `--errors` lists all {errs.num_rows})")
    return "\n".join(out)


def errors_text(part: Partition, limit: int | None = None) -> str:
    """Only the error records of ``part``: a count line, then one line per record (track, split, stage and the
    reason, on one line) as aligned columns — all of them, or the first ``limit``."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    errs, total = part.head_errors(part.counts()[1] if limit is None else limit)  # a damaged file: named, with the fix
    head = f"partition {part.name}: {counted(total, 'error record')}"
    if not total:
        return head
    stages = errs.group_by("stage").aggregate([("track_id", "count")]).to_pylist() if errs.num_rows == total else []
    if stages:
        head += ": " + ", ".join(f"{r['stage']} {r['track_id_count']}" for r in stages)
    if 0 < errs.num_rows < total:
        head += f" (the first {errs.num_rows} shown)"
    lines = [head]
    if errs.num_rows:
        cells: list[tuple[str, ...]] = [("track_id", "split", "stage", "reason")]
        for r in errs.select(["track_id", "split", "stage", "reason"]).to_pylist():
            reason = " ".join(str(r["reason"] or "").split())  # one line each, however the exception was worded
            cells.append((str(r["track_id"]), str(r["split"] or "-"), str(r["stage"] or "-"), reason))
        lines += aligned(cells)
    return "\n".join(lines)


def store_alone(given: str, root: str) -> str | None:
    """What ``repeval store show GIVEN`` (one argument, no ``--store``) is told when GIVEN (``root``: as a store root
    is read) is a store rather than a partition of the default store ``store`` — which it is read as when the default
    store holds one of that name; ``None`` when GIVEN is no store: a folder with neither partitions nor only a store's
    own ``_*`` files in it."""
    try:
        store = EmbeddingStore(root, create=False)
        parts = any(holds_partition(store.fs, p.path) for p in store.partitions())  # not any folder three deep
        if not parts and any(  # a folder of other files (a partition's own: `_manifest.json`, `part-*.parquet`)
            not i.base_name.startswith("_") or i.base_name == "_manifest.json"
            for i in store.fs.get_file_info(pafs.FileSelector(store.root))
        ):
            return None  # an empty store holds nothing, or its own `_lock.json`, `_lease.json`
    except Exception:  # not a store, or out of reach: read as the partition it was given as
        return None
    try:
        EmbeddingStore("store", create=False).find(given)
        return None  # the default store's partition, named like a store's path
    except Exception:
        pass
    quoted = shlex.quote(given)
    return (
        f"{given} is a store{'' if parts else ' (no partitions in it yet)'}, not a partition: name the partition after "
        f"it (`repeval store show {quoted} DATASET/MODEL/SCENARIO`); `repeval store ls {quoted}` lists them"
    )


def holds_partition(fs: pafs.FileSystem, path: str) -> bool:
    """Whether the folder ``path`` holds a partition's files (``part-*.parquet``, ``_manifest.json``, ``_stamp.json``)."""
    names = (i.base_name for i in fs.get_file_info(pafs.FileSelector(path, allow_not_found=True)))
    return any(is_part_file(n) or n in ("_manifest.json", "_stamp.json") for n in names)
