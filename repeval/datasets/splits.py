"""Seeded, stratified (optionally group-aware) train/validation/test splits."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets.base import SPLITS


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


def stratified_split(
    keys: list[str],
    strata: list[str],
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    groups: list[str | None] | None = None,
) -> list[str]:
    """Assign each item a split. Items sharing a group always share a split.

    Deterministic for a given ``seed`` and set of (key, stratum, group) items, independent of
    their order.
    """
    n = len(keys)
    units: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        g = groups[i] if groups is not None and groups[i] is not None else f"\0{keys[i]}"
        units[str(g)].append(i)
    # stratum of a unit: its most common stratum
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for u, idx in sorted(units.items()):
        vals, cnt = np.unique([strata[i] for i in idx], return_counts=True)
        by_stratum[str(vals[np.argmax(cnt)])].append(u)
    out = [""] * n
    for stratum, us in sorted(by_stratum.items()):
        rng = np.random.default_rng([seed, abs(hash_str(stratum))])
        order = rng.permutation(len(us))
        counts = _allocate(len(us), ratios)
        bounds = np.cumsum(counts)
        for rank, j in enumerate(order):
            split = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
            for i in units[us[j]]:
                out[i] = split
    return out


def hash_str(s: str) -> int:
    """A process-independent 63-bit hash (Python's ``hash`` is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") >> 1


def fill_splits(rows: pa.Table, ratios: tuple[float, float, float], seed: int) -> pa.Table:
    """Give rows with a null split a seeded stratified split (stratum = first label)."""
    split = rows.column("split")
    if split.null_count == 0:
        return rows
    missing = pc.is_null(split).to_pylist()
    idx = [i for i, m in enumerate(missing) if m]
    labels = rows.column("label").to_pylist()
    ids = rows.column("track_id").to_pylist()
    groups = rows.column("group").to_pylist()
    assigned = stratified_split(
        [ids[i] for i in idx],
        [(labels[i] or [""])[0] for i in idx],
        ratios,
        seed,
        [groups[i] for i in idx],
    )
    new = split.to_pylist()
    for i, s in zip(idx, assigned, strict=True):
        new[i] = s
    return rows.set_column(rows.schema.get_field_index("split"), "split", pa.array(new, pa.string()))
