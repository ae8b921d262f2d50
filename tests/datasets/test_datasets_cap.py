"""``max_tracks``: a seeded subset stratified by split and label, drawn before the splits, streaming."""

from __future__ import annotations

import csv
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from dataset_fixtures import ds_cfg, task_cfg, write_audio

from repeval.datasets import load_dataset
from repeval.datasets.load import allocate_strata, cap_tracks, load_folds
from repeval.datasets.spill import hash64

MULTICLASS = task_cfg("label", "multiclass_classification")


def _pairs(rows: pa.Table) -> Counter[tuple[str, str]]:
    """Rows per (split, first label)."""
    labels = [lab[0] if lab else "" for lab in rows.column("label").to_pylist()]
    return Counter(zip(rows.column("split").to_pylist(), labels, strict=True))


def _catalog(root: Path, sizes: list[int], **kw: object) -> dict[str, object]:
    """A catalog of ``sizes[c]`` tracks of class ``c`` (four real audio files shared by the rows), no split."""
    for i in range(4):
        write_audio(root / "audio" / f"a{i}.wav", i)
    path = root / "m.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "audio_path", "label"])
        w.writerows(
            [f"c{c}-{k}", f"audio/a{k % 4}.wav", f"class{c}"] for c, size in enumerate(sizes) for k in range(size)
        )
    return {"manifest": str(path), "label_column": "label", **kw}


def test_smoke_test_cap_keeps_every_class_in_every_official_split(shared_data):
    """Medley-solos-DB (8 instruments, official splits 80/9/8): ``--smoke-test``'s 40 tracks were the 40 smallest
    hashes, which kept 1-4 of the 8 instruments in the test split (seeds 0-5), so its scores and their "one class
    present" warnings meant little. Stratified by (split, instrument), every pair of the data is kept."""
    root = shared_data / "medley_solos_db_small"
    index = str(root / "medley_solos_db_index_small.json")
    task = task_cfg("instrument_recognition", "multiclass_classification")
    full = _pairs(load_dataset(ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=index), task)[0])
    picks = []
    for seed in (0, 1, 2):
        ds = ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=index, max_tracks=40, split_seed=seed)
        rows = load_dataset(ds, task)[0]
        assert rows.num_rows == 40 and set(_pairs(rows)) == set(full), seed
        picks.append(rows.column("track_id").to_pylist())
    # deterministic for a seed, another subset for another seed
    again = ds_cfg("medley_solos_db", "mirdata", dir=str(root), index_path=index, max_tracks=40, split_seed=1)
    assert load_dataset(again, task)[0].column("track_id").to_pylist() == picks[1]
    assert picks[0] != picks[1] != picks[2]


def test_a_capped_catalog_draws_each_class_into_every_split(tmp_path):
    """A 10-class catalog without splits capped at 40: the splits were drawn on the whole catalog and the cap kept
    what the hashes gave, so some class had no validation or test track. The cap now keeps 4 tracks per class and
    then draws the splits among them (2/1/1 each), the same for the same seed."""
    kw = _catalog(tmp_path, [25] * 10, max_tracks=40)
    for seed in (0, 1, 2):
        rows = load_dataset(ds_cfg("cat", "catalog", split_seed=seed, **kw), MULTICLASS)[0]
        pairs = _pairs(rows)
        assert rows.num_rows == 40
        assert {(s, f"class{c}") for s in ("train", "validation", "test") for c in range(10)} == set(pairs), seed
        assert Counter(label for _, label in pairs.elements()) == {f"class{c}": 4 for c in range(10)}


def test_cap_keeps_strata_in_proportion_and_depends_only_on_seed_and_rows(tmp_path):
    """Each class keeps its share of the cap within one track (largest remainders), whatever the rows' order."""
    sizes = [101, 57, 31, 11]
    kw = _catalog(tmp_path, sizes, max_tracks=40)
    rows = load_dataset(ds_cfg("cat", "catalog", **kw), MULTICLASS)[0]
    kept = Counter(lab[0] for lab in rows.column("label").to_pylist())
    for c, size in enumerate(sizes):
        assert abs(kept[f"class{c}"] - 40 * size / sum(sizes)) < 1, kept
    table = load_dataset(ds_cfg("cat", "catalog", **{**kw, "max_tracks": None}), MULTICLASS)[0]
    shuffled = table.take(pa.array(np.random.default_rng(0).permutation(table.num_rows)))
    ids = sorted(cap_tracks(table, 40, 7).column("track_id").to_pylist())
    assert sorted(cap_tracks(shuffled, 40, 7).column("track_id").to_pylist()) == ids
    assert sorted(cap_tracks(table, 40, 8).column("track_id").to_pylist()) != ids


