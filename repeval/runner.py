"""Run an experiment configuration stage by stage; every stage is resumable.

Run directory (``<runs_dir>/<run_id>/``): ``config.yaml``, ``splits/``, ``load_report.json`` (the rows each
dataset's loader dropped), ``tune/`` (Ray Tune experiments, TensorBoard-readable), ``groups/`` (per task ×
dataset × model test rows), ``history/``, ``failed.parquet``, ``results.parquet``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets import LoadReport, load_dataset, load_folds
from repeval.datasets.base import OBSERVED, strict_kinds
from repeval.pipeline.embed import EmbedSummary, embed_experiments
from repeval.pipeline.preflight import check_scenarios_at_model_rates
from repeval.rundir import (
    CONFIG_KEY,
    EVALUATION_KEY,
    GROUPS_KEY,
    LOAD_REPORT,
    EarlierStageUnfinished,
    RunLocation,
    grid_name,
)
from repeval.store import EmbeddingStore
from repeval.store.lock import StoreLock

log = logging.getLogger(__name__)

STAGES = ("deform", "embed", "train", "evaluate")


@dataclass
class RunContext:
    cfg: Config
    run_id: str
    run_dir: Path
    store: EmbeddingStore
    rows: dict[tuple[int, str], pa.Table] = field(default_factory=dict)
    #: k folds (``split_type: all``): the rows of every fold, each with that fold's splits; ``rows`` holds
    #: fold ``dataset.fold``. Datasets with one split are not here.
    folds: dict[tuple[int, str], dict[int, pa.Table]] = field(default_factory=dict)
    #: where the run directory lives (issue 8): ``run_dir`` is its local working copy
    location: RunLocation | None = None
    #: what each dataset's loader reported (rows dropped and why), filled by :func:`load_rows`
    reports: dict[tuple[int, str], LoadReport] = field(default_factory=dict)
    #: the store's lock when :func:`make_context` took it (``lock=True``); :func:`stage_embed` releases it
    lock: StoreLock | None = None
    #: :func:`training_hash` per experiment index (it expands the experiment's probes: done once, not per group)
    training_hashes: dict[int, str] = field(default_factory=dict)

    @property
    def tune_storage(self) -> str:
        """Ray Tune's ``storage_path``: the shared URI for remote run directories, else ``run_dir/tune``."""
        return self.location.tune_storage if self.location is not None else str(self.run_dir / "tune")


def make_context(cfg: Config, run_id: str | None = None, store: str | None = None, lock: bool = False) -> RunContext:
    """``run.runs_dir`` may be a path or any pyarrow filesystem URI (see :mod:`repeval.rundir`).

    ``lock=True`` (the commands that embed) takes the store's lock before the run directory is made, so a run
    refused because another one holds the store writes nothing; :func:`stage_embed` releases it."""
    rid = check_run_id(run_id or cfg.run.run_id or time.strftime("run-%Y%m%d-%H%M%S"))
    loc = RunLocation.open(cfg.run.runs_dir, rid)
    if store:  # the run's config.yaml names the store it used (`repeval report` reads its error records there)
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"store": store})})
    st = EmbeddingStore(cfg.run.store)
    held = None
    if lock:
        held = StoreLock(st, rid)
        held.acquire()  # StoreLocked: refused before the run directory exists
    try:
        run_dir = loc.local
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_yaml(cfg))
    except BaseException:
        if held is not None:
            held.release()
        raise
    return RunContext(cfg, rid, run_dir, st, location=loc, lock=held)


def config_yaml(cfg: Config) -> str:
    """A run's ``config.yaml``: the keys the configuration sets (and ``--store``), as validated — it parses back to the
    same configuration. Not every key with its default: a preset's or a search's value written out next to it would
    fix that axis (``jukemir``'s 216 configurations read back as one, ``mir_ref_thesis``'s M1–M5 as an error)."""
    return yaml.safe_dump(cfg.model_dump(mode="json", exclude_unset=True), sort_keys=False)


