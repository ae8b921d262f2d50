"""The experiment commands: the stages (``run``, ``deform``, ``embed``, ``train``, ``evaluate``) and the results
(``table``, ``report``); ``validate`` and ``plan``, which look before a run, are in :mod:`repeval.cli.planning`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import app
from repeval.cli.common import (
    ConfigArg,
    RetryModelOpt,
    RetryOpt,
    RunIdOpt,
    RunsDirOpt,
    SmokeOpt,
    StoreOpt,
    StrictOpt,
    _stage,
    _strict_check,
    cli_paths,
    embedding_done,
    given_flags,
    windows_checked,
)
from repeval.cli.errors import _guard
from repeval.run.left_out import left_out_error
from repeval.words import counted, named


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
    retry_model: RetryModelOpt = None,
) -> None:
    """Run every stage (embed with deformations, train, evaluate); resumable."""
    from repeval import runner

    def go() -> None:
        flags = given_flags(strict=strict, retry_errors=retry_errors, retry_models=retry_model)
        with _stage("run", config, run_id, store, smoke_test, runs_dir, flags) as ctx:
            typer.echo(f"run {ctx.run_id} → {ctx.location.display}")
            s = runner.stage_embed(
                ctx, retry_errors=retry_errors, trainable=True, retry_models=frozenset(retry_model or ())
            )  # stops on an empty split first
            embedding_done()
            typer.echo(s.text())
            if strict:
                _strict_check(ctx)
            t = runner.stage_train(ctx)
            typer.echo(_train_line(t))
            runner.stage_evaluate(ctx)
            _print_table(ctx)
            left = {**t.get("left_out", {}), **s.models_failed}
            if left:  # status.json and the exit status (3) say the run is incomplete
                raise left_out_error(left, f"the others' results are in {ctx.location.reach('results.parquet')}")
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
    retry_model: RetryModelOpt = None,
) -> None:
    """Embed deformed audio only (deformations are applied on the fly; deformed audio is not stored)."""
    from repeval import runner

    def go() -> None:
        with _stage(
            "deform",
            config,
            run_id,
            store,
            smoke_test,
            runs_dir,
            given_flags(retry_errors=retry_errors, retry_models=retry_model),
        ) as ctx:
            s = runner.stage_embed(
                ctx, deformed_only=True, retry_errors=retry_errors, retry_models=frozenset(retry_model or ())
            )
            embedding_done()
            typer.echo(s.text())
            if s.models_failed:
                raise left_out_error(s.models_failed, "the others embedded")

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
    retry_model: RetryModelOpt = None,
) -> None:
    """Compute clean and deformed embeddings into the store."""
    from repeval import runner

    def go() -> None:
        flags = given_flags(strict=strict, retry_errors=retry_errors, retry_models=retry_model)
        with _stage("embed", config, run_id, store, smoke_test, runs_dir, flags) as ctx:
            s = runner.stage_embed(ctx, retry_errors=retry_errors, retry_models=frozenset(retry_model or ()))
            embedding_done()
            typer.echo(s.text())
            if strict:  # inside the stage, as in `run`: status.json (`repeval runs`) says it failed --strict
                _strict_check(ctx)
            if s.models_failed:
                raise left_out_error(s.models_failed, "the others embedded")

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
            if t.get("left_out"):
                typer.echo(_train_line(t))
                raise left_out_error(t["left_out"], "the others trained")
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
        list[str],
        typer.Argument(
            metavar="RUN",
            callback=cli_paths,
            help="run directories (runs/<run_id>, or a URI such as s3://bucket/runs/<run_id>)",
        ),
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
    from repeval.run_open import open_run

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
        list[str],
        typer.Argument(
            metavar="RUN",
            callback=cli_paths,
            help="run directories (runs/<run_id>, or a URI such as s3://bucket/runs/<run_id>)",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", callback=windows_checked, help="HTML file to write (default: report.html in the first run)"
        ),
    ] = None,
) -> None:
    """Write a self-contained HTML report."""

    def go() -> None:
        from repeval.report.html import write_report
        from repeval.run_open import open_run

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
