"""The probe training loop: one criterion for early stopping *and* checkpoint selection.

mir_ref stopped on ``val_loss`` but kept the best ``val_auc`` model; here the configured
criterion (default per task type) decides both. The last partial batch is never dropped.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from repeval.probes.model import build_probe
from repeval.tasks import TASK_TYPES


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


@dataclass
class TrainResult:
    best_epoch: int
    best_criterion: float
    history: list[dict[str, float]]
    state_dict: dict[str, Any]
    #: scenario → (n, C) scores (probabilities, or predictions for regression)
    test_scores: dict[str, np.ndarray]
    failed: str | None = None


class _Preprocess:
    """Standardisation and PCA fitted on the training split only."""

    def __init__(self, x: np.ndarray, standardize: bool, pca_dim: int | None) -> None:
        self.mean = x.mean(0) if standardize or pca_dim else np.zeros(x.shape[1], np.float32)
        self.std = x.std(0) + 1e-8 if standardize else np.ones(x.shape[1], np.float32)
        self.components = None
        if pca_dim:
            z = (x - self.mean) / self.std
            k = min(pca_dim, z.shape[0], z.shape[1])
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            self.components = vt[:k].T.astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.std).astype(np.float32)
        return z @ self.components if self.components is not None else z


def criterion_value(name: str, task_type: str, y: np.ndarray, scores: np.ndarray, loss: float, classes: list[str]) -> float:
    if name == "val_loss":
        return loss
    from repeval.metrics import compute_metrics

    metric = name.removeprefix("val_")
    rows = compute_metrics([metric], task_type, y, scores, classes)
    return next(r.value for r in rows if r.label is None and r.metric == metric)


def train_probe(
    cfg: Any,
    data: ProbeData,
    seed: int,
    report: Callable[[dict[str, float]], None] | None = None,
    device: str = "cpu",
) -> TrainResult:
    """Train one probe configuration; returns the selected checkpoint's test scores."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    spec = TASK_TYPES[data.task_type]
    crit_name = cfg.save_criterion or spec.default_criterion
    mode = "min" if crit_name == "val_loss" else "max"  # every metric criterion is higher-is-better
    pca_dim = int(cfg.emb_shape) if cfg.emb_dim_reduction and cfg.emb_shape != "infer" else None
    prep = _Preprocess(data.x_train, cfg.standardize, pca_dim)
    xt = torch.from_numpy(prep(data.x_train))
    xv = torch.from_numpy(prep(data.x_val))
    multiclass = data.task_type in ("multiclass_classification", "key_estimation")
    yt = torch.from_numpy(data.y_train.astype(np.int64 if multiclass else np.float32))
    yv = torch.from_numpy(data.y_val.astype(np.int64 if multiclass else np.float32))
    n_out = len(data.classes) if data.task_type != "regression" else (data.y_train.shape[1] if data.y_train.ndim > 1 else 1)
    model = build_probe(cfg, xt.shape[1], n_out).to(device)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if multiclass else nn.BCEWithLogitsLoss() if data.task_type == "multilabel_classification" else nn.MSELoss()
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[cfg.optimizer]
    opt = opt_cls(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def scores_of(logits: torch.Tensor) -> np.ndarray:
        if multiclass:
            return torch.softmax(logits, 1).cpu().numpy()
        if data.task_type == "multilabel_classification":
            return torch.sigmoid(logits).cpu().numpy()
        return logits.cpu().numpy()

    best = -math.inf if mode == "max" else math.inf
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, since = 0, 0
    history: list[dict[str, float]] = []
    n = len(xt)
    xt_d, yt_d, xv_d, yv_d = xt.to(device), yt.to(device), xv.to(device), yv.to(device)
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for start in range(0, n, cfg.batch_size):  # the last partial batch is kept
            idx = perm[start : start + cfg.batch_size]
            opt.zero_grad()
            out = model(xt_d[idx])
            loss = loss_fn(out.squeeze(-1) if data.task_type == "regression" and n_out == 1 else out, yt_d[idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        train_loss = total / n
        model.eval()
        with torch.no_grad():
            vout = model(xv_d)
            vloss = float(loss_fn(vout.squeeze(-1) if data.task_type == "regression" and n_out == 1 else vout, yv_d))
        if not math.isfinite(train_loss) or not math.isfinite(vloss):
            return TrainResult(best_epoch, best, history, best_state, {}, failed=f"non-finite loss at epoch {epoch}")
        crit = criterion_value(crit_name, data.task_type, data.y_val, scores_of(vout), vloss, data.classes)
        rec = {"epoch": epoch, "train_loss": train_loss, "val_loss": vloss, "val_criterion": crit}
        history.append(rec)
        improved = crit > best if mode == "max" else crit < best
        if improved:
            best, best_epoch, since = crit, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
        if report is not None:
            report({**rec, "best_criterion": best})
        if since > cfg.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    test_scores = {}
    with torch.no_grad():
        for sid, (x, _, _) in data.tests.items():
            test_scores[sid] = scores_of(model(torch.from_numpy(prep(x)).to(device)))
    return TrainResult(best_epoch, best, history, best_state, test_scores)