def check_run_id(rid: str) -> str:
    """``rid``, or the ``ValueError`` naming the fix when it cannot name a folder under runs_dir."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", rid):  # reliability (issue 9): --run-id names a folder
        raise ValueError(
            f"run id {rid!r}: use letters, digits, '.', '_' and '-' only (it names a folder under runs_dir)"
        )
    return rid


def fold_suffix(fold: int | None) -> str:
    """``__fold<k>`` in the names of what a run keeps per fold of a ``split_type: all`` dataset ("" otherwise)."""
    return "" if fold is None else f"__fold{fold}"


def group_name(exp: ExperimentConfig, dataset: str, model: str, fold: int | None = None) -> str:
    """``<task>__<dataset>__<model>``, and ``__fold<k>`` for fold k of a ``split_type: all`` dataset."""
    return f"{exp.task.name}__{dataset}__{model}{fold_suffix(fold)}"


def load_rows(ctx: RunContext, save: bool = True) -> None:
    """Load every experiment's datasets and save their splits with the run (one file per fold for k folds;
    ``save=False``: only load them, as ``repeval plan`` does)."""
    loaded: dict[tuple[str, str], tuple[int, Any, Any]] = {}  # (task, dataset) → the experiment that loaded it
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            if (ei, ds.name) in ctx.rows:
                continue
            e0, task0, ds0 = loaded.setdefault((exp.task.name, ds.name), (ei, exp.task, ds))
            if e0 != ei and (task0.canonical(), ds0) == (exp.task.canonical(), ds):
                # another model's experiment of the task (validation makes one task on one dataset one definition):
                # the same rows, splits file and report — loaded once
                ctx.rows[(ei, ds.name)] = ctx.rows[(e0, ds.name)]
                ctx.reports[(ei, ds.name)] = ctx.reports[(e0, ds.name)]
                if (e0, ds.name) in ctx.folds:
                    ctx.folds[(ei, ds.name)] = ctx.folds[(e0, ds.name)]
                continue
            if save:
                (ctx.run_dir / "splits").mkdir(exist_ok=True)
            base = ctx.run_dir / "splits" / f"{exp.task.name}__{ds.name}"
            if ds.split_type == "all":
                found = ctx.reports[(ei, ds.name)] = LoadReport()
                folds = load_folds(ds, exp.task, found)
                ctx.folds[(ei, ds.name)] = folds
                ctx.rows[(ei, ds.name)] = folds[ds.fold]
                for f, rows in folds.items():
                    if save:
                        pq.write_table(rows, f"{base}{fold_suffix(f)}.parquet")
                log.info("dataset %s: split_type all — %d folds (validation = fold i, test = fold i+1)",
                         ds.name, len(folds))  # fmt: skip
                continue
            rows, found = load_dataset(ds, exp.task, report=save)
            ctx.reports[(ei, ds.name)] = found
            ctx.rows[(ei, ds.name)] = rows
            if save:
                pq.write_table(rows, f"{base}.parquet")
    check_shared_tracks(ctx)
    if save:
        _write_text_atomic(ctx.run_dir / LOAD_REPORT, json.dumps(load_report(ctx), indent=1))


def audio_sources(ctx: RunContext) -> dict[str, list[dict[str, Any]]]:
    """Where each loaded dataset takes its audio from, as the store's partitions record it
    (:func:`~repeval.pipeline.partitions.run_sources`: the configuration and what each loader found)."""
    from repeval.pipeline.partitions import run_sources

    return run_sources(
        (ds, ctx.reports.get((ei, ds.name))) for ei, exp in enumerate(ctx.cfg.experiments) for ds in exp.datasets
    )


def check_shared_tracks(ctx: RunContext) -> None:
    """Raise ``ValueError`` when two definitions of one dataset name (for different tasks: another manifest, ``dir``,
    ``type``, …) give one track id two audio files. The store keeps one embedding per dataset name, track id and
    scenario, so one task would be trained and tested on the other's audio. Definitions alike give every track one
    file; a track in only one definition is fine (another task's subset), as are other splits, labels or caps."""
    seen: dict[str, list[tuple[str, Any, pa.Table]]] = {}  # dataset name → (place, definition, rows) per definition
    for ei, exp in enumerate(ctx.cfg.experiments):
        for di, ds in enumerate(exp.datasets):
            defs = seen.setdefault(ds.name, [])
            rows = ctx.rows.get((ei, ds.name))
            if rows is not None and all(ds != d for _, d, _ in defs):
                defs.append((f"experiments[{ei}].datasets[{di}] (task {exp.task.name!r})", ds, rows))
                if len(defs) > 1:
                    _check_files(ds.name, [(w, r) for w, _, r in defs])


def _check_files(name: str, defs: list[tuple[str, pa.Table]]) -> None:
    """The last of ``defs`` (place, rows) against the tracks of the ones before it (Arrow kernels)."""
    where, rows = defs[-1]
    ids = rows.column("track_id").combine_chunks()
    paths = rows.column("audio_path").combine_chunks()
    for there, before in defs[:-1]:
        at = pc.index_in(ids, value_set=before.column("track_id").combine_chunks())
        shared = pc.is_valid(at)
        if not pc.any(shared).as_py():
            continue
        mine, theirs = paths.filter(shared), before.column("audio_path").combine_chunks().take(at.filter(shared))
        differ = pc.invert(pc.equal(mine, theirs)).to_numpy(zero_copy_only=False)
        if not differ.any():
            continue
        a, b = mine.filter(pa.array(differ)).to_pylist(), theirs.filter(pa.array(differ)).to_pylist()
        bad = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if _same_file(x) != _same_file(y)]
        if not bad:
            continue
        tid = ids.filter(shared).filter(pa.array(differ))[bad[0]].as_py()
        raise ValueError(
            f"{where}: dataset {name!r} is defined differently in {there}, and {len(bad):,} of the track ids the two "
            f"share name other audio files (e.g. {tid!r}: {b[bad[0]]} there, {a[bad[0]]} here) — the store keeps "
            "one embedding per dataset name and track id, so one task would be trained and tested on the other's "
            "audio: give one of them another name (datasets[].name), or make both name the same files"
        )


