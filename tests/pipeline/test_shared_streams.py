"""One stream per embedding model for a whole run: every dataset and experiment that uses the model shares its
actor pool (weights loaded once per actor), and nothing about a track's rows depends on what shares the stream."""

from __future__ import annotations

import copy
import json
import logging
import re

import numpy as np
import pytest
import yaml
from streams_cases import GAIN, MODEL, NOISE, catalog, dataset, embed, experiment, rows

from repeval import runner
from repeval.config import load_config
from repeval.testing.badaudio import write_good


def test_one_stream_per_model_across_datasets_and_experiments(ray_session, tmp_path, caplog):
    low, high = catalog(tmp_path / "low", 220.0), catalog(tmp_path / "high", 880.0)
    # two tasks; "low" appears in both (a shared partition: each track embedded once); the two datasets share
    # track ids, and their D1 is a different deformation (the routing must keep tracks and steps apart)
    both = [
        experiment("pitch", [dataset("low", low), dataset("high", high, deformations=[NOISE])], [GAIN]),
        experiment("pitch_again", [dataset("low", low)], [GAIN]),
    ]
    with caplog.at_level(logging.INFO, logger="repeval.pipeline.embed"):
        ctx, s = embed(tmp_path, "both", both)
    assert s.streams == 1 and s.errors == 0
    assert s.tracks == 12 and s.computed == 14  # 6 + 6 clean, one test track deformed per dataset
    # the line before the stream counts its rows too, which its progress and summary count ("12 tracks" said alone)
    said = rf"{MODEL['id']} \(2 datasets\): 12 tracks to embed \(low 6, high 6\), 14 rows in all scenarios; "
    assert re.search(said, caplog.text), caplog.text
    # the summary lists its scenarios and partitions in the configuration's order (low before high, clean first)
    assert s.line().startswith("embedded 14 rows [clean 12, D1 2] from 12 tracks"), s.line()
    assert list(s.partition_order) == [f"{d}/{MODEL['id']}/{sid}" for d in ("low", "high") for sid in ("clean", "D1")]
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
            # where its audio came from, for a later run that points the name elsewhere
            assert [src["dir"] for src in ctx.store.partition(ds, MODEL["id"], sid).sources()] == [str(tmp_path / ds)]

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

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="repeval.pipeline.embed"):
        _, again = embed(tmp_path, "both", both)  # complete: nothing to stream
    # every stored row counted once, though "low"'s partitions serve two tasks
    assert (again.streams, again.computed, again.skipped) == (0, 0, 14)
    # said as such (it read "embedded 0 tracks → 0 rows … 0.0 rows/s"), each partition once
    assert again.line() == "nothing to embed: 4 partitions already complete (14 rows already in store)"
    # and by that line alone: a log line per dataset and model ("low/…: all partitions complete") said it again
    assert "complete" not in caplog.text, caplog.text

    # a run with tracks to embed too names the complete ones, once, in one line
    mid = catalog(tmp_path / "mid", 440.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="repeval.pipeline.embed"):
        _, more = embed(tmp_path, "both", [*both, experiment("pitch_mid", [dataset("mid", mid)], [])])
    assert more.computed == 6, more.line()
    said = [r.getMessage() for r in caplog.records if "complete" in r.getMessage()]
    assert said == [f"low/{MODEL['id']}, high/{MODEL['id']}: all partitions complete, nothing to embed"], said


