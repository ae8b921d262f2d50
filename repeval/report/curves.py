"""Robustness curves: a task/dataset's headline metric against the severity of one deformation (:func:`find_series`,
:func:`curve_figure`).

A robustness study tests one deformation at rising severity — white noise at 30, 20, 10 and 5 dB SNR, MP3 at 320 to
32 kbps, a gain of −6 to −24 dB —, each level a scenario of its own. The heat map shows each scenario as a column of
its own; the curve shows the metric against the level. A *series* is found in the runs' ``config.yaml``: two or more
scenarios of one (task, dataset) whose transform lists are the same — the same transforms in the same order, the same
parameters — but for one numeric parameter of one step (``p``, the probability of a step, is never the level), or a
``min_``/``max_`` pair of one (``min_snr_db``/``max_snr_db``), whose value is then the level (their midpoint where
they differ). Scenarios that form no series get no curve; a report without series shows none.

Severity rises left to right (:mod:`~repeval.report.curve_levels` knows which way it goes with each parameter of
audiomentations' transforms that has a clear one): for a parameter known to get milder as it grows (SNR, bitrate) the
axis runs from high to low, and says so; a bitrate's on a log scale. A line runs through its points left to right
(clean's among them where it has a level). The clean test set is drawn where the transform has a natural "none" value
— a gain of 0 dB, a pitch shift of 0 semitones, a time stretch at rate 1 — as the curve's point there; where it has
none (an SNR, a bitrate: clean audio is no finite value of them) as a dashed line of each model's colour, never at a
made-up x — and so where a scenario is at that level (a gain of 0 dB), rather than its point on top of clean's. Two
scenarios at one level (the same deformation under two names) keep the series: the curve draws the first, and a note
names the other. A level a model's run tests without a value (a failed test cell, or not run) breaks its line there,
and a note and the CSV's ``missing`` column say which and why; a model whose every probe training failed, without a
line, is named too (:mod:`~repeval.report.curve_gaps`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from html import escape as _e
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from repeval.report.cells import _higher
from repeval.report.comparable import _effective, apart_runs, apart_scenarios, scenario_definitions
from repeval.report.curve_files import CURVES_CSV, CurveFiles, curve_csv_rows
from repeval.report.curve_gaps import (
    expected_replicates,
    fewer_note,
    fewer_reasons,
    fewer_seeds,
    missing_note,
    missing_reasons,
    tested,
    untrained,
    untrained_note,
)
from repeval.report.curve_levels import LOG_PARAMS, severity
from repeval.report.plots import _TEXT_IN_PER_CHAR, FIG_DPI, line_styles
from repeval.report.precision import column_decimals
from repeval.report.render import fmt_number
from repeval.report.results import CLEAN, Run

log = logging.getLogger(__name__)

#: the words on an axis that runs from high to low values
_FALLING = "falls left to right"


@dataclass(frozen=True)
class Series:
    """Scenarios of one (task, dataset) that differ in one parameter of one step: ``points`` (scenario, level) in
    order of rising severity."""

    task: str
    dataset: str
    transform: str
    #: the step's position in the scenarios' transform lists (0: the first)
    step: int
    #: the parameter's name, ``min_snr_db = max_snr_db`` for a pair (their midpoint where they differ, said so)
    param: str
    unit: str
    points: list[tuple[str, float]]
    #: the level of no deformation, where clean audio is drawn (None: a dashed line instead)
    none: float | None
    #: the axis runs from high to low values (severity rises as the level falls)
    falling: bool
    #: whether severity is known to rise left to right (a parameter of
    #: :data:`~repeval.report.curve_levels.KNOWN_PARAMS`, levels on one side)
    ordered: bool
    #: how severity goes with the level (:data:`~repeval.report.curve_levels.KNOWN_PARAMS`; empty: not known)
    way: str = ""
    #: the axis is logarithmic (a parameter of :data:`~repeval.report.curve_levels.LOG_PARAMS`, every level above 0)
    log: bool = False
    #: the settings that set it apart from another series of the same parameter (``min_f_decay -3.01, …``: white and
    #: pink noise, each at several SNRs), empty when there is none
    detail: str = ""
    #: scenarios at the level of an earlier one of the series — the same deformation under another name — each with
    #: that one, which the curve draws at that level (:func:`repeats_note`)
    repeats: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """``AddGaussianSNR min_snr_db = max_snr_db``, with the step's position when not the first and the
        :attr:`detail` that sets it apart."""
        at = f" (step {self.step + 1})" if self.step else ""
        return f"{self.transform}{at} {self.param}" + (f" [{self.detail}]" if self.detail else "")

    @property
    def axis(self) -> str:
        """The x axis's label: the parameter, its unit and which way severity goes."""
        scale = ", log scale" if self.log else ""
        unit = f" ({self.unit}{scale})" if self.unit else f" ({scale[2:]})" if scale else ""
        if not self.ordered:
            away = f": more severe away from {self.none:g}" if self.way == "away" and self.none is not None else ""
            return f"{self.transform} {self.param}{unit}{away or ': no one direction of severity'}"
        way = f"{_FALLING}, more severe →" if self.falling else "more severe →"
        return f"{self.transform} {self.param}{unit}: {way}"

    @property
    def stem(self) -> str:
        """The figure's file name without suffix, safe on any file system."""
        raw = f"robustness_curve__{self.task}__{self.dataset}__{self.transform}-{self.step}-{self.param}"
        raw += f"__{self.detail}" if self.detail else ""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw.replace(" = ", "-"))


