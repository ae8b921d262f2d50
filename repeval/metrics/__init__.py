"""Metrics: pure functions over test-set predictions, one module per family, one registry.

Public API used by the rest of repeval (keep these signatures):

- ``MetricRow(metric, value, label=None)``: one reported number (``label=None`` = aggregate).
- ``METRICS``: metric id → :class:`MetricSpec`; ``metrics_for_task(task_type)``.
- ``canonical_metric_name(name)``: repeval ids and mir_ref spellings (``AUC-ROC``, ``weighted_score_key``); a
  multilabel decision threshold after ``@`` is part of the id (``f1_macro@0.3``), ``metric_spec(name)`` its spec.
- ``check_metric_for_task(name, task_type)``: ``ValueError`` when a metric does not apply.
- ``compute_metrics(names, task_type, y_true, y_score, labels, *, ci=False, ...) -> list[MetricRow]``.
- ``higher_is_better(name)``; ``bootstrap_ci(name, task_type, y_true, y_score, labels, ...)``;
  ``confusion_matrix(y_true, y_score, labels)``.

Inputs: ``y_true`` is ``(n,)`` int class indices (multiclass, key), ``(n, C)`` 0/1
(multilabel; NaN where a track leaves a label unannotated: each label is scored on the tracks
that annotate it, the micro averages on the annotated pairs) or ``(n, D)`` float (regression); ``y_score`` is ``(n, C)`` probabilities or
``(n, D)`` predictions; ``labels`` are the class (or dimension) names; key labels are
mir_eval key strings (``"C major"``, ``"A minor"``).

Families: :mod:`.classification` (accuracy, balanced accuracy, F1, precision, recall), :mod:`.ranking`
(ROC-AUC, PR-AUC), :mod:`.key` (mir_eval weighted score), :mod:`.regression` (R², MSE),
:mod:`.confusion`, :mod:`.bootstrap`. The ``*_macro`` variants (and ``r2``, and
``balanced_accuracy``: each class's recall) also report one row per label. To add a metric, write a weighted kernel in the family module and decorate it
with ``register_metric``; the bootstrap and the golden tests pick it up.
"""

from __future__ import annotations

from repeval.metrics import classification, key, ranking, regression  # noqa: F401  (registers metrics)
from repeval.metrics.base import (
    METRICS,
    TASK_TYPE_NAMES,
    MetricRow,
    MetricSpec,
    MetricWarning,
    canonical_metric_name,
    check_metric_for_task,
    higher_is_better,
    metric_spec,
    metrics_for_task,
    register_metric,
)
from repeval.metrics.bootstrap import bootstrap_ci
from repeval.metrics.compute import compute_metrics
from repeval.metrics.confusion import confusion_matrix, confusion_record, read_confusion, write_confusion
from repeval.metrics.validation import validate

__all__ = [
    "METRICS",
    "TASK_TYPE_NAMES",
    "MetricRow",
    "MetricSpec",
    "MetricWarning",
    "bootstrap_ci",
    "canonical_metric_name",
    "check_metric_for_task",
    "compute_metrics",
    "confusion_matrix",
    "confusion_record",
    "higher_is_better",
    "metric_spec",
    "metrics_for_task",
    "read_confusion",
    "register_metric",
    "validate",
    "write_confusion",
]
