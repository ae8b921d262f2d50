"""``repeval runs [RUNS_DIR]``: the runs under a runs directory (a path or a filesystem URI) and how far each got.

Reads each run's ``config.yaml``, ``status.json``, ``load_report.json`` and ``models_left_out.json``, the names
under ``groups/``, the Parquet footers of ``results.parquet`` (with the test tracks its evaluation recorded as scored
on partial audio) and ``summary.parquet``, ``failed.parquet``'s ``scenario`` column (a probe
training that failed, or a test cell not scored) and the footers of the saved splits (``splits/``: the test set's
digest the run kept there; of a split file without it, its track, label and split columns) — no other data pages, and
nothing under ``tune/``.
"""

from __future__ import annotations

import json
import os
from shlex import quote
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from repeval.cloud_reach import refusal
from repeval.ray_cluster import job_resubmit
from repeval.report.comparable import digest_label, run_split_digests
from repeval.report.left_out import error_records_line, run_error_records
from repeval.report.run_files import models_left_out_of, rows_not_evaluated_of, short_why, unlisted
from repeval.run.files import damaged, may_not_read, parquet_error
from repeval.run.partial_audio import partial_text, recorded_partial
from repeval.run.status import STATUS, command_line, gone_process
from repeval.rundir import (
    CONFIG_KEY,
    LOAD_REPORT,
    evaluate_fix,
    every_training_failed,
    filesystem_of,
    first_failures,
    folder_of,
    grid_name,
    in_folder,
    json_read,
    recorded_grids,
    recorded_untrained,
    summary_mismatch,
)
from repeval.store.inspect import aligned, utc_time
from repeval.words import counted


def _footer(fs: pafs.FileSystem, path: str) -> tuple[Any, BaseException | None]:
    """The Parquet footer at ``path`` (its rows, and the key :func:`summary_mismatch` compares), ``None`` without one;
    and the error that makes it unreadable — cut short, corrupted, not readable by this user (``None``: it reads, or
    there is no file)."""
    try:
        return pq.read_metadata(path, filesystem=fs), None
    except FileNotFoundError:
        return None, None
    except (OSError, pa.ArrowInvalid) as exc:
        return None, exc if fs.get_file_info(path).type == pafs.FileType.File else None


def _failed(
    fs: pafs.FileSystem, path: str, grids: set[str] | None = None
) -> tuple[int | None, int | None, BaseException | None]:
    """``(probe trainings, test cells)`` of ``failed.parquet``: a row with a ``scenario`` is one (probe, seed,
    scenario) cell whose test scores were not finite — its probe trained; a row without one (and every row of a run
    written before the column) is a probe training that failed. ``(0, 0)`` without the file. With ``grids`` (those
    the results' evaluation collected, :func:`~repeval.rundir.recorded_grids`) only the rows of those grids.
    ``(None, None, error)``: the file is unreadable (cut short, corrupted, not readable by this user: ``error`` says
    which), its failures not known."""
    try:
        with fs.open_input_file(f"{path}/failed.parquet") as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            keys = ["task", "dataset", "model", "fold"]
            grids = grids if set(keys) <= set(names) else None
            if grids is None and "scenario" not in names:
                return pf.metadata.num_rows, 0, None
            table = pf.read(columns=(keys if grids is not None else []) + [c for c in ["scenario"] if c in names])
    except FileNotFoundError:
        return 0, 0, None
    except (OSError, pa.ArrowInvalid) as exc:
        if fs.get_file_info(f"{path}/failed.parquet").type != pafs.FileType.File:
            return 0, 0, None
        return None, None, exc
    rows = table.to_pylist()
    if grids is not None:
        rows = [r for r in rows if grid_name(r["task"], r["dataset"], r["model"], r["fold"]) in grids]
    trainings = sum(r.get("scenario") is None for r in rows)
    return trainings, len(rows) - trainings, None


def _every_training_failed(fs: pafs.FileSystem, path: str, grids: set[str]) -> dict[str, str]:
    """Of ``grids`` (of the configuration, without results), those whose every training ``failed.parquet`` records as
    failed, each with its first failure (:func:`~repeval.rundir.first_failures`); none when it cannot be read
    (:func:`_failed` says so)."""
    try:
        with fs.open_input_file(f"{path}/failed.parquet") as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            if not {"task", "dataset", "model"} <= set(names):
                return {}
            wanted = ["task", "dataset", "model", "fold", "probe", "seed", "scenario", "reason"]
            rows = pf.read(columns=[c for c in wanted if c in names]).to_pylist()
    except (OSError, pa.ArrowInvalid):
        return {}
    return first_failures(rows, grids)