def _same_file(path: str) -> str:
    """A local path made absolute and normal (``data/x/./a.wav`` and ``/work/data/x/a.wav`` are one file); a URI
    as it is."""
    import os

    return path if "://" in path else os.path.normpath(os.path.abspath(path))


def _load_reports(ctx: RunContext) -> Iterator[tuple[int, Any, Any, LoadReport, tuple[str, ...]]]:
    """``(experiment index, experiment, dataset, its loader's report, the kinds --strict counts)`` for each dataset
    :func:`load_rows` loaded."""
    seen = set()
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            found = ctx.reports.get((ei, ds.name))
            if found is not None and (exp.task.name, ds.name) not in seen:  # two models' experiments: one report
                seen.add((exp.task.name, ds.name))
                yield ei, exp, ds, found, strict_kinds(ds.type, exp.task.effective_type)


def load_report(ctx: RunContext) -> dict[str, Any]:
    """``load_report.json``: per ``<task>__<dataset>``, the rows kept, the problems found per kind (each a row
    dropped, except ``other`` notes and labels dropped from a multilabel row that is kept), the log's lines,
    and how many dropped rows ``--strict`` counts as tracks not evaluated (see :func:`not_evaluated`)."""
    return {
        f"{exp.task.name}__{ds.name}": {
            "task": exp.task.name,
            "dataset": ds.name,
            "rows": ctx.rows[(ei, ds.name)].num_rows,
            "problems": found.counts(),
            "not_evaluated": sum(found.count(k) for k in kinds),
            "lines": found.lines(),
        }
        for ei, exp, ds, found, kinds in _load_reports(ctx)
    }


def not_evaluated(ctx: RunContext) -> list[tuple[str, dict[str, int], str]]:
    """``(dataset, rows per kind, the loader's lines about them)`` for each dataset of the loaded configuration that
    dropped rows ``--strict`` fails on (:func:`repeval.datasets.base.strict_kinds`)."""
    out = []
    for _, exp, ds, found, kinds in _load_reports(ctx):
        counts = {k: n for k, n in found.counts().items() if k in kinds}
        if counts:
            name = ds.name if len(ctx.cfg.experiments) == 1 else f"{ds.name} ({exp.task.name})"
            out.append((name, counts, "; ".join(found.lines(kinds))))
    return out


