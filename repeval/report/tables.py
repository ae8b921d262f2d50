"""Result tables: presets that shape a results frame into a :class:`Table`, and the CLI entry.

Presets (one task and dataset per table, unless said otherwise; ``table_command`` makes one table per pair):

- ``all_deform_all_models``: rows model × probe, columns metric × scenario (thesis Tables 4–9).
- ``model_comparison``: rows model with its best probe, columns the metrics on clean audio.
  The probe is chosen per model by its mean validation criterion (the protocol: choose on validation, test once)
  where the run directory records it and all of the model's probes share the criterion; otherwise by the first
  metric on the clean *test* set. The caption says which rule was used, and why the fallback.
- ``robustness``: rows model × probe, columns per metric the clean value (every clean test track) and the change
  (deformed minus clean, paired by seed and fold, both on the test tracks scored clean and deformed:
  :mod:`repeval.report.deltas`) for every deformation scenario; the caption names tracks left out of a change.
- ``tasks``: every task of one dataset side by side (rows model × probe × task, columns metric × scenario) —
  e.g. a task trained on clean audio against the same task with ``augment``, or ``mean`` against ``prediction``
  aggregation; ``table_command`` makes one table per dataset that two or more tasks share.

Every cell is the mean over seeds (and folds of a k-fold dataset) with the standard deviation
when there are several; the best value of each column is flagged (direction from ``higher_is_better``; none where
every value ties). Results of several runs can be combined: rows then start with the run id. A multilabel table's caption says how its metrics
were computed (:func:`metric_notes`): at which decision threshold F1, precision and recall predict a tag, and, where
the data set annotates some tags per track (``unannotated: mask``), that they are over the annotated pairs only.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from repeval.metrics import canonical_metric_name
from repeval.registry import closest, unknown_name_message
from repeval.report.cells import (
    FORMATS,
    Table,
    _higher,
    best_mask,
    canonical_format,
    cell_stats,
    fewer_replicates,
    max_fold_overlap,
    metric_notes,
    overlap_note,
    replicates_text,
)
from repeval.report.comparable import (
    SplitDigests,
    apart_note,
    apart_scenarios,
    differ_note,
    lacking_metric_note,
    lacking_note,
    run_sets,
    set_label,
    split_digests,
)
from repeval.report.deltas import left_out_note, paired_deltas
from repeval.report.results import (
    CLEAN,
    Run,
    ci_level,
    combine_results,
    groups,
    load_runs,
    masked_pairs,
    natural_key,
    ordered_scenarios,
)
from repeval.report.selection import choose_probes, combine_validation
from repeval.report.withheld import intervals_off, no_interval_why, withheld_intervals

#: re-exported: the table model moved to :mod:`repeval.report.cells`; callers import these names from here too
__all__ = [
    "DATASET_PRESETS",
    "FORMATS",
    "PRESETS",
    "Table",
    "best_mask",
    "canonical_format",
    "cell_stats",
    "fewer_replicates",
    "make_table",
    "metric_notes",
    "multi_task_datasets",
    "replicates_text",
    "table_command",
]

log = logging.getLogger(__name__)


def _select(results: pd.DataFrame, task: str | None, dataset: str | None) -> tuple[pd.DataFrame, str, str]:
    df = results[results["label"].isna()]
    pairs = groups(df)
    if task is not None:
        pairs = [p for p in pairs if p[0] == task]
    if dataset is not None:
        pairs = [p for p in pairs if p[1] == dataset]
    if not pairs:
        have = ", ".join(f"{t}/{d}" for t, d in groups(results)) or "none"
        raise ValueError(f"no results for task={task!r} dataset={dataset!r}; the results hold {have}")
    if len(pairs) > 1:
        have = ", ".join(f"{t}/{d}" for t, d in pairs)
        raise ValueError(f"results hold several task/dataset pairs ({have}): pass task= and dataset= to pick one")
    t, d = pairs[0]
    return df[(df["task"] == t) & (df["dataset"] == d)], t, d


def _metrics(df: pd.DataFrame, metrics: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(df["metric"]))
    if metrics is None:
        return present
    out = []
    for m in metrics:
        try:
            m = canonical_metric_name(m)
        except ValueError:
            pass
        if m not in present:
            raise ValueError(unknown_name_message("metric in these results", m, set(present)))
        out.append(m)
    return out


def _row_keys(df: pd.DataFrame, base: list[str]) -> list[str]:
    return (["run_id"] if df["run_id"].nunique() > 1 else []) + base


def _ordered_rows(df: pd.DataFrame, keys: list[str]) -> list[tuple[str, ...]]:
    order = {k: list(dict.fromkeys(df[k].astype(str))) for k in keys}
    if "probe" in order:
        order["probe"] = sorted(order["probe"], key=natural_key)
    rows = list(dict.fromkeys(tuple(str(v) for v in r) for r in df[keys].itertuples(index=False)))
    return sorted(rows, key=lambda r: tuple(order[k].index(v) for k, v in zip(keys, r, strict=True)))


def _fill(
    stats: pd.DataFrame, rows: list[tuple[str, ...]], columns: list[tuple[str, str]], col_key: Callable
) -> dict[str, np.ndarray]:
    shape = (len(rows), len(columns))
    out = {k: np.full(shape, np.nan) for k in ("mean", "std", "n", "n_seeds", "n_folds", "ci_low", "ci_high")}
    lookup = stats.to_dict("index")
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            rec = lookup.get(tuple(row) + col_key(col))
            if rec is not None:
                for k in out:
                    out[k][i, j] = rec[k]
    for k in ("n", "n_seeds", "n_folds"):
        out[k] = np.nan_to_num(out[k]).astype(int)
    return out


def _table(title: str, keys: list[str], rows: list[tuple[str, ...]], columns: list[tuple[str, str]],
           cells: dict[str, np.ndarray], **kw: object) -> Table:  # fmt: skip
    stats = [cells[k] for k in ("mean", "std", "n", "ci_low", "ci_high", "n_seeds", "n_folds")]
    return Table(title, keys, rows, columns, *stats, **kw)  # type: ignore[arg-type]


def all_deform_all_models(df: pd.DataFrame, metrics: list[str], title: str) -> Table:
    return _by_scenario(df, metrics, title, ["model", "probe"])


def tasks(df: pd.DataFrame, metrics: list[str], title: str) -> Table:
    """The tasks of one dataset side by side: rows model × probe × task, columns metric × scenario."""
    return _by_scenario(df, metrics, title, ["model", "probe", "task"])


def _by_scenario(df: pd.DataFrame, metrics: list[str], title: str, base: list[str]) -> Table:
    keys = _row_keys(df, base)
    df = df.astype({"seed": int})
    stats = cell_stats(df.assign(**{k: df[k].astype(str) for k in keys}), [*keys, "metric", "scenario"])
    rows = _ordered_rows(df, keys)
    scenarios = ordered_scenarios(df["scenario"].unique())
    columns = [(m, s) for m in metrics for s in scenarios]
    cells = _fill(stats, rows, columns, lambda c: c)
    return _table(title, keys, rows, columns, cells)


def model_comparison(df: pd.DataFrame, metrics: list[str], title: str, validation: pd.DataFrame | None = None) -> Table:
    """Rows model with one probe each, chosen by :func:`repeval.report.selection.choose_probes` (validation where the
    run records it, else the clean test set; the caption says which)."""
    clean = df[df["scenario"] == CLEAN]
    if clean.empty:
        raise ValueError("model_comparison needs clean-audio results (scenario 'clean'); none found")
    keys = _row_keys(clean, ["model"])
    primary = metrics[0]
    choice = choose_probes(clean[clean["metric"] == primary], keys, primary, _higher(primary), validation)
    sel = clean[
        [
            choice.probes.get(tuple(str(v) for v in r)) == p
            for r, p in zip(clean[keys].values, clean["probe"], strict=True)
        ]
    ]
    rows_keys = [*keys, "probe"]
    stats = cell_stats(sel.assign(**{k: sel[k].astype(str) for k in rows_keys}), [*rows_keys, "metric"])
    rows = _ordered_rows(sel, rows_keys)
    columns = [(m, "") for m in metrics]
    cells = _fill(stats, rows, columns, lambda c: (c[0],))
    caption = f"clean audio; {choice.caption()}"
    return _table(title, rows_keys, rows, columns, cells, caption=caption)


def robustness(df: pd.DataFrame, metrics: list[str], title: str) -> Table:
    scenarios = [s for s in ordered_scenarios(df["scenario"].unique()) if s != CLEAN]
    if not scenarios or CLEAN not in set(df["scenario"]):
        raise ValueError(
            "robustness needs clean and deformed results; add `deformations:` to the experiment "
            "(found scenarios: " + ", ".join(ordered_scenarios(df["scenario"].unique())) + ")"
        )
    keys = _row_keys(df, ["model", "probe"])
    df = df.assign(**{k: df[k].astype(str) for k in keys})
    # a deformed result is paired with the clean one of its replicate (seed, fold), on the tracks both were scored on
    deltas = paired_deltas(df, keys).assign(ci_low=np.nan, ci_high=np.nan)
    deltas["fold"] = deltas["_fold"].where(deltas["_fold"] >= 0)  # -1: a dataset with one split
    note = left_out_note(deltas, keys)
    deltas["scenario"] = "Δ " + deltas["scenario"]
    clean = df[df["scenario"] == CLEAN]
    stats = cell_stats(pd.concat([clean, deltas]), [*keys, "metric", "scenario"])
    rows = _ordered_rows(df, keys)
    columns = [(m, s) for m in metrics for s in [CLEAN] + [f"Δ {s}" for s in scenarios]]
    cells = _fill(stats, rows, columns, lambda c: c)
    folds = "fold" in df.columns and df["fold"].notna().any()
    caption = "Δ = deformed minus clean on the same test tracks, paired by seed" + (" and fold" if folds else "")
    return _table(
        title, keys, rows, columns, cells,
        delta=[sub.startswith("Δ") for _, sub in columns], caption=caption + (f"; {note}" if note else ""),
    )  # fmt: skip


PRESETS: dict[str, Callable[[pd.DataFrame, list[str], str], Table]] = {
    "all_deform_all_models": all_deform_all_models,
    "model_comparison": model_comparison,
    "robustness": robustness,
    "tasks": tasks,
}
#: presets over every task of one dataset (the others take one task and dataset)
DATASET_PRESETS = ("tasks",)
#: the flagged cells of a table over every probe of each model: the best on the test set, which is no probe choice
#: (the model comparison, and the headline, stand each model with the probe chosen on validation where recorded)
POOLED_LEGEND = (
    "best test value in column, over every probe: not a probe choice (each model's chosen probe: the "
    "model_comparison table)"
)


def multi_task_datasets(results: pd.DataFrame) -> list[str]:
    """The datasets that two or more tasks of ``results`` evaluate on, in order of appearance."""
    pairs = groups(results)
    names = list(dict.fromkeys(d for _, d in pairs))
    return [d for d in names if sum(1 for _, x in pairs if x == d) > 1]


def _select_dataset(results: pd.DataFrame, task: str | None, dataset: str | None) -> tuple[pd.DataFrame, str, str]:
    """The aggregate rows of every task on one dataset (``task``: a comma-separated subset of them)."""
    df = results[results["label"].isna()]
    datasets = multi_task_datasets(df) if dataset is None else [dataset]
    if not datasets:
        have = ", ".join(f"{t}/{d}" for t, d in groups(results)) or "none"
        raise ValueError(
            f"the tasks table compares the tasks of one dataset; each dataset here has one task ({have}): the other "
            "presets show it — all_deform_all_models, model_comparison or robustness"
        )
    if len(datasets) > 1:
        raise ValueError(
            f"several datasets have more than one task ({', '.join(datasets)}): pick one with --dataset (dataset=)"
        )
    d = datasets[0]
    df = df[df["dataset"] == d]
    if task is not None:
        df = df[df["task"].isin([t.strip() for t in task.split(",")])]
    names = list(dict.fromkeys(df["task"]))
    if len(names) < 2:
        have = ", ".join(t for t, x in groups(results) if x == d) or "none"
        raise ValueError(f"the tasks table needs two or more tasks on dataset {d!r}; it has: {have}")
    return df, ", ".join(names), d


def make_table(
    results_df: pd.DataFrame,
    preset: str,
    *,
    task: str | None = None,
    dataset: str | None = None,
    metrics: Sequence[str] | None = None,
    validation: pd.DataFrame | None = None,
    masked: Collection[tuple[str, str]] = (),
    test_sets: SplitDigests | None = None,
    no_intervals: Collection[str] = (),
) -> Table:
    """Shape the aggregate rows of one task/dataset in ``results_df`` with ``preset`` (``validation``: the runs'
    :func:`repeval.report.selection.combine_validation`, which ``model_comparison`` chooses each model's probe on;
    ``masked``: the runs' :attr:`~repeval.report.results.Run.masked` pairs, which the caption notes; ``test_sets``:
    the runs' :func:`~repeval.report.comparable.split_digests` — rows of runs on different test sets are not
    ranked against each other: the best of a column is flagged within each set of runs on one test set). A scenario
    the runs define differently has a column per definition (:func:`~repeval.report.comparable.keep_apart`), which the
    caption explains. ``no_intervals``: the run ids of runs that computed no intervals (:func:`~repeval.report.withheld.
    intervals_off`), whose cells the caption does not explain the lack of."""
    if preset not in PRESETS:
        raise ValueError(unknown_name_message("table preset", preset, set(PRESETS)))
    if preset in DATASET_PRESETS:
        df, t, d = _select_dataset(results_df, task, dataset)
    else:
        df, t, d = _select(results_df, task, dataset)
    chosen = _metrics(df, metrics)
    df = df[df["metric"].isin(chosen)]
    title = f"{d} — tasks {t}" if preset in DATASET_PRESETS else f"{t} — {d}"
    if preset == "model_comparison":
        table = model_comparison(df, chosen, title, validation)
    else:
        table = PRESETS[preset](df, chosen, title)
    table.task, table.dataset, table.replicates = t, d, replicates_text(df)
    table.fold_overlap = max_fold_overlap(df)
    if "probe" in table.row_names and preset != "model_comparison":
        table.best_legend = POOLED_LEGEND
    notes = metric_notes(df, chosen, any((task, d) in masked for task in set(df["task"])))
    apart = _best_within_test_sets(table, df, test_sets)
    shown = {sub.removeprefix("Δ ") for _, sub in table.columns}
    split = apart_scenarios(df).keys() & shown
    table.no_interval = {
        m: no_interval_why(m, n)
        for m, where in withheld_intervals(df, no_intervals).items()
        if m in chosen
        for n in where.values()
    }
    lacking = [lacking_note(df, shown), lacking_metric_note(df, chosen)]
    parts = [table.caption, *notes, overlap_note(df), apart, apart_note(df, split), *lacking]
    table.caption = "; ".join(p for p in [*parts, *table.no_interval.values()] if p)
    return table


def _best_within_test_sets(table: Table, df: pd.DataFrame, test_sets: SplitDigests | None) -> str:
    """Flag the best of each column of ``table`` (rows led by their run id) within each set of its runs scored on the
    same test set (:func:`~repeval.report.comparable.run_sets`) and say so; empty (the flags as they are) when all
    were."""
    sets = run_sets(df, test_sets) if table.row_names[:1] == ["run_id"] else []
    if len(sets) < 2:
        return ""
    higher = [_higher(m) for m, _ in table.columns]
    best = np.zeros(table.mean.shape, dtype=bool)
    for runs in sets:
        idx = [i for i, row in enumerate(table.rows) if row[0] in runs]
        best[idx] = best_mask(table.mean[idx], higher)
    table.best = best
    return (
        f"{differ_note(df, sets)}: values on different test sets are not comparable, the best per column is marked "
        f"within each set of runs on one test set ({'; '.join(set_label(r) for r in sets)})"
    )


def _check_names(results: pd.DataFrame, preset: str, task: str | None, dataset: str | None, where: str) -> None:
    """A ``--task`` or ``--dataset`` absent from the runs' results names the ones present (and the closest)."""
    pairs = groups(results)
    present = {"task": list(dict.fromkeys(t for t, _ in pairs)), "dataset": list(dict.fromkeys(d for _, d in pairs))}
    tasks = [] if task is None else [t.strip() for t in task.split(",")] if preset in DATASET_PRESETS else [task]
    asked = [("dataset", dataset)] if dataset is not None else []
    for kind, name in [*asked, *(("task", t) for t in tasks)]:
        if name not in present[kind]:
            hint = closest(name, present[kind])
            raise ValueError(
                f"no {kind} {name!r} in the results of {where}"
                + (f" — did you mean {hint!r}?" if hint else ".")
                + f" {kind.capitalize()}s there: {', '.join(present[kind]) or 'none'}"
            )


