"""The experiment commands: ``validate``, ``plan``, the stages (``run``, ``deform``, ``embed``, ``train``,
``evaluate``) and the results (``table``, ``report``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import app
from repeval.cli.common import (
    ConfigArg,
    RetryOpt,
    RunIdOpt,
    RunsDirOpt,
    SmokeOpt,
    StoreOpt,
    StrictOpt,
    _guard,
    _load,
    _stage,
    _strict_check,
    _with_runs_dir,
    embedding_done,
    given_flags,
    with_smoke_test,
)
from repeval.words import counted, named


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
    """Validate a configuration file (nothing runs): local data paths must exist — a mirdata dataset's data and
    index too where mirdata looks when dir or index_path is not set — and mirdata splits load (checked from the data's
    index and metadata), unless --skip-data-check; every
    embedding model must be able to run — on this machine, or with RAY_ADDRESS set (a cluster, `ray job submit`)
    on each of its live nodes — unless --skip-model-check. Exit status 2: the configuration is invalid; 1: a model
    cannot run (the first line says how many, each is an error line with the reason and the fix). A regression catalog whose first target cells read as two
    whole numbers each (0,31 read with a decimal point) is warned of: set decimal: ','."""
    from repeval.config.loader import decimal_warnings, fold_split_warnings

    cfg = _load(config, check_data=not skip_data_check)
    n = len(cfg.experiments)
    head = f"{config}: valid ({counted(n, 'experiment')})"
    said, problems = ("", []) if skip_model_check else _check_models(cfg)
    if problems:  # the file is valid, the run would stop: the first line says both (exit status 1)
        head += f", but {said}:"
    typer.echo(head)
    for line in problems:  # right under the line that ends "cannot run on this machine:"
        typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
    if cfg.plugins:  # the models of your own it registers (README, "Your own model")
        from repeval.models.plugins import plugins_line

        typer.echo(plugins_line(cfg.plugins))
    checked = not skip_data_check
    for line in fold_split_warnings(cfg, data_checked=checked) + decimal_warnings(cfg, data_checked=checked):
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    if problems:
        raise typer.Exit(1)
    if said:
        typer.echo(said)


def _check_models(cfg: Any) -> tuple[str, list[str]]:
    """Check every embedding model of ``cfg`` where a run would build it: in this process (no Ray started), or with
    ``RAY_ADDRESS`` set on every live node of that cluster its actors may use; the ``models:`` line and no problem,
    or how many models cannot run where (``2 of its 3 embedding models cannot run on this machine``) and each one's
    line (:func:`~repeval.pipeline.preflight.unavailable_lines`)."""
    from repeval.models.plugins import plugins_of
    from repeval.pipeline.preflight import models_on_nodes, unavailable_here, unavailable_lines

    models = list({m.id: m for exp in cfg.experiments for m in exp.embedding_models}.values())
    n, later = len(models), ""
    if os.environ.get("RAY_ADDRESS"):  # under `ray job submit` or pointed at a cluster: what each node has
        from repeval.ray_utils import init_ray

        _guard(init_ray)  # a dashboard URL or a stopped cluster in RAY_ADDRESS: one line naming the fix
        found = _guard(lambda: models_on_nodes(cfg, models))
        problems = found.problems
        lines = unavailable_lines(problems, here=False)
        where = f"on {counted(len(found.checked), 'node')}"
        if found.unplaced:
            n -= len(found.unplaced)
            later = (
                f"; not {', '.join(found.unplaced)}: no live node has the resources its actors request (the nodes "
                "the autoscaler adds check it when its actors start)"
            )
    else:
        problems = {
            (model_id, reason): []
            for model_id, reason in _guard(lambda: unavailable_here(models, plugins_of(cfg.plugins))).items()
        }
        lines = unavailable_lines(problems, here=True)
        where = "on this machine"
    if lines:
        bad = len({model_id for model_id, _ in problems})  # (a model with two reasons, on two nodes: counted once)
        where = "on this machine" if where == "on this machine" else "on the cluster's nodes"
        return f"{bad} of its {counted(len(models), 'embedding model')} cannot run {where}", lines
    return f"models: {n} checked {where}{later}", []


@app.command()
def plan(
    config: ConfigArg,
    run_id: RunIdOpt = None,
    store: StoreOpt = None,
    runs_dir: RunsDirOpt = None,
    smoke_test: Annotated[
        bool, typer.Option("--smoke-test", help="plan the smoke test (`repeval run --smoke-test`) instead")
    ] = False,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="the GCS address (host:6379) of the Ray cluster the run goes to: plan with its resources "
            "(default: RAY_ADDRESS, else this machine)",
        ),
    ] = None,
    retry_errors: Annotated[
        bool,
        typer.Option(
            "--retry-errors",
            help="plan `repeval run --retry-errors`: the partitions with error records count as to do (their tracks "
            "computed again) and the probe grids trained on them as to train",
        ),
    ] = False,
) -> None:
    """Print the grid of work, how much of it is already done and the resources it will request."""
    from repeval.plan import make_plan
    from repeval.plan_progress import load_notes
    from repeval.rundir import RunLocation
    from repeval.runner import check_run_id
    from repeval.store import EmbeddingStore

    given_cfg = _with_runs_dir(_load(config), runs_dir)
    cfg, rid = with_smoke_test(given_cfg, smoke_test, run_id)
    smoke_of = given_cfg if cfg is not given_cfg else None  # its probe entries: what the smoke test's probe is of
    rid = rid or cfg.run.run_id
    if rid:
        _guard(lambda: check_run_id(rid))  # the run id `repeval run` would refuse, refused here too
    loc = RunLocation.open(cfg.run.runs_dir, rid) if rid else None
    run_dir = loc.local if loc is not None else None
    st_root = store or cfg.run.store
    # plan only reads: a store that does not exist yet has nothing done (and is not created here); a file given as
    # the store is an error naming what to pass, as `repeval store ls` says it — not a plan with nothing done
    st: EmbeddingStore | None = _guard(lambda: EmbeddingStore(st_root, create=False, must_exist=False))
    if st is not None and not st.exists():
        st = None
    cluster = nodes = None
    given = "--address" if address else "RAY_ADDRESS"
    address = address or os.environ.get("RAY_ADDRESS")
    if address:  # under `ray job submit` or pointed at a cluster: its exact requests (attached to, never started)
        from repeval.ray_utils import cluster_nodes

        # a dashboard URL or a stopped cluster: one line; the nodes: the run's check of its requests, node by node
        cluster, nodes = _guard(lambda: cluster_nodes(address, given))
    tune = loc.tune_storage if loc is not None else None  # a remote run's Tune experiments are read where they are
    plan = _guard(
        lambda: make_plan(
            cfg,
            st,
            run_dir,
            cluster=cluster,
            tune_storage=tune,
            smoke_of=smoke_of,
            retry_errors=retry_errors,
            nodes=nodes,
        )
    )
    if st is None:  # nothing embedded yet: what the load drops is said still (with a store, make_plan says it)
        plan.notes += _guard(lambda: load_notes(cfg))
    typer.echo(plan.text())
    if not rid:
        typer.echo(
            "note: the configuration sets no run.run_id: each `repeval run` starts a new run (run-<date>-<time>), so "
            "no probe training counts as done here — give --run-id to plan an existing run (`repeval runs` lists them)"
        )
    for note in _plan_notes(cfg, config, st_root, st is None):
        typer.echo(note)
    from repeval.cpu import huge_pages_status, mkl_status

    typer.echo(f"MKL (torch's products): {mkl_status()}")
    typer.echo(f"large tensors: {huge_pages_status()}")


def _plan_notes(cfg: Any, config: Path, st_root: str, no_store: bool) -> list[str]:
    """What a plan that finds nothing done, or a run that would stop at once, owes the user: a store that does not
    exist (run from another folder, a relative ``run.store`` is another store), the local data paths ``repeval
    run`` would refuse and the embedding models that cannot run on this machine — the plan itself only reads, so it
    says these rather than failing on them."""
    from repeval.config import ConfigError
    from repeval.config.loader import check_data_paths

    notes = []
    if no_store:
        note = f"note: no embedding store at {st_root} yet: nothing is embedded there"
        if "://" not in st_root and not Path(st_root).is_absolute():
            note += f" ({Path(st_root).resolve()}: relative paths start from the current directory)"
        notes.append(note)
    try:
        check_data_paths(cfg, str(config))
    except ConfigError as exc:
        notes += [f"note: `repeval run` would stop here: {problem}" for problem in exc.problems]
    if not os.environ.get("RAY_ADDRESS"):  # on a cluster its nodes answer, at `repeval validate` and the run's start
        from repeval.pipeline.preflight import unavailable_here, unavailable_lines

        models = list({m.id: m for exp in cfg.experiments for m in exp.embedding_models}.values())
        problems: dict[tuple[str, str], list[str]] = {(m, why): [] for m, why in unavailable_here(models).items()}
        notes += [
            f"note: {line} (`repeval run` stops on it while the model has tracks to embed)"
            for line in unavailable_lines(problems, here=True)
        ]
    return notes


def _train_line(t: dict[str, Any]) -> str:
    """The train stage's one-line summary: ``failed`` holds one row per failed probe training (a configuration and
    seed — not a Tune trial, which may train many) and per failed test cell (a trained probe and seed on one test set
    whose scores were not finite), counted apart as ``repeval runs`` and the report count them."""
    tests = sum(1 for f in t["failed"] if f.get("scenario"))
    if not t["trained"] and t["skipped"] and not t["failed"]:  # a rerun: as the embedding stage says it
        line = f"nothing to train: {counted(t['skipped'], 'probe grid')} already done"
    else:
        line = (
            f"trained {counted(t['trained'], 'probe grid')}, {t['skipped']} already done, "
            f"{counted(len(t['failed']) - tests, 'failed probe training')}"
        )
    if t.get("retested"):
        line += f", {t['retested']} tested on changed deformation scenarios without training again"
    if tests:
        line += f", {counted(tests, 'failed test cell')} (non-finite scores)"
    line += " (failed.parquet says why)" if t["failed"] else ""
    if t.get("reused_trials"):
        line += f"; {counted(t['reused_trials'], 'trial')} finished by an interrupted run reused, not trained again"
    return line + "".join(f"\n  {said}" for said in _failure_lines(t["failed"]))


def _failure_lines(failed: list[dict[str, Any]], most: int = 5) -> list[str]:
    """The failures, one line per probe configuration, test set and reason with the seeds (and folds) it struck —
    a probe that failed in every seed has no row in the table, so the run says which and why without a file to
    open: ``failed: inst / notes / mfcc-stats, probe nan (seeds 0, 1): non-finite loss at epoch 1 …``."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    for f in failed:
        if not f.get("reason"):
            continue
        params = f.get("params") or ""
        key = (f.get("task"), f.get("dataset"), f.get("model"), f.get("probe"), params, f.get("scenario"), f["reason"])
        fold = f.get("fold")
        groups.setdefault(key, []).append(str(f.get("seed")) + ("" if fold is None else f" in fold {fold}"))
    lines = []
    for (task, dataset, model, probe, params, scenario, reason), seeds in list(groups.items())[:most]:
        what = f"probe {probe}" + (f" {params}" if params not in ("", "{}") else "")
        where = f", test set {scenario}" if scenario else ""
        lines.append(f"failed: {task} / {dataset} / {model}, {what} ({named('seed', seeds)}){where}: {reason}")
    if len(groups) > most:
        lines.append(f"… and {len(groups) - most} more (failed.parquet lists every one)")
    return lines


