"""Where a partition's audio came from when a ``ray job submit`` job reads it from its uploaded working directory:
Ray unpacks each upload anew (``…/_ray_pkg_<hash>``, every file's time reset), so the store records those paths
relative to the job's working directory and compares sizes, not times. No Ray: the job is what
:func:`repeval.ray_cluster.job_working_dir` reads (Ray's job-config variable and the driver's current directory)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.pipeline.partitions import changed_source
from repeval.plan import make_plan
from repeval.ray_cluster import RAY_JOB_CONFIG_ENV
from repeval.store import EmbeddingStore
from repeval.testing.badaudio import write_good

MODEL = {"id": "mfcc-fast", "type": "mfcc-stats", "params": {"sample_rate_hz": 8000, "n_mfcc": 8}}
IDS = [f"t-{i}" for i in range(4)]


def checkout(root: Path, store: Path) -> Path:
    """A checkout with its data in it: a catalog (data/notes, the quickstart's layout) and a folder a custom loader
    lists (data/vocalset), and a config that names both by relative paths."""
    notes = root / "data" / "notes"
    (notes / "audio").mkdir(parents=True)
    with (notes / "manifest.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "audio_path", "label"])
        for i, tid in enumerate(IDS):
            write_good(notes / "audio" / f"{tid}.wav", 0.1, 220.0 * (1 + i), seed=i)
            w.writerow([tid, f"audio/{tid}.wav", "ab"[i % 2]])
    for i, singer in enumerate(("f1", "f2", "m1", "m2")):
        wav = root / "data" / "vocalset" / "FULL" / singer / "arpeggios" / "belt" / f"{singer}_arpeggios_belt_a.wav"
        wav.parent.mkdir(parents=True)
        write_good(wav, 0.1, 330.0 + 10 * i, seed=i)
    experiments = [
        {
            "task": {"name": "pitch", "type": "multiclass_classification"},
            "datasets": [
                {"name": "notes", "type": "catalog", "manifest": "data/notes/manifest.csv", "label_column": "label"}
            ],
            "embedding_models": [MODEL],
            "downstream_models": [{"name": "linear", "hidden_units": [], "epochs": 2}],
        },
        {
            "task": {"name": "singer_identification", "type": "multiclass_classification"},
            "datasets": [{"name": "vocalset", "type": "custom", "dir": "data/vocalset"}],
            "embedding_models": [MODEL],
            "downstream_models": [{"name": "linear", "hidden_units": [], "epochs": 2}],
        },
    ]
    run = {"run_id": "job", "store": str(store), "runs_dir": str(store.parent / "runs")}
    (root / "job.yaml").write_text(yaml.safe_dump({"run": run, "experiments": experiments}, sort_keys=False))
    return root


def unpacked(src: Path, tmp: Path, digest: str, mtime_s: float) -> Path:
    """Ray's copy of ``src`` for one upload: at its ``_ray_pkg_<hash>`` path, every file's time the unpacking's."""
    dst = tmp / "session_1" / "runtime_resources" / "working_dir_files" / f"_ray_pkg_{digest}"
    shutil.copytree(src, dst)
    for path in dst.rglob("*"):
        os.utime(path, (mtime_s, mtime_s))
    return dst


def in_job(monkeypatch, working_dir: Path) -> None:
    """This process as the driver of a job whose runtime env uploads a working dir, unpacked at ``working_dir``."""
    monkeypatch.setenv(RAY_JOB_CONFIG_ENV, json.dumps({"runtime_env": {"working_dir": "gcs://_ray_pkg_x.zip"}}))
    monkeypatch.chdir(working_dir)


def sources() -> dict[str, list[dict]]:
    """What a run from the current directory records of each dataset (its rows loaded as a run loads them)."""
    ctx = runner.make_context(load_config(Path("job.yaml")))
    runner.load_rows(ctx, save=False)
    return runner.audio_sources(ctx)


def stored(store: Path, found: dict[str, list[dict]]) -> dict[str, object]:
    """A complete partition of each dataset of the config in the current directory, holding every track and
    recording ``found`` as a run leaves it (written through the store API: no audio decoded)."""
    from repeval.pipeline.partitions import ModelSpec
    from repeval.store import PartitionWriter
    from repeval.store.layout import embedding_schema

    cfg = load_config(Path("job.yaml"))
    ctx = runner.make_context(cfg)
    runner.load_rows(ctx, save=False)
    parts = {}
    for ei, exp in enumerate(cfg.experiments):
        ds = exp.datasets[0]
        part = EmbeddingStore(str(store)).partition(ds.name, MODEL["id"], "clean")
        part.stamp(ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, ds, "clean").fingerprint,
                   sources=found[ds.name])  # fmt: skip
        writer = PartitionWriter(part, embedding_schema(2), 100)
        ids = ctx.rows[(ei, ds.name)].column("track_id").to_pylist()
        writer.add_table(pa.Table.from_pylist([{"track_id": t, "embedding": [1.0, 2.0]} for t in ids],
                                              schema=embedding_schema(2)))  # fmt: skip
        writer.flush()
        part.finish({"dataset": ds.name})
        parts[ds.name] = part
    return parts


