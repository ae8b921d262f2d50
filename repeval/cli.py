"""The ``repeval`` command line."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Evaluate music audio embeddings at catalog scale.")
data_app = typer.Typer(no_args_is_help=True, help="Quickstart data, downloads, audio checks.")
store_app = typer.Typer(no_args_is_help=True, help="Inspect the embedding store.")
app.add_typer(data_app, name="data")
app.add_typer(store_app, name="store")

log = logging.getLogger("repeval")
_state: dict[str, Any] = {"debug": False}

ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML file")]
RunIdOpt = Annotated[str | None, typer.Option("--run-id", help="run id (default: run.run_id or a timestamp)")]
StoreOpt = Annotated[str | None, typer.Option("--store", help="embedding store root (path or URI)")]
SmokeOpt = Annotated[
    bool, typer.Option("--smoke-test", help="a tiny version of the run: few tracks, one probe, few epochs")
]
RunsDirOpt = Annotated[
    str | None,
    typer.Option("--runs-dir", help="runs directory (path or URI, e.g. s3://bucket/runs; default: run.runs_dir)"),
]


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="more logging")] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("repeval").setLevel(logging.DEBUG if debug or verbose else logging.INFO)
    # repeval's own warnings as one line each, like its log lines (--debug: Python's form, with file and line)
    warnings.formatwarning = _python_formatwarning if debug else _format_warning
    # Ray Data logs every execution's plan and progress at INFO; repeval prints its own summary lines
    os.environ.setdefault("REPEVAL_RAY_DATA_LOG_LEVEL", "DEBUG" if debug else "INFO" if verbose else "ERROR")


_python_formatwarning = warnings.formatwarning


def _format_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
) -> str:
    """A warning of repeval's categories, or given by its code, as ``Category: message`` — not Python's form, which
    adds the repeval source file, line number and code line that gave it (nothing a user can act on); any other
    package's warning in Python's form."""
    from repeval.warn import is_ours

    if is_ours(category, filename):
        return f"{category.__name__}: {message}\n"
    return _python_formatwarning(message, category, filename, lineno, line)


def _fail(exc: BaseException, code: int = 2) -> None:
    if _state["debug"]:
        traceback.print_exception(exc)
    typer.secho(f"error: {_with_root(exc, str(exc))}", fg=typer.colors.RED, err=True)
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


def _load(path: Path, check_data: bool = False) -> Any:
    try:
        cfg = load_config(path)
        if check_data:  # reliability (issue 9): a missing manifest/data dir fails before anything runs
            from repeval.config.loader import check_data_paths

            check_data_paths(cfg, str(path))
        return cfg
    except ConfigError as exc:
        _fail(exc)


def _with_runs_dir(cfg: Any, runs_dir: str | None) -> Any:
    if runs_dir is None:
        return cfg
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"runs_dir": runs_dir})})


def _ctx(
    config: Path,
    run_id: str | None,
    store: str | None,
    smoke_test: bool = False,
    runs_dir: str | None = None,
    lock: bool = False,
) -> Any:
    from repeval.runner import make_context, smoke_test_config

    cfg = _with_runs_dir(_load(config, check_data=True), runs_dir)
    if smoke_test:
        cfg = smoke_test_config(cfg)
    return make_context(cfg, run_id, store, lock=lock)


#: the commands that write the store: they take its lock before their run directory is made
_WRITERS = ("run", "embed", "deform")


@contextmanager
def _stage(
    command: str, config: Path, run_id: str | None, store: str | None, smoke_test: bool, runs_dir: str | None
) -> Any:
    """The run context of one CLI command; a remote run directory is uploaded at the end, also on failure. The
    run's ``status.json`` says the command started, then that it finished or failed (with the reason). A command
    that writes the store and finds it locked by another run is refused before its run directory is made."""
    from repeval.rundir import write_status

    ctx = _ctx(config, run_id, store, smoke_test, runs_dir, lock=command in _WRITERS)
    try:
        write_status(ctx.run_dir, command, "started")
    except BaseException:
        if ctx.lock is not None:
            ctx.lock.release()
        raise
    try:
        yield ctx
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            write_status(
                ctx.run_dir, command, "interrupted", "stopped by Ctrl-C; rerun it to resume (finished work is kept)"
            )
        elif _terminated(exc):
            write_status(
                ctx.run_dir, command, "interrupted",
                "stopped by SIGTERM (`ray job stop`, a scheduler, `kill`); rerun it to resume (finished work is kept)",
            )  # fmt: skip
        elif isinstance(exc, Exception) and not (isinstance(exc, typer.Exit) and exc.exit_code == 0):
            write_status(ctx.run_dir, command, "failed", _reason(exc))
        if ctx.location is not None:
            try:
                ctx.location.push()  # keep what finished (e.g. trained groups) for the rerun
            except Exception as exc:  # the stage's own error is the one to report
                log.warning("could not upload the run directory to %s: %s", ctx.location.display, exc)
        raise
    finally:
        if ctx.lock is not None:  # not released by an embedding stage (one that failed before it started)
            ctx.lock.release()
    write_status(ctx.run_dir, command, "finished")
    if ctx.location is not None:
        ctx.location.push()


def _terminated(exc: BaseException) -> bool:
    """Whether ``exc`` is a SIGTERM stopping the command (:func:`repeval.ray_utils.exit_on_sigterm`)."""
    from repeval.ray_utils import sigterm_received

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
    return _with_root(exc, first)


def _guard(fn: Any) -> Any:
    """Turn expected failures into one-line errors (tracebacks with --debug)."""
    try:
        return fn()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        typer.secho("interrupted: everything finished so far is saved; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None
    except SystemExit as exc:
        if _terminated(exc):
            from repeval.ray_utils import SIGTERM_EXIT_STATUS

            typer.secho(
                "terminated (SIGTERM): everything finished so far is saved; rerun the same command to resume", err=True
            )
            # 143 as the shell reports a death by SIGTERM, also when the signal came out of a Ray call as SystemExit(1)
            raise typer.Exit(SIGTERM_EXIT_STATUS) from None
        raise
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        _fail(exc, 1)
    except OSError as exc:  # reliability (issue 9): unwritable store, disk full → one line, not a traceback
        if _state["debug"]:
            traceback.print_exception(exc)
        import errno

        storage = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST}
        hint = " — check that run.store and run.runs_dir are writable directories with free space"
        typer.secho(f"error: {_with_root(exc, str(exc))}{hint if exc.errno in storage else ''}", fg=typer.colors.RED,
                    err=True)  # fmt: skip
        raise typer.Exit(1) from None


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
            f"error: --strict: dataset '{name}' dropped {sum(counts.values())} row(s) at load, not evaluated "
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
        f"error: --strict: {sum(n for _, n in bad)} error record(s) in {where}{example} — list them with {commands}",
        fg=typer.colors.RED,
        err=True,
    )
    raise typer.Exit(3)


RetryOpt = Annotated[
    bool,
    typer.Option(
        "--retry-errors",
        help="compute again the tracks that have error records in the store (e.g. after fixing or replacing "
        "the files); groups trained on the old embeddings are trained again",
    ),
]

# --- end reliability --------------------------------------------------------------------------------


@app.command()
def validate(
    config: ConfigArg,
    skip_data_check: Annotated[
        bool,
        typer.Option("--skip-data-check", help="do not check that local data paths exist (a config for elsewhere)"),
    ] = False,
    skip_model_check: Annotated[
        bool,
        typer.Option(
            "--skip-model-check",
            help="do not check that the embedding models can run (their packages and weights) here, or with "
            "RAY_ADDRESS set on the cluster's nodes (a config for elsewhere)",
        ),
    ] = False,
) -> None:
    """Validate a configuration file (nothing runs): local data paths must exist unless --skip-data-check; every
    embedding model must be able to run — on this machine, or with RAY_ADDRESS set (a cluster, `ray job submit`)
    on each of its live nodes — unless --skip-model-check. Exit status 2: the configuration is invalid; 1: a model
    cannot run (each named, with the reason and the fix)."""
    cfg = _load(config, check_data=not skip_data_check)
    n = len(cfg.experiments)
    typer.echo(f"{config}: valid ({n} experiment{'s' if n != 1 else ''})")
    if not skip_model_check:
        typer.echo(_check_models(cfg))


def _check_models(cfg: Any) -> str:
    """Check every embedding model of ``cfg`` where a run would build it: in this process (no Ray started), or with
    ``RAY_ADDRESS`` set on every live node of that cluster its actors may use; the ``models:`` line, or each model
    that cannot run as an error line and exit status 1."""
    from repeval.pipeline.embed import models_on_nodes, unavailable_here, unavailable_lines

    models = list({m.id: m for exp in cfg.experiments for m in exp.embedding_models}.values())
    n, later = len(models), ""
    if os.environ.get("RAY_ADDRESS"):  # under `ray job submit` or pointed at a cluster: what each node has
        from repeval.ray_utils import init_ray

        _guard(init_ray)  # a dashboard URL or a stopped cluster in RAY_ADDRESS: one line naming the fix
        found = _guard(lambda: models_on_nodes(cfg, models))
        lines = unavailable_lines(found.problems, here=False)
        where = f"on {len(found.checked)} node{'s' * (len(found.checked) != 1)}"
        if found.unplaced:
            n -= len(found.unplaced)
            later = (
                f"; not {', '.join(found.unplaced)}: no live node has the resources its actors request (the nodes "
                "the autoscaler adds check it when its actors start)"
            )
    else:
        problems: dict[tuple[str, str], list[str]] = {
            (model_id, reason): [] for model_id, reason in _guard(lambda: unavailable_here(models)).items()
        }
        lines = unavailable_lines(problems, here=True)
        where = "on this machine"
    for line in lines:
        typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    if lines:
        raise typer.Exit(1)
    return f"models: {n} checked {where}{later}"


@app.command()
def plan(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    runs_dir: RunsDirOpt = None,
    smoke_test: Annotated[
        bool, typer.Option("--smoke-test", help="plan the smoke test (`repeval run --smoke-test`) instead")
    ] = False,
) -> None:
    """Print the grid of work, how much of it is already done and the resources it will request."""
    from repeval.plan import make_plan
    from repeval.rundir import RunLocation
    from repeval.runner import check_run_id
    from repeval.store import EmbeddingStore

    cfg = _with_runs_dir(_load(config), runs_dir)
    if smoke_test:
        from repeval.runner import smoke_test_config

        cfg = smoke_test_config(cfg)
    rid = run_id or cfg.run.run_id
    if rid:
        _guard(lambda: check_run_id(rid))  # the run id `repeval run` would refuse, refused here too
    run_dir = RunLocation.open(cfg.run.runs_dir, rid).local if rid else None
    st_root = store or cfg.run.store
    try:  # plan only reads: a store that does not exist yet has nothing done (and is not created here)
        st: EmbeddingStore | None = EmbeddingStore(st_root, create=False)
    except FileNotFoundError:
        st = None
    cluster = None
    if os.environ.get("RAY_ADDRESS"):  # under `ray job submit` or pointed at a cluster: its exact requests
        import ray

        from repeval.ray_utils import init_ray

        _guard(init_ray)  # a dashboard URL or a stopped cluster in RAY_ADDRESS: one line naming the fix
        cluster = ray.cluster_resources()
    typer.echo(_guard(lambda: make_plan(cfg, st, run_dir, cluster=cluster)).text())
    from repeval.cpu import huge_pages_status, mkl_status

    typer.echo(f"MKL (torch's products): {mkl_status()}")
    typer.echo(f"large tensors: {huge_pages_status()}")


def _train_line(t: dict[str, Any]) -> str:
    """The train stage's one-line summary: ``failed`` holds one row per failed probe training (a configuration and
    seed — not a Tune trial, which may train many) and per failed test cell (a trained probe and seed on one test set
    whose scores were not finite), counted apart as ``repeval runs`` and the report count them."""
    tests = sum(1 for f in t["failed"] if f.get("scenario"))
    line = (
        f"trained {t['trained']} probe grid(s), {t['skipped']} already done, "
        f"{len(t['failed']) - tests} failed probe training(s)"
    )
    if tests:
        line += f", {tests} failed test cell(s) (non-finite scores)"
    line += " (failed.parquet says why)" if t["failed"] else ""
    if t.get("reused_trials"):
        line += f"; {t['reused_trials']} trial(s) finished by an interrupted run reused, not trained again"
    return line


def _print_table(ctx: Any) -> None:
    """The results table, then per task/dataset the model best on clean audio and the one that survives deformation
    best (:func:`repeval.report.summary.summary_text`, the numbers of the report's summary cards)."""
    from repeval.report.results import load_runs
    from repeval.report.summary import summary_text
    from repeval.report.tables import table_command

    runs = load_runs([ctx.run_dir])
    typer.echo(table_command([ctx.run_dir], "all_deform_all_models", "terminal", runs=runs))
    summary = summary_text(runs)
    if summary:
        typer.echo(summary)


def _next_hint(cfg: Any, where: str) -> str:
    """What to look at after a run: the report, and the robustness table when something was tested deformed."""
    deformed = any(exp.scenarios_for(ds) for exp in cfg.experiments for ds in exp.datasets)
    robustness = f", `repeval table {where} --preset robustness`" if deformed else ""
    return f"next: `repeval report {where}` (HTML report){robustness}"


@app.command()
def run(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    smoke_test: SmokeOpt = False,
    strict: StrictOpt = False,
    runs_dir: RunsDirOpt = None,
    retry_errors: RetryOpt = False,
) -> None:
    """Run every stage (embed with deformations, train, evaluate); resumable."""
    from repeval import runner

    def go() -> None:
        with _stage("run", config, run_id, store, smoke_test, runs_dir) as ctx:
            typer.echo(f"run {ctx.run_id} → {ctx.location.display}")
            s = runner.stage_embed(ctx, retry_errors=retry_errors)
            typer.echo(s.text())
            if strict:
                _strict_check(ctx)
            t = runner.stage_train(ctx)
            typer.echo(_train_line(t))
            runner.stage_evaluate(ctx)
            _print_table(ctx)
            typer.echo(f"results: {ctx.location.file('results.parquet')}")
            where = ctx.location.display
            typer.echo(_next_hint(ctx.cfg, where))

    _guard(go)


@app.command()
def deform(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    smoke_test: SmokeOpt = False,
    runs_dir: RunsDirOpt = None,
    retry_errors: RetryOpt = False,
) -> None:
    """Embed deformed audio only (deformations are applied on the fly; deformed audio is not stored)."""
    from repeval import runner

    def go() -> None:
        with _stage("deform", config, run_id, store, smoke_test, runs_dir) as ctx:
            typer.echo(runner.stage_embed(ctx, deformed_only=True, retry_errors=retry_errors).text())

    _guard(go)


@app.command()
def embed(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    smoke_test: SmokeOpt = False,
    strict: StrictOpt = False,
    runs_dir: RunsDirOpt = None,
    retry_errors: RetryOpt = False,
) -> None:
    """Compute clean and deformed embeddings into the store."""
    from repeval import runner

    def go() -> None:
        with _stage("embed", config, run_id, store, smoke_test, runs_dir) as ctx:
            typer.echo(runner.stage_embed(ctx, retry_errors=retry_errors).text())
        if strict:
            _strict_check(ctx)

    _guard(go)


@app.command()
def train(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    smoke_test: SmokeOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Train every probe grid on Ray Tune and test the selected checkpoints."""
    from repeval import runner

    def go() -> None:
        with _stage("train", config, run_id, store, smoke_test, runs_dir) as ctx:
            t = runner.stage_train(ctx)
        typer.echo(_train_line(t))

    _guard(go)


@app.command()
def evaluate(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    smoke_test: SmokeOpt = False,
    runs_dir: RunsDirOpt = None,
) -> None:
    """Collect test results into results.parquet; print the table, best on clean and most robust."""
    from repeval import runner

    def go() -> None:
        with _stage("evaluate", config, run_id, store, smoke_test, runs_dir) as ctx:
            runner.stage_evaluate(ctx)
        _print_table(ctx)

    _guard(go)


@app.command()
def table(
    runs: Annotated[
        list[str], typer.Argument(help="run directories (runs/<run_id>, or a URI such as s3://bucket/runs/<run_id>)")
    ],
    preset: Annotated[
        str,
        typer.Option(
            "--preset",
            help="all_deform_all_models, model_comparison, robustness, or tasks (a dataset's tasks side by side)",
        ),
    ] = "all_deform_all_models",
    fmt: Annotated[str, typer.Option("--format", help="terminal, markdown, csv, latex or html")] = "terminal",
    task: Annotated[str | None, typer.Option("--task", help="only this task (--preset tasks: a, b, …)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="only this dataset")] = None,
    scale: Annotated[float, typer.Option("--scale", help="multiply values (100 for the thesis' percentages)")] = 1.0,
    decimals: Annotated[int, typer.Option("--decimals")] = 3,
) -> None:
    """Print result tables for one or more runs (several runs are combined)."""
    from repeval.report.tables import table_command
    from repeval.rundir import open_run

    _guard(
        lambda: typer.echo(
            table_command(
                [open_run(r).local for r in runs],
                preset,
                fmt,
                task=task,
                dataset=dataset,
                scale=scale,
                decimals=decimals,
            )
        )
    )


@app.command()
def report(
    runs: Annotated[
        list[str], typer.Argument(help="run directories (runs/<run_id>, or a URI such as s3://bucket/runs/<run_id>)")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="HTML file to write (default: report.html in the first run)")
    ] = None,
) -> None:
    """Write a self-contained HTML report."""

    def go() -> None:
        from repeval.report.html import write_report
        from repeval.rundir import open_run

        locations = [open_run(r) for r in runs]
        first = locations[0]
        path = write_report([loc.local for loc in locations], out or (first.local / "report.html"))
        if out is None and first.staged:  # into the remote run directory, next to its results
            first.push()
            typer.echo(f"report: {first.file('report.html')}")
        else:
            typer.echo(f"report: {path}")

    _guard(go)


@data_app.command("render")
def data_render(
    out: Annotated[Path, typer.Argument(help="output folder")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="notes: single notes of 10 instruments (multiclass); mixtures: 1-3 instruments at once (multilabel "
            "tagging, label_separator '|'); keys: chord progressions in the 24 keys (key estimation)",
        ),
    ] = "notes",
    notes: Annotated[int, typer.Option("--notes", help="notes per instrument (--kind notes)")] = 24,
    clips: Annotated[
        int | None, typer.Option("--clips", help="clips to render (--kind mixtures: 300, keys: 240 by default)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    manifest_format: Annotated[
        str, typer.Option("--format", help="manifest format for mixtures and keys: csv or parquet")
    ] = "csv",
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="processes rendering mixtures or keys (default: one per CPU; same files)"),
    ] = None,
    audio_format: Annotated[
        str, typer.Option("--audio", help="audio files for mixtures and keys: wav or flac (lossless, ~half the size)")
    ] = "wav",
) -> None:
    """Render labelled audio from the General-MIDI SoundFont in the pretty-midi wheel (no download): a
    TinySOL-like note set (the quickstart's), instrument mixtures or chord progressions, at any size."""
    from dataclasses import replace

    from repeval.datasets.render import KeySpec, MixtureSpec, RenderSpec, render_dataset, render_keys, render_mixtures

    procs = workers if workers is not None else os.cpu_count() or 1

    def go() -> None:
        for flag, value, least in (
            ("--notes", notes, 1),
            ("--clips", clips, 1),
            ("--workers", workers, 1),
            ("--seed", seed, 0),
        ):
            if value is not None and value < least:
                raise ValueError(f"{flag} must be at least {least}, got {value}")
        if kind == "notes":
            if clips is not None or manifest_format != "csv" or workers is not None or audio_format != "wav":
                raise ValueError(
                    "--clips, --format, --workers and --audio are for --kind mixtures and keys; notes take --notes"
                )
            m = render_dataset(out, RenderSpec(notes_per_instrument=notes, seed=seed))
        elif kind == "mixtures":
            mix = MixtureSpec(seed=seed, manifest_format=manifest_format, audio_format=audio_format)
            m = render_mixtures(out, mix if clips is None else replace(mix, clips=clips), workers=procs)
        elif kind == "keys":
            keys = KeySpec(seed=seed, manifest_format=manifest_format, audio_format=audio_format)
            m = render_keys(out, keys if clips is None else replace(keys, clips=clips), workers=procs)
        else:
            raise ValueError(f"unknown --kind '{kind}'; valid: notes, mixtures, keys")
        typer.echo(f"manifest: {m}")

    _guard(go)


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help="mirdata data set name")],
    data_home: Annotated[str | None, typer.Option("--data-home", help="where to put it")] = None,
) -> None:
    """Download a mirdata data set (needs network access)."""
    from repeval.datasets.cli_support import download

    _guard(lambda: typer.echo(f"downloaded to {download(name, data_home)}"))


