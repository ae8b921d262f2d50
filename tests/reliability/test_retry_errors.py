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
from reliability_helpers import FAST_MODEL, as_earlier, experiment, make_catalog, write_config

from repeval import runner
from repeval.config import load_config
from repeval.plan import make_plan


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
    """The first run this module's tests start with, on the catalog with the broken train file — embedded, trained and
    tested once, its folder kept as a template. Each call puts a fresh copy of it in the same place (the configuration,
    the store's records and Tune's experiment name absolute paths; file times copied too) for a test to go on from."""
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
    sidecar.write_text(json.dumps(as_earlier(recorded)))
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
    sidecar.write_text(json.dumps(as_earlier(recorded)))
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
    sidecar.write_text(json.dumps(as_earlier(recorded)))
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


def test_a_label_edited_before_the_upgrade_trains_an_earlier_repevals_group_again(broken_first_run, caplog):
    """A group recorded by an earlier repeval (no digest of its tracks' labels) whose catalog label was edited before
    the upgrade was reused with the probes trained on the old label: the splits file the run saved when it trained
    holds the old label, so `repeval plan` and the run say the labels changed and train it again — also `repeval
    train` after a `repeval embed` that saved the new labels. It goes on from the module's first run (its broken
    train file an error record, which these plain runs leave as it is)."""
    first = broken_first_run()
    tmp_path, manifest = first.root, first.manifest
    cfg = load_config(tmp_path / "c.yaml")
    model = FAST_MODEL["id"]

    def run():
        ctx = runner.make_context(cfg)
        runner.stage_embed(ctx, progress=False)
        return runner.stage_train(ctx)

    assert first.trained["trained"] == 1  # run() on the fresh catalog
    sidecar = tmp_path / "runs" / cfg.run.run_id / "groups" / f"pitch__tones__{model}.inputs.json"
    sidecar.write_text(json.dumps(as_earlier(json.loads(sidecar.read_text()))))
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
