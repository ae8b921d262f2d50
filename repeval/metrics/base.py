"""Metric registry, names and the rows metrics produce.

Every metric is implemented once, as a *weighted kernel*: given validated inputs and a
``(B, n)`` matrix of per-track weights it returns the aggregate value for each of the ``B``
weightings and, for metrics that have them, the per-label values. The point estimate is the
kernel with all weights one; a bootstrap resample is the kernel with the resample's counts as
weights. One implementation therefore serves the reported value and its confidence interval,
and the bootstrap needs no per-resample Python loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from repeval.registry import unknown_name_message

TASK_TYPE_NAMES = (
    "multiclass_classification",
    "multilabel_classification",
    "regression",
    "key_estimation",
)

#: ``kernel(y_true, y_score, labels, weights) -> (aggregate (B,), per_label (B, C) | None)``
Kernel = Callable[[np.ndarray, np.ndarray, Sequence[str], np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class MetricWarning(UserWarning):
    """Degenerate metric input: a value is undefined or an average skips labels."""


@dataclass(frozen=True)
class MetricRow:
    """One reported number: an aggregate (``label is None``) or one label's value."""

    metric: str
    value: float
    #: ``None`` for the aggregate value, else the label this value is for
    label: str | None = None
    #: bootstrap percentile interval over test tracks, when requested
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kernel: Kernel
    task_types: frozenset[str]
    higher_is_better: bool = True
    #: whether the metric also reports one value per label (class / tag / dimension)
    per_label: bool = False
    description: str = ""
    #: whether a multilabel task's tags are predicted at a decision threshold (``f1_macro@0.3``; the kernel then
    #: takes ``threshold=``); the threshold of the spec as named, ``None`` for the default
    #: (:data:`DEFAULT_THRESHOLD`) or a metric that takes none
    thresholded: bool = False
    threshold: float | None = None
    #: the fewest test tracks its bootstrap interval is reported on (0: any); see :func:`repeval.metrics.bootstrap.
    #: interval_withheld`
    min_interval_tracks: int = 0


METRICS: dict[str, MetricSpec] = {}

# mir_ref, thesis and scikit-learn spellings. Keys are normalised with ``_normalise``.
_ALIASES = {
    "auc_roc": "roc_auc_macro",
    "roc_auc": "roc_auc_macro",
    "auc": "roc_auc_macro",
    "rocauc": "roc_auc_macro",
    "roc_auc_score": "roc_auc_macro",
    "auc_pr": "pr_auc_macro",
    "pr_auc": "pr_auc_macro",
    "prauc": "pr_auc_macro",
    "average_precision": "pr_auc_macro",
    "average_precision_score": "pr_auc_macro",
    "map": "pr_auc_macro",
    "mean_average_precision": "pr_auc_macro",
    "ap": "pr_auc_macro",  # MARBLE
    "aucpr": "pr_auc_macro",
    "aucroc": "roc_auc_macro",  # HEAR, MARBLE
    "weighted_score_key": "key_weighted_score_micro",
    "key_weighted_score": "key_weighted_score_micro",
    "weighted_score": "key_weighted_score_micro",
    "weighted_accuracy": "key_weighted_score_micro",
    "micro_weighted_score": "key_weighted_score_micro",
    "micro_avg_weighted_score": "key_weighted_score_micro",
    "macro_weighted_score": "key_weighted_score_macro",
    "macro_avg_weighted_score": "key_weighted_score_macro",
    "f1": "f1_macro",
    "f1_score": "f1_macro",
    "macro_f1": "f1_macro",
    "macro_avg_f1": "f1_macro",
    "micro_f1": "f1_micro",
    "micro_avg_f1": "f1_micro",
    "weighted_f1": "f1_weighted",
    "precision": "precision_macro",
    "precision_score": "precision_macro",
    "recall": "recall_macro",
    "recall_score": "recall_macro",
    "categorical_accuracy": "accuracy",
    "accuracy_score": "accuracy",
    "acc": "accuracy",
    "top1_acc": "accuracy",  # HEAR
    "balanced_accuracy_score": "balanced_accuracy",
    "r2_score": "r2",
    "r_squared": "r2",
    "mse": "mean_squared_error",
    "mae": "mean_absolute_error",
}


_AVERAGES = ("macro", "micro", "weighted")

#: a multilabel task's tag is predicted when its score is at least this, unless the metric's name sets another
#: threshold after ``@`` (``f1_macro@0.3``)
DEFAULT_THRESHOLD = 0.5
#: the task type whose metrics take a decision threshold (the others predict each track's top-scored class)
THRESHOLD_TASK = "multilabel_classification"


def _normalise(name: str) -> str:
    return re.sub(r"[\s\-\.]+", "_", name.strip()).lower()


def register_metric(
    name: str,
    task_types: frozenset[str] | set[str],
    *,
    higher_is_better: bool = True,
    per_label: bool = False,
    description: str = "",
    thresholded: bool = False,
    min_interval_tracks: int = 0,
) -> Callable[[Kernel], Kernel]:
    """Register a weighted kernel under the snake_case metric id ``name`` (``thresholded``: it predicts a multilabel
    task's tags at a decision threshold, which the kernel takes as ``threshold=``; ``min_interval_tracks``: the fewest
    test tracks its bootstrap interval is reported on)."""
    if name != _normalise(name):
        raise ValueError(f"metric ids are snake_case: register '{_normalise(name)}' instead of '{name}'")

    def deco(kernel: Kernel) -> Kernel:
        if name in METRICS:
            raise ValueError(f"metric '{name}' is registered twice")
        spec = MetricSpec(
            name,
            kernel,
            frozenset(task_types),
            higher_is_better,
            per_label,
            description,
            thresholded,
            min_interval_tracks=min_interval_tracks,
        )
        METRICS[name] = spec
        return kernel

    return deco


