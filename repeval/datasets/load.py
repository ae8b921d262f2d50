"""Load a configured dataset for a task: loader → capped rows → splits.

Splits: a loader sets the official split where the data set has one; rows it leaves without a
split get a seeded stratified (group-aware) split — ``split_ratios`` for ``split_type: single``,
fold ``dataset.fold`` of ``n_folds`` rotating folds for ``split_type: all`` (validation = fold
i, test = fold i+1). :func:`dataset_folds` lists the folds a run iterates over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets.base import DATASET_INFO, DATASETS, SPLIT_KEYS, LoadReport
from repeval.datasets.spill import hash64
from repeval.datasets.splits import fill_fold_splits, fill_splits, label_strata

log = logging.getLogger(__name__)


def loader_name(ds: Any) -> str:
    """``catalog`` datasets use the ``catalog`` loader; mirdata data sets without a wired loader use
    the generic ``mirdata`` loader; others are looked up by name."""
    if ds.type == "catalog":
        return "catalog"
    if ds.type == "mirdata" and ds.name not in DATASETS:
        return "mirdata"
    return str(ds.name)


def official_fold_loaders() -> list[str]:
    """The loaders that read ``dataset.fold`` under ``split_type: single`` to pick one of their data set's official
    folds or splits (``"fold"`` in :attr:`~repeval.datasets.base.DatasetInfo.split_keys`), ``mirdata`` (the generic
    loader) among them: the one source of where ``fold`` applies — :func:`has_official_folds`, the configuration's
    check and the JSON Schema's rule derive from it."""
    return sorted(name for name, info in DATASET_INFO.items() if "fold" in info.split_keys)


def has_official_folds(ds: Any) -> bool:
    """Whether ``dataset.fold`` picks an official fold or split of ``ds`` (its ``type`` and ``name``) under
    ``split_type: single``; elsewhere one split is drawn and ``fold`` would be ignored."""
    return loader_name(ds) in official_fold_loaders()


class _Reading:
    """A dataset config as its loader sees it: each of :data:`~repeval.datasets.base.SPLIT_KEYS` read is noted in
    ``read`` (what the loader reports it used, without each loader having to say so)."""

    def __init__(self, ds: Any, read: set[str]) -> None:
        self._ds, self._read = ds, read

    def __getattr__(self, name: str) -> Any:
        if name in SPLIT_KEYS:
            self._read.add(name)
        return getattr(self._ds, name)


def dataset_folds(ds: Any) -> list[int]:
    """Folds a run evaluates: ``[dataset.fold]`` for ``split_type: single``, all ``n_folds`` for ``all``."""
    if getattr(ds, "split_type", "single") == "all":
        return list(range(int(ds.n_folds)))
    return [int(getattr(ds, "fold", 0) or 0)]


def fold_config(ds: Any, fold: int) -> Any:
    """The dataset config of one fold of a ``split_type: all`` dataset."""
    return ds.model_copy(update={"fold": fold})


def load_folds(ds: Any, task: Any, found: LoadReport | None = None, report: bool = True) -> dict[int, pa.Table]:
    """Rows of every fold a run evaluates (see :func:`dataset_folds`), each with that fold's splits.

    Each fold is loaded through the dataset's loader, so official folds (TinySOL), official
    split files (MTG-Jamendo ``split-k``) and group-aware rotating folds all work the same way.
    The loader's findings are logged once (every fold drops the same rows; ``report=False``: not at all) and merged
    into ``found``.
    """
    out: dict[int, pa.Table] = {}
    first: pa.Table | None = None
    for f in dataset_folds(ds):
        rows, said = load_dataset(fold_config(ds, f), task, report=report and first is None)
        if first is None:
            first = rows
            if found is not None:
                found.merge(said)
        elif rows.column("track_id").equals(first.column("track_id")):  # only the split differs: share the rest
            rows = first.set_column(first.schema.get_field_index("split"), "split", rows.column("split"))
        out[f] = rows
    check_rotation(ds, out)
    return out


