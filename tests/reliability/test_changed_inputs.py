"""What a rerun does with a finished probe group whose inputs changed, and what it says: a deformation scenario added,
removed or renumbered is tested with the probes the group selected before, not trained again; a label, split, seed or
re-embedded partition trains it again, naming each change; a record an earlier repeval wrote matches what it holds."""

from __future__ import annotations

import json
import logging
import os

import pytest
from reliability_helpers import FAST_MODEL, as_earlier, experiment, make_catalog, write_config

from repeval import runner
from repeval.config import load_config
from repeval.plan import make_plan
from repeval.retest import scenarios_only
from repeval.store import StoreConflict


def test_why_a_group_is_trained_again_names_each_change():
    """A rerun after an edit says what differs from the inputs the group was trained on (a deformation scenario added
    or removed, other seeds), not that its embeddings changed when they did not."""
    before = {"partitions": {"clean": [60, 0, "a"], "noise": [10, 0, "b"]}, "splits": {"test": 10}, "training": "t"}
    added = {**before, "partitions": {**before["partitions"], "mp3": [10, 0, "c"]}}
    assert runner.inputs_change(before, added) == "scenario mp3 added"
    assert runner.inputs_change(added, before) == "scenario mp3 removed"
    seeds = {**before, "training": "u"}
    assert runner.inputs_change(before, seeds).startswith("the training settings changed")
    rehashed = {**before, "partitions": {**before["partitions"], "noise": [10, 0, "z"]}}
    assert (
        runner.inputs_change(before, rehashed) == "partition noise: computed under another configuration (config hash)"
    )
    before["splits"] = {"train": 5, "test": 10}
    resplit = {**before, "splits": {"test": 12, "train": 5}}
    assert runner.inputs_change(before, resplit) == "the tracks per split: test 10, train 5 then, test 12, train 5 now"
    # named in the configuration's order (now's; inputs.json keeps its keys sorted), not by name: the rest of the
    # output lists clean first, then the deformations as listed
    record = json.loads(json.dumps({**before, "partitions": {**before["partitions"], "zip": [10, 0, "y"]}},
                                   sort_keys=True))  # fmt: skip
    listed = {"clean": [60, 0, "a"], "noise": [10, 0, "b2"], "mp3": [10, 0, "c"], "aac": [10, 0, "d"],
              "zip": [10, 0, "y2"]}  # fmt: skip
    assert runner.inputs_change(record, {**before, "partitions": listed}) == (
        "scenarios mp3, aac added; partition noise: computed under another configuration (config hash); partition "
        "zip: computed under another configuration (config hash)"
    )
    assert scenarios_only(record, {**before, "partitions": listed}) == (
        ["noise", "mp3", "aac", "zip"],
        ["noise", "zip"],
    )
    fewer = {**before, "partitions": {"clean": [60, 0, "a"], "zip": [10, 0, "y2"], "noise": [10, 0, "b2"]}}
    assert runner.inputs_change({**record, "partitions": {**record["partitions"], "aac": [1, 0, "d"]}}, fewer) == (
        "scenario aac removed; partition zip: computed under another configuration (config hash); partition noise: "
        "computed under another configuration (config hash)"
    )