def canonical_metric_name(name: str) -> str:
    """Map a repeval id or a mir_ref/thesis, HEAR or MARBLE spelling (``AUC-ROC``, ``weighted_score_key``, ``aucroc``,
    ``top1_acc``), the average first or last (``macro_roc_auc``), to an id — with the decision threshold written
    after ``@`` kept (``F1-macro@0.30`` → ``f1_macro@0.3``): ``ValueError`` naming the fix for a threshold outside
    (0, 1) or on a metric that takes none."""
    if name in METRICS:
        return name
    base, at, text = str(name).partition("@")
    key = _normalise(base)
    key = _ALIASES.get(key, key)
    average, _, rest = key.partition("_")
    if key not in METRICS and average in _AVERAGES and f"{rest}_{average}" in METRICS:
        key = f"{rest}_{average}"  # the average first: ``macro_roc_auc``, ``micro-PR-AUC``
    if key not in METRICS:
        raise ValueError(unknown_name_message("metric", base if at else str(name), set(METRICS)))
    if not at:
        return key
    return f"{key}@{_format_threshold(_parse_threshold(str(name), key, text))}"


def thresholded_metrics() -> list[str]:
    """The metric ids that take a decision threshold (``f1_macro@0.3``)."""
    return sorted(n for n, s in METRICS.items() if s.thresholded)


def _parse_threshold(name: str, key: str, text: str) -> float:
    if not METRICS[key].thresholded:
        raise ValueError(
            f"metric '{name}': {key} takes no decision threshold (it is computed from the scores themselves, not from "
            f"tags predicted at a threshold): remove '@{text}'. The metrics that take one (multilabel tasks): "
            f"{', '.join(thresholded_metrics())}"
        )
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # NaN too
        raise ValueError(
            f"metric '{name}': the decision threshold after '@' must be a number between 0 and 1 (both excluded) — "
            f"the score at or above which a tag counts as predicted, e.g. {key}@0.3 (without '@': "
            f"{DEFAULT_THRESHOLD:g})"
        )
    return value


def _format_threshold(value: float) -> str:
    return np.format_float_positional(value, trim="-")


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` of metric ``name`` (any spelling); with a threshold (``f1_macro@0.3``) its kernel is
    the metric's at that threshold and it applies to multilabel tasks only."""
    key = canonical_metric_name(name)
    base, at, text = key.partition("@")
    spec = METRICS[base]
    if not at:
        return spec
    threshold = float(text)
    thresholded: Callable[..., tuple[np.ndarray, np.ndarray | None]] = spec.kernel  # takes ``threshold=``
    return replace(
        spec,
        name=key,
        kernel=partial(thresholded, threshold=threshold),
        task_types=spec.task_types & {THRESHOLD_TASK},
        description=f"{spec.description} (tags predicted at score >= {text})",
        threshold=threshold,
    )


def check_metric_for_task(name: str, task_type: str) -> None:
    """Raise ``ValueError`` when metric ``name`` does not apply to ``task_type``."""
    if task_type not in TASK_TYPE_NAMES:
        raise ValueError(unknown_name_message("task type", task_type, set(TASK_TYPE_NAMES)))
    spec = metric_spec(name)
    base = spec.name.partition("@")[0]
    if spec.threshold is not None and task_type != THRESHOLD_TASK and task_type in METRICS[base].task_types:
        raise ValueError(
            f"metric '{name}': a decision threshold applies to {THRESHOLD_TASK} tasks only — a {task_type} task "
            f"predicts each track's top-scored class: write {base} (without '@')"
        )
    if task_type not in spec.task_types:
        ok = sorted(n for n, s in METRICS.items() if task_type in s.task_types)
        raise ValueError(
            f"metric '{name}' does not apply to a {task_type} task (it applies to "
            f"{', '.join(sorted(spec.task_types))}); use one of {', '.join(ok)}"
        )


def higher_is_better(name: str) -> bool:
    """Whether larger values of metric ``name`` are better (used to highlight table winners)."""
    return metric_spec(name).higher_is_better


def metrics_for_task(task_type: str) -> list[str]:
    """The metric ids that apply to ``task_type``."""
    return sorted(n for n, s in METRICS.items() if task_type in s.task_types)


def ones_weights(n: int) -> np.ndarray:
    """The ``(1, n)`` weight matrix of the point estimate."""
    return np.ones((1, n), dtype=np.float64)


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with ``nan`` where ``den == 0`` (an undefined value, never a warning)."""
    num, den = np.broadcast_arrays(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring ``nan``; ``nan`` where a row has no defined value."""
    defined = ~np.isnan(values)
    count = defined.sum(axis=-1)
    total = np.where(defined, values, 0.0).sum(axis=-1)
    return safe_divide(total, count)
