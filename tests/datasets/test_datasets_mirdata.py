"""Every sample in ../shared/data through mirdata's own loaders, with the shipped indexes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from dataset_fixtures import ds_cfg, make_beatport_variants, task_cfg
from mirdata_cases import MC

from repeval.datasets import load_dataset
from repeval.datasets.encoding import KEY_CLASSES, PITCH_CLASSES
from repeval.datasets.mirdata_loader import SPECS, _openmic_annotated, load_mirdata
from repeval.datasets.splits import split_counts

#: every mirdata sample: (task name, task type, expected labels, expected missing-audio track ids)
SAMPLES = {
    "beatport_key": ("key_estimation", "multiclass_classification", [["D minor"]], []),
    "fma_keys": ("key_estimation", "key_estimation", [["F# major"]], ["141"]),
    "giantsteps_key": ("key_estimation", "key_estimation", [["D major"]], []),
    "good_sounds": ("instrument_recognition", "multiclass_classification", [["flute"]], []),
    "gtzan_genre": ("genre_classification", "multiclass_classification", [["country"]], ["hiphop.00000"]),
    "medley_solos_db": ("instrument_classification", "multiclass_classification", [["flute"]], []),
    "mridangam_stroke": ("stroke_classification", "multiclass_classification", [["bheem"]], []),
    "mtg_jamendo_autotagging_moodtheme": (
        "autotagging",
        "multilabel_classification",
        [["background"]],
        ["track_0003346", "track_0003524"],
    ),
    "openmic2018": ("instrument_recognition", "multilabel_classification", [[]], []),
    "tinysol": ("pitch_class_classification", "multiclass_classification", [["A"], ["C"]], []),
}


def _sample_cfg(shared: Path, name: str, **kw):
    indexes = sorted((shared / "mirdata_samples" / "indexes").glob(f"{name}_index_*.json"))
    assert len(indexes) == 1, indexes
    return ds_cfg(
        name, "mirdata", dir=str(shared / "mirdata_samples" / "mir_datasets" / name), index_path=str(indexes[0]), **kw
    )


def test_every_sample_index_is_covered(shared_data):
    names = {p.name.split("_index_")[0] for p in (shared_data / "mirdata_samples" / "indexes").glob("*.json")}
    assert names == set(SAMPLES)
    assert names <= set(SPECS)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_mirdata_sample_loads(shared_data, name):
    tname, ttype, labels, missing = SAMPLES[name]
    rows, report = load_dataset(_sample_cfg(shared_data, name), task_cfg(tname, ttype))
    assert rows.column("label").to_pylist() == labels
    assert all(Path(p).is_file() for p in rows.column("audio_path").to_pylist())
    assert None not in rows.column("split").to_pylist()
    # tracks listed in the index but absent on disk are reported, not fatal
    assert [m.split(" ")[0] for m in report.missing_audio] == missing
    found = report.missing_rows.table()  # as data: every row's id and the path it names, whole
    assert found.column("track_id").to_pylist() == missing
    assert all(not Path(p).exists() for p in found.column("audio_path").to_pylist())
    assert not report.unlabelled and not report.other and not report.unknown_labels


def test_medley_solos_db_small_with_official_splits(shared_data):
    root = shared_data / "medley_solos_db_small"
    ds = ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=str(root / "medley_solos_db_index_small.json"))
    rows, report = load_dataset(ds, task_cfg("instrument_recognition", "multiclass_classification"))
    assert rows.num_rows == 97 and not report.lines()
    assert split_counts(rows) == {"train": 80, "validation": 9, "test": 8}
    instruments = {lab[0] for lab in rows.column("label").to_pylist()}
    assert len(instruments) == 8 and "clarinet" in instruments
    # song ids become groups (the test subset has song_id -1: no group)
    assert rows.column("group").null_count >= 8


def test_split_ratios_unused_by_official_splits_are_named_and_used_to_carve_validation_are_not(shared_data):
    """Medley-solos-DB's official splits leave ``split_ratios`` nothing to draw (it was ignored without notice);
    OpenMIC-2018's official split has no validation part, which ``split_ratios`` and ``split_seed`` carve."""
    root = shared_data / "medley_solos_db_small"
    index = str(root / "medley_solos_db_index_small.json")
    ds = ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=index, split_ratios=[0.7, 0.2, 0.1])
    _, report = load_dataset(ds, task_cfg("instrument_recognition", "multiclass_classification"))
    assert report.lines() == [
        "split_ratios ([0.7, 0.2, 0.1]) not used: its loader gives every track an official train/validation/test "
        "split, so no split is drawn — remove split_ratios"
    ]
    tname, ttype, _, _ = SAMPLES["openmic2018"]
    ds = _sample_cfg(shared_data, "openmic2018", split_ratios=[0.7, 0.2, 0.1], split_seed=4)
    assert load_dataset(ds, task_cfg(tname, ttype))[1].notes == []


