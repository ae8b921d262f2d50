"""Robustness as the report shows it: each deformed replicate's change from clean (Δ) on the same test tracks, and
what a caption says about the tracks a Δ leaves out.

A run records each deformed row's Δ in ``delta``, both metrics computed on the ``n_delta`` test tracks scored clean
and under that scenario (:mod:`repeval.tuning.paired`): a track that failed to deform or embed under one scenario only
is left out of that comparison. Results written before ``delta`` existed (``n_delta`` null) give the deformed
``value`` minus the clean one, each over its own test set, as they always did; the caption says where those sets
differ in size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from repeval.report.results import CLEAN, ordered_scenarios

#: entries a caption lists before "and N more"
MAX_NAMED = 4


def paired_deltas(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per deformed row of the aggregate results ``df``, paired with the clean row of its replicate
    (``keys``, metric, seed, fold): ``value`` its Δ, ``n_delta`` the tracks the Δ was computed on, ``n_test`` /
    ``n_clean`` the tracks of the deformed and of the clean test set, ``paired`` whether the Δ is on the same tracks
    (false for results written before ``delta``). ``_fold`` is the fold, -1 for a dataset with one split."""
    fold = df["fold"] if "fold" in df.columns else pd.Series(pd.NA, index=df.index, dtype="Int64")
    d = df.assign(_fold=fold.fillna(-1).astype(int))
    for col in ("delta", "n_delta"):
        if col not in d.columns:
            d[col] = np.nan
    cell = [*keys, "metric", "seed", "_fold"]
    clean = (
        d[d["scenario"] == CLEAN]
        .groupby(cell, sort=False)
        .agg(clean_value=("value", "mean"), n_clean=("n_test", "max"))
    )
    deformed = d[d["scenario"] != CLEAN].join(clean, on=cell)
    paired = deformed["n_delta"].notna()
    value = deformed["delta"].astype(float).where(paired, deformed["value"] - deformed["clean_value"])
    out = deformed.assign(value=value, paired=paired)
    return out[[*cell, "scenario", "value", "n_test", "n_delta", "n_clean", "paired"]]


def left_out(deltas: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Per test-set pair of :func:`paired_deltas`' ``deltas`` whose Δ left tracks out — (``keys``, seed, scenario),
    a k-fold dataset's folds summed (each track is tested in one) — ``left``: the tracks scored clean or under the
    scenario, not both; ``over``: those the Δ was computed on; ``n_test`` / ``n_clean``; ``paired``. For results
    written before Δ was paired, ``left`` is how many more one test set held than the other."""
    per_set = [*keys, "seed", "_fold", "scenario"]
    d = deltas.drop_duplicates(per_set).dropna(subset=["n_clean"])  # every metric of a test set: the same tracks
    over = d["n_delta"].astype(float).where(d["paired"], np.minimum(d["n_test"], d["n_clean"]))
    d = d.assign(left=d["n_clean"] + d["n_test"] - 2 * over, over=over)
    sums = d.groupby([*keys, "seed", "scenario", "paired"], sort=False)[["left", "over", "n_test", "n_clean"]].sum()
    return sums[sums["left"] > 0].reset_index()


def left_out_note(deltas: pd.DataFrame, keys: Sequence[str]) -> str:
    """What a robustness caption adds about :func:`paired_deltas`' ``deltas`` (:func:`left_out`): per scenario and
    model (the ``keys`` but the probe), the most test tracks a Δ left out and how many it was computed on; and, for
    results written before Δ was paired, where the clean and the deformed test sets it compares differ in size.
    Empty when nothing was left out."""
    who = [k for k in keys if k != "probe"]
    counts = left_out(deltas, keys)
    order = {s: i for i, s in enumerate(ordered_scenarios(counts["scenario"].unique()))}
    worst = counts.sort_values("left", ascending=False, kind="stable").drop_duplicates([*who, "scenario", "paired"])
    worst = worst.sort_values("scenario", key=lambda s: s.map(order), kind="stable")
    notes = []
    for paired in (True, False):
        entries = [
            f"{r['scenario']} {int(r['left'])} for {'/'.join(str(r[k]) for k in who)} (Δ over {int(r['over'])})"
            if paired
            else f"{r['scenario']} {int(r['n_test'])} against {int(r['n_clean'])} clean for "
            + "/".join(str(r[k]) for k in who)
            for _, r in worst[worst["paired"] == paired].iterrows()
        ]
        if not entries:
            continue
        more = len(entries) - MAX_NAMED
        named = "; ".join(entries[:MAX_NAMED]) + (f"; and {more} more" if more > 0 else "")
        notes.append(
            "test tracks left out of Δ (scored clean or deformed only): " + named
            if paired
            else "Δ over test sets of different tracks (results of an earlier repeval, which did not pair Δ on the "
            "same tracks; a new run does): " + named
        )
    return "; ".join(notes)
