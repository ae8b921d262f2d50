"""Rows a dataset drops at load (missing audio, a duplicate id): saved work and a zero exit without ``--strict``,
exit 3 naming the dataset, the count and a row with it, and the counts recorded in the run directory."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pytest
from reliability_helpers import CLASSES, FAST_MODEL, experiment, make_catalog, write_config
from typer.testing import CliRunner

from repeval.cli import app
from repeval.store import EmbeddingStore

GHOSTS = [  # rows whose audio is not there, and a second row for an id already listed
    {"track_id": "ghost-1", "audio_path": "audio/ghost-1.wav", "label": "low", "split": "train"},
    {"track_id": "ghost-2", "audio_path": "audio/ghost-2.wav", "label": "high", "split": "test"},
    {"track_id": "low-000", "audio_path": "audio/low-001.wav", "label": "low", "split": "test"},
]


@pytest.fixture(scope="module")
def dropped_run(ray_session, tmp_path_factory):
    """``repeval embed`` over 10 tones and the three rows above, then ``repeval run --strict`` and ``repeval runs``."""
    root = tmp_path_factory.mktemp("dropped")
    manifest = make_catalog(root, per_class=5, seconds=0.5, extra=GHOSTS)
    cfg = write_config(root / "c.yaml", root, [experiment(manifest, [FAST_MODEL])])
    cli = CliRunner()
    plain = cli.invoke(app, ["embed", str(cfg)])
    strict = cli.invoke(app, ["run", str(cfg), "--strict"])
    runs = cli.invoke(app, ["runs", str(root / "runs")])
    return root, plain, strict, runs


def test_strict_fails_on_rows_dropped_at_load_naming_dataset_count_and_row(dropped_run):
    root, plain, strict, _ = dropped_run
    assert plain.exit_code == 0, plain.output  # without --strict: a warning, and the rest is evaluated
    part = EmbeddingStore(str(root / "store")).partition("tones", FAST_MODEL["id"], "clean")
    assert part.manifest() is not None  # complete: every track that could be evaluated is embedded
    assert {r["track_id"] for r in part.read().to_pylist()} == {f"{c}-{i:03d}" for c in CLASSES for i in range(5)}
    assert strict.exit_code == 3, strict.output
    err = strict.stderr.strip().splitlines()
    assert len(err) == 1, strict.stderr
    line = err[0]
    assert line.startswith("error: --strict: dataset 'tones' dropped 3 rows at load, not evaluated ("), line
    assert f"2 missing audio files: ghost-1 (row 12: {(root / 'audio' / 'ghost-1.wav').resolve()})" in line
    assert "1 duplicate id: low-000 (row 14: repeats the id of row " in line
    assert "check those audio paths and the dataset's root" in line and "correct those rows of the manifest" in line
    assert "already in store" in strict.stdout  # the embedding stage ran (nothing left to compute), then it stopped
    status = json.loads((root / "runs" / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "--strict" in status["reason"]


def test_dropped_rows_are_recorded_in_the_run_directory(dropped_run):
    root, _, _, runs = dropped_run
    [record] = json.loads((root / "runs" / "r" / "load_report.json").read_text())["loads"]
    assert (record["dataset"], record["tasks"], record["rows"]) == ("tones", ["pitch"], 10)
    assert record["problems"] == {"missing_audio": 2, "duplicate_ids": 1}
    assert record["not_evaluated"] == 3
    assert record["lines"][0].startswith("2 missing audio files: ghost-1 (row 12: ")
    assert runs.exit_code == 0, runs.output
    assert "r: 3 dataset rows dropped at load, not evaluated (load_report.json)" in runs.stdout


def test_strict_counts_only_missing_audio_of_built_in_loaders_and_every_dropped_catalog_row():
    from repeval.datasets.base import strict_kinds

    assert strict_kinds("vocalset", "multiclass_classification") == ("missing_audio",)  # numbered copies: protocol
    assert "duplicate_ids" in strict_kinds("catalog", "multiclass_classification")
    assert "unknown_labels" in strict_kinds("catalog", "multiclass_classification")
    # a multilabel row keeps its known labels: the unknown ones are reported, the row is evaluated
    assert "unknown_labels" not in strict_kinds("catalog", "multilabel_classification")


def test_a_dataset_two_tasks_load_says_what_it_dropped_once(tmp_path, caplog):
    """configs/augmentation.yaml's two tasks on one catalog warned "1 missing audio" (and logged the catalog's "rows
    usable" line) twice, once per task, and `repeval plan` and `--strict` said it once per task too. A dataset's
    findings are said once now, by the dataset's name alone when every task's load found the same; a task that loads
    another definition of it (a subset manifest) and finds other rows dropped is named with what it found. The run
    directory's load report keeps a record per dataset and what its loads found, naming the tasks. No Ray: only the
    loads and the plan."""
    import copy
    import logging

    from repeval import runner
    from repeval.config import load_config
    from repeval.plan import make_plan
    from repeval.report.html import _left_out_section
    from repeval.report.results import Run
    from repeval.report.runs import run_info

    manifest = make_catalog(tmp_path, per_class=2, seconds=0.1, extra=GHOSTS)
    lines = manifest.read_text().splitlines()
    (tmp_path / "sub.csv").write_text("\n".join(line for line in lines if "ghost-2" not in line) + "\n")
    first = experiment(manifest, [FAST_MODEL])
    second = copy.deepcopy(first)
    second["task"]["name"] = "pitch_again"
    sub = experiment(tmp_path / "sub.csv", [FAST_MODEL])
    sub["task"]["name"] = "pitch_sub"
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [first, second]))
    caplog.set_level(logging.INFO, logger="repeval")
    ctx = runner.make_context(cfg)
    runner.load_rows(ctx)
    said = [r.getMessage() for r in caplog.records]
    missing = [m for m in said if "missing audio" in m]
    assert len(missing) == 1 and missing[0].startswith("dataset tones: 2 missing audio files: ghost-1 (row "), said
    assert len([m for m in said if "rows usable" in m]) == 1, said
    loads = json.loads((ctx.run_dir / "load_report.json").read_text())["loads"]
    assert [r["tasks"] for r in loads] == [["pitch", "pitch_again"]], loads  # one record for the two tasks
    caplog.clear()
    runner.load_rows(ctx)  # `repeval run`'s training stage, after its embedding stage loaded them: nothing said again
    assert not [r for r in caplog.records if "missing audio" in r.getMessage()]
    notes = [line for line in make_plan(cfg, ctx.store).text().splitlines() if " at load " in line]
    assert len(notes) == 1 and notes[0].startswith(
        "note: dataset tones at load (4 rows kept): 2 missing audio files"
    ), notes
    assert [name for name, _, _ in runner.not_evaluated(ctx)] == ["tones"]
    # `repeval runs` counts them once too, as --strict does (3 rows), not once per task loading them (6)
    strict = sum(sum(counts.values()) for _, counts, _ in runner.not_evaluated(ctx))
    assert run_info(pafs.LocalFileSystem(), str(ctx.run_dir), "r")["rows_not_evaluated"] == strict == 3
    # and the report's "Tracks left out of evaluation" says them once, naming both tasks (it said them per task)
    section = _left_out_section([Run("r", ctx.run_dir, pd.DataFrame())])
    assert section.count("dropped when tones was loaded") == 1, section
    assert "dropped when tones was loaded for pitch, pitch_again: 3 tracks not evaluated" in section, section

    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [first, second, sub], run_id="r2"))
    caplog.clear()
    ctx = runner.make_context(cfg)
    runner.load_rows(ctx)
    missing = [r.getMessage() for r in caplog.records if "missing audio" in r.getMessage()]
    assert [m.split(": ")[0:2] for m in missing] == [
        ["dataset tones (pitch, pitch_again)", "2 missing audio files"],
        ["dataset tones (pitch_sub)", "1 missing audio file"],
    ], missing
    assert [name for name, _, _ in runner.not_evaluated(ctx)] == ["tones (pitch, pitch_again)", "tones (pitch_sub)"]
    strict = sum(sum(counts.values()) for _, counts, _ in runner.not_evaluated(ctx))
    assert run_info(pafs.LocalFileSystem(), str(ctx.run_dir), "r2")["rows_not_evaluated"] == strict == 3 + 2

    folds = [experiment(manifest, [FAST_MODEL], split_column=None, split_type="all", n_folds=3) for _ in range(2)]
    folds[1]["task"]["name"] = "pitch_again"
    caplog.clear()
    ctx = runner.make_context(load_config(write_config(tmp_path / "c.yaml", tmp_path, folds, run_id="r3")))
    runner.load_rows(ctx)
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "split_type all — 3 folds" in m]) == 1, said  # k folds: said once too
    assert len([m for m in said if "missing audio" in m]) == 1, said


def test_plan_strict_runs_and_report_say_one_record_per_dataset_and_finding_old_run_dirs_alike(tmp_path):
    """Two tasks load one catalog alike, a third loads it through a copy of its manifest (another definition, the
    same findings), a fourth through a subset manifest (other findings): `repeval plan`, --strict, `repeval runs` and
    the report say the same two records — one for the three tasks that found the same, one for the subset — from the
    load step's records (they grouped them each their own way). A run directory whose load report an earlier repeval
    wrote (an entry per task) reads the same. No Ray."""
    import re

    from repeval import runner
    from repeval.config import load_config
    from repeval.plan import make_plan
    from repeval.report.html import _left_out_section
    from repeval.report.results import Run
    from repeval.report.runs import run_info

    manifest = make_catalog(tmp_path, per_class=2, seconds=0.1, extra=GHOSTS)
    lines = manifest.read_text().splitlines()
    (tmp_path / "copy.csv").write_text(manifest.read_text())
    (tmp_path / "sub.csv").write_text("\n".join(line for line in lines if "ghost-2" not in line) + "\n")
    exps = [experiment(manifest, [FAST_MODEL]) for _ in range(2)]
    exps += [experiment(tmp_path / "copy.csv", [FAST_MODEL]), experiment(tmp_path / "sub.csv", [FAST_MODEL])]
    for exp, task in zip(exps, ["pitch", "pitch_again", "pitch_copy", "pitch_sub"], strict=True):
        exp["task"]["name"] = task
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, exps))
    ctx = runner.make_context(cfg)
    runner.load_rows(ctx)
    loads = json.loads((ctx.run_dir / "load_report.json").read_text())["loads"]
    assert [(r["tasks"], r["not_evaluated"]) for r in loads] == [
        (["pitch", "pitch_again", "pitch_copy"], 3),
        (["pitch_sub"], 2),
    ], loads

    plan = [line for line in make_plan(cfg, ctx.store).text().splitlines() if " at load " in line]
    found = [re.match(r"note: dataset (.+) at load \(4 rows kept\): .* — (\d+) rows? not evaluated", n) for n in plan]
    assert all(found), plan
    said = [(m[1], int(m[2])) for m in found if m]
    assert said == [("tones (pitch, pitch_again, pitch_copy)", 3), ("tones (pitch_sub)", 2)], plan
    strict = [(name, sum(counts.values())) for name, counts, _ in runner.not_evaluated(ctx)]
    assert strict == said
    assert run_info(pafs.LocalFileSystem(), str(ctx.run_dir), "r")["rows_not_evaluated"] == 3 + 2
    section = _left_out_section([Run("r", ctx.run_dir, pd.DataFrame())])
    headers = re.findall(r"dropped when tones was loaded for ([^:]+): (\d+) track", section)
    assert headers == [("pitch, pitch_again, pitch_copy", "3"), ("pitch_sub", "2")], section

    old = {  # as an earlier repeval wrote it: an entry per task, in the configuration's order
        f"{task}__{r['dataset']}": {"task": task, **{k: v for k, v in r.items() if k != "tasks"}}
        for r in loads
        for task in r["tasks"]
    }
    assert list(old) == ["pitch__tones", "pitch_again__tones", "pitch_copy__tones", "pitch_sub__tones"]
    (ctx.run_dir / "load_report.json").write_text(json.dumps(old))
    assert run_info(pafs.LocalFileSystem(), str(ctx.run_dir), "r")["rows_not_evaluated"] == 3 + 2
    assert _left_out_section([Run("r", ctx.run_dir, pd.DataFrame())]) == section


def test_runs_counts_each_count_of_loads_alike_but_for_what_strict_counts(tmp_path):
    """Two loads of one dataset with the same lines and rows kept but another count of rows not evaluated (what
    --strict counts differs by task) kept the last load's count alone in `repeval runs`; the report's left-out
    section tells them apart by that count, and so does the count now (a load report as an earlier repeval wrote it:
    an entry per task)."""
    from repeval.report.run_files import rows_not_evaluated_of

    entry = {"dataset": "tones", "lines": ["2 missing audio: ghost-1"], "rows": 4}
    report = {
        "a__tones": {**entry, "task": "a", "not_evaluated": 3},
        "b__tones": {**entry, "task": "b", "not_evaluated": 2},
        "c__tones": {**entry, "task": "c", "not_evaluated": 3},  # as a's: counted once
    }
    (tmp_path / "load_report.json").write_text(json.dumps(report))
    assert rows_not_evaluated_of(pafs.LocalFileSystem(), str(tmp_path)) == (3 + 2, None)


def test_a_set_too_small_for_its_split_ratios_is_named_with_its_splits_and_the_fix(dropped_run):
    """Four tracks of two classes, split by the default split_ratios (0.8/0.1/0.1), give validation none: the run
    stopped with "the validation split has no embedded tracks — check the dataset's splits and errors", which did
    not say that no track was given that split, nor what to change. It says how the tracks are split and the fix."""
    from repeval import runner
    from repeval.config import load_config

    root = dropped_run[0]
    ids = ["low-000", "low-001", "high-000", "high-001"]
    (root / "tiny.csv").write_text(
        "track_id,audio_path,label\n" + "".join(f"{t},audio/{t}.wav,{t.split('-')[0]}\n" for t in ids)
    )
    cfg = load_config(
        write_config(root / "tiny.yaml", root, [experiment(root / "tiny.csv", [FAST_MODEL], split_column=None)], "tiny")
    )
    ctx = runner.make_context(cfg)
    runner.stage_embed(ctx)  # the tracks are in the store already: nothing to compute
    with pytest.raises(ValueError) as err:
        runner.stage_train(ctx)
    msg = str(err.value)
    assert msg.startswith(
        "pitch on tones: the validation split holds none of its tracks — the dataset's 4 tracks are split train 2, "
        "validation 0, test 2: add tracks, give them their splits (a catalog's split_column), or raise the "
        "validation split's share of split_ratios (now 0.8/0.1/0.1)"
    ), msg


def test_a_split_column_giving_every_track_its_split_names_that_column_not_split_ratios(tmp_path):
    """A catalog whose split column gives all four tracks the train split left validation empty, and `repeval plan`
    (and the training stage, by the same words) said to raise the validation split's share of split_ratios — which
    drew no split. The fix names the column that gives every split."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.run.rows import split_notes

    manifest = make_catalog(tmp_path, per_class=2, seconds=0.1)  # 2 per class: both rows of each are train
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])]))
    ctx = runner.make_context(cfg)
    runner.load_rows(ctx)
    notes = split_notes(ctx)
    assert notes == [
        "`repeval run` would stop before embedding: pitch on tones: the validation split holds none of its tracks — "
        "the dataset's 4 tracks are split train 4, validation 0, test 0: the manifest's split column 'split' "
        "(dataset.split_column) gives every track its split, so split_ratios drew none — give some tracks the "
        "validation split there, or leave their cells empty for split_ratios to draw"
    ], notes


