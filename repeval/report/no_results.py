"""What to pass instead of a run directory without results (``repeval table|report RUN``): it does not exist (a
mistyped run id: ``repeval runs`` of its folder), it is a runs directory or a file of a run, or its last command
stopped before the test stage (the command line that finishes it)."""

from __future__ import annotations

import re
from pathlib import Path

from repeval.run.status import command_line
from repeval.run_open import refused_files, refused_said
from repeval.rundir import join_uri, staged_from


def results_file(run_dir: Path) -> Path:
    """The run's ``results.parquet``; a ``ValueError`` naming what to pass instead when there is none
    (:func:`no_results_hint`), or naming the run directory and its permissions when this user may not look into it
    (another user's) — `repeval table` said the ``PermissionError`` of ``results.parquet`` with the fix of a write,
    "check that run.store and run.runs_dir are writable directories with free space"."""
    path = run_dir / "results.parquet"
    shown = staged_from(run_dir) or run_dir  # a bucket's run by its URI, not the temporary folder staging it
    try:
        if path.is_file():
            return path
    except PermissionError:
        raise ValueError(
            f"{shown} cannot be read (permission denied): this user may not read it: check the owner and permissions "
            "of it and of the folders above it (`ls -ld`)"
        ) from None
    denied = refused_files(run_dir).get(path.name)  # a bucket's key these credentials may not read
    raise ValueError(refused_said(denied) if denied else f"no results.parquet in {shown}{no_results_hint(run_dir)}")


def _runs_there(runs_dir: Path) -> str:
    """Where to find a run's directory when one given does not exist: ``repeval runs`` of its folder, when that holds
    a run (a mistyped run id), else of a runs directory to give — of a folder without one (the current folder, the
    home folder) it says "no runs"."""
    import shlex

    from repeval.run.status import STATUS

    marks = ("results.parquet", STATUS, "config.yaml")
    if runs_dir.is_dir() and any(p.is_dir() and any((p / m).is_file() for m in marks) for p in runs_dir.iterdir()):
        return f"; `repeval runs {shlex.quote(str(runs_dir))}` lists the runs there"
    return "; `repeval runs DIR` lists the runs of a runs directory"


def no_results_hint(run_dir: Path) -> str:
    """Why a directory has no results and what to pass instead: it does not exist; it is a runs directory (its runs
    named); or it is a run whose last command stopped before the test stage (its state, from ``status.json``)."""
    import json
    import shlex

    from repeval.ray_cluster import job_resubmit
    from repeval.run.status import STATUS

    usual = ": pass a run directory such as runs/<run_id> whose `repeval run` finished its test stage"
    if not run_dir.exists():
        beside = run_dir.parent / "runs" / run_dir.name  # a run id given for its directory (`repeval table ID`)
        if (beside / "results.parquet").is_file():
            return f" (the directory does not exist): pass the run's directory, {beside}"
        return f" (the directory does not exist){usual}{_runs_there(run_dir.parent)}"
    if not run_dir.is_dir():
        if (run_dir.parent / "results.parquet").is_file() or (run_dir.parent / STATUS).is_file():
            return f": {run_dir.name} is a file of a run; pass the run's directory, {run_dir.parent}"
        return usual
    runs = sorted(p.name for p in run_dir.iterdir() if (p / "results.parquet").is_file() or (p / STATUS).is_file())
    if runs and not (run_dir / STATUS).is_file():
        remote = staged_from(run_dir)  # a bucket's, staged locally: its URI, not the temporary folder
        where = [join_uri(remote, r) if remote else str(run_dir / r) for r in runs[:5]]
        shown = ", ".join(where) + (", …" if len(runs) > 5 else "")
        listed = shlex.quote(remote or str(run_dir))
        return f": it is a runs directory; pass one of its runs ({shown}); `repeval runs {listed}` lists them"
    try:
        status = json.loads((run_dir / STATUS).read_text())
    except (OSError, ValueError):
        return usual
    if not isinstance(status, dict) or status.get("state") not in ("interrupted", "failed", "started"):
        return usual
    said = {"started": "is running or was killed", "interrupted": "was interrupted", "failed": "failed"}
    reason = str(status.get("reason") or "")
    # an interruption's reason names the command line that resumes the run (`repeval run CONFIG --run-id …`), or for
    # a job how to submit it again: said below, once
    resume = re.match(r"(.*?); `(repeval [a-z-]+ .*)` resumes it", reason)
    reason = resume.group(1) if resume else re.split(r"; (?:rerun it|submit the job again)", reason)[0]
    reason = f" ({reason})" if reason else ""
    # the run's `repeval run` line: from the command line status.json records (a failure's too), else the reason's
    line = command_line(status, "run") or (
        re.sub(r"^repeval [a-z-]+ ", "repeval run ", resume.group(2)) if resume else None
    )
    how = (
        f"`{line}` finishes it"
        if line
        else "run `repeval run CONFIG` with the run's configuration (and --run-id, --runs-dir if it had them) to "
        "finish it"
    )
    submit = job_resubmit(status, "run")
    if submit:  # a run a `ray job submit` job started: submitted again, as a job
        how = f"submit the job again to finish it: `{submit}`" + (
            f", or run `{line}` from the checkout" if line else ""
        )
    return (
        f": its last command, `repeval {status.get('command')}`, {said[status['state']]}{reason} before the test "
        f"stage wrote results; {how} — finished work is kept"
    )
