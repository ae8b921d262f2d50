"""Bootstrap confidence intervals over test tracks.

A resample draws ``n`` tracks with replacement; its per-track counts are the weights handed
to the metric kernels, so all resamples of a chunk are evaluated in a few array operations.
Resamples are drawn from ``numpy.random.default_rng(seed)`` and shared by every metric of one
call, so intervals of different metrics come from the same resamples. The interval is the
percentile interval ``[alpha/2, 1 - alpha/2]`` of the resampled values; resamples on which a
metric is undefined (e.g. no positive of a tag drawn) are left out. An average over labels (the
``*_macro`` metrics, ``r2``) is undefined on a resample where one of the labels it averages on the
whole test set is: averaging the other labels instead would mix a different quantity into the
interval (a rare tag's low ROC-AUC missing from a third of the resamples pulls the upper bound
towards the other tags' mean). A metric with a minimum test-set size for its interval (``r2``: see
:func:`interval_withheld`) has none on a smaller test set: every resample is left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from repeval.metrics.base import canonical_metric_name, check_metric_for_task, metric_spec, ones_weights
from repeval.metrics.validation import validate
from repeval.words import counted

#: array elements (resamples x tracks x score columns) evaluated at once; bounds memory
CHUNK_ELEMENTS = 4_000_000


def resample_weights(n: int, n_resamples: int, seed: int, *, chunk: int) -> Iterator[np.ndarray]:
    """Yield ``(b, n)`` float matrices of bootstrap counts, ``n_resamples`` rows in all."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + (np.arange(b) * n)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)
        done += b


#: why a metric with ``min_interval_tracks`` (R²) has no interval on fewer test tracks (said in the run and the report)
WITHHELD_WHY = (
    "a resample of so few tracks repeats two or three of them, whose targets barely vary, and R² divides by that "
    "variance: its resampled values fall far below any real one"
)


def interval_withheld(name: str, n: int) -> str | None:
    """Why metric ``name`` has no bootstrap interval on a test set of ``n`` tracks, or ``None`` when it has one.

    R² divides by the spread of the targets of the tracks it is computed on. A resample of a few tracks draws two or
    three of them, often with close targets: its R² falls far below any value the probe could have (4 test tracks
    gave an interval of [-9700, 0.955] around 0.939; simulated at R² ≈ 0.94, the lower bound's median was -0.79 at 4
    tracks, 0.47 at 6, 0.67 at 8 and 0.71 at 10, its worst of 20 test sets -858, -3.6, -0.30 and 0.09): an interval is
    reported from ``min_interval_tracks`` (10) test tracks on."""
    least = metric_spec(name).min_interval_tracks
    if n >= least:
        return None
    return (
        f"{name}: no bootstrap interval on a test set of {counted(n, 'track')} (it takes at least {least}) — "
        f"{WITHHELD_WHY}, and the interval would say nothing; use a larger test set"
    )


def bootstrap_distribution(
    names: Sequence[str],
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Resampled values of already validated inputs: ``{metric: (aggregate (R,), per_label (R, C) | None)}`` (all
    ``nan`` for a metric whose interval is withheld on ``len(y_true)`` tracks: :func:`interval_withheld`)."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    n = len(y_true)
    width = max(1, y_score.shape[1])
    chunk = max(1, CHUNK_ELEMENTS // (n * width))
    parts: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {name: [] for name in names}
    kernels = {name: metric_spec(name).kernel for name in names}
    for weights in resample_weights(n, n_resamples, seed, chunk=chunk):
        for name in names:
            parts[name].append(kernels[name](y_true, y_score, labels, weights))
    out: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for name, chunks in parts.items():
        agg = np.concatenate([c[0] for c in chunks])
        per = None if chunks[0][1] is None else np.concatenate([c[1] for c in chunks])  # type: ignore[misc]
        if per is not None:  # the labels the reported average is over must all be defined on a resample
            point = kernels[name](y_true, y_score, labels, ones_weights(n))[1]
            averaged = ~np.isnan(point[0])  # type: ignore[index]
            agg = np.where(np.isnan(per[:, averaged]).any(axis=1), np.nan, agg)
        if interval_withheld(name, n):
            agg = np.full_like(agg, np.nan)
            per = None if per is None else np.full_like(per, np.nan)
        out[name] = (agg, per)
    return out


def percentile_interval(values: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0 ignoring ``nan`` (``nan`` where nothing is defined)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    low = np.full(flat.shape[1], np.nan)
    high = np.full(flat.shape[1], np.nan)
    for j in range(flat.shape[1]):
        col = flat[:, j]
        col = col[~np.isnan(col)]
        if len(col):
            low[j], high[j] = np.quantile(col, [alpha / 2, 1 - alpha / 2])
    return low.reshape(values.shape[1:]), high.reshape(values.shape[1:])


def bootstrap_ci(
    name: str,
    task_type: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """``(low, high)`` percentile bootstrap interval of metric ``name``'s aggregate value."""
    check_metric_for_task(name, task_type)
    canon = canonical_metric_name(name)
    yt, ys, labs = validate(task_type, y_true, y_score, labels, warn=False)
    agg, _ = bootstrap_distribution([canon], yt, ys, labs, n_resamples=n_resamples, seed=seed)[canon]
    low, high = percentile_interval(agg, alpha)
    return float(low), float(high)