def fold_rows(ctx: RunContext, ei: int, dataset: str) -> dict[int | None, pa.Table]:
    """The row sets a dataset is trained and tested on: every fold for k folds, else ``{None: rows}``."""
    folds = ctx.folds.get((ei, dataset))
    if not folds:
        return {None: ctx.rows[(ei, dataset)]}
    return {f: rows for f, rows in folds.items()}


def deform_ids(ctx: RunContext, ei: int) -> dict[str, pa.Array]:
    """For k-fold datasets: the tracks to deform — those in ``run.deform_splits`` of any fold (every track
    is in the test split of one fold, so by default every track)."""
    wanted = pa.array(list(ctx.cfg.run.deform_splits), pa.string())
    out = {}
    for (e, name), folds in ctx.folds.items():
        if e == ei:
            tested = [
                r.filter(pc.fill_null(pc.is_in(r.column("split"), value_set=wanted), False)) for r in folds.values()
            ]
            kind = next(iter(folds.values())).schema.field("track_id").type
            chunks = [c for t in tested for c in t.column("track_id").chunks]  # a fold may test no track
            out[name] = pc.unique(pa.chunked_array(chunks, type=kind).combine_chunks())
    return out


def stage_embed(
    ctx: RunContext, deformed_only: bool = False, progress: bool | None = None, retry_errors: bool = False
) -> EmbedSummary:
    # reliability (issue 9): one writer per store — a second run refuses before Ray starts (and, when the CLI took
    # the lock with the run context, before its run directory is made)
    lock, ctx.lock = ctx.lock, None
    if lock is None:
        lock = StoreLock(ctx.store, ctx.run_id)
        lock.acquire()
    try:
        return _stage_embed(ctx, deformed_only, progress, retry_errors)
    finally:
        lock.release()


def _stage_embed(
    ctx: RunContext, deformed_only: bool = False, progress: bool | None = None, retry_errors: bool = False
) -> EmbedSummary:
    from repeval.ray_utils import init_ray

    check_scenarios_at_model_rates(ctx.cfg, ctx.cfg.experiments)  # before Ray starts and the catalogs load
    init_ray()
    load_rows(ctx)
    # one stream per embedding model for the whole run: its actors load the weights once for every dataset
    work = [
        (exp, {ds.name: ctx.rows[(ei, ds.name)] for ds in exp.datasets}, deform_ids(ctx, ei))
        for ei, exp in enumerate(ctx.cfg.experiments)
    ]
    total = embed_experiments(
        ctx.cfg,
        work,
        ctx.store,
        deformed_only=deformed_only,
        progress=progress,
        retry_errors=retry_errors,
        sources=audio_sources(ctx),
    )
    log.debug(total.line())  # the CLI prints it
    return total


def group_inputs(
    ctx: RunContext, ei: int, dataset: str, model: str, scenarios: list[str], rows: pa.Table | None = None
) -> dict[str, Any]:
    """What a group was trained on: each partition's row and error counts (from its manifest) and the number
    of tracks per split (of ``rows``, default the dataset's rows). A finished group is reused only while these
    are unchanged — a store completed further, or an error retried with ``--retry-errors``, trains it again."""
    from repeval.pipeline.stages import CLEAN

    parts = {}
    for sid in [CLEAN, *scenarios]:
        m = ctx.store.partition(dataset, model, sid).manifest() or {}
        parts[sid] = [m.get("rows"), m.get("errors"), m.get("config_hash")]
    rows = ctx.rows[(ei, dataset)] if rows is None else rows
    counts = pc.value_counts(rows.column("split")).to_pylist()
    out: dict[str, Any] = {"partitions": parts, "splits": {str(c["values"]): int(c["counts"]) for c in counts}}
    if OBSERVED in rows.column_names:  # absent when every pair counts (earlier runs' groups hold)
        out["unannotated"] = "mask"
    exp = ctx.cfg.experiments[ei]
    if exp.task.aggregation != "mean":  # absent for mean: earlier runs' groups hold
        out["aggregation"] = exp.task.aggregation
    augment = _augment(exp, dataset)
    if augment:
        out["augment"] = augment
    if ei not in ctx.training_hashes:
        ctx.training_hashes[ei] = training_hash(ctx.cfg, exp)
    out["training"] = ctx.training_hashes[ei]
    return out


