"""Input validation shared by every metric family.

``validate`` raises ``ValueError`` on malformed input (wrong shapes, out-of-range classes,
non-finite scores, unknown key labels) and warns with :class:`MetricWarning` on degenerate
input (a single class present, labels without examples, constant regression targets), in
the manner of ``mir_eval.key.validate``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from repeval.metrics.base import TASK_TYPE_NAMES, MetricWarning
from repeval.registry import unknown_name_message
from repeval.warn import about_test_set
from repeval.words import counted

_CLASS_TASKS = ("multiclass_classification", "key_estimation")


def _names(labels: Sequence[str], idx: np.ndarray, limit: int = 5) -> str:
    shown = [str(labels[i]) for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(shown) + more


def validate(
    task_type: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    *,
    warn: bool = True,
    split: str = "test",
    metrics: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check metric inputs and return them as arrays of canonical shape and dtype.

    Returns ``(y_true, y_score, labels)``: ``y_true`` int ``(n,)`` for multiclass/key,
    int ``(n, C)`` for multilabel, float ``(n, D)`` for regression; ``y_score`` float ``(n, C|D)``. A multilabel
    ``y_true`` may hold NaN where a track leaves a label unannotated (OpenMIC-2018): returned as -1, which the
    kernels leave out of that label's values and of the micro averages.
    ``split`` names the examples' split in the warnings. A ``validation`` split is scored again at every
    validation while probes train, and warned about once for all of them: its warnings describe the labels alone,
    not one validation's predictions (which classes some track is predicted as). ``metrics``: the metrics about to be
    computed (canonical ids), which a warning about classes without a test example names alone — and gives none of
    when it touches none of them (``None``: every average it changes is named).
    """
    if task_type not in TASK_TYPE_NAMES:
        raise ValueError(unknown_name_message("task type", task_type, set(TASK_TYPE_NAMES)))
    labels = [str(lab) for lab in labels]
    if not labels:
        raise ValueError("labels is empty: pass the class names (or regression dimension names) in score-column order")
    if len(set(labels)) != len(labels):
        dup = sorted({lab for lab in labels if labels.count(lab) > 1})
        raise ValueError(f"labels contain duplicates ({', '.join(dup)}): each score column needs a distinct name")
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if task_type == "regression":
        if y_true.ndim == 1:
            y_true = y_true[:, None]
        if y_score.ndim == 1:
            y_score = y_score[:, None]
    n = y_true.shape[0] if y_true.ndim else 0
    if n == 0:
        raise ValueError(f"y_true is empty: a metric needs at least one {split} example — is the {split} split empty?")
    if y_score.ndim != 2 or y_score.shape[0] != n:
        raise ValueError(
            f"y_score has shape {y_score.shape}, expected ({n}, {len(labels)}): one row per test example, "
            "one column per label"
        )
    if y_score.shape[1] != len(labels):
        raise ValueError(
            f"y_score has {y_score.shape[1]} columns but {len(labels)} labels were given: "
            "pass one label name per score column"
        )
    if not np.isfinite(y_score).all():
        raise ValueError(
            "y_score contains NaN or infinite values: the probe diverged — lower the learning rate or "
            "standardise the embeddings"
        )
    if task_type in _CLASS_TASKS:
        return _validate_classes(task_type, y_true, y_score, labels, warn, split, metrics)
    if task_type == "multilabel_classification":
        return _validate_multilabel(y_true, y_score, labels, warn, split)
    return _validate_regression(y_true, y_score, labels, warn, split)


