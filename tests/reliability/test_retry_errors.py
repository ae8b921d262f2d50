"""``--retry-errors``: tracks that failed (a corrupt file since replaced) are computed again on request, and the
probe groups trained without them are trained again; without the flag a rerun changes nothing."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from reliability_helpers import FAST_MODEL, experiment, make_catalog, write_config

from repeval import runner
from repeval.config import load_config
from repeval.plan import make_plan
from repeval.retest import scenarios_only
from repeval.store import StoreConflict


def _catalog_with_a_broken_train_file(tmp_path):
    """A catalog of 12 tones whose train track low-001's file is not audio: (manifest, that file, its good bytes)."""
    manifest = make_catalog(tmp_path / "catalog", per_class=6)
    broken = tmp_path / "catalog" / "audio" / "low-001.wav"
    good = broken.read_bytes()
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return manifest, broken, good


@dataclass
class FirstRun:
    """The first run on that catalog (fast model, one deformation), in ``root``: its catalog, configuration (``c.yaml``),
    store and run directory; what its embedding and training stages returned."""

    root: Path
    manifest: Path
    broken: Path
    good: bytes
    embedded: Any
    trained: dict[str, Any]


@pytest.fixture(scope="module")
def broken_first_run(ray_session, tmp_path_factory) -> Callable[[], FirstRun]:
    """The first run both tests on the broken train file start with — embedded, trained and tested once, its folder
    kept as a template. Each call puts a fresh copy of it in the same place (the configuration, the store's records and
    Tune's experiment name absolute paths; file times copied too) for a test to go on from."""
    base = tmp_path_factory.mktemp("broken-first-run")
    root, template = base / "run", base / "template"
    manifest, broken, good = _catalog_with_a_broken_train_file(root)
    cfg = load_config(write_config(root / "c.yaml", root, [experiment(manifest, [FAST_MODEL])]))
    ctx = runner.make_context(cfg)
    embedded = runner.stage_embed(ctx, progress=False)
    trained = runner.stage_train(ctx)
    runner.stage_evaluate(ctx)
    shutil.copytree(root, template, symlinks=True)

    def fresh() -> FirstRun:
        shutil.rmtree(root)
        shutil.copytree(template, root, symlinks=True)
        return FirstRun(root, manifest, broken, good, embedded, trained)

    return fresh


