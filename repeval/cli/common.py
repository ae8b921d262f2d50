"""What the ``repeval`` commands share: loading a configuration, a command's run context and ``status.json``
(``_stage``), ``--strict`` (``_strict_check``) and the options several commands take; how they fail in one line is
:mod:`repeval.cli.errors`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli.errors import _fail, _reason, _state, _terminated
from repeval.cli.paths import cli_path as cli_path
from repeval.cli.paths import cli_paths as cli_paths
from repeval.cli.paths import config_path
from repeval.cli.paths import windows_checked as windows_checked
from repeval.cli.resume import _unfinished, _untrained_fix, resume_command
from repeval.cli.resume import given_flags as given_flags
from repeval.config import ConfigError, load_config
from repeval.config.stdin import config_name
from repeval.words import counted

log = logging.getLogger("repeval")


ConfigArg = Annotated[
    Path,
    typer.Argument(
        path_type=str,  # as typed: `Path` makes `./-` (a file) `-` (standard input)
        callback=config_path,
        metavar="CONFIG",
        help="experiment YAML file (-: read it from standard input; ./-: a file named -)",
    ),
]
RunIdOpt = Annotated[
    str | None,
    typer.Option("--run-id", help="run id (default: run.run_id, else a new run-<date>-<time> on every command)"),
]


StoreOpt = Annotated[
    str | None,
    typer.Option("--store", callback=cli_path, help="embedding store root (path or URI; default: run.store)"),
]
SmokeOpt = Annotated[
    bool,
    typer.Option(
        "--smoke-test",
        help="a tiny version of the run: few tracks, one probe, few epochs, under the run id <run_id>-smoke (also "
        "with --run-id: never into the full run); a configuration setting run.smoke_test is one without it",
    ),
]
RunsDirOpt = Annotated[
    str | None,
    typer.Option(
        "--runs-dir",
        callback=cli_path,
        help="runs directory (path or URI, e.g. s3://bucket/runs; default: run.runs_dir)",
    ),
]


def _load(
    path: Path, check_data: bool = False, unreached_fix: str | None = None, smoke_test: bool = False, files: bool = True
) -> Any:
    """The configuration at ``path`` (``smoke_test``: validated as its smoke test's, ``--smoke-test``), its data paths
    checked when ``check_data``, the files its deformation steps read unless not ``files`` (``validate
    --skip-data-check``); a problem said with its fix, exit status 2."""
    try:
        cfg = load_config(path, smoke_test, files)
    except ConfigError as exc:
        _fail(exc)
    if check_data:  # reliability (issue 9): a missing manifest/data dir fails before anything runs
        from repeval.config.loader import check_data_paths

        try:
            check_data_paths(cfg, config_name(path), unreached_fix)  # a manifest it cannot reach: its fix, by command
        except ConfigError as exc:
            _fail(_in_job_copy(exc))
    return cfg


def _in_job_copy(exc: ConfigError) -> ConfigError:
    """``exc`` (a data path not found), and when it lies in the copy of the working directory a ``ray job submit``
    job runs in, why it may be missing there though it exists where the job was submitted from."""
    from repeval.ray_cluster import job_working_dir

    here = job_working_dir()
    missing = [i for i, p in enumerate(exc.problems) if here is not None and ": no such " in p and here in p]
    if not missing:
        return exc
    hint = (
        " — this job runs in Ray's copy of the directory `ray job submit` uploaded, which leaves out what .gitignore "
        "lists (data/ among them): submit with RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 to upload it too (512 MiB at most), "
        "or keep the data in a bucket or on a mount every node sees and give the config its absolute path "
        "(docs/cluster.md)"
    )
    problems = [p + hint if i == missing[-1] else p for i, p in enumerate(exc.problems)]
    told = ConfigError(problems, exc.source)
    told.__cause__ = exc.__cause__
    return told


def _with_runs_dir(cfg: Any, runs_dir: str | None) -> Any:
    if runs_dir is None:
        return cfg
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"runs_dir": runs_dir})})


def with_smoke_test(cfg: Any, smoke_test: bool, run_id: str | None) -> tuple[Any, str | None]:
    """The configuration a command runs and the run id it names: the smoke test's
    (:func:`repeval.runner.smoke_test_config`) with ``--smoke-test`` or when the configuration sets ``run.smoke_test``
    (as a smoke run's ``config.yaml`` does: the two mean the same, and together the same again) — its run id
    ``<run_id>-smoke``, also with ``--run-id``, suffixed once (:func:`repeval.run.context.smoke_run_id`) — else
    ``cfg`` and ``run_id`` as given."""
    if not (smoke_test or cfg.run.smoke_test):
        return cfg, run_id
    from repeval.runner import smoke_test_config

    cfg = smoke_test_config(cfg, run_id=run_id)
    return cfg, cfg.run.run_id


def _ctx(
    config: Path,
    run_id: str | None,
    store: str | None,
    smoke_test: bool = False,
    runs_dir: str | None = None,
    lock: bool = False,
    retry_models: Sequence[str] = (),
) -> Any:
    from repeval.datasets.manifest_check import RUN_FIX
    from repeval.pipeline.failing import check_retry_models
    from repeval.ray_cluster import check_job_output_paths
    from repeval.runner import make_context

    cfg, rid = with_smoke_test(_with_runs_dir(_load(config, True, RUN_FIX, smoke_test), runs_dir), smoke_test, run_id)
    check_retry_models(cfg, retry_models)  # a name that is no model of it: refused before the run directory is made
    check_job_output_paths(store or cfg.run.store, cfg.run.runs_dir)  # not inside a `ray job submit` job's copy
    return make_context(cfg, rid, store, lock=lock, read_only=not lock)


#: the commands that write the store: they take its lock before their run directory is made
_WRITERS = ("run", "embed", "deform")


@contextmanager
def _stage(
    command: str,
    config: Path,
    run_id: str | None,
    store: str | None,
    smoke_test: bool,
    runs_dir: str | None,
    flags: Sequence[str] = (),
) -> Any:
    """The run context of one CLI command; a remote run directory is uploaded at the end, also on failure. The
    run's ``status.json`` says the command started, then that it finished or failed (with the reason), and records
    the command line that resumes it: the command's own options, with those of ``flags`` it was given (``--strict``,
    ``--retry-errors``, ``--retry-model=MODEL``, each a model of the configuration or refused; the latter two until
    :func:`embedding_done`); one that
    finds an earlier stage unfinished (``EarlierStageUnfinished``: ``train`` before ``embed``) puts back the state it
    found, as does an ``evaluate`` that left grids of the configuration untrained (``ctx.untrained``) on a run whose
    other command was interrupted or failed. A command that writes the store and finds it locked by another run is
    refused before its run directory is made."""
    from repeval.ray_cluster import job_submission, resume_hint
    from repeval.run.status import RETRY_MODEL, read_status, recorded_flags, restore_status, write_status
    from repeval.rundir import EarlierStageUnfinished

    models = [w.split("=", 1)[1] for w in flags if w.startswith(f"{RETRY_MODEL}=")]
    ctx = _ctx(config, run_id, store, smoke_test, runs_dir, lock=command in _WRITERS, retry_models=models)
    before = read_status(ctx.run_dir)
    own = list(flags)  # less --retry-errors, --retry-model once the embedding stage finished (`embedding_done`)

    def line(c: str) -> str:
        """``c``'s command line on this run: with this command's flags, and an earlier command's own, recorded, when
        ``c`` is that command (the interrupted ``repeval run --strict`` that an ``evaluate`` names)."""
        given = [*own, *(recorded_flags(before) if c != command and c == before.get("command") else [])]
        return resume_command(c, config, ctx, run_id, store, smoke_test, runs_dir, given)

    def resumed() -> tuple[str, dict[str, str]]:
        """The command line that resumes this command, and how to submit its ``ray job submit`` job again; both set
        for ``_guard``, which tells an interrupted command to run them."""
        resume = line(command)
        job = job_submission(resume, _state.get("script"))  # a `ray job submit` job's: how to submit it again
        _state["resume"], _state["job"] = resume, job
        return resume, job

    def embedded() -> None:
        retried = [w for w in own if w == "--retry-errors" or w.startswith(f"{RETRY_MODEL}=")]
        if retried:
            own[:] = [w for w in own if w not in retried]
            resumed()

    _state["embedded"] = embedded  # what `embedding_done` calls
    resume, job = resumed()
    if command in ("train", "evaluate") and not run_id and not smoke_test and not ctx.cfg.run.run_id:
        log.warning(
            "the configuration sets no run.run_id and no --run-id was given: this `repeval %s` starts a new run, %s, "
            "which holds nothing of earlier commands — to go on with one, give its --run-id (`repeval runs` lists "
            "them), or set run.run_id",
            command,
            ctx.run_id,
        )
    ctx.untrained_fix = _untrained_fix(before, command, line)
    try:
        write_status(ctx.run_dir, command, "started", resume=resume, job=job)
    except BaseException:
        if ctx.lock is not None:
            ctx.lock.release()
        raise
    try:
        yield ctx
    except BaseException as exc:
        told = None  # what to say instead of ``exc``
        resume, job = resumed()  # without --retry-errors once the embedding stage finished (`embedding_done`)
        if isinstance(exc, KeyboardInterrupt):
            write_status(
                ctx.run_dir, command, "interrupted",
                f"stopped by Ctrl-C; {resume_hint(resume, job)} (finished work is kept)", resume, job=job,
            )  # fmt: skip
        elif _terminated(exc):
            write_status(
                ctx.run_dir, command, "interrupted",
                f"stopped by SIGTERM (`ray job stop`, a scheduler, `kill`); {resume_hint(resume, job)} (finished work "
                "is kept)", resume, job=job,
            )  # fmt: skip
        elif isinstance(exc, EarlierStageUnfinished):
            # nothing done: the run's state stays what it was (an interrupted `repeval run` is not a failed evaluate,
            # nor is `train` before `embed` a failed train)
            restore_status(ctx.run_dir, before)
            told = exc.naming(line)
            if _unfinished(before, command):
                earlier = before.get("command") or "run"
                told = EarlierStageUnfinished(
                    f"{told}; this run's `repeval {earlier}` was {before['state']}: finish it with `{line(earlier)}`"
                )
        elif isinstance(exc, Exception) and not (isinstance(exc, typer.Exit) and exc.exit_code == 0):
            write_status(ctx.run_dir, command, "failed", _reason(exc), resume, job=job)
        if ctx.location is not None:
            try:
                ctx.location.push()  # keep what finished (e.g. trained groups) for the rerun
            except Exception as exc:  # the stage's own error is the one to report
                log.warning("could not upload the run directory to %s: %s", ctx.location.display, exc)
        if told is not None:
            raise told from told.__cause__
        raise
    finally:
        if ctx.lock is not None:  # not released by an embedding stage (one that failed before it started)
            ctx.lock.release()
    if command == "evaluate" and ctx.untrained and _unfinished(before, command):
        # evaluated what is trained (nothing more): the run stays as unfinished as its other command left it (the
        # warning naming the grids not trained said so: ``ctx.untrained_fix``)
        restore_status(ctx.run_dir, before)
    else:  # the command line kept: `repeval runs` names the run's own (its configuration, --run-id, --store)
        resume, job = resumed()
        write_status(ctx.run_dir, command, "finished", resume=resume, job=job)
    if ctx.location is not None:
        ctx.location.push()


def embedding_done() -> None:
    """The embedding stage of the command :func:`_stage` runs finished: the line that resumes it no longer carries
    ``--retry-errors``: the error records it found were deleted and their tracks computed again (those that failed
    again are this run's records), so a rerun after a later stage stopped need not decode them once more."""
    _state["embedded"]()


# --- reliability (issue 9): --strict ----------------------------------------------------------------
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="exit with status 3 if any track was not evaluated: an error record (a file that failed to decode), "
        "or a row a dataset dropped at load: for missing audio, and any row of a catalog manifest (a duplicate "
        "id, an unusable label or split); everything computed is still saved",
    ),
]


