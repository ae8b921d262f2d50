"""The train stage: the pending probe grids trained in batches, each committed to the run directory as it finishes."""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.run.context import RunContext, fold_suffix, group_name, intervals_said_once
from repeval.run.files import _read_json, _write_atomic, _write_text_atomic
from repeval.run.groups import _augment, _Pending, _pending_group, _retested, partitions_written_ns, target_name
from repeval.run.rows import fold_rows, load_rows
from repeval.run.split_check import failed_split, fold_hint, unassigned_split, untrainable
from repeval.rundir import EarlierStageUnfinished
from repeval.words import counted

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def stage_train(ctx: RunContext) -> dict[str, Any]:
    """Train (and test) every probe grid whose results are not in the run directory yet.

    Per group: ``groups/<group>.parquet`` (test rows with bootstrap intervals), ``history/``,
    ``probes/`` (every configuration, its parameters and which was selected), ``confusion/``.
    Pending groups run in batches whose embeddings fit in ``run.train_batch_mb``, each batch one Tune
    experiment under ``tune/`` (trial actors reused across its groups); an interrupted batch is resumed. The
    warnings that an interval rests on few resamples are one line (:func:`intervals_said_once`).
    """
    if not ctx.store.exists():  # before Ray starts: nothing can be trained (make_context(read_only=True) made none)
        where = ctx.store.uri if "://" in ctx.store.uri else ctx.store.root
        raise EarlierStageUnfinished(
            f"no embedding store at {where}: the probes train on the embeddings stored there — run `repeval embed "
            "CONFIG` (or `repeval run CONFIG`) with this configuration and store first, or give the --store that "
            "holds them — nothing was trained"
        )
    with intervals_said_once(ctx.cfg):
        return _stage_train(ctx)


def _stage_train(ctx: RunContext) -> dict[str, Any]:
    from repeval.ray_utils import init_ray
    from repeval.tuning.grid import data_nbytes

    load_rows(ctx)  # Ray starts only once there is a grid to train: a rerun with every grid done does not wait for it
    _record_environment(ctx)
    groups_dir = ctx.run_dir / "groups"
    groups_dir.mkdir(exist_ok=True)
    (ctx.run_dir / "history").mkdir(exist_ok=True)
    summary: dict[str, Any] = {
        "trained": 0, "skipped": 0, "retested": 0, "failed": [], "trial_seconds": 0.0, "wall_seconds": 0.0,
        "reused_trials": 0,
    }  # fmt: skip
    budget = ctx.cfg.run.train_batch_mb * 2**20
    pending: list[_Pending] = []
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            scenarios = list(exp.scenarios_for(ds))
            for m in exp.embedding_models:
                for fold, rows in fold_rows(ctx, ei, ds.name).items():
                    item = _pending_group(ctx, ei, exp, ds.name, m.id, scenarios, fold, rows, summary)
                    if item is not None:
                        pending.append(item)
    # every group that cannot be trained is named before any probe trains (groups train in batches: a
    # problem found while assembling a later batch would otherwise stop the run after hours of work)
    embedded: dict[tuple[str, str, str], pa.Array] = {}  # (dataset, model, scenario) → its partition's track ids
    pending, summary["left_out"] = _leave_out(ctx, pending, embedded)
    problems = [p for p in (_empty_split(ctx, item, embedded) for item in pending) if p]
    if problems:
        message = untrainable([why for why, _ in problems])
        if all(unembedded for _, unembedded in problems):  # `train` before `embed`: a step out of order, no failure
            raise EarlierStageUnfinished(message)
        raise ValueError(message)
    _say_changed_code(ctx, pending)
    pending = [item for item in pending if not _retested(ctx, item, summary)]
    if pending:  # frames held whole by the trials of a frame-level grid it trains: said (a warning past a node's
        from repeval.plan_memory import warn_frame_memory  # memory) before any

        init_ray()
        warn_frame_memory(ctx.cfg, ctx.store, {(i.exp.task.name, i.dataset, i.model) for i in pending})
    batch: list[tuple[_Pending, Any, Any]] = []
    size = 0
    for item in pending:
        ref, data = _group_data(ctx, item)
        nbytes = data_nbytes(data)
        if batch and size + nbytes > budget:  # the batch is full: train it, then start the next
            _train_batch(ctx, batch, summary)
            batch, size = [], 0
        batch.append((item, ref, data))
        size += nbytes
    if batch:
        _train_batch(ctx, batch, summary)
    return summary


