"""The rows a run trains and tests on: each experiment's datasets loaded, their splits saved, checked and reported."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets import LoadReport, load_dataset, load_folds
from repeval.datasets.audio_paths import same_files
from repeval.datasets.base import strict_kinds
from repeval.run.context import RunContext, fold_suffix
from repeval.run.files import _write_atomic, _write_text_atomic
from repeval.run.groups import note_saved_splits
from repeval.run.load_records import LoadRecord, load_report_json
from repeval.run.load_records import said_once as records_said_once
from repeval.run.split_digest import with_digest
from repeval.rundir import LOAD_REPORT
from repeval.words import counted

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def load_rows(ctx: RunContext, save: bool = True) -> None:
    """Load every experiment's datasets and save their splits with the run (one file per fold for k folds;
    ``save=False``: only load them, as ``repeval plan`` does). What each load found is logged once per dataset
    (:func:`said_once`), and a loader's own lines (a catalog's "N of M rows usable") once however many tasks load it:
    two tasks on one dataset said its missing audio twice. A dataset loaded before (``repeval run``'s training stage
    after its embedding stage) is neither loaded nor said again."""
    before = set(ctx.reports)
    with _loaders_say_once():
        _load_each(ctx, save)
    if save and set(ctx.reports) - before:
        for record, (ei, ds, _, _) in said_once(ctx):
            if (ei, ds.name) not in before:
                for line in record.lines:
                    log.warning("dataset %s: %s", record.name, line)
    check_shared_tracks(ctx)
    if save:
        _write_text_atomic(ctx.run_dir / LOAD_REPORT, json.dumps(load_report(ctx), indent=1))


class _SaidOnce(logging.Filter):
    """Lets each record through once: a loader's line said again word for word (another task's load) is left out."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextmanager
def _loaders_say_once() -> Iterator[None]:
    """The dataset loaders' loggers (``repeval.datasets.*``), and this module's (a k-fold dataset's "split_type all"
    line), say each line once while it lasts."""
    once = _SaidOnce()
    loggers = [log] + [
        lg
        for name, lg in logging.Logger.manager.loggerDict.items()
        if isinstance(lg, logging.Logger) and (name == "repeval.datasets" or name.startswith("repeval.datasets."))
    ]
    for lg in loggers:
        lg.addFilter(once)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(once)


def _load_each(ctx: RunContext, save: bool) -> None:
    """:func:`load_rows`'s loads: each experiment's datasets, once per task and dataset definition."""
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
                folds = load_folds(ds, exp.task, found, report=False)
                ctx.folds[(ei, ds.name)] = folds
                ctx.rows[(ei, ds.name)] = folds[ds.fold]
                for f, rows in folds.items():
                    note_saved_splits(ctx, Path(f"{base}{fold_suffix(f)}.parquet"), rows, save)
                    if save:
                        _write_atomic(with_digest(rows), Path(f"{base}{fold_suffix(f)}.parquet"))
                log.info("dataset %s: split_type all — %d folds (validation = fold i, test = fold i+1)",
                         ds.name, len(folds))  # fmt: skip
                continue
            rows, found = load_dataset(ds, exp.task, report=False)
            ctx.reports[(ei, ds.name)] = found
            ctx.rows[(ei, ds.name)] = rows
            note_saved_splits(ctx, Path(f"{base}.parquet"), rows, save)
            if save:
                _write_atomic(with_digest(rows), Path(f"{base}.parquet"))


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
        differ = ~same_files(mine, theirs)  # one file spelled two ways (a symlinked folder, '..') is one file
        if not differ.any():
            continue
        keep = pa.array(differ)
        a, b = mine.filter(keep), theirs.filter(keep)
        tid = ids.filter(shared).filter(keep)[0].as_py()
        raise ValueError(
            f"{where}: dataset {name!r} is defined differently in {there}, and the two name different audio files for "
            f"{int(differ.sum()):,} of the track ids they share (e.g. {tid!r}: {b[0].as_py()} there, {a[0].as_py()} "
            "here) — the store keeps one embedding per dataset name and track id, so one task would be trained and tested on "
            "the other's audio: give one of them another name (datasets[].name), or make both name the same files"
        )


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