def test_a_split_left_empty_by_few_groups_names_the_groups(tmp_path):
    """A catalog grouped by artist with one artist per label: each label's only group went to train (a group's tracks
    stay together), leaving validation empty, and the fixes named were only more tracks or more of split_ratios,
    neither of which can help; with two artists in all, k folds left a fold empty, the fix said fewer n_folds (3 is
    the least). Both now name the groups."""
    import csv

    from repeval import runner
    from repeval.config import load_config
    from repeval.run.rows import split_notes

    manifest = make_catalog(tmp_path, per_class=3, seconds=0.1)
    with manifest.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    clause = (
        "group_column 'artist' puts {n} of its tracks in {m} groups, whose tracks stay together (in one split, or "
        "fold), so a label with only one or two groups leaves some split without any — check the groups (group_column)"
    )
    for i, keys, m in ((0, {}, len(CLASSES)), (1, {"split_type": "all", "n_folds": 3}, 2)):
        grouped = tmp_path / f"grouped{i}.csv"
        with grouped.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=[*rows[0], "artist"])
            w.writeheader()
            for j, r in enumerate(rows):  # one artist per label; or two artists, each of both labels
                w.writerow(
                    {**r, "audio_path": str(tmp_path / r["audio_path"]), "artist": str(j % 2) if i else r["label"]}
                )
        exp = experiment(grouped, [FAST_MODEL], split_column=None, group_column="artist", **keys)
        ctx = runner.make_context(load_config(write_config(tmp_path / f"c{i}.yaml", tmp_path, [exp])))
        runner.load_rows(ctx)
        (note,) = split_notes(ctx)
        assert note.endswith(clause.format(n=len(rows), m=m)), note