def plan_notes() -> list[str]:
    cfg = load_config(Path("job.yaml"))
    return [line for line in make_plan(cfg, runner.make_context(cfg).store).text().splitlines() if "other audio" in line
            or "takes its audio from" in line or "was edited" in line]  # fmt: skip


@pytest.fixture
def copies(tmp_path, monkeypatch):
    """A checkout, two of Ray's copies of it (as two submits after a change leave them) and a store whose
    partitions a job in the first copy recorded."""
    store = tmp_path / "store"
    src = checkout(tmp_path / "checkout", store)
    first, second = unpacked(src, tmp_path, "886e", 1.7e9), unpacked(src, tmp_path, "39a9", 1.8e9)
    in_job(monkeypatch, first)
    found = sources()
    return src, first, second, store, found


def test_a_job_records_its_data_relative_to_its_working_dir_and_a_new_copy_reuses_it_in_silence(copies, monkeypatch):
    """A job submitted again after any file of the checkout changed ran in a new copy: every dataset and model
    warned that its stored tracks were "computed from other audio" (…/_ray_pkg_886e… against …/_ray_pkg_39a9…) and
    suggested `repeval store rm` — a false alarm that deletes good embeddings."""
    src, first, second, store, found = copies
    notes, vocalset = found["notes"][0], found["vocalset"][0]
    assert (notes["dir"], notes["manifest"], notes["relative_to"]) == ("data/notes", "data/notes/manifest.csv",
                                                                      "job_working_dir")  # fmt: skip
    assert "modified" not in notes and notes["size"] == (first / "data/notes/manifest.csv").stat().st_size
    assert vocalset["dir"] == "data/vocalset" and vocalset["audio"]["files"] == 4 and "newest" not in vocalset["audio"]
    parts = stored(store, found)

    in_job(monkeypatch, second)  # resubmitted: the same data in a new copy, unpacked later
    again = sources()
    assert again == found  # the same record: nothing to add to the partitions
    assert all(changed_source(parts[name], again[name]) is None for name in parts)
    assert plan_notes() == []

    monkeypatch.delenv(RAY_JOB_CONFIG_ENV)  # `repeval plan` / `repeval run` from the checkout the jobs came from
    monkeypatch.chdir(src)
    here = sources()
    assert here["notes"][0]["dir"] == str((src / "data/notes").resolve())  # outside a job: absolute, as before
    assert all(changed_source(parts[name], here[name]) is None for name in parts)
    assert plan_notes() == []