#: error records the ``--strict`` failure quotes (the ``repeval store show`` commands it names list them all)
STRICT_EXAMPLES = 3


def _strict_check(ctx: Any) -> None:
    """Exit 3 when a dataset of this configuration dropped rows at load that ``--strict`` counts (see
    :func:`repeval.runner.not_evaluated`) or any of its store partitions holds error records (this run's or
    earlier); one line per problem."""
    from repeval.pipeline.stages import CLEAN
    from repeval.runner import not_evaluated

    dropped = not_evaluated(ctx)
    for name, counts, lines in dropped:
        fixes = []
        if "missing_audio" in counts:
            fixes.append("check those audio paths and the dataset's root (dataset.dir, else the manifest's folder)")
        if set(counts) - {"missing_audio"}:
            fixes.append("correct those rows of the manifest (one row per track id, a usable label and split)")
        typer.secho(
            f"error: --strict: dataset '{name}' dropped {counted(sum(counts.values()), 'row')} at load, not evaluated "
            f"({lines}) — {' and '.join(fixes)}; everything computed is saved",
            fg=typer.colors.RED,
            err=True,
        )
    bad = []
    for exp in ctx.cfg.experiments:
        for ds in exp.datasets:
            for m in exp.embedding_models:
                for sid in [CLEAN, *exp.scenarios_for(ds)]:
                    part = ctx.store.partition(ds.name, m.id, sid)
                    n = int((part.manifest() or {}).get("errors", 0) or 0)
                    if n:
                        bad.append((part, n))
    if not bad:
        if dropped:
            raise typer.Exit(3)
        return
    examples: list[str] = []  # the first records of the first partitions, each with its partition
    for part, _ in bad:
        if len(examples) >= STRICT_EXAMPLES:
            break
        for r in part.read_errors().slice(0, STRICT_EXAMPLES - len(examples)).to_pylist():
            examples.append(f"{r['track_id']} in {part.name} ({r['stage']}): {r['reason']}")
    example = f"; e.g. {'; '.join(examples)}" if examples else ""
    where = ", ".join(f"{p.name} ({n})" for p, n in bad)
    commands = ", ".join(f"`{p.show_errors_command()}`" for p, _ in bad)
    typer.secho(
        f"error: --strict: {counted(sum(n for _, n in bad), 'error record')} in {where}{example} — list them with "
        f"{commands}",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(3)


RetryOpt = Annotated[
    bool,
    typer.Option(
        "--retry-errors",
        help="compute again the tracks that have error records in the store (e.g. after fixing or replacing "
        "the files); groups trained on the old embeddings are trained again (`repeval plan --retry-errors` says "
        "which beforehand)",
    ),
]

RetryModelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--retry-model",
        metavar="MODEL",
        help="as --retry-errors for the embedding model MODEL only (its id; repeatable): compute again the tracks that "
        "have its error records, and run it again if a run stopped it for failing on each of its first tracks; the "
        "other models' error records stay as they are",
    ),
]

# --- end reliability --------------------------------------------------------------------------------
