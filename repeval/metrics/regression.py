"""Regression metrics: R² (uniform average and per dimension), mean squared and mean absolute error.

R² of a dimension whose target is constant on the test set is undefined (``nan``, and
``validate`` warns) rather than scikit-learn's forced 0 or 1; ``r2`` averages the defined
dimensions and reports one value per dimension. Its bootstrap interval needs at least
:data:`MIN_R2_INTERVAL_TRACKS` test tracks (:func:`repeval.metrics.bootstrap.interval_withheld`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repeval.metrics.base import nanmean_rows, ones_weights, register_metric, safe_divide
from repeval.metrics.validation import validate

REGRESSION_TASKS = frozenset({"regression"})


def _r2(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    total = weights.sum(axis=1, keepdims=True)
    centred = y_true - y_true.mean(axis=0)  # shifts cancel in the sums of squares; helps precision
    sq = weights @ centred**2
    ss_tot = sq - (weights @ centred) ** 2 / total
    ss_res = weights @ (y_true - y_pred) ** 2
    ss_tot = np.where(ss_tot > 1e-12 * np.maximum(sq, 1e-300), ss_tot, 0.0)
    per_dim = 1.0 - safe_divide(ss_res, ss_tot)
    return nanmean_rows(per_dim), per_dim


def _mean_error(errors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted mean of per-track ``errors`` ``(n, D)`` per dimension, then the mean over dimensions (scikit-learn's
    ``multioutput='uniform_average'``)."""
    return safe_divide(weights @ errors, weights.sum(axis=1, keepdims=True)).mean(axis=1)


def _mse(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    return _mean_error((y_true - y_pred) ** 2, weights), None


def _mae(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    return _mean_error(np.abs(y_true - y_pred), weights), None


#: the fewest test tracks an R² bootstrap interval is reported on (:func:`repeval.metrics.bootstrap.interval_withheld`)
MIN_R2_INTERVAL_TRACKS = 10

register_metric(
    "r2",
    REGRESSION_TASKS,
    per_label=True,
    description="coefficient of determination",
    min_interval_tracks=MIN_R2_INTERVAL_TRACKS,
)(_r2)
register_metric(
    "mean_squared_error", REGRESSION_TASKS, higher_is_better=False, description="mean squared error over dimensions"
)(_mse)
register_metric(
    "mean_absolute_error", REGRESSION_TASKS, higher_is_better=False, description="mean absolute error over dimensions"
)(_mae)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray, *, multioutput: str = "uniform_average") -> float | np.ndarray:
    """R²; ``multioutput='raw_values'`` returns one value per dimension."""
    y_pred = np.asarray(y_pred, dtype=np.float64)
    dims = 1 if y_pred.ndim == 1 else y_pred.shape[1]
    yt, yp, labels = validate("regression", y_true, y_pred, [str(i) for i in range(dims)])
    agg, per = _r2(yt, yp, labels, ones_weights(len(yt)))
    if multioutput == "raw_values":
        return per[0]
    if multioutput != "uniform_average":
        raise ValueError(f"multioutput must be 'uniform_average' or 'raw_values', got '{multioutput}'")
    return float(agg[0])
