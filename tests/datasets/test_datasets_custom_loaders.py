"""MagnaTagATune, MTG-Jamendo and VocalSet on tiny fixtures in their real on-disk layouts."""

from __future__ import annotations

from collections import defaultdict

import pytest
from dataset_fixtures import (
    MTAT_TAGS,
    VOCALSET_SINGERS,
    ds_cfg,
    make_magnatagatune,
    make_mtg_jamendo,
    make_vocalset,
    task_cfg,
    write_audio,
)

from repeval.datasets import load_dataset
from repeval.datasets.base import LoadReport
from repeval.datasets.encoding import InvalidLabelError, encode_labels
from repeval.datasets.rows import RowCollector
from repeval.datasets.splits import split_counts
from repeval.datasets.vocalset import TECHNIQUES, singer_id


def _by(rows, key):
    out = defaultdict(set)
    for r in rows.to_pylist():
        out[r[key]].add(r["split"])
    return out


# ----------------------------------------------------------------------------- MagnaTagATune


def test_magnatagatune_top50_and_won_split(tmp_path):
    info = make_magnatagatune(tmp_path)
    ds = ds_cfg("magnatagatune", dir=str(tmp_path))
    rows, report = load_dataset(ds, task_cfg("autotagging", "multilabel_classification"))
    got = {r["track_id"]: r for r in rows.to_pylist()}
    # the rare-tag clip has no top-50 tag: dropped; the corrupt clip: dropped; the clip in no split file: dropped
    assert info["rare_clip"] not in got and info["corrupt"] not in got
    assert set(got) == set(info["split_of"]) - {info["rare_clip"]}
    assert all(r["split"] == info["split_of"][tid] for tid, r in got.items())
    assert all(set(r["label"]) <= set(MTAT_TAGS[:50]) and r["label"] for r in got.values())
    assert [u.split(" ")[0] for u in report.unlabelled] == [info["rare_clip"]]
    assert any(info["corrupt"] in o for o in report.other)
    assert any("in no Won et al. split file" in o for o in report.other)
    # clips of one song share a group
    assert all(r["group"] == info["songs"][tid] for tid, r in got.items())
    assert all(p.endswith(".mp3") and "/audio/" in p for p in rows.column("audio_path").to_pylist())


def test_magnatagatune_without_split_files_uses_the_folder_split(tmp_path):
    info = make_magnatagatune(tmp_path, with_splits=False, n_songs=30)
    task = task_cfg("tagging", "multilabel_classification")
    rows, report = load_dataset(ds_cfg("magnatagatune", dir=str(tmp_path)), task)
    assert any("not found" in o and "12:1:3 folder split" in o for o in report.other)
    # the standard 12:1:3 split of the 16 audio folders: 0-b train, c validation, d-f test
    want = {"c": "validation", "d": "test", "e": "test", "f": "test"}
    for r in rows.to_pylist():
        assert r["split"] == want.get(info["paths"][r["track_id"]][0], "train"), r
    assert set(split_counts(rows)) == {"train", "validation", "test"}
    # split_type: all rotates seeded song-grouped folds instead
    rows, report = load_dataset(ds_cfg("magnatagatune", dir=str(tmp_path), split_type="all"), task)
    assert any("song-grouped stratified folds" in o for o in report.other)
    assert set(split_counts(rows)) == {"train", "validation", "test"}
    assert all(len(s) == 1 for s in _by(rows, "group").values())


def test_magnatagatune_missing_annotations_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations_final\.csv"):
        load_dataset(ds_cfg("magnatagatune", dir=str(tmp_path)), task_cfg("tagging", "multilabel_classification"))
    with pytest.raises(ValueError, match="multilabel"):
        make_magnatagatune(tmp_path)
        load_dataset(ds_cfg("magnatagatune", dir=str(tmp_path)), task_cfg("tagging", "multiclass_classification"))


# ------------------------------------------------------------------------------- MTG-Jamendo


