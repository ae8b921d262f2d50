"""The seeded, stratified train/validation/test plan of the rendered sets (:func:`_splits`, :func:`_allocate`),
drawn before any audio is rendered. (Catalog data sets without official splits are split by
:mod:`repeval.datasets.splits`.)"""

from __future__ import annotations

import logging

import numpy as np

from repeval.words import counted

#: the render's log lines keep one name, whichever of its modules says them
log = logging.getLogger("repeval.datasets.render")


SPLITS = ("train", "validation", "test")


def _splits(strata: np.ndarray, ratios: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    """``train`` / ``validation`` / ``test`` per clip, stratified: within each stratum a seeded shuffle, then
    :func:`_allocate`."""
    shuffled = []
    for stratum in np.unique(strata):
        idx = np.flatnonzero(strata == stratum)
        shuffled.append(idx[rng.permutation(len(idx))])
    return _allocate(shuffled, len(strata), ratios, rng)


def _allocate(
    shuffled: list[np.ndarray], n_clips: int, ratios: tuple[float, float, float], rng: np.random.Generator
) -> np.ndarray:
    """The split of each of ``n_clips`` clips, given each stratum's clip indices in a seeded order. Within each
    stratum the first ``round(ratio × n)`` (at least one where the stratum has three clips) go to test, the next to
    validation, the rest to train. Strata of one or two clips get no test or validation clip that way, so a set of
    small strata (48 clips over 24 keys) would have none: a test or validation split holding under half its share
    of the whole set (``round(ratio × n_clips)``, at least one), or an empty train split, is filled up to that
    share, a clip at a time from the stratum with the most clips in the split that has the most (ties: the
    stratum with the fewest in the split filled, then a seeded order). Sets whose strata all have three clips or
    more are never filled up (each such stratum gives test and validation at least two thirds of its share): they
    keep their splits. A set too small for every split with a positive ratio to get a clip is rendered with a
    warning naming the minimum."""
    # counts[s, k]: clips of stratum s in split k (SPLITS order); the clips are laid out test, validation, train
    counts = np.zeros((len(shuffled), 3), dtype=np.int64)
    for s, idx in enumerate(shuffled):
        n = len(idx)
        n_test, n_val = round(ratios[2] * n), round(ratios[1] * n)
        if n >= 3:
            n_test, n_val = max(1, n_test) if ratios[2] > 0 else 0, max(1, n_val) if ratios[1] > 0 else 0
        n_test = min(n_test, n)
        n_val = min(n_val, n - n_test)
        counts[s] = (n - n_test - n_val, n_val, n_test)
    wanted = [k for k in range(3) if ratios[k] > 0]
    if n_clips < len(wanted):
        log.warning(
            "%s cannot fill the %s splits: render at least %d clips for a set that trains, selects and "
            "tests (a smaller one has empty splits)",
            counted(n_clips, "clip"),
            ", ".join(SPLITS[k] for k in wanted),
            len(wanted),
        )
    elif len(shuffled):
        order: np.ndarray | None = None  # the seeded tie-break between strata, drawn only when needed
        for k in (2, 1, 0):
            if ratios[k] <= 0:
                continue
            share = max(1, round(ratios[k] * n_clips))
            held = counts[:, k].sum()
            if held and (k == 0 or 2 * held >= share):  # (three-clip strata hold a third in train: left as is)
                continue
            if order is None:
                order = rng.permutation(len(shuffled))
            while counts[:, k].sum() < share:
                totals = counts.sum(axis=0)
                donors = [d for d in range(3) if d != k and totals[d] > (1 if ratios[d] > 0 else 0)]
                if not donors:
                    break
                donor = max(donors, key=lambda j: int(totals[j]))
                held_by = np.flatnonzero(counts[:, donor] > 0)
                pick = held_by[np.lexsort((order[held_by], counts[held_by, k], -counts[held_by, donor]))[0]]
                counts[pick, donor] -= 1
                counts[pick, k] += 1
    out = np.empty(n_clips, dtype=object)
    for s, idx in enumerate(shuffled):
        _, n_val, n_test = (int(c) for c in counts[s])
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "validation"
        out[idx[n_test + n_val :]] = "train"
    return out
