"""Robustness on the same tracks: each deformed scenario's change from clean (Δ), with both metrics computed on the
test tracks that clean and the scenario share.

A track that failed to deform or embed under one scenario (an error record of that scenario's partition) is missing
from that scenario's test set only — and one that failed on clean audio alone from the clean one. The deformed
metric minus the clean one would then compare different tracks. A test row keeps its scenario's metric on every track
of its test set (``value``, over ``n_test`` tracks); a deformed row adds the paired change ``delta``, over the
``n_delta`` tracks scored both clean and under that scenario.

Each scenario is paired with clean on its own, not on the tracks every scenario shares: a scenario's Δ does not depend
on which other scenarios the run has (one whose deformation fails often would shrink every other's comparison).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np

# the light module, not repeval.pipeline.stages: every probe trial that tests imports this one, and the pipeline's
# stages import the audio stack (scipy, soundfile, soxr: ~0.3 CPU-s on each trial actor's first trial)
from repeval.deformations import CLEAN
from repeval.probes import ProbeData
from repeval.warn import SaidByTestSets

_Key = tuple[str, str | None]


def _values(rows: list[dict[str, Any]], scenario: str) -> dict[_Key, float]:
    return {(r["metric"], r["label"]): r["value"] for r in rows if r["scenario"] == scenario}


def shared_positions(a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The positions in ``a`` and in ``b`` of the tracks both hold, in ``a``'s order (each track once: its first
    position, should a partition hold a track twice)."""
    first_b: dict[str, int] = {}
    for i, t in enumerate(b):
        first_b.setdefault(t, i)
    seen: set[str] = set()
    ia, ib = [], []
    for i, t in enumerate(a):
        if t in first_b and t not in seen:
            seen.add(t)
            ia.append(i)
            ib.append(first_b[t])
    return np.array(ia, np.int64), np.array(ib, np.int64)


def tracks_scored(y: np.ndarray, classes: Sequence[str], label: str | None) -> int:
    """How many of the tracks of targets ``y`` a metric row of ``label`` is over: every track, but for one label of a
    multilabel data set that annotates some labels per track (NaN in ``y``), the tracks annotating that label."""
    if label is None or y.ndim != 2 or y.dtype.kind != "f" or label not in classes:
        return len(y)
    return int(np.count_nonzero(~np.isnan(y[:, list(classes).index(label)])))


def _metrics_on(
    data: ProbeData, names: Sequence[str], y: np.ndarray, scores: np.ndarray, said: SaidByTestSets | None, name: str
) -> dict[_Key, float]:
    from repeval.metrics import compute_metrics

    with said.test_set(name) if said is not None else contextlib.nullcontext():
        rows = compute_metrics(names, data.task_type, y, scores, data.classes)
    return {(r.metric, r.label): r.value for r in rows}


def add_deltas(
    rows: list[dict[str, Any]],
    data: ProbeData,
    scores: dict[str, np.ndarray],
    metric_names: Sequence[str],
    said: SaidByTestSets | None = None,
) -> None:
    """Give each of one probe's test ``rows`` (``scenario``, ``metric``, ``label``, ``value``) its ``delta`` and
    ``n_delta``: for a deformed scenario, its metric minus the clean metric on the tracks both test sets hold, and how
    many those are; ``None`` on clean rows (and for a metric or label undefined on those tracks). ``scores``: each
    scenario's per-track scores, in the order of ``data.tests``' track ids. ``said``: what the metrics warn about
    those shared tracks (when they are not all of both test sets) is about test set ``clean ∩ <scenario>``."""
    for r in rows:
        r["delta"] = r["n_delta"] = None
    if CLEAN not in scores:
        return
    _, y_clean, ids_clean = data.tests[CLEAN]
    clean_values = _values(rows, CLEAN)
    for sid, sc in scores.items():
        if sid == CLEAN:
            continue
        _, y, ids = data.tests[sid]
        if list(ids) == list(ids_clean):  # the usual case: the same tracks, the rows' values are already paired
            shared, before, after = y, clean_values, _values(rows, sid)
        else:
            at_clean, at_sid = shared_positions(ids_clean, ids)
            shared, before, after = y[at_sid], {}, {}
            if len(at_clean):
                both = f"{CLEAN} ∩ {sid}"
                before = _metrics_on(data, metric_names, y_clean[at_clean], scores[CLEAN][at_clean], said, both)
                after = _metrics_on(data, metric_names, shared, sc[at_sid], said, both)
        for r in rows:
            if r["scenario"] == sid:
                key = (r["metric"], r["label"])
                b, a = before.get(key), after.get(key)
                r["delta"] = None if a is None or b is None else float(a) - float(b)
                r["n_delta"] = tracks_scored(shared, data.classes, r["label"])
