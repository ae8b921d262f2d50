"""Key estimation: mir_eval's weighted score, micro and macro averaged.

Scoring (thesis Table 3, ``mir_eval.key.weighted_score``): same key and mode 1.0; estimate a
perfect fifth above the reference 0.5; relative major/minor 0.3; parallel major/minor 0.2;
anything else 0. The micro average is the mean over test tracks; the macro average is the
mean over reference keys of each key's mean score (mir_ref's definition), and it reports one
value per reference key present in the test set.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from repeval.metrics.base import nanmean_rows, ones_weights, register_metric, safe_divide
from repeval.metrics.validation import validate

KEY_TASKS = frozenset({"key_estimation"})


@lru_cache(maxsize=64)
def key_score_matrix(labels: tuple[str, ...]) -> np.ndarray:
    """``S[t, p] = mir_eval.key.weighted_score(labels[t], labels[p])`` for every label pair."""
    import mir_eval

    return np.array([[mir_eval.key.weighted_score(t, p) for p in labels] for t in labels], dtype=np.float64)


def _track_scores(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    return key_score_matrix(tuple(labels))[y_true, y_score.argmax(axis=1)]


def _micro(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    return safe_divide(weights @ _track_scores(y_true, y_score, labels), weights.sum(axis=1)), None


def _macro(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    scores = _track_scores(y_true, y_score, labels)
    true_1h = np.eye(len(labels))[y_true]
    per_key = safe_divide(weights @ (true_1h * scores[:, None]), weights @ true_1h)
    return nanmean_rows(per_key), per_key


register_metric("key_weighted_score_micro", KEY_TASKS, description="mir_eval key weighted score, mean over tracks")(
    _micro
)
register_metric(
    "key_weighted_score_macro",
    KEY_TASKS,
    per_label=True,
    description="mir_eval key weighted score, mean over reference keys of the per-key mean",
)(_macro)


def weighted_score(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], *, average: str = "micro") -> float:
    """Key weighted score of ``argmax(y_score)``; ``labels`` are mir_eval key strings."""
    kernels = {"micro": _micro, "macro": _macro}
    if average not in kernels:
        raise ValueError(f"average must be micro or macro, got '{average}'")
    yt, ys, labs = validate("key_estimation", y_true, y_score, labels)
    return float(kernels[average](yt, ys, labs, ones_weights(len(yt)))[0][0])