def test_retry_errors_recomputes_fixed_files_and_retrains_their_groups(broken_first_run, caplog, monkeypatch):
    first = broken_first_run()
    tmp_path, manifest, broken, good = first.root, first.manifest, first.broken, first.good
    cfg = load_config(tmp_path / "c.yaml")
    model = FAST_MODEL["id"]

    def run(retry: bool = False):
        ctx = runner.make_context(cfg)
        s = runner.stage_embed(ctx, progress=False, retry_errors=retry)
        t = runner.stage_train(ctx)
        runner.stage_evaluate(ctx)
        return ctx, s, t

    ctx, s, t = runner.make_context(cfg), first.embedded, first.trained  # run() on the fresh catalog
    clean = ctx.store.partition("tones", model, "clean")
    assert s.errors == 1 and clean.complete and clean.counts() == (11, 1)
    assert clean.read_errors().column("track_id").to_pylist() == ["low-001"]
    assert t["trained"] == 1

    # inputs.json as an earlier repeval wrote it (partitions as [rows, errors, config hash], no tracks' digest), then
    # --retry-errors failing on the same track again: the manifest is written anew, no row part file is — not trained
    sidecar = ctx.run_dir / "groups" / f"pitch__tones__{model}.inputs.json"
    recorded = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(_as_earlier(recorded)))
    _, s, t = run(retry=True)
    assert (s.retried, s.errors, t["trained"], t["skipped"]) == (1, 1, 0, 1)
    assert json.loads(sidecar.read_text()) == recorded

    broken.write_bytes(good)  # the file is fixed
    # `repeval plan` says what a plain rerun does — every partition complete, the grid done — and notes the record
    plain = make_plan(cfg, ctx.store, ctx.run_dir)
    assert (plain.partitions_done, plain.grids_done) == (plain.partitions, plain.grids) and plain.grids == 1
    assert plain.retries == {clean.name: (1, 1)}
    assert f"note: 1 error record in 1 partition ({clean.name}), 1 track of this run: `repeval run` leaves" in (
        plain.text()
    )
    _, s, t = run()  # a plain rerun: the error record stands, nothing is recomputed or retrained
    assert (s.computed, s.retried, t["trained"], t["skipped"]) == (0, 0, 0, 1)

    # `repeval plan --retry-errors` says what `repeval run --retry-errors` does: the clean partition to do, its one
    # record deleted and its track computed again, the grid trained on it to train
    retry = make_plan(cfg, ctx.store, ctx.run_dir, retry_errors=True)
    assert (retry.partitions - retry.partitions_done, retry.grids - retry.grids_done) == (1, 1)
    said = retry.text()
    assert f"retry errors: {clean.name}: 1 error record deleted, 1 track of this run they name computed " in said
    assert "note: 1 error record" not in said
    from typer.testing import CliRunner

    from repeval.cli import app

    shown = CliRunner().invoke(app, ["plan", str(tmp_path / "c.yaml"), "--retry-errors"])
    assert shown.exit_code == 0, shown.output
    assert "probe grids:        1 (0 done, 1 to train)" in shown.output and "retry errors: " in shown.output
    assert (
        "probe grids:        1 (1 done, 0 to train)"
        in CliRunner().invoke(app, ["plan", str(tmp_path / "c.yaml")]).output
    )
    caplog.clear()
    _, s, t = run(retry=True)
    assert (s.computed, s.retried, s.errors) == (1, 1, 0)
    assert (s.retried, s.computed) == tuple(sum(v) for v in zip(*retry.retries.values(), strict=True))
    assert (t["trained"], t["skipped"]) == (retry.grids - retry.grids_done, retry.grids_done)
    # the warning says what changed, not a generic "embeddings changed"
    assert (
        f"pitch__tones__{model}: trained before on other inputs (partition clean: 11 rows, 1 error records then, "
        "12 rows, 0 error records now); training it again" in caplog.text
    )
    assert "retried 1 earlier error record)" in s.line()
    assert clean.complete and clean.counts() == (12, 0)
    assert json.loads((tmp_path / "store" / "tones" / model / "clean" / "_manifest.json").read_text())["errors"] == 0
    assert sorted(clean.read().column("track_id").to_pylist()).count("low-001") == 1
    assert (t["trained"], t["skipped"]) == (1, 0)  # its group was trained on 11 tracks: trained again on 12
    inputs = json.loads((ctx.run_dir / "groups" / f"pitch__tones__{model}.inputs.json").read_text())
    assert inputs["partitions"]["clean"][:2] == [12, 0]
    assert pq.read_table(ctx.run_dir / "results.parquet").num_rows > 0

    retry = make_plan(cfg, ctx.store, ctx.run_dir, retry_errors=True)  # nothing left to retry: all done
    assert (retry.partitions_done, retry.grids_done, retry.retries) == (retry.partitions, retry.grids, {})
    assert "retry errors: none — no error records" in retry.text()
    _, s, t = run(retry=True)  # nothing left to retry
    assert (s.computed, s.retried, t["trained"], t["skipped"]) == (0, 0, 0, 1)

    sidecar.write_text("")  # a driver killed mid-write by an older repeval: the group is trained again, no crash
    caplog.clear()
    _, s, t = run()
    assert "inputs.json, is missing or unreadable); training it again" in caplog.text
    assert (s.computed, t["trained"], t["skipped"]) == (0, 1, 0)
    assert json.loads(sidecar.read_text())["partitions"]["clean"][:2] == [12, 0]
    assert not list(sidecar.parent.glob(".*.tmp"))

    # an edited probe (another epoch budget): the group's results were the old configuration's — trained again, once
    edited = experiment(manifest, [FAST_MODEL])
    edited["downstream_models"][0]["epochs"] = 5
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [edited]))
    caplog.clear()
    _, s, t = run()
    assert (s.computed, t["trained"], t["skipped"]) == (0, 1, 0)
    assert "(the training settings changed: the task, probes" in caplog.text
    assert "error records then" not in caplog.text  # the embeddings did not change: not said
    _, s, t = run()
    assert (t["trained"], t["skipped"]) == (0, 1)

    # trained again and the driver killed as it writes the new results (after the history, probes and inputs): the old
    # results never count as this training's — the rerun trains the group again
    edited["downstream_models"][0]["epochs"] = 6
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [edited]))
    from repeval.run import train  # where the train stage looks _write_atomic up

    write_atomic = train._write_atomic

    def killed(table, path):
        if path.parent.name == "groups":
            raise KeyboardInterrupt
        write_atomic(table, path)

    monkeypatch.setattr(train, "_write_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(train, "_write_atomic", write_atomic)
    caplog.clear()
    _, s, t = run()
    assert (t["trained"], t["skipped"]) == (1, 0)
    assert "inputs.json, is missing or unreadable); training it again" in caplog.text

    # inputs.json as an earlier repeval wrote it (partitions as [rows, errors, config hash], no digest of the tracks):
    # the group is not trained again after the upgrade — `repeval plan` agrees — and its record gains what it lacked
    recorded = json.loads(sidecar.read_text())
    assert isinstance(recorded["tracks"], str) and all(len(v) == 4 for v in recorded["partitions"].values())
    sidecar.write_text(json.dumps(_as_earlier(recorded)))
    assert make_plan(cfg, ctx.store, ctx.run_dir).trainings_done > 0
    _, s, t = run()
    assert (s.computed, t["trained"], t["skipped"]) == (0, 0, 1)
    assert json.loads(sidecar.read_text()) == recorded

    # the same record, written just after the partitions' rows (its file's time), and the clean partition embedded
    # anew since — before the upgrade, from the same files: its counts and config hash as recorded, but its row part
    # files written after the record (the time in their names) — the first rerun trains the group again, `repeval
    # plan` agrees; the other partitions, older than the record, are not taken for embedded anew. The grid's Tune
    # experiment, its marker as the earlier repeval wrote it (no data) and of the same time, is not restored with the
    # old embeddings' trials: trained again, each warning said once
    from repeval.run import groups

    monkeypatch.setattr(groups, "REWRITE_SLACK_S", 0.0)  # else the rewrite must come a minute after the record
    sidecar.write_text(json.dumps(_as_earlier(recorded)))
    marker = ctx.run_dir / "tune" / f"pitch__tones__{model}.repeval.json"
    marker.write_text(json.dumps({k: v for k, v in json.loads(marker.read_text()).items() if k != "data"}))
    parts = (tmp_path / "store" / "tones" / model).glob("*/part-*.parquet")
    newest_ns = max(int(p.name.split("-")[1]) for p in parts)
    for f in (sidecar, marker):
        os.utime(f, ns=(newest_ns + 1_000_000, newest_ns + 1_000_000))
    clean.delete()
    assert runner.stage_embed(runner.make_context(cfg), progress=False).computed == 12
    assert make_plan(cfg, ctx.store, ctx.run_dir).trainings_done == 0
    caplog.clear()
    _, s, t = run()
    assert (s.computed, t["trained"], t["skipped"], t["reused_trials"]) == (0, 1, 0, 0)
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    regrid = [m for m in said if "trained before on other inputs (partition clean re-embedded" in m]
    aside = [m for m in said if "was started by an earlier repeval (its marker does not record the data)" in m]
    assert len(regrid) == 1 and len(aside) == 1 and len(said) == len(set(said)), said
    recorded = json.loads(sidecar.read_text())
    assert len(recorded["partitions"]["clean"]) == 4 and isinstance(json.loads(marker.read_text())["data"], str)

    # the clean partition deleted (`repeval store rm`) and embedded again from the same files, same configuration: the
    # same counts and config hash, but other rows — the group is trained on them, not kept with the old embeddings;
    # also after the run directory was copied by hand (into a bucket, `cp -r`), every file then the copy's time, later
    # than the new rows: its records are judged by what they hold (the partitions' writes, the data), not by file times
    clean.delete()
    assert runner.stage_embed(runner.make_context(cfg), progress=False).computed == 12
    copied_ns = (clean.newest_write_ns() or 0) + 3600 * 10**9
    for f in ctx.run_dir.rglob("*"):
        os.utime(f, ns=(copied_ns, copied_ns))
    caplog.clear()
    _, s, t = run()
    assert (s.computed, t["trained"], t["skipped"]) == (0, 1, 0)
    assert f"pitch__tones__{model}: trained before on other inputs (partition clean re-embedded" in caplog.text
    _, s, t = run()  # read again, not re-embedded: done
    assert (s.computed, t["trained"], t["skipped"]) == (0, 0, 1)

    # a label edited in the catalog (a test track's: the tracks per split stay as they were): trained again, and its
    # results are the new labels' — `repeval plan` says so before the run
    before = pq.read_table(ctx.run_dir / "groups" / f"pitch__tones__{model}.parquet")
    text = manifest.read_text()
    assert "high-005,audio/high-005.wav,high,test" in text
    manifest.write_text(text.replace("high-005,audio/high-005.wav,high,test", "high-005,audio/high-005.wav,low,test"))
    assert make_plan(cfg, ctx.store, ctx.run_dir).trainings_done == 0
    caplog.clear()
    ctx, s, t = run()
    assert (s.computed, t["trained"], t["skipped"]) == (0, 1, 0)
    assert f"pitch__tones__{model}: trained before on other inputs (labels changed" in caplog.text
    after = pq.read_table(ctx.run_dir / "groups" / f"pitch__tones__{model}.parquet")
    assert after.column("value").to_pylist() != before.column("value").to_pylist()


def _as_earlier(recorded: dict) -> dict:
    """A group's record as a repeval before the partitions' writes and the tracks' digest wrote it."""
    older = {k: v for k, v in recorded.items() if k != "tracks"}
    older["partitions"] = {sid: v[:3] for sid, v in recorded["partitions"].items()}
    return older


def test_a_label_edited_before_the_upgrade_trains_an_earlier_repevals_group_again(ray_session, tmp_path, caplog):
    """A group recorded by an earlier repeval (no digest of its tracks' labels) whose catalog label was edited before
    the upgrade was reused with the probes trained on the old label: the splits file the run saved when it trained
    holds the old label, so `repeval plan` and the run say the labels changed and train it again — also `repeval
    train` after a `repeval embed` that saved the new labels."""
    manifest = make_catalog(tmp_path / "catalog", per_class=6)
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])]))
    model = FAST_MODEL["id"]

    def run():
        ctx = runner.make_context(cfg)
        runner.stage_embed(ctx, progress=False)
        return runner.stage_train(ctx)

    assert run()["trained"] == 1
    sidecar = tmp_path / "runs" / cfg.run.run_id / "groups" / f"pitch__tones__{model}.inputs.json"
    sidecar.write_text(json.dumps(_as_earlier(json.loads(sidecar.read_text()))))
    text = manifest.read_text()
    manifest.write_text(text.replace("high-005,audio/high-005.wav,high,test", "high-005,audio/high-005.wav,low,test"))
    assert make_plan(cfg, runner.make_context(cfg).store, sidecar.parent.parent).trainings_done == 0
    runner.stage_embed(runner.make_context(cfg), progress=False)  # `repeval embed`: saves the splits anew
    caplog.clear()
    assert runner.stage_train(runner.make_context(cfg))["trained"] == 1  # `repeval train`, another process
    assert run()["skipped"] == 1  # trained again once, then done
    assert (
        f"pitch__tones__{model}: trained before on other inputs (labels changed: the dataset's labels, track ids or "
        "splits differ from the splits/ file saved when it was trained, by an earlier repeval" in caplog.text
    )


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
    sidecar.write_text(json.dumps(_as_earlier(json.loads(sidecar.read_text()))))
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