def _print_table(ctx: Any) -> None:
    """The results table, then per task/dataset the model best on clean audio and the one that survives deformation
    best (:func:`repeval.report.summary.summary_text`, the numbers of the report's summary cards)."""
    from repeval.report.render import terminal_width
    from repeval.report.tables import table_command

    typer.echo(
        table_command([ctx.run_dir], "all_deform_all_models", "terminal", width=terminal_width(), headline=True),
        nl=False,
    )


def _next_hint(cfg: Any, where: str) -> str:
    """What to look at after a run: the report, and the robustness table when something was tested deformed —
    commands to paste into a shell: ``where`` whole (a bucket's ``?endpoint_override=…&scheme=http`` included, which
    the commands need to reach it) and quoted where a shell would split it (the ``&``)."""
    import shlex

    where = shlex.quote(where)
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
        flags = given_flags(strict=strict, retry_errors=retry_errors)
        with _stage("run", config, run_id, store, smoke_test, runs_dir, flags) as ctx:
            typer.echo(f"run {ctx.run_id} → {ctx.location.display}")
            s = runner.stage_embed(ctx, retry_errors=retry_errors, trainable=True)  # stops on an empty split first
            embedding_done()
            typer.echo(s.text())
            if strict:
                _strict_check(ctx)
            t = runner.stage_train(ctx)
            typer.echo(_train_line(t))
            runner.stage_evaluate(ctx)
            _print_table(ctx)
        # after `_stage` uploaded a bucket's run directory ("pushed N files to s3://…"), as commands and pyarrow reach
        # it: a bucket's URI with its query (`?endpoint_override=…`, which the display drops)
        typer.echo(f"results: {ctx.location.reach('results.parquet')}")
        where = ctx.location.reach()
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
        with _stage(
            "deform", config, run_id, store, smoke_test, runs_dir, given_flags(retry_errors=retry_errors)
        ) as ctx:
            s = runner.stage_embed(ctx, deformed_only=True, retry_errors=retry_errors)
            embedding_done()
            typer.echo(s.text())

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
        flags = given_flags(strict=strict, retry_errors=retry_errors)
        with _stage("embed", config, run_id, store, smoke_test, runs_dir, flags) as ctx:
            s = runner.stage_embed(ctx, retry_errors=retry_errors)
            embedding_done()
            typer.echo(s.text())
            if strict:  # inside the stage, as in `run`: status.json (`repeval runs`) says it failed --strict
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
    fmt: Annotated[
        str, typer.Option("--format", help="terminal (plain: without colours), markdown, csv, latex or html")
    ] = "terminal",
    task: Annotated[str | None, typer.Option("--task", help="only this task (--preset tasks: a, b, …)")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="only this dataset")] = None,
    scale: Annotated[
        float, typer.Option("--scale", help="multiply scores, not errors (MSE, MAE): 100 for the thesis' percentages")
    ] = 1.0,
    decimals: Annotated[
        int | None,
        typer.Option(
            "--decimals",
            help="digits after the point in every column (default: each column's from its values — 3 for scores "
            "within ±1, 4 significant digits for larger values; csv: every digit, at full precision)",
        ),
    ] = None,
) -> None:
    """Print result tables for one or more runs (several runs are combined); on a terminal, a table wider than it
    is split into blocks of columns that fit, and a table over every probe is followed by the headline `repeval run`
    prints (the best model with the probe chosen for it)."""
    from repeval.report.render import terminal_width
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
                width=terminal_width(),
                headline=True,
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

    # a run directory this user may not write to (another's, read-only storage): the fix is report's own --out
    _guard(go, storage_hint=REPORT_OUT_HINT)


#: what to check when `repeval report` cannot write its file (``_guard``'s storage hint)
REPORT_OUT_HINT = (
    "the report's folder is not a writable directory with free space: write it elsewhere with `repeval report RUN "
    "--out FILE.html`"
)
