"""The robustness ranking of a task/dataset's models (:func:`rankings`): who loses least from clean under deformation.

Each model stands with its chosen probe (:func:`~repeval.report.selection.choose_probes`), scored on the group's first
metric: per deformation scenario the mean over seeds (and folds) of the Δ the robustness table shows
(:func:`repeval.report.deltas.paired_deltas`), then the mean over the scenarios — the same scenarios for every model
ranked: one without a Δ on each is named, not ranked. Over several runs, the ranking is over the scenarios every run
with deformation results has results on: a scenario some of them never tested (configured by some runs only) is left
out, and named with the runs that lack it — their tables show '–' there — rather than leaving those runs' models
unranked. A scenario they define differently (a column per definition,
:func:`~repeval.report.comparable.keep_apart`) is left out of the ranking of runs that do not all share one of its
definitions, and the runs that share one are ranked apart over every scenario they define alike.
:mod:`repeval.report.summary` puts the rankings on the report's cards and the terminal's headline lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from repeval.report.comparable import apart_runs, apart_scenarios, lacking_runs, lacking_words, set_label
from repeval.report.deltas import paired_deltas
from repeval.report.render import fmt_number
from repeval.report.results import CLEAN, ordered_scenarios
from repeval.report.selection import ProbeChoice
from repeval.words import counted

#: two means closer than this are tied (as the tables' best-value flags)
TIE_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Standing:
    """One model with its chosen probe under deformation: per scenario the mean Δ over seeds (and folds) — the
    robustness table's cell — and the mean deformed value."""

    model: str
    probe: str
    deltas: dict[str, float]
    deformed: dict[str, float]

    @property
    def name(self) -> str:
        return f"{self.model} · {self.probe}"

    @property
    def mean_delta(self) -> float:
        return sum(self.deltas.values()) / len(self.deltas)

    @property
    def mean_deformed(self) -> float:
        return sum(self.deformed.values()) / len(self.deformed)

    def worst(self, higher: bool) -> tuple[list[str], float]:
        """The scenarios with the largest loss from clean (several when tied, in scenario order) and their Δ."""
        sign = 1.0 if higher else -1.0
        low = min(sign * d for d in self.deltas.values())
        tied = [s for s, d in self.deltas.items() if abs(sign * d - low) <= TIE_TOLERANCE]
        return tied, self.deltas[tied[0]]


@dataclass(frozen=True)
class Robustness:
    """Who survives the group's deformation ``scenarios`` best, on ``metric``."""

    metric: str
    higher: bool
    scenarios: list[str]
    #: the models with a Δ and a deformed value on every scenario, in the results' order
    ranked: list[Standing]
    #: ``model · probe`` → the scenarios it has no Δ on (not ranked)
    unranked: dict[str, list[str]] = field(default_factory=dict)
    #: the scenarios left out of the ranking: the runs compared define them differently (their columns are kept apart
    #: per definition, :func:`~repeval.report.comparable.keep_apart`)
    apart: list[str] = field(default_factory=list)
    #: the scenarios left out of the ranking because some of its runs have no results on them (not configured there):
    #: scenario → those runs (the ranking is over the scenarios every run with deformation results has)
    missing: dict[str, list[str]] = field(default_factory=dict)
    #: a ranking of some of the headline's runs only (:attr:`~repeval.report.summary.Headline.shared`): those runs, and the scenarios the
    #: headline's runs define differently that these define alike (ranked here, on their shared column)
    runs: list[str] = field(default_factory=list)
    alike: list[str] = field(default_factory=list)

    def _best(self, value: str) -> list[Standing]:
        sign = 1.0 if self.higher else -1.0
        if not self.ranked:
            return []
        top = max(sign * getattr(s, value) for s in self.ranked)
        return [s for s in self.ranked if abs(sign * getattr(s, value) - top) <= TIE_TOLERANCE]

    @property
    def most_robust(self) -> list[Standing]:
        """The ranked models with the smallest mean loss from clean (several when tied)."""
        return self._best("mean_delta")

    @property
    def best_deformed(self) -> list[Standing]:
        """The ranked models with the best mean deformed value (several when tied)."""
        return self._best("mean_deformed")

    @property
    def compared(self) -> bool:
        """Whether there is anyone to be more robust than (more than one model)."""
        return len(self.ranked) + len(self.unranked) > 1


