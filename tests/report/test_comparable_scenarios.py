"""Deformation scenarios that runs define differently, or only some runs tested, are not ranked as one
(:mod:`repeval.report.comparable`).

A deformation scenario two runs define differently under one name was one column, and its values were averaged into
the mean Δ that ranks the runs' models: each definition now has a column of its own, left out of the ranking of all
the runs and ranked on among the runs that share it. A scenario only some runs tested left the others' models
unranked in the ranking of all the runs: it is left out of that ranking, which says so, and their cells are '–'.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from comparable_cases import DATASET, TASK, _splits

from repeval.report.comparable import differing_scenarios
from repeval.report.html import build_report_html
from repeval.report.render import fmt_number
from repeval.report.results import CLEAN, combine_results, load_runs, ordered_scenarios
from repeval.report.selection import combine_validation
from repeval.report.summary import headline, robustness_facts, summary_cards, summary_text
from repeval.report.tables import make_table, table_command
from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir


def _deformations(run: Path, scenarios: list[dict[str, object]]) -> None:
    """Give the run's ``config.yaml`` these deformation scenarios."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["experiments"][0]["deformations"] = scenarios
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _gain(db: float, **more: object) -> dict[str, object]:
    return {"type": "Gain", "params": {"min_gain_db": db, "max_gain_db": db, **more}}


@pytest.fixture(scope="module")
def defined_runs(tmp_path_factory):
    """Runs ``r1`` and ``r2`` on one test set whose ``D1`` differs (a gain of −6 dB, of −12 dB) and whose ``D2`` is
    one definition written two ways (a parameter's alias, ``1`` and ``1.0``, a default written out); ``r3`` as
    ``r1``; ``r4`` defined as ``r1`` with other results (other models' quality and draws)."""
    root = tmp_path_factory.mktemp("definitions")
    spec = dict(experiments=DEFAULT_EXPERIMENTS[:1], models=("A", "B"), model_quality={"A": 0.9, "B": 0.4},
                probes=("M1",), seeds=(0,), scenarios=(CLEAN, "D1", "D2"), n_test=30, n_resamples=5)  # fmt: skip
    dirs = {r: make_run_dir(root, FakeRunSpec(run_id=r, **spec)) for r in ("r1", "r2", "r3")}
    other = {**spec, "model_quality": {"A": 0.5, "B": 0.8}}
    dirs["r4"] = make_run_dir(root, FakeRunSpec(run_id="r4", seed=1, **other))
    d2 = {"name": "D2", "steps": [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 10}}]}
    same = {"name": "D2", "steps": [{"type": "AddGaussianSNR", "params": {"min_snr_in_db": 10.0, "max_snr_db": 10,
                                                                          "p": 0.5}}]}  # fmt: skip
    _deformations(dirs["r1"], [{"name": "D1", "steps": [_gain(-6, p=1)]}, d2])
    _deformations(dirs["r2"], [{"name": "D1", "steps": [_gain(-12, p=1)]}, same])
    _deformations(dirs["r3"], [[_gain(-6.0, p=1.0)], d2])  # D1 by position, the same as r1's
    _deformations(dirs["r4"], [{"name": "D1", "steps": [_gain(-6, p=1)]}, d2])
    for run in dirs.values():
        _splits(run, ["t1", "t2", "t3"])
    return dirs