def test_a_partition_embedded_anew_or_an_edited_label_is_a_change_an_older_record_lacking_them_is_not():
    """A partition deleted and embedded again (same counts and config hash: its write differs) and a label edited (as
    many tracks per split: the tracks' digest differs) train a finished group again, and the warning says which; a
    record written before repeval kept them (partitions as [rows, errors, config hash], no tracks) matches inputs it
    agrees with on what it holds — an upgrade does not train every finished group again."""
    now = {
        "partitions": {"clean": [60, 0, "a", "w1"], "noise": [10, 0, "b", "w2"]},
        "splits": {"test": 10, "train": 50},
        "tracks": "t1",
        "training": "h",
    }
    from repeval.run.groups import same_inputs

    assert same_inputs(now, dict(now))
    anew = {**now, "partitions": {**now["partitions"], "clean": [60, 0, "a", "w3"]}}
    assert not same_inputs(now, anew)
    assert runner.inputs_change(now, anew) == (
        "partition clean re-embedded: written anew since, as many rows under the same configuration"
    )
    relabelled = {**now, "tracks": "t2"}
    assert not same_inputs(now, relabelled)
    assert runner.inputs_change(now, relabelled).startswith("labels changed")
    assert scenarios_only(now, relabelled) is None  # the probes learn labels: trained again, not tested again
    assert scenarios_only(now, {**now, "partitions": {**now["partitions"], "noise": [10, 0, "b", "w4"]}}) == (
        ["noise"],
        ["noise"],
    )  # a deformed partition embedded anew changes a test set alone: tested again
    resplit = {**relabelled, "splits": {"test": 11, "train": 49}}
    assert "labels changed" not in runner.inputs_change(now, resplit)  # the splits say it

    older = {
        "partitions": {sid: v[:3] for sid, v in now["partitions"].items()},
        "splits": now["splits"],
        "training": "h",
    }
    assert same_inputs(older, now) and same_inputs(older, relabelled) and same_inputs(older, anew)
    assert not same_inputs(older, {**now, "training": "other"})
    assert not same_inputs(older, {**now, "partitions": {**now["partitions"], "clean": [61, 0, "a", "w1"]}})
    assert not same_inputs({**older, "augment": ["noise"]}, now)  # a key absent now (augment dropped) still changes
    assert not same_inputs(older, {**now, "augment": ["noise"]})  # and one that only now holds, not of LATER_KEYS
    added = {**now, "partitions": {**now["partitions"], "mp3": [10, 0, "c", "w5"]}}
    assert scenarios_only(older, added) == (["mp3"], [])  # an older record's scenario added: tested, not trained
    assert runner.inputs_change(older, added) == "scenario mp3 added"


def test_the_tracks_digest_follows_ids_splits_and_labels_not_row_order_or_audio_paths():
    import pyarrow as pa

    from repeval.run.groups import tracks_digest

    rows = pa.table(
        {
            "track_id": ["a", "b", "c"],
            "audio_path": ["a.wav", "b.wav", "c.wav"],
            "label": [["x"], ["y", "z"], []],
            "split": ["train", "test", None],
        }
    )
    base = tracks_digest(rows)
    assert tracks_digest(rows.take([2, 0, 1])) == base
    assert tracks_digest(rows.set_column(1, "audio_path", pa.array(["m/a.wav", "m/b.wav", "m/c.wav"]))) == base
    edits = [
        rows.set_column(2, "label", pa.array([["x"], ["y"], []], pa.list_(pa.string()))),
        rows.set_column(2, "label", pa.array([["x"], ["y", "z"], None], pa.list_(pa.string()))),
        rows.set_column(3, "split", pa.array(["test", "train", None])),
        rows.set_column(3, "split", pa.array(["train", "test", ""])),
        rows.set_column(0, "track_id", pa.array(["a", "b", "d"])),
        rows.append_column("observed", pa.array([["x"], ["y"], []], pa.list_(pa.string()))),
        rows.slice(0, 2),
    ]
    digests = [tracks_digest(t) for t in edits]
    assert len({base, *digests}) == len(edits) + 1


def test_a_scenario_whose_partition_changed_is_tested_again_unless_the_probes_trained_on_it():
    """Another partition under a kept scenario id (a scenario renumbered by one inserted before it) changes the grid's
    test sets alone — dropped and scored again — unless it augments the training data; the same partition under
    another id is not taken for a rename (the id seeds the deformation)."""
    before = {"partitions": {"clean": [60, 0, "a"], "D1": [10, 0, "g"]}, "splits": {"test": 10}, "training": "t"}
    inserted = {**before, "partitions": {"clean": [60, 0, "a"], "D1": [10, 0, "q"], "D2": [10, 0, "g"]}}
    assert scenarios_only(before, inserted) == (["D1", "D2"], ["D1"])
    assert scenarios_only({**before, "augment": ["D1"]}, {**inserted, "augment": ["D1"]}) is None
    assert scenarios_only(before, {**before, "partitions": {"clean": [61, 0, "a"], "D1": [10, 0, "g"]}}) is None
    assert scenarios_only(before, dict(before)) is None