def _validate_classes(
    task_type: str,
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: list[str],
    warn: bool,
    split: str,
    metrics: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if y_true.ndim != 1:
        raise ValueError(
            f"y_true has shape {y_true.shape}; a {task_type} task takes class indices of shape (n,) — "
            "for one-hot targets pass y_true.argmax(1)"
        )
    if y_true.dtype.kind == "f":
        if not np.all(np.isfinite(y_true)) or not np.all(y_true == np.round(y_true)):
            raise ValueError("y_true must hold integer class indices, got non-integer floats")
    elif y_true.dtype.kind not in "iub":
        raise ValueError(f"y_true must hold integer class indices, got dtype {y_true.dtype}")
    y_true = y_true.astype(np.int64)
    n_classes = len(labels)
    if y_true.min() < 0 or y_true.max() >= n_classes:
        raise ValueError(
            f"y_true holds class indices outside [0, {n_classes}): labels must list every class, "
            "in the order of the score columns"
        )
    if task_type == "key_estimation":
        validate_key_labels(labels)
    if warn:
        present = np.bincount(y_true, minlength=n_classes) > 0
        predicted = np.unique(y_score.argmax(axis=1)) if split == "test" else None
        if present.sum() < 2:
            message = _one_class_message(task_type, labels, int(y_true[0]), predicted)
            about_test_set(MetricWarning, message, stacklevel=3)
        absent = np.flatnonzero(~present)
        if len(absent) and present.sum() >= 2:
            said = _absent_classes_message(task_type, labels, absent, predicted, split, metrics)
            if said:  # None: no metric computed is changed by the absent classes
                about_test_set(MetricWarning, said, stacklevel=3)
    return y_true, y_score, labels


def _one_class_message(task_type: str, labels: list[str], only: int, predicted: np.ndarray | None) -> str:
    """What each average means when every test example is of one class: ROC-AUC is undefined for every class (the
    present one has no negative example, the others no positive one), PR-AUC is 1 whatever the scores (the present
    class's only defined value, all its examples positive), the recall and support-weighted averages are that
    class's value, and ``f1_macro`` averages its F1 with F1 0 for every other class predicted for some track."""
    key = task_type == "key_estimation"
    alone = (
        "balanced_accuracy, f1_weighted and key_weighted_score_macro" if key else "balanced_accuracy and f1_weighted"
    )
    others = np.setdiff1d(predicted, [only]) if predicted is not None else None
    if others is None:  # every validation: not one set of predictions
        f1 = "f1_macro averages its F1 with F1 0 for every other class predicted for some track"
    elif len(others):
        f1 = (
            f"f1_macro averages its F1 with F1 0 for the {counted(len(others), 'other class', 'other classes')} predicted for some track "
            f"({_names(labels, others)}), so it is at most {1 / (1 + len(others)):.3g}"
        )
    else:
        f1 = "f1_macro is its F1 alone, as no track is predicted as another class"
    return (
        f"only one class ({labels[only]}) is present in y_true: roc_auc_macro and roc_auc_weighted are undefined "
        "(NaN: it has no negative example, the other classes no positive one); pr_auc_macro and pr_auc_weighted are "
        f"1 whatever the scores; {alone} describe that class alone; {f1}; the micro averages stay defined "
        "(they pool every class's one-vs-rest decisions)"
    )


def _absent_classes_message(
    task_type: str,
    labels: list[str],
    absent: np.ndarray,
    predicted: np.ndarray | None,
    split: str = "test",
    metrics: Sequence[str] | None = None,
) -> str | None:
    """What each average does with classes that have no ``split`` example: ROC-AUC, PR-AUC, recall (and a key's mean
    score) are undefined and left out; F1 (scikit-learn's convention) leaves a class out only if nothing is predicted
    as it — a class predicted for some track has F1 0 and lowers ``f1_macro``. ``predicted``: the classes some track
    is predicted as (``None``: said of every validation, not of one set of predictions). ``metrics``: the metrics
    computed, the only ones named (``None`` when the message should name every one); ``None`` is returned when no
    metric computed is changed by the absent classes (accuracy and the micro averages are not)."""
    key = task_type == "key_estimation"
    undefined = "ROC-AUC, PR-AUC, recall and mean key score" if key else "ROC-AUC, PR-AUC and recall"
    left_out = ["roc_auc_macro", "pr_auc_macro", "balanced_accuracy"] + (["key_weighted_score_macro"] if key else [])
    weighted = metrics is None or any(m.endswith("_weighted") for m in metrics)
    # F1 and precision: 0 for a class some track is predicted as, else undefined (left out)
    by_prediction = ["f1_macro"] if metrics is None else [m for m in ("f1_macro", "precision_macro") if m in metrics]
    if metrics is not None:
        left_out = [m for m in [*left_out, "recall_macro"] if m in metrics]
        if not left_out and not weighted and not by_prediction:
            return None
    head = f"{len(absent)} of {len(labels)} classes have no {split} example ({_names(labels, absent)})"
    parts = []
    if left_out or weighted:
        parts.append(
            f"their {undefined} are undefined"
            + (f" and left out of {', '.join(left_out)}" if left_out else "")
            + (" (the weighted averages give them weight 0)" if weighted else "")
        )
    if "f1_macro" in by_prediction:
        parts.append(_f1_macro_absent(labels, absent, predicted))
    if "precision_macro" in by_prediction:
        parts.append(
            "precision_macro counts one some track is predicted as with precision 0, and leaves the others out"
        )
    return f"{head}: {'; '.join(parts)}"


def _f1_macro_absent(labels: list[str], absent: np.ndarray, predicted: np.ndarray | None) -> str:
    """What ``f1_macro`` does with classes that have no example (see :func:`_absent_classes_message`)."""
    hit = absent[np.isin(absent, predicted)] if predicted is not None else None
    if hit is None:
        f1 = "f1_macro counts one with F1 0 while some track is predicted as it, which lowers it, and leaves it out otherwise"
    elif len(hit) == len(absent):
        f1 = "f1_macro counts them with F1 0, as some tracks are predicted as them, which lowers it"
    elif len(hit):
        f1 = (
            f"f1_macro counts those predicted for some track ({_names(labels, hit)}) with F1 0, which lowers "
            "it, and leaves out the others"
        )
    else:
        f1 = "f1_macro leaves them out too, as no track is predicted as one of them"
    return f1


def validate_key_labels(labels: Sequence[str]) -> None:
    """Raise ``ValueError`` unless every label is a key string mir_eval understands."""
    import mir_eval

    for lab in labels:
        try:
            mir_eval.key.validate_key(lab)
        except ValueError as exc:
            raise ValueError(
                f"key label '{lab}' is not a mir_eval key ({exc}); write keys as 'C major', 'F# minor' or 'X'"
            ) from None


def _validate_multilabel(
    y_true: np.ndarray, y_score: np.ndarray, labels: list[str], warn: bool, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but y_score has {y_score.shape}: a multilabel task takes a 0/1 "
            "matrix with one column per tag"
        )
    unannotated = np.isnan(y_true) if y_true.dtype.kind == "f" else np.zeros(y_true.shape, bool)
    if not np.isin(y_true[~unannotated], (0, 1)).all():
        raise ValueError(
            "multilabel y_true must contain only 0 and 1, and NaN where a label is unannotated (binarise tag "
            "annotations first)"
        )
    # an unannotated pair becomes -1: the kernels score each label on the tracks that annotate it
    y_true = np.where(unannotated, -1, y_true).astype(np.int64) if unannotated.any() else y_true.astype(np.int64)
    if warn:
        pos = (y_true == 1).sum(axis=0)
        empty = np.flatnonzero(pos == 0)
        full = np.flatnonzero((pos == (y_true >= 0).sum(axis=0)) & (pos > 0))
        if len(empty):
            about_test_set(
                MetricWarning,
                f"{len(empty)} of {len(labels)} labels have no positive {split} example ({_names(labels, empty)}): "
                "their ROC-AUC and PR-AUC are undefined and left out of the macro and weighted averages "
                "(the micro averages pool their scores as negatives); their F1, precision and recall are left out "
                "of the macro averages too unless some track is predicted positive (then all three are 0)",
                stacklevel=3,
            )
        if len(full):
            about_test_set(
                MetricWarning,
                f"{len(full)} of {len(labels)} labels are positive on every {split} example ({_names(labels, full)}): "
                "only one class is present, their ROC-AUC is undefined and left out of roc_auc_macro and "
                "roc_auc_weighted (roc_auc_micro pools their scores as positives; their PR-AUC is 1)",
                stacklevel=3,
            )
    return y_true, y_score, labels


def _validate_regression(
    y_true: np.ndarray, y_score: np.ndarray, labels: list[str], warn: bool, split: str = "test"
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true has shape {y_true.shape} but predictions have {y_score.shape}: pass one column per "
            "regression dimension in both"
        )
    try:
        y_true = y_true.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"regression y_true must be numeric, got dtype {y_true.dtype}") from None
    if not np.isfinite(y_true).all():
        raise ValueError("regression y_true contains NaN or infinite values: drop tracks without a target")
    if warn:
        constant = np.flatnonzero(np.ptp(y_true, axis=0) == 0)
        if len(constant):
            about_test_set(
                MetricWarning,
                f"the target is constant on the {split} set for {_names(labels, constant)}: R² is undefined there "
                "and left out of the average",
                stacklevel=3,
            )
    return y_true, y_score, labels
