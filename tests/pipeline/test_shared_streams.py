"""One stream per embedding model for a whole run: every dataset and experiment that uses the model shares its
actor pool (weights loaded once per actor), and nothing about a track's rows depends on what shares the stream."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.testing.badaudio import write_good

MODEL = {
    "id": "mfcc-fast",
    "type": "mfcc-stats",
    "params": {"sample_rate_hz": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 20, "n_mfcc": 8},
}
GAIN = [{"type": "Gain", "params": {"min_gain_db": -9, "max_gain_db": -3, "p": 1}}]
NOISE = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 20, "p": 1}}]


def catalog(root: Path, base_hz: float) -> Path:
    """Six tones named t-000 … t-005 (the same ids in every catalog), two classes, splits 4/1/1."""
    (root / "audio").mkdir(parents=True)
    rows = []
    for i in range(6):
        tid = f"t-{i:03d}"
        write_good(root / "audio" / f"{tid}.wav", 1.0, base_hz * (1 + 0.05 * i), seed=i)
        split = "train" if i < 4 else "validation" if i == 4 else "test"
        rows.append({"track_id": tid, "audio_path": f"audio/{tid}.wav", "label": "ab"[i % 2], "split": split})
    with (root / "manifest.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root / "manifest.csv"


def dataset(name: str, manifest: Path, **extra) -> dict:
    return {"name": name, "type": "catalog", "manifest": str(manifest), "label_column": "label",
            "split_column": "split", **extra}  # fmt: skip


def experiment(task: str, datasets: list[dict], deformations: list) -> dict:
    return {
        "task": {"name": task, "type": "multiclass_classification"},
        "datasets": datasets,
        "deformations": deformations,
        "embedding_models": [MODEL],
        "downstream_models": [{"name": "linear", "hidden_units": [], "epochs": 2}],
        "metrics": ["accuracy"],
    }


def embed(tmp: Path, name: str, experiments: list[dict]):
    path = tmp / f"{name}.yaml"
    run = {"run_id": name, "store": str(tmp / f"store-{name}"), "runs_dir": str(tmp / "runs"), "part_rows": 4}
    path.write_text(yaml.safe_dump({"run": run, "experiments": experiments}, sort_keys=False))
    ctx = runner.make_context(load_config(path))
    return ctx, runner.stage_embed(ctx, progress=False)


def rows(ctx, ds: str, sid: str) -> dict[str, tuple[np.ndarray, str | None, str]]:
    t = ctx.store.partition(ds, MODEL["id"], sid).read().to_pylist()
    ids = [r["track_id"] for r in t]
    assert len(ids) == len(set(ids)), f"{ds}/{sid}: a track stored twice"
    return {r["track_id"]: (np.asarray(r["embedding"]), r["deformation_params"], r["scenario"]) for r in t}


def test_one_stream_per_model_across_datasets_and_experiments(ray_session, tmp_path):
    low, high = catalog(tmp_path / "low", 220.0), catalog(tmp_path / "high", 880.0)
    # two tasks; "low" appears in both (a shared partition: each track embedded once); the two datasets share
    # track ids, and their D1 is a different deformation (the routing must keep tracks and steps apart)
    both = [
        experiment("pitch", [dataset("low", low), dataset("high", high, deformations=[NOISE])], [GAIN]),
        experiment("pitch_again", [dataset("low", low)], [GAIN]),
    ]
    ctx, s = embed(tmp_path, "both", both)
    assert s.streams == 1 and s.errors == 0
    assert s.tracks == 12 and s.computed == 14  # 6 + 6 clean, one test track deformed per dataset
    assert s.skipped == 0  # "already in store": the second task's share of "low" was planned, not stored
    low_clean, high_clean = rows(ctx, "low", "clean"), rows(ctx, "high", "clean")
    assert set(low_clean) == set(high_clean) == {f"t-{i:03d}" for i in range(6)}
    for tid in low_clean:  # same ids, different audio: each dataset got its own tracks' embeddings
        assert not np.allclose(low_clean[tid][0], high_clean[tid][0])
    low_d1, high_d1 = rows(ctx, "low", "D1"), rows(ctx, "high", "D1")
    assert set(low_d1) == set(high_d1) == {"t-005"}
    assert low_d1["t-005"][2] == high_d1["t-005"][2] == "D1"  # the stored scenario id, not a routing key
    assert '"Gain"' in low_d1["t-005"][1] and '"AddGaussianSNR"' in high_d1["t-005"][1]
    for ds in ("low", "high"):
        for sid in ("clean", "D1"):
            assert ctx.store.partition(ds, MODEL["id"], sid).complete

    # the same rows as runs of each dataset alone: sampling and seeds do not depend on what shares the stream
    ctx_low, s_low = embed(tmp_path, "low", [experiment("pitch", [dataset("low", low)], [GAIN])])
    ctx_high, _ = embed(tmp_path, "high", [experiment("pitch", [dataset("high", high, deformations=[NOISE])], [GAIN])])
    assert s_low.streams == 1
    for ctx_one, ds in ((ctx_low, "low"), (ctx_high, "high")):
        for sid in ("clean", "D1"):
            alone, shared = rows(ctx_one, ds, sid), rows(ctx, ds, sid)
            assert set(alone) == set(shared)
            for tid, (emb, params, _) in alone.items():
                np.testing.assert_allclose(shared[tid][0], emb, rtol=1e-5, atol=1e-6)
                assert shared[tid][1] == params

    _, again = embed(tmp_path, "both", both)  # complete: nothing to stream
    # every stored row counted once, though "low"'s partitions serve two tasks
    assert (again.streams, again.computed, again.skipped) == (0, 0, 14)


def test_two_experiments_giving_one_partition_two_deformations_fail_before_embedding(ray_session, tmp_path):
    """D1 of dataset "low" is a gain in one task and noise in the other: one store partition cannot hold both.
    With one stream per model this is found while planning, before any audio is decoded."""
    import pytest

    from repeval.store.store import StoreConflict

    low = catalog(tmp_path / "low", 220.0)
    clash = [
        experiment("pitch", [dataset("low", low)], [GAIN]),
        experiment("pitch_noise", [dataset("low", low)], [NOISE]),
    ]
    with pytest.raises(StoreConflict, match="low/mfcc-fast/D1 was computed with a different configuration"):
        embed(tmp_path, "clash", clash)
    store = tmp_path / "store-clash"
    assert not list(store.rglob("*.parquet"))  # nothing was embedded


def test_two_batch_sizes_for_one_model_use_the_smaller_and_say_so(ray_session, tmp_path, caplog):
    low = catalog(tmp_path / "low", 220.0)
    exps = [experiment("pitch", [dataset("low", low)], []), experiment("pitch_again", [dataset("low", low)], [])]
    exps[0]["embedding_models"] = [{**MODEL, "batch_size": 4}]
    exps[1]["embedding_models"] = [{**MODEL, "batch_size": 2}]
    with caplog.at_level("WARNING", logger="repeval.pipeline.embed"):
        _, s = embed(tmp_path, "sizes", exps)
    assert s.streams == 1 and s.computed == 6
    assert s.resources[MODEL["id"]].endswith("; 2 chunks per embedding call"), s.resources
    assert "experiments set batch_size 4 and 2; its one stream uses 2" in caplog.text
    # one experiment setting it and one not: the set value, without a warning
    exps[1]["embedding_models"] = [MODEL]
    caplog.clear()
    with caplog.at_level("WARNING", logger="repeval.pipeline.embed"):
        _, s = embed(tmp_path, "one-size", exps)
    assert s.resources[MODEL["id"]].endswith("; 4 chunks per embedding call"), s.resources
    assert "batch_size" not in caplog.text


def test_a_track_two_tasks_want_under_different_scenarios_is_decoded_once(ray_session, tmp_path):
    """One task tests "low" under a gain change, another under noise and trains on noisy copies (``augment``): the
    noise scenario wants the training tracks too. Each track is still one to-do row — decoded once, its clean,
    gain and noise rows made from that one decode — and the rows are those of each task embedded alone."""
    low = catalog(tmp_path / "low", 220.0)
    noisy = {**experiment("pitch_noisy", [dataset("low", low)], [{"name": "noise", "steps": NOISE}]),
             "augment": ["noise"]}  # fmt: skip
    both = [experiment("pitch", [dataset("low", low)], [{"name": "gain", "steps": GAIN}]), noisy]
    ctx, s = embed(tmp_path, "mixed", both)
    assert s.errors == 0 and s.streams == 1
    # 6 tracks decoded (not 6 + 5: the noise scenario's 4 training and 1 test tracks again), 6 clean + 1 gain
    # (the test track) + 5 noise rows written
    assert s.tracks == 6 and s.computed == 6 + 1 + 5
    assert set(rows(ctx, "low", "noise")) == {"t-000", "t-001", "t-002", "t-003", "t-005"}
    alone_ctx, alone = embed(tmp_path, "noisy-alone", [noisy])
    assert alone.tracks == 6
    for sid in ("clean", "noise"):
        shared, one = rows(ctx, "low", sid), rows(alone_ctx, "low", sid)
        assert set(shared) == set(one)
        for tid, (emb, params, _) in one.items():
            np.testing.assert_allclose(shared[tid][0], emb, rtol=1e-5, atol=1e-6)
            assert shared[tid][1] == params


def test_a_track_two_tasks_list_in_different_rows_is_decoded_once(ray_session, tmp_path):
    """The second task reads "low" from another manifest: a subset of the tracks, in another order, and one of them
    (t-002) pointing at another file. Each track the two share is one to-do row — decoded once for its clean, gain
    and noise rows — while t-002's two files stay two rows; every stored row is that of each task embedded alone."""
    low = catalog(tmp_path / "low", 220.0)
    lines = low.read_text().splitlines()
    subset = [lines[0], *reversed(lines[2:])]  # t-005 … t-001: t-000 dropped, the order reversed
    write_good(tmp_path / "low" / "audio" / "other.wav", 1.0, 300.0, seed=9)
    subset = [line.replace("audio/t-002.wav", "audio/other.wav") for line in subset]
    (tmp_path / "low" / "subset.csv").write_text("\n".join(subset) + "\n")
    noisy = {**experiment("pitch_noisy", [dataset("low", tmp_path / "low" / "subset.csv")],
                          [{"name": "noise", "steps": NOISE}]), "augment": ["noise"]}  # fmt: skip
    both = [experiment("pitch", [dataset("low", low)], [{"name": "gain", "steps": GAIN}]), noisy]
    ctx, s = embed(tmp_path, "subset", both)
    assert s.errors == 0 and s.streams == 1
    # 6 tracks of the first manifest + t-002's other file (a row of its own, for noise); before: 6 + 4 (the noise
    # scenario's t-001, t-002, t-003, t-005 decoded again); written: 6 clean + 1 gain (t-005) + 4 noise (the
    # training and test tracks; t-004 validates)
    assert s.tracks == 7 and s.computed == 6 + 1 + 4
    assert set(rows(ctx, "low", "noise")) == {"t-001", "t-002", "t-003", "t-005"}
    for name, exps in (("gain-alone", both[:1]), ("noisy-alone", [noisy])):
        alone_ctx, _ = embed(tmp_path, name, exps)
        for sid in ("clean", "gain") if name == "gain-alone" else ("noise",):
            shared, one = rows(ctx, "low", sid), rows(alone_ctx, "low", sid)
            assert set(shared) == set(one)
            for tid, (emb, params, _) in one.items():
                np.testing.assert_allclose(shared[tid][0], emb, rtol=1e-5, atol=1e-6)
                assert shared[tid][1] == params
