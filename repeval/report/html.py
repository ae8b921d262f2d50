"""One self-contained HTML report over one or more runs (``repeval report RUN...``).

Everything is inline — CSS, a small vanilla-JS sorter/filter, figures as base64 PNG data
URIs — and a Content-Security-Policy forbids any network request, so the file opens
anywhere, offline, and can be mailed or archived as is.
"""

from __future__ import annotations

import datetime as _dt
import html
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from importlib import resources
from pathlib import Path

import pandas as pd

from repeval.metrics.base import metric_spec
from repeval.metrics.bootstrap import WITHHELD_WHY
from repeval.report import plots
from repeval.report.blocks import chosen_probes, probe_choice
from repeval.report.blocks import controls as _controls
from repeval.report.blocks import figure as _figure
from repeval.report.blocks import slug as _slug
from repeval.report.cells import fold_tracks
from repeval.report.comparable import SplitDigests, split_digests
from repeval.report.confusion import confusion_html, summed_confusion
from repeval.report.curve_files import CurveFiles, write_curve_files
from repeval.report.curves import curves_block
from repeval.report.heat import robustness_html
from repeval.report.labels import per_label_block as _per_label_block  # tests import it from here
from repeval.report.left_out import (
    ERROR_COLUMNS,
    MAX_ERROR_ROWS,
    dropped_at_load,
    error_records,
    models_left_out_block,
    partial_audio_note,
)
from repeval.report.left_out import failed_block as _failed_block  # tests import it from here
from repeval.report.render import ci_tip, render_html, table_has_folds
from repeval.report.results import (
    CLEAN,
    Run,
    ci_level,
    combine_results,
    groups,
    load_runs,
    masked_pairs,
    ordered_scenarios,
)
from repeval.report.selection import combine_validation, split_run
from repeval.report.summary import Headline, best_names, headlines, summary_cards
from repeval.report.tables import Table, make_table, multi_task_datasets
from repeval.report.training import preset_notes, task_notes
from repeval.report.withheld import intervals_off, withheld_intervals
from repeval.run.files import damaged
from repeval.store.partition import show_errors_command
from repeval.words import counted

log = logging.getLogger(__name__)
e = html.escape

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _asset(name: str) -> str:
    return (resources.files("repeval.report") / "assets" / name).read_text(encoding="utf-8")


def _table_block(
    results: pd.DataFrame,
    preset: str,
    task: str | None,
    dataset: str,
    heading: str,
    note: str = "",
    validation: pd.DataFrame | None = None,
    level: str = "95%",
    masked: frozenset[tuple[str, str]] = frozenset(),
    chosen: Headline | None = None,
    prefixed: bool = False,
    test_sets: SplitDigests | None = None,
    no_intervals: frozenset[str] = frozenset(),
) -> str:
    """One preset's table, its account above it; ``chosen``: the headline whose probe per model the rows of those
    probes mark (a ✓ after the probe), with a note saying what the mark is (``prefixed``: its models are named
    ``<run>/<model>``; ``test_sets``: the runs' test-set digests, whose sets the best-in-column marks keep apart)."""
    try:
        table = make_table(
            results,
            preset,
            task=task,
            dataset=dataset,
            validation=validation,
            masked=masked,
            test_sets=test_sets,
            no_intervals=no_intervals,
        )
    except ValueError as exc:
        log.info("table %s skipped: %s", preset, exc)
        return ""
    tid = _slug("t", preset, task or "", dataset)
    marked, legend = _chosen_rows(table, chosen, prefixed)
    # the caption's account above the table, as wide as the page (a <caption> wraps at the table's width)
    # said once, not in every tooltip
    hover = f"hover a cell for n and its {level} interval, the {ci_tip(level, table.fold_overlap > 0, table_has_folds(table))}"
    about = "; ".join(p for p in (note, table.full_caption, legend, hover) if p)
    body = render_html(
        table, table_id=tid, ci_level=level, described_by=f"{tid}-about" if about else "", marked=marked,
        mark_title=legend.removeprefix("✓: "),
    )  # fmt: skip
    note_html = f'<p class="rv-note" id="{tid}-about">{e(about)}</p>' if about else ""
    return f'<h3>{e(heading)}</h3>{note_html}{_controls(tid)}<div class="rv-scroll">{body}</div>'