@data_app.command("check")
def data_check(
    config: ConfigArg,
    decode: Annotated[
        bool,
        typer.Option(
            "--decode",
            help="also decode every file whole, at its own rate (finds data corrupt part-way, files without samples, "
            "NaN/inf samples, samples far beyond full scale; reads every byte)",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="threads checking files (default: one per CPU; more for a remote store)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="write every bad file to this .csv or .parquet (dataset, track_id, audio_path, reason)"
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="check only the dataset of this name")] = None,
) -> None:
    """Find the audio files a run would turn into error records, before the run: every dataset of CONFIG is loaded as
    a run loads it (missing files are dropped and counted as missing), and each distinct audio file (also on s3:// or
    another pyarrow filesystem) is checked with what the run's decode stage runs where it opens a file — a regular
    file, not cut short or zero-filled, not a VBR MP3 without a Xing header, a header libsndfile opens — and with
    --decode the whole file decoded; the reason given is the error record's. Not checked: labels and splits
    (`repeval plan` reports rows the loaders drop), what deformations and models make of the audio. No Ray is
    started. Exit status 0: every file is good; 1: a file is bad or missing; 2: the configuration is invalid or its
    datasets cannot be loaded."""
    from repeval.datasets.check import check_datasets, dataset_files, out_format

    cfg = _load(config, check_data=True)
    try:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        if out is not None:
            out_format(out)
        files = dataset_files(cfg, dataset)
    except (ConfigError, ValueError, OSError) as exc:
        _fail(exc)
        return

    def go() -> list[Any]:
        try:
            return check_datasets(files, decode=decode, workers=workers, out=out)
        except KeyboardInterrupt:
            typer.secho("interrupted: nothing was changed; rerun the command to check again", err=True)
            raise typer.Exit(130) from None

    results = _guard(go)
    for found in results:
        typer.echo("\n".join(found.lines()))
    if out is not None:
        typer.echo(f"bad files: {out}")
    if any(found.bad or found.missing for found in results):
        raise typer.Exit(1)