def test_a_scenario_the_runs_define_differently_gets_a_column_per_run(defined_runs):
    runs = load_runs([defined_runs["r1"], defined_runs["r2"]])
    assert list(differing_scenarios(runs)) == [(TASK, DATASET, "D1")]  # D2 is one definition, however written
    df = combine_results(runs)
    assert ordered_scenarios(df["scenario"].unique()) == [CLEAN, "D1 (r1)", "D1 (r2)", "D2"]  # side by side
    t = make_table(df, "all_deform_all_models", task=TASK)
    col = {sub: i for i, (m, sub) in enumerate(t.columns) if m == "accuracy"}
    own = [row[0] for row, v in zip(t.rows, t.mean[:, col["D1 (r1)"]], strict=True) if np.isfinite(v)]
    assert set(own) == {"r1"} and np.isfinite(t.mean[:, col["D2"]]).all()  # r2's values are in its own column
    assert t.best[:, col["D1 (r2)"]].sum() == 1  # the best of r2's D1 is one of r2's models, not compared with r1's
    why = (
        "D1 is defined differently by the runs (r1: Gain(max_gain_db=-6, min_gain_db=-6, p=1); r2: Gain(max_gain_db="
        "-12, min_gain_db=-12, p=1)): one column per run's definition, their values not compared"
    )
    assert why in t.caption
    assert "defined differently" not in make_table(df, "model_comparison", task=TASK).caption  # no D1 column there
    for fmt, shown in (("plain", "Δ D1 (r1)"), ("csv", "accuracy:Δ D1 (r2)"), ("markdown", why)):
        text = table_command([defined_runs["r1"], defined_runs["r2"]], "robustness", fmt, task=TASK)
        assert shown in (" ".join(text.split()) if fmt == "plain" else text), fmt
    # the cross-run ranking under deformation is over D2 alone: a mean over D1 would compare different gains
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    h = headline(keyed, TASK, DATASET)
    assert h is not None and h.robustness is not None
    assert h.robustness.scenarios == ["D2"] and h.robustness.apart == ["D1"]
    assert all(set(s.deltas) == {"D2"} for s in h.robustness.ranked)
    text = summary_text(runs)
    assert "mean Δ" in text and "over 1 scenario," in text and "left out: D1, defined differently by the runs" in text
    cards = summary_cards(keyed, TASK, DATASET, combine_validation(runs, prefix_models=True))
    assert "clean + 2 deformation scenarios (D1 defined differently by the runs)" in cards
    assert "over 1 scenario (D2)" in cards
    # every scenario defined differently: no ranking across the runs under deformation, and why
    only_d1 = keyed[keyed["scenario"] != "D2"]
    facts = robustness_facts(headline(only_d1, TASK, DATASET).robustness)  # type: ignore[union-attr]
    assert facts == ["not ranked across runs: D1, defined differently by the runs (each definition has its own "
                     "column)"]  # fmt: skip


def test_runs_that_define_a_scenario_alike_share_its_column(defined_runs):
    """Three runs, two of which (r1, r3: one named, one by position) define D1 alike: each run had a column of its
    own, r1's and r3's values of one deformation apart; the runs that agree share one, and the caption gives each
    definition with the runs that use it."""
    dirs = [defined_runs[r] for r in ("r1", "r2", "r3")]
    df = combine_results(load_runs(dirs))
    assert ordered_scenarios(df["scenario"].unique()) == [CLEAN, "D1 (r1 + r3)", "D1 (r2)", "D2"]
    csv = pd.read_csv(io.StringIO(table_command(dirs, "robustness", "csv", task=TASK)))
    shared, own = csv["accuracy:Δ D1 (r1 + r3)"], csv["accuracy:Δ D1 (r2)"]
    assert set(csv.loc[shared.notna(), "run_id"]) == {"r1", "r3"} and set(csv.loc[own.notna(), "run_id"]) == {"r2"}
    assert "accuracy:Δ D1 (r1)" not in csv.columns and "accuracy:Δ D1 (r3)" not in csv.columns
    text = table_command(dirs, "robustness", "markdown", task=TASK)
    assert (
        "D1 is defined differently by the runs (r1 + r3: Gain(max_gain_db=-6, min_gain_db=-6, p=1); r2: Gain("
        "max_gain_db=-12, min_gain_db=-12, p=1)): one column per definition, shared by the runs that agree on it, "
        "their values not compared"
    ) in text
    # r1 and r3 measured one deformation: the best of their shared column is marked over both
    t = make_table(df, "robustness", task=TASK)
    col = t.columns.index(("accuracy", "Δ D1 (r1 + r3)"))
    assert {row[0] for row, flag in zip(t.rows, t.best[:, col], strict=True) if flag} == {"r1", "r3"}
    assert "left out: D1, defined differently by the runs" in summary_text(load_runs(dirs))


