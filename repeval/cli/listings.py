"""The listings: ``repeval runs``, ``schema``, ``datasets``, ``models``, ``validate-model`` — what repeval knows and
has run, read without a store (``repeval store``: :mod:`repeval.cli.store`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import app
from repeval.cli.common import cli_path, windows_checked
from repeval.cli.errors import _guard
from repeval.cli.paths import each_windows_checked


@app.command("runs")
def runs_cmd(
    runs_dir: Annotated[
        str | None,
        typer.Argument(callback=cli_path, help="runs directory (path or pyarrow filesystem URI; default: runs)"),
    ] = None,
    option: Annotated[
        str | None,
        typer.Option(
            "--runs-dir", callback=cli_path, help="the runs directory, as an option (as `repeval run` takes it)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """List the runs under a runs directory (a run directory given instead is listed alone): state, tasks, models,
    test set (a digest of the saved test splits: runs scored on the same test sets show the same), result rows,
    failed trainings and failed test cells, last update."""
    from repeval.report.runs import runs_text

    def go() -> None:
        if runs_dir and option and not _same_place(runs_dir, option):
            raise ValueError(f"two runs directories given ({runs_dir} and --runs-dir {option}): give one")
        typer.echo(runs_text(runs_dir or option or "runs", as_json))

    _guard(go, writes=False)  # reads only: a storage error gets a read fix


def _same_place(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` name one folder: ``runs/`` (a shell's completion) and ``runs``, ``./runs`` and an
    absolute path to it, a bucket's URI with or without its last ``/``."""
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return os.path.realpath(a) == os.path.realpath(b)


@app.command("schema")
def schema_cmd(
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            callback=windows_checked,
            help="write it to this file (a folder — one that exists, or written with a trailing /: its "
            "repeval.schema.json) instead of printing it",
        ),
    ] = None,
) -> None:
    """Print the configuration's JSON Schema (for editors; configs/repeval.schema.json is a copy)."""
    from repeval.config.jsonschema import schema_text

    def go() -> None:
        if out is None:
            typer.echo(schema_text(), nl=False)
        else:
            # a folder: into it, as `report --out` — also one not made yet, named with its trailing slash (a Path
            # drops it: `--out editor/` wrote a file named editor)
            folder = Path(out).is_dir() or out.endswith(("/", os.sep))
            path = Path(out) / "repeval.schema.json" if folder else Path(out)
            path.parent.mkdir(parents=True, exist_ok=True)  # as `report --out` and `data check --out` do
            path.write_text(schema_text())
            typer.echo(f"schema: {path} (first line of a config: `# yaml-language-server: $schema={path.name}`)")

    # it writes no store or run directory: the fix for a file it cannot write is its own --out
    _guard(go, storage_hint=SCHEMA_OUT_HINT)


#: what to check when ``repeval schema --out`` cannot write its file (``_guard``'s storage hint)
SCHEMA_OUT_HINT = (
    "the --out file's folder is not a writable directory with free space: give `repeval schema --out` another path, "
    "or print it (`repeval schema > FILE`)"
)


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


#: ``--plugin SPEC``, repeatable: a module or ``.py`` file that registers models of your own
_PluginOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--plugin",
        callback=each_windows_checked,
        help="a module (my_team.models) or .py file that registers embedding models of your own, as in a config's "
        "plugins: (repeatable)",
    ),
]


@app.command("models")
def models_cmd(plugin: _PluginOpt = None) -> None:
    """List embedding models with their availability (weights present, extra installed); those of installed plugins
    (entry points of group repeval.models) and of --plugin too, each marked with its plugin."""
    from repeval.models.validate import list_models, sizes_text

    def go() -> None:
        from repeval.models.plugins import load_entry_points

        at_build = False
        for m in list_models(plugin or ()):
            state = "available" if m["available"] else f"unavailable: {m['reason']}"
            dims = sizes_text(m["sample_rate_hz"], m["embedding_dim"])
            at_build |= "at build" in dims
            origin = f" (plugin {m['plugin']})" if m["plugin"] else ""
            typer.echo(f"{m['id']:<24} {dims:<24} {state}{origin}")
        if at_build:
            typer.echo(
                "at build: a size the model sets when built, from its weights or params — `repeval validate-model "
                "NAME` builds it and says it; a model of your own can declare it with the classmethod declared_sizes"
            )
        load_entry_points()  # an installed plugin that cannot be used: its line after the list, exit status 1

    _guard(go)


@app.command("validate-model")
def validate_model_cmd(
    name: Annotated[str, typer.Argument(help="model id (e.g. mfcc-stats, crepe-tiny)")],
    dummy_weights: Annotated[
        Path | None,
        typer.Option(
            "--dummy-weights",
            callback=windows_checked,
            help="folder for stand-in weights of families without shipped ones",
        ),
    ] = None,
    plugin: _PluginOpt = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            help="one of the model's params, as in a config's params: (weights_path=/models/cnn.pt; the value read "
            "as YAML; repeatable)",
        ),
    ] = None,
) -> None:
    """Feed noise of awkward lengths and sample rates; check shapes, dtypes, declared sizes, determinism."""
    from repeval.models.validate import model_params_of, validate_model

    def go() -> None:
        from repeval.models.dummies import DUMMIES

        params = model_params_of(param or ())
        cfg: Any = {"type": name, "params": params} if params else name
        report = validate_model(cfg, dummy_weights=dummy_weights, plugins=plugin or ())
        typer.echo(report.summary())
        why = report.unavailable or ""  # stand-in weights do not help a param's problem (layers: 7 of 2 hidden states)
        weights = bool(why) and (not why.startswith("params.") or why.startswith("params.model"))
        if weights and dummy_weights is None and name in DUMMIES:
            typer.echo(
                f"to check its code without its weights: `repeval validate-model {name} --dummy-weights DIR` (stand-in "
                "weights, written into DIR)"
            )
        if not report.ok:
            raise typer.Exit(1)

    _guard(go)
