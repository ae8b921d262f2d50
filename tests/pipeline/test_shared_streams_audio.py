"""Partitions a dataset name shares across runs and folders: other audio behind the name said once, conflicting
partitions named before Ray starts, a folder or file reached through links one track."""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from streams_cases import GAIN, MODEL, NOISE, catalog, dataset, experiment, rows, write_config

from repeval import runner
from repeval.config import load_config
from repeval.testing.badaudio import write_good


def store_as_a_run_leaves_it(config: Path, ids: list[str], sources: list[dict] | None = None):
    """Complete clean partitions of the config's datasets as a run leaves them (written through the store API: no
    audio decoded), recording ``sources`` (by default what the config says); returns the first and its rows."""
    from repeval.pipeline.partitions import ModelSpec, dataset_source
    from repeval.store import PartitionWriter
    from repeval.store.layout import embedding_schema

    cfg = load_config(config)
    exp = cfg.experiments[0]
    stored = {t: [float(i), 1.0] for i, t in enumerate(ids)}
    parts = []
    for ds in exp.datasets:
        for model in exp.embedding_models:
            spec = ModelSpec.of(cfg, model).partition(cfg, exp, ds, "clean")
            part = runner.make_context(cfg).store.partition(ds.name, model.id, "clean")
            part.stamp(spec.fingerprint, sources=sources or [dataset_source(ds)])
            writer = PartitionWriter(part, embedding_schema(2), 100)
            writer.add_table(pa.Table.from_pylist([{"track_id": t, "embedding": e} for t, e in stored.items()],
                                                  schema=embedding_schema(2)))  # fmt: skip
            writer.flush()
            part.finish({"dataset": ds.name})
            parts.append(part)
    return parts[0], stored


