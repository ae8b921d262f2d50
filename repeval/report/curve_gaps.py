"""A robustness curve's missing points: a level a model's run tests but the curve has no value at — its line broken
there, its table cell "–" — and why (:func:`missing_note`): a failed test cell, or not run."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

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


def missing_points(
    curve: Curve, runs: Sequence[Run], sids: Mapping[str, str] | None = None
) -> list[tuple[str, str, str]]:
    """Each point a model's run tests but the curve has no value at — its line broken there, its table cell "–" —
    as ``(model · probe, scenario (level), why)``: the test cells ``failed.parquet`` names (its reason), else not
    run (no result: the run stopped before it, or no test track was embedded there). ``sids``: the scenario a column
    the runs define differently stands for in each run's files (``D2 (r2)`` → ``D2``)."""
    unit = f" {curve.series.unit}" if curve.series.unit else ""
    out = []
    for i, (model, probe) in enumerate(curve.probes.items()):
        for j, (scenario, level) in enumerate(zip(curve.scenarios, curve.levels, strict=True)):
            if math.isfinite(curve.mean[i, j]) or (curve.tested is not None and not curve.tested[i, j]):
                continue
            at = scenario if level is None else f"{scenario} ({level:g}{unit})"
            sid = (sids or {}).get(scenario, scenario)
            out.append((f"{model} · {probe}", at, _why_missing(runs, model, probe, sid, curve.series)))
    return out


def _why_missing(runs: Sequence[Run], model: str, probe: str, scenario: str, series: Series) -> str:
    run_id, _, name = model.partition("/") if len(runs) > 1 else ("", "", model)
    for run in runs:
        f = run.failed
        if f is None or f.empty or (run_id and run.run_id != run_id) or "scenario" not in f.columns:
            continue
        hit = f[(f["task"] == series.task) & (f["dataset"] == series.dataset) & (f["model"] == name)]
        hit = hit[(hit["probe"] == probe) & (hit["scenario"] == scenario)]
        if not hit.empty:
            return f"failed ({hit['reason'].iloc[0]})"
    return "not run (no result: the run stopped before it, or no test track was embedded there)"


def missing_note(curve: Curve, runs: Sequence[Run], sids: Mapping[str, str] | None = None) -> str:
    """What to say below a curve of its missing points (:func:`missing_points`): empty when none is."""
    found = missing_points(curve, runs, sids)
    if not found:
        return ""
    said = "; ".join(f"{who} at {at}: {why}" for who, at, why in found)
    broken = "its line" if len(found) == 1 else "each line"
    return f"{counted(len(found), 'point')} missing, {broken} broken there (– in the table): {said}"