def test_a_changed_scenario_says_how_its_partition_changed():
    """A run deforming its training tracks too (augment) adds their rows to a partition other runs test on: theirs
    said "tested again on the changed scenario(s) noise_10db" with no word of what changed. Each changed scenario now
    says how its partition differs from the record, and for rows added under the same configuration, what adds them
    and that the grid's own test rows are not read to tell (so they are scored again)."""
    from repeval.retest import changed_words

    before = {"partitions": {"clean": [240, 0, "a", "w0"], "noise_10db": [40, 0, "n", "w1"]}, "training": "t"}
    augmented = {**before, "partitions": {"clean": [240, 0, "a", "w0"], "noise_10db": [200, 0, "n", "w2"]}}
    assert scenarios_only(before, augmented) == (["noise_10db"], ["noise_10db"])
    assert changed_words(before, augmented, ["noise_10db"]) == (
        "noise_10db (40 rows, 0 error records then, 200 rows, 0 error records now: rows added under the same "
        "configuration, as a run that deforms its training tracks too (augment) adds them; whether this grid's test "
        "rows changed is not read from the store, so they are scored again)"
    )
    anew = {**before, "partitions": {**before["partitions"], "noise_10db": [40, 0, "n", "w3"]}}
    rehashed = {**before, "partitions": {**before["partitions"], "noise_10db": [40, 0, "m", "w3"]}}
    fewer = {**before, "partitions": {**before["partitions"], "noise_10db": [30, 10, "n", "w3"]}}
    assert changed_words(before, anew, ["noise_10db"]) == (
        "noise_10db (re-embedded: written anew since, as many rows under the same configuration)"
    )
    assert changed_words(before, rehashed, ["noise_10db"]) == (
        "noise_10db (computed under another configuration (config hash))"
    )
    assert changed_words(before, fewer, ["noise_10db"]) == (
        "noise_10db (40 rows, 0 error records then, 30 rows, 10 error records now)"
    )
    # what a rerun says when it trains the group again reads the same
    assert runner.inputs_change(before, augmented).startswith(
        "partition noise_10db: 40 rows, 0 error records then, 200 rows, 0 error records now: rows added"
    )


def test_the_training_hash_follows_what_results_depend_on_not_how_fast_they_come(tmp_path):
    """A finished group is reused while its embeddings, splits and this hash are unchanged: the probes as expanded (a
    preset's values too), the task, the metrics, the seeds, the epoch cap and the intervals — not speed settings."""
    manifest = make_catalog(tmp_path / "catalog", per_class=2)

    def digest(probes=None, run=None, **exp_keys):
        exp = {**experiment(manifest, [FAST_MODEL], probes), **exp_keys}
        cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [exp], **(run or {})))
        return runner.training_hash(cfg, cfg.experiments[0])

    base = digest()
    assert digest(run={"vectorize": 8, "pack_trials": False, "train_batch_mb": 64}) == base
    assert digest(run={"resources": {"max_concurrent_trials": 1}}) == base
    changed = [
        digest(probes=[{"name": "linear", "hidden_units": [], "standardize": True, "learning_rate": 0.1,
                        "batch_size": 8, "epochs": 15}]),
        digest(metrics=["accuracy"]),
        digest(run={"seeds": 2}),
        digest(run={"seed": 1}),
        digest(run={"max_epochs": 3}),
        digest(run={"bootstrap_resamples": 0}),
        digest(probes=[{"preset": "mir_ref_thesis"}]),
        digest(probes=[{"preset": "mir_ref_thesis", "epochs": 50}]),
    ]  # fmt: skip
    assert len({base, *changed}) == len(changed) + 1


