"""Assemble probe training data from the embedding store (loaded once per dataset × model)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from repeval.pipeline.stages import CLEAN
from repeval.probes import ProbeData
from repeval.store import EmbeddingStore


def encode(task_type: str, labels: list[list[str]], classes: list[str] | None = None) -> tuple[np.ndarray, list[str]]:
    if task_type == "regression":
        y = np.array([[float(v) for v in lab] for lab in labels], np.float32)
        return y, classes or [f"dim{i}" for i in range(y.shape[1])]
    if classes is None:
        classes = sorted({x for lab in labels for x in lab})
    index = {c: i for i, c in enumerate(classes)}
    if task_type == "multilabel_classification":
        y = np.zeros((len(labels), len(classes)), np.float32)
        for i, lab in enumerate(labels):
            for x in lab:
                if x in index:
                    y[i, index[x]] = 1
        return y, classes
    return np.array([index.get(lab[0], -1) if lab else -1 for lab in labels], np.int64), classes


def empty_split_message(dataset: str, model: str, split: str) -> str:
    return f"{dataset}/{model}: the {split} split has no embedded tracks — check the dataset's splits and errors"


def _frame_rows(counts: np.ndarray, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Indices into a partition's flat frame matrix of the frames of ``rows`` (in that order), and for each
    of them the position of its row in ``rows``."""
    c = counts[rows] if rows else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[rows] if rows else np.zeros(0, np.int64)
    group = np.repeat(np.arange(len(rows)), c)
    within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
    return np.repeat(starts, c) + within, group


#: ``embedding_aggregation`` values whose probes read frame-level embeddings
FRAME_AGGREGATIONS = ("prediction", "attention")


class _Reader:
    """A partition's rows as track-level embeddings (``mean``) or frames with their track (``prediction``,
    ``attention``)."""

    def __init__(self, store: EmbeddingStore, dataset: str, model: str, aggregation: str) -> None:
        self.store, self.dataset, self.model, self.aggregation = store, dataset, model, aggregation
        self.frames = aggregation in FRAME_AGGREGATIONS

    def read(self, scenario: str) -> tuple[list[str], Any]:
        part = self.store.partition(self.dataset, self.model, scenario)
        if not self.frames:
            ids, _, x = part.embeddings()
            return ids, x
        ids, _, flat, counts = part.frames()
        empty = [t for t, c in zip(ids, counts, strict=True) if c == 0]
        if empty:
            raise ValueError(
                f"store partition {part.path}: {len(empty)} track(s) have no frames (e.g. {empty[0]}); "
                f"embedding_aggregation: {self.aggregation} needs at least one frame per track"
            )
        return ids, (flat, counts)

    def take(self, x: Any, rows: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(embeddings of rows, None)`` or ``(their frames, track position of each frame)``."""
        if not self.frames:
            return x[rows], None
        flat, counts = x
        idx, group = _frame_rows(counts, rows)
        return flat[idx], group


def probe_data(
    task_type: str,
    rows: pa.Table,
    store: EmbeddingStore,
    dataset: str,
    model: str,
    scenarios: list[str],
    aggregation: str = "mean",
    augment: list[str] | tuple[str, ...] = (),
) -> ProbeData:
    """Train/validation/test arrays of one (dataset, model) for a task. With ``aggregation`` ``prediction`` the
    rows are frames: training frames carry their track's label; validation and test keep one label per track
    and a track index per frame (``ProbeData.val_groups`` / ``test_groups``) to average predictions over.
    With ``attention`` the rows are frames too, each track's consecutive, and every split keeps one label per
    track and each track's number of frames (``ProbeData.train_counts`` / ``val_counts`` / ``test_counts``).
    ``augment``: scenarios whose deformed training tracks are added to the training rows (after the clean ones,
    scenario by scenario, each in track-id order)."""
    label_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True))
    split_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True))
    if aggregation not in ("mean", *FRAME_AGGREGATIONS):
        raise ValueError(f"unknown aggregation {aggregation!r}; valid: mean, {', '.join(FRAME_AGGREGATIONS)}")
    reader = _Reader(store, dataset, model, aggregation)
    attention = aggregation == "attention"

    def counts(group: np.ndarray | None, n: int) -> np.ndarray:
        return np.bincount(np.asarray(group, np.int64), minlength=n)

    # classes come from the whole labelled set so every split shares one encoding
    _, classes = encode(task_type, [label_of[t] for t in label_of])

    def select(ids: list[str], x: Any, split: str) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]:
        """The rows of a partition's ``split`` tracks: embeddings (or frames and their track), labels, ids."""
        # reliability (issue 9): store row order is arrival order; sort by track id so training is reproducible
        m = sorted((i for i, t in enumerate(ids) if split_of.get(t) == split), key=ids.__getitem__)
        tids = [ids[i] for i in m]
        y, _ = encode(task_type, [label_of[t] for t in tids], classes)
        xs, group = reader.take(x, m)
        return xs, y, tids, group

    clean = reader.read(CLEAN)
    xtr, ytr, _, gtr = select(*clean, "train")
    ctr = [counts(gtr, len(ytr))] if attention else []
    if gtr is not None and not attention:
        ytr = ytr[gtr]  # every training frame carries its track's label
    read = {sid: reader.read(sid) for sid in augment}  # read once: their test rows are taken below too
    for sid in augment:
        axs, ay, atids, ag = select(*read[sid], "train")
        if not atids:
            raise ValueError(
                f"{dataset}/{model}: augment lists {sid!r}, but its store partition holds no deformed training "
                "tracks — run `repeval embed` first (it deforms the training tracks of the scenarios augment lists)"
            )
        xtr = np.concatenate([xtr, axs])
        if attention:
            ctr.append(counts(ag, len(ay)))
        ytr = np.concatenate([ytr, ay if ag is None or attention else ay[ag]])
    xva, yva, _, gva = select(*clean, "validation")
    xte, yte, tte, gte = select(*clean, "test")
    tests = {CLEAN: (xte, yte, tte)}
    groups = {CLEAN: gte} if gte is not None else {}
    sizes = {CLEAN: len(yte)}
    for name, arr in (("train", xtr), ("validation", xva), ("test", xte)):
        if len(arr) == 0:
            raise ValueError(empty_split_message(dataset, model, name))
    for sid in scenarios:
        part = read.pop(sid) if sid in read else reader.read(sid)
        xs, sy, tids, group = select(*part, "test")
        tests[sid] = (xs, sy, tids)
        sizes[sid] = len(sy)
        if group is not None:
            groups[sid] = group
    if attention:
        return ProbeData(
            task_type, classes, xtr, ytr, xva, yva, tests,
            train_counts=np.concatenate(ctr), val_counts=counts(gva, len(yva)),
            test_counts={sid: counts(g, sizes[sid]) for sid, g in groups.items()},
        )  # fmt: skip
    return ProbeData(task_type, classes, xtr, ytr, xva, yva, tests, val_groups=gva, test_groups=groups)
