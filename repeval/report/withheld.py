"""The metrics whose bootstrap interval a run withheld on a test set too small for one (``r2`` below ten tracks:
:func:`repeval.metrics.bootstrap.interval_withheld`), read from its results: said above the report's tables, in a
table's caption and in its cells' tooltips, which would otherwise give no interval for them without a word."""

from __future__ import annotations

import pandas as pd

from repeval.metrics.base import metric_spec
from repeval.words import counted


def withheld_intervals(df: pd.DataFrame) -> dict[str, dict[tuple[str, str], int]]:
    """``{metric: {(task, dataset): fewest test tracks}}`` of the aggregate result rows of ``df`` that have no
    interval on a test set smaller than their metric's ``min_interval_tracks`` (a metric this version does not know is
    left out)."""
    out: dict[str, dict[tuple[str, str], int]] = {}
    if df.empty or not {"n_test", "ci_low", "label", "metric", "task", "dataset"} <= set(df.columns):
        return out
    rows = df[df["label"].isna() & df["ci_low"].isna() & df["n_test"].notna()]
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