def _leave_out(
    ctx: RunContext, pending: list[_Pending], embedded: dict[tuple[str, str, str], pa.Array]
) -> tuple[list[_Pending], dict[str, str]]:
    """The pending groups to train, and the embedding models left out (model id → why): those whose stream the
    embedding stage stopped (``models_left_out.json``), and those with no embedded track of a dataset, or of one of
    its splits (:func:`_failed_embedding`) — while some other model of the run remains to be trained on; when none
    does, nothing is left out (the groups' problems are said as before: nothing can be trained). Recorded for the
    report and ``repeval runs``."""
    from repeval.run.left_out import read_left_out, record_left_out

    stages = read_left_out(ctx.run_dir)
    stopped = {**stages.get("deform", {}), **stages.get("embed", {})}  # the embedding stage's (`repeval deform`'s)
    none_embedded: dict[tuple[str, str], str] = {}  # (model, dataset) → why
    for item in pending:
        key = (item.model, item.dataset)
        if item.model not in stopped and key not in none_embedded and (why := _failed_embedding(ctx, item, embedded)):
            none_embedded[key] = why
    left = {m: why for m, why in stopped.items() if any(item.model == m for item in pending)}
    for (model, _), why in none_embedded.items():
        left[model] = f"{left[model]}; {why}" if model in left else why
    models = {m.id for exp in ctx.cfg.experiments for m in exp.embedding_models}
    if not left or models <= {*stopped, *(m for m, _ in none_embedded)}:  # no model left to train: said as before
        record_left_out(ctx.run_dir, "train", {})
        return pending, {}
    said = {m: why for m, why in left.items() if m not in stopped}
    record_left_out(ctx.run_dir, "train", said)
    for why in said.values():
        log.error("%s", why)
    keep = [item for item in pending if item.model not in stopped and (item.model, item.dataset) not in none_embedded]
    return keep, left


def _failed_embedding(ctx: RunContext, item: _Pending, embedded: dict[tuple[str, str, str], pa.Array]) -> str | None:
    """Why ``item``'s model cannot be trained on its dataset for the model's own failures: its complete partition
    holds none of the dataset's tracks, or none of a split's (each an error record) — a split with no track to embed,
    or a partition not complete, is no model's (:func:`_empty_split` says them); None when it can be."""
    from repeval.pipeline.stages import CLEAN

    part = ctx.store.partition(item.dataset, item.model, CLEAN)
    if not part.complete or not item.rows.num_rows:
        return None
    ids = _embedded_ids(ctx, item, CLEAN, embedded)
    fix = (  # that model's error records: the others' stay as they are (--retry-errors retries them too)
        f"fix the model or the files, then rerun with --retry-model {shlex.quote(item.model)} (--retry-errors: every "
        "model's error records)"
    )
    if not len(ids):
        return (
            f"embedding model '{item.model}' embedded none of the {counted(item.rows.num_rows, 'track')} of "
            f"{item.dataset}: each is an error record (`{part.show_errors_command()}` says why) — {fix}"
        )
    ds = next(d for d in item.exp.datasets if d.name == item.dataset)
    task = item.exp.task.name
    if unassigned_split(ctx, item.ei, task, ds, item.fold, item.rows):
        return None
    errors = part.show_errors_command()
    failed = failed_split(ctx, item.ei, task, item.dataset, item.model, item.fold, item.rows, ids, errors)
    return f"embedding model '{item.model}': {failed}; {fix}" if failed else None


def _say_changed_code(ctx: RunContext, pending: list[_Pending]) -> None:
    """Warn, once per model, when the rows the pending groups train or test on were embedded with another version
    of the model's plugin or of a file it names (:func:`~repeval.models.provenance.changed_code_note`); the store's
    records are left as they are (the embedding stage updates them)."""
    from repeval.models import resolve_model
    from repeval.models.provenance import changed_code_note, plugin_code
    from repeval.pipeline.stages import CLEAN
    from repeval.warn import warn_once

    codes: dict[str, Any] = {}  # model → its family and code now (None: repeval's own), taken once
    said: set[str] = set()
    read: set[tuple[str, str, str]] = set()  # partitions whose record was read: once, not once per fold or task
    for item in pending:
        if item.model in said:
            continue
        if item.model not in codes:
            fam, params = resolve_model(next(m for m in item.exp.embedding_models if m.id == item.model))
            codes[item.model] = (fam, plugin_code(fam, params))
        fam, code = codes[item.model]
        for sid in [CLEAN, *item.scenarios] if code is not None else []:
            if (key := (item.dataset, item.model, sid)) in read:
                continue
            read.add(key)
            note = changed_code_note(ctx.store.partition(*key), item.model, fam, code, "train")
            if note is not None:
                warn_once(log, ("model_code", item.model), "%s", note)
                said.add(item.model)
                break