@app.command("runs")
def runs_cmd(
    runs_dir: Annotated[str, typer.Argument(help="runs directory (path or pyarrow filesystem URI)")] = "runs",
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List the runs under a runs directory: state, tasks, models, result rows, failed trainings and failed test
    cells, last update."""
    from repeval.report.runs import runs_text

    _guard(lambda: typer.echo(runs_text(runs_dir, as_json)))


@app.command("schema")
def schema_cmd(
    out: Annotated[Path | None, typer.Option("--out", help="write it to this file instead of printing it")] = None,
) -> None:
    """Print the configuration's JSON Schema (for editors; configs/repeval.schema.json is a copy)."""
    from repeval.config.jsonschema import schema_text

    def go() -> None:
        if out is None:
            typer.echo(schema_text(), nl=False)
        else:
            out.write_text(schema_text())
            typer.echo(f"schema: {out} (first line of a config: `# yaml-language-server: $schema={out.name}`)")

    _guard(go)


@app.command("datasets")
def datasets_cmd(
    name: Annotated[
        str | None, typer.Argument(help="one loader: its tasks, where the data comes from and its on-disk layout")
    ] = None,
    all_mirdata: Annotated[
        bool, typer.Option("--all-mirdata", help="also list mirdata sets without wired tasks")
    ] = False,
) -> None:
    """List dataset loaders and the tasks (labels) wired for them, or describe one (NAME)."""
    from repeval.datasets.cli_support import describe_dataset, list_datasets

    if name is not None:
        _guard(lambda: typer.echo(describe_dataset(name)))
        return
    for d in list_datasets(include_unwired_mirdata=all_mirdata):
        tasks = ", ".join(f"{t['label']} ({t['task_type']})" for t in d["tasks"]) or "-"
        typer.echo(f"{d['name']:<36} {d['type']:<8} {tasks}")


@app.command("models")
def models_cmd() -> None:
    """List embedding models with their availability (weights present, extra installed)."""
    from repeval.models.validate import list_models

    for m in list_models():
        state = "available" if m["available"] else f"unavailable: {m['reason']}"
        dims = f"{m['embedding_dim'] or '?'}-d @ {m['sample_rate_hz'] or '?'} Hz"
        typer.echo(f"{m['id']:<24} {dims:<20} {state}")


@app.command("validate-model")
def validate_model_cmd(
    name: Annotated[str, typer.Argument(help="model id (e.g. mfcc-stats, crepe-tiny)")],
    dummy_weights: Annotated[
        Path | None,
        typer.Option("--dummy-weights", help="folder for stand-in weights of families without shipped ones"),
    ] = None,
) -> None:
    """Feed noise of awkward lengths and sample rates; check shapes, dtypes, declared sizes, determinism."""
    from repeval.models.validate import validate_model

    def go() -> None:
        report = validate_model(name, dummy_weights=dummy_weights)
        typer.echo(report.summary())
        if not report.ok:
            raise typer.Exit(1)

    _guard(go)


def _store_root(positional: str | None, option: str | None) -> str:
    """``repeval store ls|show`` take the store as a leading argument or as ``--store`` (default ``store``)."""
    if positional and option and positional != option:
        raise ValueError(f"two store roots given ({positional} and --store {option}): give one")
    return positional or option or "store"


@store_app.command("ls")
def store_ls(
    root: Annotated[
        str | None, typer.Argument(help="store root (path or pyarrow filesystem URI; default: store)")
    ] = None,
    store: Annotated[str | None, typer.Option("--store", help="the store root, as an option")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List store partitions: state, rows, errors, dimension, model version, config hash, size."""
    from repeval.store import EmbeddingStore
    from repeval.store.inspect import ls_text, partition_info

    def go() -> None:
        st = EmbeddingStore(_store_root(root, store), create=False)
        infos = [partition_info(p) for p in st.partitions()]
        typer.echo(ls_text(st, as_json, infos))
        damaged = [i["damage"] for i in infos if i["damage"]]
        for message in damaged:  # every partition is listed; each damaged one's fix goes to stderr, and the exit is 1
            typer.echo(message, err=True)
        if damaged:
            raise typer.Exit(1)

    _guard(go)


@store_app.command("show")
def store_show(
    target: Annotated[
        list[str],
        typer.Argument(
            metavar="[STORE] DATASET/MODEL/SCENARIO",
            help="the partition, after the store root unless --store gives it (default store: store)",
        ),
    ],
    root: Annotated[str | None, typer.Option("--store", help="store root (path or pyarrow filesystem URI)")] = None,
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
    from repeval.store import EmbeddingStore
    from repeval.store.inspect import errors_text, show_text

    def go() -> None:
        if rows is not None and rows < 0:
            raise ValueError(f"--rows must be 0 or more (0 prints the counts without rows), got {rows}")
        if len(target) > 2:
            raise ValueError("give [STORE] DATASET/MODEL/SCENARIO (see `repeval store ls STORE`)")
        store = EmbeddingStore(_store_root(target[0] if len(target) == 2 else None, root), create=False)
        part = store.find(target[-1])
        typer.echo(errors_text(part, rows) if errors else show_text(part, 5 if rows is None else rows))

    _guard(go)


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
    root: Annotated[str | None, typer.Option("--store", help="store root (path or pyarrow filesystem URI)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="delete; without it, only list what would be deleted")] = False,
) -> None:
    """Delete store partitions (the next run computes them again); takes the store's lock, so not during a run."""
    from repeval.store import EmbeddingStore
    from repeval.store.lock import StoreLock
    from repeval.store.store import DamagedPartFile

    def go() -> None:
        from repeval.rundir import is_uri

        args = list(target)
        first = args[0]
        # `rm STORE PART...`: a partition pattern is relative with exactly two slashes; a store root is a URI, an
        # absolute or ./-relative path, or anything else (relative roots with two slashes: give them as ./a/b/c)
        looks_like_root = is_uri(first) or first.startswith(("/", "~", ".")) or first.strip("/").count("/") != 2
        if len(args) > 1 and root is None and looks_like_root:
            store_root = os.path.expanduser(args.pop(0))
        else:
            store_root = _store_root(None, root)
        store = EmbeddingStore(store_root, create=False)
        chosen: dict[str, Any] = {}
        for pattern in args:
            hits = store.matching(pattern)
            if not hits and any(c in pattern for c in "*?["):
                raise ValueError(f"no partition of {store.uri} matches {pattern} (`repeval store ls` lists them)")
            if not hits:
                store.find(pattern)  # raises naming the closest partitions
            chosen.update((p.name, p) for p in hits)
        store.refuse_foreign(list(chosen.values()))  # a runs directory given as the store: its tune/ is not deleted
        for n, part in chosen.items():
            state = "complete" if part.complete else "incomplete"
            try:
                rows, errors = part.counts()
                typer.echo(f"{n}  ({state}, {rows} rows, {errors} error records)")
            except DamagedPartFile:  # what the damaged file's error tells the user to delete: rm must still do it
                typer.echo(f"{n}  ({state}, a part file is not readable Parquet)")
        if not yes:
            typer.echo(f"{len(chosen)} partition(s) would be deleted from {store.uri}; rerun with --yes to delete them")
            return
        with StoreLock(store, run_id="repeval store rm"):
            for part in chosen.values():
                part.delete()
        typer.echo(f"deleted {len(chosen)} partition(s) from {store.uri}; the next run computes them again")

    _guard(go)


#: the commands whose work runs torch (or, ``plan``, says which MKL path it will run): only these re-execute
MKL_COMMANDS = frozenset({"run", "train", "evaluate", "embed", "plan", "validate-model"})


def entrypoint() -> None:
    from repeval.cpu import prepare_entry_point
    from repeval.ray_utils import exit_on_sigterm

    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    prepare_entry_point(reexec=command in MKL_COMMANDS)
    exit_on_sigterm()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    entrypoint()
