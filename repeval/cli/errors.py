"""How the ``repeval`` commands fail: a failure said in one line with its fix and its root cause (:func:`_fail`,
:func:`_guard`; a traceback only with ``--debug``), its reason as ``status.json`` records it (:func:`_reason`), what to
check when storage fails (:func:`_storage_hint`) and how to resume an interrupted command (:func:`_resume_hint`)."""

from __future__ import annotations

import traceback
from typing import Any

import typer

from repeval.cloud_reach import bucket_error, forget_limits
from repeval.config import ConfigError
from repeval.pipeline.stream_watch import ClusterLost
from repeval.run.left_out import LEFT_OUT_EXIT_STATUS, ModelsLeftOut
from repeval.uri_text import shown

#: the command's state: ``debug`` set by the ``repeval`` callback (``--debug``: tracebacks with the one-line errors);
#: ``resume``, ``job`` and ``embedded`` by the run context (:func:`repeval.cli.common._stage`); ``script`` by a job's
#: entrypoint
_state: dict[str, Any] = {"debug": False}


def _fail(exc: BaseException, code: int = 2, fix: str = "") -> None:
    if _state["debug"]:
        traceback.print_exception(exc)
    # a URI as the user wrote it (s3://b/my folder/m.csv), not as pyarrow parses it (my%20folder)
    typer.secho(f"error: {shown(_with_root(exc, str(exc)))}{fix}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _root(exc: BaseException) -> tuple[BaseException, str] | None:
    """The first exception of ``exc``'s chain — the one the chain started from — and how the next one came of it
    (``caused by``: raised from it; ``raised while handling``: while it was being handled, e.g. a cleanup that failed
    too); ``None`` when ``exc`` is its own (or its chain was cut: ``raise … from None``)."""
    found, seen = None, {id(exc)}
    while True:
        cause = exc.__cause__
        nxt = cause if cause is not None else (None if exc.__suppress_context__ else exc.__context__)
        if nxt is None or id(nxt) in seen:
            return found
        seen.add(id(nxt))
        found = nxt, "caused by" if cause is not None else "raised while handling"
        exc = nxt


def _with_root(exc: BaseException, line: str) -> str:
    """``line`` (what ``exc`` says) and, when ``exc`` came of another exception, that one, in brief: the one-line
    error names the root cause, not only the last exception (the whole chain: --debug, and the logs)."""
    found = _root(exc)
    if found is None:
        return line
    root, how = found
    said = (str(root).strip().splitlines() or [""])[0]
    if said and said in line:  # the message already says it (``raise ValueError(f"...: {exc}") from exc``)
        return line
    said = said if len(said) <= 200 else said[:197] + "..."
    return f"{line} ({how} {type(root).__name__}{': ' + said if said else ''})"


def _terminated(exc: BaseException) -> bool:
    """Whether ``exc`` is a SIGTERM stopping the command (:func:`repeval.ray_signals.exit_on_sigterm`)."""
    from repeval.ray_signals import sigterm_received

    return isinstance(exc, SystemExit) and sigterm_received()


def _reason(exc: BaseException) -> str:
    """A failure in one line, for ``status.json``: the message's first line (what ``_fail`` prints), and the root
    cause when it came of another exception (:func:`_with_root`)."""
    if isinstance(exc, typer.Exit):
        return f"stopped with exit status {exc.exit_code}" + (
            " (--strict: tracks not evaluated)" if exc.exit_code == 3 else ""
        )
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    first = first if len(first) <= 500 else first[:497] + "..."
    if isinstance(exc, EOFError):  # what the terminal said (:func:`_guard`), fix included
        return _cut_file(exc)
    return _with_root(exc, first) + _storage_hint(exc)


def _cut_file(exc: EOFError) -> str:
    """An EOFError out of a command — a file read back cut short, a full disk's doing most likely — with its fix."""
    return (
        f"a file ended early as it was read back ({type(exc).__name__}: {str(exc) or 'no more input'}) — when the "
        "disk of run.store or run.runs_dir is full (`df -h`), free space and rerun the command (finished work is kept)"
    )


#: what :func:`_storage_hint` says by default: the folders a run writes into
STORE_AND_RUNS_HINT = "check that run.store and run.runs_dir are writable directories with free space"


#: what :func:`_storage_hint` says of a folder or file a command that only reads could not read
READ_HINT = "this user may not read it: check the owner and permissions of the file or folder named (`ls -l`)"


def _storage_hint(exc: BaseException, hint: str = STORE_AND_RUNS_HINT, writes: bool = True) -> str:
    """What to check when ``exc`` is a storage error (a full disk, a read-only or unwritable folder): said after the
    error, on the terminal and in ``status.json`` (``repeval runs``); ``""`` for any other. ``hint`` is what to
    check: a command that writes elsewhere than run.store and run.runs_dir names its own output option. ``writes``
    false (``repeval store ls|show``, ``repeval runs``): a read failed, its fix is a read's (none when said)."""
    import errno

    if not isinstance(exc, OSError) or "this user may not " in str(exc):  # a read's (or delete's) error, its fix said
        return ""
    if not writes:  # not "writable directories with free space"
        if exc.errno in (errno.EACCES, errno.EPERM) and "owner and permissions" not in str(exc):
            return f" — {READ_HINT}"
        if exc.errno == errno.ENOTDIR and "move it aside" not in str(exc):
            return " — a file lies where a folder is expected: move it aside"
        return ""
    storage = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST}
    if exc.errno in storage:
        return f" — {hint}"
    return ""