def _group_data(ctx: RunContext, item: _Pending) -> tuple[Any, Any]:
    """``item``'s embeddings loaded into the object store: their reference and read-only views of them (the loaded
    arrays are dropped, so a batch's embeddings are held once, where its trials read them)."""
    from repeval.tuning.grid import share

    return share(group_probe_data(ctx, item, item.scenarios, target_name(item.exp, item.dataset)))


def group_probe_data(ctx: RunContext, item: _Pending, scenarios: list[str], target: str | None) -> Any:
    """``item``'s embeddings as its probes train and test on (:func:`repeval.tuning.data.probe_data`): its splits, and
    the test sets of ``scenarios``; ``target`` names a regression target given without a name. A refusal
    (``ValueError``) says how a k-fold split is set when that is its cause (:func:`_fold_hint`)."""
    from repeval.tuning.data import probe_data

    task = item.exp.task
    try:
        return probe_data(
            task.effective_type, item.rows, ctx.store, item.dataset, item.model, scenarios,
            aggregation=task.aggregation, augment=_augment(item.exp, item.dataset), target=target,
            folds=item.fold is not None,
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{exc}{_fold_hint(ctx, item)}") from None


def _fold_hint(ctx: RunContext, item: _Pending) -> str:
    return fold_hint(ctx, item.ei, item.dataset, item.fold)


def _empty_split(
    ctx: RunContext, item: _Pending, embedded: dict[tuple[str, str, str], pa.Array]
) -> tuple[str, bool] | None:
    """Why ``item`` cannot be trained — a split with no embedded track, or no deformed training track to augment it
    with (:func:`_not_augmented`) — from the store's track ids alone (``embedded``: those read, by partition), and
    whether it is because the embedding stage has not completed its partitions (:func:`_not_embedded`)."""
    from repeval.pipeline.stages import CLEAN

    ds = next(d for d in item.exp.datasets if d.name == item.dataset)
    unassigned = unassigned_split(ctx, item.ei, item.exp.task.name, ds, item.fold, item.rows)
    if unassigned:  # no track of the split to embed: said per task and dataset, whatever the model
        return unassigned, False
    errors = ctx.store.partition(item.dataset, item.model, CLEAN).show_errors_command()
    ids = _embedded_ids(ctx, item, CLEAN, embedded)
    failed = failed_split(ctx, item.ei, item.exp.task.name, item.dataset, item.model, item.fold, item.rows, ids, errors)
    if failed:  # no embedded track in a split: the partition is incomplete (a step out of order), or they all failed
        unembedded = _not_embedded(ctx, item)
        return (unembedded, True) if unembedded else (failed, False)
    return _not_augmented(ctx, item, embedded)


def _embedded_ids(
    ctx: RunContext, item: _Pending, sid: str, embedded: dict[tuple[str, str, str], pa.Array]
) -> pa.Array:
    """The track ids of ``item``'s partition of scenario ``sid`` (read once for all its folds and tasks)."""
    key = (item.dataset, item.model, sid)
    if key not in embedded:
        embedded[key] = ctx.store.partition(*key).embedded_ids()
    return embedded[key]


def _not_augmented(
    ctx: RunContext, item: _Pending, embedded: dict[tuple[str, str, str], pa.Array]
) -> tuple[str, bool] | None:
    """Why ``item``'s training rows cannot be augmented — a scenario ``augment`` lists whose store partition holds
    none of its training tracks deformed — and whether the embedding stage has yet to compute them (it deforms them
    once ``augment`` lists the scenario: a step out of order) rather than recorded each as an error."""
    train = item.rows.filter(pc.equal(item.rows.column("split"), "train")).column("track_id")
    for sid in _augment(item.exp, item.dataset):
        part = ctx.store.partition(item.dataset, item.model, sid)
        if pc.any(pc.is_in(train, value_set=_embedded_ids(ctx, item, sid, embedded))).as_py():
            continue
        said = (
            f"{item.dataset}/{item.model}: augment lists {sid!r}, but store partition {part.name} in {ctx.store.uri} "
            "holds none of the training tracks deformed"
        )
        if pc.all(pc.is_in(train, value_set=part.done_ids())).as_py():  # each recorded as an error
            return (
                f"{said}: each is an error record (`{part.show_errors_command()}` lists why) — fix the cause and "
                f"embed them again with --retry-errors{_fold_hint(ctx, item)}",
                False,
            )
        return (
            f"{said}; run `repeval embed CONFIG` (or `repeval run CONFIG`) with this configuration and store first "
            "(it deforms the training tracks of the scenarios augment lists)",
            True,
        )
    return None


def _not_embedded(ctx: RunContext, item: _Pending) -> str | None:
    """Why ``item`` has no embeddings to train on when the embedding stage has not completed its partitions."""
    from repeval.pipeline.stages import CLEAN

    for sid in [CLEAN, *item.scenarios]:
        part = ctx.store.partition(item.dataset, item.model, sid)
        if not part.complete:
            state = "is not complete" if part.part_files() else "does not exist"
            return (
                f"{item.dataset}/{item.model}: the embeddings are missing — store partition {part.name} in "
                f"{ctx.store.uri} {state}; run `repeval embed CONFIG` (or `repeval run CONFIG`) with this configuration "
                "and store first"
            )
    return None


def _train_batch(ctx: RunContext, batch: list[tuple[_Pending, Any, Any]], summary: dict[str, Any]) -> None:
    """Train a batch of groups (one Tune experiment when there are several), then commit each group."""
    from repeval.pipeline.stages import CLEAN
    from repeval.tuning.grid import GroupInput, run_groups

    def written(item: _Pending) -> Callable[[], int | None]:
        return partial(partitions_written_ns, ctx, item.dataset, item.model, [CLEAN, *item.scenarios])

    inputs = [
        GroupInput(item.exp, item.dataset, item.model, data, item.name, ref, item.fold, item.inputs, written(item))
        for item, ref, data in batch
    ]
    if len(batch) > 1:
        log.info("training %d probe grids together: %s", len(batch), ", ".join(i.name for i in inputs))
    for (item, _, _), g in zip(batch, run_groups(ctx.cfg, inputs, ctx.tune_storage), strict=True):
        _commit_group(ctx, item, g, summary)


def _commit_group(ctx: RunContext, item: _Pending, g: Any, summary: dict[str, Any]) -> None:
    """Write a trained group's results; its ``groups/<group>.inputs.json`` last, which marks them done for those
    inputs (:func:`group_trained`)."""
    from repeval.metrics import write_confusion
    from repeval.tuning.grid import results_table
    from repeval.tuning.results import HISTORY_SCHEMA, PROBES_SCHEMA, typed_table

    fold, name = item.fold, item.name
    groups_dir = ctx.run_dir / "groups"
    # a group trained again: its old results stop counting as done for any inputs until the new ones are written
    # whole (a driver killed between the writes below would otherwise leave the old results under the new inputs)
    (groups_dir / f"{name}.inputs.json").unlink(missing_ok=True)
    summary["failed"] += [{**f, "fold": fold} for f in g.failed]
    summary["trial_seconds"] += g.trial_seconds
    summary["wall_seconds"] += g.wall_seconds
    summary["reused_trials"] += g.reused_trials
    _record_trial_environment(ctx, g.mkl, g.pages, g.allocator)
    if g.history:
        _write_atomic(
            typed_table([{**h, "fold": fold} for h in g.history], HISTORY_SCHEMA),
            ctx.run_dir / "history" / f"{name}.parquet",
        )
    if g.probes:  # every configuration trained, its parameters, and which one was selected
        (ctx.run_dir / "probes").mkdir(exist_ok=True)
        _write_atomic(
            typed_table([{**p, "fold": fold} for p in g.probes], PROBES_SCHEMA),
            ctx.run_dir / "probes" / f"{name}.parquet",
        )
    for (probe, seed, sid), matrix in g.confusion.items():  # the report pools a k-fold run's matrices over folds
        cell = f"{group_name(item.exp, item.dataset, item.model)}__{probe}__{seed}__{sid}{fold_suffix(fold)}"
        path = ctx.run_dir / "confusion" / f"{cell}.json"
        write_confusion(path, np.asarray(matrix), g.labels)
    _record_failed(ctx, item, [{**f, "fold": fold} for f in g.failed])
    if g.rows:
        from repeval.retest import write_tested

        write_tested(ctx, name, g.tested)
        _write_atomic(results_table(ctx.run_id, [{**r, "fold": fold} for r in g.rows]), groups_dir / f"{name}.parquet")
        # last: with these inputs beside them the results count as done (group_trained)
        _write_text_atomic(groups_dir / f"{name}.inputs.json", json.dumps(item.inputs, sort_keys=True))
    summary["trained"] += 1


def _record_failed(ctx: RunContext, item: _Pending, failed: list[dict[str, Any]]) -> None:
    """Make ``failed.parquet``'s rows of ``item``'s group ``failed``, before the group is marked done.

    Kept group by group as the grids commit: the file keeps the failures of grids this command did not train
    (committed before an interruption, or done in an earlier run) and drops those of a grid trained again."""
    from repeval.tuning.results import FAILED_SCHEMA, typed_table

    path = ctx.run_dir / "failed.parquet"
    key = (item.exp.task.name, item.dataset, item.model, item.fold)
    before = read_failed(path)
    rows = [r for r in before if (r["task"], r["dataset"], r["model"], r["fold"]) != key] + failed
    if not failed and len(rows) == len(before):  # the group had no failures before and has none now
        return
    if rows:
        _write_atomic(typed_table(rows, FAILED_SCHEMA), path)
    else:
        path.unlink()


def read_failed(path: Path) -> list[dict[str, Any]]:
    """The rows of ``failed.parquet`` at ``path`` (none without the file). One unreadable — cut short, corrupted — is
    moved aside to ``failed.parquet.unreadable-<time>``, with a warning, and read as none: a grid trained since is
    committed whatever it held (the failures it recorded of other grids are no longer counted)."""
    from repeval.run.files import unreadable_parquet

    if not path.exists():
        return []
    why = unreadable_parquet(path)
    if why is None:
        return list(pq.read_table(path).to_pylist())
    aside = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}")
    path.replace(aside)
    log.warning(
        "%s is unreadable (%s): cut short or corrupted; moved aside to %s — the probe trainings and test cells it "
        "recorded as failed are no longer counted (`repeval runs`, the report); those of the grids trained from now "
        "on are recorded anew",
        path, why, aside.name,
    )  # fmt: skip
    return []