def reuse(config: Path, dataset: str, stored: dict, caplog, models: int = 1) -> list[str]:
    """Run the embedding stage on a store holding every track of each of ``models`` models: nothing computed, the
    stored rows kept; what it said of their source."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="repeval.pipeline.embed"):
        ctx = runner.make_context(load_config(config))
        s = runner.stage_embed(ctx, progress=False)
    assert (s.computed, s.skipped) == (0, models * len(stored))  # reused as stored, whichever audio the name points at
    assert {t: v[0].tolist() for t, v in rows(ctx, dataset, "clean").items()} == stored
    return [r.getMessage() for r in caplog.records if "takes its audio from" in r.getMessage()]


def test_a_dataset_name_pointed_at_other_audio_reuses_its_partitions_and_says_so_once(ray_session, tmp_path, caplog):
    from repeval.plan import make_plan

    low, high = catalog(tmp_path / "low", 220.0), catalog(tmp_path / "high", 880.0)  # same track ids, other audio
    configs = {m: write_config(tmp_path, m.parent.name, [experiment("pitch", [dataset("notes", m)], [])], "s")
               for m in (low, high)}  # fmt: skip
    part, stored = store_as_a_run_leaves_it(configs[low], [f"t-{i:03d}" for i in range(6)])

    assert not reuse(configs[low], "notes", stored, caplog)  # the same audio: nothing to say
    assert "note:" not in make_plan(load_config(configs[low]), part.store).text()
    plan = make_plan(load_config(configs[high]), part.store).text()
    assert f"note: store: notes/{MODEL['id']} (clean) holds 6 tracks reused as stored" in plan
    assert plan.endswith("after which neither says it")  # the plan only reads: it says until a run records it
    said = reuse(configs[high], "notes", stored, caplog)
    assert len(said) == 1 and str(low.parent) in said[0] and str(high.parent) in said[0]
    assert f"repeval store rm {part.store.uri} notes/{MODEL['id']}/clean --yes" in said[0]
    assert said[0].endswith("this run records the new source, and this is not said again")
    assert not reuse(configs[high], "notes", stored, caplog)  # recorded now: not said again
    assert "note:" not in make_plan(load_config(configs[high]), part.store).text()  # nor by the plan


def test_a_dataset_pointed_at_other_audio_is_said_once_for_all_its_models(ray_session, tmp_path, caplog):
    """A dataset embedded by three models and then pointed at other audio (or its manifest edited in place) was said
    once per model: three lines alike but for the model. The run and the plan say it once per dataset, naming its
    models and, in one `store rm` command, every partition."""
    from repeval.plan import make_plan

    low, high = catalog(tmp_path / "low", 220.0), catalog(tmp_path / "high", 880.0)  # same track ids, other audio
    models = [MODEL, {**MODEL, "id": "mfcc-other"}]
    configs = {m: write_config(tmp_path, m.parent.name, [{**experiment("pitch", [dataset("notes", m)], []),
                                                          "embedding_models": models}], "s")
               for m in (low, high)}  # fmt: skip
    part, stored = store_as_a_run_leaves_it(configs[low], [f"t-{i:03d}" for i in range(6)])
    what = f"notes ({MODEL['id']}, mfcc-other: clean) holds 12 tracks reused as stored"
    rm = f"`repeval store rm {part.store.uri} notes/{MODEL['id']}/clean notes/mfcc-other/clean --yes`"
    notes = [line for line in make_plan(load_config(configs[high]), part.store).text().splitlines() if "note:" in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: store: {what}") and rm in notes[0], notes
    said = reuse(configs[high], "notes", stored, caplog, models=2)
    assert len(said) == 1 and said[0].startswith(f"store: {what}") and rm in said[0], said


def test_audio_downloaded_again_into_the_same_folder_is_said_once(ray_session, tmp_path, caplog):
    """A data set without a manifest or index of its own (a custom loader's folder; mirdata without index_path)
    was recorded as its folder only, so audio downloaded again into it (another release, other audio under the
    same track ids) reused the stored rows in silence. The loader's file check stats each audio file already: the
    number, total size and newest time of those files are recorded, and files newer than a partition's record
    are said once, as audio elsewhere is."""
    import os

    from repeval.plan import make_plan

    root = tmp_path / "vocalset"
    files = [root / "FULL" / s / "arpeggios" / "belt" / f"{s}_arpeggios_belt_{v}.wav" for s in ("f1", "f2", "m1", "m2")
             for v in "aeiou"]  # fmt: skip
    for i, f in enumerate(files):
        f.parent.mkdir(parents=True, exist_ok=True)
        write_good(f, 0.1, 220.0 + 10 * i, seed=i)
    exp = experiment("singer", [{"name": "vocalset", "type": "custom", "dir": str(root)}], [])
    exp["task"] = {"name": "singer_identification", "type": "multiclass_classification"}
    config = write_config(tmp_path, "vocalset", [exp])
    ctx = runner.make_context(load_config(config))
    runner.load_rows(ctx, save=False)
    sources = runner.audio_sources(ctx)["vocalset"]
    assert sources[0]["dir"] == str(root) and sources[0]["audio"]["files"] == len(files)
    part, stored = store_as_a_run_leaves_it(config, [f.stem for f in files], sources)

    assert not reuse(config, "vocalset", stored, caplog)  # the audio it was computed from: nothing to say
    assert "note:" not in make_plan(load_config(config), part.store).text()
    kept = {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in files}
    for i, f in enumerate(files):  # other audio of the same lengths copied in keeping its older times (`cp -p`)
        write_good(f, 0.1, 440.0 + 10 * i, seed=i)
        os.utime(f, ns=(kept[f][1], kept[f][1]))
    assert {f: (f.stat().st_size, f.stat().st_mtime_ns) for f in files} == kept  # told by content alone
    plan = make_plan(load_config(config), part.store).text()
    assert f"note: store: vocalset/{MODEL['id']} (clean) holds 20 tracks reused as stored" in plan
    assert ", content sampled " in plan
    for i, f in enumerate(files):  # downloaded again: other audio under the same names (and the same sizes)
        write_good(f, 0.1, 880.0 + 10 * i, seed=i)
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    plan = make_plan(load_config(config), part.store).text()
    assert f"note: store: vocalset/{MODEL['id']} (clean) holds 20 tracks reused as stored" in plan
    said = reuse(config, "vocalset", stored, caplog)
    assert len(said) == 1 and "20 audio files" in said[0]
    assert f"repeval store rm {part.store.uri} vocalset/{MODEL['id']}/clean --yes" in said[0]
    assert not reuse(config, "vocalset", stored, caplog)  # recorded now: not said again


def test_plan_says_once_how_many_reused_partitions_came_from_other_audio_and_until_when(tmp_path):
    """`repeval plan` said one note per dataset and model on every call, each ending "this is not said again"
    (the plan records nothing: a run does). It says one note now: how many pairs and tracks, each pair's sources and
    `store rm` command, and that `repeval run` records the new source, after which neither says it."""
    from repeval.plan import make_plan

    low, high = catalog(tmp_path / "low", 220.0), catalog(tmp_path / "high", 880.0)  # same track ids, other audio
    configs = {m: write_config(tmp_path, m.parent.name, [experiment("pitch", [dataset("a", m), dataset("b", m)], [])],
                               "s") for m in (low, high)}  # fmt: skip
    part, _ = store_as_a_run_leaves_it(configs[low], [f"t-{i:03d}" for i in range(6)])
    for _ in range(2):  # read-only: the same on every call
        plan = make_plan(load_config(configs[high]), part.store).text()
        notes = [line for line in plan.splitlines() if line.startswith("note:")]
        assert notes == [
            "note: store: partitions of 2 datasets reuse 12 stored tracks computed from other audio; `repeval run` says "
            "so and records the new source (this plan only reads the store), after which neither says it:"
        ]
        pairs = [p.strip() for p in plan.split(notes[0])[1].strip().splitlines()]
        assert [p.split(" (")[0] for p in pairs] == [f"- a/{MODEL['id']}", f"- b/{MODEL['id']}"]
        assert all(f"store rm {part.store.uri} " in p and str(low.parent) in p and "not said again" not in p
                   for p in pairs)  # fmt: skip


def test_every_conflicting_partition_is_named_at_once_before_ray_starts(tmp_path, monkeypatch):
    """The embed stage stopped at the first partition computed under another configuration while `repeval plan`
    listed them all: a user fixed them one run at a time. It now names every conflict in one error, with the one
    `repeval store rm` that clears them, before Ray starts or any partition is touched. No Ray: its start fails."""
    from repeval.pipeline.partitions import ModelSpec
    from repeval.store import StoreConflict

    def no_ray(*_a, **_k):
        raise AssertionError("Ray started before the conflicts were named")

    monkeypatch.setattr("repeval.ray_utils.init_ray", no_ray)
    low = catalog(tmp_path / "low", 220.0)
    exps = [experiment("pitch", [dataset("low", low)], [GAIN, NOISE])]
    old = copy.deepcopy(exps)
    old[0]["embedding_models"] = [{**MODEL, "params": {**MODEL["params"], "n_mfcc": 10}}]
    cfg_old = load_config(write_config(tmp_path, "old", old, store="s"))
    ctx = runner.make_context(load_config(write_config(tmp_path, "new", exps, store="s")))
    exp, ds = cfg_old.experiments[0], cfg_old.experiments[0].datasets[0]
    spec = ModelSpec.of(cfg_old, exp.embedding_models[0])
    for sid in ("clean", "D1", "D2"):
        pspec = spec.partition(cfg_old, exp, ds, sid)
        ctx.store.partition("low", "mfcc-fast", sid).stamp(pspec.fingerprint, described=pspec.described)
    stamps = {p: p.read_bytes() for p in (tmp_path / "store-s" / "low").rglob("*") if p.is_file()}
    with pytest.raises(StoreConflict) as err:
        runner.stage_embed(ctx, progress=False)
    said = str(err.value)
    first = said.splitlines()[0]  # what status.json keeps: which, and the one command that clears them
    assert first.startswith(
        "3 store partitions were computed with a different configuration (low/mfcc-fast/clean, low/mfcc-fast/D1, "
        "low/mfcc-fast/D2) — nothing was embedded; "
    ), first
    for sid in ("clean", "D1", "D2"):
        assert f"low/mfcc-fast/{sid} was computed with a different configuration — model.params.n_mfcc" in said, said
    assert f"`repeval store rm {tmp_path / 'store-s'} low/mfcc-fast/clean low/mfcc-fast/D1 low/mfcc-fast/D2 --yes`" in (
        first
    )
    assert {p: p.read_bytes() for p in (tmp_path / "store-s" / "low").rglob("*") if p.is_file()} == stamps  # untouched

    # one conflict is said as before, alone
    (tmp_path / "store-s" / "low" / "mfcc-fast" / "D1" / "_stamp.json").unlink()
    (tmp_path / "store-s" / "low" / "mfcc-fast" / "D2" / "_stamp.json").unlink()
    with pytest.raises(StoreConflict, match=r"^store partition \S+low/mfcc-fast/clean was computed with a different"):
        runner.stage_embed(runner.make_context(load_config(tmp_path / "new.yaml")), progress=False)

    # the library entry point, called directly, scans the store itself: every conflict named at once, before planning
    from repeval.pipeline.embed import embed_experiments

    for sid in ("D1", "D2"):
        pspec = spec.partition(cfg_old, exp, ds, sid)
        ctx.store.partition("low", "mfcc-fast", sid).stamp(pspec.fingerprint, described=pspec.described)
    rows = pa.table({"track_id": ["t-005"], "audio_path": [str(low.parent / "audio" / "t-005.wav")], "split": ["test"]})
    with pytest.raises(StoreConflict, match=r"^3 store partitions were computed with a different configuration"):
        embed_experiments(ctx.cfg, [(ctx.cfg.experiments[0], {"low": rows}, None)], ctx.store)


def test_a_track_two_tasks_name_through_a_symlinked_folder_is_one_to_do_row(tmp_path):
    """Two tasks' rows of one dataset name each file the other's way (through a symlinked folder, a ``..`` step): the
    merged to-do kept a row per spelling, the track decoded twice and its partitions written twice. It is one row now,
    wanting both tasks' scenarios; a file of its own stays a row of its own."""
    from repeval.pipeline.todo import merge_todo

    (tmp_path / "low" / "x").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "low")
    a = pa.table({"track_id": ["t0", "t1", "t2"], "audio_path": [f"{tmp_path}/low/{n}.wav" for n in ("a", "b", "c")]})
    b = pa.table(
        {
            "track_id": ["t2", "t0", "t1"],
            "audio_path": [f"{tmp_path}/link/c.wav", f"{tmp_path}/low/x/../a.wav", "b.wav"],
        }
    )
    merged, masks = merge_todo(a, {"clean": np.ones(3, bool)}, b, {"noise": np.ones(3, bool)})
    assert merged.column("track_id").to_pylist() == ["t0", "t1", "t2", "t1"]
    assert masks["clean"].tolist() == [True, True, True, False]
    assert masks["noise"].tolist() == [True, False, True, True]


def test_a_hard_link_or_a_symlinked_file_is_the_file_it_names(tmp_path):
    """Two definitions naming one file through a hard link were refused as naming other files (and the track decoded
    twice): only folders and symlinks were resolved. A hard link, a symlinked file and ``file://`` are the file; a
    copy, a missing file and a null are not."""
    from repeval.datasets.audio_paths import same_files

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "copy.wav").write_bytes(b"RIFF")
    os.link(tmp_path / "a.wav", tmp_path / "hard.wav")
    (tmp_path / "soft.wav").symlink_to(tmp_path / "a.wav")
    a = pa.array([f"{tmp_path}/a.wav"] * 6)
    b = pa.array(
        [f"{tmp_path}/{n}" for n in ("hard.wav", "soft.wav", "copy.wav", "gone.wav")]
        + [None, f"file://{tmp_path}/a.wav"]
    )
    assert same_files(a, b).tolist() == [True, True, False, False, False, True]