def _chosen_rows(table: Table, h: Headline | None, prefixed: bool) -> tuple[set[tuple[str, ...]], str]:
    """The rows of ``table`` (keys [run_id,] model, probe) of each model's probe in the headline ``h`` (``prefixed``:
    its models named ``<run>/<model>``, several runs), and the legend of their mark; none when every row is one."""
    if h is None or list(table.row_names[-2:]) != ["model", "probe"]:
        return set(), ""
    chosen: set[tuple[str, ...]] = set()
    for (model,), probe in h.choice.probes.items():
        run, name = split_run(model, {row[0] for row in table.rows}) if prefixed else ("", model)
        chosen.add((run, name, probe) if table.row_names[0] == "run_id" else (name, probe))
    rows = chosen & set(table.rows)
    if not rows or rows == set(table.rows):  # one probe per model: nothing to tell apart
        return set(), ""
    return rows, f"✓: the probe each model stands with in the cards above, {h.choice.rule()}"


def _confusion_block(runs: list[Run], df: pd.DataFrame, task: str, dataset: str, multi: bool,
                     validation: pd.DataFrame | None = None, test_sets: SplitDigests | None = None,
                     found: list[tuple[list[str], Headline]] | None = None) -> str:  # fmt: skip
    """Clean-audio matrices of every model's chosen probe, plus every scenario for the best model on clean test —
    the summary card's (:func:`~repeval.report.summary.headline`; each of them when tied). Each matrix is the
    probe's counts summed over its seeds (:func:`~repeval.report.confusion.summed_confusion`), shown row-normalised.
    Runs on different test sets (``test_sets``): the best of each set of runs on one test set, as the cards name them
    (``found``: their :attr:`~repeval.report.summary.Headlines.found`, when computed already)."""
    found = headlines(df, task, dataset, validation, test_sets).found if found is None else found
    if not found:
        return ""
    h = found[0][1]
    probes = {m: p for _, x in found for m, p in x.choice.per_model.items()}
    top = [m for _, x in found for m, _ in x.best]
    group = df[(df["task"] == task) & (df["dataset"] == dataset)]
    folds = "fold" in group.columns and bool(group["fold"].notna().any())
    figs = []
    for model, probe in probes.items():
        run = runs[0]
        name = model
        if multi:
            run_id, name = split_run(model, [r.run_id for r in runs])
            run = next(r for r in runs if r.run_id == run_id)
        summed = summed_confusion(run, task, dataset, name, probe)
        if not summed:
            continue
        # the results' order of the scenarios (the configuration's), then any with a matrix only
        order = [s for s in ordered_scenarios([*group["scenario"].unique(), *summed]) if s in summed]
        wanted = order if model in top else [s for s in order if s == CLEAN][:1] or order[:1]
        for scenario in wanted:
            labels, matrix, seeds = summed[scenario]
            over = f"summed over {len(seeds)} seeds" if len(seeds) > 1 else f"seed {seeds[0]}"
            figs.append(confusion_html(labels, matrix, f"{model} {probe}, {scenario}, {over}"))
    if not figs:
        return ""
    best = best_names(found) or "none with a finite clean score"
    pooled = f" and folds ({fold_tracks(group)})" if folds else ""
    return (
        f'<h3>Confusion matrices</h3><p class="rv-note">one probe per model on clean audio, {e(h.choice.rule())}; '
        f"every scenario for the best on clean test {e(h.metric)} ({e(best)}); each matrix the probe's test "
        f"predictions counted over all its seeds{e(pooled)} (counts summed), each row as fractions of its reference "
        f"class (hover a cell for its count)</p>"
        f'<div class="rv-figs">{"".join(figs)}</div>'
    )


def _retry_note(partitions: list[str]) -> str:
    """What computes the error records of ``partitions`` (names ``dataset/model/scenario``) again: ``--retry-errors``,
    or ``--retry-model`` of each of their models for that model's alone."""
    from repeval.pipeline.failing import partition_models, retry_alone

    alone = retry_alone(partitions, lambda text: f"<code>{e(text)}</code>")
    models = "model" if len(partition_models(partitions)) <= 1 else "models"
    return (
        f"Once their files (or the {models} failing on them) are fixed, <code>repeval run --retry-errors</code> "
        f"computes them again{alone}."
    )


