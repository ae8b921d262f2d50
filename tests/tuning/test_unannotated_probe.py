"""End to end from a rows table to test metrics, for a multilabel data set that annotates only some labels per
track (OpenMIC-2018): rows with an ``observed`` column → probe data from a real store partition → probe training
→ metrics over the annotated pairs. Counting the unannotated pairs as absent — many of them are positives — teaches
the probe that a rarely annotated tag is rare: its scores shrink, which the micro average (pooling every tag's
annotated pairs) and the loss see, and which scores measurably worse."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from repeval.config.probe import ProbeConfig
from repeval.datasets.base import OBSERVED
from repeval.metrics import compute_metrics
from repeval.probes import train_probe
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import embedding_schema
from repeval.tuning import trial
from repeval.tuning.data import probe_data

ML = "multilabel_classification"


def table(tmp_path, n: int = 500) -> tuple[EmbeddingStore, pa.Table]:
    """Two tags, each present where its embedding dimension is positive: ``a`` annotated on every track, ``b`` on a
    random quarter of them (OpenMIC's instruments differ as much in how often they are annotated)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    ids = [f"t{i:03d}" for i in range(n)]
    splits = [("train", "train", "train", "validation", "test")[i % 5] for i in range(n)]
    b_annotated = rng.random(n) < 0.25
    observed = [["a", "b"] if seen else ["a"] for seen in b_annotated]
    labels = [
        [t for j, t in enumerate(("a", "b")) if row[j] > 0 and t in obs] for row, obs in zip(x, observed, strict=True)
    ]
    rows = pa.table({"track_id": ids, "split": splits, "label": labels, OBSERVED: observed})
    store = EmbeddingStore(str(tmp_path / "store"))
    write_partition(store, "clean", ids, splits, x)
    return store, rows


def write_partition(store: EmbeddingStore, scenario: str, ids: list[str], splits: list[str], x: np.ndarray) -> None:
    schema = embedding_schema(3, keep_frames=False)
    writer = PartitionWriter(store.partition("ds", "m", scenario), schema, 128)
    cols = {"track_id": pa.array(ids), "split": pa.array(splits),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), 3)}  # fmt: skip
    writer.add_table(pa.table([cols.get(f.name, pa.nulls(len(ids), f.type)) for f in schema], schema=schema))
    writer.flush()


def test_masking_unannotated_pairs_scores_better_than_counting_them_absent(tmp_path):
    store, rows = table(tmp_path)
    masked = probe_data(ML, rows, store, "ds", "m", [])
    absent = probe_data(ML, rows.drop_columns([OBSERVED]), store, "ds", "m", [])
    y_test = masked.tests["clean"][1]
    assert np.isnan(y_test).any() and not np.isnan(absent.tests["clean"][1]).any()
    cfg = ProbeConfig(hidden_units=[], learning_rate=0.05, batch_size=32, epochs=30, patience=30)
    got = {}
    for name, data in (("mask", masked), ("absent", absent)):
        scores = train_probe(cfg, data, 0).test_scores["clean"]
        # both scored by the official protocol: on the pairs the test tracks annotate
        rows_ = compute_metrics(["roc_auc_micro", "roc_auc_macro"], ML, y_test, scores, data.classes)
        got[name] = {r.metric: r.value for r in rows_ if r.label is None}
        got[name]["b"] = float(np.median(scores[y_test[:, 1] == 1, 1]))  # the score of b's annotated positives
    assert got["mask"]["roc_auc_micro"] > 0.97 and got["mask"]["b"] > 0.7
    assert got["absent"]["b"] < 0.5, got  # b's positives mostly scored as absent
    assert got["mask"]["roc_auc_micro"] - got["absent"]["roc_auc_micro"] > 0.05, got


def test_per_label_rows_count_the_test_tracks_annotating_their_label(tmp_path):
    """``n_test`` of a per-label row is the test tracks its value is over: for a label only some tracks annotate,
    those (b's are about a quarter of the test set), not every test track; ``n_delta`` likewise, on the tracks a
    deformed test set shares with clean (here all but the first test track, whose deformation failed)."""
    store, rows = table(tmp_path, 200)
    test = [i for i, s in enumerate(rows.column("split").to_pylist()) if s == "test"]
    ids = [rows.column("track_id")[i].as_py() for i in test[1:]]
    write_partition(store, "noise", ids, ["test"] * len(ids), np.zeros((len(ids), 3), np.float32))
    data = probe_data(ML, rows, store, "ds", "m", ["noise"])
    rng = np.random.default_rng(1)
    scores = {sid: rng.random((len(t[2]), 2)) for sid, t in data.tests.items()}
    out, _ = trial.test_rows(data, scores, trial.EvalSettings(["roc_auc_macro", "f1_macro@0.3"], 0, 0.05, 0, None))
    assert {r["metric"] for r in out} == {"roc_auc_macro", "f1_macro@0.3"}  # a threshold's rows: named with it
    y_clean, y_noise = data.tests["clean"][1], data.tests["noise"][1]
    n_b = int((~np.isnan(y_clean[:, 1])).sum())
    assert 0 < n_b < len(y_clean) // 2 and data.classes == ["a", "b"]
    noise_b = int((~np.isnan(y_noise[:, 1])).sum())
    want = {
        ("clean", None): (len(y_clean), None), ("clean", "a"): (len(y_clean), None), ("clean", "b"): (n_b, None),
        ("noise", None): (len(y_noise),) * 2, ("noise", "a"): (len(y_noise),) * 2, ("noise", "b"): (noise_b,) * 2,
    }  # fmt: skip
    assert {(r["scenario"], r["label"]): (r["n_test"], r["n_delta"]) for r in out} == want
    assert len(y_noise) == len(y_clean) - 1
