"""A robustness curve's missing points: a level a model's run tests but the curve has no value at — its line broken
there, its table cell "–" — and why (:func:`missing_reasons`, said below the curve by :func:`missing_note` and in
its CSV rows): a failed test cell, or not run (and the seeds whose training failed); and the models without a line,
every training of their probes failed (:func:`untrained`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from repeval.report.results import CLEAN, Run
from repeval.report.selection import split_run
from repeval.words import counted, named

if TYPE_CHECKING:
    from repeval.report.curves import Curve, Series


def tested(curve: Curve, definers: Mapping[str, set[str]]) -> np.ndarray:
    """Per model (``<run>/<model>``) and point of ``curve``, whether the model's run tests it: clean, and the
    scenarios its ``config.yaml`` defines as the series has them."""
    return np.array([[tests_point(m, s, definers) for s in curve.scenarios] for m in curve.probes])


def tests_point(model: str, scenario: str, definers: Mapping[str, set[str]] | None) -> bool:
    """Whether ``model``'s run (``<run>/<model>``) tests ``scenario`` (:func:`tested`); ``None``: one run's model,
    which tests every point."""
    if definers is None or scenario == CLEAN:
        return True
    # (the run's name may have a '/' of its own, ``demo@b/x/runs``, the model too, ``m-a-p/MERT-v1-95M``)
    return split_run(model, set().union(*definers.values()))[0] in definers.get(scenario, set())


def missing_reasons(
    curve: Curve, runs: Sequence[Run], sids: Mapping[str, str] | None = None
) -> dict[tuple[int, int], str]:
    """Each point (model row, point column of ``curve``) a model's run tests but the curve has no value at — its line
    broken there, its table cell "–" — with why: the test cells ``failed.parquet`` names (its reason), else not run
    (no result: the run stopped before it, or no test track was embedded there); and the seeds whose training of the
    probe failed (its reason, shortened). ``sids``: the scenario a column the runs define differently stands for in
    each run's files (``D2 (r2)`` → ``D2``)."""
    out = {}
    for i, (model, probe) in enumerate(curve.probes.items()):
        for j, scenario in enumerate(curve.scenarios):
            if math.isfinite(curve.mean[i, j]) or (curve.tested is not None and not curve.tested[i, j]):
                continue
            sid = (sids or {}).get(scenario, scenario)
            out[i, j] = _why_missing(runs, model, probe, sid, curve.series)
    return out


def missing_points(curve: Curve, reasons: Mapping[tuple[int, int], str]) -> list[tuple[str, str, str]]:
    """The missing points of ``curve`` (``reasons``: :func:`missing_reasons`) as ``(model · probe, scenario (level),
    why)``."""
    unit = f" {curve.series.unit}" if curve.series.unit else ""
    names = [f"{model} · {probe}" for model, probe in curve.probes.items()]
    out = []
    for (i, j), why in sorted(reasons.items()):
        scenario, level = curve.scenarios[j], curve.levels[j]
        out.append((names[i], scenario if level is None else f"{scenario} ({level:g}{unit})", why))
    return out


#: the longest a failed training's reason is said in a curve's note and CSV (``failed.parquet`` has it whole)
SHORT_REASON = 120


def one_line(reason: object) -> str:
    """A failure's reason on one line (a traceback's lines, a reason a user wrote): a note's text, a CSV's field."""
    return " ".join(str(reason).split())


def short_reason(reason: str) -> str:
    """A failure's reason without its fix (what follows " — "), on one line and cut to :data:`SHORT_REASON`
    characters."""
    said = one_line(str(reason).split(" — ", 1)[0]) or "no reason recorded"
    return said if len(said) <= SHORT_REASON else said[: SHORT_REASON - 1].rstrip() + "…"


#: why a point its model's run tests has no result, failed.parquet naming none of its test cells
NOT_RUN = "not run (no result: the run stopped before it, or no test track was embedded there)"


def _why_missing(runs: Sequence[Run], model: str, probe: str, scenario: str, series: Series) -> str:
    """Why ``model``'s ``probe`` has no value at ``scenario``: its failed test cells (``failed.parquet``'s reason),
    else not run — and the seeds whose training of it failed, when some did: a model with a line has a seed that
    trained, which is not at ``scenario`` for one of those reasons (a training failed in every seed leaves its model
    without a line: :func:`untrained`)."""
    hit = _failures(runs, model, series)
    hit = hit[hit["probe"] == probe]
    cell = hit[hit["scenario"] == scenario]
    why = f"failed ({one_line(cell['reason'].iloc[0])})" if not cell.empty else NOT_RUN
    trainings = hit[hit["scenario"].isna()]
    return why + (f", and {_training_failed(trainings)}" if not trainings.empty else "")