def _most_robust(csv: pd.DataFrame, runs: list[str], scenarios: list[str]) -> tuple[str, str]:
    """The most robust model of ``runs`` by the robustness table's accuracy Δ cells (``csv``: `repeval table
    --format csv`, one probe per model) over ``scenarios``: its name and its mean Δ as the headline shows them."""
    rows = csv[csv["run_id"].isin(runs)]
    mean = rows[[f"accuracy:Δ {s}" for s in scenarios]].astype(float).mean(axis=1)
    top = rows.loc[mean.idxmax()]
    assert (np.abs(mean - mean.max()) > 1e-9).sum() == len(rows) - 1  # one model the most robust: no tie
    return f"{top['run_id']}/{top['model']} · {top['probe']}", fmt_number(float(mean.max()), signed=True)


def test_runs_that_define_a_scenario_alike_are_ranked_on_it(defined_runs, tmp_path):
    """r1 and r4 define D1 alike, r2 otherwise: the ranking of all three left D1 out, r1's and r4's models too, though
    measured under one deformation. It still leaves D1 out (its mean must be over the same scenarios for every model
    ranked), and r1 and r4 are ranked on it apart, over D1 (r1 + r4) and D2 — in the report's cards, after `repeval
    table` and in the headline lines `repeval evaluate` prints; where r2 is on another test set, r1 and r4 are all the
    runs of theirs, ranked on D1 there."""
    dirs = [defined_runs[r] for r in ("r1", "r2", "r4")]
    csv = pd.read_csv(io.StringIO(table_command(dirs, "robustness", "csv", task=TASK)))
    assert {"accuracy:Δ D1 (r1 + r4)", "accuracy:Δ D1 (r2)", "accuracy:Δ D2"} <= set(csv.columns)
    every, every_mean = _most_robust(csv, ["r1", "r2", "r4"], ["D2"])
    alike, alike_mean = _most_robust(csv, ["r1", "r4"], ["D1 (r1 + r4)", "D2"])
    assert alike_mean != every_mean
    lines = table_command(dirs, "all_deform_all_models", "plain", task=TASK, headline=True).splitlines()
    main = next(x for x in lines if x.startswith("  most robust: "))
    assert main.startswith(f"  most robust: {every} (mean Δ {every_mean} over 1 scenario, ")
    assert main.endswith(
        "left out: D1, defined differently by the runs (each definition has its own column; r1 + r4, which define it "
        "alike, ranked on it apart)"
    )
    shared = lines[lines.index(main) + 1]
    assert shared.startswith(
        f"  most robust in r1 + r4, which define D1 alike: {alike} (mean Δ {alike_mean} over 2 scenarios, worst "
    )
    assert "r2/" not in shared and "left out" not in shared
    assert summary_text(load_runs(dirs)).splitlines()[1:3] == [main, shared]  # `repeval evaluate`'s lines
    html = build_report_html(load_runs(dirs))
    card = re.search(r'<div class="rv-card rv-robust"><span>most robust: accuracy deformed − clean in r1 \+ r4, '
                     r"which define D1 alike</span><b>(.*?)</b><span>(.*?)</span>", html)  # fmt: skip
    assert card is not None and card[1] == alike
    assert card[2].startswith(f"mean Δ {alike_mean} over 2 scenarios (D1 (r1 + r4), D2), ")
    assert f"<b>{every}</b><span>mean Δ {every_mean} over 1 scenario (D2), " in html

    # a model of the two without a Δ on D1 (a failed cell) is named in their ranking, not ranked; still in the other
    runs = load_runs(dirs)
    df = combine_results(runs)
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    failed = keyed[~(keyed["model"].eq("r4/B") & keyed["scenario"].eq("D1 (r1 + r4)"))]
    h = headline(failed, TASK, DATASET)
    assert h is not None and h.robustness is not None and len(h.shared) == 1
    assert "r4/B" in {s.model for s in h.robustness.ranked}
    assert h.shared[0].unranked == {"r4/B · M1": ["D1 (r1 + r4)"]}
    assert {s.model for s in h.shared[0].ranked} == {"r1/A", "r1/B", "r4/A"}
    cards = summary_cards(failed, TASK, DATASET, combine_validation(runs, prefix_models=True))
    assert "not ranked: r4/B · M1 (no Δ on D1 (r1 + r4))" in cards

    # r2 on another test set (other labels): r1 and r4, all the runs of their set, are ranked on D1 (r1 + r4)
    _splits(defined_runs["r2"], ["t1", "t2", "t3"], label="voice")
    try:
        text = table_command(dirs, "all_deform_all_models", "plain", task=TASK, headline=True)
    finally:
        _splits(defined_runs["r2"], ["t1", "t2", "t3"])
    assert f"  {TASK} — {DATASET}, accuracy in r1 + r4: best on clean " in text
    assert f"  most robust: {alike} (mean Δ {alike_mean} over 2 scenarios, " in text
    assert "left out" not in text and "which define D1 alike" not in text
    own, own_mean = _most_robust(csv, ["r2"], ["D1 (r2)", "D2"])
    assert f"  most robust: {own} (mean Δ {own_mean} over 2 scenarios, " in text