def check_rotation(ds: Any, folds: dict[int, pa.Table]) -> None:
    """Folds that hold the same tracks must rotate: ``ValueError`` when every fold has the same splits (a manifest's
    ``split_column`` or a loader's official train/validation/test split fixes every track's split, so the k "folds"
    would train and test one split k times and their spread would be retraining noise, not k-fold cross-validation);
    a warning when some tracks are tested in no fold or in several (fixed splits on part of the rows, ``n_folds``
    below a data set's official fold count, or official splits drawn apart — MTG-Jamendo's split-k, whose loader gives
    each fold its own rows, counted by track id)."""
    tables = list(folds.values())
    if len(tables) < 2:
        return
    ids = tables[0].column("track_id")
    name = getattr(ds, "name", "?")
    if any(t.num_rows != len(ids) or not t.column("track_id").equals(ids) for t in tables[1:]):
        _warn_tested(name, *_tested_by_id(tables), len(tables))
        return
    splits = [t.column("split") for t in tables]
    if all(s.equals(splits[0]) for s in splits[1:]):
        column = getattr(ds, "split_column", None)
        why = who_splits(ds)
        fix = "drop split_column to rotate stratified folds, or " if column else ""
        raise ValueError(
            f"dataset {name!r}: split_type: all, but all {len(tables)} folds have the same splits — {why}, so the "
            f"folds cannot rotate and each would train and test the same tracks; {fix}use split_type: single"
        )
    tested = np.zeros(len(ids), dtype=np.int32)
    for s in splits:
        tested += pc.fill_null(pc.equal(s, "test"), False).to_numpy(zero_copy_only=False)
    _warn_tested(name, len(ids), int((tested == 0).sum()), int((tested > 1).sum()), len(tables))


def _tested_by_id(tables: list[pa.Table]) -> tuple[int, int, int]:
    """(tracks, tracks tested in no fold, tracks tested in several) of folds that each hold their own rows."""
    every = pc.unique(pa.chunked_array([t.column("track_id") for t in tables]))
    tests = [t.filter(pc.fill_null(pc.equal(t.column("split"), "test"), False)).column("track_id") for t in tables]
    counts = pc.value_counts(pa.chunked_array([pc.unique(c) for c in tests], type=every.type))
    n = np.asarray(counts.field("counts"))
    return len(every), len(every) - len(n), int((n > 1).sum())


def _warn_tested(name: str, n: int, never: int, several: int, k: int) -> None:
    """The warning of :func:`check_rotation`: ``never`` of ``n`` tracks tested in no fold, ``several`` in more than
    one of the ``k`` (whose folds' results are then correlated: the interval of their mean allows for it,
    :func:`fold_test_overlap`)."""
    if never or several:
        shared = (
            "; the folds' results share test tracks, so the interval of their mean is widened for it (fold_overlap)"
            if several
            else ""
        )
        log.warning(
            "dataset %s: of %d tracks, %d are tested in no fold and %d in several of the %d folds (their split is "
            "fixed, n_folds differs from the data set's folds, or its official splits are drawn apart): the mean "
            "over folds is not a k-fold cross-validation estimate, in which every track is tested once%s",
            name, n, never, several, k, shared,
        )  # fmt: skip


def fold_test_overlap(tables: list[pa.Table]) -> float | None:
    """How much the test sets of k folds' splits (each a table with ``track_id`` and ``split``) overlap: the mean over
    pairs of folds of ``|T_f ∩ T_g| / sqrt(|T_f| |T_g|)``, ``T_f`` fold f's test track ids — the correlation of two
    folds' means over their test tracks (tracks independent, of equal variance), which
    :func:`repeval.tuning.results.mean_intervals` combines the folds' intervals with. 0: disjoint test sets (a k-fold
    split), 1: the same test set in every fold. ``None`` for fewer than two folds or a fold without test tracks."""
    tests = []
    for t in tables:
        is_test = pc.fill_null(pc.equal(t.column("split"), "test"), False)
        tests.append(pc.unique(t.filter(is_test).column("track_id").combine_chunks()))
    if len(tests) < 2 or any(len(ids) == 0 for ids in tests):
        return None
    rho = [
        pc.sum(pc.is_in(a, value_set=b)).as_py() / np.sqrt(len(a) * len(b))
        for i, a in enumerate(tests)
        for b in tests[i + 1 :]
    ]
    return float(np.mean(rho))


def who_splits(ds: Any, folds: bool = False) -> str:
    """What gives every track of ``ds`` its split when its loader leaves none to draw (``folds``: the loader read
    ``dataset.fold`` to pick one of the data set's official folds or splits — TinySOL's folds, MTG-Jamendo's split-k)."""
    column = getattr(ds, "split_column", None)
    if column:
        return f"the manifest's split column {column!r} (dataset.split_column) gives every track its split"
    if folds:
        return f"its loader gives every track its split from the data set's official fold or split {ds.fold} (dataset.fold)"
    return "its loader gives every track an official train/validation/test split"