def _failures(runs: Sequence[Run], model: str, series: Series) -> pd.DataFrame:
    """``failed.parquet``'s rows of ``model`` (``<run>/<model>`` over several runs) on the series' task and dataset
    (:func:`_failed_rows`)."""
    run_id, name = split_run(model, [r.run_id for r in runs]) if len(runs) > 1 else ("", model)
    found = [_failed_rows(run, series) for run in runs if not run_id or run.run_id == run_id]
    found = [f for f in found if not f.empty]
    rows = pd.concat(found, ignore_index=True) if found else _NO_FAILURES
    return rows[rows["model"] == name]


#: no row of ``failed.parquet``
_NO_FAILURES = pd.DataFrame(columns=["task", "dataset", "model", "probe", "seed", "scenario", "reason"])


def _failed_rows(run: Run, series: Series) -> pd.DataFrame:
    """``run``'s ``failed.parquet`` rows on the series' task and dataset, with a ``scenario`` (none: a training that
    failed; so is every row of a run written before the column)."""
    f = run.failed if run.failed is not None else _NO_FAILURES
    f = f[(f["task"] == series.task) & (f["dataset"] == series.dataset)]
    return f if "scenario" in f.columns else f.assign(scenario=None)


def _training_failed(trainings: pd.DataFrame) -> str:
    """``training failed (seeds 0, 2): <reason>`` of a probe's failed trainings (``failed.parquet``'s rows), with their
    folds of a k-fold dataset: ``(seeds 0, 1; fold 2)``."""
    return f"training failed ({_seeds_folds(trainings)}): {short_reason(trainings['reason'].iloc[0])}"


def _seeds_folds(rows: pd.DataFrame) -> str:
    """``seeds 0, 2`` of ``failed.parquet``'s ``rows``, and their folds of a k-fold dataset: ``seeds 0, 1; fold 2``."""
    said = named("seed", [str(s) for s in sorted(set(rows["seed"].dropna().astype(int)))])
    folds = sorted(set(rows["fold"].dropna().astype(int))) if "fold" in rows.columns else []
    return said + (f"; {named('fold', [str(f) for f in folds])}" if folds else "")


def untrained(
    curve: Curve, runs: Sequence[Run], probes: Mapping[str, str], definers: Mapping[str, set[str]] | None
) -> dict[str, dict[str, str]]:
    """The models without a line on ``curve`` because every training of their probes failed (an exception, a
    non-finite loss: ``failed.parquet``'s rows without a scenario): no result of theirs to choose a probe from
    (``probes``: each model's chosen one), so no table or figure of the report has them. Per model (``<run>/<model>``
    over several runs, of a run that tests the series: ``definers``, None for one run), each probe and why
    (:func:`_training_failed`)."""
    multi = len(runs) > 1
    out: dict[str, dict[str, str]] = {}
    for run in runs:
        f = _failed_rows(run, curve.series)
        for (name, probe), trainings in f[f["scenario"].isna()].groupby(["model", "probe"], sort=False):
            model = f"{run.run_id}/{name}" if multi else str(name)
            if model not in probes and any(tests_point(model, s, definers) for s, _ in curve.series.points):
                out.setdefault(model, {})[str(probe)] = _training_failed(trainings)
    return out


def untrained_note(gone: Mapping[str, Mapping[str, str]]) -> str:
    """What to say below a curve of the models without a line (``gone``: :func:`untrained`): empty when none is."""
    if not gone:
        return ""
    said = "; ".join(f"{model} · {probe}: {why}" for model, probes in gone.items() for probe, why in probes.items())
    return f"{counted(len(gone), 'model')} without a line (nor a row in the table) — {said}"


def missing_note(curve: Curve, reasons: Mapping[tuple[int, int], str]) -> str:
    """What to say below a curve of its missing points (``reasons``: :func:`missing_reasons`): empty when none is."""
    found = missing_points(curve, reasons)
    if not found:
        return ""
    said = "; ".join(f"{who} at {at}: {why}" for who, at, why in found)
    broken = "its line" if len(found) == 1 else "each line"
    return f"{counted(len(found), 'point')} missing, {broken} broken there (– in the table): {said}"