def test_one_scenario_id_with_two_deformations_is_refused_before_embedding(ray_session, tmp_path, monkeypatch):
    """D1 of dataset "low" is a gain in one task and noise in the other: one store partition cannot hold both. In one
    configuration validation refuses it, naming both places; a later configuration that gives a stored partition
    another deformation stops while planning, before any audio is decoded. A run scans the store for conflicts
    once (every partition's manifest read), before Ray starts: the library entry point is told it was done."""
    import pytest

    from repeval.config import ConfigError
    from repeval.pipeline import preflight
    from repeval.store import StoreConflict

    scans: list[list[str]] = []
    scan = preflight.check_store_partitions

    def counted(cfg, experiments, *args, **kwargs):
        scans.append([exp.task.name for exp in experiments])
        return scan(cfg, experiments, *args, **kwargs)

    monkeypatch.setattr(preflight, "check_store_partitions", counted)

    low = catalog(tmp_path / "low", 220.0)
    clash = [
        experiment("pitch", [dataset("low", low)], [GAIN]),
        experiment("pitch_noise", [dataset("low", low)], [NOISE]),
    ]
    with pytest.raises(ConfigError, match=r"experiments\[1\]\.deformations\[0\]: scenario 'D1' of dataset 'low' is "
                       r"not experiments\[0\]\.deformations\[0\]'s scenario 'D1'"):  # fmt: skip
        embed(tmp_path, "clash", clash)
    assert not (tmp_path / "store-clash").exists()
    _, s = embed(tmp_path, "first", clash[:1])
    assert s.computed == 6 + 1
    assert scans == [["pitch"]]  # one scan for the whole run (it was one in the stage and one in embed_experiments)
    later = tmp_path / "later.yaml"
    run = {"run_id": "later", "store": str(tmp_path / "store-first"), "runs_dir": str(tmp_path / "runs")}
    later.write_text(yaml.safe_dump({"run": run, "experiments": clash[1:]}, sort_keys=False))
    files = sorted((tmp_path / "store-first").rglob("*.parquet"))
    with pytest.raises(StoreConflict, match="low/mfcc-fast/D1 was computed with a different configuration"):
        runner.stage_embed(runner.make_context(load_config(later)), progress=False)
    assert sorted((tmp_path / "store-first").rglob("*.parquet")) == files  # nothing was embedded
    assert scans == [["pitch"], ["pitch_noise"]]


def test_two_batch_sizes_for_one_model_use_the_smaller_and_say_so(ray_session, tmp_path, caplog):
    low = catalog(tmp_path / "low", 220.0)
    exps = [experiment("pitch", [dataset("low", low)], []), experiment("pitch_again", [dataset("low", low)], [])]
    exps[0]["embedding_models"] = [{**MODEL, "batch_size": 4}]
    exps[1]["embedding_models"] = [{**MODEL, "batch_size": 2}]
    with caplog.at_level("INFO", logger="repeval.pipeline.embed"):
        _, s = embed(tmp_path, "sizes", exps)
    assert s.streams == 1 and s.computed == 6
    # one dataset: named once ("low/mfcc-fast: 3 tracks to embed (low 3)" said it and its count twice)
    assert re.search(rf"low/{MODEL['id']}: \d+ tracks to embed; ", caplog.text), caplog.text
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
    """The second task reads "low" from another manifest: a subset of the tracks, in another order. Each track the
    two share is one to-do row — decoded once for its clean, gain and noise rows — and every stored row is that of
    each task embedded alone."""
    low = catalog(tmp_path / "low", 220.0)
    lines = low.read_text().splitlines()
    subset = [lines[0], *reversed(lines[2:])]  # t-005 … t-001: t-000 dropped, the order reversed
    (tmp_path / "low" / "subset.csv").write_text("\n".join(subset) + "\n")
    noisy = {**experiment("pitch_noisy", [dataset("low", tmp_path / "low" / "subset.csv")],
                          [{"name": "noise", "steps": NOISE}]), "augment": ["noise"]}  # fmt: skip
    both = [experiment("pitch", [dataset("low", low)], [{"name": "gain", "steps": GAIN}]), noisy]
    ctx, s = embed(tmp_path, "subset", both)
    assert s.errors == 0 and s.streams == 1
    # the 6 tracks of the first manifest; before: 6 + 4 (the noise scenario's t-001, t-002, t-003, t-005 decoded
    # again); written: 6 clean + 1 gain (t-005) + 4 noise (the training and test tracks; t-004 validates)
    assert s.tracks == 6 and s.computed == 6 + 1 + 4
    assert set(rows(ctx, "low", "noise")) == {"t-001", "t-002", "t-003", "t-005"}
    for name, exps in (("gain-alone", both[:1]), ("noisy-alone", [noisy])):
        alone_ctx, _ = embed(tmp_path, name, exps)
        for sid in ("clean", "gain") if name == "gain-alone" else ("clean", "noise"):
            shared, one = rows(ctx, "low", sid), rows(alone_ctx, "low", sid)
            assert set(one) <= set(shared)
            for tid, (emb, params, _) in one.items():
                np.testing.assert_allclose(shared[tid][0], emb, rtol=1e-5, atol=1e-6)
                assert shared[tid][1] == params