def test_a_scenario_a_run_names_like_a_per_run_column_is_not_taken_for_one(tmp_path):
    """A run may name a scenario ``D1 (r2)`` itself: r2's column of a D1 defined differently was given that name too,
    and its values were put in the same column as r1's own scenario — and that column was left out of the ranking
    as one kept apart. The kept-apart column gets a name no scenario has, and which columns are kept apart is carried
    with the results, never read from the names."""
    spec = dict(experiments=DEFAULT_EXPERIMENTS[:1], models=("A", "B"), model_quality={"A": 0.9, "B": 0.4},
                probes=("M1",), seeds=(0,), n_test=30, n_resamples=5)  # fmt: skip
    r1 = make_run_dir(tmp_path, FakeRunSpec(run_id="r1", scenarios=(CLEAN, "D1", "D1 (r2)"), **spec))
    r2 = make_run_dir(tmp_path, FakeRunSpec(run_id="r2", scenarios=(CLEAN, "D1"), **spec))
    _deformations(r1, [{"name": "D1", "steps": [_gain(-6, p=1)]}, {"name": "D1 (r2)", "steps": [_gain(-3, p=1)]}])
    _deformations(r2, [{"name": "D1", "steps": [_gain(-12, p=1)]}])
    df = combine_results(load_runs([r1, r2]))
    assert ordered_scenarios(df["scenario"].unique()) == [CLEAN, "D1 (r1)", "D1 (r2, definition 2)", "D1 (r2)"]
    assert set(df.loc[df["scenario"] == "D1 (r2)", "run_id"]) == {"r1"}  # r1's own scenario, r1's values alone
    assert set(df.loc[df["scenario"] == "D1 (r2, definition 2)", "run_id"]) == {"r2"}
    csv = pd.read_csv(io.StringIO(table_command([r1, r2], "robustness", "csv", task=TASK)))
    assert set(csv.loc[csv["accuracy:Δ D1 (r2)"].notna(), "run_id"]) == {"r1"}
    assert set(csv.loc[csv["accuracy:Δ D1 (r2, definition 2)"].notna(), "run_id"]) == {"r2"}
    text = table_command([r1, r2], "robustness", "markdown", task=TASK)
    assert (
        "D1 is defined differently by the runs (r1: Gain(max_gain_db=-6, min_gain_db=-6, p=1); r2 (column D1 (r2, "
        "definition 2)): Gain(max_gain_db=-12, min_gain_db=-12, p=1)): one column per run's definition"
    ) in text
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    h = headline(keyed, TASK, DATASET)
    assert h is not None and h.robustness is not None
    # r1's own scenario is not apart: it is one r2 has no results on, left out for that
    assert h.robustness.apart == ["D1"] and h.robustness.missing == {"D1 (r2)": ["r2"]}
    assert h.robustness.scenarios == []


def test_a_scenario_defined_differently_in_two_tasks_has_the_same_columns_in_each(tmp_path):
    """Two tasks whose runs define D1 differently alike: the second task's columns were named as if they clashed
    with the first's (``D1 (r1, definition 2)``), and its caption said so; one scenario and set of runs is one name
    across tasks."""
    spec = dict(experiments=DEFAULT_EXPERIMENTS, models=("A",), probes=("M1",), seeds=(0,), scenarios=(CLEAN, "D1"),
                n_test=10, n_resamples=3)  # fmt: skip
    dirs = []
    for run_id, db in (("r1", -6), ("r2", -12)):
        run = make_run_dir(tmp_path, FakeRunSpec(run_id=run_id, **spec))
        config = yaml.safe_load((run / "config.yaml").read_text())
        for experiment in config["experiments"]:
            experiment["deformations"] = [{"name": "D1", "steps": [_gain(db, p=1)]}]
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        dirs.append(run)
    df = combine_results(load_runs(dirs))
    for task in ("instrument_recognition", "autotagging"):
        assert ordered_scenarios(df.loc[df["task"] == task, "scenario"].unique()) == [CLEAN, "D1 (r1)", "D1 (r2)"]
    text = table_command(dirs, "robustness", "markdown", task="autotagging")
    assert "D1 is defined differently by the runs (r1: Gain(" in text and "(column " not in text, text


