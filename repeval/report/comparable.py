"""Which runs' results may be ranked against each other: those scored on the same test set.

A value is measured on a test set; two runs' values of one task and dataset are comparable only when both were
scored on the same tracks with the same labels — not a smoke test's 10 tracks against a full run's 20, nor two
versions of a data set. A run's test set is read from the rows it saved (``splits/<task>__<dataset>[__fold<k>].parquet``,
the rows whose ``split`` is ``test``: :func:`split_digests`); where a run lacks that file (copied without it, or a
split not recorded), from its results alone: the clean test tracks scored per fold (``n_test``), which tells different
sizes apart but not two sets of one size.

:func:`run_sets` splits a group's runs into sets of runs on the same test set; the report's summary cards and the
tables' best-in-column marks rank within each set, and :func:`differ_note` says why.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from repeval.report.results import CLEAN, Run

log = logging.getLogger(__name__)

#: ``(run_id, task, dataset)`` → a digest of the run's test tracks and their labels (over its folds)
SplitDigests = Mapping[tuple[str, str, str], str]

_SPLITS_NAME = re.compile(r"^(?P<task>.+?)__(?P<dataset>.+?)(?:__fold(?P<fold>\d+))?\.parquet$")


def _digest_file(path: Path) -> str | None:
    """The digest of ``path``'s test rows (sorted track ids with their labels); ``None`` when it records none."""
    try:
        table = pq.read_table(path, columns=["track_id", "label", "split"])
    except (OSError, ValueError, KeyError) as exc:
        log.debug("test set of %s not read: %s", path, exc)
        return None
    lines = []
    for track, label, split in zip(*(table.column(c).to_pylist() for c in ("track_id", "label", "split")), strict=True):
        if split == "test":
            labels = label if isinstance(label, list) else [label]
            lines.append(f"{track}\x1e" + "\x1f".join(sorted(str(x) for x in labels)))
    if not lines:
        return None
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()[:16]


def split_digests(runs: Sequence[Run]) -> dict[tuple[str, str, str], str]:
    """Per run and (task, dataset) of its saved splits, a digest of its test set (each fold's, in fold order); a pair
    without a readable test split in every fold's file is left out."""
    out: dict[tuple[str, str, str], str] = {}
    for run in runs:
        per: dict[tuple[str, str], list[tuple[int, str | None]]] = {}
        for path in sorted((Path(run.path) / "splits").glob("*.parquet")):
            m = _SPLITS_NAME.match(path.name)
            if m is None:
                continue
            fold = int(m["fold"]) if m["fold"] is not None else -1
            per.setdefault((m["task"], m["dataset"]), []).append((fold, _digest_file(path)))
        for (task, dataset), folds in per.items():
            if all(d is not None for _, d in folds):
                out[(run.run_id, task, dataset)] = ",".join(str(d) for _, d in sorted(folds))
    return out


def tracks_tested(df: pd.DataFrame) -> dict[str, int]:
    """Per run of ``df`` (aggregate rows), the test tracks of its evaluations: the most any model scored on clean
    audio (a run without clean rows: in any scenario), summed over the folds (each track is tested in one)."""
    rows = _scored(df)
    per = rows.groupby(["run_id", "task", "_fold"], sort=False)["n_test"].max()
    per = per.groupby(level=["run_id", "task"], sort=False).sum().groupby(level="run_id", sort=False).max()
    return {str(r): int(n) for r, n in per.items()}


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that tell a run's test tracks: its clean ones (all of them, a run without any), ``_fold`` -1 without
    folds."""
    clean = df["scenario"] == CLEAN
    rows = df[clean | ~df["run_id"].isin(df.loc[clean, "run_id"])]
    return rows.assign(_fold=rows["fold"].fillna(-1) if "fold" in rows.columns else -1)


def _size_key(df: pd.DataFrame) -> dict[str, tuple[object, ...]]:
    rows = _scored(df)
    per = rows.groupby(["run_id", "task", "dataset", "_fold"], sort=True)["n_test"].max()
    out: dict[str, list[object]] = {}
    for (run, *where), n in per.items():
        out.setdefault(str(run), []).append((*where, int(n)))
    return {r: tuple(v) for r, v in out.items()}


def run_sets(df: pd.DataFrame, test_sets: SplitDigests | None = None) -> list[list[str]]:
    """The runs of ``df`` (the aggregate rows of one table or task/dataset group) in sets of runs scored on the same
    test sets, in the order they appear; one set when all were (a single run included). By the digests of
    ``test_sets`` where every run has one for every (task, dataset) of ``df``, else by the clean tracks scored."""
    runs = list(dict.fromkeys(df["run_id"].astype(str)))
    if len(runs) < 2:
        return [runs]
    pairs = list(dict.fromkeys(zip(df["task"].astype(str), df["dataset"].astype(str), strict=True)))
    digests = {r: tuple((test_sets or {}).get((r, t, d)) for t, d in pairs) for r in runs}
    keys: Mapping[str, tuple[object, ...]]
    if test_sets and all(None not in v for v in digests.values()):
        keys = digests
    else:
        keys = _size_key(df)
    sets: dict[tuple[object, ...], list[str]] = {}
    for r in runs:
        sets.setdefault(keys.get(r, ()), []).append(r)
    return list(sets.values())


def differ_note(df: pd.DataFrame, sets: list[list[str]]) -> str:
    """Why ``df``'s runs are not ranked together: ``the runs' test sets differ (quickstart 20 test tracks,
    quickstart-smoke 10)``, or, where sizes agree, that the tracks or their labels do; empty with one set."""
    if len(sets) < 2:
        return ""
    sizes = tracks_tested(df)
    shown = ", ".join(f"{r} {sizes.get(r, 0)}" + (" test tracks" if i == 0 else "") for i, r in enumerate(sizes))
    what = "other tracks or labels" if len({sizes.get(s[0]) for s in sets}) < len(sets) else shown
    if what != shown:
        what = f"{shown}; {what}"
    return f"the runs' test sets differ ({what})"


def set_label(runs: Sequence[str]) -> str:
    """``quickstart`` or ``r1 + r2``: a set of runs, as the cards name it."""
    return " + ".join(runs)
