"""``compute_metrics``: every requested metric of one probe on one test set, as rows."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from repeval.metrics.base import MetricRow, canonical_metric_name, check_metric_for_task, metric_spec, ones_weights
from repeval.metrics.bootstrap import bootstrap_distribution, interval_withheld, percentile_interval
from repeval.metrics.validation import validate
from repeval.warn import about_test_set

log = logging.getLogger(__name__)


def few_resamples_message(name: str, defined: int, total: int, alpha: float) -> str:
    """A macro average's interval rests on the resamples that drew every label it averages (see
    :mod:`repeval.metrics.bootstrap`): what to say when they are fewer than half."""
    return (
        f"{name}: its bootstrap interval rests on {defined} of {total} resamples (none is reported below "
        f"{math.ceil(2 / alpha)}) — the others drew no example (or, for a ranking metric, no positive) of a label it "
        "averages, which leaves its average undefined; labels with very few test examples make the interval "
        "unreliable: use a larger test set, or leave out the rarest labels"
    )


def _opt(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def compute_metrics(
    names: Sequence[str],
    task_type: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    *,
    ci: bool = False,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    split: str = "test",
) -> list[MetricRow]:
    """Aggregate rows (``label=None``) and per-label rows for each metric in ``names``.

    Per-label values that are undefined (a class without examples) get no row; an undefined
    aggregate is reported as ``nan``. With ``ci=True`` every row carries a bootstrap interval
    over test tracks (one shared set of ``n_resamples`` resamples drawn from ``seed``). ``split``: the
    split the examples are from, as the degenerate-input warnings name it (see :func:`validate`). That an interval
    rests on few resamples is said once per metric and process, not once per probe and scenario (in a probe trial,
    :class:`repeval.warn.TrialWarnings` notes it each time, for the driver to say how many probes had it). Scored
    inside a :meth:`repeval.warn.SaidByTestSets.test_set` scope, its warnings name that test set, said once for
    every test set that gave them (:func:`repeval.warn.about_test_set`)."""
    canon: list[str] = []
    for name in names:
        check_metric_for_task(name, task_type)
        c = canonical_metric_name(name)
        if c not in canon:
            canon.append(c)
    yt, ys, labs = validate(task_type, y_true, y_score, labels, split=split, metrics=canon)
    dist = bootstrap_distribution(canon, yt, ys, labs, n_resamples=n_resamples, seed=seed) if ci else {}
    rows: list[MetricRow] = []
    for name in canon:
        agg, per = metric_spec(name).kernel(yt, ys, labs, ones_weights(len(yt)))
        lo_agg = hi_agg = None
        lo_per = hi_per = None
        if ci:
            b_agg, b_per = dist[name]
            defined = int(np.count_nonzero(~np.isnan(b_agg)))
            withheld = interval_withheld(name, len(yt))
            if withheld:  # every resample left out: said why, not that few resamples are defined
                about_test_set(log, withheld, once=("interval withheld", name))
            elif not np.isnan(agg[0]) and defined < len(b_agg) / 2:
                message = few_resamples_message(name, defined, len(b_agg), alpha)
                about_test_set(log, message, once=("few resamples", name))
            if defined < min(len(b_agg), 2 / alpha):  # resamples left out, not one left in each tail: no interval
                b_agg = np.full_like(b_agg, np.nan)
            lo, hi = percentile_interval(b_agg, alpha)
            lo_agg, hi_agg = _opt(float(lo)), _opt(float(hi))
            if b_per is not None:
                lo_per, hi_per = percentile_interval(b_per, alpha)
        rows.append(MetricRow(name, float(agg[0]), None, lo_agg, hi_agg))
        if per is None:
            continue
        for j, lab in enumerate(labs):
            value = float(per[0, j])
            if np.isnan(value):
                continue
            if lo_per is not None and hi_per is not None:
                rows.append(MetricRow(name, value, lab, _opt(lo_per[j]), _opt(hi_per[j])))
            else:
                rows.append(MetricRow(name, value, lab))
    return rows