def training_hash(cfg: Config, exp: ExperimentConfig) -> str:
    """What a group's probes and results are computed with besides its embeddings and splits: the task, the probe
    configurations as expanded (a preset's values included), the metrics and the run's seeds, epoch cap and interval
    settings. A finished group is trained again when it changes (an edited learning rate or metric, another seed
    count): its results would otherwise be the old configuration's under the new one's name. Settings that change
    only how fast training runs (``vectorize``, ``pack_trials``, ``train_batch_mb``, resources) are left out."""
    from repeval.tuning.search import expand_all

    specs = expand_all(exp.downstream_models, exp.task.effective_type)
    run = cfg.run
    probes = [
        [
            s.name,
            s.select,
            s.space,
            s.num_samples,
            s.scheduler,
            [[p.name, p.config.model_dump(mode="json")] for p in s.points],
        ]
        for s in specs
    ]
    desc = {
        "task": exp.task.model_dump(mode="json"),
        "probes": probes,
        "metrics": exp.metrics,
        "run": [run.seed, run.seeds, run.max_epochs, run.bootstrap_resamples, run.ci_alpha],
    }
    return config_hash(desc)


def _augment(exp: ExperimentConfig, dataset: str) -> list[str]:
    """The scenarios whose deformed training tracks augment ``exp``'s probes on ``dataset``."""
    return next((exp.augment_for(ds) for ds in exp.datasets if ds.name == dataset), [])


def stage_train(ctx: RunContext) -> dict[str, Any]:
    """Train (and test) every probe grid whose results are not in the run directory yet.

    Per group: ``groups/<group>.parquet`` (test rows with bootstrap intervals), ``history/``,
    ``probes/`` (every configuration, its parameters and which was selected), ``confusion/``.
    Pending groups run in batches whose embeddings fit in ``run.train_batch_mb``, each batch one Tune
    experiment under ``tune/`` (trial actors reused across its groups); an interrupted batch is resumed.
    """
    from repeval.ray_utils import init_ray
    from repeval.tuning.grid import data_nbytes

    init_ray()
    load_rows(ctx)
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
    embedded: dict[tuple[str, str], pa.Array] = {}  # (dataset, model) → its clean partition's track ids
    problems = [p for p in (_empty_split(ctx, item, embedded) for item in pending) if p]
    if problems:
        more = f" (and {len(problems) - 1} more probe grid(s): {'; '.join(problems[1:4])})" if len(problems) > 1 else ""
        raise ValueError(f"{problems[0]}{more} — nothing was trained")
    pending = [item for item in pending if not _retested(ctx, item, summary)]
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


@dataclass
class _Pending:
    """A group whose results are not in the run directory yet."""

    ei: int
    exp: ExperimentConfig
    dataset: str
    model: str
    scenarios: list[str]
    fold: int | None
    rows: pa.Table
    name: str
    inputs: dict[str, Any]
    #: ``(added, removed)`` deformation scenarios when only they changed since the group was trained: it is tested
    #: again, not trained (:func:`repeval.retest.retest_group`)
    retest: tuple[list[str], list[str]] | None = None


def _pending_group(
    ctx: RunContext,
    ei: int,
    exp: ExperimentConfig,
    dataset: str,
    model: str,
    scenarios: list[str],
    fold: int | None,
    rows: pa.Table,
    summary: dict[str, Any],
) -> _Pending | None:
    """The group — (task, dataset, model) and, for k folds, one fold — unless it is done (then counted as skipped)."""
    name = group_name(exp, dataset, model, fold)
    inputs = group_inputs(ctx, ei, dataset, model, scenarios, rows)
    trained = group_trained(ctx, name, inputs)
    if trained:
        summary["skipped"] += 1
        return None
    retest = None
    if trained is not None:
        from repeval.retest import scenarios_only

        before = _read_json(ctx.run_dir / "groups" / f"{name}.inputs.json")
        retest = scenarios_only(before, inputs)
        if retest is None:
            log.warning(
                "%s: trained before on other inputs (%s); training it again", name, inputs_change(before, inputs)
            )
    return _Pending(ei, exp, dataset, model, scenarios, fold, rows, name, inputs, retest)


