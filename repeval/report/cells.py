"""The format-agnostic :class:`Table` the presets of :mod:`repeval.report.tables` fill, and its cell statistics.

A cell is the mean over replicates (seeds × folds) with their sample standard deviation, how many replicates, seeds and
folds entered it, and the interval of the mean (:func:`cell_stats`); the best value of each column is flagged
(:func:`best_mask`, direction from ``higher_is_better``). :mod:`repeval.report.render` turns a :class:`Table` into
text, Markdown, CSV, LaTeX or HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from repeval.metrics import higher_is_better, metric_spec
from repeval.metrics.base import DEFAULT_THRESHOLD, THRESHOLD_TASK
from repeval.pipeline.summary import figure
from repeval.registry import unknown_name_message
from repeval.tuning.results import mean_intervals
from repeval.words import counted

FORMATS = ("terminal", "plain", "markdown", "csv", "latex", "html")
_FORMAT_ALIASES = {"md": "markdown", "tex": "latex", "text": "plain", "txt": "plain", "rich": "terminal"}


@dataclass
class Table:
    """A rendered-format-agnostic table: row keys, (metric, sub-header) columns and cell statistics."""

    title: str
    row_names: list[str]
    rows: list[tuple[str, ...]]
    #: ``(metric, sub-header)``; the sub-header is a scenario, ``Δ <scenario>`` or ``""``
    columns: list[tuple[str, str]]
    mean: np.ndarray
    std: np.ndarray
    #: the replicates (seeds × folds) whose value entered a cell's mean and std — the ``(n=…)`` of a cell
    n: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    #: of the ``n`` replicates: how many seeds and how many folds (1 for a dataset with one split; 0 without a value)
    n_seeds: np.ndarray
    n_folds: np.ndarray
    best: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))
    #: columns whose values are differences (rendered with a sign)
    delta: list[bool] = field(default_factory=list)
    caption: str = ""
    task: str = ""
    dataset: str = ""
    #: what a cell's mean ± std is over, e.g. ``2 seeds × 4 folds`` (:func:`replicates_text`)
    replicates: str = ""
    #: what the flagged cells are, for the legend under the table (``*`` or bold: …)
    best_legend: str = "best in column"
    #: the largest overlap of the folds' test sets among the table's rows (``fold_overlap``; 0: disjoint folds, or
    #: none): a cell's interval then allows for the folds sharing test tracks (:func:`overlap_note`)
    fold_overlap: float = 0.0
    #: why a metric's cells have no bootstrap interval (a test set too small for one:
    #: :func:`repeval.report.withheld.no_interval_why`), said in the caption and the cells' tooltips
    no_interval: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.delta:
            self.delta = [False] * len(self.columns)
        if self.best.shape != self.mean.shape:
            self.best = best_mask(self.mean, [_higher(m) for m, _ in self.columns])

    @property
    def full_caption(self) -> str:
        """The caption as rendered: what ± is over (with several replicates), that a cell marked ``(n=…)`` has fewer
        replicates than the table's others (a failed training: its mean is over other test tracks), the preset's."""
        parts = []
        if self.replicates and (self.n > 1).any():
            parts.append(f"mean ± sample std over {self.replicates}")
        if fewer_replicates(self).any():
            parts.append(
                "(n=…): a cell over fewer replicates than its run's others (a failed training or test, or an undefined value)"
            )
        return "; ".join([*parts, self.caption] if self.caption else parts)

    def to_frame(self) -> pd.DataFrame:
        """Long frame: row keys, metric, column, mean, std, n (replicates: seeds × folds), n_seeds, n_folds, ci_low,
        ci_high, best."""
        recs = []
        for i, row in enumerate(self.rows):
            for j, (metric, sub) in enumerate(self.columns):
                recs.append(
                    dict(zip(self.row_names, row, strict=True))
                    | {
                        "metric": metric,
                        "column": sub,
                        "mean": self.mean[i, j],
                        "std": self.std[i, j],
                        "n": int(self.n[i, j]),
                        "n_seeds": int(self.n_seeds[i, j]),
                        "n_folds": int(self.n_folds[i, j]),
                        "ci_low": self.ci_low[i, j],
                        "ci_high": self.ci_high[i, j],
                        "best": bool(self.best[i, j]),
                    }
                )
        return pd.DataFrame(recs)


def _higher(metric: str) -> bool:
    try:
        return higher_is_better(metric)
    except ValueError:
        return True


def _thresholded(metric: str) -> bool:
    try:
        return metric_spec(metric).thresholded
    except ValueError:  # a metric this version does not know
        return False


def metric_notes(df: pd.DataFrame, metrics: Sequence[str], masked: bool) -> list[str]:
    """How the multilabel metrics of a table over ``df`` were computed, for its caption: at which decision threshold
    F1, precision and recall predict a tag (a metric named ``…@t``: at ``t``), and — ``masked``: the data set annotates
    some tags per track, ``unannotated: mask`` — that every metric is over the annotated (track, tag) pairs only."""
    if THRESHOLD_TASK not in set(df["task_type"]):
        return []
    notes = []
    if masked:
        notes.append(
            "metrics over the annotated (track, tag) pairs only (unannotated: mask): each tag scored on the tracks that "
            "annotate it, micro averages pooling the annotated pairs"
        )
    # only the tagging rows' metrics: a tasks table beside a multiclass task's f1_macro (its top-scored class, no
    # threshold) said "f1_macro: a tag predicted at score ≥ 0.5" of it
    tagged = set(df.loc[df["task_type"] == THRESHOLD_TASK, "metric"])
    metrics = [m for m in metrics if m in tagged]
    at_default = [m for m in metrics if "@" not in m and _thresholded(m)]
    if at_default:
        named = any("@" in m for m in metrics)
        notes.append(
            f"{', '.join(at_default)}: a tag predicted at score ≥ {DEFAULT_THRESHOLD:g}"
            + ("; …@t: at ≥ t" if named else "")
        )
    elif any("@" in m for m in metrics):
        notes.append("…@t: a tag predicted at score ≥ t")
    return notes


#: what a per-label value of a metric family is (results store it under the name of the average it enters)
_PER_LABEL = {
    "f1": "F1",
    "precision": "precision",
    "recall": "recall",
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "key_weighted_score": "key weighted score",
    "balanced_accuracy": "recall",  # balanced accuracy: the mean of each class's recall
    "r2": "R²",
}


def per_label_value(metric: str) -> str:
    """What ``metric``'s per-label rows hold, named for people: the results store a label's value under the name of
    the average over labels it enters (a class's F1 under ``f1_macro``, its recall under ``balanced_accuracy``) —
    ``F1``, ``recall``, ``F1 at ≥ 0.3`` (``f1_macro@0.3``)."""
    name, _, at = metric.partition("@")
    base = name.removesuffix("_macro")
    return _PER_LABEL.get(base, base) + (f" at ≥ {at}" if at else "")


def per_label_title(metric: str) -> str:
    """A per-label chart's or column's account of its values: ``F1 per label (averaged over labels: f1_macro)``."""
    return f"{per_label_value(metric)} per label (averaged over labels: {metric})"


def fewer_replicates(t: Table) -> np.ndarray:
    """Cells with a value over fewer replicates (seeds × folds) than the most of their run's cells (several runs: rows
    lead with the run id) — a failed training, whose cell's mean is over other test tracks than the others'."""
    n = np.asarray(t.n)
    out = np.zeros(n.shape, dtype=bool)
    runs = [r[0] for r in t.rows] if t.row_names[:1] == ["run_id"] else [""] * len(t.rows)
    for run in set(runs):
        rows = np.array([r == run for r in runs], dtype=bool)
        if n[rows].size:
            out[rows] = (n[rows] > 0) & (n[rows] < n[rows].max())
    return out


def replicates_text(df: pd.DataFrame) -> str:
    """What a table's mean ± std is over: ``3 seeds``, ``2 seeds × 4 folds`` (per run when runs differ)."""

    def text(d: pd.DataFrame) -> str:
        seeds = int(d["seed"].nunique())
        out = counted(seeds, "seed")
        folds = int(d["fold"].dropna().nunique()) if "fold" in d.columns else 0
        return out + (f" × {counted(folds, 'fold')}" if folds else "")

    per_run = {str(r): text(d) for r, d in df.groupby("run_id", sort=False)} if "run_id" in df.columns else {}
    if len(set(per_run.values())) > 1:
        return ", ".join(f"{v} ({r})" for r, v in per_run.items())
    return next(iter(per_run.values()), text(df) if len(df) else "")