def _resume_hint() -> str:
    """How to carry on an interrupted command: the run's own command line once :func:`_stage` has made it — after
    submitting the job again when this command is a ``ray job submit`` job's driver (``ray job stop``): the same
    entrypoint, as ``repeval.ray_cluster.job_submission`` gives it."""
    import os

    from repeval.ray_cluster import RAY_JOB_CONFIG_ENV, resume_hint

    resume = _state.get("resume")
    if _state.get("job"):
        return resume_hint(resume, _state["job"])
    if os.environ.get(RAY_JOB_CONFIG_ENV):
        return "submit the job again to resume it"
    return f"`{resume}` resumes it" if resume else "rerun the same command to resume"


def _guard(fn: Any, storage_hint: str = STORE_AND_RUNS_HINT, writes: bool = True) -> Any:
    """Turn expected failures into one-line errors (tracebacks with --debug); ``storage_hint``: what to check when
    a write fails, ``writes`` false for a command that only reads (:func:`_storage_hint`)."""
    forget_limits()  # a bucket's error says the gs:// retry limits of this command's locations
    try:
        return fn()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.secho(f"interrupted: everything finished so far is saved; {_resume_hint()}", err=True)
        raise typer.Exit(130) from None
    except SystemExit as exc:
        if _terminated(exc):
            from repeval.ray_signals import SIGTERM_EXIT_STATUS

            typer.secho(f"terminated (SIGTERM): everything finished so far is saved; {_resume_hint()}", err=True)
            # 143 as the shell reports a death by SIGTERM, also when the signal came out of a Ray call as SystemExit(1)
            raise typer.Exit(SIGTERM_EXIT_STATUS) from None
        raise
    except ModelsLeftOut as exc:  # the others done: the run is incomplete, as --strict says of tracks
        _fail(exc, LEFT_OUT_EXIT_STATUS)
    except FileNotFoundError as exc:
        # a folder a command's own output cannot be made in (under /proc, a mount gone): a bare "[Errno 2]" said no fix
        own_output = storage_hint != STORE_AND_RUNS_HINT and str(exc).startswith("[Errno")
        _fail(exc, 1, f" — {storage_hint}" if own_output else "")
    except ClusterLost as exc:  # Ray died under the run: how to resume this very command
        _fail(exc, 1, f" ({_resume_hint()})")
    except (ConfigError, ValueError, RuntimeError) as exc:
        _fail(exc, 1)
    except EOFError as exc:  # a file read back cut short (pickle, a library's own): Typer said only "Aborted."
        if _state["debug"]:
            traceback.print_exception(exc)
        typer.secho(f"error: {_cut_file(exc)}; --debug shows which file", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
    except OSError as exc:  # reliability (issue 9): unwritable store, disk full → one line, not a traceback
        if _state["debug"]:
            traceback.print_exception(exc)
        said, bucket = bucket_error(str(exc))
        fix = _storage_hint(exc, storage_hint, writes) or bucket
        typer.secho(f"error: {shown(_with_root(exc, said))}{fix}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from None