def _retested(ctx: RunContext, item: _Pending, summary: dict[str, Any]) -> bool:
    """Whether ``item``, a finished group whose deformation scenarios alone changed, was brought up to date without
    training (:func:`repeval.retest.retest_group`); else it is trained again, as the warning says."""
    if item.retest is None:
        return False
    from repeval.retest import retest_group

    added, removed = item.retest
    why = retest_group(ctx, item, added, removed, summary)
    if why is None:
        return True
    before = _read_json(ctx.run_dir / "groups" / f"{item.name}.inputs.json")
    log.warning(
        "%s: trained before on other inputs (%s), and %s; training it again",
        item.name, inputs_change(before, item.inputs), why,
    )  # fmt: skip
    return False


def inputs_change(before: Any, now: dict[str, Any]) -> str:
    """What differs between a finished group's recorded inputs (:func:`group_inputs`, ``before``) and this run's, in
    words: why it is trained again — a scenario added or removed, a partition with other rows or error records, other
    splits or training settings."""
    if not isinstance(before, dict):
        return "its record of them, the group's inputs.json, is missing or unreadable"
    said = []
    if before.get("training") != now.get("training"):
        said.append("the training settings changed: the task, probes, metrics, run.seed(s), max_epochs or intervals")
    old, new = before.get("partitions") or {}, now.get("partitions") or {}
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    if added:
        said.append(f"scenario(s) {', '.join(added)} added")
    if removed:
        said.append(f"scenario(s) {', '.join(removed)} removed")

    def counts(v: Any) -> str:
        rows, errors = [*v, None, None][:2] if isinstance(v, list) else (None, None)
        return f"{rows} rows, {errors} error records"

    for sid in sorted(set(old) & set(new)):
        if old[sid] == new[sid]:
            continue
        if counts(old[sid]) != counts(new[sid]):
            said.append(f"partition {sid}: {counts(old[sid])} then, {counts(new[sid])} now")
        else:
            said.append(f"partition {sid}: computed under another configuration (config hash)")
    if before.get("splits") != now.get("splits"):

        def splits(v: Any) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(v.items())) if isinstance(v, dict) else str(v)

        said.append(f"the tracks per split: {splits(before.get('splits'))} then, {splits(now.get('splits'))} now")
    for key in ("unannotated", "aggregation", "augment"):
        if before.get(key) != now.get(key):
            said.append(f"{key}: {before.get(key)} then, {now.get(key)} now")
    return "; ".join(said) or "its inputs.json differs"


def group_trained(ctx: RunContext, name: str, inputs: dict[str, Any]) -> bool | None:
    """Whether group ``name`` is done for these inputs (:func:`group_inputs`): ``None`` when it was never trained,
    ``False`` when it was trained on other embeddings or splits (it is trained again)."""
    groups_dir = ctx.run_dir / "groups"
    if not (groups_dir / f"{name}.parquet").exists():
        return None
    return bool(_read_json(groups_dir / f"{name}.inputs.json") == inputs)


def _group_data(ctx: RunContext, item: _Pending) -> tuple[Any, Any]:
    """``item``'s embeddings loaded into the object store: their reference and read-only views of them (the loaded
    arrays are dropped, so a batch's embeddings are held once, where its trials read them)."""
    from repeval.tuning.data import probe_data
    from repeval.tuning.grid import share

    try:
        task = item.exp.task
        data = probe_data(
            task.effective_type, item.rows, ctx.store, item.dataset, item.model, item.scenarios,
            aggregation=task.aggregation,
            augment=_augment(item.exp, item.dataset),
        )  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{exc}{_fold_hint(ctx, item)}") from None
    return share(data)


