"""Seeded, stratified, group-aware train/validation/test splits and rotating k folds.

Everything here is vectorised over Arrow/numpy arrays (no Python object per row) and streams over
tables in batches with memory bounded by :data:`repeval.datasets.spill.PARTITION_ROWS` items, so a
1,000,000-row catalog is split in about a second and a 100,000,000-row one fits in the same memory.

Invariants (property-tested in ``tests/datasets/test_datasets_splits_properties.py``):

- every item gets exactly one split; items sharing a group always share a split (and a fold);
- the assignment depends only on the seed and the *set* of (key, stratum, group) items, not on
  their order;
- :func:`assign_folds` puts every item in exactly one fold, so across folds ``fold_splits``'s
  test sets (fold i+1) and validation sets (fold i) each partition the data.

The unit of assignment is a group (items with the same non-null group) or a single item. A row's
stratum is its label (for tag lists: its rarest tag). A unit's stratum is its most common stratum (ties: the alphabetically first). Within a stratum, units
are ordered by a seeded 64-bit hash of their name (:class:`UnitRanks`): the first largest-remainder
share goes to train, the next to validation, the rest to test; folds deal them round-robin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets import spill
from repeval.datasets.base import SPLITS
from repeval.datasets.spill import (
    Partitions,
    TableSpool,
    codes_array,
    hash64,
    n_partitions,
    partition_of,
    string_array,
)
from repeval.datasets.split_files import SPLITS_SCHEMA as SPLITS_SCHEMA
from repeval.datasets.split_files import apply_saved_splits as apply_saved_splits
from repeval.datasets.split_files import load_splits as load_splits
from repeval.datasets.split_files import save_splits as save_splits

_SPLIT_NAMES = pa.array(SPLITS, pa.string())


def hash_str(s: str) -> int:
    """A process-independent 63-bit hash (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") >> 1


def _allocate(n: int, ratios: tuple[float, float, float]) -> list[int]:
    """Largest-remainder counts for train/val/test; every non-empty ratio gets ≥1 when n allows."""
    raw = np.array(ratios) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts))[: n - counts.sum()]:
        counts[i] += 1
    # prefer a test item over a validation item, then over train, for tiny strata
    for i in (2, 1):
        if ratios[i] > 0 and counts[i] == 0 and counts[0] > 1:
            counts[i] += 1
            counts[0] -= 1
    return counts.tolist()


