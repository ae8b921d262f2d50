"""The headline of a task/dataset: which model is best on clean audio, and which survives deformation.

:func:`headline` computes both once, for the report's summary cards (:func:`summary_cards`) and for the lines
``repeval run`` and ``repeval evaluate`` print after the results table (:func:`summary_text`). Each model stands with
one probe, the one :func:`~repeval.report.selection.choose_probes` chooses (on validation where the run records it),
and is scored on the group's first metric:

- best on clean: the best mean clean value over seeds (and folds);
- most robust (:func:`repeval.report.robustness.rankings`): the smallest loss from clean, averaged over the
  deformation scenarios — per scenario the mean over seeds (and folds) of the Δ the robustness table shows
  (:func:`repeval.report.deltas.paired_deltas`: deformed minus clean on the same test tracks, paired by seed and fold),
  then the mean over the scenarios. The metric's direction decides what a loss is (for an error, lower is better: a
  positive Δ). A model without a Δ on every scenario (a failed training or test cell) is not ranked: its mean would
  be over other scenarios than the others'. Over several runs, the ranking is over the scenarios every run with
  deformation results has results on: one only some runs tested is left out and named with the runs that lack it
  (:func:`~repeval.report.comparable.lacking_runs`), their models ranked on the rest. A scenario they define
  differently (a column per definition, :func:`~repeval.report.comparable.keep_apart`) is left out of the ranking of
  runs that do not all share one of its definitions; the runs that do share one are ranked apart as well, over every
  scenario they define alike (:attr:`Headline.shared`);
- best under deformation: the best mean deformed value (the same per-scenario means), named when another model.
"""

from __future__ import annotations

import html
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pandas as pd

from repeval.report.cells import _higher, fold_tracks
from repeval.report.comparable import SplitDigests, apart_scenarios, differ_note, run_sets, set_label, split_digests
from repeval.report.precision import column_decimals
from repeval.report.render import fmt_number
from repeval.report.results import CLEAN, Run, combine_results, groups, ordered_scenarios
from repeval.report.robustness import (
    TIE_TOLERANCE,
    Robustness,
    alike_words,
    rankings,
    robustness_facts,
    signed,
    standing_names,
    tied_names,
    worst_words,
)
from repeval.report.selection import ProbeChoice, choose_probes, combine_validation
from repeval.words import counted

e = html.escape


@dataclass(frozen=True)
class Headline:
    """The facts a task/dataset's summary leads with (:func:`headline`)."""

    task: str
    dataset: str
    metric: str
    higher: bool
    choice: ProbeChoice
    #: the best models on clean audio with their chosen probes (several when tied; none without a finite value);
    #: the first one's mean, sample std and number of replicates
    best: list[tuple[str, str]]
    clean_mean: float
    clean_std: float
    clean_n: int
    #: ``None``: the group has no deformation scenario
    robustness: Robustness | None
    #: the best clean mean of any probe — the cells the tables over every probe flag best in the clean column — when
    #: none of them is a model's chosen probe (a validation choice passed it over), with its mean; else empty
    test_best: list[tuple[str, str]] = field(default_factory=list)
    test_best_mean: float = math.nan
    #: over several runs that define a scenario differently, one ranking per set of (two or more, not all) runs that
    #: define it alike: their models over every scenario those runs define alike, that column among them — the
    #: ranking of all the runs (:attr:`robustness`) leaves the scenario out, its mean over the same scenarios for all
    shared: list[Robustness] = field(default_factory=list)
    #: the decimals of the tables' clean column — its models' chosen probes' means, and every probe's — at which the
    #: headline says its best (a value said alone read at its own: an MSE of 12.35 beside the table's 12 and 1235)
    decimals: int | None = None
    every_decimals: int | None = None


