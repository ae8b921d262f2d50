"""What probes train on: a task's splits (:class:`ProbeData`), their targets and sampling weights.

A regression's targets are standardised for training (:func:`target_scale`) and predictions mapped back to the
targets' units (:func:`unscaled`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from repeval.probes.losses import aggregate_scores, is_single_label


@dataclass
class ProbeData:
    task_type: str
    classes: list[str]
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    #: scenario → (x, y, track ids)
    tests: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = field(default_factory=dict)
    #: ``embedding_aggregation: prediction``: the rows of ``x_val`` are frames, and this gives each frame's track
    #: (its position in ``y_val``); a track's scores are the mean of its frames' (``None``: one row per track)
    val_groups: np.ndarray | None = None
    #: likewise per test scenario (a scenario absent here has one row per track)
    test_groups: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``embedding_aggregation: attention``: the rows of ``x_train`` are frames and this gives each training
    #: track's number of frames (a track's frames are consecutive rows, tracks in ``y_train`` order); probes pool
    #: a track's frames with learned attention weights (``None``: one row per track, or ``prediction``)
    train_counts: np.ndarray | None = None
    #: likewise for ``x_val``
    val_counts: np.ndarray | None = None
    #: likewise per test scenario
    test_counts: dict[str, np.ndarray] = field(default_factory=dict)
    #: ``embedding_aggregation: prediction`` on tracks of unequal numbers of frames: each training track's number of
    #: frames (its frames consecutive rows of ``x_train``, tracks in order). Training draws frames with probability
    #: inverse to it, so each training track weighs alike, as in validation and test (``None``: every track has as
    #: many frames, or rows are tracks; frames are then taken once per epoch in a random order)
    train_frame_counts: np.ndarray | None = None

    @property
    def attention(self) -> bool:
        """Whether rows are frames that probes pool with learned attention (one prediction per track)."""
        return self.train_counts is not None

    @property
    def n_outputs(self) -> int:
        if self.task_type != "regression":
            return len(self.classes)
        return int(self.y_train.shape[1]) if self.y_train.ndim > 1 else 1

    def track_scores(self, scenario: str, scores: np.ndarray) -> np.ndarray:
        """Per-track scores of test ``scenario`` from its rows' ``scores`` (the mean over a track's frames)."""
        groups = self.test_groups.get(scenario)
        if groups is None:
            return scores
        n = len(self.tests[scenario][1])
        return aggregate_scores(torch.from_numpy(np.asarray(scores)), torch.from_numpy(np.array(groups)), n).numpy()


def input_dim_of(cfg: Any, data: ProbeData) -> int:
    """The width of a probe's first layer: the (PCA-reduced) embedding, times the heads of attention pooling."""
    pca = cfg.effective_pca_dim
    d = data.x_train.shape[1]
    d = pca or d  # a PCA to more dimensions than it can give is an error (pca_too_wide)
    return d * max(1, heads_of(cfg, data))


def heads_of(cfg: Any, data: ProbeData) -> int:
    """Attention heads of a probe on ``data`` (0 unless its rows are frames to pool)."""
    return int(getattr(cfg, "attention_heads", 1)) if data.attention else 0


#: a regression task's ``(mean, std)`` per target dimension, fitted on the training split (``None``: a classification)
TargetScale = tuple[np.ndarray, np.ndarray] | None


def target_scale(data: ProbeData) -> TargetScale:
    """Regression: each target dimension's training mean and standard deviation (1 where it is constant). Probes fit
    and validate on standardised targets — on raw ones a head that starts near 0 needs thousands of steps to reach
    targets in the tens or hundreds (MIDI pitch, BPM, years) and early stopping picks a probe still on its way —
    and their predictions are mapped back to the targets' units (:func:`unscaled`). Refitted wherever it is needed
    (it is deterministic), like :class:`Preprocess`."""
    if data.task_type != "regression":
        return None
    y = np.asarray(data.y_train, np.float64).reshape(len(data.y_train), -1)
    std = y.std(0)
    return y.mean(0), np.where(std > 0, std, 1.0)


def unscaled(scores: np.ndarray, scale: TargetScale) -> np.ndarray:
    """Predictions of standardised targets (``(..., D)``) in the targets' units; scores as they are otherwise."""
    if scale is None:
        return scores
    return (scores * scale[1] + scale[0]).astype(np.float32)


def _targets(y: np.ndarray, task_type: str, scale: TargetScale = None) -> torch.Tensor:
    if is_single_label(task_type):
        return torch.from_numpy(np.array(y, np.int64))  # a copy: arrays from the object store are read-only
    y = np.array(y, np.float32)
    y = y.reshape(len(y), -1)
    if scale is not None:
        y = ((y - scale[0]) / scale[1]).astype(np.float32)
    return torch.from_numpy(y)


#: the most categories ``torch.multinomial`` draws from (it refuses more: "number of categories cannot exceed 2^24")
MULTINOMIAL_MAX = 2**24


def draw_rows(weights: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` row indices drawn with replacement, with probability proportional to ``weights``: ``torch.multinomial``
    (the draws repeval always made) up to :data:`MULTINOMIAL_MAX` rows, which it cannot exceed — the training frames
    of a few thousand long tracks — and above that by inverting the weights' cumulative sum."""
    if len(weights) <= MULTINOMIAL_MAX:
        return torch.multinomial(weights, n, True, generator=generator)
    cdf = torch.cumsum(weights.to(torch.float64), 0)
    u = torch.rand(n, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(weights) - 1)


def training_weights(data: ProbeData, balanced: bool) -> torch.Tensor | None:
    """Per-row weights of the training rows' sampling (drawn with replacement), or ``None``: a random order of every
    row, each epoch. ``balanced`` (``train_sampling: balanced``): class-balanced weights per track. On frames of
    tracks of unequal lengths (:attr:`ProbeData.train_frame_counts`) a track's weight is shared among its frames, so a
    track of 600 frames weighs as much as one of 60 — not ten times as much."""
    counts = data.train_frame_counts
    if counts is None:
        return _sampling_weights(np.asarray(data.y_train), data.task_type) if balanced else None
    c = np.asarray(counts, np.int64)
    first = np.cumsum(c) - c  # each track's first frame: its label
    track = (
        _sampling_weights(np.asarray(data.y_train)[first], data.task_type).numpy()
        if balanced
        else np.ones(len(c), np.float64)
    )
    return torch.from_numpy(np.repeat(track / c, c))


def _sampling_weights(y: np.ndarray, task_type: str) -> torch.Tensor:
    """Per-track weights of class-balanced sampling (inverse frequency of the track's rarest label)."""
    if is_single_label(task_type):
        counts = np.bincount(y, minlength=int(y.max()) + 1).astype(np.float64)
        return torch.from_numpy(1.0 / counts[y])
    if task_type == "multilabel_classification":
        y = np.where(np.isnan(y), 0, y)  # an unannotated pair is no positive
        freq = y.sum(0).astype(np.float64)
        inv = np.where(freq > 0, 1.0 / np.maximum(freq, 1), 0.0)
        w = (y * inv).max(1)
        return torch.from_numpy(np.where(w > 0, w, inv[inv > 0].min() if (inv > 0).any() else 1.0))
    raise ValueError("train_sampling: balanced needs a classification task")