def _unused_split_keys(ds: Any, found: LoadReport, capped: bool) -> str | None:
    """A note naming ``split_ratios`` / ``split_seed`` when the user set them but no split was drawn (the loader gave
    every track its split): left in the configuration, they would seem to shape the splits."""
    given = ds.keys_given() if hasattr(ds, "keys_given") else set()
    unused = [k for k in ("split_ratios", "split_seed") if k in given and k not in found.used_keys]
    if capped and "split_seed" in unused:
        unused.remove("split_seed")  # it drew the max_tracks subset
    if not unused:
        return None
    shown = {k: list(v) if isinstance(v := getattr(ds, k), tuple) else v for k in unused}
    keys = " and ".join(f"{k} ({v})" for k, v in shown.items())
    why = who_splits(ds, "fold" in found.used_keys)
    return f"{keys} not used: {why}, so no split is drawn — remove {' and '.join(unused)}" + (
        ", or drop split_column to draw the splits" if getattr(ds, "split_column", None) else ""
    )


def _unused_fold(ds: Any, task: Any, found: LoadReport) -> str | None:
    """A note naming ``fold`` when the user set it on one split but the loader read none of the data set's official
    folds (this task's label has none: TinySOL's pitch classes): left in the configuration, it would seem to pick
    one."""
    given = ds.keys_given() if hasattr(ds, "keys_given") else set()
    if "fold" not in given or "fold" in found.used_keys:
        return None
    label = getattr(task, "label", None)
    what = f"label {label!r}" if label else f"task {getattr(task, 'name', '?')!r}"
    return (
        f"fold ({ds.fold}) not used: the data set has no official folds for {what} (`repeval datasets {ds.name}` "
        "says which labels have them), so its split is drawn from split_ratios and split_seed — remove fold"
    )


def load_dataset(ds: Any, task: Any, report: bool = True) -> tuple[pa.Table, LoadReport]:
    """Rows (track id, audio, label, split, group) of one dataset for a task; ``report`` logs the loader's
    findings (missing files, unknown labels), once per dataset when its folds are loaded one by one."""
    read: set[str] = set()
    rows, found = DATASETS.get(loader_name(ds))(_Reading(ds, read), task)
    found.used_keys |= read
    # regression targets are not strata (each value would be one): their splits are plain seeded ones
    stratify = getattr(task, "effective_type", None) != "regression"
    folds = getattr(ds, "split_type", "single") == "all"
    # split_type single, and the loader gave every track its split: split_ratios drew none
    preset = not folds and rows.column("split").null_count == 0
    capped = ds.max_tracks is not None and rows.num_rows > ds.max_tracks
    if capped:
        # before the splits are drawn, which then stratify the kept tracks; under split_type all by label only, so
        # every fold keeps the same tracks (a loader's official folds give each fold other splits)
        rows = cap_tracks(rows, ds.max_tracks, ds.split_seed, by_split=not folds, by_label=stratify)
    if folds:
        fold = int(getattr(ds, "fold", 0) or 0)
        rows = fill_fold_splits(rows, int(ds.n_folds), fold, ds.split_seed, stratify=stratify)
    else:
        rows = fill_splits(rows, tuple(ds.split_ratios), ds.split_seed, stratify=stratify)
        found.drawn_splits = not preset
    note = _unused_split_keys(ds, found, capped) if preset else None
    if note:
        found.notes.append(note)
    if getattr(ds, "split_type", "single") == "single" and (note := _unused_fold(ds, task, found)):
        found.notes.append(note)
    pa.default_memory_pool().release_unused()  # return the split's scratch memory to the OS
    for line in found.lines() if report else ():
        log.warning("dataset %s: %s", ds.name, line)
    return rows, found