def _failed_unreadable(exc: BaseException | None) -> str | None:
    """Why ``failed.parquet`` cannot be read (``exc``: :func:`_failed`'s error), with the fix: one cut short or
    corrupted is moved aside by the next command that records failures; one this user may not read (another user's)
    may be whole: its permissions are the fix. ``None``: it reads."""
    if exc is None:
        return None
    if isinstance(exc, PermissionError):
        return f"failed.parquet is unreadable (permission denied): its failures are not known (?); {damaged(exc, '')}"
    return (
        "failed.parquet is unreadable (cut short or corrupted): its failures are not known (?); delete it, or let the "
        "next `repeval run`, a `repeval train` that trains a grid (it records that grid's anew) or `repeval evaluate` "
        "move it aside"
    )


def _splits_unreadable(failures: list[tuple[str, Exception]]) -> str | None:
    """Why the run's saved splits (``splits/`` or some of its files) could not be read, with the fix; ``None``: they
    could (or there are none)."""
    if not failures:
        return None
    where, exc = failures[0]
    many = len(failures) > 1
    name = "splits/" + (where.rsplit("/", 1)[-1] if where.endswith(".parquet") else "")
    more = f" and {counted(len(failures) - 1, 'other file')}" if many else ""
    said = (
        may_not_read(many)
        if isinstance(exc, PermissionError)
        else "the next `repeval run` on the run writes the splits anew"
    )
    return (
        f"{name}{more} {'are' if many else 'is'} unreadable ({short_why(exc)}): the run's test set is not known; {said}"
    )


#: the state of a run whose last command, a stage before training, finished (``repeval embed``, ``repeval deform``)
_STAGE_DONE = {"embed": "embedded", "deform": "deformed"}


def _unlisted_why(folder: str, what: str, exc: OSError | None) -> str | None:
    """Why the run's ``folder`` could not be listed, what that leaves unknown and the fix (:func:`unlisted`);
    ``None``: it could."""
    return None if exc is None else unlisted(folder, what, exc)


def _entries(fs: pafs.FileSystem, path: str) -> tuple[list[pafs.FileInfo], list[tuple[str, OSError]]] | None:
    """What the local folder ``path`` holds: each entry that can be looked at, and the others' names with their
    errors (pyarrow's listing stops at the first it cannot: a symbolic link into another user's folder, ``tune ->
    /scratch/alice/tune``); ``None``: the folder itself cannot be listed (or it is not on the local disk)."""
    if not isinstance(fs, pafs.LocalFileSystem):
        return None
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return None
    found, failed = [], []
    for name in names:
        try:
            found.append(fs.get_file_info(f"{path}/{name}"))
        except OSError as exc:
            failed.append((name, exc))
    return found, failed


def _record(run_id: str, known: dict[str, Any]) -> dict[str, Any]:
    """A run's record (`repeval runs --json`: its keys, in their order), each key ``known`` lacks at its "not known"
    value: the one list of the keys, for a run listed (:func:`run_info`) and a run directory this user may not list
    (:func:`_unlisted`). A key not in it is refused, so that the two cannot drift apart (``runs_text`` reads every
    key of every record)."""
    record: dict[str, Any] = {
        "run": run_id,
        "state": "unreadable",
        "test_set": None,
        "splits_unreadable": None,
        "reason": None,
        "tasks": [],
        "models": [],
        "models_left_out": {},
        "grids_trained": 0,
        "groups_unreadable": None,
        "grids_untrained": [],
        "trains_untrained": None,
        "resubmit_untrained": None,
        "grids_failed": {},
        "trains_failed": None,
        "result_rows": None,
        "failed_trainings": None,
        "failed_cells": None,
        "failed_unreadable": None,
        "rows_not_evaluated": 0,
        "load_report_unreadable": None,
        "models_left_out_unreadable": None,
        "error_records": None,
        "error_records_command": None,
        "error_records_partitions_unread": [],
        "error_records_partial": None,
        "error_records_unread": None,
        "partial_audio": [],
        "summary_stale": None,
        "results_unreadable": None,
        "updated": None,
    }
    unknown = sorted(set(known) - set(record))
    if unknown:
        raise KeyError(f"not a key of a run's record: {', '.join(unknown)} (add it to repeval.report.runs._record)")
    return {**record, **known}


