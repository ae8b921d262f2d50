"""Single-label classification metrics: accuracy, balanced accuracy, F1 (micro, macro, weighted).

Predictions are ``y_score.argmax(1)`` (the first maximum on ties, like numpy). Conventions
follow scikit-learn with ``zero_division=0``: F1 averages run over the classes that occur in
``y_true`` or in the predictions; balanced accuracy averages the recall of the classes that
occur in ``y_true``. ``f1_macro`` also reports one value per class (a class with neither a
test example nor a prediction has no F1 and no row), ``balanced_accuracy`` each class's recall
(a class without a test example has none).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repeval.metrics.base import nanmean_rows, ones_weights, register_metric, safe_divide
from repeval.metrics.validation import validate

CLASS_TASKS = frozenset({"multiclass_classification", "key_estimation"})


def _counts(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted per-class counts ``(tp, true, pred)``, each ``(B, C)``."""
    n_classes = y_score.shape[1]
    pred = y_score.argmax(axis=1)
    eye = np.eye(n_classes)
    true_1h = eye[y_true]
    pred_1h = eye[pred]
    tp = weights @ (true_1h * pred_1h)
    return tp, weights @ true_1h, weights @ pred_1h


def _accuracy(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    correct = (y_score.argmax(axis=1) == y_true).astype(np.float64)
    return safe_divide(weights @ correct, weights.sum(axis=1)), None


def _balanced_accuracy(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    tp, true, _ = _counts(y_true, y_score, weights)
    recall = safe_divide(tp, true)
    return nanmean_rows(recall), recall


def _per_class_f1(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray):
    tp, true, pred = _counts(y_true, y_score, weights)
    return safe_divide(2 * tp, true + pred), true


def _f1_macro(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    f1, _ = _per_class_f1(y_true, y_score, weights)
    return nanmean_rows(f1), f1


def _f1_weighted(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str], weights: np.ndarray):
    f1, support = _per_class_f1(y_true, y_score, weights)
    return safe_divide((np.nan_to_num(f1) * support).sum(axis=1), support.sum(axis=1)), None


register_metric("accuracy", CLASS_TASKS, description="fraction of tracks whose top-scored class is right")(_accuracy)
register_metric("f1_micro", CLASS_TASKS, description="micro-averaged F1 (equals accuracy for one label per track)")(
    _accuracy
)
register_metric(
    "balanced_accuracy",
    CLASS_TASKS,
    per_label=True,
    description="mean per-class recall over classes in the test set",
)(_balanced_accuracy)
register_metric("f1_macro", CLASS_TASKS, per_label=True, description="unweighted mean of per-class F1")(_f1_macro)
register_metric("f1_weighted", CLASS_TASKS, description="per-class F1 averaged with test-support weights")(_f1_weighted)


def _point(kernel, y_true: np.ndarray, y_score: np.ndarray) -> float:
    yt, ys, labels = validate(
        "multiclass_classification", y_true, y_score, [str(i) for i in range(np.shape(y_score)[1])]
    )
    return float(kernel(yt, ys, labels, ones_weights(len(yt)))[0][0])


def accuracy_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Accuracy of ``argmax(y_score)`` against class indices ``y_true``."""
    return _point(_accuracy, y_true, y_score)


def balanced_accuracy_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    return _point(_balanced_accuracy, y_true, y_score)


def f1_score(y_true: np.ndarray, y_score: np.ndarray, *, average: str = "macro") -> float:
    """F1 of ``argmax(y_score)``; ``average`` is ``micro``, ``macro`` or ``weighted``."""
    kernels = {"micro": _accuracy, "macro": _f1_macro, "weighted": _f1_weighted}
    if average not in kernels:
        raise ValueError(f"average must be one of {', '.join(kernels)}, got '{average}'")
    return _point(kernels[average], y_true, y_score)
