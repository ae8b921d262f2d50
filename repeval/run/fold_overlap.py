"""How much the test sets of a k-fold dataset's folds overlap, from the splits a run saved (``fold_overlap``).

The folds of a ``split_type: all`` dataset test disjoint tracks when each track is tested once (a seeded k-fold
split); they share test tracks when a split column fixes some tracks' split (those are tested in every fold) or when a
data set's official splits are drawn apart (MTG-Jamendo's split-k run as folds). The evaluation measures it on
``splits/<task>__<dataset>__fold<k>.parquet`` (:func:`~repeval.datasets.load.fold_test_overlap`) and records it in
every result row of the dataset's folds (:func:`with_fold_overlap`), which the interval of the mean over folds
allows for (:func:`~repeval.tuning.results.mean_intervals`); the report measures it the same way for results
evaluated before it was recorded (:func:`fill_fold_overlap`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.words import counted

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("repeval.runner")

COLUMN = "fold_overlap"


def fold_overlaps(run_dir: Path, cells: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], float]:
    """The overlap of the folds' test sets per (task, dataset) of ``cells`` (task, dataset, fold), measured on the
    run's saved splits of those folds; a pair whose splits file of a fold is missing or unreadable is left out (its
    folds are then taken as disjoint, as results before this were)."""
    from repeval.datasets.load import fold_test_overlap

    folds: dict[tuple[str, str], set[int]] = {}
    for task, dataset, fold in cells:
        folds.setdefault((task, dataset), set()).add(int(fold))
    out: dict[tuple[str, str], float] = {}
    for (task, dataset), ks in folds.items():
        if len(ks) < 2:
            continue
        paths = [Path(run_dir) / "splits" / f"{task}__{dataset}__fold{k}.parquet" for k in sorted(ks)]
        if missing := [p for p in paths if not p.exists()]:
            shown = ", ".join(p.name for p in missing[:3]) + (", …" if len(missing) > 3 else "")
            log.warning(
                "%s / %s: %s of its folds missing from %s (%s); the interval of the mean over its folds takes their "
                "test tracks as disjoint", task, dataset, counted(len(missing), "splits file"), paths[0].parent, shown,
            )  # fmt: skip
            continue
        try:
            tables = [pq.read_table(p, columns=["track_id", "split"]) for p in paths]
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            log.warning(
                "%s / %s: its folds' splits are unreadable (%s); the interval of the mean over its folds takes their "
                "test tracks as disjoint", task, dataset, exc,
            )  # fmt: skip
            continue
        overlap = fold_test_overlap(tables)
        if overlap is not None:
            out[(task, dataset)] = overlap
    return out


def with_fold_overlap(table: pa.Table, run_dir: Path) -> pa.Table:
    """``table`` (result rows, :data:`~repeval.tuning.results.RESULT_SCHEMA`) with ``fold_overlap`` set on the rows of
    every k-fold dataset (null on the others, and where the splits cannot be read)."""
    k_fold = pc.is_valid(table.column("fold"))
    keys = pa.table({k: table.column(k) for k in ("task", "dataset", "fold")}).filter(k_fold)
    cells = keys.group_by(["task", "dataset", "fold"]).aggregate([]).to_pylist()
    overlaps = fold_overlaps(run_dir, ((c["task"], c["dataset"], c["fold"]) for c in cells))
    values = pa.nulls(table.num_rows, pa.float64())
    for (task, dataset), overlap in overlaps.items():
        rows = pc.and_(
            k_fold, pc.and_(pc.equal(table.column("task"), task), pc.equal(table.column("dataset"), dataset))
        )
        values = pc.if_else(rows, pa.scalar(overlap, pa.float64()), values)
    at = table.schema.get_field_index(COLUMN)
    return table.set_column(at, table.schema.field(at), values)


def fill_fold_overlap(results: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    """``results`` (a run's, as the report reads them) with ``fold_overlap`` measured on the run's saved splits where
    a k-fold row has none: results evaluated before it was recorded get the interval their folds' overlap allows."""
    need = results["fold"].notna() & results[COLUMN].isna()
    if not need.any():
        return results
    cells = results.loc[need, ["task", "dataset", "fold"]].drop_duplicates().itertuples(index=False)
    overlaps = fold_overlaps(run_dir, ((str(t), str(d), int(f)) for t, d, f in cells))
    if not overlaps:
        return results
    import pandas as pd

    measured = [overlaps.get((t, d)) for t, d in zip(results["task"], results["dataset"], strict=True)]
    fill = pd.Series(measured, index=results.index, dtype=float)
    return results.assign(**{COLUMN: results[COLUMN].where(~need, fill)})