def _unlisted(run_id: str, exc: OSError) -> dict[str, Any]:
    """:func:`run_info` of a run directory this user may not list: nothing in it known, why said as its reason."""
    return _record(run_id, {"reason": _unlisted_why("the run directory", "nothing in it is known", exc)})


def run_info(
    fs: pafs.FileSystem, path: str, run_id: str, seen: dict[tuple[str, ...], Any] | None = None
) -> dict[str, Any] | None:
    """One run's summary; ``None`` for a folder that is not a run directory (no ``config.yaml``, ``results.parquet``
    or ``status.json``: a run copied without its config, which `repeval table` reads, is listed, its tasks and models
    unknown); a folder this user may not list (another user's) is listed, nothing in it known, with the fix.
    ``seen``: the embedding stores read for the runs before it, which it shares (:func:`list_runs`)."""
    try:
        top = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))  # not recursive: tune/ can be large
    except OSError as exc:  # it stopped the listing of every run (pyarrow's PermissionError)
        found = _entries(fs, path)  # one entry it cannot look at: the others are (what it is, is read below)
        if found is None:
            return _unlisted(run_id, exc)
        top = found[0]
    try:
        with fs.open_input_stream(f"{path}/config.yaml") as fh:
            cfg = yaml.safe_load(fh.read().decode()) or {}
    except (FileNotFoundError, OSError):
        marks = fs.get_file_info([f"{path}/results.parquet", f"{path}/{STATUS}"])
        if all(i.type != pafs.FileType.File for i in marks):
            return None
        cfg = {}
    except yaml.YAMLError:
        cfg = {}
    # read once: its rows, its key for summary_stale, its config
    footer, cut = _footer(fs, f"{path}/results.parquet")
    recorded = ((footer.metadata or {}) if footer is not None else {}).get(CONFIG_KEY)
    if recorded is not None:  # the results' tasks and models, though a later command rewrote config.yaml
        try:
            cfg = yaml.safe_load(recorded.decode()) or {}
        except yaml.YAMLError:
            pass
    if not isinstance(cfg, dict):
        cfg = {}
    exps = cfg.get("experiments") or []
    tasks = sorted({str((e.get("task") or {}).get("name")) for e in exps if isinstance(e, dict)})
    models = sorted(
        {
            str(m.get("id") if isinstance(m, dict) else m)
            for e in exps
            if isinstance(e, dict)
            for m in (e.get("embedding_models") or [])
        }
    )
    try:
        in_groups, groups_error = fs.get_file_info(pafs.FileSelector(f"{path}/groups", allow_not_found=True)), None
    except OSError as exc:  # another user's groups/: its grids not counted, said (it stopped `repeval runs`)
        in_groups, groups_error = [], exc
    groups = [i for i in in_groups if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]
    files = [i for i in top if i.type == pafs.FileType.File] + groups
    results = int(footer.num_rows) if footer is not None else None
    failed, failed_cells, failed_error = _failed(fs, path, recorded_grids(footer))
    updated = max((i.mtime.timestamp() for i in files if i.mtime is not None), default=None)
    untrained = recorded_untrained(footer)  # grids of the configuration the results lack: not trained when evaluated
    # of those, the grids trained whose every training failed: not "partly trained", which `repeval run` would finish
    every_failed = _every_training_failed(fs, path, set(untrained)) if untrained else {}
    untrained = [g for g in untrained if g not in every_failed]
    state = "evaluated" if results is not None else (f"{counted(len(groups), 'grid')} trained" if groups else "started")
    if results is not None and untrained:
        state = "partly trained"
    elif results is not None and every_failed:
        state = f"evaluated, {counted(len(every_failed), 'grid')} failed"
    status, status_refused = json_read(fs, path, STATUS)
    unreadable = None
    if cut is not None:  # cut short or corrupted (a copy, a full disk), or another user's: its rows are not counted
        state = "results unreadable"
        unreadable = (
            f"results.parquet is unreadable ({parquet_error(cut)}): {damaged(cut, evaluate_fix(fs, path, status))}"
        )
    if state == "started" and status.get("state") == "finished" and status.get("command") in _STAGE_DONE:
        state = _STAGE_DONE[status["command"]]  # `repeval embed`/`deform` finished: not a run still starting
    failed_with = None
    gone = gone_process(status)
    if gone is not None:  # started, and its driver on this host is gone (kill -9): not running, whatever it left
        state = f"stopped ({status.get('command') or '?'})"
        failed_with = gone
    if status.get("state") in ("failed", "interrupted"):  # its last command stopped (a later success overwrites it)
        state = f"{status['state']} ({status.get('command') or '?'})"
        failed_with = str(status.get("reason") or "")
    if status_refused is not None:  # read as none, a run that failed was listed as started, its reason untold
        why, fix = refusal(status_refused)
        state, failed_with = (
            "state unreadable",
            f"{STATUS} is unreadable ({why}): its last command's state is not known — {fix}",
        )
    split_failures: list[tuple[str, Exception]] = []
    left_out, left_out_refused = models_left_out_of(fs, path)
    not_evaluated, load_report_refused = rows_not_evaluated_of(fs, path)
    info = {  # its keys are _record's
        "run": run_id,
        "state": state,
        #: a short digest of the test tracks and labels of its saved splits (``None``: none saved): runs with the same
        #: one were scored on the same test sets, and `repeval report` ranks them together
        "test_set": digest_label(run_split_digests(fs, path, split_failures)),
        #: why saved splits could not be read (another user's, cut short): the test set shown is not the run's whole
        "splits_unreadable": _splits_unreadable(split_failures),
        "reason": failed_with,
        "tasks": tasks,
        "models": models,
        #: the embedding models its last attempt left out (``models_left_out.json``), each with why and the fix
        "models_left_out": left_out,
        #: why ``models_left_out.json`` cannot be read (this user may not), with the fix; ``None``: read, or none
        "models_left_out_unreadable": left_out_refused,
        "grids_trained": len(groups),
        #: why ``groups/`` could not be listed (another user's): its trained grids are not counted
        "groups_unreadable": _unlisted_why("groups/", "its trained grids are not counted", groups_error),
        #: the configuration's grids its results lack, not trained when it was evaluated (an interrupted ``train``)
        "grids_untrained": untrained,
        #: the command line that trains them: ``repeval run`` with the configuration and options of the run's last
        #: command (status.json's ``resume``); ``None`` when it is not recorded
        "trains_untrained": command_line(status, "run") if untrained else None,
        #: for a run a ``ray job submit`` job started, the job that trains them (``None``: none recorded)
        "resubmit_untrained": job_resubmit(status, "run") if untrained else None,
        #: the configuration's grids trained whose every training failed (no probe of them trained, the results lack
        #: them), each with its first failure (``probe M1, seed 0: <reason>``; failed.parquet has each)
        "grids_failed": every_failed,
        #: the command line that trains them again once the configuration changes what the reason names
        "trains_failed": command_line(status, "run") if every_failed else None,
        "result_rows": results,
        "failed_trainings": failed,
        "failed_cells": failed_cells,
        #: why ``failed.parquet`` cannot be read (cut short or corrupted, or not readable by this user), with the fix
        "failed_unreadable": _failed_unreadable(failed_error),
        #: ``None`` when ``load_report.json`` may not be read (``load_report_unreadable`` says why)
        "rows_not_evaluated": not_evaluated,
        "load_report_unreadable": load_report_refused,
        #: the error records of its partitions, as the report counts them (of a run with readable results)
        **(run_error_records(cfg, {} if seen is None else seen) if footer is not None else {}),
        #: the test sets scored on rows embedded from partial audio (audio_note), as its evaluation recorded them
        "partial_audio": recorded_partial(footer.metadata if footer is not None else None) or [],
        #: why ``summary.parquet`` is not the summary of ``results.parquet`` (``None``: it is, or no results)
        "summary_stale": summary_mismatch(fs, path, footer, status) if footer is not None else None,
        #: why ``results.parquet`` cannot be read (cut short, corrupted), with the command that writes it anew
        "results_unreadable": unreadable,
        "updated": updated,
    }
    return _record(run_id, info)