def _sorted_codes(values: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Codes of ``values`` numbered in sorted order of the distinct values (order-independent)."""
    enc = pc.dictionary_encode(values)
    dictionary = enc.dictionary
    order = pc.sort_indices(dictionary).to_numpy()
    rank = np.empty(len(dictionary), dtype=np.int64)
    rank[order] = np.arange(len(dictionary))
    return rank[enc.indices.to_numpy(zero_copy_only=False)], dictionary.take(pa.array(order))


def _unit_names(keys: Any, groups: Any | None) -> pa.Array:
    """The unit of each item: its group, or ``"\0<key>"`` for an item without one (so it sorts apart)."""
    groups = None if groups is None else string_array(groups)
    if groups is not None and groups.null_count == 0:
        return groups
    if groups is None or groups.null_count == len(groups):
        return pc.binary_join_element_wise("\0", string_array(keys), "")
    return pc.if_else(pc.is_null(groups), pc.binary_join_element_wise("\0", string_array(keys), ""), groups)


def _units(unit_names: pa.Array, strata: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """(unit of each item, stratum code of each unit, stratum names), units and strata numbered in
    sorted-name order. A unit's stratum is its most common one (ties: the alphabetically first)."""
    unit_of, _ = _sorted_codes(unit_names)
    stratum_of, stratum_names = _sorted_codes(string_array(strata).fill_null(""))
    n_units = int(unit_of.max()) + 1 if len(unit_of) else 0
    n_strata = len(stratum_names)
    unit_stratum = np.zeros(n_units, dtype=np.int64)
    if n_units == 0:
        return unit_of, unit_stratum, stratum_names
    # (unit, stratum) pairs sorted by unit then stratum, with their counts
    uniq, counts = np.unique(unit_of * max(n_strata, 1) + stratum_of, return_counts=True)
    u, s = uniq // max(n_strata, 1), uniq % max(n_strata, 1)
    # per unit: the most common stratum, ties → smallest stratum code (= alphabetically first)
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    best_count = np.maximum.reduceat(counts, starts)
    is_best = counts == np.repeat(best_count, np.diff(np.r_[starts, len(u)]))
    # the first pair reaching the maximum in each unit (pairs are sorted by stratum within a unit)
    cand = np.flatnonzero(is_best)
    keep = np.r_[True, u[cand][1:] != u[cand][:-1]]
    unit_stratum[u[cand][keep]] = s[cand][keep]
    return unit_of, unit_stratum, stratum_names


_ITEMS = pa.schema([("pos", pa.int64()), ("unit", pa.string()), ("stratum", pa.string()), ("key", pa.uint64())])


class UnitRanks:
    """Ranks the units (groups, or single items) of each stratum in a seeded random order, with
    memory bounded by :data:`repeval.datasets.spill.PARTITION_ROWS` items whatever their number.

    A unit's sort key is ``hash64(unit name, seed)`` (ties: the unit name), so the order is a
    seeded random permutation that depends only on the set of items, never on their order or on
    how they were partitioned. Items are hash-partitioned by unit key over spill files (one in
    memory for small inputs): a partition holds whole units and partitions are key ranges in
    order, so a unit's rank within its stratum is its rank in its partition plus the count of
    that stratum's units in earlier partitions.
    """

    def __init__(self, n_items: int, seed: int) -> None:
        self.seed = seed
        self.parts = Partitions(n_partitions(n_items), _ITEMS)

    def add(self, pos: np.ndarray, keys: Any, strata: Any, groups: Any | None) -> None:
        """Add items at positions ``pos`` with their keys (track ids), strata and groups (or None)."""
        units = _unit_names(keys, groups)
        key = _unit_keys(units, self.seed)
        batch = pa.record_batch(
            [pa.array(np.asarray(pos, dtype=np.int64)), units, string_array(strata).fill_null(""), pa.array(key)],
            schema=_ITEMS,
        )
        self.parts.add(batch, partition_of(key, self.parts.k))

    @staticmethod
    def _local(t: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(unit of each item, key of each unit, stratum code of each unit, stratum names) of a partition."""
        unit_of, unit_stratum, names = _units(t.column("unit").combine_chunks(), t.column("stratum").combine_chunks())
        unit_key = np.zeros(len(unit_stratum), dtype=np.uint64)
        unit_key[unit_of] = t.column("key").to_numpy()
        return unit_of, unit_key, unit_stratum, names.to_pylist()

    def ranks(self) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
        """(units per stratum, strata in sorted-name order; an iterator of (item positions, item stratum
        index, rank of the item's unit within its stratum)) — call once, after every add."""
        counts: dict[str, int] = {}
        for t in self.parts:
            _, _, unit_stratum, names = self._local(t)
            for name, c in zip(names, np.bincount(unit_stratum, minlength=len(names)).tolist(), strict=True):
                counts[name] = counts.get(name, 0) + c
        strata = sorted(counts)
        index = {name: i for i, name in enumerate(strata)}
        n_units = np.array([counts[s] for s in strata], dtype=np.int64)

        def items() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            running = np.zeros(len(strata), dtype=np.int64)
            try:
                for t in self.parts:
                    if t.num_rows == 0:
                        continue
                    unit_of, unit_key, unit_stratum, names = self._local(t)
                    g = np.array([index[n] for n in names], dtype=np.int64)[unit_stratum]
                    # stratum, then key, then unit name (unit codes are in sorted-name order)
                    order = np.lexsort((np.arange(len(g)), unit_key, g))
                    g_sorted = g[order]
                    first = np.searchsorted(g_sorted, g_sorted, side="left")
                    rank = np.empty(len(g), dtype=np.int64)
                    rank[order] = running[g_sorted] + np.arange(len(g)) - first
                    running += np.bincount(g, minlength=len(strata))
                    yield t.column("pos").to_numpy(), g[unit_of], rank[unit_of]
            finally:
                self.parts.close()

        return n_units, items()


def _unit_keys(units: pa.Array, seed: int) -> np.ndarray:
    """``hash64(units, seed)``, hashing each distinct name once when names repeat (groups: many rows each)."""
    enc = pc.dictionary_encode(units)
    if len(enc.dictionary) > len(units) // 2:  # mostly distinct (tracks without a group): hash them directly
        return hash64(units, seed)
    return hash64(enc.dictionary, seed)[enc.indices.to_numpy(zero_copy_only=False)]


def _ranked(keys: Any, strata: Any, seed: int, groups: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(units per stratum, stratum index of each item, rank of each item's unit in its stratum)."""
    keys = string_array(keys)
    n = len(keys)
    ranker = UnitRanks(n, seed)
    ranker.add(np.arange(n), keys, strata, groups)
    n_units, it = ranker.ranks()
    g = np.zeros(n, dtype=np.int64)
    rank = np.zeros(n, dtype=np.int64)
    for pos, g_part, rank_part in it:
        g[pos] = g_part
        rank[pos] = rank_part
    return n_units, g, rank


def _split_codes(
    n_units: np.ndarray, ratios: tuple[float, float, float], g: np.ndarray, rank: np.ndarray
) -> np.ndarray:
    """Split code of each item: the first ``train`` units of its stratum (by rank) are train, then validation, test."""
    bounds = np.array([np.cumsum(_allocate(int(n), ratios)) for n in n_units], dtype=np.int64).reshape(-1, 3)
    return ((rank >= bounds[g, 0]).astype(np.int8) + (rank >= bounds[g, 1])).astype(np.int8)


def _fold_codes(n_units: np.ndarray, n_folds: int, g: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Fold of each item: units dealt round-robin, stratum after stratum (sorted by name)."""
    dealt = np.r_[0, np.cumsum(n_units)[:-1]].astype(np.int64)
    return (dealt[g] + rank) % n_folds


def assign_splits(
    keys: Any,
    strata: Any,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    groups: Any | None = None,
) -> np.ndarray:
    """Split codes (0 train, 1 validation, 2 test) per item; see :func:`stratified_split`."""
    n_units, g, rank = _ranked(keys, strata, seed, groups)
    return _split_codes(n_units, ratios, g, rank)


def stratified_split(
    keys: Sequence[str] | pa.Array,
    strata: Sequence[str] | pa.Array,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    groups: Sequence[str | None] | pa.Array | None = None,
) -> list[str]:
    """Assign each item a split. Items sharing a group always share a split.

    Within each stratum, units are ordered by their seeded key (:class:`UnitRanks`) and the
    first ``ratios[0]`` of them (largest-remainder counts) go to train, the next to validation,
    the rest to test. Deterministic for a given ``seed`` and set of (key, stratum, group)
    items, independent of their order.
    """
    return [SPLITS[c] for c in assign_splits(keys, strata, ratios, seed, groups)]


def assign_folds(
    keys: Any,
    strata: Any,
    n_folds: int,
    seed: int = 0,
    groups: Any | None = None,
) -> np.ndarray:
    """Fold number (0..n_folds-1) per item: stratified, seeded, group-aware, balanced in size.

    Within each stratum the units are taken in their seeded order and dealt round-robin,
    continuing the deal from where the previous stratum stopped so fold sizes differ by at most
    one unit overall.
    """
    if n_folds < 2:
        raise ValueError(f"n_folds must be ≥ 2, got {n_folds}")
    n_units, g, rank = _ranked(keys, strata, seed, groups)
    return _fold_codes(n_units, n_folds, g, rank)


def folds_to_split_codes(folds: np.ndarray, n_folds: int, fold: int) -> np.ndarray:
    """Rotation used by mir_ref: validation = fold ``fold``, test = fold ``fold + 1``, train = the rest."""
    if n_folds < 3:
        raise ValueError(f"k-fold splits need n_folds ≥ 3 (validation, test and ≥1 training fold), got {n_folds}")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in 0..{n_folds - 1}, got {fold}")
    folds = np.asarray(folds)
    codes = np.zeros(len(folds), dtype=np.int8)
    codes[folds == fold] = 1
    codes[folds == (fold + 1) % n_folds] = 2
    return codes


def fold_splits(
    keys: Sequence[str] | pa.Array,
    strata: Sequence[str] | pa.Array,
    n_folds: int,
    fold: int,
    seed: int = 0,
    groups: Sequence[str | None] | pa.Array | None = None,
) -> list[str]:
    """Splits for fold ``fold`` of ``n_folds`` stratified folds (``split_type: all``)."""
    codes = folds_to_split_codes(assign_folds(keys, strata, n_folds, seed, groups), n_folds, fold)
    return [SPLITS[c] for c in codes]


# ----------------------------------------------------------------------------- row tables


def first_labels(labels: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The first label of each row ("" for an empty or null list): the stratum of a single-label row."""
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    if len(labels) == 0:
        return pa.array([], pa.string())
    lengths = pc.fill_null(pc.list_value_length(labels), 0).to_numpy(zero_copy_only=False)
    starts = labels.offsets.to_numpy()[:-1]
    values = labels.values
    idx = np.where(lengths > 0, starts, 0)
    if len(values) == 0:
        return pa.array([""] * len(labels), pa.string())
    first = values.take(pa.array(idx))
    return pc.if_else(pa.array(lengths > 0), first, "").fill_null("")


def _rarest_labels(labels: pa.Array, tags: pa.Array, counts: np.ndarray) -> pa.Array:
    """Each row's rarest label (fewest rows among ``tags``, sorted, with their row ``counts``; ties: alphabetically
    first), "" for a row without labels."""
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    parent = pc.list_parent_indices(labels).to_numpy()
    idx = pc.fill_null(pc.index_in(pc.list_flatten(labels), value_set=tags), -1).to_numpy(zero_copy_only=False)
    known = idx >= 0
    none = np.iinfo(np.int64).max
    best = np.full(len(labels), none, dtype=np.int64)
    np.minimum.at(best, parent[known], counts[idx[known]] * len(tags) + idx[known])
    empty = best == none
    rarest = tags.take(pa.array(np.where(empty, 0, best % max(len(tags), 1))))
    return pc.if_else(pa.array(empty), "", rarest)


def label_strata(rows: pa.Table, select: Callable[[pa.RecordBatch], np.ndarray]) -> Callable[[pa.Array], pa.Array]:
    """How the rows that ``select`` picks are stratified: by their label, or — when some row has several (tags) —
    by each row's rarest label among the picked rows. A row's first tag is seldom a rare one: stratified by it, a
    rare tag fell wherever its rows' first tags took them (on 600 clips with 50 Zipf-distributed tags, 17 tags had
    no validation or no test clip; 1 by rarest tag). Rows of one label get the same strata either way."""

    def picked() -> Iterator[pa.Array]:  # streamed twice, a batch at a time
        for batch in rows.to_batches(max_chunksize=spill.PARTITION_ROWS):
            mask = select(batch)
            if mask.any():
                yield batch.column("label").filter(pa.array(mask))

    if all((pc.max(pc.list_value_length(lab)).as_py() or 0) <= 1 for lab in picked()):
        return first_labels
    counts: dict[str, int] = {}
    for lab in picked():
        vc = pc.value_counts(pc.list_flatten(lab).drop_null())
        for tag, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
            counts[tag] = counts.get(tag, 0) + c
    names = sorted(counts)
    tags, n = pa.array(names, pa.string()), np.array([counts[t] for t in names], dtype=np.int64)
    return lambda labels: _rarest_labels(labels, tags, n)


def _fill_rows(
    rows: pa.Table,
    select: Callable[[pa.RecordBatch], np.ndarray],
    codes_of: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    seed: int,
    stratify: bool = True,
) -> pa.Table:
    """Set ``split`` of the rows that ``select`` picks to the split codes that ``codes_of(units per
    stratum, stratum of each item, rank of its unit)`` gives, streaming over ``rows`` in batches.

    Memory stays bounded for any row count: units are ranked partition by partition
    (:class:`UnitRanks`), the codes are one byte per row (memory-mapped past
    :data:`~repeval.datasets.spill.PARTITION_ROWS` rows) and a large result table is written to
    a spill file and memory-mapped (:class:`~repeval.datasets.spill.TableSpool`).
    """
    n = rows.num_rows
    ranker = UnitRanks(n, seed)
    strata_of = label_strata(rows, select) if stratify else None
    start = 0
    picked = 0
    for batch in rows.to_batches(max_chunksize=spill.PARTITION_ROWS):
        mask = select(batch)
        if mask.any():
            sub = batch.filter(pa.array(mask))
            strata = strata_of(sub.column("label")) if strata_of else pa.nulls(sub.num_rows, pa.string())
            ranker.add(start + np.flatnonzero(mask), sub.column("track_id"), strata, sub.column("group"))
            picked += sub.num_rows
        start += batch.num_rows
    if not picked:
        ranker.parts.close()
        return rows
    n_units, items = ranker.ranks()
    codes = codes_array(n)
    for pos, g, rank in items:
        codes[pos] = codes_of(n_units, g, rank)
    # only the split column is new: it is spooled (to a memory-mapped spill file past PARTITION_ROWS rows) and
    # set on the table, whose other columns stay as they are (memory-mapped too for a spilled catalog)
    index = rows.schema.get_field_index("split")
    split_schema = pa.schema([rows.schema.field(index)])
    spool = TableSpool(split_schema)
    start = 0
    for chunk in _chunks(rows.column(index), spill.PARTITION_ROWS):
        c = np.asarray(codes[start : start + len(chunk)])
        start += len(chunk)
        new = pc.if_else(pa.array(c >= 0), _SPLIT_NAMES.take(pa.array(np.maximum(c, 0))), chunk)
        spool.write(pa.record_batch([new.cast(pa.string())], schema=split_schema))
    del codes
    split = spool.table().column(0)
    return rows.set_column(index, rows.schema.field(index), split)


def _chunks(column: pa.ChunkedArray, size: int) -> Iterator[pa.Array]:
    """The column's chunks, sliced to at most ``size`` items."""
    for chunk in column.chunks:
        for a in range(0, len(chunk), size):
            yield chunk.slice(a, size)


def _null_split(batch: pa.RecordBatch) -> np.ndarray:
    return pc.is_null(batch.column("split")).to_numpy(zero_copy_only=False)


def fill_splits(rows: pa.Table, ratios: tuple[float, float, float], seed: int, stratify: bool = True) -> pa.Table:
    """Give rows with a null split a seeded stratified split (stratum = the row's label, or its rarest tag: see
    :func:`label_strata`; one stratum when ``stratify`` is False, e.g. for regression targets, where each value would
    be a stratum)."""
    if rows.column("split").null_count == 0:
        return rows
    return _fill_rows(
        rows, _null_split, lambda n_units, g, rank: _split_codes(n_units, ratios, g, rank), seed, stratify
    )


def fill_fold_splits(rows: pa.Table, n_folds: int, fold: int, seed: int, stratify: bool = True) -> pa.Table:
    """Give rows with a null split the split of fold ``fold`` of ``n_folds`` stratified folds."""
    if rows.column("split").null_count == 0:
        return rows
    folds_to_split_codes(np.zeros(0, dtype=np.int64), n_folds, fold)  # validate n_folds and fold up front

    def codes(n_units: np.ndarray, g: np.ndarray, rank: np.ndarray) -> np.ndarray:
        return folds_to_split_codes(_fold_codes(n_units, n_folds, g, rank), n_folds, fold)

    return _fill_rows(rows, _null_split, codes, seed, stratify)


def carve_validation(rows: pa.Table, fraction: float, seed: int, stratify: bool = True) -> pa.Table:
    """Move a stratified, group-aware ``fraction`` of the ``train`` rows into ``validation``.

    For data sets whose official split has no validation part (OpenMIC-2018, VocalSet's
    technique split in the original paper).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")

    def is_train(batch: pa.RecordBatch) -> np.ndarray:
        return pc.fill_null(pc.equal(batch.column("split"), "train"), False).to_numpy(zero_copy_only=False)

    ratios = (1 - fraction, fraction, 0.0)
    return _fill_rows(rows, is_train, lambda n_units, g, rank: _split_codes(n_units, ratios, g, rank), seed, stratify)


def split_counts(rows: pa.Table) -> dict[str, int]:
    vc = pc.value_counts(rows.column("split").combine_chunks())
    return {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}


def untrained_labels(rows: pa.Table) -> list[tuple[str, int, int]]:
    """``(label, validation tracks, test tracks)`` for each label some validation or test track has and no training
    track does — no probe can learn it (the training stage warns of it, once its embeddings are computed) — by label."""

    def tracks_per_label(split: str) -> dict[str, int]:
        labels = pc.list_flatten(rows.filter(pc.equal(rows.column("split"), split)).column("label").combine_chunks())
        return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(labels).to_pylist() if v["values"]}

    train, val, test = (tracks_per_label(s) for s in SPLITS)
    return [(lab, val.get(lab, 0), test.get(lab, 0)) for lab in sorted((val.keys() | test.keys()) - train.keys())]