def test_other_audio_at_the_same_relative_path_in_a_new_copy_is_still_said(copies, tmp_path, monkeypatch):
    """Times tell nothing in an unpacked copy; sizes still do: audio rendered again (other lengths) under the same
    relative path, or a manifest written anew, is said as other audio, naming the paths in the job's working dir."""
    src, _, _, store, found = copies
    parts = stored(store, found)
    for i, wav in enumerate(sorted((src / "data" / "vocalset").rglob("*.wav"))):
        write_good(wav, 0.2, 880.0 + 10 * i, seed=i)  # other audio, twice as long
    with (src / "data/notes/manifest.csv").open("a", newline="") as fh:
        fh.write("t-9,audio/t-0.wav,b\n")
    third = unpacked(src, tmp_path, "c0ff", 1.9e9)

    in_job(monkeypatch, third)
    now = sources()
    assert changed_source(parts["vocalset"], now["vocalset"]) == found["vocalset"]
    assert changed_source(parts["notes"], now["notes"]) == found["notes"]
    said = plan_notes()
    assert ("partitions of 2 datasets reuse 8 stored tracks computed from other audio or before an edit of their "
            "manifest") in said[0]  # fmt: skip
    assert any("computed from the audio of data/vocalset in the job's working directory (4 audio files, " in line
               for line in said)  # fmt: skip
    size = (src / "data/notes/manifest.csv").stat().st_size
    assert any(f"notes/mfcc-fast (clean) reuses 4 stored tracks embedded before manifest data/notes/manifest.csv in "
               f"the job's working directory was edited ({size - 20:,} bytes; now {size:,} bytes)" in line for line in said)  # fmt: skip


def test_a_manifest_edited_in_place_is_said_in_a_few_words(tmp_path, monkeypatch):
    """A path fixed in a catalog's manifest changes its size and time, by which the store tells the manifest a
    partition was computed from: a run and the plan said the whole of both sources, as for audio elsewhere ("…
    computed from the audio of … (manifest …); dataset 'notes' now takes its audio from … If that is other audio …").
    The store keeps no track's path, so which stored tracks the edit touched is not known: the note says the manifest
    was edited, which tracks that can matter for, and the command, in one sentence. Said once per dataset: three
    models embedded before the edit gave three lines alike, one per model; they are one, naming the models and every
    partition in its command."""
    from repeval.pipeline.partitions import source_notes

    store = tmp_path / "store"
    src = checkout(tmp_path / "checkout", store)
    monkeypatch.chdir(src)
    found = sources()
    parts = stored(store, found)
    manifest = src / "data/notes/manifest.csv"
    before = manifest.stat().st_size
    write_good(src / "data/notes/audio/t-3-fixed.wav", 0.1, 440.0, seed=3)
    manifest.write_bytes(manifest.read_bytes().replace(b"audio/t-3.wav", b"audio/t-3-fixed.wav"))  # one path fixed
    now = sources()
    assert changed_source(parts["notes"], now["notes"]) == found["notes"]  # still told
    assert changed_source(parts["vocalset"], now["vocalset"]) is None
    was, is_ = found["notes"][0]["modified"], now["notes"][0]["modified"]
    said = (f"notes/mfcc-fast (clean) reuses 4 stored tracks embedded before manifest {manifest.resolve()} was "
            f"edited ({before:,} bytes, modified {was}; now {before + 6:,} bytes, modified {is_}): only a track whose "
            "audio path the edit changed may hold another file's embedding — if it changed a stored track's path, "
            f"delete that track's rows (`repeval store rm {store} notes/mfcc-fast/clean --track TRACK_ID --yes`: the next run embeds it again) "
            f"or recompute the partitions (`repeval store rm {store} notes/mfcc-fast/clean --yes`); if it fixed labels or "
            "splits, added rows or gave a missing file's track its audio, nothing to do")  # fmt: skip
    assert plan_notes() == [f"note: store: {said}: `repeval run` says so and records the new source (this plan only "
                            "reads the store), after which neither says it"]  # fmt: skip
    run = source_notes(str(store), "notes", {MODEL["id"]: {"clean": (found["notes"], 4)}}, now["notes"])
    assert run == [f"store: {said}: this run records the edited manifest, and this is not said again"]
    # three models embedded before the edit: one note naming them all and every partition, not three alike
    three = {m: {"clean": (found["notes"], 4), "D1": (found["notes"], 1)} for m in ("m1", "m2", "m3")}
    [one] = source_notes(str(store), "notes", three, now["notes"])
    assert one.startswith(f"store: notes (m1, m2, m3: clean, D1) reuses 15 stored tracks embedded before manifest "
                          f"{manifest.resolve()} was edited ({before:,} bytes, modified {was}; now"), one  # fmt: skip
    names = " ".join(f"notes/{m}/{sid}" for m in ("m1", "m2", "m3") for sid in ("clean", "D1"))
    assert f"(`repeval store rm {store} {names} --yes`)" in one, one
    # models with other scenarios are named each with its own; one whose partitions came from elsewhere: a note of its own
    three["m2"] = {"clean": (found["notes"], 4)}
    three["m3"] = {"clean": ([{**found["notes"][0], "manifest": str(tmp_path / "older.csv")}], 4)}
    first, other = source_notes(str(store), "notes", three, now["notes"])
    assert first.startswith("store: notes (m1: clean, D1; m2: clean) reuses 9 stored tracks embedded before"), first
    assert other.startswith("store: notes/m3 (clean) holds 4 tracks reused as stored, computed from"), other
    # another manifest (or folder) is audio elsewhere: said in full, as before
    moved = [{**now["notes"][0], "manifest": str(tmp_path / "other.csv")}]
    [full] = source_notes(str(store), "notes", {MODEL["id"]: {"clean": (found["notes"], 4)}}, moved)
    assert "now takes its audio from" in full