def rankings(
    rows: pd.DataFrame, choice: ProbeChoice, metric: str, higher: bool
) -> tuple[Robustness | None, list[Robustness]]:
    """The robustness ranking of every model of ``rows`` (one group's aggregate rows of ``metric``; ``None`` when the
    group has no deformation scenario) and, over several runs that define a scenario differently, those of the sets of
    runs that share one of its definitions (:attr:`~repeval.report.summary.Headline.shared`): two or more of the runs, not all of them."""
    if not [s for s in rows["scenario"].unique() if s != CLEAN]:
        return None, []
    runs = list(dict.fromkeys(rows["run_id"].astype(str)))
    defined = apart_runs(rows)  # a column kept apart → the runs that define it so
    sets = dict.fromkeys(tuple(r for r in runs if r in by) for by in defined.values())
    shared = [
        _robustness(rows[rows["run_id"].astype(str).isin(s)], choice, metric, higher, defined, list(s))
        for s in sets
        if 1 < len(s) < len(runs)
    ]
    return _robustness(rows, choice, metric, higher, defined), shared


def _robustness(
    rows: pd.DataFrame,
    choice: ProbeChoice,
    metric: str,
    higher: bool,
    defined: dict[str, tuple[str, ...]],
    runs: list[str] | None = None,
) -> Robustness:
    """The chosen probe of each model of ``rows`` under every deformation scenario of ``rows`` that all of its runs
    define alike: a column kept apart (``defined``: its runs, :func:`~repeval.report.comparable.apart_runs`) is left
    out unless every run of ``rows`` defines it so — a mean over it would compare different deformations. ``runs``:
    the runs of a ranking of some of the headline's (:attr:`Robustness.runs`)."""
    every = [s for s in ordered_scenarios(rows["scenario"].unique()) if s != CLEAN]
    present = set(rows["run_id"].astype(str))
    apart = apart_scenarios(rows)
    kept = [s for s in every if s not in defined or present <= set(defined[s])]
    left_out = list(dict.fromkeys(apart[s][0] for s in every if s not in kept))
    lacking = lacking_runs(rows, kept)
    scenarios = [s for s in kept if s not in lacking]
    alike = list(dict.fromkeys(apart[s][0] for s in scenarios if s in apart))
    keys = ["model", "probe"]
    rows = rows.assign(model=rows["model"].astype(str), probe=rows["probe"].astype(str))
    models = set(rows["model"])
    rows = rows[[choice.probes.get((m,)) == p for m, p in zip(rows["model"], rows["probe"], strict=True)]]
    # the robustness table's Δ cells (deformed minus clean on the same tracks, paired by seed and fold) and the
    # all-scenarios table's deformed cells, of the chosen probes
    delta = paired_deltas(rows, keys).groupby([*keys, "scenario"], sort=False)["value"].mean().to_dict()
    deformed = rows[rows["scenario"] != CLEAN].groupby([*keys, "scenario"], sort=False)["value"].mean().to_dict()
    ranked, unranked = [], {}
    for (model,), probe in choice.probes.items():
        if model not in models:
            continue  # a model of another run: not in this ranking
        d = {s: float(delta.get((model, probe, s), math.nan)) for s in scenarios}
        v = {s: float(deformed.get((model, probe, s), math.nan)) for s in scenarios}
        missing = [s for s in scenarios if not (math.isfinite(d[s]) and math.isfinite(v[s]))]
        if missing:
            unranked[f"{model} · {probe}"] = missing
        else:
            ranked.append(Standing(model, probe, d, v))
    return Robustness(metric, higher, scenarios, ranked if scenarios else [], unranked if scenarios else {}, left_out,
                      lacking, list(runs or []), alike if runs else [])  # fmt: skip