def test_runs_that_define_their_scenarios_alike_are_shown_as_before(defined_runs):
    r1, r3 = load_runs([defined_runs["r1"], defined_runs["r3"]])
    assert differing_scenarios([r1, r3]) == {}  # D1 named in one, by position in the other; 1 and 1.0
    both = combine_results([r1, r3])
    assert both.equals(pd.concat([r1.results, r3.results], ignore_index=True)) and not both.attrs
    assert "defined differently" not in make_table(both, "robustness", task=TASK).caption
    alone = combine_results([r1])
    assert alone.equals(r1.results) and set(alone["scenario"]) == {CLEAN, "D1", "D2"}


def test_a_scenario_only_some_runs_tested_is_left_out_of_their_ranking_not_their_models(tmp_path):
    """r1 and r3 tested D1 and D2, r2 D1 alone (its configuration has no D2): r2's models were named not ranked (no Δ
    on D2) in the ranking of all the runs, though measured on D1 as every other. The ranking is over D1, the scenario
    every run has, and says it left D2 out and why; the tables keep D2's column, r2's cells '–', and say why."""
    spec = dict(experiments=DEFAULT_EXPERIMENTS[:1], models=("A", "B"), model_quality={"A": 0.9, "B": 0.4},
                probes=("M1",), seeds=(0,), n_test=30, n_resamples=5)  # fmt: skip
    dirs = [
        make_run_dir(tmp_path, FakeRunSpec(run_id=r, scenarios=scenarios, seed=seed, **spec))
        for r, scenarios, seed in (
            ("r1", (CLEAN, "D1", "D2"), 0),
            ("r2", (CLEAN, "D1"), 1),
            ("r3", (CLEAN, "D1", "D2"), 2),
        )
    ]
    runs = load_runs(dirs)
    csv = pd.read_csv(io.StringIO(table_command(dirs, "robustness", "csv", task=TASK)))
    assert set(csv.loc[csv["accuracy:Δ D2"].notna(), "run_id"]) == {"r1", "r3"}  # D2's column: what exists
    assert csv["accuracy:Δ D1"].notna().all()
    every, every_mean = _most_robust(csv, ["r1", "r2", "r3"], ["D1"])
    df = combine_results(runs)
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    h = headline(keyed, TASK, DATASET)
    assert h is not None and h.robustness is not None and not h.shared
    assert h.robustness.scenarios == ["D1"] and h.robustness.missing == {"D2": ["r2"]} and not h.robustness.unranked
    assert {s.model for s in h.robustness.ranked} == {f"{r}/{m}" for r in ("r1", "r2", "r3") for m in ("A", "B")}
    line = summary_text(runs).splitlines()[1]
    assert line.startswith(f"  most robust: {every} (mean Δ {every_mean} over 1 scenario, ")
    assert line.endswith("; left out: D2 (no results in r2)") and "not ranked" not in line
    cards = summary_cards(keyed, TASK, DATASET, combine_validation(runs, prefix_models=True))
    assert f"<b>{every}</b><span>mean Δ {every_mean} over 1 scenario (D1), " in cards
    assert "left out: D2 (no results in r2)" in cards and "not ranked" not in cards
    plain = " ".join(table_command(dirs, "robustness", "plain", task=TASK).split())
    assert "runs without results on a scenario show –: D2 (no results in r2)" in plain
    assert "no results" not in make_table(df[df["run_id"] != "r2"], "robustness", task=TASK).caption
    # a metric r2's configuration did not list: its columns '–' in r2's rows, which the caption said nothing of
    caption = make_table(df[~(df["run_id"].eq("r2") & df["metric"].eq("f1_micro"))], "robustness", task=TASK).caption
    assert "runs without a metric show – in its columns: f1_micro (not computed in r2)" in caption, caption
    assert "without a metric" not in make_table(df, "robustness", task=TASK).caption

    # a model's failed cell is not a scenario its run lacks: it is named, not ranked, and D2 stays in the ranking
    failed = keyed[~(keyed["model"].eq("r3/B") & keyed["scenario"].eq("D1"))]
    r = headline(failed, TASK, DATASET).robustness  # type: ignore[union-attr]
    assert r is not None and r.scenarios == ["D1"] and r.unranked == {"r3/B · M1": ["D1"]}
    no_b = headline(keyed[~(keyed["model"].eq("r1/B") & keyed["scenario"].eq("D2"))], TASK, DATASET)
    assert no_b is not None and no_b.robustness is not None and no_b.robustness.missing == {"D2": ["r2"]}
    # a run of clean audio alone was compared on no scenario: the others are ranked on theirs, its models named
    clean_only = headline(keyed[~(keyed["run_id"].eq("r2") & keyed["scenario"].ne(CLEAN))], TASK, DATASET)
    assert clean_only is not None and clean_only.robustness is not None
    assert clean_only.robustness.scenarios == ["D1", "D2"] and not clean_only.robustness.missing
    assert clean_only.robustness.unranked == {"r2/A · M1": ["D1", "D2"], "r2/B · M1": ["D1", "D2"]}
    # no scenario every run tested: no ranking across the runs, and why
    disjoint = keyed[~(keyed["run_id"].eq("r1") & keyed["scenario"].eq("D1")) & keyed["run_id"].ne("r3")]
    h = headline(disjoint, TASK, DATASET)
    assert h is not None and h.robustness is not None and not h.robustness.ranked
    # (in the frame's order of scenarios: r1's D2 comes first there)
    assert robustness_facts(h.robustness) == ["not ranked across runs: D2 (no results in r2), D1 (no results in r1)"]