def list_runs(runs_dir: str) -> list[dict[str, Any]]:
    """Every run directory under ``runs_dir``, sorted by run id — an entry this user may not look at (a symbolic link
    into another user's folder) as a run nothing is known of; ``FileNotFoundError`` naming it if it is absent, a
    ``ValueError`` naming it and the fix if this user may not list it (another user's: not a full disk's fix)."""
    from repeval.cloud_reach import head_cause

    fs, path = filesystem_of(runs_dir)
    try:
        kind = fs.get_file_info(path).type
    except OSError as exc:
        raise head_cause(fs, path, exc) from None  # S3's clock or token, which a HEAD's answer hides
    if kind != pafs.FileType.Directory:
        raise FileNotFoundError(f"no runs directory at {runs_dir} (run.runs_dir / --runs-dir of your runs)")
    unseen: list[tuple[str, OSError]] = []
    try:
        entries = fs.get_file_info(pafs.FileSelector(path))
    except PermissionError:
        found = _entries(fs, path)  # a run it cannot look at (a symbolic link to another user's): the others are
        if found is None:
            raise ValueError(
                f"{runs_dir} cannot be read (permission denied): this user may not list it — check its owner and "
                "permissions (`ls -ld`), or list a runs directory of your own"
            ) from None
        entries, unseen = found
    out = [_unlisted(name, exc) for name, exc in unseen]
    seen: dict[tuple[str, ...], Any] = {}  # the runs' stores, each opened once
    for entry in sorted(entries, key=lambda i: i.base_name):
        if entry.type == pafs.FileType.Directory:
            info = run_info(fs, entry.path, entry.base_name, seen)
            if info is not None:
                out.append(info)
    return sorted(out, key=lambda i: i["run"])