def has_folds(df: pd.DataFrame) -> bool:
    """Whether ``df`` has k-fold rows (a ``fold`` not null): their intervals combine the folds'."""
    return "fold" in df.columns and bool(df["fold"].notna().any())


def max_fold_overlap(df: pd.DataFrame) -> float:
    """The largest ``fold_overlap`` of ``df``'s k-fold rows (0 without one: disjoint folds, one split, older
    results)."""
    if "fold_overlap" not in df.columns or "fold" not in df.columns:
        return 0.0
    rho = pd.to_numeric(df.loc[df["fold"].notna(), "fold_overlap"], errors="coerce").dropna()
    return float(rho.max()) if len(rho) else 0.0


def fold_tracks(df: pd.DataFrame) -> str:
    """How often a track is counted over a k-fold dataset's folds (``df``: its rows): once (a k-fold split), or in
    each fold that tests it when the folds share test tracks (``fold_overlap`` above 0: a split column fixing some
    tracks, official splits drawn apart)."""
    if max_fold_overlap(df) > 0:
        return "the folds share test tracks: one tested in several is counted in each"
    return "each track tested in one"


def overlap_note(df: pd.DataFrame) -> str:
    """The caption's account of intervals over folds whose test sets overlap (:func:`repeval.tuning.results.
    mean_intervals`): which tasks' folds share test tracks, by how much (ρ), and that their bounds were combined as
    correlated estimates — wider than disjoint folds' (ρ = 1: one fold's bounds, averaged). Empty when none do."""
    if max_fold_overlap(df) <= 0:
        return ""
    k = df[df["fold"].notna() & (pd.to_numeric(df["fold_overlap"], errors="coerce") > 0)]
    rho = k.groupby("task", sort=False)["fold_overlap"].max()
    # a small overlap is no "ρ = 0.00" beside "the folds share test tracks", nor "9e-05": its two first digits
    said = [f"{r:.2f}" if r >= 0.005 else figure(r, 2) for r in rho]
    which = (
        f"ρ = {said[0]}" if len(rho) == 1 else ", ".join(f"{t} ρ = {r}" for t, r in zip(rho.index, said, strict=True))
    )
    return (
        f"CI: the folds share test tracks ({which}), so their bounds are combined as correlated estimates — wider "
        "than for disjoint folds (ρ = 1: the folds' bounds averaged)"
    )


