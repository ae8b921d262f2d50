"""Split invariants (hypothesis): disjoint, complete, reproducible, order-independent, group-safe."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repeval.datasets import spill
from repeval.datasets.base import ROW_SCHEMA, SPLITS
from repeval.datasets.spill import hash64, hash64_reference
from repeval.datasets.splits import (
    _allocate,
    apply_saved_splits,
    assign_folds,
    carve_validation,
    fill_fold_splits,
    fill_splits,
    fold_splits,
    load_splits,
    save_splits,
    stratified_split,
)


@st.composite
def items(draw, min_size=0, max_size=80):
    n = draw(st.integers(min_size, max_size))
    keys = [f"t{i:03d}" for i in range(n)]
    strata = draw(st.lists(st.sampled_from(["a", "b", "c", "d", ""]), min_size=n, max_size=n))
    use_groups = draw(st.booleans())
    groups = (
        draw(
            st.lists(
                st.one_of(st.none(), st.sampled_from(["g0", "g1", "g2", "g3", "g4", "g5"])), min_size=n, max_size=n
            )
        )
        if use_groups
        else None
    )
    seed = draw(st.integers(0, 2**31))
    perm = draw(st.permutations(list(range(n))))
    return keys, strata, groups, seed, perm


ratios_st = st.sampled_from([(0.8, 0.1, 0.1), (0.7, 0.15, 0.15), (0.6, 0.0, 0.4), (0.5, 0.25, 0.25)])


def _group_splits_consistent(groups, assigned):
    seen = defaultdict(set)
    for g, s in zip(groups or [], assigned, strict=False):
        if g is not None:
            seen[g].add(s)
    return all(len(v) == 1 for v in seen.values())


@settings(max_examples=150, deadline=None)
@given(items(), ratios_st)
def test_stratified_split_invariants(case, ratios):
    keys, strata, groups, seed, perm = case
    out = stratified_split(keys, strata, ratios, seed, groups)
    # complete and disjoint: exactly one known split per item
    assert len(out) == len(keys) and set(out) <= set(SPLITS)
    # reproducible for the same seed
    assert stratified_split(keys, strata, ratios, seed, groups) == out
    # independent of input order
    p_out = stratified_split(
        [keys[i] for i in perm], [strata[i] for i in perm], ratios, seed, [groups[i] for i in perm] if groups else None
    )
    assert {keys[i]: s for i, s in zip(perm, p_out, strict=True)} == dict(zip(keys, out, strict=True))
    # groups never straddle splits
    assert _group_splits_consistent(groups, out)
    # a zero ratio is never used
    if ratios[1] == 0:
        assert "validation" not in out


def _reference_ranks(keys, strata, seed, groups):
    """The specification in plain Python: a unit (group, else the item) takes its most common stratum
    (ties: alphabetically first); within a stratum, units are ranked by (hash64 of the unit name and
    seed, unit name). Returns {unit: (stratum, rank)}, {stratum: number of units}, unit of each item."""
    units = defaultdict(list)
    unit_of = []
    for i in range(len(keys)):
        g = groups[i] if groups is not None and groups[i] is not None else f"\0{keys[i]}"
        units[str(g)].append(i)
        unit_of.append(str(g))
    by_stratum = defaultdict(list)
    for u, idx in units.items():
        cnt = Counter(strata[i] for i in idx)
        best = max(cnt.values())
        by_stratum[min(s for s, c in cnt.items() if c == best)].append(u)
    ranks = {}
    for stratum, us in by_stratum.items():
        for r, u in enumerate(sorted(us, key=lambda u: (hash64_reference(u, seed), u))):
            ranks[u] = (stratum, r)
    return ranks, {s: len(us) for s, us in by_stratum.items()}, unit_of


def _reference_split(keys, strata, ratios, seed, groups):
    """Split of each item from :func:`_reference_ranks`: the vectorised, partitioned one must agree."""
    ranks, sizes, unit_of = _reference_ranks(keys, strata, seed, groups)
    out = []
    for u in unit_of:
        stratum, rank = ranks[u]
        bounds = np.cumsum(_allocate(sizes[stratum], ratios))
        out.append(SPLITS[int(np.searchsorted(bounds, rank, side="right"))])
    return out


def _reference_folds(keys, strata, n_folds, seed, groups):
    ranks, sizes, unit_of = _reference_ranks(keys, strata, seed, groups)
    dealt, before = 0, {}
    for stratum in sorted(sizes):
        before[stratum] = dealt
        dealt += sizes[stratum]
    return [(before[ranks[u][0]] + ranks[u][1]) % n_folds for u in unit_of]


@pytest.fixture(params=[None, 7], ids=["in-memory", "spilled"])
def partition_rows(request, monkeypatch):
    """Run a test with everything in memory, and again with partitions of 7 items spilled to disk."""
    if request.param:
        monkeypatch.setattr(spill, "PARTITION_ROWS", request.param)
    return request.param


FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # the fixture only sets a constant for every example


@settings(max_examples=100, deadline=None, suppress_health_check=FIXTURE_OK)
@given(items(), ratios_st)
def test_vectorised_split_matches_reference(partition_rows, case, ratios):
    keys, strata, groups, seed, _ = case
    assert stratified_split(keys, strata, ratios, seed, groups) == _reference_split(keys, strata, ratios, seed, groups)


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURE_OK)
@given(items(), st.integers(3, 6))
def test_vectorised_folds_match_reference(partition_rows, case, n_folds):
    keys, strata, groups, seed, _ = case
    assert assign_folds(keys, strata, n_folds, seed, groups).tolist() == _reference_folds(
        keys, strata, n_folds, seed, groups
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=12), max_size=40), st.integers(0, 2**64 - 1))
def test_hash64_matches_its_specification(values, seed):
    assert hash64(pa.array(values, pa.string()), seed).tolist() == [hash64_reference(v, seed) for v in values]
    # a sliced array (non-zero offset) hashes the same as a fresh one
    if len(values) > 2:
        assert hash64(pa.array(values, pa.string()).slice(1), seed).tolist() == [
            hash64_reference(v, seed) for v in values[1:]
        ]


def test_split_is_a_seeded_permutation_of_units():
    """Ranking by hash keys behaves like a random permutation: each item is in test about 10 % of seeds."""
    keys = [f"t{i}" for i in range(20)]
    in_test = np.zeros(20)
    for seed in range(400):
        in_test += np.array(stratified_split(keys, ["a"] * 20, (0.8, 0.1, 0.1), seed)) == "test"
    assert in_test.sum() == 400 * 2
    assert 0.04 < in_test.min() / 400 and in_test.max() / 400 < 0.2


@settings(max_examples=100, deadline=None)
@given(items(min_size=1), st.integers(3, 7), st.data())
def test_fold_invariants(case, n_folds, data):
    keys, strata, groups, seed, perm = case
    folds = assign_folds(keys, strata, n_folds, seed, groups)
    assert folds.min() >= 0 and folds.max() < n_folds
    # groups share a fold; order does not matter; seeds reproduce
    assert _group_splits_consistent(groups, folds.tolist())
    p_folds = assign_folds(
        [keys[i] for i in perm], [strata[i] for i in perm], n_folds, seed, [groups[i] for i in perm] if groups else None
    )
    assert {keys[i]: f for i, f in zip(perm, p_folds.tolist(), strict=True)} == dict(
        zip(keys, folds.tolist(), strict=True)
    )
    if groups is None:  # single-item units are dealt round-robin: fold sizes differ by ≤ 1
        sizes = np.bincount(folds, minlength=n_folds)
        assert sizes.max() - sizes.min() <= 1
    # across folds, validation sets and test sets each partition the items
    tests, vals = defaultdict(list), defaultdict(list)
    for f in range(n_folds):
        out = fold_splits(keys, strata, n_folds, f, seed, groups)
        assert len(out) == len(keys) and set(out) <= set(SPLITS)
        assert _group_splits_consistent(groups, out)
        for k, s in zip(keys, out, strict=True):
            if s == "test":
                tests[k].append(f)
            elif s == "validation":
                vals[k].append(f)
    assert all(len(tests[k]) == 1 and len(vals[k]) == 1 for k in keys)
    fold = data.draw(st.integers(0, n_folds - 1))
    out = fold_splits(keys, strata, n_folds, fold, seed, groups)
    assert [s == "validation" for s in out] == (folds == fold).tolist()
    assert [s == "test" for s in out] == (folds == (fold + 1) % n_folds).tolist()


def test_fold_splits_need_three_folds():
    with pytest.raises(ValueError, match="n_folds ≥ 3"):
        fold_splits(["a", "b"], ["x", "y"], 2, 0)
    with pytest.raises(ValueError, match="fold must be"):
        fold_splits(["a", "b", "c"], ["x", "y", "z"], 3, 3)


def _rows(n, split_every=0, group_every=0):
    return pa.Table.from_pylist(
        [
            {
                "track_id": f"t{i}",
                "audio_path": f"/a/{i}.wav",
                "label": [f"c{i % 4}"],
                "split": ("test" if split_every and i % split_every == 0 else None),
                "group": (f"g{i // group_every}" if group_every else None),
            }
            for i in range(n)
        ],
        schema=ROW_SCHEMA,
    )


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURE_OK)
@given(st.integers(1, 120), st.integers(0, 5), st.integers(0, 6), st.integers(0, 1000))
def test_fill_splits_keeps_official_and_fills_the_rest(partition_rows, n, split_every, group_every, seed):
    rows = _rows(n, split_every, group_every)
    before = rows.column("split").to_pylist()
    out = fill_splits(rows, (0.8, 0.1, 0.1), seed)
    after = out.column("split").to_pylist()
    assert all(a == b for b, a in zip(before, after, strict=True) if b is not None)
    assert None not in after and set(after) <= set(SPLITS)
    assert fill_splits(rows, (0.8, 0.1, 0.1), seed).column("split").to_pylist() == after
    folded = fill_fold_splits(rows, 5, 2, seed).column("split").to_pylist()
    assert None not in folded and all(a == b for b, a in zip(before, folded, strict=True) if b is not None)
    # the rows other than split are unchanged, in order (a spilled result is memory-mapped from disk)
    assert out.drop_columns(["split"]).equals(rows.drop_columns(["split"]))
    groups = out.column("group").to_pylist()
    filled = [s if b is None else None for s, b in zip(after, before, strict=True)]
    assert _group_splits_consistent([g if b is None else None for g, b in zip(groups, before, strict=True)], filled)


def test_carve_validation_moves_only_train_rows(partition_rows):
    rows = _rows(100)
    rows = rows.set_column(3, "split", pa.array(["train" if i < 80 else "test" for i in range(100)], pa.string()))
    out = carve_validation(rows, 0.125, seed=1).column("split").to_pylist()
    assert out[80:] == ["test"] * 20
    assert 6 <= out[:80].count("validation") <= 12  # 12.5 % of train, rounded per stratum
    assert set(out[:80]) == {"train", "validation"}


def test_save_and_load_splits_round_trip(tmp_path):
    rows = fill_splits(_rows(50, group_every=3), (0.8, 0.1, 0.1), 7)
    path = save_splits(rows, tmp_path / "run" / "splits" / "ds.parquet", {"dataset": "toy", "seed": 7})
    saved = load_splits(path)
    assert saved.column("track_id").to_pylist() == rows.column("track_id").to_pylist()
    assert saved.column("split").to_pylist() == rows.column("split").to_pylist()
    assert saved.schema.metadata[b"seed"] == b"7"
    # the same seed reproduces the saved file exactly; saved splits can be re-applied
    again = fill_splits(_rows(50, group_every=3), (0.8, 0.1, 0.1), 7)
    assert again.column("split").to_pylist() == saved.column("split").to_pylist()
    other = fill_splits(_rows(50, group_every=3), (0.8, 0.1, 0.1), 8)
    assert apply_saved_splits(other, saved).column("split").to_pylist() == saved.column("split").to_pylist()


def test_large_tables_are_split_from_disk_in_bounded_partitions(monkeypatch, tmp_path):
    """Past PARTITION_ROWS rows the result is memory-mapped from an (unlinked) spill file under
    $REPEVAL_SPILL_DIR, holds exactly what the in-memory path gives, and leaves no file behind."""
    rows = _rows(3000, split_every=7, group_every=3)
    expected = fill_splits(rows, (0.8, 0.1, 0.1), 5)
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(tmp_path))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 100)
    seen = []
    real = spill.Partitions.__init__

    def spy(self, k, schema):
        seen.append(k)
        real(self, k, schema)

    monkeypatch.setattr(spill.Partitions, "__init__", spy)
    heap = pa.total_allocated_bytes()
    out = fill_splits(rows, (0.8, 0.1, 0.1), 5)
    assert pa.total_allocated_bytes() - heap < out.nbytes // 4  # the result is not on Arrow's heap
    assert seen and seen[0] >= 16  # 2,571 items to split over partitions of ≤ 100 → 32 partitions
    assert out.equals(expected)
    assert list(tmp_path.iterdir()) == []


def test_tag_rows_are_stratified_by_their_rarest_tag():
    """Tag lists: a row's stratum is its rarest tag, so each rare tag is dealt 80/10/10 like a class. By the first
    tag (here always the common one, as in an alphabetical tag cell) the rare tags fell where the common tag's
    ranking put their rows: some had no validation or no test track. Rows of one tag keep their strata."""
    rare = [f"r{j}" for j in range(5)]
    labels = [["common"] + ([rare[i // 10]] if i < 50 else []) for i in range(100)]
    rows = pa.Table.from_pylist(
        [{"track_id": f"t{i:03d}", "audio_path": "a.wav", "label": lab, "split": None, "group": None}
         for i, lab in enumerate(labels)],
        schema=ROW_SCHEMA,
    )  # fmt: skip
    split = fill_splits(rows, (0.8, 0.1, 0.1), 0).column("split").to_pylist()
    for tag in rare:
        dealt = Counter(s for s, lab in zip(split, labels, strict=True) if tag in lab)
        assert dealt == {"train": 8, "validation": 1, "test": 1}, (tag, dealt)
    one = rows.set_column(2, "label", pa.array([lab[-1:] for lab in labels], rows.schema.field("label").type))
    by_class = fill_splits(one, (0.8, 0.1, 0.1), 0).column("split").to_pylist()
    assert by_class == stratified_split([f"t{i:03d}" for i in range(100)], [lab[-1] for lab in labels], seed=0)