def expected_replicates(curve: Curve, runs: Sequence[Run], rows: pd.DataFrame) -> np.ndarray:
    """Per model of ``curve``, the replicates its run has of the curve's task and dataset: its seeds times its folds
    (one without) — of each, those with a result (``rows``: the group's aggregate rows, every model's) and those
    ``failed.parquet`` names (a seed or fold whose every training failed has no result). A point over fewer has a
    seed (or fold) without a value there (:func:`fewer_seeds`)."""

    def found(column: str, *frames: pd.DataFrame) -> set[int]:
        return {int(v) for f in frames if column in f.columns for v in f[column].dropna()}

    multi = len(runs) > 1
    per_run = {}
    for run in runs:
        mine = rows[rows["run_id"].astype(str) == run.run_id] if multi and "run_id" in rows.columns else rows
        failed = _failed_rows(run, curve.series)
        per_run[run.run_id] = len(found("seed", mine, failed)) * max(1, len(found("fold", mine, failed)))
    ids = [r.run_id for r in runs]
    return np.array([per_run.get(split_run(m, ids)[0] if multi else ids[0], 0) for m in curve.probes], dtype=int)


def fewer_seeds(curve: Curve) -> np.ndarray:
    """Per model and point of ``curve``, whether its value is over fewer replicates than its run has
    (:attr:`~repeval.report.curves.Curve.expected`): a seed's training or test cell failed, or did not run — drawn
    hollow, its table cell says ``n=… of …``."""
    if curve.expected is None:
        return np.zeros(curve.n.shape, dtype=bool)
    return (curve.n > 0) & (curve.n < curve.expected[:, None])


def fewer_reasons(
    curve: Curve, runs: Sequence[Run], sids: Mapping[str, str] | None = None
) -> dict[tuple[int, int], str]:
    """Each point (model row, point column) of ``curve`` over fewer replicates than its run has (:func:`fewer_seeds`),
    with how many and why: the seeds whose test cell there failed (``failed.parquet``'s reason), those whose training
    of the probe failed, else not run."""
    out = {}
    fewer = fewer_seeds(curve)
    of = "seeds × folds" if curve.folds else "seeds"
    for i, (model, probe) in enumerate(curve.probes.items()):
        for j, scenario in enumerate(curve.scenarios):
            if not fewer[i, j] or curve.expected is None:
                continue
            hit = _failures(runs, model, curve.series)
            hit = hit[hit["probe"] == probe]
            cells = hit[hit["scenario"] == (sids or {}).get(scenario, scenario)]
            trainings = hit[hit["scenario"].isna()]
            why = [_cell_failed(cells)] if not cells.empty else []
            why += [_training_failed(trainings)] if not trainings.empty else []
            said = "; ".join(why) or "the rest not run: no result"
            out[i, j] = f"{int(curve.n[i, j])} of {int(curve.expected[i])} {of} ({said})"
    return out


def _cell_failed(cells: pd.DataFrame) -> str:
    """``test failed (seed 1): <reason>`` of a point's failed test cells (``failed.parquet``'s rows; their folds too:
    :func:`_seeds_folds`)."""
    return f"test failed ({_seeds_folds(cells)}): {short_reason(cells['reason'].iloc[0])}"


def fewer_note(curve: Curve, reasons: Mapping[tuple[int, int], str]) -> str:
    """What to say below a curve of its points over fewer seeds than their run has (``reasons``:
    :func:`fewer_reasons`), each model's points of one reason together: empty when none is."""
    if not reasons:
        return ""
    unit = f" {curve.series.unit}" if curve.series.unit else ""
    names = [f"{model} · {probe}" for model, probe in curve.probes.items()]
    grouped: dict[tuple[int, str], list[str]] = {}
    for (i, j), why in sorted(reasons.items()):
        level = curve.levels[j]
        grouped.setdefault((i, why), []).append(curve.scenarios[j] + ("" if level is None else f" ({level:g}{unit})"))
    said = "; ".join(f"{names[i]} at {', '.join(at)}: {why}" for (i, why), at in grouped.items())
    return (
        f"{counted(len(reasons), 'point')} over fewer {curve.over} than {'its' if len(reasons) == 1 else 'their'} run "
        f"has (hollow in the figure, n=… of … in the table): {said}"
    )