def test_a_store_recorded_by_an_earlier_repeval_at_the_copys_absolute_path_is_the_same_audio(copies, monkeypatch):
    """Stores written before recorded the unpacked copy's absolute path (with its reset times): a job in a new copy
    of the same data, and the checkout, match it; another place still does not."""
    src, first, second, store, _ = copies
    monkeypatch.delenv(RAY_JOB_CONFIG_ENV)  # as an earlier repeval recorded it in the job: absolute, with times
    found = sources()
    assert found["notes"][0]["dir"] == str(first.resolve() / "data/notes") and "modified" in found["notes"][0]
    parts = stored(store, found)

    in_job(monkeypatch, second)  # a job in a new copy of the same data
    now = sources()
    assert all(changed_source(parts[name], now[name]) is None for name in parts)
    monkeypatch.chdir(src)  # the checkout
    monkeypatch.delenv(RAY_JOB_CONFIG_ENV)
    here = sources()
    assert all(changed_source(parts[name], here[name]) is None for name in parts)
    elsewhere = [{**s, "dir": str(second.resolve() / "elsewhere")} for s in found["vocalset"]]
    assert changed_source(parts["vocalset"], elsewhere) == found["vocalset"]  # another folder: other audio


def test_audio_rewritten_at_the_same_size_in_a_new_copy_is_said_an_unchanged_one_is_not(copies, tmp_path, monkeypatch):
    """An upload resets every file's time, so a job compared the audio by count and size alone: audio rendered again
    at the same lengths (the same sizes) under the same paths reused the stored rows in silence. A digest of a sample
    of the files' content (their starts and ends) tells it; a new copy of unchanged audio stays silent."""
    src, _, second, store, found = copies
    parts = stored(store, found)
    assert found["vocalset"][0]["audio"]["content"]
    in_job(monkeypatch, second)  # unchanged, unpacked again at other times
    assert changed_source(parts["vocalset"], sources()["vocalset"]) is None
    wavs = sorted((src / "data" / "vocalset").rglob("*.wav"))
    sizes = [w.stat().st_size for w in wavs]
    write_good(wavs[0], 0.1, 990.0, seed=7)  # one file rendered again: another tone, as long
    assert [w.stat().st_size for w in wavs] == sizes
    in_job(monkeypatch, unpacked(src, tmp_path, "d00d", 1.9e9))
    now = sources()
    assert now["vocalset"][0]["audio"]["bytes"] == found["vocalset"][0]["audio"]["bytes"]
    assert changed_source(parts["vocalset"], now["vocalset"]) == found["vocalset"]
    assert changed_source(parts["notes"], now["notes"]) is None  # its audio untouched
    said = plan_notes()
    assert len(said) == 1 and "vocalset/mfcc-fast (clean) holds 4 tracks reused as stored" in said[0]
    assert ", content sampled " in said[0]
    old = {**found["vocalset"][0], "audio": {k: v for k, v in found["vocalset"][0]["audio"].items() if k != "content"}}
    assert changed_source(stored(tmp_path / "older", {**found, "vocalset": [old]})["vocalset"], now["vocalset"]) is None