@pytest.mark.parametrize("subset", ["genre", "instrument", "moodtheme", "top50tags"])
def test_mtg_jamendo_subsets_and_official_splits(tmp_path, subset):
    info = make_mtg_jamendo(tmp_path)
    task = task_cfg("autotagging", "multilabel_classification")
    seen_test = set()
    for fold in range(5):
        ds = ds_cfg("mtg_jamendo", dir=str(tmp_path), subset=subset, fold=fold)
        rows, report = load_dataset(ds, task)
        assert report.missing_rows.table().column("track_id").to_pylist() == [info["missing"]]
        assert rows.num_rows == len(info["tracks"]) - 1
        # official splits are artist-disjoint and differ per fold
        assert all(len(s) == 1 for s in _by(rows, "group").values())
        test = frozenset(r["track_id"] for r in rows.to_pylist() if r["split"] == "test")
        seen_test.add(test)
        labels = rows.column("label").to_pylist()
        if subset == "top50tags":
            assert all(any(t.startswith("genre---") for t in lab) for lab in labels)
        else:
            assert all("---" not in t for lab in labels for t in lab)
    assert len(seen_test) == 5
    # both full-quality and audio-low (.low.mp3) files are found
    paths = rows.column("audio_path").to_pylist()
    assert any(p.endswith(".low.mp3") for p in paths) and any(not p.endswith(".low.mp3") for p in paths)


def test_mtg_jamendo_without_its_split_files_draws_the_splits_said_as_a_note_not_a_dropped_row(tmp_path):
    """Without data/splits/split-k the splits are drawn: that was a row problem ("1 other"), counted with the rows a
    load drops."""
    import shutil

    make_mtg_jamendo(tmp_path)
    shutil.rmtree(tmp_path / "data" / "splits")
    ds = ds_cfg("mtg_jamendo", dir=str(tmp_path), subset="genre", fold=2)
    rows, report = load_dataset(ds, task_cfg("autotagging", "multilabel_classification"))
    assert set(rows.column("split").to_pylist()) == {"train", "validation", "test"}
    assert report.counts() == {"missing_audio": 1}, report.lines()
    assert report.notes == [
        f"official split-2 files not found under {tmp_path} (splits/split-2/autotagging_genre-*.tsv): its splits are "
        "drawn instead, seeded, stratified and grouped by artist"
    ]


def test_mtg_jamendo_folds_are_its_official_splits_whose_test_tracks_overlap_which_is_warned(tmp_path, caplog):
    """``split_type: all`` runs fold i on official split-i: the splits are drawn apart, so a track is tested in several
    folds (or none) — the mean over folds is no k-fold estimate and its interval is widened for the overlap. Folds
    with the same rows said so; this loader's folds, each its own rows in its files' order, were not checked at all."""
    import logging

    from repeval.datasets import load_folds

    make_mtg_jamendo(tmp_path)
    ds = ds_cfg("mtg_jamendo", dir=str(tmp_path), subset="genre", split_type="all", n_folds=5)
    with caplog.at_level(logging.WARNING, logger="repeval.datasets.load"):
        folds = load_folds(ds, task_cfg("autotagging", "multilabel_classification"))
    tested: dict[str, int] = {}
    for rows in folds.values():
        for r in rows.to_pylist():
            tested[r["track_id"]] = tested.get(r["track_id"], 0) + (r["split"] == "test")
    never, several = sum(n == 0 for n in tested.values()), sum(n > 1 for n in tested.values())
    assert several > 0
    assert (
        f"dataset mtg_jamendo: of {len(tested)} tracks, {never} are tested in no fold and {several} in several of the "
        "5 folds" in caplog.text
    ), caplog.text
    assert "the folds' results share test tracks, so the interval of their mean is widened for it" in caplog.text
    # what a probe's error adds names the official split (it said: validation = fold 4, test = fold 0)
    from repeval.config import parse_config
    from repeval.run.split_check import fold_hint
    from repeval.runner import RunContext, load_rows

    exp = {
        "task": {"name": "autotagging", "type": "multilabel_classification"},
        "datasets": [{"type": "custom", **ds.model_dump(include={"name", "dir", "subset", "split_type", "n_folds"})}],
        "embedding_models": ["mfcc-stats"],
        "downstream_models": [{"name": "linear", "hidden_units": []}],
    }
    run = {"store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")}
    ctx = RunContext(parse_config({"run": run, "experiments": [exp]}), "p", tmp_path, None)
    load_rows(ctx, save=False)
    assert fold_hint(ctx, 0, "mtg_jamendo", 4) == " (fold 4 of 5: the data set's official split 4)"


def test_mtg_jamendo_subset_names_and_errors(tmp_path):
    make_mtg_jamendo(tmp_path)
    rows, _ = load_dataset(
        ds_cfg("mtg_jamendo_moodtheme", dir=str(tmp_path)), task_cfg("tagging", "multilabel_classification")
    )
    assert {t for lab in rows.column("label").to_pylist() for t in lab} == {f"m{i}" for i in range(5)}
    with pytest.raises(ValueError, match="did you mean 'moodtheme'"):
        ds_cfg("mtg_jamendo", dir=str(tmp_path), subset="mood")
    with pytest.raises(ValueError, match="needs subset"):
        ds_cfg("mtg_jamendo", dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"0\.\.4"):
        load_dataset(
            ds_cfg("mtg_jamendo", dir=str(tmp_path), subset="genre", fold=7),
            task_cfg("tagging", "multilabel_classification"),
        )