def headline(df: pd.DataFrame, task: str, dataset: str, validation: pd.DataFrame | None = None) -> Headline | None:
    """Best on clean and most robust for ``task`` on ``dataset`` in the results ``df`` (``validation``: what
    :func:`~repeval.report.selection.combine_validation` gives, keyed like ``df``'s models); ``None`` without clean
    results."""
    group = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
    agg = group[group["scenario"] == CLEAN]
    if agg.empty:
        return None
    metric = str(next(iter(dict.fromkeys(agg["metric"]))))
    higher = _higher(metric)
    sel = agg[agg["metric"] == metric]
    choice = choose_probes(sel, ["model"], metric, higher, validation)
    sel = sel[[choice.probes.get((str(m),)) == p for m, p in zip(sel["model"], sel["probe"], strict=True)]]
    per = sel.groupby(["model", "probe"], sort=False)["value"].agg(["mean", "std", "count"]).dropna(subset=["mean"])
    sign = 1.0 if higher else -1.0
    top = (sign * per["mean"]).max() if not per.empty else math.nan
    tied = per[(sign * per["mean"] - top).abs() <= TIE_TOLERANCE]
    best = [(str(m), str(p)) for m, p in tied.index]
    rec = tied.iloc[0] if best else pd.Series({"mean": math.nan, "std": math.nan, "count": 0})
    rob, shared = rankings(group[group["metric"] == metric], choice, metric, higher)
    # what the tables over every probe flag best in the clean column (their cells: the mean over the replicates)
    every = agg[agg["metric"] == metric].groupby(["model", "probe"], sort=False)["value"].mean().dropna()
    flagged = every[(sign * every - (sign * every).max()).abs() <= TIE_TOLERANCE] if not every.empty else every
    cells = [(str(m), str(p)) for m, p in flagged.index]
    passed_over = bool(cells) and not set(cells) & set(best)
    return Headline(task, dataset, metric, higher, choice, best, float(rec["mean"]), float(rec["std"]),
                    int(rec["count"]), rob, cells if passed_over else [],
                    float(flagged.iloc[0]) if passed_over else math.nan, shared, column_decimals(per["mean"]),
                    column_decimals(every))  # fmt: skip


def _direction(h: Headline) -> str:
    return "" if h.higher else " (lower is better)"


def _clean_value(h: Headline) -> str:
    """``0.950 ± 0.014`` (tied models: ``0.950 each``)."""
    digits = h.decimals  # the mean and its std at the table column's decimals
    if len(h.best) > 1:
        return f"{fmt_number(h.clean_mean, decimals=digits)} each"
    if h.clean_n < 2:
        return fmt_number(h.clean_mean, decimals=digits)
    return f"{fmt_number(h.clean_mean, decimals=digits)} ± {fmt_number(h.clean_std, decimals=digits)}"


def _clean_names(h: Headline) -> str:
    return tied_names([f"{m} · {p}" for m, p in h.best]) or "–"


def _test_sets(group: pd.DataFrame) -> str:
    """The test sets of a group: ``clean + 2 deformation scenarios`` — counted as the most robust card counts its
    scenarios (the deformations), not with clean among them; one the runs define differently (a column per definition) once,
    and named."""
    apart = apart_scenarios(group)
    deformed = [s for s in ordered_scenarios(group["scenario"].unique()) if s != CLEAN]
    if not deformed:
        return "clean audio only"
    bases = list(dict.fromkeys(apart.get(s, (s, ""))[0] for s in deformed))
    split = [b for b in bases if b in {x for x, _ in apart.values()}]
    differ = f" ({', '.join(split)} defined differently by the runs)" if split else ""
    return (
        ("clean + " if CLEAN in set(group["scenario"]) else "") + counted(len(bases), "deformation scenario") + differ
    )


def passed_over_note(h: Headline) -> str:
    """Why the tables' best clean cell is not the headline's, when it is not: that cell's probe is one validation did
    not choose for its model, and naming it best would choose the probe on the test set (empty when they agree, and
    when the probes were chosen on the clean test set: then the two are the same cell)."""
    if not h.test_best:
        return ""
    # a model whose probes could not be compared on validation stands with its best clean-test probe: a flagged cell
    # that is not a chosen probe is one validation passed over
    names = tied_names([f"{m} · {p}" for m, p in h.test_best])
    whose = "its model" if len(h.test_best) == 1 else "their models"
    value = fmt_number(h.test_best_mean, decimals=h.every_decimals)  # at its column's decimals, every probe's
    return (
        f"the tables' best clean {h.metric}, {names} {value}, is a probe not chosen on validation for {whose}: naming "
        "it best would choose the probe on the test set"
    )