def _numeric(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _base(name: str) -> str:
    return name[4:] if name.startswith(("min_", "max_")) else name


def _candidates(steps: list[tuple[str, dict[str, Any]]]) -> Iterable[tuple[tuple[int, str], tuple[str, ...]]]:
    """Each parameter that may be a series' level: ``(step, base name)`` and the names it stands for (a ``min_``/
    ``max_`` pair together)."""
    for i, (_, params) in enumerate(steps):
        seen: set[str] = set()
        for k, v in params.items():
            if k == "p" or not _numeric(v) or k in seen:
                continue
            base = _base(k)
            pair = (f"min_{base}", f"max_{base}")
            names = pair if base != k and all(n in params and _numeric(params[n]) for n in pair) else (k,)
            seen.update(names)
            yield (i, " = ".join(names) if len(names) > 1 else k), names


def _level(params: dict[str, Any], names: tuple[str, ...]) -> float:
    return float(sum(float(params[n]) for n in names) / len(names))


def find_series(definitions: Mapping[str, Sequence[tuple[str, str]]], task: str, dataset: str) -> list[Series]:
    """The series among one (task, dataset)'s scenarios, ``definitions`` (scenario → its steps as
    :func:`~repeval.report.comparable.scenario_definitions` gives them), in the order of their first scenario."""
    # each step's parameters left at their default written out: no `p` is `p: 0.5`, `min_bitrate: 32` alone is a range
    # up to the default `max_bitrate`, not a level
    parsed = {s: [(t, json.loads(p)) for t, p in _effective(tuple(d))] for s, d in definitions.items() if s != CLEAN}
    groups: dict[tuple[Any, ...], list[tuple[str, float, bool]]] = {}
    for scenario, steps in parsed.items():
        for (i, label), names in _candidates(steps):
            rest = [(t, {k: v for k, v in p.items() if j != i or k not in names}) for j, (t, p) in enumerate(steps)]
            # a pair moves together: its width (max − min) is the same at every level, a range beside fixed levels not
            width = float(steps[i][1][names[-1]]) - float(steps[i][1][names[0]]) if len(names) > 1 else 0.0
            key = (i, label, json.dumps(rest, sort_keys=True), round(width, 9))
            spread = width != 0
            groups.setdefault(key, []).append((scenario, _level(steps[i][1], names), spread))
    out, settings = [], []
    for (i, label, rest, width), found in groups.items():
        first: dict[float, str] = {}  # each level's first scenario: the one drawn there
        members, repeats = [], []
        for m in found:
            if m[1] in first:
                repeats.append((m[0], first[m[1]]))
            else:
                first[m[1]] = m[0]
                members.append(m)
        levels = [x for _, x, _ in members]
        if len(members) < 2:
            continue  # one level: no curve to draw
        transform = json.loads(rest)[i][0]
        base = _base(label.split(" = ")[0])
        unit, way, none = severity(transform, base, label)
        below = none is not None and all(x <= none for x in levels)
        above = none is not None and all(x >= none for x in levels)
        falling = way == "falls" or (way == "away" and below and not above)
        ordered = way in ("falls", "rises") or (way == "away" and (below or above))
        points = sorted(((s, x) for s, x, _ in members), key=lambda p: -p[1] if falling else p[1])
        param = label + (" (midpoint)" if any(spread for *_, spread in members) else "")
        log = base in LOG_PARAMS and min(levels) > 0
        out.append(
            Series(
                task,
                dataset,
                transform,
                i,
                param,
                unit,
                points,
                none,
                falling,
                ordered,
                way,
                log,
                repeats=tuple(repeats),
            )
        )
        steps = json.loads(rest)
        at = {k if j == i else f"{t} {k}": v for j, (t, params) in enumerate(steps) for k, v in params.items()}
        settings.append({**at, **({"width": width} if width else {})})
    return _set_apart(out, settings)


def repeats_note(series: Series) -> str:
    """What to say of the scenarios of ``series`` at an earlier one's level (:attr:`Series.repeats`): which one the
    curve draws there; empty when there are none."""
    level = dict(series.points)
    unit = f" {series.unit}" if series.unit else ""
    said = [
        f"{r} is at the same level as {k} ({level[k]:g}{unit}), the same deformation: the curve draws {k} there"
        for r, k in series.repeats
    ]
    if not said:
        return ""
    left = " and ".join(r for r, _ in series.repeats)
    return f"{'; '.join(said)}; the results of {left} are in the heat map"


def _set_apart(found: list[Series], settings: list[dict[str, Any]]) -> list[Series]:
    """``found`` with a :attr:`Series.detail` for each of two or more series of one name (and so one file name): the
    settings, of ``settings`` (each series' other parameters), in which they differ, or else their first scenario."""
    by_name: dict[str, list[int]] = {}
    for k, s in enumerate(found):
        by_name.setdefault(s.name, []).append(k)
    out = list(found)
    for ks in (ks for ks in by_name.values() if len(ks) > 1):
        keys = dict.fromkeys(key for k in ks for key in settings[k])
        differ = [key for key in keys if len({json.dumps(settings[k].get(key)) for k in ks}) > 1]
        for k in ks:
            said = ", ".join(f"{key} {_said(settings[k][key])}" for key in differ if key in settings[k])
            out[k] = replace(found[k], detail=said or f"from {found[k].points[0][0]}")
    return out


def _said(value: object) -> str:
    return f"{value:g}" if _numeric(value) else str(value)


def group_definitions(
    runs: Sequence[Run], df: pd.DataFrame, task: str, dataset: str
) -> tuple[dict[str, tuple[Any, ...]], dict[str, set[str]]]:
    """Each scenario of ``df``'s (task, dataset) rows (the runs' combined results, a scenario the runs define
    differently under a column per definition, :func:`~repeval.report.comparable.keep_apart`) with its steps as its
    runs' ``config.yaml`` defines it, and the runs that define it so; a scenario no run's configuration defines is
    left out (a run without the file, or an old one, cannot say what its scenario was)."""
    per_run = {run.run_id: scenario_definitions(run.config) for run in runs}
    apart, runs_of = apart_scenarios(df), apart_runs(df)
    rows = df[(df["task"] == task) & (df["dataset"] == dataset)]
    steps: dict[str, tuple[Any, ...]] = {}
    definers: dict[str, set[str]] = {}
    scored = rows.assign(run_id=rows["run_id"].astype(str)).groupby("scenario", sort=False)["run_id"].unique()
    for scenario in dict.fromkeys(rows["scenario"].astype(str)):
        sid = apart[scenario][0] if scenario in apart else scenario
        # the runs whose rows are in this column: not those of a column of their own definition of it
        for run_id in runs_of.get(scenario, scored[scenario]):
            found = per_run.get(run_id, {}).get((task, dataset, sid))
            if found is not None:
                steps.setdefault(scenario, found)
                definers.setdefault(scenario, set()).add(run_id)
    return steps, definers


@dataclass(frozen=True)
class Curve:
    """A series' numbers: per model (with its probe) and point — clean first, then the series' scenarios — the mean,
    std and count of the replicates (seeds × folds) of the metric."""

    series: Series
    metric: str
    #: model → its probe, in the legend's order
    probes: dict[str, str]
    #: the points' scenarios, clean first when the results have it
    scenarios: list[str]
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray
    #: the replicates are seeds × folds (a k-fold dataset's), not seeds alone
    folds: bool = False
    #: per model and point, whether the model's run tests it (None: every point; over several runs a model's own run
    #: defines only some levels): a point it tests without a value breaks its line
    #: (:func:`~repeval.report.curve_gaps.missing_reasons`)
    tested: np.ndarray | None = None
    #: per model, the replicates (seeds × folds) its run has (:func:`~repeval.report.curve_gaps.expected_replicates`;
    #: None: not known): a point over fewer is drawn hollow (:func:`~repeval.report.curve_gaps.fewer_seeds`)
    expected: np.ndarray | None = None

    @property
    def over(self) -> str:
        """What the error bars are over: ``seeds`` or ``seeds × folds``."""
        return "seeds × folds" if self.folds else "seeds"

    @property
    def levels(self) -> list[float | None]:
        """Each point's level: clean's is the none value (None without one)."""
        by = dict(self.series.points)
        return [self.series.none if s == CLEAN else by[s] for s in self.scenarios]


def curve_numbers(rows: pd.DataFrame, series: Series, metric: str, probes: Mapping[str, str]) -> Curve:
    """The metric of each model's chosen probe (``probes``) on clean and on each scenario of ``series``: ``rows``, one
    group's aggregate results."""
    rows = rows[(rows["metric"] == metric) & rows["label"].isna()]
    scenarios = ([CLEAN] if (rows["scenario"] == CLEAN).any() else []) + [s for s, _ in series.points]
    rows = rows[rows["scenario"].isin(scenarios)]
    rows = rows[[probes.get(m) == p for m, p in zip(rows["model"], rows["probe"], strict=True)]]
    fold = rows["fold"].fillna(-1) if "fold" in rows.columns else -1
    replicates = rows.assign(_fold=fold).groupby(["model", "scenario", "seed", "_fold"], sort=False)["value"].mean()
    stats = replicates.groupby(level=["model", "scenario"], sort=False).agg(["mean", "std", "count"])
    shape = (len(probes), len(scenarios))
    out = {k: np.full(shape, np.nan) for k in ("mean", "std", "count")}
    for i, model in enumerate(probes):
        for j, scenario in enumerate(scenarios):
            if (model, scenario) in stats.index:
                for k in out:
                    out[k][i, j] = stats.loc[(model, scenario), k]
    drawn = np.isfinite(out["mean"]).any(axis=1)  # a model of a run that does not define the series: no line
    kept = {m: p for m, p, d in zip(probes, probes.values(), drawn, strict=True) if d}
    mean, std, n = (out[k][drawn] for k in ("mean", "std", "count"))
    folds = "fold" in rows.columns and bool(rows["fold"].notna().any())
    return Curve(series, metric, kept, scenarios, mean, std, np.nan_to_num(n), folds)


def curve_figure(curve: Curve, run_prefixed: bool = False, run_ids: Iterable[str] = ()) -> Figure:
    """The metric against the series' level, a line per model with its chosen probe (mean ± std over the replicates
    as error bars where there are several), each model in the colour and style of the report's other line plots
    (:func:`~repeval.report.plots.line_styles`)."""
    s, models = curve.series, list(curve.probes)
    styles = line_styles(models, run_prefixed, run_ids)
    names = [f"{m} · {p}" for m, p in curve.probes.items()]
    legend_in = _TEXT_IN_PER_CHAR * 0.8 * max(map(len, names)) + 0.6
    fig = Figure(figsize=(6.4 + legend_in, max(3.8, 1.2 + 0.2 * len(models))), dpi=FIG_DPI, layout="constrained")
    ax = fig.add_subplot()
    levels = curve.levels
    clean = curve.scenarios.index(CLEAN) if CLEAN in curve.scenarios else None
    if clean is not None and levels[clean] is not None and levels.count(levels[clean]) > 1:
        levels[clean] = None  # a scenario at the level of no deformation (a gain of 0 dB): clean dashed, not under it
    # clean (none without a none value) among the levels where its x falls: a line through the points left to right
    placed = sorted(
        ((j, float(x)) for j, x in enumerate(levels) if x is not None), key=lambda p: -p[1] if s.falling else p[1]
    )
    drawn, xs = [j for j, _ in placed], [x for _, x in placed]
    spread = bool((curve.n > 1).any())
    tested = curve.tested  # None: one run's models, each testing every point (several runs: each its own run's)
    fewer = fewer_seeds(curve)
    for i, (model, name) in enumerate(zip(models, names, strict=True)):
        style = styles[model]
        # a run's model at the levels its run tests (several runs); one it tests without a value (failed, not run)
        # is a gap in its line (NaN), not bridged
        has = np.isfinite(curve.mean[i, drawn]) | (tested[i, drawn] if tested is not None else not run_prefixed)
        err = np.where(curve.n[i, drawn] > 1, np.nan_to_num(curve.std[i, drawn]), 0.0)[has]
        ax.errorbar(np.array(xs, dtype=float)[has], curve.mean[i, drawn][has], yerr=err, capsize=2, markersize=4, label=name,
                    **style)  # type: ignore[arg-type]  # fmt: skip
        few = fewer[i, drawn] & np.isfinite(curve.mean[i, drawn])
        if few.any():  # over fewer seeds than its run has: hollow, so a mean of one seed does not pass for all of them
            ax.plot(np.array(xs, dtype=float)[few], curve.mean[i, drawn][few], linestyle="none", marker=style["marker"],
                    markersize=6, markerfacecolor="white", markeredgecolor=style["color"], zorder=3)  # fmt: skip
        if clean is not None and levels[clean] is None and math.isfinite(curve.mean[i, clean]):
            ax.axhline(curve.mean[i, clean], color=str(style["color"]), linestyle=(0, (4, 3)), lw=0.9, alpha=0.8)
    if s.log:
        ax.set_xscale("log")
        ax.minorticks_off()  # the levels' ticks alone, as on a linear axis
    ax.set_xticks(xs, [f"{x:g}" + (" (clean)" if j == clean else "") for j, x in placed])
    if s.falling:
        ax.invert_xaxis()
    ax.set_xlabel(s.axis)
    lower = "" if _higher(curve.metric) else ", lower is better"
    ax.set_ylabel(f"{curve.metric}{lower} (mean ± std over {curve.over})" if spread else f"{curve.metric}{lower}")
    clean_note = "; dashed: clean" if clean is not None and levels[clean] is None else ""
    detail = f" [{s.detail}]" if s.detail else ""
    ax.set_title(f"{s.task} / {s.dataset}: {curve.metric} under {s.transform}{detail}{clean_note}", fontsize=10)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if fewer[:, drawn].any():
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="white", markeredgecolor="0.3"))
        labels.append(f"hollow: over fewer {curve.over} than\nits run has (n=… of … in the table)")
    ax.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def curve_table_html(curve: Curve, caption: str) -> str:
    """The curve's numbers as a table: a row per model · probe, a column per point (clean first), ``mean ± std``
    (``(n=… of …)`` where a point has fewer replicates than its run has, :attr:`Curve.expected`; ``(n=…)`` where it
    has fewer than the row's most)."""
    digits = column_decimals(curve.mean[np.isfinite(curve.mean)])
    unit = f" {curve.series.unit}" if curve.series.unit else ""
    heads = [s if x is None else f"{s} ({x:g}{unit})" for s, x in zip(curve.scenarios, curve.levels, strict=True)]
    th = "".join(f'<th scope="col">{_e(h)}</th>' for h in ["model · probe", *heads])
    body = []
    fewer = fewer_seeds(curve)
    for i, (model, probe) in enumerate(curve.probes.items()):
        cells = []
        most = int(curve.n[i].max()) if curve.n.size else 0
        for j in range(len(curve.scenarios)):
            mean, n = curve.mean[i, j], int(curve.n[i, j])
            text = fmt_number(mean, decimals=digits)
            if n > 1 and math.isfinite(curve.std[i, j]):
                text += f" ±\u00a0{fmt_number(curve.std[i, j], decimals=digits)}"
            if fewer[i, j] and curve.expected is not None:
                text += f" (n={n} of {int(curve.expected[i])})"
            elif 0 < n < most:
                text += f" (n={n})"
            value = f"{mean:.7g}" if math.isfinite(mean) else ""
            cells.append(f'<td class="num" data-value="{value}">{_e(text)}</td>')
        body.append(f"<tr><td>{_e(model)} · {_e(probe)}</td>{''.join(cells)}</tr>")
    return (
        f'<table class="rv-table rv-curve"><caption>{_e(caption)}</caption><thead><tr>{th}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def curves_block(
    runs: Sequence[Run],
    df: pd.DataFrame,
    task: str,
    dataset: str,
    validation: pd.DataFrame | None = None,
    files: CurveFiles | None = None,
) -> str:
    """The report's robustness curves of a task/dataset (``df``: the runs' combined results, models named
    ``<run>/<model>`` over several runs): per series a figure and its numbers, each model with the probe the heat map
    stands it with, on the group's first metric; empty without a series. ``files``: kept there to be saved
    (:func:`~repeval.report.curve_files.write_curve_files`)."""
    from repeval.report.blocks import chosen_probes, probe_choice

    steps, definers = group_definitions(runs, df, task, dataset)
    found = find_series(steps, task, dataset)
    agg = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
    if not found or agg.empty:
        return ""
    metric = str(agg["metric"].iloc[0])
    choice = probe_choice(df, task, dataset, metric, validation)
    probes = chosen_probes(choice)
    if not probes or choice is None:
        return ""
    multi = len(runs) > 1
    sids = {column: sid for column, (sid, _) in apart_scenarios(df).items()}  # a column per definition: its runs' sid
    parts, ordered = [], True
    for s in found:
        # each run's values at the levels it defines so (a run whose config.yaml does not say what its D1 was: none)
        curve = curve_numbers(agg[defined_rows(agg, s, definers)], s, metric, probes)
        if not curve.probes:
            continue
        caption = f"{metric} against {s.name} ({', '.join(p for p, _ in s.points)})"
        if multi:  # (before it is drawn: a level a model's run tests without a value breaks its line)
            curve = replace(curve, tested=tested(curve, definers))
        curve = replace(curve, expected=expected_replicates(curve, runs, agg))
        missing = missing_reasons(curve, runs, sids)
        fewer = fewer_reasons(curve, runs, sids)
        gone = untrained(curve, runs, probes, definers if multi else None)
        table = curve_table_html(curve, f"{caption}: mean ± std over {curve.over}")
        if files is not None:
            files.rows += curve_csv_rows(curve, missing, gone, definers if multi else None)
        img = _figure_html(curve, caption, multi, [r.run_id for r in runs], files)
        ordered &= s.ordered
        repeats = f'<p class="rv-note">{_e(said)}</p>' if (said := repeats_note(s)) else ""
        repeats += f'<p class="rv-note">{_e(said)}</p>' if (said := missing_note(curve, missing)) else ""
        repeats += f'<p class="rv-note">{_e(said)}</p>' if (said := fewer_note(curve, fewer)) else ""
        repeats += f'<p class="rv-note">{_e(said)}</p>' if (said := untrained_note(gone)) else ""
        parts.append(f'<div class="rv-figs">{img}<div class="rv-scroll">{table}</div></div>{repeats}')
    if not parts:
        return ""
    clean = (
        "clean audio drawn at the transform's level of no deformation, or as a dashed line of the model's colour "
        "where it has none (an SNR, a bitrate) or a scenario is at it"
    )
    # gains either side of 0 dB, a parameter not known (a cutoff): no way of the axis is the more severe one
    way = "severity rises left to right" if ordered else "each axis says which way severity goes, where it is known"
    note = (
        f"{metric} of each model's probe {choice.rule()}, against the level of one deformation: scenarios that differ "
        f"in that one parameter alone; {way}; {clean}; the numbers are in each figure's table"
        + (f" and in plots/{CURVES_CSV}" if files is not None else "")
    )
    return f'<h3>Robustness curves</h3><p class="rv-note">{_e(note)}</p>{"".join(parts)}'


