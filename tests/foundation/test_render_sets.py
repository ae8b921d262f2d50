"""The rendered tagging and key sets (``repeval data render --kind mixtures|keys``): labels that match their audio,
seeded splits, both manifest formats, and the two shipped configs that use them, run end to end."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from repeval.config import load_config, parse_config
from repeval.datasets.encoding import normalize_key
from repeval.datasets.render import FILES_PER_DIR, render_keys, render_mixtures
from repeval.datasets.render_scores import triad
from repeval.datasets.render_specs import INSTRUMENTS, PITCH_CLASSES, KeySpec, MixtureSpec
from repeval.plan import make_plan

REPO = Path(__file__).resolve().parents[2]

#: Krumhansl-Kessler key profiles (major, minor), C first
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _rows(manifest: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(manifest.open()))


def test_mixtures_are_seeded_multilabel_clips_stratified_by_size(tmp_path):
    spec = MixtureSpec(clips=60, seed=2)
    m1, m2 = render_mixtures(tmp_path / "a", spec), render_mixtures(tmp_path / "b", spec)
    assert m1.read_bytes() == m2.read_bytes()  # same seed → same manifest and files
    rows = _rows(m1)
    assert [r["track_id"] for r in rows] == [f"mix-{i:07d}" for i in range(60)]
    seen: set[str] = set()
    for r in rows:
        names = r["instruments"].split("|")
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names) == int(r["n_instruments"])
        assert names == sorted(names, key=list(INSTRUMENTS).index)
        seen.update(names)
        a, sr = sf.read(m1.parent / r["audio_path"])
        b, _ = sf.read(tmp_path / "b" / r["audio_path"])
        assert sr == 22050 and len(a) == 3 * 22050 and np.array_equal(a, b)
        assert np.abs(a[: sr // 2 + sr // 4]).max() > 0.01  # every instrument enters in the first half-second
    assert seen == set(INSTRUMENTS)
    for k in ("1", "2", "3"):  # stratified by the number of instruments
        assert {r["split"] for r in rows if r["n_instruments"] == k} == {"train", "validation", "test"}
    # another seed draws other clips (12 of them: a set's first clips are the same whatever its size, see below)
    other = render_mixtures(tmp_path / "c", MixtureSpec(clips=12, seed=3))
    assert [r["instruments"] for r in _rows(other)] != [r["instruments"] for r in rows[:12]]
    # a clip's content depends on the seed and its index only: a larger set (the 60 above) starts with the same clips
    smaller = _rows(render_mixtures(tmp_path / "d", MixtureSpec(clips=13, seed=2)))
    assert [r["instruments"] for r in smaller] == [r["instruments"] for r in rows[:13]]
    first = smaller[0]
    assert np.array_equal(
        sf.read(tmp_path / "d" / first["audio_path"])[0], sf.read(m1.parent / rows[0]["audio_path"])[0]
    )


def test_key_progressions_are_in_their_labelled_key(tmp_path):
    """Every key equally often, labels in mir_eval's spelling, and the audio in the labelled key: the
    Krumhansl-Schmuckler key finder on its chroma agrees with the label on most clips (81% of 240 when this
    was written; chance is 1/24)."""
    import librosa

    m = render_keys(tmp_path / "k", KeySpec(clips=96, seed=7))
    rows = _rows(m)
    keys = [r["key"] for r in rows]
    assert sorted(set(keys)) == sorted(f"{pc} {mode}" for pc in PITCH_CLASSES for mode in ("major", "minor"))
    assert all(keys.count(k) == 4 for k in set(keys))
    assert all(normalize_key(k) == k and k == f"{r['tonic']} {r['mode']}" for k, r in zip(keys, rows, strict=True))
    for k in set(keys):
        assert {r["split"] for r in rows if r["key"] == k} == {"train", "validation", "test"}
    hits = 0
    for r in rows:
        y, sr = sf.read(m.parent / r["audio_path"])
        chroma = librosa.feature.chroma_cqt(y=y, sr=sr).mean(axis=1)
        scores = {
            f"{PITCH_CLASSES[t]} {mode}": np.corrcoef(chroma, np.roll(prof, t))[0, 1]
            for t in range(12)
            for mode, prof in (("major", KK_MAJOR), ("minor", KK_MINOR))
        }
        hits += max(scores, key=scores.get) == r["key"]
    assert hits / len(rows) >= 0.7, hits


def test_triads_in_both_modes():
    assert triad(0, "major", 0) == [0, 4, 7] and triad(0, "major", 4) == [7, 11, 14]
    assert triad(9, "minor", 0) == [9, 12, 16]  # A minor
    assert triad(9, "minor", 4) == [16, 20, 23]  # E major: the raised leading tone G#
    assert triad(0, "minor", 1) == [2, 5, 8]  # diminished


def test_parquet_manifest_sharded_folders_and_progress(tmp_path, monkeypatch, capsys, caplog):
    import repeval.datasets.render as render

    monkeypatch.setattr(render, "FILES_PER_DIR", 10)
    m = render_keys(tmp_path / "k", KeySpec(clips=25, manifest_format="parquet"), progress=True)
    err = capsys.readouterr().err
    assert "render k" in err and "25/25" in err and "clip" in err  # a bar, a folder at a time
    assert m.name == "manifest.parquet" and not (tmp_path / "k" / "manifest.csv").exists()
    t = pq.read_table(m)
    assert t.num_rows == 25 and t.column_names[:3] == ["track_id", "audio_path", "key"]
    assert sorted({Path(p).parent.name for p in t.column("audio_path").to_pylist()}) == ["0000", "0001", "0002"]
    assert all((tmp_path / "k" / p).is_file() for p in t.column("audio_path").to_pylist())
    # two processes, a part of a folder each at a time: the same files and rows as one process — and, without a
    # terminal, a progress line at each part (a line a minute, here at once), not once a folder of 1,000 clips
    import logging

    from repeval.pipeline import summary

    monkeypatch.setattr(render, "RENDER_STEP", 4)
    monkeypatch.setattr(summary, "PROGRESS_EVERY_S", 0.0)
    caplog.set_level(logging.INFO, logger="repeval.pipeline.summary")
    m2 = render_keys(tmp_path / "k2", KeySpec(clips=25, manifest_format="parquet"), workers=2)
    said = [int(line.split(" of ")[0].rsplit(" ", 1)[1]) for line in caplog.messages if " of 25 clips (" in line]
    assert said == [4, 8, 10, 14, 18, 20, 24], caplog.messages  # parts of 4 clips, none across a folder of 10
    caplog.clear()
    render.render_dataset(tmp_path / "n", render.RenderSpec(instruments=("piano",), notes_per_instrument=3))
    assert [line.split(" (")[0] for line in caplog.messages] == ["render n: 1 of 3 clips", "render n: 2 of 3 clips"], (
        caplog.messages
    )
    assert pq.read_table(m2).equals(t)
    for p in t.column("audio_path").to_pylist():
        assert (tmp_path / "k2" / p).read_bytes() == (tmp_path / "k" / p).read_bytes()
    mix = pq.read_table(render_mixtures(tmp_path / "m", MixtureSpec(clips=12, manifest_format="parquet")))
    assert str(mix.schema.field("n_instruments").type) == "int64"
    # a re-render in the other format replaces the manifest, never leaves two that disagree
    render_keys(tmp_path / "k", KeySpec(clips=5))
    assert (tmp_path / "k" / "manifest.csv").exists() and not m.exists()
    assert FILES_PER_DIR == 1000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "chords"], "unknown --kind 'chords'; valid: notes, mixtures, keys"),
        (["--kind", "keys", "--clips", "0"], "clips must be at least 1"),
        (["--kind", "mixtures", "--format", "json"], "unknown manifest format 'json'; valid: csv, parquet"),
        (["--kind", "keys", "--audio", "mp3"], "unknown audio format 'mp3'; valid: wav, flac"),
        (["--clips", "5"], "--clips, --format, --workers and --audio are for --kind mixtures and keys"),
    ],
)
def test_render_command_rejects_bad_options(tmp_path, args, message):
    from repeval.cli import app

    r = CliRunner().invoke(app, ["data", "render", str(tmp_path / "out"), *args])
    assert r.exit_code == 1 and message in r.output, r.output


def test_render_command_writes_a_set_that_validates(tmp_path, caplog):
    import logging

    from repeval.cli import app

    caplog.set_level(logging.DEBUG)
    args = ["data", "render", str(tmp_path / "mix"), "--kind", "mixtures", "--clips", "9"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    # what it rendered, where, and the dataset entry that reads it (it said "manifest: PATH" alone)
    mix = tmp_path / "mix"
    assert r.output.splitlines() == [
        f"rendered 9 instrument mixtures into {mix}: audio in {mix / 'audio'}, manifest {mix / 'manifest.csv'}",
        "an experiment with a task of type multilabel_classification (label: instruments) reads it as one of its "
        "datasets:",
        f"  - {{name: mixtures, type: catalog, manifest: {mix / 'manifest.csv'}, label_column: instruments, "
        "label_separator: '|', split_column: split}",
    ], r.output
    assert len(_rows(tmp_path / "mix" / "manifest.csv")) == 9
    # the command says where it wrote, once: the log's "rendered 9 clips into …" only with -v
    assert [rec.getMessage() for rec in caplog.records if rec.name.startswith("repeval.datasets.render")] == []
    r = CliRunner().invoke(app, ["-v", *args])
    assert r.exit_code == 0 and r.output.count("rendered ") == 1, r.output
    # it said "rendered 9 instrument mixtures" again, having rendered none: how many it rendered, and kept
    assert r.output.splitlines()[0] == (
        f"rendered 0 of 9 instrument mixtures into {mix} (9 already there, kept): audio in {mix / 'audio'}, manifest "
        f"{mix / 'manifest.csv'}"
    ), r.output
    said = [rec.getMessage() for rec in caplog.records if rec.name.startswith("repeval.datasets.render")]
    assert said == [f"rendered 0 clips into {tmp_path / 'mix'} (9 already there, kept)"], said


def test_the_render_line_gives_the_dataset_entry_and_the_shipped_config_that_reads_the_set(tmp_path, monkeypatch):
    """`repeval data render` printed "manifest: PATH" alone. It says what it rendered and the catalog entry that reads
    it — the one each shipped configuration has for the set it renders where the README does — and, run where that
    configuration is, the command that runs it."""
    import yaml

    from repeval.datasets.render_output import KINDS, SHIPPED, rendered_text

    where = {
        "notes": "data/quickstart/manifest.csv",
        "mixtures": "data/mixtures/manifest.csv",
        "keys": "data/keys/manifest.csv",
    }
    assert set(where.values()) == set(SHIPPED) and set(where) == set(KINDS)
    monkeypatch.chdir(REPO)
    for kind, manifest in where.items():
        what, label, task = KINDS[kind]
        text = rendered_text(kind, Path(manifest), 3).splitlines()
        assert text[0].startswith(f"rendered 3 {what} into {Path(manifest).parent}: "), text
        assert text[-1] == f"{SHIPPED[manifest]} reads it: `repeval run {SHIPPED[manifest]}`", text
        entry = yaml.safe_load(text[2].removeprefix("  - "))
        exp, ds = next((e, d) for e in load_config(REPO / SHIPPED[manifest]).experiments for d in e.datasets
                       if d.manifest == manifest)  # fmt: skip
        assert (exp.task.effective_type, exp.task.label) == (task, label)
        # the configuration's own name too (`notes` beside its `rendered_notes`: an entry copied from the line embedded
        # the set again under another name in the same store)
        assert {k: getattr(ds, k) for k in entry} == entry
    monkeypatch.chdir(tmp_path)  # no configs/ here: no command to name
    assert "reads it:" not in rendered_text("notes", Path("data/quickstart/manifest.csv"), 3)


def test_shipped_catalog_and_key_configs_plan_on_rendered_data(tmp_path, monkeypatch):
    """configs/catalog.yaml, configs/key_estimation.yaml and configs/aggregation.yaml find their data where `repeval data render` puts it
    and plan the grids their comments describe."""
    from repeval.config.loader import check_data_paths

    monkeypatch.chdir(tmp_path)
    render_mixtures(tmp_path / "data" / "mixtures", MixtureSpec(clips=30))
    render_keys(tmp_path / "data" / "keys", KeySpec(clips=48))
    cat = load_config(REPO / "configs" / "catalog.yaml")
    check_data_paths(cat)  # relative data paths start from the directory repeval runs in
    plan = make_plan(cat)
    exp = cat.experiments[0]
    assert exp.task.type == "multilabel_classification" and exp.datasets[0].label_separator == "|"
    assert (plan.trainings, plan.partitions) == (3 * (6 + 216) * 3, 3 * 5)  # MARBLE's 6 learning rates, Jukemir's 216
    keys = load_config(REPO / "configs" / "key_estimation.yaml")
    check_data_paths(keys)
    plan = make_plan(keys)
    assert keys.experiments[0].task.effective_type == "key_estimation"
    assert (plan.trainings, plan.test_cells, plan.partitions) == (4 * 5, 4 * 5 * 4, 4 * 4)
    agg = load_config(REPO / "configs" / "aggregation.yaml")  # each task three times: mean, prediction, attention
    check_data_paths(agg)
    plan = make_plan(agg)
    assert [e.task.embedding_aggregation for e in agg.experiments] == ["mean", "prediction", "attention"] * 2
    # one store with frames serves every aggregation (each set has a prediction task with both its models)
    assert all(
        agg.keeps_frames(ds.name, m.id) for e in agg.experiments for ds in e.datasets for m in e.embedding_models
    )
    assert (plan.trainings, plan.partitions) == (6 * 2 * 5 * 3, 2 * 2 * 2)  # the three tasks of a set share them


def test_rendered_tagging_and_key_sets_run_end_to_end(ray_session, tmp_path):
    """Both sets through the whole engine (decode, deform, embed, Tune, evaluate): a linear probe on log-mel
    statistics tags the mixtures, one on chroma statistics finds the keys — far above what labels that did not
    match their audio would allow (a macro ROC-AUC of 0.5, a weighted key score of ~0.13 for 24 keys)."""
    from repeval import runner

    mix = render_mixtures(tmp_path / "mix", MixtureSpec(clips=400, seed=1))
    keys = render_keys(tmp_path / "keys", KeySpec(clips=192, seed=1))
    probe = {"hidden_units": [], "standardize": True, "epochs": 60, "patience": 10, "batch_size": 16,
             "learning_rate": 1e-2}  # fmt: skip
    noise = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 20, "max_snr_db": 20, "p": 1}}]
    cfg = parse_config(
        {
            "run": {"run_id": "sets", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")},
            "experiments": [
                {
                    "task": {"name": "tagging", "type": "multilabel_classification", "label": "instruments"},
                    "datasets": [{"name": "mixtures", "type": "catalog", "manifest": str(mix),
                                  "label_column": "instruments", "label_separator": "|", "split_column": "split"}],
                    "deformations": [noise],
                    "embedding_models": ["logmel-stats"],
                    "downstream_models": [probe],
                    "metrics": ["roc_auc_macro", "pr_auc_macro"],
                },
                {
                    "task": {"name": "key_estimation", "type": "key_estimation", "label": "key"},
                    "datasets": [{"name": "progressions", "type": "catalog", "manifest": str(keys),
                                  "label_column": "key", "split_column": "split"}],
                    "deformations": [noise],
                    "embedding_models": ["chroma-stats"],
                    "downstream_models": [probe],
                    "metrics": ["key_weighted_score_micro", "accuracy"],
                },
            ],
        }
    )  # fmt: skip
    ctx = runner.make_context(cfg)
    s = runner.stage_embed(ctx)
    n_test = sum(r["split"] == "test" for r in _rows(mix)) + sum(r["split"] == "test" for r in _rows(keys))
    assert s.errors == 0 and s.computed == 400 + 192 + n_test
    # the frames configs/aggregation.yaml's comment describes: 1-s windows every 0.5 s, four per 3-s mixture and
    # five per 3.25-s progression
    for dataset, model, seconds, frames in (
        ("mixtures", "logmel-stats", 3.0, 4),
        ("progressions", "chroma-stats", 3.25, 5),
    ):
        t = ctx.store.partition(dataset, model, "clean").read(["n_frames", "audio_seconds"])
        assert set(t.column("n_frames").to_pylist()) == {frames}, (dataset, model)
        assert np.allclose(t.column("audio_seconds").to_numpy(), seconds, atol=1e-3), (dataset, model)
    runner.stage_train(ctx)
    res = runner.stage_evaluate(ctx).to_pandas()
    agg = res[res["label"].isna()].set_index(["task", "scenario", "metric"])["value"]
    # (measured when this was written: 0.83 and 0.93; chance: 0.5 and ~0.13)
    assert agg[("tagging", "clean", "roc_auc_macro")] > 0.75, agg
    assert agg[("key_estimation", "clean", "key_weighted_score_micro")] > 0.6, agg
    assert set(agg.index.get_level_values("scenario")) == {"clean", "D1"}
    per_label = res[(res["task"] == "tagging") & res["label"].notna() & (res["scenario"] == "clean")]
    assert set(per_label["label"]) >= set(INSTRUMENTS)  # a score per instrument, not only the average


def test_an_interrupted_render_resumes_and_another_spec_starts_over(tmp_path, monkeypatch, caplog):
    import logging

    import repeval.datasets.render as render

    monkeypatch.setattr(render, "FILES_PER_DIR", 10)
    spec = KeySpec(clips=25, seed=4)
    real = render._render_folder

    def interrupted(*args, **kwargs):
        if args[2] > 0:  # Ctrl-C after the first folder
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "_render_folder", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_keys(tmp_path / "k", spec)
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["audio", "render.json"]  # no manifest of half a set
    monkeypatch.setattr(render, "_render_folder", real)
    with caplog.at_level(logging.DEBUG, logger="repeval.datasets.render"):
        manifest = render_keys(tmp_path / "k", spec)
    assert "rendered 15 clips" in caplog.text and "(10 already there, kept)" in caplog.text
    caplog.clear()
    rows = _rows(manifest)
    first = {r["track_id"]: (tmp_path / "k" / r["audio_path"]).read_bytes() for r in rows}
    # an interruption: two clips never written, one cut short (only ever a temporary name: files are renamed whole)
    for r in rows[3:5]:
        (tmp_path / "k" / r["audio_path"]).unlink()
    (tmp_path / "k" / "audio" / "0002" / ".key-0000021.partial.wav").write_bytes(b"RIFF")
    (tmp_path / "k" / rows[21]["audio_path"]).unlink()
    before = {r["track_id"]: (tmp_path / "k" / r["audio_path"]).stat().st_mtime_ns for r in rows if r["track_id"]
              not in {rows[3]["track_id"], rows[4]["track_id"], rows[21]["track_id"]}}  # fmt: skip
    with caplog.at_level(logging.DEBUG, logger="repeval.datasets.render"):
        assert render_keys(tmp_path / "k", spec) == manifest
    assert "rendered 3 clips" in caplog.text and "(22 already there, kept)" in caplog.text
    assert _rows(manifest) == rows
    assert {r["track_id"]: (tmp_path / "k" / r["audio_path"]).read_bytes() for r in rows} == first
    assert all((tmp_path / "k" / r["audio_path"]).stat().st_mtime_ns == before[r["track_id"]] for r in rows
               if r["track_id"] in before)  # fmt: skip
    # another spec in the same folder: every clip rendered anew, none of the old audio kept
    render_keys(tmp_path / "k", KeySpec(clips=25, seed=5))
    assert all((tmp_path / "k" / r["audio_path"]).read_bytes() != first[r["track_id"]] for r in _rows(manifest))
    assert json.loads((tmp_path / "k" / "render.json").read_text())["spec"]["seed"] == 5


def test_flac_sets_hold_the_same_samples_in_less_space(tmp_path):
    """FLAC is lossless: the same spec as WAV decodes (with repeval's decoder) to the same samples, in fewer bytes."""
    from repeval.audio import decode

    wav = _rows(render_mixtures(tmp_path / "w", MixtureSpec(clips=6, seed=9)))
    flac = _rows(render_mixtures(tmp_path / "f", MixtureSpec(clips=6, seed=9, audio_format="flac")))
    assert [r["instruments"] for r in flac] == [r["instruments"] for r in wav]
    for a, b in zip(wav, flac, strict=True):
        assert b["audio_path"].endswith(".flac") and b["audio_path"][:-5] == a["audio_path"][:-4]
        x, y = (
            decode(str(tmp_path / "w" / a["audio_path"]), 22050),
            decode(str(tmp_path / "f" / b["audio_path"]), 22050),
        )
        assert np.array_equal(x, y)
    size = {d: sum(f.stat().st_size for f in (tmp_path / d / "audio").rglob("*.*")) for d in ("w", "f")}
    assert size["f"] < 0.8 * size["w"]


def _plan_keys(clips: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The keys and splits :func:`render_keys` plans (its first two draws), without rendering audio."""
    from repeval.datasets.render_splits import _splits

    rng = np.random.default_rng(seed)
    keys = rng.permutation(np.arange(clips) % 24)
    return keys, _splits(keys, KeySpec().split_ratios, rng)


@pytest.mark.parametrize(("clips", "expected"), [(3, (1, 1, 1)), (10, (6, 2, 2)), (48, (34, 7, 7)), (50, (34, 8, 8))])
def test_small_key_sets_still_get_validation_and_test_clips(clips, expected):
    """With one or two clips per key, the per-key rounding gave no validation or test clip at all (48 clips: 48
    train, 0, 0): the validation and test splits now take their share of the whole set, one clip per key while
    keys allow, from keys that keep a training clip, the same for a seed."""
    keys, splits = _plan_keys(clips)
    counts = tuple(int((splits == s).sum()) for s in ("train", "validation", "test"))
    assert counts == expected
    assert np.array_equal(splits, _plan_keys(clips)[1])  # seeded
    for s in ("validation", "test"):
        assert len(set(keys[splits == s].tolist())) == int((splits == s).sum())  # spread over keys
    if clips >= 48:  # two clips per key or more: every key keeps a clip to train on
        assert set(keys[splits == "train"].tolist()) == set(range(24))


def test_small_rendered_sets_of_every_kind_have_three_splits(tmp_path):
    """`repeval data render --kind keys --clips 10` rendered 10 train clips and nothing else (a run then failed
    with 'the validation split has no embedded tracks'); mixtures of 5 clips likewise; two notes per instrument
    gave no training note. Each now has train, validation and test clips; larger sets keep their splits."""
    from repeval.cli import app
    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import RenderSpec

    r = CliRunner().invoke(app, ["data", "render", str(tmp_path / "k"), "--kind", "keys", "--clips", "10"])
    assert r.exit_code == 0, r.output
    assert (
        sorted(r["split"] for r in _rows(tmp_path / "k" / "manifest.csv"))
        == ["test"] * 2 + ["train"] * 6 + ["validation"] * 2
    )
    mix = _rows(render_mixtures(tmp_path / "m", MixtureSpec(clips=5, seed=1)))
    assert {r["split"] for r in mix} == {"train", "validation", "test"}
    notes = list(csv.DictReader(render_dataset(tmp_path / "n", RenderSpec(("piano", "flute"), 2)).open()))
    assert sorted(r["split"] for r in notes) == ["test", "train", "train", "validation"]
    # sets whose keys all have three clips or more are split per key as before: 240 (the default) is 6/2/2 a key
    keys, splits = _plan_keys(240)
    for k in range(24):
        assert sorted(splits[keys == k].tolist()) == ["test"] * 2 + ["train"] * 6 + ["validation"] * 2


def test_a_set_too_small_for_three_splits_says_so(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="repeval.datasets.render"):
        rows = _rows(render_keys(tmp_path / "k", KeySpec(clips=2)))
    assert [r["split"] for r in rows] == ["train", "train"]
    assert "2 clips cannot fill the train, validation, test splits: render at least 3 clips" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--notes", "0"], "--notes must be at least 1, got 0"),
        (["--notes", "-1"], "--notes must be at least 1, got -1"),
        (["--seed", "-1"], "--seed must be at least 0, got -1"),
        (["--kind", "keys", "--workers", "0"], "--workers must be at least 1, got 0"),
        (["--kind", "mixtures", "--clips", "-3"], "--clips must be at least 1, got -3"),
    ],
)
def test_render_command_rejects_bad_numbers_before_writing(tmp_path, args, message):
    """`--notes 0` showed an IndexError traceback and left audio/ and manifest.csv behind; `--notes -1` said
    'negative dimensions are not allowed'. Bad numbers are now refused by name before anything is written."""
    from repeval.cli import app

    r = CliRunner().invoke(app, ["data", "render", str(tmp_path / "out"), *args])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)  # no traceback
    assert message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_the_note_sets_progress_bar_is_closed_when_rendering_fails(tmp_path: Path) -> None:
    """``repeval data render --kind notes`` closed its progress bar only once every clip was written: a clip that could
    not be written (here a folder where its file goes) left the bar open, the error's line written onto it. It is
    closed on an error too, as the other sets' bars are."""
    import soundfile as sf
    from tqdm.auto import tqdm

    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import DYNAMICS, RenderSpec

    out = tmp_path / "n"
    for pitch in range(128):  # wherever the first clip falls, its file is a folder
        for dyn in DYNAMICS:
            (out / "audio" / f"piano-{pitch:03d}-{dyn}-000.wav").mkdir(parents=True)
    with pytest.raises(sf.LibsndfileError) as failed:
        render_dataset(out, RenderSpec(instruments=("piano",), notes_per_instrument=2), progress=True)
    assert failed.traceback  # the bar referenced by the error's frames, as when the error is shown
    assert [bar for bar in list(tqdm._instances) if bar.desc == "render n"] == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_rendering_the_same_set_again_keeps_its_manifest_as_it_was(tmp_path, fmt):
    """The same spec rendered again leaves its manifest untouched (a new file's time read as an edited manifest, and
    the next run warned of it); another spec writes its own, and no set-aside file is left."""
    first = render_keys(tmp_path / "k", KeySpec(clips=6, seed=1, manifest_format=fmt))
    stamp = first.stat().st_mtime_ns
    os.utime(first, ns=(stamp - 10**9, stamp - 10**9))  # a second older: a rewrite would show
    assert render_keys(tmp_path / "k", KeySpec(clips=6, seed=1, manifest_format=fmt)) == first
    assert first.stat().st_mtime_ns == stamp - 10**9
    render_keys(tmp_path / "k", KeySpec(clips=6, seed=2, manifest_format=fmt))
    assert first.stat().st_mtime_ns != stamp - 10**9
    assert not [p.name for p in (tmp_path / "k").iterdir() if p.name.startswith(".")]