@dataclass(frozen=True)
class Headlines:
    """A task/dataset's headlines, computed once for every part of its report section that shows them (the cards,
    the tables' ✓ marks, the per-label tables and the confusion matrices)."""

    #: per set of runs on one test set, its runs and headline
    found: list[tuple[list[str], Headline]]
    #: :func:`headline` of every run together (the same as ``found``'s one when they are one set)
    overall: Headline | None


def headlines(
    df: pd.DataFrame,
    task: str,
    dataset: str,
    validation: pd.DataFrame | None = None,
    test_sets: SplitDigests | None = None,
    *,
    overall: bool = False,
) -> Headlines:
    """:func:`headline` of each set of ``df``'s runs scored on the same test set (:func:`~repeval.report.comparable.
    run_sets`; ``test_sets``: their digests): one entry (every run) when all were, else one per set, ranked apart;
    with ``overall`` also the :func:`headline` of every run together (the report's tables mark its probes)."""
    group = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
    sets = run_sets(group, test_sets) if not group.empty else [[]]
    every = headline(df, task, dataset, validation) if overall or len(sets) == 1 else None
    if len(sets) == 1:
        return Headlines([(sets[0], every)] if every is not None else [], every)
    out = []
    for runs in sets:
        h = headline(df[df["run_id"].astype(str).isin(runs)], task, dataset, validation)
        if h is not None:
            out.append((runs, h))
    return Headlines(out, every)


def best_names(found: Sequence[tuple[list[str], Headline]]) -> str:
    """The best on clean of :func:`headlines`: ``A · M2`` (tied: ``A · M2 = B · M5 (tied)``; runs on several test
    sets: each set's, ``r1: A · M2; r2: B · M1``); empty without a finite clean value."""
    if len(found) == 1:
        return tied_names([f"{m} · {p}" for m, p in found[0][1].best])
    return "; ".join(f"{set_label(r)}: {_clean_names(h)}" for r, h in found)


def summary_cards(
    df: pd.DataFrame,
    task: str,
    dataset: str,
    validation: pd.DataFrame | None = None,
    test_sets: SplitDigests | None = None,
    found: list[tuple[list[str], Headline]] | None = None,
) -> str:
    """The report's headline cards of ``task`` on ``dataset``: best on clean, most robust (when the group has
    deformation scenarios), the grid and the test tracks scored. Runs scored on different test sets (``test_sets``:
    their digests, :func:`~repeval.report.comparable.split_digests`) are not ranked against each other: the best
    and most robust of each set of runs on one test set, and a card saying why. ``found``: :attr:`Headlines.found`,
    when computed already."""
    found = headlines(df, task, dataset, validation, test_sets).found if found is None else found
    if not found:
        return ""
    agg = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna() & (df["scenario"] == CLEAN)]
    n_folds = int(agg["fold"].nunique()) if "fold" in agg.columns else 0
    folds = f"{n_folds} folds, " if n_folds > 1 else ""
    group = df[(df["task"] == task) & (df["dataset"] == dataset)]
    cards = []
    sets = run_sets(group[group["label"].isna()], test_sets)
    apart = len(sets) > 1  # (a set without clean results has no ranking: it is still not ranked with the others)
    if apart:  # first: the reader sees why before the rankings
        why = differ_note(group[group["label"].isna()], sets)
        cards.append(
            f'<div class="rv-card rv-apart"><span>not ranked across runs</span><b>{len(sets)} test sets</b>'
            f"<span>{e(why)}: each run is ranked with those scored on the same test tracks, and the tables mark the "
            "best per column within each (values on different test sets are not comparable)</span></div>"
        )
    for runs, h in found:
        cards += _ranking_cards(h, n_folds, f" in {set_label(runs)}" if apart else "")
    cards += [
        f'<div class="rv-card"><span>grid</span><b>{_grid(agg)}</b><span>{counted(group["seed"].nunique(), "seed")}, '
        f"{folds}{_test_sets(group)}</span></div>",
        tested_card(group[group["label"].isna()], n_folds),
    ]
    return f'<div class="rv-summary">{"".join(cards)}</div>'