def test_mtg_jamendo_custom_loader_reads_the_mirdata_sample(shared_data):
    root = shared_data / "mirdata_samples" / "mir_datasets" / "mtg_jamendo_autotagging_moodtheme"
    rows, report = load_dataset(
        ds_cfg("mtg_jamendo", dir=str(root), subset="moodtheme"), task_cfg("tagging", "multilabel_classification")
    )
    assert rows.column("track_id").to_pylist() == ["track_0000948"]
    assert rows.column("label").to_pylist() == [["background"]] and rows.column("split").to_pylist() == ["train"]
    assert sorted(report.missing_rows.table().column("track_id").to_pylist()) == ["track_0003346", "track_0003524"]


# ---------------------------------------------------------------------------------- VocalSet


def test_vocalset_technique_is_singer_disjoint(tmp_path):
    make_vocalset(tmp_path)
    rows, report = load_dataset(
        ds_cfg("vocalset", dir=str(tmp_path)), task_cfg("technique_identification", "multiclass_classification")
    )
    got = rows.to_pylist()
    assert {r["label"][0] for r in got} == set(TECHNIQUES)
    by_singer = _by(rows, "group")
    assert all(len(s) == 1 for s in by_singer.values())  # no singer in two splits
    assert {s for s, sp in by_singer.items() if sp == {"test"}} == {"f2", "f8", "m3", "m5", "m10"}
    assert {s for s, sp in by_singer.items() if sp == {"validation"}} == {"f9", "m9", "m11"}
    assert set(by_singer) == set(VOCALSET_SINGERS)
    # mir_ref's bugs: m10/m11 read as "m1"; lip_trill labelled trill
    labels = {r["track_id"]: r["label"][0] for r in got}
    assert labels["f1_arpeggios_lip_trill_a"] == "lip_trill" and labels["f1_long_tones_trill_a"] == "trill"
    assert labels["f1_long_tones_trillo_a"] == "trillo"
    singer_of = {r["track_id"]: r["group"] for r in got}
    assert singer_of["m10_arpeggios_belt_a"] == "m10" and singer_of["lip_trill_arps"] == "f2"
    assert labels["m4_slow_vibrato_arps"] == "vibrato"  # 'vibrado' folder typo
    assert not any("fast_forte" in tid for tid in labels)  # not one of the ten techniques
    assert [d.split(" ")[0] for d in report.duplicate_ids] == ["f2_arpeggios_vibrato_a(1)"]


def test_vocalset_technique_without_singer_files_uses_built_in_lists(tmp_path):
    make_vocalset(tmp_path, singer_lists=False)
    rows, _ = load_dataset(
        ds_cfg("vocalset", dir=str(tmp_path)), task_cfg("technique_identification", "multiclass_classification")
    )
    tests = {r["group"] for r in rows.to_pylist() if r["split"] == "test"}
    assert tests == {"f2", "f8", "m3", "m5", "m10"}


def test_vocalset_singer_lists_on_one_line_or_unreadable(tmp_path):
    """A singer list written on one line still names its singers; one naming none is an error, not an empty list
    (which sent the test singers to train)."""
    make_vocalset(tmp_path)
    (tmp_path / "test_singers_technique.txt").write_text("female2, female8, male3, male5, male10\n")
    task = task_cfg("technique_identification", "multiclass_classification")
    rows, _ = load_dataset(ds_cfg("vocalset", dir=str(tmp_path)), task)
    assert {r["group"] for r in rows.to_pylist() if r["split"] == "test"} == {"f2", "f8", "m3", "m5", "m10"}
    (tmp_path / "test_singers_technique.txt").write_text("singer 2 and singer 8\n")
    with pytest.raises(ValueError, match="names no singer"):
        load_dataset(ds_cfg("vocalset", dir=str(tmp_path)), task)