def test_tinysol_mini_instrument_uses_official_folds(shared_data):
    import csv

    root = shared_data / "tinysol_mini"
    kw = {"dir": str(root), "index_path": str(root / "tinysol_index_mini.json")}
    folds = {Path(r["path"]).stem: int(r["fold"]) for r in csv.DictReader((root / "manifest.csv").open())}
    task = task_cfg("instrument_classification", "multiclass_classification")
    for fold in (0, 2):
        rows, report = load_dataset(ds_cfg("tinysol", "mirdata", fold=fold, **kw), task)
        assert rows.num_rows == 12 and not report.lines()
        for tid, split in zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True):
            expected = "validation" if folds[tid] == fold else "test" if folds[tid] == (fold + 1) % 5 else "train"
            assert split == expected, (tid, folds[tid], split)
    # split_ratios left unused: said as what gives the splits, the official fold (it said "an official
    # train/validation/test split", which TinySOL has not)
    _, report = load_dataset(ds_cfg("tinysol", "mirdata", fold=2, split_ratios=[0.7, 0.2, 0.1], **kw), task)
    assert report.lines() == [
        "split_ratios ([0.7, 0.2, 0.1]) not used: its loader gives every track its split from the data set's official "
        "fold or split 2 (dataset.fold), so no split is drawn — remove split_ratios"
    ]
    assert {lab[0] for lab in rows.column("label").to_pylist()} == {
        "Accordion",
        "Bass Tuba",
        "Bassoon",
        "Contrabass",
        "Flute",
        "Violin",
    }


def test_tinysol_mini_pitch_class_is_stratified(shared_data):
    root = shared_data / "tinysol_mini"
    ds = ds_cfg("tinysol", "mirdata", dir=str(root), index_path=str(root / "tinysol_index_mini.json"), split_seed=3)
    task = task_cfg("pitch_class_classification", "multiclass_classification")
    rows, _ = load_dataset(ds, task)
    assert {lab[0] for lab in rows.column("label").to_pylist()} <= set(PITCH_CLASSES)
    again, _ = load_dataset(ds, task)
    assert again.column("split").to_pylist() == rows.column("split").to_pylist()
    # split_type all: rotating stratified folds instead
    folded, _ = load_dataset(ds.model_copy(update={"split_type": "all", "n_folds": 3, "fold": 1}), task)
    assert set(folded.column("split").to_pylist()) == {"train", "validation", "test"}


def test_beatport_keys_normalised_and_bad_keys_reported(shared_data, tmp_path):
    info = make_beatport_variants(shared_data, tmp_path)
    ds = ds_cfg("beatport_key", "mirdata", dir=str(tmp_path), index_path=info["index"])
    rows, report = load_dataset(ds, task_cfg("key_estimation", "multiclass_classification"))
    got = dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True))
    assert got == {"1": ["C# major"], "2": ["A# minor"], "5": ["F# minor"]}
    assert all(lab[0] in KEY_CLASSES for lab in got.values())
    # several keys: dropped like the thesis; Unknown (→ 'x') and 'other' are not keys
    assert [u.split(" ")[0] for u in report.unlabelled] == ["3"]
    assert sorted(u.split(" ")[0] for u in report.unknown_labels) == ["4", "6"]


