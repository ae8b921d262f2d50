"""A run directory given whole to `repeval table|report` (:func:`open_run`): a bucket's is pulled into a local
staging copy, the files these credentials may not read left out of it and kept (:func:`refused_files`) for the
readers to say so — not as missing (a `repeval evaluate` to run again, a configuration "rewritten")."""

from __future__ import annotations

from pathlib import Path

from repeval.rundir import TUNE_DIR, RunLocation, is_uri

#: each staging directory of a run given whole (:func:`open_run`) → its files this user may not read, left out of it:
#: path in the run → (the file's URI, why, the fix)
_REFUSED: dict[Path, dict[str, tuple[str, str, str]]] = {}


def refused_files(run_dir: Path) -> dict[str, tuple[str, str, str]]:
    """The files of the bucket's run staged at ``run_dir`` (:func:`open_run`) these credentials may not read: path in
    the run → (its URI, why, the fix); none for a run used in place."""
    return _REFUSED.get(Path(run_dir).resolve(), {})


def refused_said(refused: tuple[str, str, str], then: str = "") -> str:
    """What to say of a file the bucket refused (:func:`refused_files`'s): its URI, why, ``then`` (what is left out,
    what stands in for it) and the fix."""
    uri, why, fix = refused
    return f"{uri} is unreadable ({why}): {f'{then} — ' if then else ''}{fix}"


def not_read(name: str) -> bool:
    """Whether `repeval table|report` leave the run's file ``name`` (its path in the run) unread: one the report
    writes (``report.html``, its figures under ``plots/``), a grid's results and records under ``groups/``
    (``results.parquet`` holds them), ``environment.json`` — and ``status.json``, read only for the command line it
    records, the fix named of a run without results or of results or a summary to write anew (unreadable, the fix
    says `repeval evaluate` on the run): nothing the report or the table shows is left out without it."""
    return name in ("report.html", "environment.json", "status.json") or name.startswith(("plots/", "groups/"))


#: the folders of a run `repeval table|report` never read, not pulled from a bucket: a grid's results and records
#: (``groups/``: ``results.parquet`` holds them), an earlier report's figures (``plots/``: drawn anew) and Ray Tune's
#: experiments (``tune/``)
UNPULLED_FOLDERS = ("groups", "plots", TUNE_DIR)
#: the files of a run `repeval table|report` never read, not pulled from a bucket: an earlier report (written anew) and
#: the run's environment
UNPULLED_FILES = ("report.html", "environment.json")


def unpulled(rel: str) -> bool:
    """Whether `repeval table|report` leave the file or folder ``rel`` (its path in the run, a folder's ending in
    ``/``) of a bucket's run in the bucket (:data:`UNPULLED_FOLDERS`, :data:`UNPULLED_FILES`): the run's own, and
    each run's of a runs directory given in place of a run (its runs are named from their ``results.parquet`` and
    ``status.json``). ``status.json`` is pulled: the command line it records is the fix named of a summary or
    results to write anew."""
    parts = rel.rstrip("/").split("/")
    names = UNPULLED_FOLDERS if rel.endswith("/") else UNPULLED_FILES
    return len(parts) <= 2 and parts[-1] in names


def open_run(run: str) -> RunLocation:
    """A run directory given whole — ``runs/r1``, ``s3://bucket/runs/r1?endpoint_override=…`` — as ``repeval
    table|report`` take it: a remote one is pulled into a local staging copy, all but what they never read
    (:func:`unpulled`)."""
    if not is_uri(run):
        p = Path(run).resolve()
        return RunLocation.open(str(p.parent), p.name)
    import shlex

    base, sep, query = run.partition("?")
    runs_dir, _, run_id = base.rstrip("/").rpartition("/")
    if not run_id or runs_dir.endswith(":/"):
        raise ValueError(f"{run}: give a run directory, <runs_dir>/<run_id>, not a bucket")
    loc = RunLocation.open(f"{runs_dir}{sep}{query}", run_id, pull=False)
    refused = _REFUSED.setdefault(loc.local.resolve(), {})
    left: list[str] = []
    loc.pull(refused, skip=unpulled, skipped=left)
    if loc.staged and not any(loc.local.iterdir()) and not refused and not left:
        raise FileNotFoundError(
            f"no run directory at {loc.display} (nothing there): check the bucket and the run id; `repeval runs "
            f"{shlex.quote(runs_dir + sep + query)}` lists the runs there"
        )
    return loc