def test_a_scenario_defined_differently_and_one_a_run_lacks_are_both_left_out(defined_runs):
    """r1 and r4 define D1 alike, r2 otherwise, and r4 has no D2: the ranking of all three has no scenario left, and
    says why each is out; r1 and r4's own ranking is over their shared D1, D2 left out as r4 lacks it."""
    dirs = [defined_runs[r] for r in ("r1", "r2", "r4")]
    runs = load_runs(dirs)
    df = combine_results(runs)
    keyed = df.assign(model=df["run_id"] + "/" + df["model"])
    h = headline(keyed[~(keyed["run_id"].eq("r4") & keyed["scenario"].eq("D2"))], TASK, DATASET)
    assert h is not None and h.robustness is not None and len(h.shared) == 1
    assert robustness_facts(h.robustness, h.shared) == [
        "not ranked across runs: D1, defined differently by the runs (each definition has its own column; r1 + r4, "
        "which define it alike, ranked on it apart); D2 (no results in r4)"
    ]
    shared = h.shared[0]
    assert shared.scenarios == ["D1 (r1 + r4)"] and shared.missing == {"D2": ["r4"]} and len(shared.ranked) == 4
    assert robustness_facts(shared)[-1] == "left out: D2 (no results in r4)"


def test_a_scenario_defined_differently_is_not_one_the_runs_lack(defined_runs):
    """r1 and r2 define D1 differently: each has its own column, '–' in the other's rows, which the caption says is a
    definition apart. The note on scenarios only some runs tested took each definition's column for a scenario the
    other run lacked (`D1 (r1) (no results in r2), D1 (r2) (no results in r1)`), though both tested D1; a run with no
    D1 at all is still named."""
    df = combine_results(load_runs([defined_runs[r] for r in ("r1", "r2", "r4")]))
    caption = make_table(df, "robustness", task=TASK).caption
    assert "defined differently by the runs" in caption and "no results" not in caption, caption
    without = df[~(df["run_id"].eq("r4") & df["scenario"].eq("D1 (r1 + r4)"))]
    caption = make_table(without, "robustness", task=TASK).caption
    assert "runs without results on a scenario show –: D1 (no results in r4)" in caption, caption
