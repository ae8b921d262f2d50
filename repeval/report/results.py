"""Read what a run leaves behind: results, config, training history and confusion matrices.

Layout of ``runs/<run_id>/``:

- ``results.parquet``: one row per (cell × scenario × metric × label), columns ``RESULT_COLUMNS``; a deformed row's
  ``delta`` is its change from clean on the test tracks both were scored on (:mod:`repeval.report.deltas`).
- ``config.yaml``: the configuration as run.
- ``splits/<task>__<dataset>[__fold<k>].parquet``: the rows the run used; an ``observed`` column (the labels each track
  annotates: ``unannotated: mask``) marks a pair whose multilabel metrics are over the annotated (track, label) pairs
  only (:attr:`Run.masked`).
- ``history.parquet`` or ``history/*.parquet`` (optional): per-epoch losses, columns ``HISTORY_COLUMNS``.
- ``failed.parquet`` (optional): the probe trainings that failed and why.
- ``probes/*.parquet`` (optional): every probe configuration trained, its validation criterion per seed and whether
  it was selected — what :mod:`repeval.report.selection` chooses each model's probe on.
- ``confusion/<task>__<dataset>__<model>__<probe>__<seed>__<scenario>[__fold<k>].json`` (optional):
  ``{"labels": [...], "matrix": [[...]]}``; a k-fold run's matrices are pooled (summed) over folds —
  every track is tested in exactly one fold.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from repeval.datasets.base import OBSERVED
from repeval.report.run_files import (
    RETRAIN_FIX,
    listed,
    read_parquet_or_warn,
    results_config,
    say_unread,
    unread_files,
)
from repeval.report.selection import load_validation
from repeval.run.files import damaged, parquet_error
from repeval.run.fold_overlap import fill_fold_overlap
from repeval.run_open import not_read, refused_files, refused_said
from repeval.rundir import evaluate_fix, grid_name, recorded_grids, staged_from, summary_mismatch
from repeval.tuning.results import LATER_RESULT_COLUMNS, RESULT_SCHEMA

log = logging.getLogger(__name__)

# the one results schema, owned by the stage that writes results.parquet
RESULTS_SCHEMA = RESULT_SCHEMA
RESULT_COLUMNS = tuple(RESULTS_SCHEMA.names)
#: columns a results file may lack (written before they existed): filled with nulls
OPTIONAL_COLUMNS = ("fold", *LATER_RESULT_COLUMNS)
#: columns that identify one probe evaluation (a table cell before averaging over seeds)
CELL_COLUMNS = ("run_id", "task", "task_type", "dataset", "model", "probe", "seed", "fold", "scenario")
HISTORY_COLUMNS = ("task", "dataset", "model", "probe", "seed", "epoch", "train_loss", "val_loss", "val_criterion")
CLEAN = "clean"


@dataclass(frozen=True)
class ConfusionKey:
    task: str
    dataset: str
    model: str
    probe: str
    seed: int
    scenario: str

    @classmethod
    def from_filename(cls, name: str) -> ConfusionKey | None:
        parts = name.removesuffix(".json").split("__")
        if len(parts) == 7 and parts[6].startswith("fold") and parts[6][4:].isdigit():
            parts = parts[:6]  # one fold of a k-fold run: pooled with the other folds
        if len(parts) != 6:
            return None
        try:
            seed = int(parts[4])
        except ValueError:
            return None
        return cls(parts[0], parts[1], parts[2], parts[3], seed, parts[5])


@dataclass
class Run:
    """One run directory, loaded."""

    run_id: str
    path: Path
    results: pd.DataFrame
    config_text: str = ""
    history: pd.DataFrame | None = None
    confusion: dict[ConfusionKey, tuple[list[str], np.ndarray]] = field(default_factory=dict)
    #: ``failed.parquet``: the probe trainings that failed and why (none: ``None``)
    failed: pd.DataFrame | None = None
    #: the selected probes' validation criteria (:func:`repeval.report.selection.load_validation`; none: ``None``)
    validation: pd.DataFrame | None = None
    #: the (task, dataset) pairs scored on the annotated (track, label) pairs only: a multilabel data set that
    #: annotates some labels per track, with ``unannotated: mask`` (its saved splits carry ``observed``)
    masked: frozenset[tuple[str, str]] = frozenset()
    #: the run's files the report could not read (cut short, another user's), each with what it leaves out and the
    #: fix: the notes at the top of the report (and warnings)
    unread: list[str] = field(default_factory=list)

    #: the parsed ``config_text`` and the text it is of (:attr:`config`)
    _parsed: tuple[str, dict[str, Any]] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def config(self) -> dict[str, Any]:
        """``config_text`` parsed (a copy: the report reads it in every section, parsed once)."""
        if self._parsed is None or self._parsed[0] != self.config_text:
            data = yaml.safe_load(self.config_text) if self.config_text else None
            self._parsed = (self.config_text, data if isinstance(data, dict) else {})
        return copy.deepcopy(self._parsed[1])


def ci_level(runs: Sequence[Run]) -> str:
    """The level of the runs' bootstrap intervals, ``1 - run.ci_alpha`` as a percentage (``95%``; runs at several
    levels: ``90% / 95%``)."""
    from repeval.config.run import RunConfig

    default = float(RunConfig.model_fields["ci_alpha"].default)
    alphas = set()
    for run in runs:
        section = run.config.get("run")
        alphas.add(float(section.get("ci_alpha", default)) if isinstance(section, dict) else default)
    return " / ".join(f"{round(100 * (1 - a), 6):g}%" for a in sorted(alphas or {default}, reverse=True))


def write_results(df: pd.DataFrame, path: Path) -> Path:
    """Write a results frame with the canonical schema (checks columns and types)."""
    df = normalise_results(df, source=str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(df[list(RESULT_COLUMNS)], schema=RESULTS_SCHEMA, preserve_index=False), path)
    return path


def normalise_results(df: pd.DataFrame, source: str = "results") -> pd.DataFrame:
    """Check the columns of a results frame and coerce their types; ``ValueError`` names what is missing."""
    missing = [c for c in RESULT_COLUMNS if c not in df.columns and c not in OPTIONAL_COLUMNS]
    if missing:
        raise ValueError(
            f"{source} lacks the result columns {', '.join(missing)}; it must have {', '.join(RESULT_COLUMNS)} "
            "(is this a results.parquet written by `repeval run`?)"
        )
    df = df.copy()
    for col in OPTIONAL_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["fold"] = pd.to_numeric(df["fold"], errors="raise").astype("Int64")  # null: a dataset with one split
    df["n_delta"] = pd.to_numeric(df["n_delta"], errors="raise").astype("Int64")  # null: clean, or an older file
    for col in ("run_id", "task", "task_type", "dataset", "model", "probe", "scenario", "metric"):
        df[col] = df[col].astype(str)
    df["label"] = df["label"].astype(object).where(df["label"].notna(), None)
    for col in ("value", "ci_low", "ci_high", "delta", "fold_overlap"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(np.float64)
    for col in ("seed", "n_test"):
        df[col] = pd.to_numeric(df[col], errors="raise").astype(np.int64)
    return df


def load_run(run_dir: Path) -> Run:
    """Load one run directory; ``ValueError`` naming the fix when ``results.parquet`` is missing."""
    from repeval.report.no_results import results_file

    run_dir = Path(run_dir)
    res_path = results_file(run_dir)
    try:
        frame = pd.read_parquet(res_path)
    except (OSError, pa.ArrowInvalid) as exc:  # cut short or corrupted (a copy, a full disk)
        raise ValueError(
            f"{res_path} is unreadable ({parquet_error(exc)}): "
            f"{damaged(exc, evaluate_fix(pafs.LocalFileSystem(), str(run_dir)))}"
        ) from None
    results = normalise_results(frame, source=str(res_path))
    results = fill_fold_overlap(results, run_dir)  # results evaluated before the folds' overlap was recorded
    unread: list[str] = []  # the run's files not read, what the report leaves out, and the fix: its notes
    refused = refused_files(run_dir)  # a bucket's keys these credentials may not read: left out of its staged copy
    for name, said in refused.items():  # (config.yaml: results_config says what stands in for it)
        if name != "config.yaml" and not not_read(name):  # an earlier report's files, groups/: not read
            say_unread(unread, refused_said(said, "left out"))
    config_text = results_config(run_dir, unread)
    try:
        config = yaml.safe_load(config_text) if config_text else None
    except yaml.YAMLError:
        config = None
    results = in_scenario_order(results, config if isinstance(config, dict) else {})
    history = None
    # one file, or one file per (task, dataset, model) group under history/
    hist_path = run_dir / "history.parquet"
    if not hist_path.is_file() and (run_dir / "history").is_dir():
        hist_path = run_dir / "history"
    # the (task, dataset, model, fold) grids of the results: a file left by a grid the results no longer hold (a
    # model removed, fewer folds: `repeval evaluate` leaves it out) is not drawn or pooled with them
    grids = {(t, d, m, None if pd.isna(f) else int(f)) for t, d, m, f in results[["task", "dataset", "model", "fold"]]
             .drop_duplicates().itertuples(index=False)}  # fmt: skip
    files = (
        [hist_path] if hist_path.is_file() else listed(hist_path, ".parquet", "training curves are left out", unread)
    )
    read = (read_parquet_or_warn(p, "its training curves are left out", unread) for p in files)
    parts = [h for h in read if h is not None]  # an unreadable file's curves left out, said in a warning
    if parts:
        history = pd.concat(parts, ignore_index=True)
        missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
        if missing:
            log.warning("%s lacks columns %s; training curves are skipped", hist_path, ", ".join(missing))
            history = None
        else:
            folds = history["fold"] if "fold" in history.columns else pd.Series([None] * len(history))
            keep = [
                (t, d, m, None if pd.isna(f) else int(f)) in grids
                for t, d, m, f in zip(history["task"], history["dataset"], history["model"], folds, strict=True)
            ]
            history = history[keep].reset_index(drop=True)
    from repeval.report.confusion import load_confusion  # it reads ConfusionKey from here

    confusion = load_confusion(run_dir, grids, unread)
    stale = None if "summary.parquet" in refused else summary_mismatch(pafs.LocalFileSystem(), str(run_dir))
    if stale is not None:  # this report reads results.parquet: it is right, a reader of summary.parquet is not
        log.warning("%s: %s", staged_from(run_dir) or run_dir, stale)
    failed_path = run_dir / "failed.parquet"
    failed = (
        read_parquet_or_warn(failed_path, "the report does not list the run's failures", unread)
        if failed_path.is_file()
        else None
    )
    wanted = recorded_grids(pq.read_metadata(res_path))
    if failed is not None and wanted is not None and {"task", "dataset", "model", "fold"} <= set(failed.columns):
        # the failures of grids the evaluation left out (a model removed since they were trained) are not shown
        keep = [grid_name(t, d, m, None if pd.isna(f) else int(f)) in wanted for t, d, m, f in zip(
            failed["task"], failed["dataset"], failed["model"], failed["fold"], strict=True)]  # fmt: skip
        failed = failed[keep].reset_index(drop=True)
    run_ids = results["run_id"].unique().tolist()
    run_id = run_ids[0] if len(run_ids) == 1 else run_dir.name
    masked = _masked(run_dir, results, unread)
    run = Run(run_id, run_dir, results, config_text, history, confusion, failed, masked=masked, unread=unread)
    if isinstance(config, dict):  # parsed above: Run.config need not parse it again
        run._parsed = (config_text, config)
    try:
        run.validation = load_validation(run_dir, run_id, run.config, results, unread)
    except (ValueError, KeyError, AttributeError, yaml.YAMLError) as exc:  # files read, not a validation record
        say_unread(unread, (
            f"{run_dir / 'probes'}: its probes' validation record is not one this repeval reads ({type(exc).__name__}: "
            f"{exc}); probes are chosen on clean test; {RETRAIN_FIX.replace('it is', 'each file is')}"
        ))  # fmt: skip
    return run


def _masked(run_dir: Path, results: pd.DataFrame, unread: list[str]) -> frozenset[tuple[str, str]]:
    """The (task, dataset) pairs of ``results`` whose saved splits say which labels each track annotates; a split
    file (or ``splits/``) not read is said in ``unread`` with the fix."""
    tested = (
        "{its} test tracks are not known: {its} results are ranked with another run's when both scored as many test "
        "tracks in each fold, not checked to be the same tracks and labels"
    )
    what = tested + (
        ", and described as if every label were annotated (which labels each track annotates is not known)"
    )
    found = listed(run_dir / "splits", ".parquet", what.replace("{its}", "the run's"), unread)
    out, failures = set(), []
    for task, dataset in groups(results):
        base = f"{task}__{dataset}"
        for path in [p for p in found if p.name == f"{base}.parquet" or p.name.startswith(f"{base}__fold")]:
            try:  # every fold's file: one not read leaves the test set unknown (comparable.split_digests)
                if OBSERVED in pq.read_schema(path).names:
                    out.add((task, dataset))
            except (OSError, pa.ArrowInvalid) as exc:
                failures.append(((task, dataset), path, exc))
    fix = "the next `repeval run` on the run writes the splits anew"
    for masked in (False, True):  # the labels are known when another fold's file of the pair says them
        mine = [(path, exc) for pair, path, exc in failures if (pair in out) == masked]
        if mine:
            say_unread(unread, unread_files(mine, tested if masked else what, fix))
    return frozenset(out)


def load_runs(run_dirs: list[Path]) -> list[Run]:
    """Load several runs; the same run directory twice keeps the first and warns. Two directories whose runs share an
    id (``runs/quickstart`` and ``other/runs/quickstart``) are both kept, the later ones named ``<run_id>@<folder>``
    after their runs directory (as many parent folders as tell them apart; a bucket's run, staged locally by
    :func:`~repeval.run_open.open_run`, after those of its URI: ``<run_id>@bucket/runs``; a copy in the same runs
    directory after its own folder)."""
    if not run_dirs:
        raise ValueError("no run directories given: pass one or more runs/<run_id> paths")
    runs: list[Run] = []
    seen: dict[str, PurePath] = {}
    for d in run_dirs:
        run = load_run(Path(d))
        remote = staged_from(Path(d))  # a bucket's run, staged locally: named by its URI, not the temporary folder
        where = Path(d).resolve() if remote is None else PurePosixPath("/", remote.split("://", 1)[-1])
        shown = remote or d
        if where in seen.values():
            log.warning("run '%s' given twice (%s); keeping the first", run.run_id, shown)
            continue
        if run.run_id in seen:
            label = _distinct_label(run.run_id, where, seen)
            log.warning(
                "run id '%s' of %s is also that of %s: shown as '%s'", run.run_id, shown, seen[run.run_id], label
            )
            _relabel(run, label)
        seen[run.run_id] = where
        runs.append(run)
    return runs


def _distinct_label(run_id: str, where: PurePath, seen: dict[str, PurePath]) -> str:
    """``<run_id>@<folders>``: the fewest parent folders of ``where`` that differ from those of the run first shown
    as ``run_id`` and that no label in ``seen`` has; in the same folders, ``<run_id>@<its own folder's name>``."""
    parents = [p.name for p in where.parents if p.name]
    first = [p.name for p in seen[run_id].parents if p.name]
    for n in range(1, len(parents) + 1):
        label = f"{run_id}@{'/'.join(reversed(parents[:n]))}"
        if parents[:n] != first[:n] and label not in seen:
            return label
    if f"{run_id}@{where.name}" not in seen:  # a copy beside it in the same runs directory: its folder's name
        return f"{run_id}@{where.name}"
    return f"{run_id}@{where}"