def test_run_stops_on_a_split_without_tracks_before_embedding_any(ray_session, tmp_path):
    """`repeval run` on a dataset leaving the validation split without tracks embedded every track (hours of audio)
    and only then stopped before training. It stops once the datasets are loaded, in the training stage's words,
    with nothing embedded; `repeval embed` still fills the store."""
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.1)  # the split column makes all four tracks train
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    cli = CliRunner()
    ran = cli.invoke(app, ["run", str(cfg)])
    assert ran.exit_code == 1, ran.output
    assert "error: pitch on tones: the validation split holds none of its tracks — the dataset's 4 tracks" in ran.output
    assert ran.output.rstrip().endswith("— nothing was trained"), ran.output
    store = EmbeddingStore(str(tmp_path / "store"))
    assert not store.exists() or not store.partitions(), ran.output  # nothing embedded
    embedded = cli.invoke(app, ["embed", str(cfg), "--run-id", "e"])
    assert embedded.exit_code == 0, embedded.output
    assert [p.name for p in store.partitions()], embedded.output


def test_a_fold_whose_tracks_all_failed_names_the_errors_not_fewer_folds(dropped_run, tmp_path):
    """A k-fold split whose every track is an error record (0-byte audio) said 'with few tracks per class use fewer
    n_folds' after the command listing the errors: the fold is named, the fix is the errors', said once for the grids
    it stops."""
    import shutil

    from repeval import runner
    from repeval.config import load_config

    root = dropped_run[0]
    ids = [f"{c}-{i:03d}" for c in CLASSES for i in range(3)]
    (tmp_path / "audio").mkdir()
    for t in ids:
        shutil.copy(root / "audio" / f"{t}.wav", tmp_path / "audio" / f"{t}.wav")
    (tmp_path / "kf.csv").write_text(
        "track_id,audio_path,label\n" + "".join(f"{t},audio/{t}.wav,{t.split('-')[0]}\n" for t in ids)
    )
    exp = experiment(tmp_path / "kf.csv", [FAST_MODEL], split_column=None, split_type="all", n_folds=3, name="kf")
    ctx = runner.make_context(load_config(write_config(tmp_path / "kf.yaml", tmp_path, [exp], "kf")))
    runner.load_rows(ctx)
    fold0 = ctx.folds[(0, "kf")][0]
    broken = fold0.filter(pc.equal(fold0.column("split"), "validation")).column("track_id").to_pylist()
    assert broken
    for t in broken:
        (tmp_path / "audio" / f"{t}.wav").write_bytes(b"")  # an error record each, once embedded
    runner.stage_embed(ctx)
    with pytest.raises(ValueError) as err:
        runner.stage_train(ctx)
    msg = str(err.value)
    part = EmbeddingStore(str(tmp_path / "store")).partition("kf", FAST_MODEL["id"], "clean")
    # fold 0 is the validation split of its own grid, the test split of fold 2's and (3 folds) the training split of
    # fold 1's: one problem, said once with the command listing the errors — it was said three times, once per grid
    assert msg == (
        f"pitch on kf/{FAST_MODEL['id']}: none of the {len(broken)} tracks of fold 0 of 3 was embedded, so fold 0 "
        f"validates, fold 2 tests and fold 1 trains on no track — each is an error record: "
        f"`{part.show_errors_command()}` says why — nothing was trained"
    ), msg
    assert "n_folds" not in msg, msg
    # `repeval plan` says it before anything trains, once, and counts the failed tracks as tracks: each failed in the
    # clean and the deformed scenario (4 records) — it said "4 track(s) of this run"
    from repeval.plan import make_plan

    plan = make_plan(ctx.cfg, ctx.store, ctx.run_dir)
    stops = [n for n in plan.notes if "would stop" in n]
    assert stops == [f"`repeval run` would stop before training: {msg.removesuffix(' — nothing was trained')}"], stops
    said = plan.text()
    records = f"4 error records in 2 partitions ({part.name}, kf/{FAST_MODEL['id']}/D1), 2 tracks of this run"
    assert f"note: {records}: `repeval run` leaves them out" in said, said
    retry = make_plan(ctx.cfg, ctx.store, ctx.run_dir, retry_errors=True)  # computes them again: no stop foreseen
    assert not [n for n in retry.notes if "would stop" in n], retry.notes
    assert "4 error records deleted, 2 tracks of this run they name computed again" in retry.text()


def test_validate_says_the_rows_a_datasets_load_drops(tmp_path):
    """`repeval validate` said "valid" of a configuration whose catalog has rows its load drops (missing audio, a
    duplicate id): only `repeval plan` and the run named them. validate says them now, as plan does. No Ray."""
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.1, extra=GHOSTS)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    res = CliRunner().invoke(app, ["validate", str(cfg), "--skip-model-check"])
    assert res.exit_code == 0, res.output
    [note] = [line for line in res.stdout.splitlines() if " at load " in line]
    assert note.startswith("note: dataset tones at load (4 rows kept): 2 missing audio files: ghost-1 (row "), note
    assert "1 duplicate id: low-000 (row " in note and "3 rows not evaluated" in note, note