def _fold_hint(ctx: RunContext, item: _Pending) -> str:
    if item.fold is None:
        return ""
    n = len(ctx.folds[(item.ei, item.dataset)])
    return (
        f" (fold {item.fold} of {n}: validation = fold {item.fold}, test = fold {(item.fold + 1) % n}; "
        "with few tracks per class use fewer n_folds)"
    )


def _empty_split(ctx: RunContext, item: _Pending, embedded: dict[tuple[str, str], pa.Array]) -> str | None:
    """Why ``item`` cannot be trained — a split with no embedded track — from the store's track ids alone."""
    from repeval.pipeline.stages import CLEAN
    from repeval.tuning.data import empty_split_message

    key = (item.dataset, item.model)
    if key not in embedded:
        embedded[key] = ctx.store.partition(item.dataset, item.model, CLEAN).embedded_ids()
    rows = item.rows.filter(pc.is_in(item.rows.column("track_id"), value_set=embedded[key]))
    present = set(pc.unique(rows.column("split")).to_pylist())
    for name in ("train", "validation", "test"):
        if name not in present:
            return (
                _not_embedded(ctx, item)
                or f"{empty_split_message(item.dataset, item.model, name)}{_fold_hint(ctx, item)}"
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
                f"{ctx.store.uri} {state}; run `repeval embed` (or `repeval run`) with this configuration and store "
                "first"
            )
    return None


def _train_batch(ctx: RunContext, batch: list[tuple[_Pending, Any, Any]], summary: dict[str, Any]) -> None:
    """Train a batch of groups (one Tune experiment when there are several), then commit each group."""
    from repeval.tuning.grid import GroupInput, run_groups

    inputs = [
        GroupInput(item.exp, item.dataset, item.model, data, item.name, ref, item.fold, item.inputs)
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
    before = [] if not path.exists() else pq.read_table(path).to_pylist()
    rows = [r for r in before if (r["task"], r["dataset"], r["model"], r["fold"]) != key] + failed
    if not failed and len(rows) == len(before):  # the group had no failures before and has none now
        return
    if rows:
        _write_atomic(typed_table(rows, FAILED_SCHEMA), path)
    else:
        path.unlink()


def _read_json(path: Path) -> Any:
    """A small JSON file's content; ``None`` when it is missing or unreadable (then the work is redone)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file under a temporary name, then rename it: a reader never sees half a file."""
    tmp = _tmp_name(path)
    pq.write_table(table, tmp)
    tmp.replace(path)


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


def _write_text_atomic(path: Path, text: str) -> None:
    """:func:`_write_atomic` for a small text file: whole or not at all."""
    tmp = _tmp_name(path)
    tmp.write_text(text)
    tmp.replace(path)


def _tmp_name(path: Path) -> Path:
    """``.<name>.tmp`` beside ``path`` (what syncing a run directory skips)."""
    return path.with_name(f".{path.name}.tmp")


def stage_evaluate(ctx: RunContext) -> pa.Table:
    """Collect every group's test rows into ``results.parquet`` and mean ± std over seeds into ``summary.parquet``."""
    found = sorted((ctx.run_dir / "groups").glob("*.parquet"))
    cfg = getattr(ctx, "cfg", None)
    wanted = None if cfg is None else _wanted_groups(cfg)  # None: a bare run directory, every group in it
    files = _configured_groups(ctx, found, wanted)
    if not files:
        other = f" of this configuration ({len(found)} of another, named above)" if found else ""
        raise EarlierStageUnfinished(
            f"no trained probe grid{other} in {ctx.run_dir}: train them first — `repeval train CONFIG`, or `repeval run "
            "CONFIG`, which also resumes an interrupted run"
        )
    from repeval.tuning.results import seed_summary, with_result_columns

    table = pa.concat_tables([with_result_columns(pq.read_table(f)) for f in files])
    # an evaluation stopped between the two writes must not leave the summary of other results beside these: the old
    # summary goes first, and both files carry the same hash of the results (rundir.summary_mismatch checks it)
    (ctx.run_dir / "summary.parquet").unlink(missing_ok=True)
    mark = {EVALUATION_KEY: _table_hash(table).encode()}
    config = {CONFIG_KEY: config_yaml(cfg).encode()} if cfg is not None else {}
    if wanted is not None:
        config[GROUPS_KEY] = json.dumps(sorted(wanted)).encode()
        _name_other_failures(ctx.run_dir, wanted)
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
            "%d probe grid(s) in %s are not of this configuration (a model, dataset or task removed or renamed since "
            "they were trained, or fewer folds): %s — left out of results.parquet; delete them, or list them in the "
            "configuration again to include them",
            len(stale), ctx.run_dir / "groups", ", ".join(stale[:5]) + (", …" if len(stale) > 5 else ""),
        )  # fmt: skip
    missing = sorted(wanted - have)
    if missing and len(missing) < len(wanted):
        log.warning(
            "%d probe grid(s) of this configuration are not trained yet: %s — the results lack them; `repeval run` "
            "(or `repeval train`) with this configuration trains them",
            len(missing), ", ".join(missing[:5]) + (", …" if len(missing) > 5 else ""),
        )  # fmt: skip
    return [f for f in files if f.stem in wanted]


