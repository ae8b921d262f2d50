"""Probe training: one criterion for early stopping *and* checkpoint selection, many probes at once.

mir_ref stopped on ``val_loss`` but kept the best ``val_auc`` model; here the configured
criterion (default per task type) decides both. The last partial batch is never dropped.

:func:`train_probes` trains a list of (configuration, seed) members. Members that share a
:func:`group_key` (layer sizes, batch size, optimiser kind, PCA, normalisation, validation
schedule, sampling, precision) are trained together in one :class:`~repeval.probes.stacked.StackedMLP`;
everything else (learning rate and its schedule, weight decay, dropout, standardisation, epochs,
patience, criterion, seed) may differ inside a stack. A member follows the same trajectory in a stack as
alone — :func:`train_probe` is the one-member case — up to floating-point rounding.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from repeval.probes.model import build_probe, native_bf16, resolve_hidden_units
from repeval.probes.stacked import StackedMLP, StackedOptimizer
from repeval.tasks import resolve_criterion
from repeval.warn import warn_once

#: rows per chunk when a whole split is pushed through a stack (bounds memory: K × rows × dim)
EVAL_CHUNK_ELEMENTS = 32_000_000


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


@dataclass
class TrainResult:
    best_epoch: int
    best_criterion: float
    history: list[dict[str, float]]
    state_dict: dict[str, Any]
    #: scenario → (n, C) scores (probabilities, or predictions for regression)
    test_scores: dict[str, np.ndarray]
    failed: str | None = None
    epochs: int = 0
    steps: int = 0
    #: seconds of the stack this member trained in, divided by the stack's size
    train_seconds: float = 0.0
    #: why it stopped before early stopping or its budget did (successive halving), if it did
    stopped: str | None = None


@dataclass(frozen=True)
class Halving:
    """Successive halving inside a stack (``scheduler: asha`` on a grid without a sampled space).

    At the rungs ``grace · eta^k`` epochs below ``max_t`` (or the members' epoch budget), the
    configurations of ``group`` (a probe spec) that reached the rung are ranked by their latest
    validation criterion (the mean over their seeds); the best ``ceil(n / eta)`` continue and the
    others stop there with the best checkpoint they had — Ray Tune's ASHA rule, applied
    synchronously to the configurations that train together. Members that continue follow exactly
    the trajectory they would alone."""

    group: int
    point: int
    grace: int
    eta: float
    max_t: int | None = None

    def rung(self, k: int) -> int:
        return max(1, round(self.grace * self.eta**k))


#: rows of the deviations :func:`_column_std` squares at a time
STD_CHUNK_ROWS = 16384


def _column_std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``x.std(0)`` bit for bit (``mean`` is ``x.mean(0)``) without its ``x``-sized temporary: numpy sums a
    C-contiguous ``(n, d ≥ 2)`` array's squared deviations over axis 0 row after row, so summing them chunk by chunk,
    each chunk after the running sum, adds the same numbers in the same order. One column (``d == 1``) numpy sums
    pairwise: that, and small arrays, go to ``x.std(0)`` itself."""
    n, d = x.shape
    if d < 2 or n <= STD_CHUNK_ROWS:
        return x.std(0)
    total: np.ndarray | None = None
    for a in range(0, n, STD_CHUNK_ROWS):
        dev = x[a : a + STD_CHUNK_ROWS] - mean
        np.multiply(dev, dev, out=dev)
        total = np.add.reduce(dev if total is None else np.concatenate([total[None], dev]), axis=0)
    assert total is not None
    return np.sqrt(total / n)


def pca_too_wide(pca_dim: int, n_rows: int, width: int) -> str | None:
    """Why a PCA to ``pca_dim`` dimensions cannot be fitted on ``n_rows`` training rows of ``width`` dimensions (it
    gives at most the smaller of the two, as scikit-learn's ``PCA`` — mir_ref's — refuses to fit more), or None."""
    most = min(n_rows, width)
    if pca_dim <= most:
        return None
    why = f"{width}-dimensional embeddings" if width <= n_rows else f"{n_rows} training rows (tracks, or frames)"
    return (
        f"PCA to {pca_dim} dimensions (pca_dim, or emb_shape with emb_dim_reduction: PCA), but the training split has "
        f"{n_rows} rows of {width}-dimensional embeddings, and a PCA gives at most as many dimensions as the smaller "
        f"of the two ({why}): set it to at most {most}, or remove the PCA"
    )


class Preprocess:
    """Standardisation and PCA fitted on the training split only.

    Standardisation is scikit-learn's ``StandardScaler`` (Jukemir's ``data_standardization``, p-lambda/jukemir
    ``jukemir/probe/__init__.py``): the training mean subtracted, divided by the population std — and a column that
    is constant on the training split (a dead unit, a fixed statistic) keeps scale 1, as sklearn's
    ``_handle_zeros_in_scale`` does. Dividing it by ~1e-8 instead multiplied any value it takes elsewhere (a
    deformed test clip that wakes a dead unit) by 1e8.
    """

    def __init__(self, x: np.ndarray, standardize: bool, pca_dim: int | None) -> None:
        x = np.asarray(x, np.float32)
        self.mean = x.mean(0) if standardize or pca_dim else np.zeros(x.shape[1], np.float32)
        self.std = np.ones(x.shape[1], np.float32)
        if standardize and len(x):
            constant = x.min(0) == x.max(0)
            self.std = np.where(constant, np.float32(1), _column_std(x, self.mean) + 1e-8).astype(np.float32)
            # its value itself, not a float32 mean a rounding off it: the training rows standardise to exactly 0
            self.mean = np.where(constant, x[0], self.mean).astype(np.float32)
        self.components = None
        if pca_dim:
            wrong = pca_too_wide(pca_dim, *x.shape)
            if wrong:
                raise ValueError(wrong)
            z = (x - self.mean) / self.std
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            self.components = vt[:pca_dim].T.astype(np.float32)

    @property
    def output_dim(self) -> int:
        return int(self.components.shape[1]) if self.components is not None else len(self.mean)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((np.asarray(x, np.float32) - self.mean) / self.std).astype(np.float32)
        return z @ self.components if self.components is not None else z


# --------------------------------------------------------------------------- task helpers


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


def input_dim_of(cfg: Any, data: ProbeData) -> int:
    """The width of a probe's first layer: the (PCA-reduced) embedding, times the heads of attention pooling."""
    pca = cfg.effective_pca_dim
    d = data.x_train.shape[1]
    d = pca or d  # a PCA to more dimensions than it can give is an error (pca_too_wide)
    return d * max(1, heads_of(cfg, data))


def heads_of(cfg: Any, data: ProbeData) -> int:
    """Attention heads of a probe on ``data`` (0 unless its rows are frames to pool)."""
    return int(getattr(cfg, "attention_heads", 1)) if data.attention else 0


def group_key(cfg: Any, data: ProbeData) -> tuple:
    """Members with equal keys can share one stack."""
    d = input_dim_of(cfg, data)
    hidden = tuple(resolve_hidden_units(cfg.hidden_units, d, data.n_outputs))
    return (
        hidden,
        cfg.batch_size,
        cfg.optimizer,
        cfg.effective_pca_dim,
        cfg.hidden_norm,
        cfg.val_every,
        cfg.train_sampling,
        cfg.precision,
        heads_of(cfg, data),
    )


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


def _chunks(n: int, k: int, width: int) -> list[slice]:
    step = max(1, EVAL_CHUNK_ELEMENTS // max(1, k * width))
    return [slice(s, min(n, s + step)) for s in range(0, n, step)]


class Segments:
    """Tracks whose frames are consecutive rows of a frame matrix (``embedding_aggregation: attention``), batched
    as padded index tensors. The frame matrix carries one extra all-zero row at its end, which padding points at."""

    def __init__(self, counts: np.ndarray, device: str | torch.device = "cpu") -> None:
        c = torch.from_numpy(np.array(counts, np.int64))  # a copy: arrays from the object store are read-only
        self.counts = c.to(device)
        self.starts = (torch.cumsum(c, 0) - c).to(device)
        self.n_frames = int(c.sum())
        self.max_len = int(c.max()) if len(c) else 0

    def __len__(self) -> int:
        return len(self.counts)

    def batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index, mask)``, both ``(B, T)`` for the tracks ``rows`` (T: their longest): the frames' rows in the
        frame matrix (its padding row where a track has fewer frames) and true where a frame is real."""
        lens = self.counts[rows]
        steps = torch.arange(int(lens.max()), device=rows.device)
        mask = steps < lens.unsqueeze(1)
        idx = torch.where(mask, self.starts[rows].unsqueeze(1) + steps, self.n_frames)
        return idx, mask


def _preprocessed(x: np.ndarray, preps: list[Preprocess], pad: bool) -> torch.Tensor:
    """``(V, n [+ 1], d)``: ``x`` under each preprocessing variant, filled one variant at a time (one variant's
    transient copy, not V), with :meth:`Segments.batch`'s zero padding row at the end when ``pad``."""
    n = len(x)
    shape = (len(preps), n + int(pad), preps[0].output_dim)
    out = torch.zeros(shape) if pad else torch.empty(shape)
    for i, prep in enumerate(preps):
        np.copyto(out[i, :n].numpy(), prep(x))  # x may be a read-only view of the object store: no tensor of it
    return out


def _shared_tensor(x: np.ndarray) -> torch.Tensor:
    """A float32 tensor on ``x``'s memory (no copy when ``x`` is float32 and C-contiguous), also when ``x`` is a
    read-only view of the object store's copy. Only :class:`Inputs` makes these, and only reads them: PyTorch's
    warning that writing through such a tensor is undefined is silenced here and nowhere else."""
    a = np.ascontiguousarray(x, np.float32)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


class Inputs:
    """A split's probe inputs under each preprocessing variant of a stack, ``(V, n [+ 1], d)``, made batch by batch:
    the raw rows (in a trial, a read-only view of the object store's copy) are gathered, then standardised for the
    variant that asks for them — the float32 subtraction and division of :class:`Preprocess`, so the values are its
    own bit for bit — and a trial holds no preprocessed copy of the split. With ``pad`` a zero row follows the ``n``
    rows (where :meth:`Segments.batch` points padding). Variants with PCA are projected up front (a product over the
    whole split; :func:`_preprocessed`)."""

    def __init__(
        self, x: np.ndarray, preps: list[Preprocess], pad: bool, device: str | torch.device = "cpu"
    ) -> None:  # fmt: skip
        self.n, self.pad = len(x), pad
        self.shape = (len(preps), self.n + int(pad), preps[0].output_dim)
        self.full: torch.Tensor | None = None
        if any(p.components is not None for p in preps):
            self.full = _preprocessed(x, preps, pad).to(device)
            self.device = self.full.device
            return
        self.raw = _shared_tensor(x).to(device)
        self.device = self.raw.device
        self.mean = torch.from_numpy(np.stack([p.mean for p in preps]).astype(np.float32)).to(device)
        self.std = torch.from_numpy(np.stack([p.std for p in preps]).astype(np.float32)).to(device)
        #: variants whose standardisation is the identity ((x - 0) / 1 == x exactly): their batches are the raw rows
        self.plain = [bool((p.mean == 0).all() and (p.std == 1).all()) for p in preps]
        self.variants = torch.arange(len(preps), device=device)  # every variant, once per batch (every_variant)

    def _standardised(self, rows: torch.Tensor, idx: torch.Tensor | None, var: torch.Tensor | int) -> torch.Tensor:
        """``rows`` (raw, ``(*lead, *rest, d)``) standardised for ``var`` (an index, or one per leading entry)."""
        if all(self.plain) or all(self.plain[v] for v in ([var] if isinstance(var, int) else var.tolist())):
            z = rows.contiguous()  # a fresh gather as it is; a broadcast view of the raw rows copied
            if self.pad and idx is not None:
                z.masked_fill_((idx >= self.n).unsqueeze(-1), 0.0)
            return z
        mean, std = self.mean[var], self.std[var]
        if isinstance(var, torch.Tensor):  # one variant per leading entry: broadcast over the rest
            shape = (*var.shape, *([1] * (rows.dim() - var.dim() - 1)), rows.shape[-1])
            mean, std = mean.view(shape), std.view(shape)
        z = (rows - mean).div_(std)  # one new tensor of the batch's size
        if self.pad and idx is not None:
            z.masked_fill_((idx >= self.n).unsqueeze(-1), 0.0)
        return z

    def take(self, idx: torch.Tensor, var: torch.Tensor | int) -> torch.Tensor:
        """Rows ``idx`` (any shape; with ``pad``, index ``n`` is the zero row) of variant ``var`` — an index, or a
        ``(K,)`` tensor giving each leading entry of ``idx`` ``(K, ...)`` its variant → ``(*idx.shape, d)``."""
        if self.full is not None:
            if isinstance(var, int):
                return self.full[var][idx]
            return self.full[var.view(-1, *([1] * (idx.dim() - 1))), idx]
        rows = self.raw[idx.clamp(max=self.n - 1)] if self.pad else self.raw[idx]
        return self._standardised(rows, idx, var)

    def every_variant(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` ``(B,)`` under every variant → ``(V, B, d)`` (the rows gathered once)."""
        if self.full is not None:
            return self.full.index_select(1, idx)
        rows = self.raw.index_select(0, idx).unsqueeze(0)
        return self._standardised(rows.expand(self.shape[0], -1, -1), None, self.variants)

    def span(self, sl: slice, var: torch.Tensor) -> torch.Tensor:
        """Rows ``sl`` of the ``n`` for the variants ``var`` ``(K,)`` → ``(K, len, d)``."""
        if self.full is not None:
            return self.full[:, sl][var]
        return self._standardised(self.raw[sl].unsqueeze(0).expand(len(var), -1, -1), None, var)


def _pooled(
    model: StackedMLP, xs: Inputs, seg: Segments, rows: torch.Tensor, keys: list[Any], variants: list[int]
) -> torch.Tensor:
    """The attention-pooled first-layer input ``(K, B, d)`` of every stack position: ``rows`` ``(K, B)`` its tracks,
    ``keys`` what its rows depend on (positions with equal keys see the same rows), ``variants`` its
    preprocessing variant in ``xs`` ``(V, n + 1, d)``. Each distinct (rows, variant) batch is gathered once."""
    groups: dict[tuple[Any, int], list[int]] = {}
    for pos, (key, v) in enumerate(zip(keys, variants, strict=True)):
        groups.setdefault((key, v), []).append(pos)
    parts = []
    for (_, v), positions in groups.items():
        idx, mask = seg.batch(rows[positions[0]])
        parts.append((positions, xs.take(idx, v), mask))
    return model.pool(parts)


def _forward_pooled(model: StackedMLP, xs: Inputs, seg: Segments, var_idx: torch.Tensor) -> torch.Tensor:
    """:func:`_forward_all` for attention probes: ``xs`` ``(V, frames + 1, d)``, ``seg`` the tracks → ``(K, n, C)``."""
    n, d = len(seg), xs.shape[2]
    variants = var_idx.tolist()
    width = max(model.k * max(model.dims), seg.max_len * (d + model.k * max(1, model.heads)))
    step = max(1, EVAL_CHUNK_ELEMENTS // max(1, width))
    outs = []
    with torch.no_grad():
        for s in range(0, n, step):
            rows = torch.arange(s, min(n, s + step), device=xs.device).expand(model.k, -1)
            x = _pooled(model, xs, seg, rows, [0] * model.k, variants)
            outs.append(model.forward(x, train=False))
    return torch.cat(outs, 1)


def _forward_all(model: StackedMLP, xs: Inputs, var_idx: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits of every probe on a whole split: ``xs`` ``(V, n, d)`` → ``(K, n, C)``."""
    outs = []
    with torch.no_grad():
        for sl in _chunks(xs.shape[1], model.k, max(model.dims)):
            x = xs.span(sl, var_idx)
            outs.append(model.forward(x, train=False))
    return torch.cat(outs, 1)


# ------------------------------------------------------------------------------ training

#: called after each validation with ``[(member index, record), ...]`` of the members validated
ValidationCallback = Callable[[int, list[tuple[int, dict[str, float]]]], None]


def train_probes(
    members: Sequence[tuple[Any, int]],
    data: ProbeData,
    *,
    max_epochs: int | None = None,
    evaluate_tests: bool = True,
    on_validation: ValidationCallback | None = None,
    device: str = "cpu",
    halving: Sequence[Halving | None] | None = None,
) -> list[TrainResult]:
    """Train every ``(config, seed)`` member; stacks are formed by :func:`group_key`.

    ``device`` ``cuda`` trains the stacks on a GPU (initial weights and data order are still
    drawn on the CPU; dropout masks then come from per-probe CUDA generators). ``halving`` (one
    entry per member) stops the weaker configurations of a stack early, see :class:`Halving`.
    """
    groups: dict[tuple, list[int]] = {}
    for i, (cfg, _) in enumerate(members):
        groups.setdefault(group_key(cfg, data), []).append(i)
    for idx in groups.values():  # probes sharing (lr, weight decay) side by side: one optimiser call per run
        idx.sort(
            key=lambda i: (members[i][0].learning_rate, members[i][0].weight_decay, bool(members[i][0].standardize))
        )
    results: list[TrainResult | None] = [None] * len(members)
    for idx in groups.values():
        hv = [halving[i] for i in idx] if halving is not None else None
        out = _train_stack([members[i] for i in idx], data, max_epochs, evaluate_tests, on_validation, idx, device, hv)
        for i, r in zip(idx, out, strict=True):
            results[i] = r
    return results  # type: ignore[return-value]


def train_probe(
    cfg: Any,
    data: ProbeData,
    seed: int,
    report: Callable[[dict[str, float]], None] | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Train one probe configuration; returns the selected checkpoint's test scores."""

    def cb(_: int, recs: list[tuple[int, dict[str, float]]]) -> None:
        if report is not None:
            for _, rec in recs:
                report(rec)

    return train_probes([(cfg, seed)], data, on_validation=cb, device=device)[0]


def _warn_emulated_bf16(device: str) -> None:
    """Once per process and device: ``precision: bf16`` where bf16 products are emulated (slower than fp32)."""
    if native_bf16(device):
        return
    warn_once(
        RuntimeWarning,
        ("emulated bf16", device),
        f"precision: bf16 — this {device.upper()} has no bf16 units (on a CPU: AVX512-BF16 or AMX), so the "
        "probes' products are emulated and train slower than with fp32; set precision: fp32 (the default) here",
        stacklevel=3,
    )


def _train_stack(
    members: list[tuple[Any, int]],
    data: ProbeData,
    max_epochs: int | None,
    evaluate_tests: bool,
    on_validation: ValidationCallback | None,
    ids: list[int],
    device: str = "cpu",
    halving: list[Halving | None] | None = None,
) -> list[TrainResult]:
    t0 = time.perf_counter()
    task = data.task_type
    cfgs = [c for c, _ in members]
    if cfgs[0].precision == "bf16":
        _warn_emulated_bf16(device)
    seeds = [int(s) for _, s in members]
    n_members = len(members)
    c0 = cfgs[0]
    pca = c0.effective_pca_dim
    # each split under each standardisation setting in the stack, standardised batch by batch (Inputs)
    variants = sorted({bool(c.standardize) for c in cfgs})
    preps = {v: Preprocess(data.x_train, v, pca) for v in variants}
    var_idx = torch.tensor([variants.index(bool(c.standardize)) for c in cfgs], device=device)
    # attention pooling: rows are frames, a track is a run of them (Segments), the stack pools each batch's tracks
    att = data.attention
    plist = [preps[v] for v in variants]
    xtr, xva = Inputs(data.x_train, plist, att, device), Inputs(data.x_val, plist, att, device)
    scale = target_scale(data)  # regression: probes fit standardised targets
    ytr, yva = _targets(data.y_train, task, scale), _targets(data.y_val, task, scale)
    seg_tr = seg_va = None
    if att:
        seg_tr, seg_va = Segments(data.train_counts, device), Segments(data.val_counts, device)  # type: ignore[arg-type]
    ytr, yva = ytr.to(device), yva.to(device)
    # a multilabel data set annotating some labels per track: losses over the annotated pairs only
    mtr = mva = None
    if task == "multilabel_classification":
        (ytr, mtr), (yva, mva) = split_mask(ytr), split_mask(yva)
    # prediction-level aggregation: validation rows are frames, judged per track on their mean scores
    vgroups = None if data.val_groups is None else torch.from_numpy(np.array(data.val_groups)).to(device)
    n, d = (len(seg_tr) if seg_tr is not None else xtr.shape[1]), xtr.shape[2]
    n_out = data.n_outputs
    heads = heads_of(c0, data)
    width = d * max(1, heads)  # the first layer's input: the pooled heads side by side
    hidden = resolve_hidden_units(c0.hidden_units, width, n_out)
    batch = int(c0.batch_size)
    gens = [torch.Generator().manual_seed(s) for s in seeds]  # weights and dropout masks
    model = StackedMLP(
        [width, *hidden, n_out],
        gens,
        dropout=[c.dropout for c in cfgs],
        input_dropout=[c.effective_input_dropout for c in cfgs],
        hidden_norm=c0.hidden_norm,
        init=[c.init for c in cfgs],
        device=device,
        precision=c0.precision,
        attention=heads,
    )
    opt = StackedOptimizer(
        c0.optimizer, model.parameters(), [c.learning_rate for c in cfgs], [c.weight_decay for c in cfgs]
    )
    order_gens = {s: torch.Generator().manual_seed(s) for s in sorted(set(seeds))}  # data order
    weights = _sampling_weights(np.asarray(data.y_train), task) if c0.train_sampling == "balanced" else None
    crit = [criterion_of(c, task) for c in cfgs]
    epochs = [min(c.epochs, max_epochs) if max_epochs else c.epochs for c in cfgs]
    max_steps = [c.max_steps or math.inf for c in cfgs]
    # some member may stop inside an epoch (its step budget, max_steps): the per-step bookkeeping of who trains
    budgeted = any(math.isfinite(v) for v in max_steps)
    val_every = int(c0.val_every)
    # lr_schedule / warmup_steps: each member's rate is set before every step, over its own budget of steps
    per_epoch = math.ceil(n / batch)
    budgets = [
        int(min(max_steps[m], epochs[m] * per_epoch)) if c.lr_schedule != "constant" or c.warmup_steps else None
        for m, c in enumerate(cfgs)
    ]
    scheduled = any(b is not None for b in budgets)  # no per-step work for stacks without a schedule

    best = [(-math.inf if mode == "max" else math.inf) for _, mode in crit]
    best_epoch = [0] * n_members
    best_state: list[list[torch.Tensor] | None] = [None] * n_members
    since = [0] * n_members
    # ReduceLROnPlateau (lr_decay_patience): its own best (a relative improvement of 1e-4 counts) and bad validations
    plateau = [(-math.inf if mode == "max" else math.inf) for _, mode in crit]
    bad = [0] * n_members
    history: list[list[dict[str, float]]] = [[] for _ in range(n_members)]
    failed: list[str | None] = [None] * n_members
    stopped: list[str | None] = [None] * n_members
    latest: dict[int, float] = {}  # member → this validation's criterion (successive halving ranks by it)
    next_rung: dict[int, int] = {}  # halving group → index k of its next rung
    done_epochs = [0] * n_members
    done_steps = [0] * n_members
    active = list(range(n_members))  # stack position → member
    frozen: set[int] = set()  # members that reached their step budget inside an epoch
    steps = 0
    epoch = 0
    while active:
        epoch += 1
        act_seeds = [seeds[m] for m in active]
        orders = {}
        for s in sorted(set(act_seeds)):
            g = order_gens[s]
            orders[s] = (
                torch.multinomial(weights, n, True, generator=g)
                if weights is not None
                else torch.randperm(n, generator=g)
            )
        perm = torch.stack([orders[s] for s in act_seeds]).to(device)
        vidx = var_idx[active]
        # one seed in the stack: every probe sees the same rows, gathered once per preprocessing variant
        one_order = len(set(act_seeds)) == 1
        loss_sum = torch.zeros(len(active), device=device)
        # 1 while a member trains, 0 once it reached its step budget: its loss and rows stop counting there
        live = torch.ones(len(active), device=device)
        rows = torch.zeros(len(active), device=device)
        at_budget: dict[int, list[torch.Tensor]] = {}  # stack position → its batchnorm statistics at its budget
        for start in range(0, n, batch):  # the last partial batch is kept
            ib = perm[:, start : start + batch]
            if seg_tr is not None:
                pooled = _pooled(model, xtr, seg_tr, ib, act_seeds, vidx.tolist())
                logits = model.forward(pooled, train=True)
            elif one_order:
                logits = model.forward(xtr.every_variant(ib[0]), train=True, shared=vidx)
            else:
                logits = model.forward(xtr.take(ib, 0) if len(variants) == 1 else xtr.take(ib, vidx), train=True)
            losses = member_losses(logits, ytr[ib], task, None if mtr is None else mtr[ib])
            losses.sum().backward()
            for pos, m in enumerate(active) if scheduled else ():
                if budgets[m] is not None and m not in frozen:
                    opt.lr[pos] = scheduled_lr(cfgs[m], steps, budgets[m])  # type: ignore[arg-type]
            opt.step(model.parameters())
            steps += 1
            # the epoch's mean loss: over its rows, or (masked) over its annotated pairs
            count = ib.shape[1] if mtr is None else mtr[ib].sum((1, 2)).to(loss_sum.dtype)
            if not budgeted:  # every member trains the whole epoch: live stays 1 (x * 1 == x, bit for bit)
                loss_sum += losses.detach() * count
                rows += count
                continue
            loss_sum += losses.detach() * count * live
            rows += count * live
            for pos, m in enumerate(active):
                if m not in frozen and steps >= max_steps[m]:
                    frozen.add(m)  # no further updates: lr 0 leaves Adam, AdamW and SGD parameters unchanged
                    opt.lr[pos] = 0.0
                    live[pos] = 0.0
                    at_budget[pos] = [t[pos].clone() for t in model.buffers()]
            if not live.any():  # every member reached its budget: the rest of the epoch would change nothing
                break
        for pos, saved in at_budget.items():  # batches after its budget must not move a member's running statistics
            for t, v in zip(model.buffers(), saved, strict=True):
                t[pos] = v
        train_loss = (loss_sum / rows).tolist()
        due = [pos for pos, m in enumerate(active) if epoch % val_every == 0 or epoch >= epochs[m] or m in frozen]
        finished: list[int] = []
        if due:
            logits = _forward_pooled(model, xva, seg_va, vidx) if seg_va is not None else _forward_all(model, xva, vidx)
            scores = None
            if vgroups is None:
                yv = yva.unsqueeze(0).expand(len(active), *yva.shape)
                vloss = member_losses(logits, yv, task, None if mva is None else mva.unsqueeze(0)).tolist()
            else:
                agg = aggregate_scores(scores_of(logits, task), vgroups, len(yva))
                vloss = aggregated_losses(agg, yva, task, mva).tolist()
                logits, scores = agg, agg.cpu().numpy()  # argmax of mean probabilities, below
            acc = (logits.argmax(-1) == yva).float().mean(1).tolist() if is_single_label(task) else None
            recs = []
            for pos in due:
                m = active[pos]
                name, mode = crit[m]
                if not (math.isfinite(train_loss[pos]) and math.isfinite(vloss[pos])):
                    failed[m] = f"non-finite loss at epoch {epoch}"
                    finished.append(pos)
                    continue
                if name == "val_loss":
                    value = vloss[pos]
                elif name == "val_accuracy" and acc is not None:
                    value = acc[pos]
                else:
                    if scores is None:
                        scores = scores_of(logits, task).cpu().numpy()
                    value = criterion_value(
                        name, task, data.y_val, unscaled(scores[pos], scale), vloss[pos], data.classes
                    )
                rec = {"epoch": epoch, "train_loss": train_loss[pos], "val_loss": vloss[pos], "val_criterion": value}
                latest[m] = value
                improved = value > best[m] if mode == "max" else value < best[m]
                if improved:
                    best[m], best_epoch[m], since[m] = value, epoch, 0
                    best_state[m] = model.snapshot(torch.tensor([pos], device=device))
                else:
                    since[m] += 1
                if cfgs[m].lr_decay_patience is not None:
                    _plateau_step(opt, pos, m, value, mode, cfgs[m], plateau, bad)
                rec["best_criterion"] = best[m]
                history[m].append(rec)
                recs.append((ids[m], rec))
                # Keras' and Lightning's rule: a validation that improved never stops a probe (patience 0 stops at
                # the first one that does not improve, not after the first validation)
                if (not improved and since[m] >= cfgs[m].patience) or epoch >= epochs[m] or m in frozen:
                    finished.append(pos)
            if halving is not None:
                _halve(epoch, active, due, finished, halving, crit, latest, next_rung, epochs, stopped)
            if on_validation is not None and recs:
                on_validation(epoch, recs)
        for m in active:
            done_epochs[m] = epoch
            done_steps[m] = int(min(steps, max_steps[m]))
        if finished:
            keep = [pos for pos in range(len(active)) if pos not in set(finished)]
            active = [active[pos] for pos in keep]
            if active:
                kt = torch.tensor(keep, device=device)
                model.select(kt)
                opt.select(kt)

    seconds = (time.perf_counter() - t0) / n_members
    results: list[TrainResult] = []
    for m in range(n_members):
        if failed[m] is None and best_state[m] is None:
            failed[m] = "no validation score was ever finite"
        state: dict[str, Any] = {}
        if best_state[m] is not None:
            c = cfgs[m]
            state = model.export(0, best_state[m], dropout=c.dropout, input_dropout=c.effective_input_dropout)
        results.append(
            TrainResult(
                best_epoch[m], best[m], history[m], state, {}, failed[m], done_epochs[m], done_steps[m], seconds,
                stopped[m],  # a member ASHA stopped had finished: it cannot fail afterwards
            )
        )  # fmt: skip
    if evaluate_tests and data.tests:
        ok = [m for m in range(n_members) if failed[m] is None]
        if ok:
            snaps = [best_state[m] for m in ok]
            model.load_snapshot([torch.cat(parts) for parts in zip(*snaps, strict=True)])  # type: ignore[misc]
            vsel = var_idx[ok]
            for sid, (x, _, _) in data.tests.items():
                xs = Inputs(x, plist, att, device)
                if att:
                    logits = _forward_pooled(model, xs, Segments(data.test_counts[sid], device), vsel)
                else:
                    logits = _forward_all(model, xs, vsel)
                sc = data.track_scores(sid, unscaled(scores_of(logits, task).cpu().numpy(), scale))
                for pos, m in enumerate(ok):
                    results[m].test_scores[sid] = sc[pos]
    return results


def scheduled_lr(cfg: Any, step: int, budget: int) -> float:
    """The learning rate of optimiser step ``step`` (counted from 0, as Keras counts ``iterations``) of a probe that
    trains ``budget`` steps: ``warmup_steps`` of linear warm-up from 0 (MULE's ``WarmupSchedule``, Keras'
    ``PolynomialDecay`` from 0 to ``learning_rate``), then ``learning_rate`` (``constant``) or Keras'
    ``CosineDecay(learning_rate, budget - warmup_steps, alpha=0)`` of ``step - warmup_steps`` (``cosine``)."""
    lr, warm = float(cfg.learning_rate), int(cfg.warmup_steps)
    if step < warm:
        return lr * step / warm
    decay = budget - warm
    if cfg.lr_schedule == "cosine" and decay > 0:
        return lr * 0.5 * (1.0 + math.cos(math.pi * min(step - warm, decay) / decay))
    return lr


#: ReduceLROnPlateau's defaults: a relative improvement threshold, and the smallest change of learning rate applied
PLATEAU_THRESHOLD, PLATEAU_EPS = 1e-4, 1e-8


def _plateau_step(
    opt: StackedOptimizer, pos: int, m: int, value: float, mode: str, cfg: Any, best: list[float], bad: list[int]
) -> None:
    """One ``torch.optim.lr_scheduler.ReduceLROnPlateau.step(value)`` for member ``m`` (stack position ``pos``):
    ``threshold_mode="rel"``, no cooldown, no minimum learning rate."""
    better = value > best[m] * (1 + PLATEAU_THRESHOLD) if mode == "max" else value < best[m] * (1 - PLATEAU_THRESHOLD)
    if better:
        best[m], bad[m] = value, 0
    else:
        bad[m] += 1
    if bad[m] > cfg.lr_decay_patience:
        old = float(opt.lr[pos])
        new = old * cfg.lr_decay_factor
        if old - new > PLATEAU_EPS:
            opt.lr[pos] = new
        bad[m] = 0


def _halve(
    epoch: int,
    active: list[int],
    due: list[int],
    finished: list[int],
    halving: list[Halving | None],
    crit: list[tuple[str, str]],
    latest: dict[int, float],
    next_rung: dict[int, int],
    epochs: list[int],
    stopped: list[str | None],
) -> None:
    """Apply :class:`Halving` after a validation: append the stack positions it stops to ``finished``."""
    done = set(finished)
    groups: dict[int, list[tuple[int, Halving]]] = {}  # group → (stack position, its Halving)
    for pos in due:
        hp = halving[active[pos]]
        if hp is not None and pos not in done:
            groups.setdefault(hp.group, []).append((pos, hp))
    for group, entries in groups.items():
        h = entries[0][1]
        positions = [pos for pos, _ in entries]
        limit = min(h.max_t or math.inf, max(epochs[active[p]] for p in positions))
        k = next_rung.get(group, 0)
        if epoch < h.rung(k) or h.rung(k) >= limit:
            continue
        while h.rung(k) <= epoch:  # a validation every few epochs may pass several rungs at once
            k += 1
        next_rung[group] = k
        by_point: dict[int, list[int]] = {}
        for pos, hp in entries:
            by_point.setdefault(hp.point, []).append(pos)
        sign = 1.0 if crit[active[positions[0]]][1] == "max" else -1.0
        scores = {}
        for point, pos_list in by_point.items():
            vals = [sign * latest[active[p]] for p in pos_list]
            scores[point] = float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else -math.inf
        ranked = sorted(by_point, key=lambda pt: (-scores[pt], pt))
        for point in ranked[math.ceil(len(ranked) / h.eta) :]:
            for pos in by_point[point]:
                finished.append(pos)
                stopped[active[pos]] = f"stopped by ASHA at epoch {epoch}"


#: the last few fits :func:`predict` made: (id of the training split, setting) → (the split, its Preprocess)
_FITS: dict[tuple[int, bool, int | None], tuple[weakref.ref, Preprocess]] = {}


def _fitted(x: np.ndarray, standardize: bool, pca_dim: int | None) -> Preprocess:
    """``Preprocess(x, standardize, pca_dim)``, fitted once per training split and setting: ``select: best`` scores
    every seed's checkpoint on every test scenario, each call refitting the same statistics (a PCA's SVD of the whole
    split). Keyed by the array's identity, held by a weak reference (a new split is never served an old fit)."""
    key = (id(x), standardize, pca_dim)
    hit = _FITS.get(key)
    if hit is not None and hit[0]() is x:
        return hit[1]
    prep = Preprocess(x, standardize, pca_dim)
    if len(_FITS) >= 8:
        _FITS.pop(next(iter(_FITS)))
    _FITS[key] = (weakref.ref(x), prep)
    return prep


def predict(
    cfg: Any, data: ProbeData, state_dict: dict[str, Any], x: np.ndarray, counts: np.ndarray | None = None
) -> np.ndarray:
    """Scores of a trained probe (a :class:`~repeval.probes.model.Probe` state dict) on raw embeddings ``x``
    (with ``counts``, for an attention probe: ``x`` holds frames, ``counts`` each track's number of them, and
    there is one row of scores per track).

    The preprocessing is refitted on ``data.x_train`` (and a regression's target scale on ``data.y_train``: it is
    deterministic), so a checkpoint holds only the probe's weights.
    """
    prep = _fitted(data.x_train, bool(cfg.standardize), cfg.effective_pca_dim)
    with torch.random.fork_rng(devices=[]):
        probe = build_probe(
            cfg, prep.output_dim, data.n_outputs, attention=heads_of(cfg, data) if counts is not None else 0
        )
    probe.load_state_dict(state_dict)
    probe.eval()
    z = _preprocessed(x, [prep], pad=counts is not None)[0]
    with torch.no_grad():
        if counts is None:
            return unscaled(scores_of(probe(z), data.task_type).numpy(), target_scale(data))
        seg, frames = Segments(counts), z
        out = []
        for s in range(0, len(seg), 256):
            idx, mask = seg.batch(torch.arange(s, min(len(seg), s + 256)))
            out.append(scores_of(probe(frames[idx], mask), data.task_type))
        return unscaled(torch.cat(out).numpy(), target_scale(data))