def _ranking_cards(h: Headline, n_folds: int, within: str = "") -> list[str]:
    """Best on clean and (with deformation scenarios) most robust of headline ``h``; ``within``: `` in <runs>``, the
    set of runs they rank (several test sets)."""
    replicates = f"{h.clean_n} seeds × folds" if n_folds > 1 else counted(h.clean_n, "seed")
    rule = e(h.choice.rule(None if len(h.best) != 1 else (h.best[0][0],)))
    cards = [
        f'<div class="rv-card"><span>best on clean {e(h.metric)}{_direction(h)}{e(within)}</span>'
        f"<b>{e(_clean_names(h))}</b><span>{_clean_value(h)} over {replicates}; probe {rule}</span>"
        + (f'<span class="rv-passed-over">{e(passed_over_note(h))}</span>' if h.test_best else "")
        + "</div>",
    ]
    if h.robustness is not None:
        cards.append(_robustness_card(h, h.robustness, within, h.shared))
    cards += [_robustness_card(h, r, f" in {alike_words(r)}") for r in h.shared]
    return cards


def _robustness_card(h: Headline, r: Robustness, within: str = "", shared: Sequence[Robustness] = ()) -> str:
    """The most robust card of ranking ``r`` of headline ``h``: its own, or one of :attr:`Headline.shared`, whose
    runs ``within`` names (``shared``: those, which the card of all the runs points to)."""
    title = f"{'most robust' if r.compared else 'under deformation'}: {h.metric} deformed − clean{_direction(h)}"
    title += within
    if not r.ranked:
        fact = robustness_facts(r, shared)[0].removeprefix(f"{alike_words(r)}: " if r.runs else "")
        return f'<div class="rv-card rv-robust"><span>{e(title)}</span><b>–</b><span>{e(fact)}</span></div>'
    top = r.most_robust
    n = len(r.scenarios)
    facts = [
        f"mean Δ {signed(top[0].mean_delta)} over {counted(n, 'scenario')} ({', '.join(r.scenarios)}), "
        "each the mean over seeds (and folds) of the robustness table's Δ",
        worst_words(r, top),
        *robustness_facts(r, shared)[1:],
        "probe " + h.choice.rule(None if len(top) > 1 else (top[0].model,)),
    ]
    return (
        f'<div class="rv-card rv-robust"><span>{e(title)}</span><b>{e(standing_names(top))}</b>'
        f"<span>{e('; '.join(facts))}</span></div>"
    )


def _grid(agg: pd.DataFrame) -> str:
    """``3 models × 2 probes``; over several runs (models named ``<run>/<model>``) each model counted once, and the
    runs: ``2 models × 2 probes in 2 runs``."""
    runs = list(dict.fromkeys(agg["run_id"].astype(str)))
    names = agg["model"].astype(str)
    if len(runs) > 1:
        names = pd.Series([m.removeprefix(f"{r}/") for m, r in zip(names, agg["run_id"].astype(str), strict=True)])
    grid = f"{counted(names.nunique(), 'model')} × {counted(agg['probe'].nunique(), 'probe')}"
    return grid + (f" in {len(runs)} runs" if len(runs) > 1 else "")


