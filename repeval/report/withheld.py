"""The metrics whose bootstrap interval a run withheld on a test set too small for one (``r2`` below ten tracks:
:func:`repeval.metrics.bootstrap.interval_withheld`), read from its results: said above the report's tables, in a
table's caption and in its cells' tooltips, which would otherwise give no interval for them without a word."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from repeval.metrics.base import metric_spec
from repeval.words import counted

if TYPE_CHECKING:
    from repeval.report.results import Run


def intervals_off(runs: Sequence[Run]) -> frozenset[str]:
    """The ``run_id`` of the results of runs configured with no intervals at all (``run.bootstrap_resamples: 0``):
    their R² has none on any test set, which a too small one does not explain."""
    off: set[str] = set()
    for run in runs:
        section = run.config.get("run")
        if isinstance(section, dict) and section.get("bootstrap_resamples") == 0 and "run_id" in run.results:
            off.update(map(str, run.results["run_id"].dropna().unique()))
    return frozenset(off)


def withheld_intervals(df: pd.DataFrame, off: Collection[str] = ()) -> dict[str, dict[tuple[str, str], int]]:
    """``{metric: {(task, dataset): fewest test tracks}}`` of the aggregate result rows of ``df`` that have no
    interval on a test set smaller than their metric's ``min_interval_tracks`` (a metric this version does not know is
    left out, and so are the rows of the runs ``off``: :func:`intervals_off`)."""
    out: dict[str, dict[tuple[str, str], int]] = {}
    if df.empty or not {"n_test", "ci_low", "label", "metric", "task", "dataset"} <= set(df.columns):
        return out
    rows = df[df["label"].isna() & df["ci_low"].isna() & df["n_test"].notna()]
    if off and "run_id" in rows.columns:
        rows = rows[~rows["run_id"].astype(str).isin(set(off))]
    for (metric, task, dataset), n in rows.groupby(["metric", "task", "dataset"])["n_test"].min().items():
        try:
            least = metric_spec(str(metric)).min_interval_tracks
        except ValueError:
            continue
        if n < least:
            out.setdefault(str(metric), {})[(str(task), str(dataset))] = int(n)
    return out


def no_interval_why(metric: str, n: int) -> str:
    """Why ``metric``'s cells have no interval, their fewest test tracks ``n``, for a table (caption, tooltips)."""
    least = metric_spec(metric).min_interval_tracks
    return f"{metric} has no bootstrap interval on a test set of fewer than {least} tracks ({counted(n, 'track')} here)"