def _left_out_section(runs: list[Run]) -> str:
    """The tracks the runs left out of evaluation and why: rows their datasets dropped at load, and the error
    records of their store partitions (the first :data:`MAX_ERROR_ROWS`, with the total and the commands that list
    them all). Empty when there are none; a store that cannot be read is a note."""
    multi = len(runs) > 1
    parts: list[str] = [block] if (block := models_left_out_block(runs)) else []
    for run in runs:
        prefix = f"{run.run_id}: " if multi else ""
        for d in dropped_at_load(run):
            lines = "".join(f"<li>{e(line)}</li>" for line in d.lines)
            parts.append(
                f"<h3>{e(prefix)}dropped when {e(d.dataset)} was loaded for {e(', '.join(d.tasks))}: "
                f"{counted(d.not_evaluated, 'track')} not evaluated</h3><ul>{lines}</ul>"
            )
    rows: list[list[str]] = []
    total, counts, problems = 0, [], []
    for run in runs:
        found = error_records(run, MAX_ERROR_ROWS - len(rows))
        prefix = f"{run.run_id}: " if multi else ""
        problems += [
            f"{prefix}error records not read from the embedding store at {found.store}: {p}" for p in found.problems
        ]
        total += found.total
        counts += [(found.store, name, n) for name, n in found.counts]
        rows += [[*([run.run_id] if multi else []), *(r.get(c) or "" for c in ERROR_COLUMNS)] for r in found.rows]
    notes = "".join(f'<p class="rv-note">{e(p)}</p>' for p in problems)
    if total:
        head = [*(["run"] if multi else []), *ERROR_COLUMNS]
        th = "".join(f'<th data-col="{k}" data-kind="text">{e(h)}</th>' for k, h in enumerate(head))
        body = "".join("<tr>" + "".join(f'<td data-value="{e(v)}">{e(v)}</td>' for v in r) + "</tr>" for r in rows)
        shown = f"the first {len(rows)} of {total}" if len(rows) < total else f"all {total}"
        commands = "".join(
            f"<li><code>{e(show_errors_command(store, name))}</code> ({n})</li>" for store, name, n in counts
        )
        parts.append(
            f'<h3>Error records ({total})</h3><p class="rv-note">these tracks failed to decode, deform or embed: '
            "they have no embedding in that partition, so no probe was trained or tested on them there (a clean "
            "record leaves the track out of training and of every test; a scenario's, of that scenario's test). "
            f"{_retry_note([name for _, name, _ in counts])} Shown: {shown}; every record of a partition:</p>"
            f"<ul>{commands}</ul>"
            f'{_controls("left-out-errors")}<div class="rv-scroll"><table class="rv-table sortable" '
            f'id="left-out-errors"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>'
        )
    if not parts and not notes:
        return ""
    return (
        '<section id="not-evaluated"><h2>Tracks left out of evaluation</h2><p class="rv-note">in no table or figure '
        "below; <code>--strict</code> fails a run that has any (and <code>--retry-errors</code> computes the "
        f"error records' tracks again once their files are fixed)</p>{notes}{''.join(parts)}</section>"
    )