def _created_by_track(part) -> dict[str, object]:
    """Track id → when its row was written, asserting one row per track."""
    table = part.read(["track_id", "created_at"])
    ids = table.column("track_id").to_pylist()
    assert len(ids) == len(set(ids)), f"{part.name} holds a track twice"
    return dict(zip(ids, table.column("created_at").to_pylist(), strict=True))


def test_store_rm_tracks_recomputes_just_those_and_trains_their_group_again(broken_first_run, caplog):
    """A corrupt file replaced and a test track's audio fixed: `repeval store rm PARTITION --track ID` deletes their
    rows and error record, and the rerun embeds just those (one row per track in each partition), training the group
    again — also when the partition's counts end as they were (only its part files tell)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    first = broken_first_run()
    tmp_path, broken, good = first.root, first.broken, first.good
    cfg = load_config(tmp_path / "c.yaml")
    model = FAST_MODEL["id"]

    def run():
        ctx = runner.make_context(cfg)
        return ctx, runner.stage_embed(ctx, progress=False), runner.stage_train(ctx)

    ctx, s, t = runner.make_context(cfg), first.embedded, first.trained  # run() on the fresh catalog
    clean, d1 = (ctx.store.partition("tones", model, sid) for sid in ("clean", "D1"))
    assert clean.counts() == (11, 1) and t["trained"] == 1
    test_track = sorted(d1.embedded_ids().to_pylist())[0]
    before = {p.name: _created_by_track(p) for p in (clean, d1)}
    broken.write_bytes(good)
    rm = ["store", "rm", str(tmp_path / "store"), f"tones/{model}/*", "--track", "low-001", "--track", test_track]
    res = CliRunner().invoke(app, [*rm, "--yes"])
    assert res.exit_code == 0 and "deleted 2 rows and 1 error record of 2 tracks from 2 partitions" in res.output, (
        res.output
    )
    caplog.clear()
    ctx, s, t = run()
    assert (s.computed, s.errors) == (3, 0)  # low-001 and the test track clean, the test track under D1
    assert clean.complete and d1.complete and clean.counts() == (12, 0) and d1.counts()[1] == 0
    for part, redone in ((clean, {"low-001", test_track}), (d1, {test_track})):
        after = _created_by_track(part)
        assert set(after) == set(before[part.name]) | redone
        assert {tid for tid, at in after.items() if at != before[part.name].get(tid)} == redone
    assert t["trained"] == 1 and "trained before on other inputs" in caplog.text

    # the test track removed from the clean partition alone and embedded again: the same counts, other part files
    res = CliRunner().invoke(
        app, ["store", "rm", str(tmp_path / "store"), f"tones/{model}/clean", "--track", test_track, "--yes"]
    )
    assert res.exit_code == 0, res.output
    caplog.clear()
    _, s, t = run()
    assert s.computed == 1 and clean.counts() == (12, 0) and len(_created_by_track(clean)) == 12
    assert (t["trained"], t["skipped"]) == (1, 0), caplog.text
    assert "re-embedded" in caplog.text, caplog.text