def _run_itself(runs_dir: str) -> dict[str, Any] | None:
    """The run ``runs_dir`` is, when it is a run directory rather than a runs directory (``repeval runs
    runs/quickstart``); ``None`` otherwise."""
    fs, path = filesystem_of(runs_dir)
    return run_info(fs, path, path.rstrip("/").rsplit("/", 1)[-1])


def _trains_untrained(info: dict[str, Any]) -> str:
    """What trains a run's untrained grids and evaluates it again: its ``repeval run`` line — after submitting the job
    again for a run a ``ray job submit`` job started —, or, when the line saying why it stopped names that command
    already (an interrupted ``repeval run``), resuming it as said there."""
    line = info["trains_untrained"]
    named = [f"`{c}`" for c in (line, info["resubmit_untrained"]) if c]
    if named and all(c in (info["reason"] or "") for c in named):
        return "resuming it as said above trains them and evaluates again"
    said = (
        f"`{line}`"
        if line
        else "`repeval run CONFIG` with the run's configuration (and --run-id, --store, --runs-dir as it had them)"
    )
    if info["resubmit_untrained"]:
        return (
            f"submitting the job again, `{info['resubmit_untrained']}`, or running {said} from the checkout trains "
            "them and evaluates again (finished work is kept)"
        )
    return f"{said} trains them and evaluates again (finished work is kept)"


#: the keys of a run's record saying a run file this user may not read (:func:`repeval.report.run_files.refused_line`)
_REFUSED_FILES = ("load_report_unreadable", "models_left_out_unreadable")