def test_vocalset_technique_folds_are_singer_disjoint(tmp_path):
    from repeval.datasets import load_folds

    make_vocalset(tmp_path)
    task = task_cfg("technique_identification", "multiclass_classification")
    test_singers = []
    folds = load_folds(ds_cfg("vocalset", dir=str(tmp_path), split_type="all", n_folds=4), task)
    assert sorted(folds) == [0, 1, 2, 3]
    for fold in range(4):
        ds = ds_cfg("vocalset", dir=str(tmp_path), split_type="all", n_folds=4, fold=fold)
        rows, _ = load_dataset(ds, task)
        assert rows.equals(folds[fold])  # a run's folds are the folds loaded one by one
        assert all(len(s) == 1 for s in _by(rows, "group").values())
        test_singers.append({r["group"] for r in rows.to_pylist() if r["split"] == "test"})
    assert set().union(*test_singers) == set(VOCALSET_SINGERS)
    assert sum(len(s) for s in test_singers) == len(VOCALSET_SINGERS)


def test_vocalset_singer_identification_is_stratified(tmp_path):
    make_vocalset(tmp_path)
    # an unprefixed recording that MARBLE's and mir_ref's preprocessing delete: left out, reported
    write_audio(tmp_path / "FULL" / "m8" / "excerpts" / "vibrato" / "row_vibrato.wav", 5, 0.05)
    rows, report = load_dataset(
        ds_cfg("vocalset", dir=str(tmp_path)), task_cfg("singer_identification", "multiclass_classification")
    )
    assert "row_vibrato" not in rows.column("track_id").to_pylist()
    assert any(o.startswith("row_vibrato ") for o in report.other)
    per_singer = defaultdict(lambda: defaultdict(int))
    for r in rows.to_pylist():
        per_singer[r["label"][0]][r["split"]] += 1
    assert set(per_singer) == set(VOCALSET_SINGERS)
    # every singer is in every split (stratified 80/10/10), with about 80 % in train
    for counts in per_singer.values():
        assert set(counts) == {"train", "validation", "test"}
        assert counts["train"] >= 0.7 * sum(counts.values())


def test_singer_ids():
    assert singer_id("female2") == "f2" and singer_id("male10") == "m10" and singer_id("M11") == "m11"
    assert singer_id("FULL") is None and singer_id("m1x") is None


def test_vocalset_layout_error_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="zenodo"):
        load_dataset(
            ds_cfg("vocalset", dir=str(tmp_path)), task_cfg("singer_identification", "multiclass_classification")
        )


def test_a_loaders_regression_targets_are_read_as_a_catalogs_cells():
    """The loaders that collect rows one by one (mirdata's, custom ones: :class:`RowCollector`) read a regression
    target with Python's ``float``: ``−0.5`` (U+2212) was refused as non-numeric while a catalog reads it, and ``nan``,
    ``inf`` and ``1_000`` were kept — a NaN target reached the probes. They are read as a catalog reads a cell, each
    refused row with its reason and fix; the task encoder reads them alike."""
    report = LoadReport()
    rows = RowCollector("regression", report, check_files=False)
    labels = ["\u22120.5", "0.25", 2.5, "nan", "1,234.5", "0,31", "\u20131", "1_000", "v=\u22121"]
    for i, label in enumerate(labels):
        rows.add(f"t{i}", f"t{i}.wav", label)
    assert rows.table().column("label").to_pylist() == [["-0.5"], ["0.25"], ["2.5"], ["v=-1"]]
    what = "write a number with the digits 0-9 and '.' as its decimal mark (or name=number)"
    assert report.unknown_labels == [
        f"t3 (regression target 'nan' in the label is not a number — {what})",
        "t4 (regression target '1,234.5' in the label has a thousands separator — write its numbers without a "
        "thousands separator ('1234.5'; in a spreadsheet, a number format without a 1000 separator))",
        "t5 (regression target '0,31' in the label is not a number with '.' as its decimal mark — write it '0.31' if "
        "',' is its decimal mark)",
        "t6 (regression target '–1' in the label holds '–' (U+2013 EN DASH) — write it '-1')",
        f"t7 (regression target '1_000' in the label is not a number — {what})",
    ]
    y, _ = encode_labels("regression", [["\u22120.5"], ["0.25"]])
    assert y.tolist() == [[-0.5], [0.25]]
    with pytest.raises(InvalidLabelError, match=r"^regression target 'inf' in row 1 is not a number — write"):
        encode_labels("regression", [["1"], ["inf"]])


def test_a_load_reports_rows_without_a_usable_label_counted_in_words():
    """The load report's line of rows dropped for their label read "3 no usable label": it counts tracks, one or
    several."""
    report = LoadReport()
    report.add("unlabelled", "a (no label)")
    assert report.lines() == ["1 track with no usable label: a (no label)"]
    report.add("unlabelled", "b (no label)")
    report.add("unlabelled", "c (2 labels ['x', 'y'] for a single-label task)")
    assert report.lines()[0].startswith("3 tracks with no usable label: a (no label), b (no label), c (2 labels")