def _record_environment(ctx: RunContext) -> None:
    """Append this training session's software and MKL code path to ``environment.json``: probes trained on
    MKL's Intel and generic paths differ in rounding, so a run says which one produced its results."""
    import platform

    import ray
    import torch

    from repeval.cpu import huge_pages_status, mkl_status

    path = ctx.run_dir / "environment.json"
    sessions = _read_json(path)
    if not isinstance(sessions, list):  # missing (or not repeval's): start the record afresh
        sessions = []
    sessions.append(
        {
            "stage": "train",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "mkl": mkl_status(),
            "pages": huge_pages_status(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "ray": ray.__version__,
            "machine": platform.machine(),
        }
    )
    _write_text_atomic(path, json.dumps(sessions, indent=1))


def _record_trial_environment(
    ctx: RunContext, paths: set[str], pages: Iterable[str] = (), allocator: Iterable[str] = ()
) -> None:
    """Add the MKL code paths a group's trials ran to this session's ``environment.json`` entry (``trials_mkl``):
    on a cluster the trials' nodes decide it, not the driver. Warns when trials ran on different paths. The
    pages their large tensors went on (``trials_pages``) and what their allocator did with freed blocks
    (``trials_allocator``) are kept beside them (speed only: results do not depend on either)."""
    path = ctx.run_dir / "environment.json"
    sessions = _read_json(path)
    if not paths or not isinstance(sessions, list) or not sessions:
        return
    before = sessions[-1].get("trials_mkl", [])
    seen = sorted(set(before) | paths)
    extra = {"trials_pages": pages, "trials_allocator": allocator}
    merged = {key: sorted(set(sessions[-1].get(key, [])) | set(new)) for key, new in extra.items()}
    if seen == before and all(merged[key] == sessions[-1].get(key, []) for key in extra):
        return  # nothing new: the usual case after the first group
    for key, values in merged.items():
        if values:
            sessions[-1][key] = values
    if len(seen) > 1 and seen != before:
        log.warning(
            "probe trials ran on different MKL code paths (%s): their results differ in rounding; give every node "
            "the same LD_PRELOAD (docs/cluster.md)",
            "; ".join(seen),
        )
    sessions[-1]["trials_mkl"] = seen
    _write_text_atomic(path, json.dumps(sessions, indent=1))
