"""Threshold-free ranking metrics: ROC-AUC and PR-AUC (average precision).

Apply to multilabel tagging and, one-vs-rest, to multiclass tasks. Ties in the scores count
half (ROC) and are one threshold (PR), as in scikit-learn. A label whose test set holds a
single class has no ROC-AUC; a label without positives has no PR-AUC; both are left out of
the macro and weighted averages (``validate`` warns); the micro averages pool every label's
scores. ``*_macro`` also reports one value per label. Where a data set annotates only some labels
per track (NaN in ``y_true``), each label is scored on the tracks that annotate it and the micro
averages pool the annotated pairs only (OpenMIC-2018's protocol).

Each curve is computed from score-sorted tie groups with per-track weights, so one sort per
label serves the point estimate and every bootstrap resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from repeval.metrics.base import nanmean_rows, ones_weights, register_metric, safe_divide
from repeval.metrics.validation import validate

RANKING_TASKS = frozenset({"multilabel_classification", "multiclass_classification", "key_estimation"})


def _indicator(y_true: np.ndarray, n_labels: int) -> np.ndarray:
    if y_true.ndim == 2:
        return y_true == 1  # 0/1, or -1 where unannotated (see _annotated)
    return np.eye(n_labels, dtype=bool)[y_true]


def _annotated(y_true: np.ndarray) -> np.ndarray | None:
    """Where a multilabel ``y_true`` annotates a (track, label) pair (``validate`` marks the others -1): an
    unannotated pair gets weight 0, so each label is scored on the tracks that annotate it and the micro averages
    pool the annotated pairs only. ``None`` when every pair is annotated."""
    if y_true.ndim != 2 or y_true.min(initial=0) >= 0:
        return None
    return y_true >= 0


def _tie_groups(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted positive and negative mass per distinct score, ascending: two ``(B, G)`` arrays."""
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
    w = weights[:, order]
    pos = y[order]
    return np.add.reduceat(w * pos, starts, axis=1), np.add.reduceat(w * ~pos, starts, axis=1)


def binary_roc_auc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted ROC-AUC of one label for each weight row; ``nan`` where a class is missing."""
    pos, neg = _tie_groups(y, s, weights)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return safe_divide(num, pos.sum(axis=1) * neg.sum(axis=1))


def binary_average_precision(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted average precision (scikit-learn's step-wise PR-AUC); ``nan`` without positives."""
    pos, neg = _tie_groups(y, s, weights)
    pos, neg = pos[:, ::-1], neg[:, ::-1]  # descending thresholds
    tp = np.cumsum(pos, axis=1)
    precision = np.nan_to_num(safe_divide(tp, tp + np.cumsum(neg, axis=1)))
    return safe_divide((pos * precision).sum(axis=1), pos.sum(axis=1))


def _per_label(fn, y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ind = _indicator(y_true, y_score.shape[1])
    obs = _annotated(y_true)

    def w(c: int) -> np.ndarray:
        return weights if obs is None else weights * obs[:, c]

    values = np.stack([fn(ind[:, c], y_score[:, c], w(c)) for c in range(y_score.shape[1])], axis=1)
    support = weights @ ind.astype(np.float64)
    return values, support


def _micro(fn, y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    n, n_labels = y_score.shape
    ind = _indicator(y_true, n_labels)
    flat_weights = weights[:, np.repeat(np.arange(n), n_labels)]
    obs = _annotated(y_true)
    if obs is not None:
        flat_weights = flat_weights * obs.ravel()
    return fn(ind.ravel(), y_score.ravel(), flat_weights)


@dataclass(frozen=True)
class _RankingKernel:
    """A ranking metric with one averaging mode (a class, not a closure, so it pickles for Ray)."""

    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    average: str

    def __call__(self, y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
        if self.average == "micro":
            return _micro(self.fn, y_true, y_score, weights), None
        values, support = _per_label(self.fn, y_true, y_score, weights)
        if self.average == "macro":
            return nanmean_rows(values), values
        defined = ~np.isnan(values)
        return safe_divide((np.where(defined, values, 0.0) * support).sum(1), (support * defined).sum(1)), None


def _make(fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray], average: str) -> _RankingKernel:
    return _RankingKernel(fn, average)


for _avg in ("macro", "micro", "weighted"):
    register_metric(
        f"roc_auc_{_avg}",
        RANKING_TASKS,
        per_label=_avg == "macro",
        description=f"area under the ROC curve, {_avg}-averaged over labels",
    )(_make(binary_roc_auc, _avg))
    register_metric(
        f"pr_auc_{_avg}",
        RANKING_TASKS,
        per_label=_avg == "macro",
        description=f"area under the precision-recall curve (average precision), {_avg}-averaged over labels",
    )(_make(binary_average_precision, _avg))


def _point(fn, y_true: np.ndarray, y_score: np.ndarray, average: str) -> float:
    if average not in ("macro", "micro", "weighted"):
        raise ValueError(f"average must be macro, micro or weighted, got '{average}'")
    y_true = np.asarray(y_true)
    task = "multilabel_classification" if y_true.ndim == 2 else "multiclass_classification"
    yt, ys, labels = validate(task, y_true, y_score, [str(i) for i in range(np.shape(y_score)[1])])
    return float(_make(fn, average)(yt, ys, labels, ones_weights(len(yt)))[0][0])


def roc_auc_score(y_true: np.ndarray, y_score: np.ndarray, *, average: str = "macro") -> float:
    """ROC-AUC of a 0/1 matrix (or class indices, one-vs-rest) against scores."""
    return _point(binary_roc_auc, y_true, y_score, average)


def average_precision_score(y_true: np.ndarray, y_score: np.ndarray, *, average: str = "macro") -> float:
    """PR-AUC (average precision) of a 0/1 matrix (or class indices, one-vs-rest) against scores."""
    return _point(binary_average_precision, y_true, y_score, average)
