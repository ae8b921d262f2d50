"""Assemble probe training data from the embedding store (loaded once per dataset × model)."""

from __future__ import annotations

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


def probe_data(
    task_type: str, rows: pa.Table, store: EmbeddingStore, dataset: str, model: str, scenarios: list[str]
) -> ProbeData:
    label_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True))
    split_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True))
    ids, _, x = store.partition(dataset, model, CLEAN).embeddings()
    # reliability (issue 9): store row order is arrival order; sort by track id so training is reproducible
    keep = sorted((i for i, t in enumerate(ids) if t in label_of), key=ids.__getitem__)
    ids = [ids[i] for i in keep]
    x = x[keep]
    # classes come from the whole labelled set so every split shares one encoding
    _, classes = encode(task_type, [label_of[t] for t in label_of])
    y, _ = encode(task_type, [label_of[t] for t in ids], classes)
    split = np.array([split_of[t] for t in ids])

    def take(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        m = split == name
        return x[m], y[m], [t for t, k in zip(ids, m, strict=True) if k]

    xtr, ytr, _ = take("train")
    xva, yva, _ = take("validation")
    tests = {CLEAN: take("test")}
    for sid in scenarios:
        sids, _, sx = store.partition(dataset, model, sid).embeddings()
        m = sorted((i for i, t in enumerate(sids) if split_of.get(t) == "test"), key=sids.__getitem__)  # issue 9
        tids = [sids[i] for i in m]
        sy, _ = encode(task_type, [label_of[t] for t in tids], classes)
        tests[sid] = (sx[m], sy, tids)
    for name, arr in (("train", xtr), ("validation", xva), ("test", tests[CLEAN][0])):
        if len(arr) == 0:
            raise ValueError(empty_split_message(dataset, model, name))
    return ProbeData(task_type, classes, xtr, ytr, xva, yva, tests)