def _group_section(
    runs: list[Run],
    df: pd.DataFrame,
    history: pd.DataFrame | None,
    task: str,
    dataset: str,
    validation: pd.DataFrame | None = None,
    tables: tuple[pd.DataFrame, pd.DataFrame | None] | None = None,
    test_sets: SplitDigests | None = None,
    files: CurveFiles | None = None,
) -> str:
    """One task/dataset's section; ``df`` and ``validation`` name each model ``<run>/<model>`` over several runs (the
    figures, cards and per-label rows key on it), ``tables``: the results and validation with the models' own names,
    for the tables, whose rows lead with their run's id (default: ``df`` and ``validation``); ``test_sets``: the runs'
    test-set digests (:func:`~repeval.report.comparable.split_digests`), runs on different ones ranked apart;
    ``files``: where the robustness curves are saved too (:class:`~repeval.report.curve_files.CurveFiles`)."""
    multi = len(runs) > 1
    level = ci_level(runs)
    table_df, table_validation = tables if tables is not None else (df, validation)
    agg = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
    task_type = str(agg["task_type"].iloc[0]) if not agg.empty else ""
    task_type = " · ".join([task_type, *task_notes(runs, task)])
    metrics = list(dict.fromkeys(agg["metric"]))
    has_deform = any(s != CLEAN for s in agg["scenario"].unique())
    out = [f'<section class="rv-group" id="{_slug("g", task, dataset)}">']
    out.append(f'<h2>{e(task)} — {e(dataset)} <span class="rv-caption">{e(task_type)}</span></h2>')
    out += [f'<p class="rv-note rv-preset">{e(note)}</p>' for note in preset_notes(runs, task)]
    # the headlines once: the cards, the tables' marks, the per-label tables and the confusion matrices show them
    heads = headlines(df, task, dataset, validation, test_sets, overall=True)
    out.append(summary_cards(df, task, dataset, validation, test_sets, heads.found))
    out.append(partial_audio_note(runs, task, dataset))
    out.append(_failed_block(runs, task, dataset))
    masked = masked_pairs(runs)
    off = intervals_off(runs)
    out.append(
        _table_block(table_df, "model_comparison", task, dataset, "Model comparison", "",
                     table_validation, level, masked, test_sets=test_sets, no_intervals=off)
    )  # fmt: skip
    h = heads.overall
    out.append(_table_block(table_df, "all_deform_all_models", task, dataset, "All models × probes × scenarios",
                            level=level, masked=masked, chosen=h, prefixed=multi, test_sets=test_sets,
                            no_intervals=off))  # fmt: skip
    if has_deform:
        out.append(
            _table_block(table_df, "robustness", task, dataset, "Robustness (deformed − clean)", level=level,
                         masked=masked, chosen=h, prefixed=multi, test_sets=test_sets, no_intervals=off)
        )  # fmt: skip
    figs = [
        _figure(partial(plots.probe_capacity_curves, df, task, dataset, m, run_prefixed=multi), f"probe capacity: {m}")
        for m in metrics[:2]
    ]
    for m in metrics[:2] if has_deform else []:
        choice = probe_choice(df, task, dataset, m, validation)  # once, for the heat map and its caption
        figs.append(
            robustness_html(
                partial(plots.robustness_grid, df, task, dataset, m, chosen_probes(choice), validation),
                f"robustness: {m}, probe {choice.rule() if choice is not None else ''}",
            )
        )
    if history is not None:
        figs.append(
            _figure(
                partial(plots.training_curves, history, task, dataset, tested=df), "training curves (tested probes)"
            )
        )
    out.append(f'<h3>Figures</h3>{_figures_note(metrics)}<div class="rv-figs">{"".join(figs)}</div>')
    if has_deform:
        out.append(curves_block(runs, df, task, dataset, validation, files))
    out.append(
        _per_label_block(df, task, dataset, validation, level, (task, dataset) in masked, test_sets, heads.found)
    )
    out.append(_confusion_block(runs, df, task, dataset, multi, validation, test_sets, heads.found))
    out.append("</section>")
    return "".join(out)


def _run_section(runs: list[Run]) -> str:
    parts = ['<section id="runs"><h2>Runs</h2>']
    for run in runs:
        res = run.results
        parts.append(
            f'<details><summary>{e(run.run_id)} <span class="rv-caption">{e(str(run.path))} · '
            f"{len(res)} result rows</span></summary>"
            f"<pre>{e(run.config_text) if run.config_text else '(no config.yaml in the run directory)'}</pre></details>"
        )
    parts.append("</section>")
    return "".join(parts)