def test_key_classes_written_with_flats_keep_their_tracks(shared_data, tmp_path):
    """dataset.classes of a key task are compared after the same enharmonic normalisation as the labels."""
    info = make_beatport_variants(shared_data, tmp_path)
    ds = ds_cfg("beatport_key", "mirdata", dir=str(tmp_path), index_path=info["index"], classes=("Db major", "Bb:min"))
    rows, report = load_dataset(ds, task_cfg("key_estimation", "key_estimation"))
    assert dict(zip(rows.column("track_id").to_pylist(), rows.column("label").to_pylist(), strict=True)) == {
        "1": ["C# major"],
        "2": ["A# minor"],
    }
    assert any(u.startswith("5 ") and "not in dataset.classes" in u for u in report.unknown_labels)
    with pytest.raises(ValueError, match=r"dataset\.classes of a key_estimation task: 'Dbb' has no mode"):
        load_dataset(ds.model_copy(update={"classes": ("Dbb",)}), task_cfg("key_estimation", "key_estimation"))


def test_generic_loader_reads_a_track_attribute(shared_data):
    ds = _sample_cfg(shared_data, "gtzan_genre")
    rows, report = load_mirdata(ds, task_cfg("music_genre", "multiclass_classification", label="genre"), None)
    assert rows.column("label").to_pylist() == [["country"]] and len(report.missing_audio) == 1
    with pytest.raises(ValueError, match="no attribute 'colour'"):
        load_mirdata(ds, task_cfg("x", "multiclass_classification", label="colour"), None)


def test_wrong_label_or_task_type_names_the_fix(shared_data):
    ds = _sample_cfg(shared_data, "tinysol")
    with pytest.raises(ValueError, match="did you mean 'pitch_class'"):
        load_dataset(ds, task_cfg("x", "multiclass_classification", label="pitch_clas"))
    with pytest.raises(ValueError, match=r"set task\.type: multilabel_classification"):
        load_dataset(_sample_cfg(shared_data, "openmic2018"), task_cfg("instrument", "multiclass_classification"))


def test_missing_index_names_the_fix(shared_data, tmp_path):
    root = shared_data / "medley_solos_db_small"
    with pytest.raises(FileNotFoundError, match="repeval data download medley_solos_db"):
        load_dataset(
            ds_cfg("medley_solos_db", "mirdata", dir=str(root)), task_cfg("instrument", "multiclass_classification")
        )
    with pytest.raises(FileNotFoundError, match="index_path"):
        load_dataset(
            ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=str(tmp_path / "nope.json")),
            task_cfg("instrument", "multiclass_classification"),
        )
    with pytest.raises(FileNotFoundError, match=r"set dataset\.dir"):
        load_dataset(
            ds_cfg(
                "medley_solos_db",
                "mirdata",
                dir=str(tmp_path / "absent"),
                index_path=str(root / "medley_solos_db_index_small.json"),
            ),
            task_cfg("instrument", "multiclass_classification"),
        )


def test_generic_loader_uses_official_folds_and_subsets(shared_data):
    """Without a wired spec, a track's split/subset attribute still gives the official split (fold 0 included)."""
    root = shared_data / "tinysol_mini"
    ds = ds_cfg("tinysol", "mirdata", dir=str(root), index_path=str(root / "tinysol_index_mini.json"))
    wired, _ = load_dataset(ds, task_cfg("instrument", "multiclass_classification"))
    generic, _ = load_mirdata(ds, task_cfg("instrument", "multiclass_classification", label="instrument_full"), None)
    assert generic.column("split").to_pylist() == wired.column("split").to_pylist()
    root = shared_data / "medley_solos_db_small"
    ds = ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=str(root / "medley_solos_db_index_small.json"))
    generic, _ = load_mirdata(ds, task_cfg("instrument", "multiclass_classification"), None)
    assert split_counts(generic) == {"train": 80, "validation": 9, "test": 8}


