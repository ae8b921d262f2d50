"""``embedding_aggregation: attention``: a probe pools each track's frame-level embeddings with learned attention
weights (one query per probe, starting at mean pooling) and predicts once per track."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from repeval.config.probe import ProbeConfig
from repeval.probes import predict, train_probe, train_probes
from repeval.probes.inputs import Segments
from repeval.probes.model import attention_pool
from repeval.probes.synthetic import marked_frame_probe_data


def with_padding_row(x: torch.Tensor) -> torch.Tensor:
    """``(V, n, d)`` frames → ``(V, n + 1, d)``: the zero row :meth:`Segments.batch` pads with."""
    return torch.cat([x, x.new_zeros(x.shape[0], 1, x.shape[2])], 1)


def test_attention_pool_weighs_real_frames_only_and_a_zero_query_is_the_mean():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(9, 5, generator=gen)
    seg = Segments(np.array([4, 2, 3]))
    idx, mask = seg.batch(torch.tensor([1, 0, 2]))
    assert idx.shape == (3, 4) and mask.sum(1).tolist() == [2, 4, 3]
    x = with_padding_row(frames.unsqueeze(0))[0][idx]
    assert x[~mask].abs().sum() == 0  # padding points at the zero row
    pooled = attention_pool(x, mask, torch.zeros(1, 5))[0]
    torch.testing.assert_close(pooled, torch.stack([frames[4:6].mean(0), frames[0:4].mean(0), frames[6:9].mean(0)]))
    # a query along one axis weighs the frames by softmax of their values there; padding gets no weight even
    # when its score would be the largest
    q = torch.zeros(2, 5)
    q[1, 0] = 3.0
    out = attention_pool(x, mask, q)
    w = torch.softmax(3.0 * frames[4:6, 0], 0)
    torch.testing.assert_close(out[1, 0], w @ frames[4:6])
    torch.testing.assert_close(out[0], pooled)  # each probe pools with its own query


def test_attention_learns_the_class_that_mean_embeddings_hide():
    """Every track holds one frame per class direction; only the marked frame says which is its class. Mean
    embeddings are the same for every track (chance), attention finds the marked frame."""
    cfg = ProbeConfig(hidden_units=[], learning_rate=1e-2, batch_size=32, epochs=60, patience=10)
    framed, mean = marked_frame_probe_data(), marked_frame_probe_data(attention=False)
    y = framed.tests["clean"][1]
    by_attention, by_mean = (train_probes([(cfg, 0)], d)[0] for d in (framed, mean))
    assert by_attention.test_scores["clean"].shape == (len(y), 4)  # one score row per track, not per frame
    acc_att = float((by_attention.test_scores["clean"].argmax(1) == y).mean())
    acc_mean = float((by_mean.test_scores["clean"].argmax(1) == y).mean())
    assert acc_att >= 0.9 and acc_mean <= 0.45, (acc_att, acc_mean)
    assert by_attention.best_criterion >= 0.9  # validation judged per track
    # the learned query points at the marker axis: the marked frame takes most of a track's weight
    query = by_attention.state_dict["query"][0]
    assert int(query.abs().argmax()) == framed.x_train.shape[1] - 1


def test_attention_probes_stack_like_one_by_one_and_their_checkpoints_predict_the_same():
    data = marked_frame_probe_data(n=120, seed=2)
    cfgs = [
        ProbeConfig(
            hidden_units=h,
            learning_rate=1e-2,
            batch_size=32,
            epochs=12,
            patience=4,
            standardize=st,
            dropout=p,
            dropout_input=True,
            attention_heads=heads,
        )
        for h in ([], ["infer"])
        for st in (False, True)
        for p in (0.0, 0.25)
        for heads in (1, 2)
    ]
    members = [(c, s) for c in cfgs for s in (0, 1)]  # two data orders and two preprocessing variants per stack
    together = train_probes(members, data)
    x, _, _ = data.tests["clean"]
    counts = data.test_counts["clean"]
    for (cfg, seed), r in zip(members, together, strict=True):
        assert r.failed is None
        alone = train_probe(cfg, data, seed)
        assert r.best_epoch == alone.best_epoch
        assert [h["val_loss"] for h in r.history] == pytest.approx([h["val_loss"] for h in alone.history], rel=1e-5)
        np.testing.assert_allclose(r.test_scores["clean"], alone.test_scores["clean"], atol=1e-5)
        d = data.x_train.shape[1]
        assert r.state_dict["query"].shape == (cfg.attention_heads, d)
        assert r.state_dict["query"].abs().sum() > 0  # the queries were trained, and exported with the checkpoint
        # the heads' pooled vectors side by side are the layers' input; infer sizes follow that width
        first = r.state_dict["net.1.weight" if cfg.dropout else "net.0.weight"]
        assert first.shape[1] == cfg.attention_heads * d
        if cfg.hidden_units:
            assert first.shape[0] == (18 if cfg.attention_heads == 2 else 10)  # c + (width - c) / 2: 4 + 28/2, 4 + 12/2
        # the checkpoint alone (as select: best and later evaluations load it) gives the same per-track scores
        np.testing.assert_allclose(predict(cfg, data, r.state_dict, x, counts), r.test_scores["clean"], atol=1e-5)
    # a track's scores do not depend on the longer tracks padded beside it: score the tracks one at a time
    cfg, r = cfgs[0], together[0]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    singles = np.concatenate(
        [predict(cfg, data, r.state_dict, x[s : s + c], np.array([c])) for s, c in zip(starts, counts, strict=True)]
    )
    np.testing.assert_allclose(singles, r.test_scores["clean"], atol=1e-6)


def test_a_run_with_attention_pooling_end_to_end(ray_session, frames_run):
    """The real engine: frames kept by default, probes pool each note's frames, judged and tested per note on
    clean and deformed audio, including a select: best grid tested from its checkpoint."""
    from repeval.tuning.data import probe_data

    _, _, ctx = frames_run.embed("attention", "att")

    table = ctx.rows[(0, "notes")]
    data = probe_data("multiclass_classification", table, ctx.store, "notes", "mfcc-frames", ["D1"], "attention")
    mean = probe_data("multiclass_classification", table, ctx.store, "notes", "mfcc-frames", ["D1"])
    assert data.attention and data.val_groups is None
    np.testing.assert_array_equal(data.y_train, mean.y_train)  # one label per training track, not per frame
    assert len(data.x_train) == int(data.train_counts.sum()) and len(data.train_counts) == len(mean.y_train)
    for sid in ("clean", "D1"):
        x, y, ids = data.tests[sid]
        assert ids == mean.tests[sid][2] and len(y) == 8
        stored = pq.read_table(frames_run.store / "notes" / "mfcc-frames" / sid)
        n_frames = dict(zip(stored.column("track_id").to_pylist(), stored.column("n_frames").to_pylist(), strict=True))
        assert data.test_counts[sid].tolist() == [n_frames[t] for t in ids] and min(n_frames.values()) >= 4
        # a zero query pools a track's frames into its stored (mean) embedding
        seg = Segments(data.test_counts[sid])
        idx, mask = seg.batch(torch.arange(len(ids)))
        pooled = attention_pool(with_padding_row(torch.from_numpy(x)[None])[0][idx], mask, torch.zeros(1, x.shape[1]))
        np.testing.assert_allclose(pooled[0].numpy(), mean.tests[sid][0], rtol=1e-5, atol=1e-5)

    frames_run.train_and_evaluate(ctx, "attention")
    # the select: best grid searched one and two heads (× two learning rates) and tested the one validation picked
    probes = pd.read_parquet(ctx.run_dir / "probes" / "instrument__notes__mfcc-frames.parquet")
    picked = probes[probes["spec"] == "picked"]
    params = [json.loads(p) for p in picked["params"]]
    assert sorted({(p["learning_rate"], p["attention_heads"]) for p in params}) == [
        (0.003, 1), (0.003, 2), (0.01, 1), (0.01, 2)
    ]  # fmt: skip
    assert picked["selected"].sum() == 1


def test_attention_heads_enter_tune_fingerprints_only_when_set():
    """An experiment interrupted before ``attention_heads`` existed still resumes: at its default the key is not
    part of the probe's fingerprint, and it is when set."""
    from repeval.tuning.units import _probe_fingerprint

    plain = _probe_fingerprint(ProbeConfig(hidden_units=[8]))
    assert "attention_heads" not in plain and plain["hidden_units"] == [8]
    assert _probe_fingerprint(ProbeConfig(hidden_units=[8], attention_heads=2))["attention_heads"] == 2
