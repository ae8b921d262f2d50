"""The report's per-label drill-down of a task/dataset (:func:`per_label_block`).

A study's per-label values are many — 50 tags × 8 models × 5 probes × 7 scenarios are 14,000 (model, probe,
scenario, label) cells a metric, per run — and one row per cell made a table of tens of thousands of rows (8.7 MB of
a two-run report). The block reads in three steps, each smaller than the last was:

- bars of the best model's values on clean test, per metric (:func:`~repeval.report.plots.per_label_bars`);
- per metric a label × model table: each model with the probe the summary cards stand it with, on clean test, one
  row per label, the worst labels first (by their mean over the models), the best model of each label marked; and
  the best model's labels under every scenario. Their cells carry n and the interval in their tooltips;
- every value, folded: a table per model, rows probe × label, columns metric × scenario, each cell its mean ± std
  (every seed's value and interval are in the run's ``results.parquet``, rows with a ``label``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from functools import partial

import numpy as np
import pandas as pd

from repeval.report import plots
from repeval.report.blocks import chosen_probes, controls, figure, probe_choice, slug
from repeval.report.cells import (
    _higher,
    cell_stats,
    has_folds,
    max_fold_overlap,
    metric_notes,
    per_label_title,
    per_label_value,
    replicates_text,
)
from repeval.report.comparable import SplitDigests, run_sets, set_label
from repeval.report.precision import column_decimals
from repeval.report.render import ci_tip, fmt_number, replicates_tip, sort_direction
from repeval.report.results import CLEAN, label_order, natural_key, ordered_scenarios
from repeval.report.summary import Headline, headlines
from repeval.words import counted, named

#: why a label has no value of a metric (a cell '–', or a label left out of a table)
NO_VALUE = (
    "no value of the metric for the label: undefined on the test tracks (a ROC-AUC of a label every test track has, "
    "or none) or not scored (failed.parquet says why)"
)

#: the tooltip of a cell '–': short, the note above its table says why (:data:`NO_VALUE`, once a section)
NO_VALUE_TIP = "no value: the note above says why"

#: how many labels a table's "left out" caption names; the others are counted
NAMED_LEFT_OUT = 5

e = html.escape

#: a column of a label table: its header, its header's tooltip and the (model, probe, scenario) its cells are of
Column = tuple[str, str, tuple[str, str, str]]


def per_label_block(
    df: pd.DataFrame,
    task: str,
    dataset: str,
    validation: pd.DataFrame | None = None,
    level: str = "95%",
    masked: bool = False,
    test_sets: SplitDigests | None = None,
    found: list[tuple[list[str], Headline]] | None = None,
) -> str:
    """A task/dataset's per-label values (the module's three steps); ``test_sets``: the runs' digests, whose sets of
    runs on one test set get bars of their own best model; ``found``: the group's headlines
    (:attr:`~repeval.report.summary.Headlines.found`), when computed already."""
    per = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].notna()]
    if per.empty:
        return ""
    keys = ["model", "probe", "scenario", "label"]
    metrics = list(per["metric"].unique())
    # the orders and every cell's statistics once, not per row: a study's tables hold tens of thousands of cells
    stats = cell_stats(per, [*keys, "metric"]).rename(columns={"ci_low": "lo", "ci_high": "hi"})
    lookup = stats.to_dict("index")
    at = label_order(per)  # the task's vocabulary order (keys, instrument lists), not A→Z
    vocab = sorted(at, key=at.__getitem__)
    scenarios = ordered_scenarios(per["scenario"].unique())
    spread = f"mean ± std over {replicates_text(per)}" if int(stats["n"].max()) > 1 else "the mean"
    over = "; each tag over the test tracks that annotate it (unannotated: mask)" if masked else ""
    thresholds = "".join(f"; {n}" for n in metric_notes(per, metrics, masked=False))  # said above, per tag
    found = headlines(df, task, dataset, validation, test_sets).found if found is None else found
    chosen = {m: p for _, x in found for m, p in x.choice.per_model.items()}
    top = list(dict.fromkeys(m for _, x in found for m, _ in x.best if m in chosen))
    tid = slug("labels", task, dataset)
    about_id = f"{tid}-about"
    views: list[tuple[str, str]] = []  # (heading, table)
    gone: dict[str, None] = {}  # labels a table leaves out (no value in any column), in the task's order
    dashed = [False]  # whether a table has a cell '–'
    if found and CLEAN in scenarios:
        rule = found[0][1].choice.rule()
        by_model = [(m, f"{m}, probe {chosen[m]} ({rule})", (m, chosen[m], CLEAN)) for m in per["model"].unique()
                    if m in chosen]  # fmt: skip
        by_scenario = [
            (s if len(top) == 1 else f"{m} {s}", f"{m}, probe {chosen[m]}, {s}", (m, chosen[m], s))
            for m in top
            for s in scenarios
        ]
        who = ", ".join(f"{m} {chosen[m]}" for m in top)
        table = partial(_matrix, vocab=vocab, lookup=lookup, level=level, about=about_id, gone=gone, dashed=dashed)
        for metric in metrics:
            name = f"{per_label_value(metric)} ({metric})"
            views.append((f"{name} by model, clean test", table(slug("labels", "bymodel", task, dataset, metric),
                                                                metric, columns=by_model, mark_best=True)))  # fmt: skip
        for metric in metrics if len(scenarios) > 1 else []:
            name = f"{per_label_value(metric)} ({metric})"
            views.append((f"{name} by scenario, {who}", table(slug("labels", "byscenario", task, dataset, metric),
                                                              metric, columns=by_scenario, mark_best=False)))  # fmt: skip
    about = (
        f"each cell one label's own value, the average over labels it enters in brackets: {spread}{thresholds}{over}; "
        f"each row a label, the worst first (by its mean over the row, which a click on a header sorts again); "
        f"bold: the best model of the label (none where every model ties); hover a cell for its std, n and {level} interval, the "
        f"{ci_tip(level, max_fold_overlap(per) > 0, has_folds(per))}"
    ) + (f"; –: {NO_VALUE}" if dashed[0] or gone else "")
    agg = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
    sets = run_sets(agg, test_sets) if not agg.empty else [[]]
    figs = ""
    for runs in sets:
        part, where = (df[df["run_id"].isin(runs)], f" in {set_label(runs)}") if len(sets) > 1 else (df, "")
        for m in metrics:
            choice = probe_choice(part, task, dataset, m, validation)  # once, for the bars and their caption
            bars = partial(plots.per_label_bars, part, task, dataset, m, validation=validation, ci_level=level,
                           probes=chosen_probes(choice))  # fmt: skip
            rule = choice.rule() if choice is not None else ""
            figs += figure(bars, f"{per_label_title(m)}, best model on clean test{where}, its probe {rule}")
    note = f'<p class="rv-note" id="{about_id}">{e(about)}</p>' if views else ""
    note += f'<p class="rv-caption">{e(_left_out(list(gone)))}</p>' if gone else ""
    # the first metric's labels by model in view, the other tables folded (a 50-tag task's four were 200 rows)
    shown = "".join(
        f"<h4>{e(heading)}</h4>{table}" if k == 0 else f"<details><summary>{e(heading)}</summary>{table}</details>"
        for k, (heading, table) in enumerate(views)
    )
    every = _every_value(tid, task, dataset, per, stats, lookup, vocab, metrics, scenarios, spread)
    return f'<h3>Per-label drill-down</h3><div class="rv-figs">{figs}</div>{note}{shown}{every}'


def _left_out(gone: Sequence[str]) -> str:
    """The caption of the labels the tables of a section leave out: the first :data:`NAMED_LEFT_OUT` named, the others
    counted — a 50-tag task's list, above each of its tables, was most of the section."""
    more = len(gone) - NAMED_LEFT_OUT
    names = named("label", gone[:NAMED_LEFT_OUT], "labels") + (f" and {counted(more, 'other')}" if more > 0 else "")
    they = "it has" if len(gone) == 1 else "they have"
    return f"{names} left out of the tables below where {they} no value in any column: the note above says why"