def _figure_html(curve: Curve, caption: str, multi: bool, run_ids: list[str], files: CurveFiles | None) -> str:
    """The curve's figure inline (kept in ``files`` to be saved); one that fails to draw is a note, as the report's
    other figures are (:func:`~repeval.report.blocks.figure`), never a failed report."""
    from repeval.report.plots import figure_data_uri

    try:
        fig = curve_figure(curve, multi, run_ids)
    except ValueError as exc:
        log.info("robustness curve skipped (%s): %s", caption, exc)
        return f'<p class="rv-note">{_e(caption)}: not available ({_e(str(exc))})</p>'
    if files is not None:
        files.figures.append((fig, curve.series.stem))
    img = f'<img src="{figure_data_uri(fig, "png")}" alt="{_e(caption)}">'
    return f'<figure class="rv-curve">{img}<figcaption>{_e(caption)}</figcaption></figure>'


def defined_rows(rows: pd.DataFrame, series: Series, definers: Mapping[str, set[str]]) -> pd.Series:
    """The rows of ``rows`` a curve of ``series`` draws: each run's on the series' scenarios it defines as the series
    has them, and on clean audio of the runs that define one of them."""
    runs = rows["run_id"].astype(str)
    keep = pd.Series(False, index=rows.index)
    for scenario, _ in series.points:
        keep |= (rows["scenario"] == scenario) & runs.isin(definers.get(scenario, set()))
    some = set().union(*(definers.get(p, set()) for p, _ in series.points))
    return keep | ((rows["scenario"] == CLEAN) & runs.isin(some))