def _wanted_groups(cfg: Config) -> set[str]:
    """The names of ``cfg``'s probe grids (:func:`group_name`)."""
    return {
        group_name(exp, ds.name, m.id, fold)
        for exp in cfg.experiments
        for ds in exp.datasets
        for m in exp.embedding_models
        for fold in (range(ds.n_folds) if ds.split_type == "all" else [None])
    }


def _name_other_failures(run_dir: Path, wanted: set[str]) -> None:
    """Warn about the rows of ``failed.parquet`` of grids not of the configuration (``wanted``): like their
    ``groups/`` files, they are left out — of what ``repeval runs`` and the report count (``GROUPS_KEY``)."""
    path = run_dir / "failed.parquet"
    if not path.exists():
        return
    t = pq.read_table(path, columns=["task", "dataset", "model", "fold"]).to_pylist()
    other = [n for n in (grid_name(r["task"], r["dataset"], r["model"], r["fold"]) for r in t) if n not in wanted]
    if other:
        names = sorted(set(other))
        log.warning(
            "%d failure(s) in %s are of probe grid(s) not of this configuration (a model, dataset or task removed or "
            "renamed since they were trained, or fewer folds): %s — left out of the failures `repeval runs` and the "
            "report count; they stay in the file",
            len(other), path, ", ".join(names[:5]) + (", …" if len(names) > 5 else ""),
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


#: ``--smoke-test``'s PCA target at most: a PCA to more dimensions than its training rows is an error, and a smoke
#: test trains on a few tracks
SMOKE_PCA_DIM = 8


def smoke_test_config(cfg: Config, max_tracks: int = 40, epochs: int = 3) -> Config:
    """A tiny version of a configuration: few tracks per dataset, one probe configuration, few epochs.

    Every stage still runs for real (Ray Data, the store, Ray Tune); CI uses it end to end.
    """
    exps = []
    for exp in cfg.experiments:
        datasets = tuple(
            d.model_copy(update={"max_tracks": min(d.max_tracks or max_tracks, max_tracks)}) for d in exp.datasets
        )
        # a preset or search grid becomes its first configuration, as a plain probe under the spec's name
        from repeval.tuning.search import expand_probe

        spec = expand_probe(exp.downstream_models[0], 0, exp.task.effective_type)
        first = spec.points[0].config
        update: dict[str, Any] = {"name": spec.name, "epochs": min(first.epochs, epochs)}
        pca = first.effective_pca_dim
        if pca is not None and pca > SMOKE_PCA_DIM:  # more than a few tracks' training rows give: an error
            update["pca_dim"] = SMOKE_PCA_DIM
            if first.emb_dim_reduction and isinstance(first.emb_shape, int):
                update["emb_shape"] = SMOKE_PCA_DIM
        probe = first.model_copy(update=update)
        exps.append(exp.model_copy(update={"datasets": datasets, "downstream_models": (probe,)}))
    run = cfg.run.model_copy(update={"seeds": 1, "run_id": (cfg.run.run_id or "run") + "-smoke"})
    return cfg.model_copy(update={"experiments": tuple(exps), "run": run})