def tested_card(agg: pd.DataFrame, n_folds: int) -> str:
    """How many test tracks each model was scored on, per scenario: a track left out of evaluation (an error record
    of that model's partition) is not counted. With k folds, the tracks of every fold (each tested in one, or counted in each fold
    that tests it when the folds share test tracks: :func:`~repeval.report.cells.fold_tracks`).
    Several runs (rows of several ``run_id``): each run's own test set is the reference — a smaller one (a smoke
    test's) is named as that run's count, not as tracks left out."""
    ev = agg.assign(_fold=agg["fold"].fillna(-1)).drop_duplicates(["model", "probe", "seed", "_fold", "scenario"])
    # every probe and seed of a model scores the same tracks; the most any of them scored (one may have failed)
    per = ev.groupby(["run_id", "model", "probe", "seed", "scenario"], sort=False)["n_test"].sum()
    per = per.groupby(level=["run_id", "model", "scenario"], sort=False).max()
    lo, hi = int(per.min()), int(per.max())
    where = f"over the {n_folds} folds ({fold_tracks(agg)})" if n_folds > 1 else "per evaluation"
    if lo == hi:
        return f'<div class="rv-card"><span>test tracks scored</span><b>{hi:,}</b><span>{where}</span></div>'
    top = per.groupby(level="run_id", sort=False).max()
    notes = [where]
    if top.nunique() > 1:
        notes.append("the runs' test sets differ: " + ", ".join(f"{r} {int(n):,}" for r, n in top.items()))
    order = {s: i for i, s in enumerate(ordered_scenarios(per.index.get_level_values("scenario").unique()))}
    short = sorted(((m, s, int(n)) for (r, m, s), n in per.items() if n < top[r]), key=lambda x: (order[x[1]], x[2]))
    if short:
        shown = ", ".join(f"{m} on {s} {n:,}" for m, s, n in short[:4])
        more = f" and {len(short) - 4} more" if len(short) > 4 else ""
        notes.append(f"fewer where tracks were left out of evaluation: {shown}{more}")
    return f'<div class="rv-card"><span>test tracks scored</span><b>{lo:,}–{hi:,}</b><span>{e("; ".join(notes))}</span></div>'


def summary_lines(h: Headline, within: str = "") -> list[str]:
    """One or two lines for the terminal: best on clean, and (with deformation scenarios) most robust — then one per
    ranking of the runs that share a definition of a scenario the others define otherwise (:attr:`Headline.shared`);
    ``within``: the runs they rank (runs on several test sets, ranked apart)."""
    where = f" in {within}" if within else ""
    lead = f"{h.task} — {h.dataset}, {h.metric}{_direction(h)}{where}: best on clean "
    # the table beside it flags the best cell of each column: say why the headline may name another probe
    rule = h.choice.rule(None)
    chosen = f" (each model's probe {rule})" if rule else ""
    lines = [lead + (f"{_clean_names(h)} {_clean_value(h)}{chosen}" if h.best else "– (no finite clean value)")]
    if h.test_best:  # the table's starred clean cell is another probe: say why it is not the headline
        lines.append("  " + passed_over_note(h))
    if h.robustness is not None:
        lines.append("  " + "; ".join(robustness_facts(h.robustness, h.shared)))
    lines += ["  " + "; ".join(robustness_facts(r)) for r in h.shared]
    return lines


def summary_text(
    runs: list[Run], pairs: Collection[tuple[str, str]] | None = None, test_sets: SplitDigests | None = None
) -> str:
    """The headline of every task/dataset of ``runs`` (``pairs``: of those (task, dataset) only; models of several
    runs named ``<run_id>/<model>``, as the report names them), for ``repeval run``, ``evaluate`` and ``table`` to
    print after the results table. Runs scored on different test sets are ranked apart, each set's lines led by its
    runs, after a line saying why (``test_sets``: their digests when the caller has read them already, else read
    here, :func:`~repeval.report.comparable.split_digests`)."""
    df = combine_results(runs)
    multi = len(runs) > 1
    validation = combine_validation(runs, prefix_models=multi)
    keyed = df.assign(model=df["run_id"] + "/" + df["model"]) if multi else df
    digests = (test_sets if test_sets is not None else split_digests(runs)) if multi else None
    lines: list[str] = []
    for task, dataset in groups(df):
        if pairs is not None and (task, dataset) not in pairs:
            continue
        found = headlines(keyed, task, dataset, validation, digests).found
        if len(found) > 1:
            group = df[(df["task"] == task) & (df["dataset"] == dataset) & df["label"].isna()]
            why = differ_note(group, [r for r, _ in found])
            lines.append(f"{task} — {dataset}: not ranked across runs, {why}; each set of runs ranked on its own")
        for runs_of, h in found:
            lines += [
                ("  " if len(found) > 1 else "") + x
                for x in summary_lines(h, set_label(runs_of) if len(found) > 1 else "")
            ]
    return "\n".join(lines)
