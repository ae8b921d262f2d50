"""Losses, scores and the validation criterion of probes, per task type.

Losses are computed for every probe of a stack at once (``(K, …)`` tensors → ``(K,)``); a prediction-level
aggregation's losses are those of the mean of a track's frames' scores (:func:`aggregated_losses`).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from repeval.tasks import resolve_criterion
from repeval.warn import warn_once


def is_single_label(task_type: str) -> bool:
    return task_type in ("multiclass_classification", "key_estimation")


def criterion_of(cfg: Any, task_type: str) -> tuple[str, str]:
    """``(criterion name, "min" | "max")``: the one validation criterion of a probe."""
    return resolve_criterion(cfg.save_criterion, task_type)


def _validation_set_key(task_type: str, y: np.ndarray, classes: list[str]) -> str:
    """What tells one validation set from another: its task type, classes and labels (a digest of them)."""
    y = np.ascontiguousarray(y)
    h = hashlib.sha256(f"{task_type}\0{y.dtype}\0{y.shape}\0".encode() + "\0".join(classes).encode())
    h.update(y.data)
    return h.hexdigest()


def criterion_value(
    name: str, task_type: str, y: np.ndarray, scores: np.ndarray, loss: float, classes: list[str]
) -> float:
    """The validation criterion ``name`` of ``scores``. Its metric warns about degenerate labels (a class without a
    validation example, …) once per validation set and criterion in a process, not at every validation, and in
    words that hold for every validation (:func:`repeval.metrics.validation.validate`, ``split="validation"``)."""
    if name == "val_loss":
        return loss
    from repeval.metrics import MetricWarning, compute_metrics

    metric = name.removeprefix("val_")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MetricWarning)
        rows = compute_metrics([metric], task_type, y, scores, classes, split="validation")
    said = [str(w.message) for w in caught if issubclass(w.category, MetricWarning)]
    for w in caught:  # any other warning, as it would have been given
        if not issubclass(w.category, MetricWarning):
            warnings.warn(w.message, stacklevel=2)
    if said:
        key = (name, _validation_set_key(task_type, y, classes))
        for text in said:
            warn_once(MetricWarning, (*key, text), f"{name} (said once, for every validation): {text}", stacklevel=2)
    return next(r.value for r in rows if r.label is None and r.metric == metric)


def never_finite(name: str, values: list[float]) -> str:
    """Why a probe whose validation criterion ``name`` was never finite (``values``: one per validation) failed: it
    has no best epoch, so no checkpoint to select or test. Names how many validations gave NaN and how many ±inf, and
    the fix (R² is undefined where the validation target does not vary)."""
    from repeval.words import counted

    nan = sum(1 for v in values if math.isnan(v))
    kinds = [f"NaN at {nan}" if nan else "", f"±inf at {len(values) - nan}" if len(values) > nan else ""]
    said = " and ".join(k for k in kinds if k)
    why = (
        f"non-finite validation metric: {name} was {said} of its {counted(len(values), 'validation')}, so no "
        "checkpoint was kept"
    )
    if name.startswith("val_r2"):
        return f"{why} (R² is undefined where the validation target is constant) — set save_criterion: val_loss"
    return f"{why} — set save_criterion: val_loss, or check the validation split's labels"


def scores_of(logits: torch.Tensor, task_type: str) -> torch.Tensor:
    if is_single_label(task_type):
        return torch.softmax(logits, -1)
    if task_type == "multilabel_classification":
        return torch.sigmoid(logits)
    return logits


def aggregate_scores(scores: torch.Tensor, groups: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of the rows' ``scores`` per group: ``(..., rows, C)`` with ``groups`` ``(rows,)`` in ``[0, n)`` →
    ``(..., n, C)`` (prediction-level aggregation: a track's score is the mean of its frames' scores)."""
    dim = scores.dim() - 2
    out = torch.zeros(*scores.shape[:dim], n, scores.shape[-1], dtype=scores.dtype, device=scores.device)
    out.index_add_(dim, groups, scores)
    counts = torch.bincount(groups, minlength=n).to(scores.dtype).clamp_min(1)
    return out / counts.view(n, 1)


#: probabilities are clipped to [EPS, 1 - EPS] before the log of an aggregated prediction's loss
EPS = 1e-7


def _pair_mean(losses: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-probe mean of ``(K, B, C)`` pair losses: over every pair, or with ``mask`` (true where the pair's label is
    annotated) over the annotated pairs only (0 for a probe whose batch annotates none: no gradient)."""
    if mask is None:
        return losses.mean((1, 2))
    m = mask.to(losses.dtype).expand_as(losses)
    return (losses * m).sum((1, 2)) / m.sum((1, 2)).clamp_min(1)


def aggregated_losses(
    scores: torch.Tensor, y: torch.Tensor, task_type: str, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-probe mean loss of aggregated *scores* (probabilities, or predictions for regression), the losses
    :func:`member_losses` computes from logits: ``scores`` ``(K, n, C)``, ``y`` ``(n,)`` or ``(n, C)`` → ``(K,)``;
    ``mask`` ``(n, C)``: see :func:`member_losses`."""
    if is_single_label(task_type):
        p = scores.gather(-1, y.view(1, -1, 1).expand(scores.shape[0], -1, 1)).squeeze(-1)
        return -torch.log(p.clamp(EPS, 1.0)).mean(1)
    if task_type == "multilabel_classification":
        yk = y.unsqueeze(0).expand_as(scores)
        losses = F.binary_cross_entropy(scores.clamp(EPS, 1 - EPS), yk, reduction="none")
        return _pair_mean(losses, None if mask is None else mask.unsqueeze(0))
    return ((scores - y.unsqueeze(0)) ** 2).mean((1, 2))


def member_losses(
    logits: torch.Tensor, y: torch.Tensor, task_type: str, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-probe mean loss: ``logits`` ``(K, B, C)``, ``y`` ``(K, B)`` or ``(K, B, C)`` → ``(K,)``. ``mask`` (a
    multilabel task whose data set annotates some labels per track; broadcastable to ``y``): true where the (track,
    label) pair is annotated — the binary cross-entropy is averaged over those pairs only (each label's output
    learns from the tracks that annotate it, OpenMIC-2018's protocol), the targets elsewhere being ignored."""
    k, b = logits.shape[:2]
    if is_single_label(task_type):
        return F.cross_entropy(logits.reshape(k * b, -1), y.reshape(-1), reduction="none").view(k, b).mean(1)
    if task_type == "multilabel_classification":
        return _pair_mean(F.binary_cross_entropy_with_logits(logits, y, reduction="none"), mask)
    return ((logits - y) ** 2).mean((1, 2))


def split_mask(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A multilabel target matrix with NaN where a pair is unannotated → ``(targets with 0 there, mask true where
    annotated)``; ``(y, None)`` when every pair is annotated (the unmasked loss, bit for bit)."""
    nan = torch.isnan(y)
    if not bool(nan.any()):
        return y, None
    return y.masked_fill(nan, 0.0), ~nan
