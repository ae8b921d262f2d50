"""Confusion matrices (a matrix, not a scalar metric) and their JSON record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from repeval.metrics.validation import validate


def confusion_matrix(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    *,
    task_type: str = "multiclass_classification",
    normalize: str | None = None,
) -> np.ndarray:
    """``M[i, j]`` = number of tracks of class ``i`` predicted as ``j`` (``argmax`` of the scores).

    ``normalize`` is ``None`` (counts), ``"true"`` (rows sum to 1) or ``"pred"`` (columns sum to 1);
    rows or columns without tracks stay zero.
    """
    if task_type not in ("multiclass_classification", "key_estimation"):
        raise ValueError(
            f"a confusion matrix needs one class per track; a {task_type} task has none — use per-label metrics instead"
        )
    yt, ys, labs = validate(task_type, y_true, y_score, labels, warn=False)
    n_classes = len(labs)
    pred = ys.argmax(axis=1)
    matrix = np.bincount(yt * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    if normalize is None:
        return matrix
    if normalize not in ("true", "pred"):
        raise ValueError(f"normalize must be None, 'true' or 'pred', got '{normalize}'")
    axis = 1 if normalize == "true" else 0
    sums = matrix.sum(axis=axis, keepdims=True).astype(np.float64)
    return np.divide(matrix, sums, out=np.zeros(matrix.shape), where=sums > 0)


def confusion_record(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """The JSON-ready ``{"labels": [...], "matrix": [[...]]}`` stored under ``runs/<id>/confusion/``."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"matrix shape {matrix.shape} does not match {len(labels)} labels")
    return {"labels": [str(lab) for lab in labels], "matrix": matrix.tolist()}


def write_confusion(path: Path, matrix: np.ndarray, labels: Sequence[str]) -> Path:
    """Write a confusion record as JSON (creating parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(confusion_record(matrix, labels)))
    tmp.replace(path)  # a reader never sees half a record
    return path


def read_confusion(path: Path) -> tuple[list[str], np.ndarray]:
    """Read a confusion record written by :func:`write_confusion`."""
    data = json.loads(Path(path).read_text())
    try:
        labels, matrix = list(data["labels"]), np.asarray(data["matrix"])
    except (KeyError, TypeError):
        raise ValueError(f"{path} is not a confusion record: expected keys 'labels' and 'matrix'") from None
    if matrix.shape != (len(labels), len(labels)):
        raise ValueError(f"{path}: matrix shape {matrix.shape} does not match {len(labels)} labels")
    return labels, matrix
