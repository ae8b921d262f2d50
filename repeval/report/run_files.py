"""A run directory's files the report reads besides its results, read tolerantly: ``config.yaml`` — the one the
results' evaluation recorded when it was rewritten since, or cut short — and Parquet files whose loss leaves part of
the report out (a history, ``failed.parquet``), named in a warning when unreadable; and, for ``repeval runs``, the
JSON files a run keeps of its datasets' loads and the models it left out, told from none when this user may not read
them (:func:`refused_line`)."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from repeval.cloud_reach import refusal, refused
from repeval.run.files import damaged, may_not_read, parquet_error
from repeval.run.load_records import read_records
from repeval.run_open import refused_files, refused_said
from repeval.rundir import LOAD_REPORT, json_read, staged_from
from repeval.words import counted

log = logging.getLogger("repeval.report.results")  # the warnings of the results it reads beside


def results_config(run_dir: Path, notes: list[str] | None = None) -> str:
    """``run_dir``'s ``config.yaml``, with the experiments its results are of: those their evaluation recorded in
    ``results.parquet`` (:data:`repeval.rundir.CONFIG_KEY`) when a later command that stopped before evaluating, with
    another configuration (refused for a store conflict, say), has rewritten them — said in a warning. Its ``run``
    section stays ``config.yaml``'s: where the store is (edited by hand after moving it, say). An unreadable
    ``config.yaml`` is said in ``notes`` too (:func:`say_unread`)."""
    from repeval.rundir import CONFIG_KEY

    config_path = run_dir / "config.yaml"
    denied: PermissionError | None = None
    refused = refused_files(run_dir).get("config.yaml")  # a bucket's key these credentials may not read: not staged
    try:
        text = config_path.read_text(errors="replace") if config_path.is_file() else ""
    except PermissionError as exc:  # another user's file: its content may be whole, its permissions are the fix
        text, denied = "", exc
    try:
        recorded = (pq.read_schema(run_dir / "results.parquet").metadata or {}).get(CONFIG_KEY)
        then = yaml.safe_load(recorded.decode()) if recorded is not None else None
    except (OSError, pa.ArrowInvalid, yaml.YAMLError, UnicodeDecodeError):
        then = None
        if denied is None and refused is None:
            return text if yaml_reads(text) else ""
    if denied is not None or refused is not None or not yaml_reads(text):  # the one the evaluation recorded instead
        uses = "the configuration results.parquet recorded" if isinstance(then, dict) else "no configuration"
        if refused is not None:
            said = refused_said(refused, f"the report uses {uses}")
        else:
            why, fix = (
                ("permission denied", damaged(denied, "")) if denied is not None
                else ("cut short or corrupted", "`repeval run` on the run writes it anew")
            )  # fmt: skip
            said = f"{config_path} is unreadable ({why}); the report uses {uses}; {fix}"
        say_unread(notes, said)
        return yaml.safe_dump(then, sort_keys=False) if isinstance(then, dict) else ""
    now = yaml.safe_load(text) if text else {}
    if not isinstance(then, dict) or not isinstance(now, dict) or then.get("experiments") == now.get("experiments"):
        return text
    log.warning(
        "%s: config.yaml was rewritten by a later command that did not evaluate (see `repeval runs`); the results are "
        "of the experiments their evaluation recorded, which the report shows",
        staged_from(run_dir) or run_dir,  # a bucket's run by its URI, not the temporary folder staging it
    )
    return yaml.safe_dump({**now, "experiments": then.get("experiments")}, sort_keys=False)


def yaml_reads(text: str) -> bool:
    """Whether ``text`` parses as YAML (an empty text does)."""
    try:
        yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    return True


def read_parquet_or_warn(path: Path, what: str, notes: list[str] | None = None) -> pd.DataFrame | None:
    """The Parquet file at ``path``; ``None``, with a warning saying ``what`` the report leaves out, when it is
    unreadable (cut short or corrupted, or not readable by this user) — in ``notes`` too (:attr:`Run.unread`)."""
    try:
        return pd.read_parquet(path)
    except (OSError, pa.ArrowInvalid) as exc:
        said = damaged(exc, what)
        said = f"{what}; {said}" if isinstance(exc, PermissionError) else said
        say_unread(notes, f"{path} is unreadable ({parquet_error(exc)}): {said}")
        return None


#: the fix of a file a probe grid's training writes (``probes/``, ``confusion/``, ``history/``) cut short
RETRAIN_FIX = (
    "it is written when its probe grid is trained: delete that grid's file under groups/ and rerun `repeval run`"
)


def say_unread(notes: list[str] | None, message: str) -> None:
    """Say ``message`` — a run file the report cannot read, what it leaves out, the fix — in a warning, and in the
    report's notes when ``notes`` (the run's :attr:`~repeval.report.results.Run.unread`) is given."""
    log.warning("%s", message)
    if notes is not None:
        notes.append(message)


def short_why(exc: BaseException) -> str:
    """Why a run file or folder could not be read, in two or three words: ``permission denied``, the system's error
    (a disk's; a folder that cannot be listed), or ``cut short or corrupted`` (a file)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    return "cut short or corrupted"


def unlisted(folder: str | Path, what: str, exc: OSError) -> str:
    """Why the run's ``folder`` cannot be listed (the system's words for its error: pyarrow's repeat the path),
    ``what`` that leaves out and the fix: its owner and permissions (another user's folder), or a bucket's credentials
    (:func:`repeval.cloud_reach.refusal`), a file in its place moved aside, a symbolic link that loops pointed at a
    folder, or else the disk it is on."""
    why = os.strerror(exc.errno) if exc.errno else parquet_error(exc)
    if refused(exc):  # another user's folder, or a bucket's prefix these credentials may not list
        why, fix = refusal(exc)
    elif isinstance(exc, NotADirectoryError):
        fix = "it is a file, not a folder: move it aside"
    elif exc.errno == errno.ELOOP:
        fix = "a symbolic link on its path leads round in a loop: point it at a folder (`ls -l` shows where it leads)"
    else:
        fix = "check the disk it is on"
    return f"{folder} cannot be listed ({why[:1].lower() + why[1:]}): {what}; {fix}"


def unread_files(failures: list[tuple[Path, BaseException]], what: str, fix: str) -> str:
    """One line for the run files of one folder that could not be read (``failures``: each with its error): the
    first named (and how many more), why, ``what`` the report leaves out (its ``{its}`` said ``its`` or ``their``, ``{s}`` a plural's),
    and the fix — their permissions for a ``PermissionError`` (the content may be whole), else ``fix`` (what writes
    them anew)."""
    path, exc = failures[0]
    many = len(failures) > 1
    what = what.replace("{its}", "their" if many else "its").replace("{s}", "s" if many else "")
    more = f" and {counted(len(failures) - 1, 'other file')} in {path.parent}" if many else ""
    said = may_not_read(many) if isinstance(exc, PermissionError) else f"cut short or corrupted; {fix}"
    return f"{path}{more} {'are' if many else 'is'} unreadable ({parquet_error(exc)}): {what}; {said}"


def listed(
    folder: Path, suffix: str, what: str, notes: list[str] | None, failures: list[tuple[Path, OSError]] | None = None
) -> list[Path]:
    """The files of the run's ``folder`` named ``*<suffix>`` (not hidden: a ``.<name>.tmp`` being written), sorted;
    ``[]`` when it is absent — or, said in ``notes`` with ``what`` the report leaves out (and the folder with its error
    added to ``failures``), when it cannot be listed (another user's folder)."""
    try:
        return sorted(p for p in folder.iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        if isinstance(exc, NotADirectoryError) and not folder.is_file():  # a file on the path above it: absent
            return []
        if failures is not None:
            failures.append((folder, exc))
        if isinstance(exc, PermissionError):
            say_unread(notes, unread_files([(folder, exc)], what, ""))
        else:  # not a file cut short: the folder itself, or the disk under it
            say_unread(notes, unlisted(folder, what, exc))
        return []


def models_left_out_of(fs: pafs.FileSystem, path: str) -> tuple[dict[str, str], str | None]:
    """The embedding models the run left out (``models_left_out.json``: :func:`~repeval.run.left_out.left_out_models`,
    read on ``fs``, a bucket too) → why; and, when this user may not read the file, why with the fix
    (:func:`refused_line`) — read as none, a run that left models out looked like any other."""
    from repeval.run.left_out import LEFT_OUT, left_out_of

    body, refused = json_read(fs, path, LEFT_OUT)
    return left_out_of(body), refused_line(LEFT_OUT, "the embedding models its last attempt left out", refused)


def rows_not_evaluated_of(fs: pafs.FileSystem, path: str) -> tuple[int | None, str | None]:
    """Rows the run's datasets dropped at load that ``--strict`` counts as not evaluated: the sum over the records of
    ``load_report.json`` (:func:`repeval.run.load_records.read_records`), each dataset's loads that found the same
    once, as the run said them and ``--strict`` counts them — one missing file of a catalog three tasks read is one
    row, not 3. ``None`` and why, with the fix, when this user may not read the file (:func:`refused_line`): it was
    counted as 0, the rows dropped untold."""
    body, refused = json_read(fs, path, LOAD_REPORT)
    if refused is not None:
        return None, refused_line(LOAD_REPORT, "the dataset rows dropped at load", refused)
    return sum(r.not_evaluated for r in read_records(body)), None


def refused_line(name: str, what: str, exc: OSError | None) -> str | None:
    """``NAME is unreadable (access denied): WHAT are not known — FIX`` of a run file this user may not read (another
    user's, a bucket's key refused: ``exc``), as ``status.json``'s is said; ``None`` without ``exc``."""
    if exc is None:
        return None
    why, fix = refusal(exc)
    return f"{name} is unreadable ({why}): {what} are not known — {fix}"
