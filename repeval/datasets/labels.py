"""Which label of a dataset a task predicts.

A task names its label explicitly (``task.label``) or through its name: mir_ref's task names
(``instrument_recognition``, ``pitch_class_classification``, ``key_estimation``, ``tagging``,
``singer_identification``, ...) map onto dataset label names here.
"""

from __future__ import annotations

from typing import Any

from repeval.datasets.base import DatasetInfo, LabelInfo, unknown_label_message

#: task names (mir_ref spellings and common variants) → label name
TASK_LABEL_ALIASES: dict[str, str] = {
    "instrument_recognition": "instrument",
    "instrument_classification": "instrument",
    "instrument_identification": "instrument",
    "instrument_family_classification": "family",
    "pitch_class_classification": "pitch_class",
    "pitch_class_estimation": "pitch_class",
    "pitch_register_classification": "pitch_register",
    "pitch_register_estimation": "pitch_register",
    "pitch_classification": "pitch",
    "key_estimation": "key",
    "key_detection": "key",
    "genre_classification": "genre",
    "genre_recognition": "genre",
    "tagging": "tags",
    "autotagging": "tags",
    "auto_tagging": "tags",
    "music_tagging": "tags",
    "mood_theme_tagging": "tags",
    "moodtheme": "tags",
    "singer_identification": "singer",
    "singer_recognition": "singer",
    "technique_identification": "technique",
    "vocal_technique_identification": "technique",
    "technique_classification": "technique",
    "stroke_classification": "stroke",
    "tonic_classification": "tonic",
    "dynamics_classification": "dynamics",
    "sound_quality_classification": "klass",
}

_SUFFIXES = ("_classification", "_recognition", "_identification", "_estimation", "_detection", "_tagging")


def task_label_name(task: Any, info: DatasetInfo | None = None) -> str:
    """The dataset label a task predicts: ``task.label``, else derived from ``task.name``."""
    if getattr(task, "label", None):
        return str(task.label)
    name = str(task.name)
    candidates = [name, TASK_LABEL_ALIASES.get(name, "")]
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            candidates.append(name.removesuffix(suffix))
    candidates = [c for c in candidates if c]
    if info is None or not info.labels:
        return candidates[1] if len(candidates) > 1 else candidates[0]
    names = {lab.name for lab in info.labels}
    for c in candidates:
        if c in names:
            return c
    raise ValueError(unknown_label_message(info.name, name, names, task=name))


_COMPATIBLE = {
    "multiclass_classification": {"multiclass_classification", "multilabel_classification"},
    "key_estimation": {"key_estimation", "multiclass_classification", "multilabel_classification"},
    "multilabel_classification": {"multilabel_classification"},
    "regression": {"regression"},
}


def check_task_type(label: LabelInfo, task: Any, dataset: str) -> None:
    """Raise if the task's type cannot use this label (e.g. tags for a multiclass task)."""
    ttype = task.effective_type
    if ttype not in _COMPATIBLE.get(label.task_type, {label.task_type}):
        raise ValueError(
            f"dataset '{dataset}' label '{label.name}' is a {label.task_type} label; task '{task.name}' is "
            f"{ttype} — set task.type: {label.task_type}"
        )


def resolve_label(info: DatasetInfo, task: Any) -> LabelInfo:
    label = info.label(task_label_name(task, info))
    check_task_type(label, task, info.name)
    return label


def as_label_list(value: Any) -> list[str] | None:
    """A raw label value (str, number, list, {name: confidence}) as a list of strings; None if absent."""
    if value is None:
        return None
    if isinstance(value, bool | int | float | str):
        text = str(value).strip()
        return [text] if text else None
    if isinstance(value, dict):
        return sorted(str(k) for k, v in value.items() if isinstance(v, int | float) and v > 0.5)
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        return [str(x).strip() for x in items if x is not None and str(x).strip()]
    raise TypeError(f"a {type(value).__name__} is not a label (expected a string, number, list or dict)")


def finalize_label(
    task_type: str, value: Any, classes: frozenset[str] | None = None
) -> tuple[list[str] | None, str | None, str]:
    """Validate one row's raw label for a task type.

    Returns ``(labels, problem_kind, message)``: ``labels`` is None when the row is unusable and
    ``problem_kind`` is the :class:`LoadReport` list to report it in (``unlabelled`` or
    ``unknown_labels``). Keys are normalised (``Db major`` → ``C# major``); labels outside
    ``classes`` drop a single-label row and are dropped from a multilabel row.
    """
    from repeval.datasets.encoding import normalize_key

    try:
        labels = as_label_list(value)
    except TypeError as exc:
        return None, "unknown_labels", str(exc)
    if task_type == "multilabel_classification":
        labels = labels or []
        if classes is not None:
            unknown = [x for x in labels if x not in classes]
            labels = [x for x in labels if x in classes]
            if unknown:
                return labels, "unknown_labels", f"labels {unknown} not in dataset.classes, dropped"
        return labels, None, ""
    if not labels:
        return None, "unlabelled", "no label"
    if task_type == "regression":  # read as a catalog reads its cells: U+2212 minus, thousands separators, nan
        from repeval.datasets.target_text import plain_target, target_why

        whys = [why for x in labels if (why := target_why(x))]
        if whys:
            return None, "unknown_labels", "; ".join(whys)
        return [plain_target(x) for x in labels], None, ""
    if len(labels) != 1:
        return None, "unlabelled", f"{len(labels)} labels {labels} for a single-label task"
    label = labels[0]
    if task_type == "key_estimation":
        try:
            label = normalize_key(label)
        except ValueError as exc:
            return None, "unknown_labels", str(exc)
    if classes is not None and label not in classes:
        return None, "unknown_labels", f"label '{label}' not in dataset.classes"
    return [label], None, ""
