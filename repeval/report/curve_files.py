"""The files of the robustness curves (:mod:`repeval.report.curves`) beside the report: each curve's figure
(``plots/<stem>.png`` and ``.svg``) and every curve's numbers (``plots/robustness_curves.csv``, its missing points
too: an empty mean and why in its ``missing`` column), written once the report is built (:func:`write_curve_files`),
replacing an earlier report's."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from repeval.report.curves import Curve


CSV_COLUMNS = ["task", "dataset", "series", "transform", "param", "unit", "scenario", "level", "model", "probe",
               "metric", "mean", "std", "n", "missing"]  # fmt: skip


def curve_csv_rows(
    curve: Curve,
    missing: Mapping[tuple[int, int], str],
    gone: Mapping[str, Mapping[str, str]] | None = None,
    definers: Mapping[str, set[str]] | None = None,
) -> list[list[object]]:
    """The curve's numbers at full precision, a row per model and point (:data:`CSV_COLUMNS`; clean's level empty
    where the transform has no none value). A point its model's run tests without a value (``missing``: (model row,
    point column) → why, :func:`~repeval.report.curve_gaps.missing_reasons`) is a row too, its mean and std empty, its
    n 0 and its ``missing`` why, as the note below the figure says; ``missing`` is empty in every other row. So is
    each point of a model without a line (``gone``: model → probe → why, :func:`~repeval.report.curve_gaps.untrained`)
    its run tests (``definers``, None for one run: :func:`~repeval.report.curve_gaps.tests_point`), a row per probe
    whose every training failed."""
    from repeval.report.curve_gaps import tests_point

    rows: list[list[object]] = []
    for i, (model, probe) in enumerate(curve.probes.items()):
        for j in range(len(curve.scenarios)):
            why = missing.get((i, j), "")
            if curve.n[i, j] or why:  # (none: a level its run did not test, over several runs)
                rows.append(_row(curve, j, model, probe, curve.mean[i, j], curve.std[i, j], int(curve.n[i, j]), why))
    for model, probes in (gone or {}).items():
        for probe, why in probes.items():
            for j, scenario in enumerate(curve.scenarios):
                if tests_point(model, scenario, definers):
                    rows.append(_row(curve, j, model, probe, math.nan, math.nan, 0, why))
    return rows


def _row(curve: Curve, j: int, model: str, probe: str, mean: float, std: float, n: int, why: str) -> list[object]:
    """The CSV row (:data:`CSV_COLUMNS`) of ``model``'s ``probe`` at the curve's point ``j``."""
    s, scenario, level = curve.series, curve.scenarios[j], curve.levels[j]
    return [s.task, s.dataset, s.name, s.transform, s.param, s.unit, scenario,
            "" if level is None else repr(float(level)), model, probe, curve.metric,
            repr(float(mean)) if math.isfinite(mean) else "", repr(float(std)) if math.isfinite(std) else "", n,
            why]  # fmt: skip


def curves_csv(rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(rows)
    return buf.getvalue()


@dataclass
class CurveFiles:
    """Where the report writes each curve's figure (``<folder>/<stem>.png`` and ``.svg``) and their numbers
    (``<folder>/robustness_curves.csv``): the curves drawn, kept by :func:`~repeval.report.curves.curves_block` and
    written by :func:`write_curve_files` once the report is built (building it only reads)."""

    folder: Path
    rows: list[list[object]] = field(default_factory=list)
    #: each curve's figure and its file name without suffix
    figures: list[tuple[Figure, str]] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


#: the file of every curve's numbers, in :attr:`CurveFiles.folder`
CURVES_CSV = "robustness_curves.csv"


def clear_curve_files(folder: Path) -> None:
    """Remove the curve files an earlier report wrote into ``folder`` (a series since gone would keep its figure);
    nothing when ``folder`` is no folder (a report without curves writes none there)."""
    if folder.is_dir():
        for path in [*folder.glob("robustness_curve__*"), folder / CURVES_CSV]:
            path.unlink(missing_ok=True)


def write_curve_files(files: CurveFiles) -> None:
    """Replace an earlier report's curve files in :attr:`CurveFiles.folder` by the figures of the curves drawn and
    their numbers (:data:`CURVES_CSV`), none when there are none."""
    from repeval.report.plots import save_figure

    clear_curve_files(files.folder)
    for fig, stem in files.figures:
        files.written += save_figure(fig, files.folder / stem)
    if files.rows:
        path = files.folder / CURVES_CSV
        path.write_text(curves_csv(files.rows), encoding="utf-8")
        files.written.append(path)