def runs_text(runs_dir: str, as_json: bool = False) -> str:
    """``repeval runs``: the runs under ``runs_dir`` (as JSON with ``as_json``); a run directory given in its place is
    listed alone, with the command that lists the runs beside it."""
    infos = list_runs(runs_dir)
    itself = _run_itself(runs_dir) if not infos else None
    if itself is not None:
        infos = [itself]
    if as_json:
        return json.dumps(infos, indent=1)
    if not infos:
        return (
            f"{runs_dir}: no runs (no folder in it holds a run's config.yaml, status.json or results.parquet; "
            "`repeval run CONFIG --runs-dir DIR` writes runs into DIR, `runs` by default)"
        )

    head = ("run", "state", "tasks", "models", "test set", "result rows", "failed trainings", "failed cells", "updated")
    table = [head] + [
        (
            i["run"],
            i["state"],
            ", ".join(i["tasks"]) or "-",
            ", ".join(f"{m} (left out)" if m in i["models_left_out"] else m for m in i["models"]) or "-",
            i["test_set"] or "-",
            "-" if i["result_rows"] is None else str(i["result_rows"]),
            "?" if i["failed_trainings"] is None else str(i["failed_trainings"]),
            "?" if i["failed_cells"] is None else str(i["failed_cells"]),
            utc_time(i["updated"]),
        )
        for i in infos
    ]
    lines = aligned(table)
    lines += [f"{i['run']}: {i['reason']}" for i in infos if i["reason"]]
    lines += [f"{i['run']}: {i['results_unreadable']}" for i in infos if i["results_unreadable"]]
    lines += [f"{i['run']}: {i['summary_stale']}" for i in infos if i["summary_stale"]]
    lines += [f"{i['run']}: {i['failed_unreadable']}" for i in infos if i["failed_unreadable"]]
    lines += [f"{i['run']}: {i['splits_unreadable']}" for i in infos if i["splits_unreadable"]]
    lines += [f"{i['run']}: {i['groups_unreadable']}" for i in infos if i["groups_unreadable"]]
    lines += [f"{i['run']}: {i[key]}" for i in infos for key in _REFUSED_FILES if i[key]]
    lines += [
        f"{i['run']}: its results lack {counted(len(i['grids_untrained']), 'probe grid')} of its configuration, "
        f"not trained when it was evaluated ({', '.join(i['grids_untrained'][:5])}{', …' if len(i['grids_untrained']) > 5 else ''}): "
        + _trains_untrained(i)
        for i in infos
        if i["grids_untrained"]
    ]
    lines += [
        f"{i['run']}: "
        + every_training_failed(
            i["grids_failed"],
            "its",
            f"`{i['trains_failed']}`" if i["trains_failed"] else "`repeval run CONFIG` with the run's configuration",
        )
        for i in infos
        if i["grids_failed"]
    ]
    lines += [
        f"{i['run']}: {counted(i['rows_not_evaluated'], 'dataset row')} dropped at load, not evaluated ({LOAD_REPORT})"
        for i in infos
        if i["rows_not_evaluated"]
    ]
    lines += [
        f"{i['run']}: {counted(len(i['models_left_out']), 'embedding model')} left out (not trained, tested or "
        f"reported): " + "; ".join(i["models_left_out"].values())
        for i in infos
        if i["models_left_out"]
    ]
    lines += [error_records_line(i) for i in infos if i["error_records"] or i["error_records_partial"]]
    unread: dict[str, list[str]] = {}
    for i in infos:
        if i["error_records_unread"]:
            unread.setdefault(i["error_records_unread"], []).append(i["run"])
    lines += [  # said, not left silent: a user reads no line as no error record
        f"{', '.join(names) if len(names) < 4 else f'{names[0]} and {len(names) - 1} other runs'}: error records not "
        f"counted — {why}"
        for why, names in unread.items()
    ]
    lines += [
        f"{i['run']}: "
        + "; ".join(partial_text(x) for x in i["partial_audio"][:3])
        + ("; …" if len(i["partial_audio"]) > 3 else "")
        + " (`repeval report` notes them per task)"
        for i in infos
        if i["partial_audio"]
    ]
    if any(i["failed_trainings"] or i["failed_cells"] for i in infos):
        lines.append(
            "failed trainings: probe trainings (a configuration and seed) that raised or diverged; failed cells: test "
            "cells (a trained probe, seed and test set) whose scores were not finite — failed.parquet says why"
        )
    if len({i["test_set"] for i in infos if i["test_set"]}) > 1:
        lines.append(
            "test set: a digest of the run's saved test splits (tracks and labels); runs with another one were scored "
            "on other test sets, and `repeval report` and `repeval table` do not rank them against each other"
        )
    if itself is not None:
        parent = folder_of(runs_dir)
        lines.append(
            f"{runs_dir} is a run directory, listed alone; `repeval runs {quote(parent)}` lists the runs beside it"
        )
    else:
        # the run's directory, not its id: `repeval table ID` looked for ./ID ("no results.parquet in ./quickstart")
        one = quote(in_folder(runs_dir, infos[0]["run"] if len(infos) == 1 else "RUN"))
        shown = "show it" if len(infos) == 1 else "show one"
        if len(infos) == 1 and infos[0]["result_rows"] is None and not infos[0]["results_unreadable"]:
            shown = (
                "show it once its test stage has written results (it has none yet)"  # they said "no results.parquet"
            )
        lines.append(
            # "3 runs in runs/": a relative folder said as one ("3 runs — runs" read as a word repeated)
            f"{counted(len(infos), 'run')} in {in_folder(runs_dir, '')}; `repeval table {one}` / `repeval report {one}` "
            f"{shown}"
        )
    return "\n".join(lines)