def test_fewer_than_three_official_folds_are_drawn_instead_said_as_a_note_not_a_dropped_row(
    shared_data, tmp_path, monkeypatch
):
    """A track attribute giving 2 official folds (0 and 1) cannot rotate (validation, test and a fold to train on):
    the splits are drawn. That was reported as a row problem ("1 other", counted with the rows a load drops), and
    with ``fold`` set a second note said the data set had no official folds at all."""
    import csv

    from repeval.datasets import load as load_module

    src = shared_data / "tinysol_mini"
    root = tmp_path / "tinysol"
    (root / "annotation").mkdir(parents=True)
    (root / "audio").symlink_to(src / "audio")
    with open(src / "annotation" / "TinySOL_metadata.csv", newline="") as fh:
        meta = list(csv.reader(fh))
    with open(root / "annotation" / "TinySOL_metadata.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([meta[0], *([r[0], str(int(r[1]) % 2), *r[2:]] for r in meta[1:])])
    monkeypatch.setattr(load_module, "loader_name", lambda ds: "mirdata")  # the generic loader, on TinySOL's data
    task = task_cfg("instrument", "multiclass_classification", label="instrument_full")
    index = str(src / "tinysol_index_mini.json")
    for keys, drawn in (
        ({"fold": 1}, "split_ratios"),
        ({"split_type": "all", "n_folds": 3}, "n_folds stratified folds"),
    ):
        rows, report = load_dataset(ds_cfg("tinysol", "mirdata", dir=str(root), index_path=index, **keys), task)
        assert set(rows.column("split").to_pylist()) == {"train", "validation", "test"}
        assert report.counts() == {} and len(report.notes) == 1, report.lines()
        picks = ", and fold (1) picks none of them" if "fold" in keys else ""
        assert report.notes[0] == (
            "the tracks' split attribute gives 2 official folds, too few to rotate, which takes 3 or more "
            f"(validation = fold i, test = fold i+1, train = the rest): their splits are drawn from {drawn} "
            f"instead{picks} — set group_column to keep related tracks in one split"
        )


def test_gtzan_fault_filtered_split_from_its_files(shared_data, tmp_path):
    """With the fault-filtered split lists in dataset.dir, GTZAN uses them; tracks outside them are left out."""
    sample = shared_data / "mirdata_samples" / "mir_datasets" / "gtzan_genre"
    (tmp_path / "gtzan_genre").symlink_to(sample / "gtzan_genre")
    (tmp_path / "GTZAN_split").mkdir()
    for name, lines in (("train", ["blues/blues.00029.wav"]), ("valid", []), ("test", ["country/country.00000.wav"])):
        (tmp_path / "GTZAN_split" / f"{name}_filtered.txt").write_text("".join(x + "\n" for x in lines))
    index = next((shared_data / "mirdata_samples" / "indexes").glob("gtzan_genre_index_*.json"))
    ds = ds_cfg("gtzan_genre", "mirdata", dir=str(tmp_path), index_path=str(index))
    rows, report = load_dataset(ds, task_cfg("genre_classification", "multiclass_classification"))
    assert rows.column("track_id").to_pylist() == ["country.00000"]
    assert rows.column("split").to_pylist() == ["test"]
    # hiphop.00000 is not in the filtered split: left out (and so not reported as missing audio)
    assert not report.missing_audio and any("1 track is in no file of the official split" in o for o in report.other)


def test_openmic2018_rows_say_which_instruments_each_track_annotates(shared_data):
    """OpenMIC-2018 annotates a few of its 20 instruments per clip (the sample's clip: clarinet, flute and trumpet,
    all absent): with ``unannotated: mask`` (the default) the rows carry them, and the targets are NaN for the other
    instruments — neither present nor absent; ``absent`` keeps the rows without them (every other pair absent), and
    the key is refused on a data set that does not say which labels it annotates."""
    from repeval.datasets.base import OBSERVED
    from repeval.tuning.data import encode

    tname, ttype, labels, _ = SAMPLES["openmic2018"]
    rows, _ = load_dataset(_sample_cfg(shared_data, "openmic2018"), task_cfg(tname, ttype))
    assert rows.column("label").to_pylist() == labels
    assert rows.column(OBSERVED).to_pylist() == [["clarinet", "flute", "trumpet"]]
    y, _ = encode(ttype, [[], ["piano"]], ["clarinet", "piano", "trumpet"], [["clarinet", "trumpet"], None])
    np.testing.assert_array_equal(y, [[0, np.nan, 0], [0, 1, 0]])
    absent, _ = load_dataset(_sample_cfg(shared_data, "openmic2018", unannotated="absent"), task_cfg(tname, ttype))
    assert OBSERVED not in absent.column_names and absent.column("label").to_pylist() == labels
    # the official baseline's threshold: present at a relevance of 0.5 (Y_true >= 0.5)
    clip = SimpleNamespace(instruments={"piano": 0.5, "voice": 0.49, "drums": 1.0})
    assert _openmic_annotated(clip) == (["drums", "piano"], ["drums", "piano", "voice"])
    with pytest.raises(ValueError, match="'unannotated' does not apply to mirdata dataset 'tinysol'"):
        _sample_cfg(shared_data, "tinysol", unannotated="absent")


def test_loaders_read_the_split_keys_they_declare_and_fold_where_the_configuration_accepts_it(shared_data, tmp_path):
    """Where ``fold`` applies on one split is decided once, from the split keys each loader declares
    (``DatasetInfo.split_keys``: ``has_official_folds``, which the configuration's check and the JSON Schema's rule
    derive from); the keys a loader reads, noted by ``load_dataset``, are what it reports as used. So a loader may read
    only keys it declares (one reading ``fold`` where the configuration refuses it would disagree with it), and each
    loader declaring ``fold`` reads it for a label with official folds. Every wired mirdata sample, the official-fold
    loaders and repeval's own loaders on their fixtures."""
    from dataset_fixtures import make_magnatagatune, make_mtg_jamendo, make_vocalset

    from repeval.datasets.base import DATASET_INFO
    from repeval.datasets.load import _Reading, has_official_folds, loader_name, official_fold_loaders

    mini = shared_data / "tinysol_mini"
    tinysol = {"dir": str(mini), "index_path": str(mini / "tinysol_index_mini.json"), "fold": 2}
    make_mtg_jamendo(tmp_path / "jamendo")
    make_vocalset(tmp_path / "vocalset")
    make_magnatagatune(tmp_path / "mtat")
    cases = [(_sample_cfg(shared_data, name), task_cfg(t, tt)) for name, (t, tt, _, _) in SAMPLES.items()] + [
        (ds_cfg("tinysol", "mirdata", **tinysol), task_cfg("instrument_classification", "multiclass_classification")),
        (ds_cfg("mtg_jamendo", dir=str(tmp_path / "jamendo"), subset="genre", fold=1),
         task_cfg("autotagging", "multilabel_classification")),
        (ds_cfg("vocalset", dir=str(tmp_path / "vocalset")), task_cfg("singer_identification", "multiclass_classification")),
        (ds_cfg("magnatagatune", dir=str(tmp_path / "mtat")), task_cfg("autotagging", "multilabel_classification")),
    ]  # fmt: skip
    read: dict[str, set[str]] = {}
    for ds, task in cases:
        _, report = load_dataset(ds, task)
        name = loader_name(ds)
        assert report.used_keys <= DATASET_INFO[name].split_keys, (name, report.used_keys)
        read.setdefault(name, set()).update(report.used_keys)
    # the generic mirdata loader (a data set without a wired spec), on TinySOL's fold attribute
    generic: set[str] = set()
    load_mirdata(
        _Reading(ds_cfg("tinysol", "mirdata", **tinysol), generic),
        task_cfg("i", MC, "instrument_full"),
        None,
    )
    read["mirdata"] = generic
    assert {name for name, keys in read.items() if "fold" in keys} == set(official_fold_loaders()) & set(read)
    assert {"tinysol", "mtg_jamendo", "mtg_jamendo_autotagging_moodtheme", "mirdata"} <= set(official_fold_loaders())
    assert read["openmic2018"] == {"split_ratios", "split_seed"}  # it carves validation from the official train split
    assert has_official_folds(ds_cfg("guitarset", "mirdata")) and not has_official_folds(ds_cfg("beatport_key"))
    # a label without official folds (TinySOL's pitch classes) leaves fold unread: said, not silently ignored
    _, report = load_dataset(ds_cfg("tinysol", "mirdata", **tinysol), task_cfg("pitch_class_classification", MC))
    assert report.notes == [
        "fold (2) not used: the data set has no official folds for task 'pitch_class_classification' (`repeval "
        "datasets tinysol` says which labels have them), so its split is drawn from split_ratios and split_seed — "
        "remove fold"
    ]
