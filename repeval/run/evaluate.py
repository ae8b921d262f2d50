"""The evaluate stage: every trained grid's test rows into ``results.parquet``, mean ± std over seeds into
``summary.parquet``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from repeval.config import Config
from repeval.run.context import RunContext, config_yaml, group_name
from repeval.run.files import _write_atomic, unreadable_parquet
from repeval.rundir import (
    CONFIG_KEY,
    EVALUATION_KEY,
    GROUPS_KEY,
    UNTRAINED_KEY,
    EarlierStageUnfinished,
    every_training_failed,
    first_failures,
    grid_name,
)
from repeval.words import counted

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def stage_evaluate(ctx: RunContext) -> pa.Table:
    """Collect every group's test rows into ``results.parquet`` and mean ± std over seeds into ``summary.parquet``."""
    found = sorted((ctx.run_dir / "groups").glob("*.parquet"))
    cfg = getattr(ctx, "cfg", None)
    wanted = None if cfg is None else _wanted_groups(cfg)  # None: a bare run directory, every group in it
    files = _configured_groups(ctx, found, wanted)
    if not files:
        # every grid trained, every training of each failed: no step out of order — trained again they fail alike
        left = wanted - _left_out_groups(ctx) if wanted is not None else set()
        failed = _failed_trainings(ctx.run_dir, left) if left else {}
        if failed and set(failed) == left:
            raise ValueError(f"nothing to evaluate in {ctx.run_dir}: {every_training_failed(failed)}")
        other = f" of this configuration ({len(found)} of another, named above)" if found else ""
        raise EarlierStageUnfinished(
            f"no trained probe grid{other} in {ctx.run_dir}: train them first — `repeval train CONFIG`, or `repeval run "
            "CONFIG`, which also resumes an interrupted run"
        )
    from repeval.run.fold_overlap import with_fold_overlap
    from repeval.tuning.results import seed_summary, with_result_columns

    for f in files:
        why = unreadable_parquet(f)
        if why is not None:  # cut short or corrupted: the grid's results are trained anew (group_trained)
            raise EarlierStageUnfinished(
                f"{f} is unreadable ({why}): cut short or corrupted; `repeval train CONFIG` trains probe grid "
                f"{f.stem} again and writes it anew (`repeval run CONFIG` also evaluates)"
            )

    table = pa.concat_tables([with_result_columns(pq.read_table(f)) for f in files])
    # how much each k-fold dataset's folds share test tracks, from the splits the run saved: the interval of the mean
    # over its folds allows for it (a grid's file, written per fold, cannot know the other folds)
    table = with_fold_overlap(table, ctx.run_dir)
    # an evaluation stopped between the two writes must not leave the summary of other results beside these: the old
    # summary goes first, and both files carry the same hash of the results (rundir.summary_mismatch checks it)
    (ctx.run_dir / "summary.parquet").unlink(missing_ok=True)
    mark = {EVALUATION_KEY: _table_hash(table).encode()}
    config = {CONFIG_KEY: config_yaml(cfg).encode()} if cfg is not None else {}
    if wanted is not None:
        config[GROUPS_KEY] = json.dumps(sorted(wanted)).encode()
        _name_other_failures(ctx.run_dir, wanted)
        # the configuration's grids not trained yet (an interrupted `train`): the results lack them, and the run is
        # not complete — `repeval runs` says so, and the CLI keeps an interrupted run's state (cli.common._stage); not
        # those of a model left out (said as such, models_left_out.json: `repeval run` would leave it out again)
        ctx.untrained = sorted(wanted - {f.stem for f in files} - _left_out_groups(ctx))
        if ctx.untrained:
            config[UNTRAINED_KEY] = json.dumps(ctx.untrained).encode()
        # the test tracks scored on embeddings of partial audio (audio_note): `repeval runs` and the report say so
        from repeval.run.partial_audio import PARTIAL_KEY, partial_test_tracks

        partial = partial_test_tracks(ctx)
        if partial:
            config[PARTIAL_KEY] = json.dumps(partial).encode()
    _write_atomic(_with_metadata(table, {**mark, **config}), ctx.run_dir / "results.parquet")
    # mean ± std over seeds per cell
    _write_atomic(_with_metadata(seed_summary(table), mark), ctx.run_dir / "summary.parquet")
    return table


