"""The commands that look before a run: ``validate`` (is the configuration valid, can its data load and its models
run here) and ``plan`` (the grid of work, how much is done, the resources it will request) — nothing runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import app
from repeval.cli.common import (
    ConfigArg,
    RetryModelOpt,
    RunIdOpt,
    RunsDirOpt,
    StoreOpt,
    _load,
    _with_runs_dir,
    with_smoke_test,
)
from repeval.cli.errors import _guard
from repeval.config.stdin import config_name
from repeval.uri_text import shown
from repeval.words import counted


@app.command()
def validate(
    config: ConfigArg,
    skip_data_check: Annotated[
        bool,
        typer.Option(
            "--skip-data-check",
            help="do not check that local data paths exist, nor the files deformation steps read (sounds_path, "
            "ir_path): a config for elsewhere",
        ),
    ] = False,
    skip_model_check: Annotated[
        bool,
        typer.Option(
            "--skip-model-check",
            help="do not check that the embedding models can run (their packages and weights) here, or with "
            "RAY_ADDRESS set on the cluster's nodes (a config for elsewhere)",
        ),
    ] = False,
    smoke_test: Annotated[
        bool,
        typer.Option(
            "--smoke-test",
            help="validate the smoke test (`repeval run --smoke-test`), as run.smoke_test: true does: an ASHA "
            "scheduler a full run would refuse is noted, not refused (the smoke test trains without it)",
        ),
    ] = False,
) -> None:
    """Validate a configuration file (nothing runs): local data paths must exist — a mirdata dataset's data and
    index too where mirdata looks when dir or index_path is not set, and the audio files deformation steps read
    (sounds_path, ir_path) — and mirdata splits load (checked from the data's index and metadata), unless
    --skip-data-check (a note names each file path left unchecked); every
    embedding model must be able to run — on this machine, or with RAY_ADDRESS set (a cluster, `ray job submit`)
    on each of its live nodes — unless --skip-model-check. Exit status 2: the configuration is invalid; 1: a model
    cannot run (the first line says how many, each is an error line with the reason and the fix). A regression catalog whose first target cells read as two
    whole numbers each (0,31 read with a decimal point) is warned of: set decimal: ','."""
    from repeval.config.embed import default_p_warnings, deform_splits_warnings, unchecked_files_notes
    from repeval.config.loader import decimal_warnings, fold_split_warnings
    from repeval.pipeline.partition_conflicts import one_stream_notes

    cfg = _load(config, check_data=not skip_data_check, smoke_test=smoke_test, files=not skip_data_check)
    n = len(cfg.experiments)
    head = f"{config_name(config)}: valid ({counted(n, 'experiment')})"
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
    warnings = default_p_warnings(cfg.experiments) + deform_splits_warnings(cfg)
    warnings += fold_split_warnings(cfg, data_checked=checked)
    for line in warnings + decimal_warnings(cfg, data_checked=checked):
        typer.secho(f"warning: {shown(line)}", fg=typer.colors.YELLOW, err=True)
    notes = unchecked_files_notes(cfg.experiments) if skip_data_check else _guard(lambda: data_load_notes(cfg))
    notes += one_stream_notes(cfg)  # one model id under other backends: which one runs
    for line in notes + cfg.smoke_asha_notes(smoke_test):  # a smoke test runs without them: a full run would be refused
        typer.echo(f"note: {shown(line)}")
    if problems:
        raise typer.Exit(1)
    if said:
        typer.echo(said)


def data_load_notes(cfg: Any) -> list[str]:
    """What the datasets' load would drop (missing audio, duplicate ids, unknown splits or labels) and its other
    findings, as `repeval plan` and `repeval run` say them: a valid file's rows a run would leave out were said by
    plan alone."""
    import logging

    from repeval.plan_progress import load_notes

    logger = logging.getLogger("repeval")
    level = logger.level
    logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))  # the loads' own lines: the notes say them
    try:
        return load_notes(cfg)
    finally:
        logger.setLevel(level)


def _check_models(cfg: Any) -> tuple[str, list[str]]:
    """Check every embedding model of ``cfg`` where a run would build it: in this process (no Ray started), or with
    ``RAY_ADDRESS`` set on every live node of that cluster its actors may use; the ``models:`` line and no problem,
    or how many models cannot run where (``2 of its 3 embedding models cannot run on this machine``) and each one's
    line (:func:`~repeval.pipeline.preflight.unavailable_lines`)."""
    from repeval.models.plugins import plugins_of
    from repeval.pipeline.preflight import built_models, models_on_nodes, unavailable_here, unavailable_lines

    models = built_models(cfg)
    n, later = len({m.id for m in models}), ""
    if os.environ.get("RAY_ADDRESS"):  # under `ray job submit` or pointed at a cluster: what each node has
        from repeval.ray_utils import init_ray

        _guard(init_ray)  # a dashboard URL or a stopped cluster in RAY_ADDRESS: one line naming the fix
        found = _guard(lambda: models_on_nodes(cfg, models))
        problems = found.problems
        lines = unavailable_lines(problems, here=False)
        where = f"on {counted(len(found.checked), 'node')}"
        if found.unplaced:
            unplaced = list(dict.fromkeys(found.unplaced))  # an id two streams run (other datasets, params): once
            n -= len(unplaced)
            later = (
                f"; not {', '.join(unplaced)}: no live node has the resources its actors request (the nodes "
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
        return f"{bad} of its {counted(len({m.id for m in models}), 'embedding model')} cannot run {where}", lines
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
    retry_model: RetryModelOpt = None,
) -> None:
    """Print the grid of work, how much of it is already done and the resources it will request."""
    from repeval.pipeline.failing import check_retry_models
    from repeval.plan import make_plan
    from repeval.plan_progress import load_notes
    from repeval.rundir import RunLocation
    from repeval.runner import check_run_id
    from repeval.store import EmbeddingStore

    given_cfg = _with_runs_dir(_load(config, smoke_test=smoke_test), runs_dir)
    cfg, rid = with_smoke_test(given_cfg, smoke_test, run_id)
    smoke_of = given_cfg if cfg is not given_cfg else None  # its probe entries: what the smoke test's probe is of
    retried = _guard(lambda: check_retry_models(cfg, retry_model or ()))  # a name that is no model: refused
    rid = rid or cfg.run.run_id
    if rid:
        _guard(lambda: check_run_id(rid))  # the run id `repeval run` would refuse, refused here too
    loc = RunLocation.open(cfg.run.runs_dir, rid) if rid else None
    run_dir = loc.local if loc is not None else None
    st_root = store or cfg.run.store
    # plan only reads: a store that does not exist yet has nothing done (and is not created here); a file given as
    # the store is an error naming what to pass, as `repeval store ls` says it — not a plan with nothing done
    st: EmbeddingStore | None = _guard(lambda: EmbeddingStore(st_root, create=False, must_exist=False))
    if st is not None and not _guard(st.exists):  # a root refused to these credentials: one line naming them
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
            retry_models=retried,
        )
    )
    if st is None:  # nothing embedded yet: what the load drops is said still (with a store, make_plan says it)
        plan.notes += _guard(lambda: load_notes(cfg, plan))  # and its rows: every one to embed
    typer.echo(shown(plan.text()))  # a URI as the user wrote it
    if not rid:
        typer.echo(
            "note: the configuration sets no run.run_id: each `repeval run` starts a new run (run-<date>-<time>), so "
            "no probe training counts as done here — give --run-id to plan an existing run (`repeval runs` lists them)"
        )
    for note in _plan_notes(cfg, config, st_root, st is None):
        typer.echo(shown(note))
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
    from repeval.pipeline.partition_conflicts import one_stream_notes

    notes = [f"note: {line}" for line in one_stream_notes(cfg)]
    if no_store:
        note = f"note: no embedding store at {st_root} yet: nothing is embedded there"
        if "://" not in st_root and not Path(st_root).is_absolute():
            note += f" ({Path(st_root).resolve()}: relative paths start from the current directory)"
        notes.append(note)
    try:
        check_data_paths(cfg, config_name(config))
    except ConfigError as exc:
        notes += [f"note: `repeval run` would stop here: {problem}" for problem in exc.problems]
    if not os.environ.get("RAY_ADDRESS"):  # on a cluster its nodes answer, at `repeval validate` and the run's start
        from repeval.pipeline.preflight import built_models, unavailable_here, unavailable_lines

        models = built_models(cfg)
        problems: dict[tuple[str, str], list[str]] = {(m, why): [] for m, why in unavailable_here(models).items()}
        notes += [
            f"note: {line} (`repeval run` stops on it while the model has tracks to embed)"
            for line in unavailable_lines(problems, here=True)
        ]
    return notes