def table_command(
    run_dirs: Sequence[Path | str],
    preset: str = "all_deform_all_models",
    fmt: str = "terminal",
    *,
    task: str | None = None,
    dataset: str | None = None,
    metrics: Sequence[str] | None = None,
    color: bool | None = None,
    scale: float = 1.0,
    decimals: int | None = None,
    runs: list[Run] | None = None,
    width: int | None = None,
    headline: bool = False,
) -> str:
    """Render ``preset`` for every task/dataset of the given runs (``repeval table RUN... --preset --format``);
    ``runs``: those runs already loaded (:func:`~repeval.report.results.load_runs` of ``run_dirs``); ``width``: the
    terminal width the ``terminal`` and ``plain`` formats fit, a wider table split into blocks of columns
    (:func:`~repeval.report.render.render_terminal`; None: as wide as the columns need); ``headline``: in those two
    formats, after a table over every probe, each task/dataset's headline (:func:`~repeval.report.summary.
    summary_text`: the best model with the probe chosen for it, as ``repeval run`` prints it)."""
    from repeval.report.render import render

    fmt = canonical_format(fmt)
    if preset not in PRESETS:
        raise ValueError(unknown_name_message("table preset", preset, set(PRESETS)))
    if decimals is not None and decimals < 0:
        raise ValueError(f"--decimals must be 0 or more (digits after the point), got {decimals}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be a positive factor (1: as computed, 100: percentages), got {scale:g}")
    runs = load_runs([Path(d) for d in run_dirs]) if runs is None else runs
    results = combine_results(runs)
    validation = combine_validation(runs)
    masked = masked_pairs(runs)
    level = ci_level(runs)
    off = intervals_off(runs)
    digests = split_digests(runs) if len(runs) > 1 else None
    _check_names(results, preset, task, dataset, ", ".join(map(str, run_dirs)))
    selections: list[tuple[str | None, str | None]]
    if preset in DATASET_PRESETS:
        # no dataset with two tasks: make_table(dataset=None) says so
        names: list[str | None] = [dataset] if dataset is not None else [*multi_task_datasets(results)] or [None]
        selections = [(task, d) for d in names]
    else:
        selections = [
            (t, d) for t, d in groups(results) if (task is None or t == task) and (dataset is None or d == dataset)
        ]
        if not selections:  # both names exist, not together
            have = ", ".join(f"{t}/{d}" for t, d in groups(results))
            raise ValueError(
                f"no results for task {task!r} on dataset {dataset!r}; the results hold (task/dataset) {have}"
            )
        if preset == "robustness" and len(selections) > 1:
            # the pairs tested under deformation get their table; the others are named, not a reason to show none
            pairs = results.loc[results["scenario"] != CLEAN, ["task", "dataset"]].drop_duplicates()
            deformed = set(pairs.itertuples(index=False, name=None))
            clean_only = [p for p in selections if p not in deformed]
            if len(clean_only) < len(selections):
                for t, d in clean_only:
                    log.warning("%s — %s has no deformed test sets: no robustness table for it", t, d)
                selections = [p for p in selections if p in deformed]
    parts = []
    for t, d in selections:
        table = make_table(
            results,
            preset,
            task=t,
            dataset=d,
            metrics=metrics,
            validation=validation,
            masked=masked,
            test_sets=digests,
            no_intervals=off,
        )
        parts.append(
            render(
                table,
                fmt,
                color=color,
                scale=scale,
                decimals=decimals,
                with_group=len(selections) > 1,
                ci_level=level,
                width=width,
            )
        )
    if headline and fmt in ("terminal", "plain") and preset != "model_comparison":
        from repeval.report.summary import summary_text

        pairs = set(selections)
        if preset in DATASET_PRESETS:  # (task list, dataset): each of the tasks on it
            asked = None if task is None else {x.strip() for x in task.split(",")}
            shown = {x for _, x in selections}
            pairs = {(t, d) for t, d in groups(results) if d in shown and (asked is None or t in asked)}
        text = summary_text(runs, pairs, digests)  # the split files' digests read once, above
        if text and scale != 1:  # the headline's values are repeval run's, as computed: say so under scaled tables
            text = f"the headline's values as computed (the tables' scores ×{scale:g}):\n{text}"
        parts += [_wrapped(text, width)] if text else []
    if fmt == "csv" and len(parts) > 1:  # one table: one header over the groups' columns (cells a group lacks empty)
        frames = [pd.read_csv(io.StringIO(p), dtype=str, keep_default_na=False) for p in parts]
        return str(pd.concat(frames, ignore_index=True).to_csv(index=False, lineterminator="\n"))
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def _wrapped(text: str, width: int | None) -> str:
    """``text``'s lines wrapped at spaces to ``width`` characters (None: as they are), each continuation indented
    under its line: a terminal's own wrap cut a headline anywhere, words and numbers included, back to column 0."""
    if not width:
        return text
    import textwrap

    out = []
    for line in text.split("\n"):
        lead = line[: len(line) - len(line.lstrip(" "))]
        out += textwrap.wrap(
            line.lstrip(" "), width, initial_indent=lead, subsequent_indent=lead + "    ", break_long_words=False,
            break_on_hyphens=False,
        ) or [line]  # fmt: skip
    return "\n".join(out)
