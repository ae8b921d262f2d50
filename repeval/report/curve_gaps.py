"""A robustness curve's missing points: a level a model's run tests but the curve has no value at — its line broken
there, its table cell "–" — and why (:func:`missing_reasons`, said below the curve by :func:`missing_note` and in
its CSV rows): a failed test cell, a failed training of the probe, or not run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from repeval.report.results import CLEAN, Run
from repeval.words import counted

if TYPE_CHECKING:
    from repeval.report.curves import Curve, Series


def tested(curve: Curve, definers: Mapping[str, set[str]]) -> np.ndarray:
    """Per model (``<run>/<model>``) and point of ``curve``, whether the model's run tests it: clean, and the
    scenarios its ``config.yaml`` defines as the series has them."""
    return np.array(
        [[s == CLEAN or m.split("/")[0] in definers.get(s, set()) for s in curve.scenarios] for m in curve.probes]
    )


def missing_reasons(
    curve: Curve, runs: Sequence[Run], sids: Mapping[str, str] | None = None
) -> dict[tuple[int, int], str]:
    """Each point (model row, point column of ``curve``) a model's run tests but the curve has no value at — its line
    broken there, its table cell "–" — with why: the test cells ``failed.parquet`` names (its reason), the probe's
    training that failed (its reason, shortened), else not run (no result: the run stopped before it, or no test
    track was embedded there). ``sids``: the scenario a column the runs define differently stands for in each run's
    files (``D2 (r2)`` → ``D2``)."""
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


def short_reason(reason: str) -> str:
    """A failure's reason without its fix (what follows " — ") and cut to :data:`SHORT_REASON` characters."""
    said = str(reason).split(" — ", 1)[0].strip() or "no reason recorded"
    return said if len(said) <= SHORT_REASON else said[: SHORT_REASON - 1].rstrip() + "…"


def _why_missing(runs: Sequence[Run], model: str, probe: str, scenario: str, series: Series) -> str:
    run_id, _, name = model.partition("/") if len(runs) > 1 else ("", "", model)
    said = []
    for run in runs:
        f = run.failed
        if f is None or f.empty or (run_id and run.run_id != run_id):
            continue
        hit = f[(f["task"] == series.task) & (f["dataset"] == series.dataset) & (f["model"] == name)]
        hit = hit[hit["probe"] == probe]
        # a row without a scenario (every row of a run written before the column) is a training that failed
        if "scenario" in hit.columns:
            trained, cell = hit["scenario"].isna(), hit[hit["scenario"] == scenario]
        else:
            trained, cell = pd.Series(True, index=hit.index), hit.iloc[:0]
        if not cell.empty:
            said.append(f"failed ({cell['reason'].iloc[0]})")
        if trained.any():
            said.append(f"training failed: {short_reason(hit[trained]['reason'].iloc[0])}")
    if said:
        return " and ".join(dict.fromkeys(said))
    return "not run (no result: the run stopped before it, or no test track was embedded there)"


def missing_note(curve: Curve, reasons: Mapping[tuple[int, int], str]) -> str:
    """What to say below a curve of its missing points (``reasons``: :func:`missing_reasons`): empty when none is."""
    found = missing_points(curve, reasons)
    if not found:
        return ""
    said = "; ".join(f"{who} at {at}: {why}" for who, at, why in found)
    broken = "its line" if len(found) == 1 else "each line"
    return f"{counted(len(found), 'point')} missing, {broken} broken there (– in the table): {said}"