def _configured_groups(ctx: RunContext, files: list[Path], wanted: set[str] | None) -> list[Path]:
    """The groups' result files of the configuration's grids ``wanted`` (:func:`_wanted_groups`). A file of a group the configuration no longer has (a
    model, dataset or task removed or renamed since it was trained, fewer folds) is left out of the results, and
    named; so is each group of the configuration not trained yet (an interrupted ``train``), whose cells the results
    then lack."""
    if wanted is None:  # a bare run directory: every group in it
        return files
    have = {f.stem for f in files}
    stale = sorted(have - wanted)
    if stale:
        log.warning(
            "%s in %s %s not of this configuration (a model, dataset or task removed or renamed since they were "
            "trained, or fewer folds): %s — left out of results.parquet; delete them, or list them in the "
            "configuration again to include them",
            counted(len(stale), "probe grid"), ctx.run_dir / "groups", _are(len(stale)),
            ", ".join(stale[:5]) + (", …" if len(stale) > 5 else ""),
        )  # fmt: skip
    missing = sorted(wanted - have - _left_out_groups(ctx))  # a model left out is said as such (models_left_out.json)
    failed = _failed_trainings(ctx.run_dir, set(missing)) if missing and len(missing) < len(wanted) else {}
    if failed:  # trained, every training failed: trained again as configured, they fail alike
        log.warning("%s", every_training_failed(failed))
        missing = [g for g in missing if g not in failed]
    if missing and len(missing) < len(wanted):
        fix = (
            getattr(ctx, "untrained_fix", "")
            or "`repeval run` (or `repeval train`) with this configuration trains them"
        )
        log.warning(
            "%s of this configuration %s not trained yet: %s — the results lack them; %s",
            counted(len(missing), "probe grid"), _are(len(missing)),
            ", ".join(missing[:5]) + (", …" if len(missing) > 5 else ""), fix,
        )  # fmt: skip
    return [f for f in files if f.stem in wanted]


def _failed_trainings(run_dir: Path, grids: set[str]) -> dict[str, str]:
    """Of ``grids`` (without results), those whose trainings ``failed.parquet`` records as failed, each with its
    first failure: ``probe M1, seed 0: <reason>``."""
    from repeval.run.train import read_failed

    return first_failures(read_failed(run_dir / "failed.parquet"), grids)


def _left_out_groups(ctx: RunContext) -> set[str]:
    """The probe grids of the embedding models the run left out (:mod:`repeval.run.left_out`)."""
    from repeval.run.left_out import left_out_models

    left = left_out_models(ctx.run_dir)
    return {g for m in left for g in _wanted_groups(ctx.cfg, m)} if left and ctx.cfg is not None else set()


def _are(n: int) -> str:
    """The verb of a count's noun: "1 probe grid is", "2 probe grids are"."""
    return "is" if n == 1 else "are"


def _wanted_groups(cfg: Config, model: str | None = None) -> set[str]:
    """The names of ``cfg``'s probe grids (:func:`group_name`); ``model``: of that embedding model only."""
    return {
        group_name(exp, ds.name, m.id, fold)
        for exp in cfg.experiments
        for ds in exp.datasets
        for m in exp.embedding_models
        if model is None or m.id == model
        for fold in (range(ds.n_folds) if ds.split_type == "all" else [None])
    }


def _name_other_failures(run_dir: Path, wanted: set[str]) -> None:
    """Warn about the rows of ``failed.parquet`` of grids not of the configuration (``wanted``): like their
    ``groups/`` files, they are left out — of what ``repeval runs`` and the report count (``GROUPS_KEY``). One cut
    short or corrupted is moved aside, said in a warning (:func:`repeval.run.train.read_failed`), not the end of the
    evaluation: a run whose grids are all trained could not be evaluated without finding and deleting it by hand."""
    from repeval.run.train import read_failed

    path = run_dir / "failed.parquet"
    t = read_failed(path)
    other = [n for n in (grid_name(r["task"], r["dataset"], r["model"], r["fold"]) for r in t) if n not in wanted]
    if other:
        names = sorted(set(other))
        log.warning(
            "%s in %s %s of %s not of this configuration (a model, dataset or task removed or renamed since they "
            "were trained, or fewer folds): %s — left out of the failures `repeval runs` and the report count; they "
            "stay in the file",
            counted(len(other), "failure"), path, _are(len(other)),
            "a probe grid" if len(names) == 1 else "probe grids",
            ", ".join(names[:5]) + (", …" if len(names) > 5 else ""),
        )  # fmt: skip


def _table_hash(table: pa.Table) -> str:
    """sha256 of ``table``'s Arrow IPC stream: the same rows give the same hash."""
    import hashlib

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _with_metadata(table: pa.Table, extra: dict[bytes, bytes]) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
