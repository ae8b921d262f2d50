"""Result tables: one row per (cell × scenario × metric × label), and mean ± std over seeds (and folds).

``fold`` is the fold of a ``split_type: all`` dataset (null for a dataset with one split): a k-fold
run has a row set per fold, and the summary's mean ± std is over every (seed, fold) replicate.

``value`` is a scenario's metric on every track of its test set (``n_test``; for one label of a data set that
annotates some labels per track, the test tracks annotating it); a deformed scenario's row also has
``delta``, its change from clean on the ``n_delta`` tracks both test sets hold (:mod:`repeval.tuning.paired`): a
track that failed under one scenario only is left out of that comparison, never compared against nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

RESULT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("task_type", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("probe", pa.string()),
        ("seed", pa.int64()),
        ("fold", pa.int64()),
        ("scenario", pa.string()),
        ("metric", pa.string()),
        ("label", pa.string()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n_test", pa.int64()),
        ("delta", pa.float64()),
        ("n_delta", pa.int64()),
        ("fold_overlap", pa.float64()),
    ]
)
#: columns results written before they existed lack (read as nulls)
LATER_RESULT_COLUMNS = ("delta", "n_delta", "fold_overlap")

SUMMARY_KEYS = ("task", "task_type", "dataset", "model", "probe", "scenario", "metric", "label")
SUMMARY_SCHEMA = pa.schema(
    [
        *(RESULT_SCHEMA.field(k) for k in SUMMARY_KEYS),
        ("mean", pa.float64()),
        ("std", pa.float64()),
        ("n_seeds", pa.int64()),
        ("n_folds", pa.int64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("delta_mean", pa.float64()),
        ("delta_std", pa.float64()),
    ]
)

_CELL = [(k, pa.string()) for k in ("task", "task_type", "dataset", "model")]

#: ``history/<group>.parquet``: one row per probe, seed and validated epoch
HISTORY_SCHEMA = pa.schema(
    [
        *_CELL,
        ("probe", pa.string()),
        ("seed", pa.int64()),
        ("epoch", pa.int64()),
        ("train_loss", pa.float64()),
        ("val_loss", pa.float64()),
        ("val_criterion", pa.float64()),
        ("best_criterion", pa.float64()),
        ("fold", pa.int64()),
    ]
)

#: ``probes/<group>.parquet``: every configuration trained, its parameters, and which one was selected
PROBES_SCHEMA = pa.schema(
    [
        *_CELL,
        ("spec", pa.string()),
        ("probe", pa.string()),
        ("seed", pa.int64()),
        ("params", pa.string()),
        #: the validation criterion ``best_criterion`` is a value of (``val_accuracy``, ``val_r2``, …)
        ("criterion", pa.string()),
        ("best_criterion", pa.float64()),
        ("best_epoch", pa.int64()),
        ("epochs", pa.int64()),
        ("status", pa.string()),
        ("selected", pa.bool_()),
        ("fold", pa.int64()),
    ]
)

#: ``failed.parquet``: probe trainings that failed and why, and the test sets a trained probe could not be scored on
FAILED_SCHEMA = pa.schema(
    [
        *_CELL,
        ("probe", pa.string()),
        ("seed", pa.int64()),
        #: the configuration's values that tell it from its spec's others, as JSON (as in ``probes/``)
        ("params", pa.string()),
        #: the test set (scenario) the trained probe gave non-finite scores on; null when its training failed
        ("scenario", pa.string()),
        ("reason", pa.string()),
        ("fold", pa.int64()),
    ]
)


def typed_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """``rows`` as a table of ``schema``: ``fold`` stays int64 when every row's is null (a dataset with one
    split), so the files of k-fold and single-split groups concatenate; a key the schema lacks is an error,
    not a column silently dropped."""
    extra = {k for r in rows for k in r} - set(schema.names)
    if extra:
        raise ValueError(f"columns {sorted(extra)} are not in the table's schema ({schema.names})")
    return pa.Table.from_pylist(rows, schema=schema)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def results_table(run_id: str, rows: list[dict[str, Any]]) -> pa.Table:
    full = []
    for r in rows:
        rec = {"ci_low": None, "ci_high": None, "delta": None, "n_delta": None, "fold_overlap": None, **r}
        rec["run_id"] = run_id
        for key in ("value", "ci_low", "ci_high", "delta", "fold_overlap"):
            rec[key] = _num(rec[key])
        full.append({k: rec.get(k) for k in RESULT_SCHEMA.names})
    return pa.Table.from_pylist(full, schema=RESULT_SCHEMA)


def with_result_columns(table: pa.Table) -> pa.Table:
    """``table`` (a results file) in :data:`RESULT_SCHEMA`'s column order, the columns a file written before they
    existed lacks (:data:`LATER_RESULT_COLUMNS`) added as nulls: a run resumed after an upgrade keeps the grids it
    had finished, whose files then concatenate with the new ones."""
    for name in LATER_RESULT_COLUMNS:
        if name not in table.column_names:
            table = table.append_column(
                RESULT_SCHEMA.field(name), pa.nulls(table.num_rows, RESULT_SCHEMA.field(name).type)
            )
    return table.select(RESULT_SCHEMA.names).cast(RESULT_SCHEMA)


def mean_intervals(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """``ci_low`` / ``ci_high`` per ``keys`` group of result rows (columns ``seed``, ``value``, ``ci_low``,
    ``ci_high`` and, for a k-fold dataset, ``fold`` and ``fold_overlap``): the interval of the mean the group reports,
    indexed by ``keys``.

    A replicate's bootstrap interval is over its own test set. The seeds of one split share that set, so their
    intervals are averaged. A seed's k folds are combined as k estimates of the mean, each side of the interval
    ``sqrt((1 − ρ) Σ_f h_f² + ρ (Σ_f h_f)²) / k`` from their mean, ``h_f`` a fold's distance from its value to that
    bound and ρ the correlation of two folds' values, ``fold_overlap`` (:func:`~repeval.datasets.load.fold_test_overlap`:
    the test tracks two folds share, ``|T_f ∩ T_g| / sqrt(|T_f| |T_g|)``, averaged over pairs — what it is for a
    mean over tracks). Folds that test disjoint tracks (a k-fold split: every track once; ρ = 0, or null in results
    written before it was recorded) give ``sqrt(Σ h_f²) / k``, narrower than any one fold's; folds that all test the
    same tracks (ρ = 1) give the folds' bounds averaged, as seeds'; folds that share some (a split column fixing some
    tracks, MTG-Jamendo's official split-k run as folds) lie in between — the variance of a mean of k estimates whose
    pairwise correlation is ρ, taken as one for every pair. Then averaged over seeds. One fold, or a dataset with one
    split: the bounds as they are. Rows whose ``value`` is null are left out; a seed with a fold that has no interval
    has none."""
    import pandas as pd

    keys = list(keys)
    d = df[df["value"].notna()]
    fold = d["fold"] if "fold" in d.columns else pd.Series(np.nan, index=d.index)
    overlap = d["fold_overlap"] if "fold_overlap" in d.columns else pd.Series(np.nan, index=d.index)
    d = d.assign(_fold=pd.to_numeric(fold, errors="coerce").fillna(-1), _v=d["value"].astype(float))
    d = d.assign(_l=d["ci_low"].astype(float), _h=d["ci_high"].astype(float))
    d = d.assign(_rho=pd.to_numeric(overlap, errors="coerce").fillna(0.0).clip(0.0, 1.0))
    cols = ["_v", "_l", "_h", "_rho"]
    per_fold = d.groupby([*keys, "seed", "_fold"], sort=False, dropna=False)[cols].mean().reset_index()
    v, lo, hi = per_fold["_v"], per_fold["_l"], per_fold["_h"]
    h_lo, h_hi = (v - lo).clip(lower=0), (hi - v).clip(lower=0)
    per_fold = per_fold.assign(
        _lo1=h_lo, _hi1=h_hi, _lo2=h_lo**2, _hi2=h_hi**2, _none=lo.isna() | hi.isna()
    )  # fmt: skip
    g = per_fold.groupby([*keys, "seed"], sort=False, dropna=False).agg(
        v=("_v", "mean"), k=("_v", "size"), lo1=("_lo1", "sum"), hi1=("_hi1", "sum"), lo2=("_lo2", "sum"),
        hi2=("_hi2", "sum"), rho=("_rho", "max"), none=("_none", "any"), lo=("_l", "mean"), hi=("_h", "mean"),
    )  # fmt: skip
    one = g["k"] == 1
    rho = g["rho"]
    half_lo = np.sqrt((1 - rho) * g["lo2"] + rho * g["lo1"] ** 2) / g["k"]
    half_hi = np.sqrt((1 - rho) * g["hi2"] + rho * g["hi1"] ** 2) / g["k"]
    ci_low = g["lo"].where(one, g["v"] - half_lo).where(~g["none"])
    ci_high = g["hi"].where(one, g["v"] + half_hi).where(~g["none"])
    per_seed = pd.DataFrame({"ci_low": ci_low, "ci_high": ci_high}).reset_index()
    return per_seed.groupby(keys, sort=False, dropna=False)[["ci_low", "ci_high"]].mean()


def _sample_std(v: Any) -> float:
    return float(np.std(v.dropna(), ddof=1)) if v.notna().sum() > 1 else np.nan


def seed_summary(table: pa.Table) -> pa.Table:
    """Mean ± sample std over seeds and folds per (task, dataset, model, probe, scenario, metric, label).

    A replicate whose value is undefined (null: a metric with no value on that seed's test set) is left out of the
    mean, the std, the bootstrap bounds *and* the counts: ``n_seeds`` / ``n_folds`` count the seeds and folds that
    entered the mean (0 seeds for a cell with no defined value). ``ci_low`` / ``ci_high``: the interval of the mean
    from those replicates' bootstrap bounds (:func:`mean_intervals`: folds combined, seeds averaged; ``None`` without
    them). ``delta_mean`` / ``delta_std``: the same over the replicates'
    ``delta`` (deformed scenarios: each replicate's change from clean on the tracks both its test sets hold), over
    those replicates whose ``delta`` is defined.
    """
    df = table.to_pandas()
    if df.empty:
        return SUMMARY_SCHEMA.empty_table()
    df["label"] = df["label"].fillna("")
    for col in ("fold", "delta"):
        if col not in df:
            df[col] = None
    df["delta"] = df["delta"].astype(float)
    defined = df["value"].notna()
    # an undefined replicate counts for nothing: its seed, fold and bounds are masked, so every statistic of a cell
    # is over the same replicates
    df["seed"] = df["seed"].where(defined)
    df["fold"] = df["fold"].where(defined)
    df["ci_low"] = df["ci_low"].where(defined)
    df["ci_high"] = df["ci_high"].where(defined)
    df["delta"] = df["delta"].where(defined)
    g = df.groupby(list(SUMMARY_KEYS), sort=True, dropna=False)
    out = g.agg(
        mean=("value", "mean"),
        std=("value", _sample_std),
        n=("value", "count"),
        n_seeds=("seed", "nunique"),
        n_folds=("fold", "nunique"),
        delta_mean=("delta", "mean"),
        delta_std=("delta", _sample_std),
    )
    out = out.join(mean_intervals(df, SUMMARY_KEYS)).reset_index()
    recs = out.to_dict("records")
    for r in recs:
        r["label"] = r["label"] if isinstance(r["label"], str) and r["label"] else None
        # a dataset with one split has a null fold: one fold when any replicate is defined
        r["n_folds"] = max(int(r["n_folds"]), 1) if r.pop("n") else 0
        for key in ("mean", "std", "ci_low", "ci_high", "delta_mean", "delta_std"):
            r[key] = _num(r[key])
    return pa.Table.from_pylist(recs, schema=SUMMARY_SCHEMA)
