"""``embedding_aggregation: prediction``: probes train on frames and a track's prediction is the mean of its
frames' predictions — for early stopping and checkpoint selection (validation) as for the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from repeval.config.probe import ProbeConfig
from repeval.probes import ProbeData, train_probes
from repeval.probes.losses import aggregate_scores, aggregated_losses, member_losses, scores_of
from repeval.probes.synthetic import gaussian_probe_data


def _one_frame_per_track(data: ProbeData) -> ProbeData:
    """The same rows, each declared a track of one frame."""
    return ProbeData(
        data.task_type, data.classes, data.x_train, data.y_train, data.x_val, data.y_val, data.tests,
        val_groups=np.arange(len(data.y_val)),
        test_groups={sid: np.arange(len(y)) for sid, (_, y, _) in data.tests.items()},
    )  # fmt: skip


def test_aggregate_scores_is_the_mean_per_group_and_losses_match_logit_losses():
    scores = torch.tensor([[[0.2, 0.8], [0.6, 0.4], [1.0, 0.0]], [[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]]])
    groups = torch.tensor([1, 0, 1])  # frames of track 1, track 0, track 1
    agg = aggregate_scores(scores, groups, 2)
    expected = torch.tensor([[[0.6, 0.4], [0.6, 0.4]], [[0.1, 0.9], [0.4, 0.6]]])
    torch.testing.assert_close(agg, expected)
    # a track without rows gets zeros, not NaN (counts are clamped): callers never ask for one
    assert aggregate_scores(scores, groups, 3)[:, 2].abs().sum() == 0
    # on one frame per track the aggregated losses are the logit losses the mean path computes
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 4, generator=gen)
    y1 = torch.randint(0, 4, (7,), generator=gen)
    ym = (torch.rand(7, 4, generator=gen) > 0.5).float()
    for task, y in (("multiclass_classification", y1), ("multilabel_classification", ym), ("regression", ym)):
        direct = member_losses(logits, y.unsqueeze(0).expand(3, *y.shape), task)
        agg = aggregate_scores(scores_of(logits, task), torch.arange(7), 7)
        torch.testing.assert_close(aggregated_losses(agg, y, task), direct, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("task_type", ["multiclass_classification", "multilabel_classification", "regression"])
def test_one_frame_per_track_trains_exactly_as_mean_aggregation(task_type):
    """Tracks of one frame: the same trajectory, checkpoint and test scores as the mean path, for every head."""
    data = gaussian_probe_data(task_type, n=120)
    cfgs = [
        ProbeConfig(hidden_units=h, learning_rate=3e-3, batch_size=32, epochs=8, patience=3, standardize=True)
        for h in ([], [8])
    ]
    plain = train_probes([(c, 1) for c in cfgs], data)
    framed = train_probes([(c, 1) for c in cfgs], _one_frame_per_track(data))
    for a, b in zip(plain, framed, strict=True):
        assert a.failed is None and b.failed is None
        assert a.best_epoch == b.best_epoch and a.epochs == b.epochs
        assert [h["val_loss"] for h in b.history] == pytest.approx([h["val_loss"] for h in a.history], rel=1e-5)
        for sid in ("clean", "D1"):
            np.testing.assert_array_equal(a.test_scores[sid], b.test_scores[sid])


def _hidden_in_the_mean(seed: int = 0, n: tuple[int, int, int] = (120, 40, 40), d: int = 8, f: int = 4):
    """Tracks of ``f`` frames whose class shows in every frame (energy along axis 0 or axis 1) but not in
    their mean: the frames alternate in sign, so every track's mean embedding is noise."""
    rng = np.random.default_rng(seed)
    axes = np.eye(d)[:2]
    sign = np.tile([1.0, -1.0], f // 2)

    def split(m: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, m)
        amp = rng.uniform(1.5, 2.5, (m, f))
        x = sign[None, :, None] * amp[:, :, None] * axes[y][:, None, :] + rng.normal(0, 0.3, (m, f, d))
        return x.astype(np.float32), y

    (xtr, ytr), (xva, yva), (xte, yte) = (split(m) for m in n)
    ids = [f"t{i}" for i in range(len(yte))]

    def groups(m: int) -> np.ndarray:
        return np.repeat(np.arange(m), f)

    framed = ProbeData(
        "multiclass_classification", ["a", "b"], xtr.reshape(-1, d), np.repeat(ytr, f), xva.reshape(-1, d), yva,
        {"clean": (xte.reshape(-1, d), yte, ids)}, val_groups=groups(len(yva)), test_groups={"clean": groups(len(yte))},
    )  # fmt: skip
    mean = ProbeData(
        "multiclass_classification", ["a", "b"], xtr.mean(1), ytr, xva.mean(1), yva, {"clean": (xte.mean(1), yte, ids)}
    )
    return framed, mean, yte


def test_prediction_aggregation_learns_what_mean_embeddings_hide():
    framed, mean, y_test = _hidden_in_the_mean()
    cfg = ProbeConfig(hidden_units=[32], learning_rate=1e-2, batch_size=32, epochs=40, patience=10)
    by_frames, by_mean = (train_probes([(cfg, 0)], d)[0] for d in (framed, mean))
    assert by_frames.test_scores["clean"].shape == (len(y_test), 2)  # one score row per track, not per frame
    np.testing.assert_allclose(by_frames.test_scores["clean"].sum(1), 1.0, rtol=1e-5)
    acc_frames = float((by_frames.test_scores["clean"].argmax(1) == y_test).mean())
    acc_mean = float((by_mean.test_scores["clean"].argmax(1) == y_test).mean())
    assert acc_frames >= 0.9 and acc_mean <= 0.75, (acc_frames, acc_mean)
    assert by_frames.best_criterion >= 0.9  # validation judged per track too


def test_validation_is_judged_on_the_tracks_mean_prediction():
    """The criterion of every validation equals the accuracy of the kept probe's per-track mean scores."""
    framed, _, _ = _hidden_in_the_mean(seed=3)
    cfg = ProbeConfig(hidden_units=[4], learning_rate=3e-3, batch_size=64, epochs=6, patience=6)
    r = train_probes([(cfg, 2)], framed, evaluate_tests=False)[0]
    from repeval.probes import predict

    frame_scores = predict(cfg, framed, r.state_dict, framed.x_val)
    track = aggregate_scores(torch.from_numpy(frame_scores), torch.from_numpy(framed.val_groups), len(framed.y_val))
    acc = float((track.numpy().argmax(1) == framed.y_val).mean())
    assert r.best_criterion == pytest.approx(acc, abs=1e-12)
    frame_acc = float((frame_scores.argmax(1) == np.repeat(framed.y_val, 4)).mean())
    assert abs(frame_acc - acc) > 0.01  # what a per-frame validation would have recorded instead


def test_a_run_with_prediction_aggregation_end_to_end(ray_session, frames_run, caplog, monkeypatch):
    """The real engine: the store keeps frames (the task's partitions keep them by default), probes train on
    the frames of the training notes and are judged and tested per note, clean and deformed. Before training the
    run says the memory a trial holds for the training frames — their real size — and, past the memory a node has
    (made 1 KiB here), warns once naming the fixes."""
    import logging

    from repeval import plan_memory, runner
    from repeval.config import load_config
    from repeval.tuning.data import probe_data

    cfg_dict, path, ctx = frames_run.embed("prediction", "pred")
    clean = pq.read_table(frames_run.store / "notes" / "mfcc-frames" / "clean")
    n_frames = dict(zip(clean.column("track_id").to_pylist(), clean.column("n_frames").to_pylist(), strict=True))
    assert min(n_frames.values()) >= 4
    assert [len(f) for f in clean.column("frames").to_pylist()] == clean.column("n_frames").to_pylist()

    table = ctx.rows[(0, "notes")]
    split = dict(zip(table.column("track_id").to_pylist(), table.column("split").to_pylist(), strict=True))
    framed = probe_data("multiclass_classification", table, ctx.store, "notes", "mfcc-frames", ["D1"], "prediction")
    mean = probe_data("multiclass_classification", table, ctx.store, "notes", "mfcc-frames", ["D1"])
    assert len(framed.x_train) == sum(n for t, n in n_frames.items() if split[t] == "train")
    assert len(framed.y_train) == len(framed.x_train) and len(framed.y_val) == len(mean.y_val)
    np.testing.assert_array_equal(framed.y_val, mean.y_val)
    # the frames of each validation and test track are that track's: their mean is its stored embedding
    per_track = aggregate_scores(torch.from_numpy(framed.x_val), torch.from_numpy(framed.val_groups), len(mean.y_val))
    np.testing.assert_allclose(per_track.numpy(), mean.x_val, rtol=1e-5, atol=1e-5)
    for sid in ("clean", "D1"):
        x, y, ids = framed.tests[sid]
        assert ids == mean.tests[sid][2] and len(y) == len(ids) == 8
        agg = aggregate_scores(torch.from_numpy(x), torch.from_numpy(framed.test_groups[sid]), len(ids))
        np.testing.assert_allclose(agg.numpy(), mean.tests[sid][0], rtol=1e-5, atol=1e-5)

    asked = []
    monkeypatch.setattr(
        plan_memory, "machine_memory_bytes", lambda cluster=None: asked.append(cluster) or (1024.0, "a 1-KiB node")
    )
    with caplog.at_level(logging.INFO, logger="repeval.plan_memory"):
        frames_run.train_and_evaluate(ctx, "prediction")
    assert len(asked) == 1 and asked[0][plan_memory.NODE_MEMORY] > 2**20, asked  # the Ray node's memory resource
    said = [r for r in caplog.records if r.name == "repeval.plan_memory"]
    assert [r.levelno for r in said] == [logging.INFO, logging.WARNING], [r.getMessage() for r in said]
    n, dim = framed.x_train.shape
    assert framed.x_train.dtype == np.float32 and n * dim * 4 == framed.x_train.nbytes
    assert f"training split's {n:,} frames × {dim} × 4 B" in said[0].getMessage()
    assert "more than a 1-KiB node" in said[1].getMessage() and "embedding_aggregation: mean" in said[1].getMessage()
    # a rerun that trains other grids only (a mean task added, say) says nothing of this one's trials: none runs
    grid = ("instrument", "notes", "mfcc-frames")
    assert plan_memory.frame_memory(ctx.cfg, ctx.store, only={("other", *grid[1:])}) == ([], [])
    assert len(plan_memory.frame_memory(ctx.cfg, ctx.store, only={grid})[1]) == 1
    from repeval.plan import make_plan

    done = make_plan(ctx.cfg, ctx.store, ctx.run_dir)  # the plan of the finished run: nothing of it trains
    assert done.grids_done == done.grids and (done.memory, done.memory_warnings) == ([], []), done.text()

    # the same store serves a task with mean aggregation (no frames asked for): its complete partitions are reused
    cfg_dict["experiments"][0]["task"]["aggregation"] = "mean"
    cfg_dict["run"]["run_id"] = "mean"
    path.write_text(yaml.safe_dump(cfg_dict))
    mean_ctx = runner.make_context(load_config(path))
    assert not mean_ctx.cfg.keeps_frames("notes", "mfcc-frames")
    again = runner.stage_embed(mean_ctx)
    assert again.computed == 0 and again.skipped == 48 + 8
    # ... and an incomplete one is completed with frames (rows without them never join it)
    part = ctx.store.partition("notes", "mfcc-frames", "D1")
    part.reopen()
    lost = pq.read_metadata(part.part_files()[0]).num_rows
    Path(part.part_files()[0]).unlink()  # a local store: part files are plain paths
    assert runner.stage_embed(runner.make_context(load_config(path))).computed == lost
    d1 = pq.read_table(frames_run.store / "notes" / "mfcc-frames" / "D1")
    assert [len(f) for f in d1.column("frames").to_pylist()] == d1.column("n_frames").to_pylist()


def _long_and_short_tracks(n: int = 40, long: int = 12) -> ProbeData:
    """Frames that say nothing (all zero: a probe learns its bias, the class prior), class 0's tracks ``long``
    frames each and class 1's one frame, as many tracks of each class in every split."""
    c = np.tile([long, 1], n // 2)
    y = np.tile([0, 1], n // 2)
    frames = np.zeros((int(c.sum()), 3), np.float32)
    groups = np.repeat(np.arange(n), c)
    return ProbeData(
        "multiclass_classification", ["long", "short"], frames, y[groups], frames, y,
        {"clean": (frames, y, [f"t{i}" for i in range(n)])}, val_groups=groups, test_groups={"clean": groups},
        train_frame_counts=c,
    )  # fmt: skip


@pytest.mark.parametrize("sampling", ["random", "balanced"])
def test_each_training_track_weighs_alike_whatever_its_number_of_frames(sampling):
    """A track of 12 frames counted 12 times a track of one in training (the loss was a mean over frames): with
    uninformative frames a probe learned the class prior of frames (12/13 for the long tracks' class) where the tracks
    are half of each. Frames are now drawn with probability inverse to their track's count (times the balanced
    weight of its label), so each track weighs alike: the prior learned is the tracks' (1/2)."""
    data = _long_and_short_tracks()
    cfg = ProbeConfig(
        hidden_units=[], learning_rate=5e-2, batch_size=16, epochs=15, patience=15, train_sampling=sampling
    )
    r = train_probes([(cfg, 0)], data)[0]
    p_long = float(r.test_scores["clean"][:, 0].mean())
    assert abs(p_long - 0.5) < 0.15, p_long


def test_weighted_draws_go_past_what_torch_multinomial_takes(monkeypatch):
    """``train_sampling: balanced``, and frames of tracks of unequal lengths, draw rows with ``torch.multinomial``,
    which refuses more than 2^24 categories: training on the frames of a few thousand long tracks stopped there.
    Above it rows are drawn by inverting the weights' cumulative sum, in proportion to the weights; below it the
    draws are torch.multinomial's, as they always were."""
    import repeval.probes.data as probes_data

    weights = torch.tensor([0.0, 1.0, 3.0, 0.0, 4.0], dtype=torch.float64)
    below = probes_data.draw_rows(weights, 50, torch.Generator().manual_seed(3))
    assert torch.equal(below, torch.multinomial(weights, 50, True, generator=torch.Generator().manual_seed(3)))
    monkeypatch.setattr(probes_data, "MULTINOMIAL_MAX", 4)  # as if the 5 rows were more than 2^24
    drawn = probes_data.draw_rows(weights, 40_000, torch.Generator().manual_seed(3))
    share = torch.bincount(drawn, minlength=5).double() / len(drawn)
    torch.testing.assert_close(share, weights / weights.sum(), atol=0.01, rtol=0)
    assert share[0] == 0 and share[3] == 0  # a row of weight 0 is never drawn
    with pytest.raises(RuntimeError, match="cannot exceed 2\\^24"):  # why: what torch refuses
        torch.multinomial(torch.ones(2**24 + 1, dtype=torch.float64), 1, True)


def test_the_plan_judges_frame_memory_by_the_largest_node_as_the_run_does(ray_session):
    """`repeval plan --address` compared a trial's training frames with the cluster's memory, every node's summed:
    on four 64-GiB nodes it kept quiet about 100 GiB of frames, which the run then warned of (it judges by the
    largest node). The cluster's resources the plan reads carry the largest node's memory, not shown as a resource."""
    import ray

    from repeval import plan_memory
    from repeval.ray_utils import cluster_resources

    res = cluster_resources("unused:6379")  # attached already (this test's Ray): its own resources
    largest = max(n["Resources"]["memory"] for n in ray.nodes() if n["Alive"])
    assert plan_memory.machine_memory_bytes(res) == (largest, "the largest Ray node's memory resource")