def test_allocation_is_proportional_with_one_per_stratum():
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(1, 300, size=int(rng.integers(1, 30))).tolist()
        n = int(rng.integers(len(sizes), sum(sizes) + 1))
        got = np.array(allocate_strata(sizes, n))
        ideal = n * np.array(sizes) / sum(sizes)
        assert got.sum() == n and (got >= 1).all() and (got <= sizes).all(), (sizes, n, got)
        if (ideal >= 1).all():  # no stratum lifted to one: every count within one of its share
            assert (np.abs(got - ideal) < 1).all(), (sizes, n, got)
    assert allocate_strata([97, 1, 1, 1], 10) == [7, 1, 1, 1]
    assert allocate_strata([5, 0, 5], 4) == [2, 0, 2]


def test_a_rare_tag_is_kept_by_its_rarest_tag_stratum():
    """Tagging rows are stratified by their rarest tag (as the drawn splits are): a tag on 3 of 200 tracks was kept
    by a 20-track cap only by chance."""
    labels = [["common", "rare"] if i % 67 == 5 else ["common", "other" if i % 2 else "third"] for i in range(200)]
    rows = pa.table(
        {
            "track_id": [f"t{i:03d}" for i in range(200)],
            "audio_path": ["a.wav"] * 200,
            "label": pa.array(labels, pa.list_(pa.string())),
            "split": pa.nulls(200, pa.string()),
            "group": pa.nulls(200, pa.string()),
        }
    )
    for seed in range(5):
        kept = cap_tracks(rows, 20, seed).column("label").to_pylist()
        assert sum("rare" in lab for lab in kept) == 1, seed


def _big_table(n_rows: int, n_labels: int) -> pa.Table:
    """``n_rows`` rows in batches of 50,000: label ``i % n_labels``, split train/validation/test 4:3:3 (by ``i // 7``)."""
    i = pa.array(np.arange(n_rows))
    ids = pc.binary_join_element_wise("track-", pc.cast(i, pa.string()), "")
    labels = pc.binary_join_element_wise("l", pc.cast(pc.remainder(i, n_labels), pa.string()), "")
    label = pa.ListArray.from_arrays(pa.array(np.arange(n_rows + 1, dtype=np.int32)), labels)
    split = pa.array(np.array(["train"] * 4 + ["validation"] * 3 + ["test"] * 3)[np.arange(n_rows) // 7 % 10])
    nulls = pa.nulls(n_rows, pa.string())
    table = pa.table({"track_id": ids, "audio_path": nulls, "label": label, "split": split, "group": nulls})
    return pa.Table.from_batches(table.to_batches(max_chunksize=50_000))


def test_cap_of_a_large_table_streams_in_batches():
    """1,000,000 rows of 3 splits × 20 labels: numpy's working memory stays one batch's worth (hashing the whole
    table at once would take over 100 MB), and every (split, label) pair keeps its share within one row."""
    table = _big_table(1_000_000, 20)
    tracemalloc.start()
    try:
        capped = cap_tracks(table, 300, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000, peak
    assert capped.num_rows == 300
    flat = pa.table({"split": table.column("split"), "label": pc.list_flatten(table.column("label"))})
    sizes = {
        (r["split"], r["label"]): r["split_count"]
        for r in flat.group_by(["split", "label"]).aggregate([("split", "count")]).to_pylist()
    }
    kept = _pairs(capped)
    assert len(sizes) == 60 and set(kept) == set(sizes)
    assert all(abs(kept[k] - 300 * size / 1_000_000) < 1 for k, size in sizes.items()), kept


@pytest.mark.parametrize(("n", "stratified_by"), [(10, "split"), (2, None)])
def test_cap_falls_back_when_strata_outnumber_it(n, stratified_by):
    """(split, label) pairs outnumbering the cap: the split alone stratifies it; splits outnumbering it too: the cap
    is the unstratified one, the ``n`` smallest hashes of (seed, track id)."""
    table = _big_table(3_000, 20)
    capped = cap_tracks(table, n, 4)
    assert capped.num_rows == n
    splits = Counter(capped.column("split").to_pylist())
    if stratified_by == "split":
        assert splits == {"train": 4, "validation": 3, "test": 3}, splits  # in proportion 4:3:3
    else:
        smallest = np.sort(np.argsort(hash64(table.column("track_id"), 4), kind="stable")[:n])
        assert capped.column("track_id").to_pylist() == table.column("track_id").take(pa.array(smallest)).to_pylist()


def test_every_fold_keeps_the_same_capped_tracks_each_class_in_every_training_split(tmp_path):
    """``split_type: all``: the cap stratifies by label only, so each fold keeps the same tracks (the folds rotate
    over them), and the folds are dealt among the kept tracks: 4 tracks of each class over 5 folds, so every fold
    trains on every class."""
    kw = _catalog(tmp_path, [30] * 10, max_tracks=40, split_type="all", n_folds=5)
    folds = load_folds(ds_cfg("cat", "catalog", **kw), MULTICLASS)
    ids = folds[0].column("track_id")
    assert len(folds) == 5 and all(t.column("track_id").equals(ids) for t in folds.values())
    for f, rows in folds.items():
        trained = {lab for split, lab in _pairs(rows) if split == "train"}
        assert trained == {f"class{c}" for c in range(10)}, f
