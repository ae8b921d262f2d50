"""Classification metrics at a decision: accuracy, balanced accuracy, F1, precision and recall (micro, macro,
weighted).

Single-label predictions are ``y_score.argmax(1)`` (the first maximum on ties, like numpy). Conventions
follow scikit-learn with ``zero_division=0``: F1, precision and recall average over the classes that occur in
``y_true`` or in the predictions (a class predicted but never true has recall 0, one true but never predicted
precision 0); balanced accuracy averages the recall of the classes that occur in ``y_true``. The micro averages
of one label per track all equal accuracy (every track is one true and one predicted class). ``*_macro`` also
reports one value per class (a class with neither a test example nor a prediction has no value and no row),
``balanced_accuracy`` each class's recall (a class without a test example has none).

Multilabel predictions are the sigmoid outputs at or above a decision threshold: :data:`DEFAULT_THRESHOLD` (0.5,
as :func:`repeval.datasets.encoding.decode_labels` decodes them; OpenMIC-2018's official evaluation and
scikit-learn's ``predict`` threshold the same probabilities), or the one written after ``@`` in the metric's name
(``f1_macro@0.3``, ``precision_micro@0.25``: :func:`repeval.metrics.base.metric_spec`). Per label: precision
``tp / predicted``, recall ``tp / positives``, F1 ``2 tp / (positives + predicted)``, on the
tracks that annotate the label where a data set annotates some labels per track (NaN in
``y_true``). The same convention as single-label F1 holds: a label with neither a positive nor a
predicted positive has no precision, recall or F1 (no row, left out of the macro averages — a
probe is not scored on a tag it rightly never predicts); any other 0/0 is 0 (scikit-learn's
``zero_division=0``: a label never predicted has precision 0, one predicted without a positive
recall 0). ``*_macro`` averages the defined labels and reports each; ``*_micro`` pools every
(annotated) pair's counts; ``*_weighted`` weights the labels by their positives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from repeval.metrics.base import DEFAULT_THRESHOLD, nanmean_rows, ones_weights, register_metric, safe_divide
from repeval.metrics.validation import validate

CLASS_TASKS = frozenset({"multiclass_classification", "key_estimation"})

#: multilabel tagging, which the threshold metrics also apply to
ML = "multilabel_classification"


def _counts(
    y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[np.ndarray, ...]:
    """Weighted per-class counts ``(tp, true, pred)``, each ``(B, C)``: of a single-label task's argmax, or of a
    multilabel task's scores at or above ``threshold`` on the annotated pairs (``validate`` marks the others
    -1 in ``y_true``)."""
    if y_true.ndim == 2:
        true_1h = (y_true == 1).astype(np.float64)
        pred_1h = ((y_score >= threshold) & (y_true >= 0)).astype(np.float64)
        return weights @ (true_1h * pred_1h), weights @ true_1h, weights @ pred_1h
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


def _zero_division(num: np.ndarray, den: np.ndarray, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``num / den`` per label: 0 where ``den`` is 0 but the label has a positive or a prediction, ``nan`` (no
    value) where it has neither (the module docstring)."""
    return np.where(true + pred > 0, np.nan_to_num(safe_divide(num, den)), np.nan)


@dataclass(frozen=True)
class _DecisionKernel:
    """F1, precision or recall with one averaging mode (a class, so it pickles for Ray)."""

    of: str  # "f1" | "precision" | "recall"
    average: str  # "macro" | "micro" | "weighted"

    def __call__(
        self,
        y_true: np.ndarray,
        y_score: np.ndarray,
        labels: Sequence[str],
        weights: np.ndarray,
        threshold: float = DEFAULT_THRESHOLD,
    ):
        if self.of == "f1" and self.average == "micro" and y_true.ndim == 1:
            return _accuracy(y_true, y_score, labels, weights)  # every track is one true and one predicted class
        tp, true, pred = _counts(y_true, y_score, weights, threshold)
        num, den = {"f1": (2 * tp, true + pred), "precision": (tp, pred), "recall": (tp, true)}[self.of]
        if self.average == "micro":
            return safe_divide(num.sum(axis=1), den.sum(axis=1)), None
        values = _zero_division(num, den, true, pred)
        if self.average == "macro":
            return nanmean_rows(values), values
        return safe_divide((np.nan_to_num(values) * true).sum(axis=1), true.sum(axis=1)), None


_DESCRIPTIONS = {
    "f1_micro": "micro-averaged F1 (equals accuracy for one label per track; tags: pooled over the tag decisions)",
    "f1_macro": "unweighted mean of per-class F1",
    "f1_weighted": "per-class F1 averaged with test-support weights",
}
register_metric("accuracy", CLASS_TASKS, description="fraction of tracks whose top-scored class is right")(_accuracy)
register_metric(
    "balanced_accuracy",
    CLASS_TASKS,
    per_label=True,
    description="mean per-class recall over classes in the test set",
)(_balanced_accuracy)
for _of in ("f1", "precision", "recall"):
    for _avg in ("macro", "micro", "weighted"):
        register_metric(
            f"{_of}_{_avg}",
            CLASS_TASKS | {ML},
            per_label=_avg == "macro",
            description=_DESCRIPTIONS.get(
                f"{_of}_{_avg}",
                f"{_of} of the top-scored class (tags: of those predicted at score >= {DEFAULT_THRESHOLD:g}, or the "
                f"threshold after '@'), {_avg}-averaged over classes",
            ),
            thresholded=True,
        )(_DecisionKernel(_of, _avg))


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
    kernels = {
        "micro": _accuracy,
        "macro": _DecisionKernel("f1", "macro"),
        "weighted": _DecisionKernel("f1", "weighted"),
    }
    if average not in kernels:
        raise ValueError(f"average must be one of {', '.join(kernels)}, got '{average}'")
    return _point(kernels[average], y_true, y_score)