def signed(x: float) -> str:
    return fmt_number(x, signed=True)


def tied_names(names: Sequence[str]) -> str:
    """``A · M2`` or, several tied, ``A · M2 = B · M5 (tied)``."""
    return " = ".join(names) + (" (tied)" if len(names) > 1 else "")


def standing_names(standings: Sequence[Standing]) -> str:
    return tied_names([s.name for s in standings])


def worst_words(r: Robustness, standings: Sequence[Standing]) -> str:
    """``worst D1 −0.031`` (tied models: each one's, named; scenarios tied for the worst: ``D1 = D3 −0.031 (tied)``,
    not the first of them alone, which read as worse than the others)."""
    parts = []
    for s in standings:
        scenarios, d = s.worst(r.higher)
        tied = " (tied)" if len(scenarios) > 1 else ""
        parts.append((f"{s.model} " if len(standings) > 1 else "") + f"{' = '.join(scenarios)} {signed(d)}{tied}")
    return "worst " + ", ".join(parts)


def robustness_facts(r: Robustness, shared: Sequence[Robustness] = ()) -> list[str]:
    """The robustness headline in short phrases: who, the mean Δ and worst scenario, who is best under deformation
    when another model, and who is not ranked (the card and the terminal line join them). ``shared``: the rankings of
    the runs that define a scenario left out here alike (:attr:`~repeval.report.summary.Headline.shared`), which the phrase leaving it out
    points to; a ranking of such runs names them."""
    n = len(r.scenarios)
    over = f"over {counted(n, 'scenario')}"
    if not r.scenarios:
        return [f"not ranked across runs: {_left_out(r, shared)}"]
    if not r.ranked:
        lead = f"{alike_words(r)}: " if r.runs else ""
        return [f"{lead}no model has a change on every scenario: {_unranked(r)}"]
    top = r.most_robust
    lead = ("most robust" if r.compared else "under deformation") + (f" in {alike_words(r)}" if r.runs else "")
    facts = [f"{lead}: {standing_names(top)} (mean Δ {signed(top[0].mean_delta)} {over}, {worst_words(r, top)})"]
    if r.compared:
        best = r.best_deformed
        mean = fmt_number(best[0].mean_deformed)
        if {s.model for s in best} & {s.model for s in top}:
            facts.append(f"also the best mean deformed {r.metric} ({mean})")
        else:
            facts.append(f"best mean deformed {r.metric}: {standing_names(best)} ({mean}), a different model")
    if r.unranked:
        facts.append("not ranked: " + _unranked(r))
    if r.apart or r.missing:
        facts.append(f"left out: {_left_out(r, shared)}")
    return facts


def alike_words(r: Robustness) -> str:
    """``r1 + r3, which define D1 alike``: the runs of a ranking of some of a headline's (:attr:`~repeval.report.summary.Headline.shared`)."""
    return f"{set_label(r.runs)}, which define {', '.join(r.alike)} alike"


def _left_out(r: Robustness, shared: Sequence[Robustness] = ()) -> str:
    """The scenarios left out of ranking ``r`` and why: those the runs define differently (:func:`_apart`), then
    those some runs have no results on, ``D2 (no results in r2)``."""
    return "; ".join(x for x in (_apart(r, shared) if r.apart else "", lacking_words(r.missing)) if x)


def _apart(r: Robustness, shared: Sequence[Robustness] = ()) -> str:
    """``noise_10db, defined differently by the runs`` (the scenarios :attr:`Robustness.apart`), and which runs that
    define one alike are ranked on it apart (``shared``)."""
    alike = [set_label(x.runs) for x in shared if set(x.alike) & set(r.apart)]
    where = (
        f"; {'; '.join(alike)}, which define {'it' if len(r.apart) == 1 else 'one'} alike, ranked on it apart"
        if alike
        else ""
    )
    return f"{', '.join(r.apart)}, defined differently by the runs (each definition has its own column{where})"


def _unranked(r: Robustness) -> str:
    return "; ".join(f"{name} (no Δ on {', '.join(s)})" for name, s in r.unranked.items())
