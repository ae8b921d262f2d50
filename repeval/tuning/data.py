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


class _Reader:
    """A partition's rows as track-level embeddings (``mean``) or frames with their track (``prediction``)."""

    def __init__(self, store: EmbeddingStore, dataset: str, model: str, prediction: bool) -> None:
        self.store, self.dataset, self.model, self.prediction = store, dataset, model, prediction

    def read(self, scenario: str) -> tuple[list[str], Any]:
        part = self.store.partition(self.dataset, self.model, scenario)
        if not self.prediction:
            ids, _, x = part.embeddings()
            return ids, x
        ids, _, flat, counts = part.frames()
        empty = [t for t, c in zip(ids, counts, strict=True) if c == 0]
        if empty:
            raise ValueError(
                f"store partition {part.path}: {len(empty)} track(s) have no frames (e.g. {empty[0]}); "
                "embedding_aggregation: prediction needs at least one frame per track"
            )
        return ids, (flat, counts)

    def take(self, x: Any, rows: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """``(embeddings of rows, None)`` or ``(their frames, track position of each frame)``."""
        if not self.prediction:
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
    ``augment``: scenarios whose deformed training tracks are added to the training rows (after the clean ones,
    scenario by scenario, each in track-id order)."""
    label_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True))
    split_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True))
    reader = _Reader(store, dataset, model, aggregation == "prediction")
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
    if gtr is not None:
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
        ytr = np.concatenate([ytr, ay if ag is None else ay[ag]])
    xva, yva, _, gva = select(*clean, "validation")
    xte, yte, tte, gte = select(*clean, "test")
    tests = {CLEAN: (xte, yte, tte)}
    test_groups = {} if gte is None else {CLEAN: gte}
    for name, arr in (("train", xtr), ("validation", xva), ("test", xte)):
        if len(arr) == 0:
            raise ValueError(empty_split_message(dataset, model, name))
    for sid in scenarios:
        part = read.pop(sid) if sid in read else reader.read(sid)
        xs, sy, tids, group = select(*part, "test")
        tests[sid] = (xs, sy, tids)
        if group is not None:
            test_groups[sid] = group
    return ProbeData(task_type, classes, xtr, ytr, xva, yva, tests, val_groups=gva, test_groups=test_groups)