def build_report_html(runs: list[Run], *, title: str = "repeval report", files: CurveFiles | None = None) -> str:
    """The report page for already loaded runs; ``files``: where its robustness curves are saved as well."""
    df = combine_results(runs)
    multi = len(runs) > 1
    histories = []
    for run in runs:
        if run.history is not None:
            h = run.history
            histories.append(h.assign(model=run.run_id + "/" + h["model"].astype(str)) if multi else h)
    history = pd.concat(histories, ignore_index=True) if histories else None
    # plots key on the model name: keep the models of different runs apart
    plot_df = df.assign(model=df["run_id"] + "/" + df["model"]) if multi else df
    pairs = groups(df)
    nav = "".join(f'<a href="#{_slug("g", t, d)}">{e(t)} / {e(d)}</a>' for t, d in pairs)
    validation = combine_validation(runs, prefix_models=multi)  # keyed like plot_df
    # the tables' rows lead with the run id: their model column keeps the model's own name
    tables = (df, combine_validation(runs)) if multi else None
    digests = split_digests(runs) if multi else None  # runs on different test sets are not ranked together
    sections = [_group_section(runs, plot_df, history, t, d, validation, tables, digests, files) for t, d in pairs]
    for d in multi_task_datasets(df):  # a dataset two or more tasks share: its tasks side by side
        nav += f'<a href="#{_slug("tasks", d)}">tasks / {e(d)}</a>'
        block = _table_block(df, "tasks", None, d, "The dataset's tasks side by side",
                             "rows model × probe × task; best per column across the tasks",
                             level=ci_level(runs), masked=masked_pairs(runs), test_sets=digests,
                             no_intervals=intervals_off(runs))  # fmt: skip
        tasks = ", ".join(dict.fromkeys(t for t, x in pairs if x == d))
        sections.append(
            f'<section class="rv-group" id="{_slug("tasks", d)}"><h2>{e(d)} — tasks compared '
            f'<span class="rv-caption">{e(tasks)}</span></h2>{block}</section>'
        )
    left_out = _left_out_section(runs)
    if left_out:
        nav = '<a href="#not-evaluated">not evaluated</a>' + nav
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    run_ids = ", ".join(r.run_id for r in runs)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}: {e(run_ids)}</title><style>{_asset('report.css')}</style></head><body>"
        f"<header><h1>{e(title)}</h1><p>runs: {e(run_ids)} · {counted(len(pairs), 'task/dataset pair')}"
        f" · generated {stamp}</p>"
        "<p>Tables: mean ± std over seeds (and folds for k-fold datasets; std is the sample standard deviation, n − 1), "
        'best per column highlighted (none where every row ties)<span class="rv-screen">, click a header to sort (best first). '
        f"Hover a value for its {ci_level(runs)} bootstrap interval over test tracks</span>.</p>{_withheld_notes(runs)}{_unread_notes(runs)}"
        "</header>"
        f'<nav><a href="#runs">runs &amp; config</a>{nav}</nav><main>'
        f"{left_out}{''.join(sections)}{_run_section(runs)}</main>"
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def _withheld_notes(runs: list[Run]) -> str:
    """The metrics with no bootstrap interval on a test set too small for one (R² below ten tracks:
    :func:`repeval.report.withheld.withheld_intervals`), each with the tasks it concerns and why: the cells' tooltips
    give no interval for them, which this says the cause of."""
    small: dict[str, dict[tuple[str, str], int]] = {}
    for run in runs:
        for metric, where in withheld_intervals(run.results, intervals_off([run])).items():
            mine = small.setdefault(metric, {})
            for pair, n in where.items():
                mine[pair] = min(n, mine.get(pair, n))
    notes = []
    for metric, where in sorted(small.items()):
        least = metric_spec(metric).min_interval_tracks
        pairs = ", ".join(
            f"{task} on {dataset} ({counted(n, 'track')})" for (task, dataset), n in sorted(where.items())
        )
        notes.append(
            f"{metric} has no bootstrap interval where a test set has fewer than {least} tracks: {pairs} — "
            f"{WITHHELD_WHY}; a larger test set gives one."
        )
    return "".join(f'<p class="rv-note">{e(note)}</p>' for note in notes)


def _unread_notes(runs: list[Run]) -> str:
    """The runs' files the report could not read, each with what it leaves out and the fix (:attr:`Run.unread`)."""
    return "".join(f'<p class="rv-note rv-unread">{e(note)}</p>' for run in runs for note in run.unread)


@contextmanager
def _reading() -> Iterator[None]:
    """A run's file this user may not read, as a ``ValueError`` naming it and the fix: `repeval report` tells how to
    write the report elsewhere for an ``OSError`` of writing it, which would send the reader to the wrong folder."""
    try:
        yield
    except PermissionError as exc:
        name = exc.filename if exc.filename is not None else str(exc)
        raise ValueError(f"{name} is unreadable (permission denied): {damaged(exc, '')}") from None


def write_report(run_dirs: list[Path], out: Path) -> Path:
    """Write the self-contained report for ``run_dirs`` to ``out`` (a ``.html`` file or a folder). A run's file this
    user may not read is a ``ValueError`` naming it: an ``OSError`` out of here is one of writing ``out``."""
    with _reading():
        runs = load_runs([Path(d) for d in run_dirs])
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)  # before the figures: a folder it cannot write fails at once
    files = CurveFiles(out.parent / "plots")
    with _reading():
        html = build_report_html(runs, files=files)
    write_curve_files(files)  # after the reading: an OSError of writing them is not one of reading a run's file
    # whole or not at all: a full disk or a kill mid-write must not leave half a report in place of the last one
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.debug("wrote report for %s to %s", counted(len(runs), "run"), out)  # `repeval report` prints the path itself
    return out


def _figures_note(metrics: list[str]) -> str:
    """What the figures leave out: a task's metrics past its first two are in the tables alone (a third, accuracy,
    had no heat map and no word of why)."""
    if len(metrics) <= 2:
        return ""
    shown, rest = metrics[:2], metrics[2:]
    return (
        f'<p class="rv-note">figures of the first two metrics, {html.escape(" and ".join(shown))}; '
        f"the tables above have {html.escape(', '.join(rest))} too</p>"
    )