def _matrix(tid: str, metric: str, *, vocab: Sequence[str], columns: Sequence[Column], lookup: dict, level: str,
            about: str, mark_best: bool, gone: dict[str, None], dashed: list[bool]) -> str:  # fmt: skip
    """A label × ``columns`` table of ``metric``: a row per label of ``vocab`` with a value, the worst first by its
    mean over the columns (first after the label); ``about``: the id of the note that says what they are;
    ``mark_best``: each row's best value bold (none when every value ties). The labels it leaves out (no value) are added to ``gone``, and
    ``dashed[0]`` set when a cell has none: the section says them once."""
    higher = _higher(metric)
    recs = [[lookup.get((*key, label, metric)) for _, _, key in columns] for label in vocab]
    means = np.array([[r["mean"] if r is not None else np.nan for r in row] for row in recs], dtype=float)
    has = np.isfinite(means)
    with np.errstate(invalid="ignore"):
        avg = np.where(has.any(axis=1), np.nansum(np.where(has, means, 0), axis=1) / has.sum(axis=1), np.nan)
    sign = 1.0 if higher else -1.0
    shown = sorted((i for i in range(len(vocab)) if has[i].any()), key=lambda i: sign * avg[i])  # stable: vocab ties
    gone.update((vocab[i], None) for i in range(len(vocab)) if not has[i].any())
    direction = sort_direction(metric)
    head = '<th data-col="0" data-kind="text">label</th>' + (
        f'<th data-col="1" data-kind="num"{direction} title="the mean of the row\'s values">mean</th>'
    )
    head += "".join(
        f'<th data-col="{k + 2}" data-kind="num"{direction} title="{e(tip)}">{e(name)}</th>'
        for k, (name, tip, _) in enumerate(columns)
    )
    body = []
    d = column_decimals(means)  # one metric: every cell at one precision, its ± std and interval too
    for i in shown:
        row = means[i]
        best = (row == (np.nanmax(row) if higher else np.nanmin(row))) if mark_best and len(columns) > 1 else None
        if best is not None and best[np.isfinite(row)].all():  # every model ties (each 1.0): none is the best
            best = None
        cells = f'<td>{e(vocab[i])}</td><td class="num" data-value="{avg[i]:.6g}">{fmt_number(avg[i], decimals=d)}</td>'
        for j, rec in enumerate(recs[i]):
            if rec is None or not math.isfinite(rec["mean"]):
                cells += f'<td class="num" data-value="" title="{NO_VALUE_TIP}">–</td>'
                dashed[0] = True
                continue
            tip = fmt_number(rec["mean"], decimals=d) + (
                f" ± {fmt_number(rec['std'], decimals=d)}" if rec["n"] > 1 else ""
            )
            tip += "; " + replicates_tip(int(rec["n"]), int(rec["n_seeds"]), int(rec["n_folds"]))
            if math.isfinite(rec["lo"]) and math.isfinite(rec["hi"]):
                tip += f"; {level} CI [{fmt_number(rec['lo'], decimals=d)}, {fmt_number(rec['hi'], decimals=d)}]"
            cls = "num best" if best is not None and best[j] else "num"
            cells += f'<td class="{cls}" data-value="{rec["mean"]:.6g}" title="{e(tip)}">{fmt_number(rec["mean"], decimals=d)}</td>'
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="rv-scroll"><table class="rv-table sortable rv-labels" id="{tid}" aria-label="per-label values" '
        f'aria-describedby="{about}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _every_value(tid: str, task: str, dataset: str, per: pd.DataFrame, stats: pd.DataFrame, lookup: dict, vocab: Sequence[str],
                 metrics: Sequence[str], scenarios: Sequence[str], spread: str) -> str:  # fmt: skip
    """Every per-label value, folded: a table per model, rows probe × label (the probes in order, the labels in the
    task's), columns metric × scenario, each cell its mean ± std — ``(n=…)`` after one over fewer replicates than the
    table's others — and nothing else, what they share said once above them."""
    # (model, probe, label) with a value somewhere: not one undefined everywhere (a tag no test track has)
    have = {k[:2] + k[3:4] for k, rec in lookup.items() if math.isfinite(rec["mean"])}
    n_max = stats["n"].groupby(level="model", sort=False).max().to_dict()
    probes = sorted(per["probe"].unique(), key=natural_key)
    columns = [(m, s) for m in metrics for s in scenarios]
    groups = "".join(f'<th class="rv-group" colspan="{len(scenarios)}">{e(per_label_value(m))} ({e(m)})</th>'
                     for m in metrics)  # fmt: skip
    head = (
        f'<tr><th class="rv-group" colspan="2"></th>{groups}</tr><tr><th data-col="0" data-kind="text">probe</th>'
        '<th data-col="1" data-kind="text">label</th>'
        + "".join(
            f'<th data-col="{k + 2}" data-kind="num"{sort_direction(m)} title="{e(m)}">{e(s)}</th>'
            for k, (m, s) in enumerate(columns)
        )
        + "</tr>"
    )
    tables, dashes = [], False
    recs: dict[tuple[str, str], list[dict]] = {}
    for (_, _, scenario, _, metric), rec in lookup.items():
        recs.setdefault((metric, scenario), []).append(rec)
    digits = {  # a column's values at one precision, as in the result tables (every model's table alike)
        c: column_decimals([r["mean"] for r in rs]) for c, rs in recs.items()
    }
    for model in per["model"].unique():
        rows = [(p, label) for p in probes for label in vocab if (model, p, label) in have]
        if not rows:
            continue
        body = []
        for probe, label in rows:
            cells = [f"<td>{e(probe)}</td><td>{e(label)}</td>"]
            for metric, scenario in columns:
                rec = lookup.get((model, probe, scenario, label, metric))
                if rec is None or not math.isfinite(rec["mean"]):
                    cells.append(f'<td title="{NO_VALUE_TIP}">–</td>')
                    dashes = True
                    continue
                n, d = int(rec["n"]), digits[metric, scenario]
                text = fmt_number(rec["mean"], decimals=d) + (
                    f" ± {fmt_number(rec['std'], decimals=d)}" if n > 1 else ""
                )
                cells.append(f"<td>{text}{f' (n={n})' if n < n_max[model] else ''}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        mid = slug("labels", "all", task, dataset, model)
        tables.append(
            f'<details><summary>{e(model)} <span class="rv-caption">{len(rows)} rows</span></summary>'
            f"{controls(mid, [('probe', 0, [p for p in probes if any(r[0] == p for r in rows)])])}"
            f'<div class="rv-scroll"><table class="rv-table sortable rv-all" id="{mid}" aria-label="per-label values of '
            f'{e(model)}" aria-describedby="{tid}-all-about"><thead>{head}</thead><tbody>{"".join(body)}</tbody>'
            "</table></div></details>"
        )
    n_values = int(stats["mean"].notna().sum())
    about = (
        f"each cell one label's own value, the average over labels it enters in brackets: {spread}, one over fewer "
        "replicates than the table's others marked (n=…); the intervals of each model's chosen probe: the tables above; every seed's "
        "value with its bootstrap interval: results.parquet in the run directory (the rows with a label)"
    ) + (f"; –: {NO_VALUE}" if dashes else "")
    return (
        f"<details><summary>every per-label value ({n_values:,} over {counted(len(tables), 'model')}, a table each: rows probe × "
        f'label, columns metric × scenario)</summary><p class="rv-note" id="{tid}-all-about">{e(about)}</p>'
        f"{''.join(tables)}</details>"
    )