def test_the_note_names_its_partitions_in_the_configurations_order():
    """The note of rows computed from audio elsewhere listed a dataset and model's scenarios by name ("(D1, clean,
    noise)"); it lists them as the run and the plan find them — the configuration's order, clean first — in its words
    and in its ``store rm`` command alike."""
    from repeval.pipeline.partitions import source_notes

    was, now = [{"type": "catalog", "dir": "/data/old"}], [{"type": "catalog", "dir": "/data/new"}]
    changed = {"clean": (was, 4), "noise": (was, 1), "D1": (was, 1)}
    [said] = source_notes("s", "ds", {"m": changed}, now)
    assert "ds/m (clean, noise, D1) holds 6 tracks reused as stored" in said, said
    assert "`repeval store rm s ds/m/clean ds/m/noise ds/m/D1 --yes`" in said, said


def test_a_models_partitions_that_recorded_different_sources_are_each_named_by_theirs():
    """Models were grouped by their first partition's recorded sources: a model whose clean partition came from one
    folder and its deformed one from another was said once, "computed from the audio of" the first alone, and the
    second partition's source was never named. Each partition is grouped by its own record: one note per source, the
    model's partitions split between them (and each note's count and ``store rm`` command its own partitions')."""
    from repeval.pipeline.partitions import plan_notes, source_notes

    now = [{"type": "catalog", "dir": "/data/new"}]
    a, b = [{"type": "catalog", "dir": "/data/a"}], [{"type": "catalog", "dir": "/data/b"}]
    changed = {"m1": {"clean": (a, 4), "D1": (b, 1)}, "m2": {"clean": (b, 2)}}
    first, second = source_notes("s", "ds", changed, now)
    assert first.startswith("store: ds/m1 (clean) holds 4 tracks reused as stored, computed from the audio of "
                            "/data/a;"), first  # fmt: skip
    assert "/data/b" not in first and "`repeval store rm s ds/m1/clean --yes`" in first, first
    assert second.startswith("store: ds (m1: D1; m2: clean) holds 3 tracks reused as stored, computed from the "
                             "audio of /data/b;"), second  # fmt: skip
    assert "`repeval store rm s ds/m1/D1 ds/m2/clean --yes`" in second, second
    assert [n for _, _, n in plan_notes("s", {"ds": changed}, {"ds": now})] == [4, 3]


def test_the_plans_note_counts_each_note_its_own_models_tracks():
    """One dataset whose two models recorded other sources gets two notes; the plan's head added up each note's
    tracks — it gave each the dataset's total (4 + 1 counted twice: 10, not 5) and said "1 datasets"."""
    from repeval.pipeline.partitions import plan_notes, plan_source_note

    now = [{"type": "catalog", "dir": "/data/new"}]
    a, b = [{"type": "catalog", "dir": "/data/a"}], [{"type": "catalog", "dir": "/data/b"}]
    notes = plan_notes("s", {"ds": {"m1": {"clean": (a, 4)}, "m2": {"clean": (b, 1)}}}, {"ds": now})
    assert [n for _, _, n in notes] == [4, 1]
    head = plan_source_note(notes).splitlines()[0]
    assert head.startswith("store: partitions of 1 dataset reuse 5 stored tracks computed from other audio"), head