def said_once(ctx: RunContext) -> list[tuple[LoadRecord, tuple[int, Any, LoadReport, tuple[str, ...]]]]:
    """:func:`_load_reports` as people read them (:func:`repeval.run.load_records.said_once`, as ``load_report.json``
    keeps them): a record per dataset and what its loads found, the tasks that found the same together, each with
    ``(experiment index, dataset, report, kinds)`` of its first load, in the configuration's order. Its ``name`` is
    the dataset's when every task loading it found the same, else the dataset's with the tasks that found this
    (``rendered_notes (a, b)``): two tasks on one dataset said its missing audio, and ``repeval plan`` its note, once
    per task."""
    return records_said_once(
        (
            LoadRecord(
                dataset=ds.name,
                tasks=(exp.task.name,),
                rows=ctx.rows[(ei, ds.name)].num_rows,
                problems=found.counts(),
                not_evaluated=sum(found.count(k) for k in kinds),
                lines=tuple(found.lines()),
            ),
            (ei, ds, found, kinds),
        )
        for ei, exp, ds, found, kinds in _load_reports(ctx)
    )


def split_notes(ctx: RunContext) -> list[str]:
    """A note per task and dataset (of one split; k folds rotate) with a split of no tracks (``repeval run`` stops on
    it once the datasets load, before embedding: :func:`~repeval.run.split_check.check_splits_assigned`), or whose
    validation or test tracks have labels no training track has (:func:`~repeval.datasets.splits.untrained_labels`,
    which the training stage warns of only once the embeddings are computed): said before a run embeds anything."""
    from repeval.datasets.splits import untrained_labels
    from repeval.run.split_check import unassigned_splits

    notes = [f"`repeval run` would stop before embedding: {why}" for why in unassigned_splits(ctx)]
    for ei, exp in enumerate(ctx.cfg.experiments):
        for ds in exp.datasets:
            if (ei, ds.name) in ctx.folds or (ei, ds.name) not in ctx.rows:
                continue
            if any(f"{exp.task.name} on {ds.name}: " in note for note in notes):  # a split without tracks: said
                continue
            if exp.task.effective_type == "regression":
                continue
            if absent := untrained_labels(ctx.rows[(ei, ds.name)]):
                shown = ", ".join(f"{lab!r} ({v:,} validation, {t:,} test tracks)" for lab, v, t in absent[:5])
                more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
                one = len(absent) == 1
                note = (
                    f"dataset {ds.name} ({exp.task.name}): {counted(len(absent), 'label')} "
                    f"{'has' if one else 'have'} no training track, so no probe can learn {'it' if one else 'them'}: "
                    f"{shown}{more} — check the splits (a split_column, or split_ratios) or leave them "
                    "out with dataset.classes"
                )
                if note not in notes:  # another experiment of the task on the dataset (another model): its rows
                    notes.append(note)
    return notes


def load_report(ctx: RunContext) -> dict[str, Any]:
    """``load_report.json``: a record per dataset and what its loads found (:func:`said_once`): the tasks, the rows
    kept, the problems found per kind (each a row dropped, except ``other`` notes and labels dropped from a multilabel
    row that is kept), how many dropped rows ``--strict`` counts as tracks not evaluated (see :func:`not_evaluated`)
    and the log's lines."""
    return load_report_json(record for record, _ in said_once(ctx))


def not_evaluated(ctx: RunContext) -> list[tuple[str, dict[str, int], str]]:
    """``(dataset, rows per kind, the loader's lines about them)`` for each dataset of the loaded configuration that
    dropped rows ``--strict`` fails on (:func:`repeval.datasets.base.strict_kinds`)."""
    out = []
    for record, (_, _, found, kinds) in said_once(ctx):
        counts = {k: n for k, n in found.counts().items() if k in kinds}
        if counts:
            out.append((record.name, counts, "; ".join(found.lines(kinds))))
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