def test_a_scenario_added_or_removed_is_tested_with_the_probes_selected_before_not_trained_again(
    ray_session, tmp_path, caplog, monkeypatch
):
    """Training reads clean embeddings alone: a deformation scenario added to the configuration is tested with the
    probes each group selected before (every seed, ``select: all`` and ``select: best``), giving the rows a fresh run
    gives; one removed loses its rows; without the trial checkpoints the group is trained again. ``repeval plan``,
    before each rerun (the changed scenarios not embedded yet), counts the grids as the run then finds them."""
    caplog.set_level(logging.INFO, logger="repeval.runner")
    manifest = make_catalog(tmp_path / "catalog", per_class=5, seconds=1.0)
    model = FAST_MODEL["id"]
    probes = [
        {"name": "linear", "hidden_units": [], "learning_rate": 0.01, "batch_size": 8, "epochs": 4},
        {"name": "pick", "hidden_units": [], "batch_size": 8, "epochs": 4,
         "search": {"grid": {"learning_rate": [1e-3, 3e-2]}}},  # select: best, tested in the driver
    ]  # fmt: skip
    one = experiment(manifest, [FAST_MODEL], probes)
    quiet = [{"type": "Gain", "params": {"min_gain_db": -20, "max_gain_db": -18, "p": 1}}]
    two = {**one, "deformations": [*one["deformations"], quiet]}
    name = f"pitch__tones__{model}"

    plans = []

    def run(exp, runs="runs"):
        cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [exp], runs_dir=str(tmp_path / runs), seeds=2))
        ctx = runner.make_context(cfg)
        plan = make_plan(cfg, ctx.store, ctx.run_dir)
        runner.stage_embed(ctx, progress=False)
        t = runner.stage_train(ctx)
        # the plan's grids: to train, retest only, done — as the run found them
        to_train = plan.grids - plan.grids_retest - plan.grids_done
        assert (to_train, plan.grids_retest, plan.grids_done) == (t["trained"], t["retested"], t["skipped"]), (
            plan.text()
        )
        assert plan.trainings_retest == (plan.trainings if t["retested"] else 0)
        plans.append(plan)
        return ctx, t, runner.stage_evaluate(ctx)

    def cells(table):
        keys = ["probe", "seed", "scenario", "metric", "label"]
        return {tuple(r[k] for k in keys): r for r in table.drop(["run_id"]).to_pylist()}

    def same(a, b):
        assert a.keys() == b.keys()
        for k in a:
            for col, v in a[k].items():
                assert v == pytest.approx(b[k][col], abs=1e-6), (k, col)

    ctx, t, first = run(one)
    assert t["trained"] == 1 and set(first.column("scenario").to_pylist()) == {"clean", "D1"}
    confusion = ctx.run_dir / "confusion"
    caplog.clear()
    ctx, t, added = run(two)
    assert (t["trained"], t["retested"], t["skipped"]) == (0, 1, 0)
    assert (
        f"{name}: tested on the added scenario D2 with the probes it selected before — not trained again" in caplog.text
    )
    assert "training it again" not in caplog.text
    said = plans[-1].text()
    assert "probe grids:        1 (0 done, 1 retest only, 0 to train)" in said, said
    assert "test cells:         12 (8 done; " in said, said  # 2 probes × 2 seeds: on clean and D1 already, not D2
    assert "6 not trained again: their grids' deformation scenarios alone changed" in said
    assert (
        f"retest only: {name}: tested on the added scenario D2 — 4 selected probes scored again from their "
        "Tune checkpoints, none trained (retest if the checkpoints are intact" in said
    )
    _, t, fresh = run(two, runs="fresh")
    assert t["trained"] == 1
    assert {r[:3] for r in cells(added) if r[2] == "D2"} == {(p, s, "D2") for p in ("linear", "pick") for s in (0, 1)}
    same(cells(added), cells(fresh))
    for f in (tmp_path / "fresh" / "r" / "confusion").glob("*__D2.json"):
        assert json.loads((confusion / f.name).read_text()) == json.loads(f.read_text())
    assert len(list(confusion.glob("*__D2.json"))) == 4

    caplog.clear()
    _, t, removed = run(one)  # D2 removed again: its rows and matrices go, the rest stays as it was
    assert (t["trained"], t["retested"]) == (0, 1)
    assert "the results of the removed scenario D2 dropped" in caplog.text
    said = plans[-1].text()
    assert f"retest only: {name}: the results of the removed scenario D2 dropped — nothing trained or tested" in said
    same(cells(removed), cells(first))
    assert not list(confusion.glob("*__D2.json"))

    (ctx.run_dir / "tune").rename(ctx.run_dir / "tune-elsewhere")  # the checkpoints are gone: trained again
    caplog.clear()
    _, t, _ = run(two)
    assert (t["trained"], t["retested"]) == (1, 0)
    assert (
        f"{name}: trained before on other inputs (scenario D2 added), and the probes it selected cannot be read back"
        in caplog.text
    )
    assert f"train again: {name}: only its deformation scenarios changed, but the probes it selected cannot be" in (
        plans[-1].text()
    )

    # a scenario inserted before the others renumbers them (D1 → D2, D2 → D3): their partitions are refused as stored
    # under the old ids — the id seeds each track's deformation, so they are embedded anew under the new ones — and the
    # grid is tested on them with the probes it selected, not trained again: the rows a fresh run gives
    loud = [{"type": "Gain", "params": {"min_gain_db": 3, "max_gain_db": 6, "p": 1}}]
    three = {**one, "deformations": [loud, *two["deformations"]]}
    with pytest.raises(StoreConflict, match="D1 was computed with a different configuration") as refused:
        run(three)
    assert "It holds the scenario this configuration calls D2: unnamed scenarios" in str(refused.value)
    for sid in ("D1", "D2"):
        ctx.store.partition("tones", model, sid).delete()  # as `repeval store rm` would
    caplog.clear()
    ctx, t, inserted = run(three)
    assert (t["trained"], t["retested"], t["skipped"]) == (0, 1, 0)
    # each changed scenario says how its partition differs from the grid's record: renumbered, another configuration
    assert (
        f"{name}: tested on the added scenario D3 with the probes it selected before; tested again on the changed "
        "scenarios D1 (computed under another configuration (config hash)), D2 (computed under another "
        "configuration (config hash)) with the probes it selected before" in caplog.text
    )
    assert (
        f"{name}: tested on the added scenario D3; tested again on the changed scenarios D1 (not in the store "
        "now: computed before the grid is tested), D2 (not in the store now: computed before the grid is tested) — 4 "
        in plans[-1].text()
    )
    _, t, fresh = run(three, runs="fresh3")
    assert t["trained"] == 1 and set(fresh.column("scenario").to_pylist()) == {"clean", "D1", "D2", "D3"}
    same(cells(inserted), cells(fresh))
    for f in (tmp_path / "fresh3" / "r" / "confusion").glob("*.json"):
        assert json.loads((confusion / f.name).read_text()) == json.loads(f.read_text())
    assert len(list(confusion.glob("*.json"))) == len(list((tmp_path / "fresh3" / "r" / "confusion").glob("*.json")))

    # the group's record as an earlier repeval wrote it, and D3 embedded anew after it (`store rm`, then `embed`,
    # before the upgrade): the run tests the grid again on D3 — `repeval plan` reads the record as the run does
    from repeval.run import groups

    monkeypatch.setattr(groups, "REWRITE_SLACK_S", 0.0)
    sidecar = ctx.run_dir / "groups" / f"{name}.inputs.json"
    sidecar.write_text(json.dumps(as_earlier(json.loads(sidecar.read_text()))))
    parts = (tmp_path / "store" / "tones" / model).glob("*/part-*.parquet")
    newest_ns = max(int(p.name.split("-")[1]) for p in parts)
    os.utime(sidecar, ns=(newest_ns + 1_000_000, newest_ns + 1_000_000))
    ctx.store.partition("tones", model, "D3").delete()
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [three], runs_dir=str(tmp_path / "runs"), seeds=2))
    assert runner.stage_embed(runner.make_context(cfg), progress=False).computed > 0
    caplog.clear()
    _, t, _ = run(three)
    assert (t["trained"], t["retested"], t["skipped"]) == (0, 1, 0)
    assert "tested again on the changed scenario D3" in plans[-1].text()
