"""Task types: label encoding, probe head, loss and default metrics per type."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

TaskType = Literal[
    "multiclass_classification",
    "multilabel_classification",
    "regression",
    "key_estimation",
]

#: a probe's output activation: each task type's head, and what ``output_activation`` may be
Activation = Literal["softmax", "sigmoid", "linear"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


@dataclass(frozen=True)
class TaskTypeSpec:
    """What a task type implies for the probe and its evaluation."""

    name: str
    head: Activation
    default_metrics: tuple[str, ...]
    #: validation criterion used for early stopping *and* checkpoint selection
    default_criterion: str
    criterion_mode: Literal["max", "min"] = "max"
    #: training loss of the probe head
    loss: Literal["cross_entropy", "binary_cross_entropy", "mse"] = "cross_entropy"
    #: how labels are encoded (see :func:`encode_labels`)
    encoding: Literal["class_index", "multi_hot", "float_vector", "key_index"] = "class_index"


TASK_TYPES: dict[str, TaskTypeSpec] = {
    "multiclass_classification": TaskTypeSpec(
        "multiclass_classification",
        head="softmax",
        default_metrics=("accuracy", "f1_macro", "f1_micro"),
        default_criterion="val_accuracy",
    ),
    "multilabel_classification": TaskTypeSpec(
        "multilabel_classification",
        head="sigmoid",
        default_metrics=("roc_auc_macro", "pr_auc_macro"),
        default_criterion="val_roc_auc_macro",
        loss="binary_cross_entropy",
        encoding="multi_hot",
    ),
    "regression": TaskTypeSpec(
        "regression",
        head="linear",
        default_metrics=("r2",),
        default_criterion="val_loss",
        criterion_mode="min",
        loss="mse",
        encoding="float_vector",
    ),
    "key_estimation": TaskTypeSpec(
        "key_estimation",
        head="softmax",
        default_metrics=("key_weighted_score_micro", "key_weighted_score_macro"),
        default_criterion="val_accuracy",
        encoding="key_index",
    ),
}

#: mir_ref's save_criterion spellings mapped onto repeval's validation criteria
CRITERION_ALIASES = {
    "val_categorical_accuracy": "val_accuracy",
    "val_auc": "val_roc_auc_macro",
    "val_loss": "val_loss",
}


def resolve_criterion(save_criterion: str | None, task_type: str) -> tuple[str, Literal["max", "min"]]:
    """``(criterion name, "min" | "max")`` of a probe: its ``save_criterion`` (mir_ref spellings mapped), else the
    task type's default. ``val_loss`` is minimised; a metric criterion is ``val_`` and the metric's id (any spelling
    the metrics accept: ``val_mse``, ``val_pr_auc``), maximised or minimised as the metric is better
    (``val_mean_squared_error`` is minimised)."""
    name = save_criterion.strip() if save_criterion else TASK_TYPES[task_type].default_criterion
    name = CRITERION_ALIASES.get(name, name)
    if name == "val_loss":
        return name, "min"
    from repeval.metrics import canonical_metric_name, higher_is_better

    try:
        metric = canonical_metric_name(name.removeprefix("val_"))
    except ValueError:  # not a metric: the configuration's validation names it
        return name, "max"
    return f"val_{metric}", "max" if higher_is_better(metric) else "min"


#: task names whose labels are keys (mir_ref declares key estimation as multiclass)
KEY_TASK_NAMES = {"key_estimation", "key"}


def effective_task_type(task_type: str, task_name: str) -> str:
    """mir_ref writes key estimation as ``multiclass_classification`` named ``key_estimation``."""
    if task_type == "multiclass_classification" and task_name in KEY_TASK_NAMES:
        return "key_estimation"
    return task_type


def given_task_type(task: Any) -> str | None:
    """The type a task given as a mapping (a run's saved config, a configuration before its check) is trained as —
    :func:`effective_task_type` of its ``type`` and ``name`` —, ``None`` when it is not a mapping or its type not
    one of :data:`TASK_TYPES` (the task's own check names that)."""
    kind = task.get("type") if isinstance(task, dict) else None
    return effective_task_type(kind, str(task.get("name"))) if kind in TASK_TYPES else None


def encode_labels(task_type: str, label_lists: Any, classes: Any = None, **kwargs: Any) -> tuple[Any, list[str]]:
    """Encode per-row label lists for a task type; see :func:`repeval.datasets.encoding.encode_labels`."""
    from repeval.datasets.encoding import encode_labels as _encode

    return _encode(task_type, label_lists, classes, **kwargs)


def decode_labels(task_type: str, y: Any, classes: Any, **kwargs: Any) -> list[list[str]]:
    """Decode encoded labels or probe outputs; see :func:`repeval.datasets.encoding.decode_labels`."""
    from repeval.datasets.encoding import decode_labels as _decode

    return _decode(task_type, y, classes, **kwargs)