def test_a_track_id_naming_two_files_under_one_dataset_name_is_refused_before_embedding(ray_session, tmp_path):
    """The second task's manifest points t-002 at another file. Both definitions went into one partition per
    scenario, keyed by track id: the second task's clean t-002 was embedded from the first task's file, its deformed
    t-002 from its own — silently. The run now stops when it loads the rows, before anything is decoded, naming both
    places, the track and the two files; ``repeval plan`` says the same."""
    import pytest

    from repeval.plan import make_plan

    low = catalog(tmp_path / "low", 220.0)
    write_good(tmp_path / "low" / "audio" / "other.wav", 1.0, 300.0, seed=9)
    lines = low.read_text().replace("audio/t-002.wav", "audio/other.wav").splitlines()
    (tmp_path / "low" / "other.csv").write_text("\n".join([lines[0], *lines[2:]]) + "\n")  # t-000 left out
    both = [
        experiment("pitch", [dataset("low", low)], [GAIN]),
        experiment("pitch_other", [dataset("low", tmp_path / "low" / "other.csv", split_seed=3)], [GAIN]),
    ]
    path = tmp_path / "other.yaml"
    run = {"run_id": "other", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")}
    path.write_text(yaml.safe_dump({"run": run, "experiments": both}, sort_keys=False))
    cfg = load_config(path)  # valid: another task may read "low" from another manifest (a subset, other splits)
    ctx = runner.make_context(cfg)
    expected = (
        "experiments[1].datasets[0] (task 'pitch_other'): dataset 'low' is defined differently in "
        "experiments[0].datasets[0] (task 'pitch'), and the two name different audio files for 1 of the track ids "
        f"they share (e.g. 't-002': {tmp_path}/low/audio/t-002.wav there, {tmp_path}/low/audio/other.wav here)"
    )
    with pytest.raises(ValueError, match=re.escape(expected)):
        runner.stage_embed(ctx, progress=False)
    assert not list((tmp_path / "store").rglob("*.parquet"))
    assert expected in make_plan(cfg, ctx.store).text()
    # the same manifest but the one file: accepted
    (tmp_path / "low" / "other.csv").write_text(low.read_text())
    ctx = runner.make_context(load_config(path))
    runner.load_rows(ctx, save=False)
    assert ctx.rows[(1, "low")].num_rows == 6
    # the one file of each track named through a symlinked folder: accepted (refused: the paths' text differed); a
    # '..' after a symlinked folder names the link's target's parent's file: another file, refused (accepted: the
    # text read as the first manifest's file)
    (tmp_path / "lowlink").symlink_to(tmp_path / "low")
    (tmp_path / "low" / "other.csv").write_text(low.read_text().replace("audio/t-", f"{tmp_path}/lowlink/audio/t-"))
    ctx = runner.make_context(load_config(path))
    runner.load_rows(ctx, save=False)
    assert ctx.rows[(1, "low")].num_rows == 6
    for sub in ("sub", "audio"):
        (tmp_path / "elsewhere" / sub).mkdir(parents=True)
    write_good(tmp_path / "elsewhere" / "audio" / "t-002.wav", 1.0, 300.0, seed=9)
    (tmp_path / "low" / "jump").symlink_to(tmp_path / "elsewhere" / "sub")
    (tmp_path / "low" / "other.csv").write_text(low.read_text().replace("audio/t-002", "jump/../audio/t-002"))
    with pytest.raises(ValueError, match="and the two name different audio files for 1 of the track ids they share"):
        runner.load_rows(runner.make_context(load_config(path)), save=False)


def test_one_dataset_split_differently_by_two_tasks_shares_its_partitions(ray_session, tmp_path):
    """Task "pitch" keeps the manifest's splits, task "pitch_seeded" draws its own (no split column, another seed):
    one track is a test track of one and a training track of the other. The partitions are shared: clean holds
    every track once, D1 the test tracks of both tasks (a track's embeddings do not depend on its split), and each
    task's probes train and test on its own splits. A rerun finds everything done."""
    from repeval.plan import make_plan

    low = catalog(tmp_path / "low", 220.0)
    seeded = dataset("low", low, split_column=None, split_seed=7, split_ratios=[0.5, 0.25, 0.25])
    exps = [experiment("pitch", [dataset("low", low)], [GAIN]), experiment("pitch_seeded", [seeded], [GAIN])]
    ctx, s = embed(tmp_path, "splits", exps)
    tests = {t: {r["track_id"] for r in ctx.rows[(i, "low")].to_pylist() if r["split"] == "test"}
             for i, t in enumerate(("pitch", "pitch_seeded"))}  # fmt: skip
    assert tests["pitch"] == {"t-005"} and tests["pitch_seeded"] != tests["pitch"]
    assert set(rows(ctx, "low", "clean")) == {f"t-{i:03d}" for i in range(6)}
    assert set(rows(ctx, "low", "D1")) == tests["pitch"] | tests["pitch_seeded"]
    assert s.computed == 6 + len(tests["pitch"] | tests["pitch_seeded"])
    summary = runner.stage_train(ctx)
    assert summary["trained"] == 2 and not summary["failed"]
    for i, task in enumerate(("pitch", "pitch_seeded")):
        own = ctx.rows[(i, "low")].column("split").to_pylist()
        inputs = json.loads((ctx.run_dir / "groups" / f"{task}__low__mfcc-fast.inputs.json").read_text())
        assert inputs["splits"] == {k: own.count(k) for k in set(own)}  # trained on its own splits
    files = sorted(p.name for p in (ctx.run_dir / "splits").iterdir())
    assert files == ["pitch__low.parquet", "pitch_seeded__low.parquet"]
    ctx2, again = embed(tmp_path, "splits", exps)
    assert (again.streams, again.computed) == (0, 0)
    plan = make_plan(ctx2.cfg, ctx2.store, ctx2.run_dir)
    assert (plan.partitions, plan.partitions_done, plan.trainings_done) == (2, 2, plan.trainings)


@pytest.mark.parametrize("spelling", [{}, {"embedding_aggregation": "embedding_mean"}])
def test_one_task_on_one_dataset_with_two_models_loads_its_rows_once(tmp_path, spelling):
    """Two experiments, one task and one dataset defined alike (the task's aggregation in mir_ref's spelling in one of
    them included), other models: one set of rows (loaded once), one splits file and one load report record — the
    same the run would have with both models in one experiment."""
    low = catalog(tmp_path / "low", 220.0)
    first = experiment("pitch", [dataset("low", low)], [GAIN])
    second = {**copy.deepcopy(first), "embedding_models": [{**MODEL, "id": "mfcc-other"}]}
    second["task"].update(spelling)
    path = tmp_path / "two.yaml"
    run = {"run_id": "two", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")}
    path.write_text(yaml.safe_dump({"run": run, "experiments": [first, second]}, sort_keys=False))
    ctx = runner.make_context(load_config(path))
    runner.load_rows(ctx)
    assert ctx.rows[(0, "low")] is ctx.rows[(1, "low")] and ctx.reports[(0, "low")] is ctx.reports[(1, "low")]
    assert [p.name for p in (ctx.run_dir / "splits").iterdir()] == ["pitch__low.parquet"]
    [record] = json.loads((ctx.run_dir / "load_report.json").read_text())["loads"]
    assert record["tasks"] == ["pitch"] and record["rows"] == 6