def best_mask(mean: np.ndarray, higher: Sequence[bool]) -> np.ndarray:
    """Flag the best finite value of each column (every tied value); none where every finite value ties — each model
    at 1.0, or one value alone: no row is the best (as the per-label tables, :func:`repeval.report.labels._matrix`)."""
    out = np.zeros(mean.shape, dtype=bool)
    for j, hi in enumerate(higher):
        col = mean[:, j]
        ok = np.isfinite(col)
        if ok.any():
            target = col[ok].max() if hi else col[ok].min()
            best = ok & np.isclose(col, target, rtol=0, atol=1e-12)
            out[:, j] = best if not best[ok].all() else False
    return out


def cell_stats(per_seed: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per ``keys`` group of result rows: ``mean``, ``std``, ``n`` (the replicates with a value), ``n_seeds`` and
    ``n_folds`` (of those; a fold column absent or null counts as one fold) and the interval of the mean."""
    stats = per_seed.groupby(keys, sort=False).agg(mean=("value", "mean"), std=("value", "std"), n=("value", "count"))
    defined = per_seed[per_seed["value"].notna()]
    fold = defined["fold"] if "fold" in defined.columns else pd.Series(np.nan, index=defined.index)
    counts = (
        defined.assign(_n_fold=fold)
        .groupby(keys, sort=False)
        .agg(n_seeds=("seed", "nunique"), n_folds=("_n_fold", "nunique"))
    )
    stats = stats.join(counts)
    stats[["n_seeds", "n_folds"]] = stats[["n_seeds", "n_folds"]].fillna(0)
    stats["n_folds"] = stats["n_folds"].where(stats["n"] == 0, stats["n_folds"].clip(lower=1))
    return stats.join(mean_intervals(per_seed, keys))


def canonical_format(fmt: str) -> str:
    fmt = _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if fmt not in FORMATS:
        raise ValueError(unknown_name_message("table format", fmt, set(FORMATS)))
    return fmt