def cap_tracks(rows: pa.Table, n: int, seed: int, by_split: bool = True, by_label: bool = True) -> pa.Table:
    """A seeded, stratified subset of ``n`` rows, streaming over ``rows`` with memory ~ ``n`` whatever their number.

    The strata are the rows' (split, label) pairs — ``by_split``: the split a loader gave the row (rows without one
    are a split of their own, to be drawn); ``by_label``: its label, or its rarest tag when rows have several
    (:func:`~repeval.datasets.splits.label_strata`, as the drawn splits stratify). ``n`` is allocated over them in
    proportion, at least one row each (:func:`allocate_strata`), and each stratum keeps its rows with the smallest
    seeded hashes of track id, so the subset depends only on ``seed`` and the set of rows. A 40-track cap of a
    10-class data set kept a class or a split's class only by chance; now every one it can. When the pairs outnumber
    ``n`` the split alone stratifies, and when the splits do too, the cap is the unstratified one (the ``n``
    smallest hashes)."""
    strata_of: Callable[[pa.RecordBatch], pa.Array] | None = None
    counts: dict[str, int] | None = None
    for split, label in dict.fromkeys(((by_split, by_label), (by_split, False))):
        if split or label:
            strata_of = _cap_strata(rows, split, label)
            counts = _stratum_counts(rows, strata_of, limit=n)
            if counts is not None:
                break
    if counts is None or strata_of is None:  # too many strata for n: one stratum
        strata_of, counts = None, {"": rows.num_rows}
    names = sorted(counts)
    quota = np.array(allocate_strata([counts[s] for s in names], n), dtype=np.int64)
    value_set = pa.array(names, pa.string())
    best_keys = np.empty(0, dtype=np.uint64)
    best_pos = np.empty(0, dtype=np.int64)
    best_code = np.empty(0, dtype=np.int64)
    start = 0
    for batch in rows.to_batches(max_chunksize=1 << 16):
        keys = np.concatenate([best_keys, hash64(batch.column("track_id"), seed)])
        pos = np.concatenate([best_pos, np.arange(start, start + batch.num_rows, dtype=np.int64)])
        code = np.zeros(batch.num_rows, dtype=np.int64)
        if strata_of is not None:
            code = pc.index_in(strata_of(batch), value_set=value_set).to_numpy(zero_copy_only=False).astype(np.int64)
        code = np.concatenate([best_code, code])
        start += batch.num_rows
        # each stratum's smallest hashes, up to its quota (ties, never in practice, go to the earlier row)
        order = np.lexsort((pos, keys, code))
        by_code = code[order]
        rank = np.arange(len(order)) - np.searchsorted(by_code, by_code, side="left")
        order = order[rank < quota[by_code]]
        best_keys, best_pos, best_code = keys[order], pos[order], code[order]
    return rows.take(pa.array(np.sort(best_pos)))


def allocate_strata(sizes: list[int], n: int) -> list[int]:
    """How many of ``n`` rows each stratum of ``sizes`` rows keeps: in proportion to its size, at least one each when
    ``n`` allows (a stratum whose share is below one gets one, and the rest is shared again among the others), by
    largest remainders (ties: the earlier stratum); never more than a stratum has."""
    size = np.asarray(sizes, dtype=np.int64)
    n = min(n, int(size.sum()))
    out = np.zeros(len(size), dtype=np.int64)
    free = size > 0
    if n >= int(free.sum()):
        while True:  # strata whose share is below one take one each, until every share left is at least one
            share = (n - int(out.sum())) * size / max(int(size[free].sum()), 1)
            small = free & (share < 1)
            if not small.any():
                break
            out[small], free = 1, free & ~small
    left = n - int(out.sum())
    share = np.where(free, left * size / max(int(size[free].sum()), 1), 0.0)
    floor = np.floor(share).astype(np.int64)
    out += floor
    extra = np.argsort(-(share - floor), kind="stable")[: left - int(floor.sum())]
    out[extra] += 1
    return [int(c) for c in out]


def _cap_strata(rows: pa.Table, by_split: bool, by_label: bool) -> Callable[[pa.RecordBatch], pa.Array]:
    """Each row's stratum for :func:`cap_tracks`: its split and/or its label stratum, joined by a NUL."""
    labels = label_strata(rows, lambda b: np.ones(b.num_rows, dtype=bool)) if by_label else None

    def strata(batch: pa.RecordBatch) -> pa.Array:
        split = batch.column("split") if by_split else pa.nulls(batch.num_rows, pa.string())
        label = labels(batch.column("label")) if labels else pa.nulls(batch.num_rows, pa.string())
        return pc.binary_join_element_wise(pc.fill_null(split, ""), pc.fill_null(label, ""), "\0")

    return strata


def _stratum_counts(
    rows: pa.Table, strata_of: Callable[[pa.RecordBatch], pa.Array], limit: int
) -> dict[str, int] | None:
    """Rows per stratum, or None as soon as there are more than ``limit`` strata (memory ~ ``limit``)."""
    counts: dict[str, int] = {}
    for batch in rows.to_batches(max_chunksize=1 << 16):
        vc = pc.value_counts(strata_of(batch))
        for name, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            counts[name] = counts.get(name, 0) + c
        if len(counts) > limit:
            return None
    return counts