def _relabel(run: Run, label: str) -> None:
    """Name ``run`` ``label`` everywhere tables and the report read its id."""
    run.run_id = label
    run.results = run.results.assign(run_id=label)
    if run.validation is not None and "run_id" in run.validation.columns:
        run.validation = run.validation.assign(run_id=label)


def masked_pairs(runs: Sequence[Run]) -> frozenset[tuple[str, str]]:
    """The (task, dataset) pairs some of ``runs`` scored on the annotated (track, label) pairs only."""
    return frozenset().union(*(r.masked for r in runs))


def combine_results(runs: list[Run]) -> pd.DataFrame:
    """All runs' results in one frame (they already carry ``run_id``); a scenario the runs define differently is kept
    apart, one column per definition (:func:`repeval.report.comparable.keep_apart`)."""
    from repeval.report.comparable import keep_apart

    df = pd.concat([r.results for r in runs], ignore_index=True)
    return keep_apart(df, runs) if len(runs) > 1 else df


def natural_key(text: str) -> tuple[object, ...]:
    """Sort key that orders ``M2`` before ``M10`` and ``D2`` before ``D10``."""

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text)))


def ordered_scenarios(scenarios: Sequence[str] | np.ndarray | pd.Index) -> list[str]:
    """``clean`` first, then the deformation scenarios in the order given — a results frame's order of appearance
    (``df["scenario"].unique()``), which :func:`load_run` makes the configuration's."""
    uniq = list(dict.fromkeys(str(s) for s in scenarios))
    return ([CLEAN] if CLEAN in uniq else []) + [s for s in uniq if s != CLEAN]


def config_scenarios(config: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """Per ``(task, dataset)`` of a run's ``config.yaml`` (as a mapping), its deformation scenarios in the
    configuration's order (:func:`configured_scenarios`)."""
    out: dict[tuple[str, str], list[str]] = {}
    for task, dataset, sid, _ in configured_scenarios(config):
        out.setdefault((task, dataset), []).append(sid)
    return out


def configured_scenarios(config: Mapping[str, Any]) -> Iterator[tuple[str, str, str, Any]]:
    """``(task, dataset, scenario id, scenario as written)`` of each deformation scenario of a run's ``config.yaml``
    (as a mapping), in the configuration's order: the dataset's own ``deformations`` or else its experiment's, each
    named by its ``name`` or ``D1``, ``D2``, … by position (:func:`repeval.config.embed.scenario_ids`). Read
    leniently: what is not there (an old or hand-edited file) is left out."""
    experiments = config.get("experiments")
    for exp in experiments if isinstance(experiments, list) else ():
        if not isinstance(exp, dict) or not isinstance(exp.get("task"), dict):
            continue
        datasets = exp.get("datasets")
        for ds in datasets if isinstance(datasets, list) else ():
            if not isinstance(ds, dict) or "name" not in ds:
                continue
            scen = ds.get("deformations")
            scen = exp.get("deformations") if scen is None else scen
            for i, sc in enumerate(scen if isinstance(scen, list) else ()):
                sid = str(sc["name"]) if isinstance(sc, dict) and sc.get("name") else f"D{i + 1}"
                yield str(exp["task"].get("name")), str(ds["name"]), sid, sc


def in_scenario_order(results: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """``results`` with each (task, dataset)'s rows in the order of its scenarios — clean, then the configuration's
    (:func:`config_scenarios`), then any other in order of appearance — so that a scenario's order of appearance, what
    tables and figures order their columns by (:func:`ordered_scenarios`), is the configuration's, however the rows
    were written (an evaluation that tested a scenario added since, say). The groups keep their order of appearance,
    and each scenario's rows theirs."""
    if results.empty:
        return results
    configured = config_scenarios(config)
    pairs = list(zip(results["task"], results["dataset"], strict=True))
    group = {p: i for i, p in enumerate(dict.fromkeys(pairs))}
    seen = {s: i for i, s in enumerate(dict.fromkeys(results["scenario"]))}
    rank: dict[tuple[str, str, str], int] = {}
    for pair in group:
        order = {s: i for i, s in enumerate(dict.fromkeys([CLEAN, *configured.get(pair, [])]))}
        for s, i in seen.items():
            rank[(*pair, s)] = order.get(s, len(order) + i)
    keys = pd.DataFrame(
        {
            "_group": [group[p] for p in pairs],
            "_rank": [rank[(t, d, s)] for (t, d), s in zip(pairs, results["scenario"], strict=True)],
        },
        index=results.index,
    )
    order = keys.sort_values(["_group", "_rank"], kind="stable").index
    return results.loc[order].reset_index(drop=True)


def label_order(per_label: pd.DataFrame) -> dict[str, int]:
    """Each label's position in its task's vocabulary (class or tag order: a key's circle of keys, an instrument
    list's own order), from per-label result rows, which each cell (a probe, seed, scenario and metric of one run)
    writes in that order. A label a cell left out (its value undefined there) goes after the label before it in
    the cells that have it: the fullest cells set the order, the others only add what they lack."""
    keys = [k for k in ("run_id", "model", "probe", "seed", "fold", "scenario", "metric") if k in per_label]
    cells = (
        [list(g) for _, g in per_label.groupby(keys, sort=False, dropna=False)["label"]]
        if keys
        else [list(per_label["label"])]
    )
    order: list[str] = []
    for labels in sorted(cells, key=len, reverse=True):
        prev = None
        for lab in labels:
            if lab not in order:
                order.insert(order.index(prev) + 1 if prev is not None else 0, lab)
            prev = lab
    return {lab: i for i, lab in enumerate(order)}


def groups(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The ``(task, dataset)`` pairs in ``results``, in order of appearance."""
    # (not a Python loop over every row: a study's results, per-label rows included, are hundreds of thousands)
    return list(results[["task", "dataset"]].drop_duplicates().itertuples(index=False, name=None))
