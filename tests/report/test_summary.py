"""The headline of a task/dataset — best on clean, most robust — in the report's cards and the run's closing lines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repeval.report.render import render
from repeval.report.results import CLEAN, Run, load_run
from repeval.report.summary import headline, summary_cards, summary_lines, summary_text
from repeval.report.tables import make_table
from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

TASK, DATASET = "instrument_recognition", "tinysol"
A, B, C = "mert-v1-95m-6", "msd-musicnn", "logmel-stats"

#: accuracy per (model, probe), scenario and seed (0, 1). A·M2 is best on clean and best under deformation; B·M5
#: loses least; A·M1 loses nothing but is not A's chosen probe (M2 is better on clean), so it stands for nothing
ACCURACY = {
    (A, "M1"): {CLEAN: [0.90, 0.90], "D1": [0.90, 0.90], "D2": [0.90, 0.90]},
    (A, "M2"): {CLEAN: [0.96, 0.94], "D1": [0.86, 0.84], "D2": [0.82, 0.80]},
    (A, "M5"): {CLEAN: [0.50, 0.50], "D1": [0.40, 0.40], "D2": [0.40, 0.40]},
    (B, "M1"): {CLEAN: [0.70, 0.70], "D1": [0.40, 0.40], "D2": [0.40, 0.40]},
    (B, "M2"): {CLEAN: [0.60, 0.60], "D1": [0.40, 0.40], "D2": [0.40, 0.40]},
    (B, "M5"): {CLEAN: [0.80, 0.78], "D1": [0.78, 0.76], "D2": [0.76, 0.72]},
    (C, "M1"): {CLEAN: [0.62, 0.58], "D1": [0.42, 0.38], "D2": [0.42, 0.38]},
    (C, "M2"): {CLEAN: [0.50, 0.50], "D1": [0.30, 0.30], "D2": [0.30, 0.30]},
    (C, "M5"): {CLEAN: [0.55, 0.55], "D1": [0.35, 0.35], "D2": [0.35, 0.35]},
}
#: B·M5's D2 Δ of seed 1 as the run paired it: two tracks failed to deform, Δ over the other 88 is −0.04 (the
#: values' difference, each over its own tracks, is −0.06)
PAIRED = {(B, "M5", "D2", 1): (-0.04, 88)}


def _set(df: pd.DataFrame, values: dict, paired: dict) -> pd.DataFrame:
    """``df`` with the aggregate ``metric`` rows set to ``values`` and their Δ as a run records it: deformed minus
    clean on the same tracks (``paired``: a Δ, and the tracks it is over, where tracks were left out)."""
    df = df.copy()
    metric = next(iter(dict.fromkeys(df.loc[df["label"].isna(), "metric"])))
    agg = df["label"].isna() & (df["metric"] == metric)
    for (model, probe), per in values.items():
        for scenario, seeds in per.items():
            for seed, v in enumerate(seeds):
                row = agg & (df["model"] == model) & (df["probe"] == probe) & (df["scenario"] == scenario)
                row &= df["seed"] == seed
                assert row.sum() == 1, (model, probe, scenario, seed)
                df.loc[row, "value"] = v
    clean = df[agg & (df["scenario"] == CLEAN)].set_index(["model", "probe", "seed"])["value"]
    deformed = agg & (df["scenario"] != CLEAN)
    keys = zip(df.loc[deformed, "model"], df.loc[deformed, "probe"], df.loc[deformed, "seed"], strict=True)
    df.loc[deformed, "delta"] = df.loc[deformed, "value"].to_numpy() - np.array([clean[k] for k in keys])
    for (model, probe, scenario, seed), (delta, n) in paired.items():
        row = agg & (df["model"] == model) & (df["probe"] == probe) & (df["scenario"] == scenario)
        df.loc[row & (df["seed"] == seed), ["delta", "n_delta", "n_test"]] = [delta, n, n]
    return df


@pytest.fixture(scope="module")
def results(run_dir) -> pd.DataFrame:
    """The session run's real results.parquet (clean, D1, D2; seeds 0, 1), the task's accuracy set to ACCURACY."""
    df = load_run(run_dir).results
    return _set(df[df["task"] == TASK], ACCURACY, PAIRED)


def _card(cards: str, kind: str) -> str:
    found = re.findall(rf'<div class="rv-card[^"]*"><span>{kind}[^<]*</span>.*?</div>', cards)
    assert len(found) <= 1, found
    return found[0] if found else ""


def _cells(results: pd.DataFrame, preset: str) -> dict[tuple[str, str, str], float]:
    """``(model, probe, column) → mean`` of a table of the accuracy."""
    t = make_table(results, preset, task=TASK, dataset=DATASET, metrics=["accuracy"]).to_frame()
    return {(r.model, r.probe, r.column): r.mean for r in t.itertuples()}


def test_best_on_clean_and_most_robust_are_different_models_with_the_robustness_tables_numbers(results):
    cards = summary_cards(results, TASK, DATASET)
    clean, robust = _card(cards, "best on clean"), _card(cards, "most robust")
    assert f"<b>{A} · M2</b><span>0.950 ± 0.014 over 2 seeds" in clean
    assert f"<span>most robust: accuracy deformed − clean</span><b>{B} · M5</b>" in robust
    # Δ D1 −0.02 (both seeds), Δ D2 −0.04 (paired; the values' difference would give −0.05): mean −0.03
    assert "mean Δ −0.030 over 2 scenarios (D1, D2)" in robust and "worst D2 −0.040" in robust
    assert f"best mean deformed accuracy: {A} · M2 (0.830), a different model" in robust
    # exactly the robustness table's Δ cells and the all-scenarios table's cells, of each model's chosen probe
    h = headline(results, TASK, DATASET)
    assert h is not None and h.robustness is not None
    delta, value = _cells(results, "robustness"), _cells(results, "all_deform_all_models")
    assert {(s.model, s.probe) for s in h.robustness.ranked} == {(A, "M2"), (B, "M5"), (C, "M1")}
    for s in h.robustness.ranked:
        for scenario in ("D1", "D2"):
            assert s.deltas[scenario] == pytest.approx(delta[(s.model, s.probe, f"Δ {scenario}")], abs=1e-12)
            assert s.deformed[scenario] == pytest.approx(value[(s.model, s.probe, scenario)], abs=1e-12)
    assert delta[(B, "M5", "Δ D2")] == pytest.approx(-0.04)
    # the same facts after the results table of `repeval run` / `repeval evaluate`
    assert summary_lines(h) == [
        f"{TASK} — {DATASET}, accuracy: best on clean {A} · M2 0.950 ± 0.014 (each model's probe chosen on clean "
        "test accuracy, a test-set choice: the run directory has no validation record (probes/*.parquet))",
        f"  most robust: {B} · M5 (mean Δ −0.030 over 2 scenarios, worst D2 −0.040); best mean deformed accuracy: "
        f"{A} · M2 (0.830), a different model",
    ]
    assert summary_text([Run("demo", Path("."), results)]) == "\n".join(summary_lines(h))


def test_folds_seeds_failed_cells_ties_and_a_single_model(results):
    # folds: each replicate (seed × fold) counts once, as in the tables; fold 1 loses 0.02 less on B's D1
    folds = pd.concat([results.assign(fold=0), results.assign(fold=1)], ignore_index=True).astype({"fold": "Int64"})
    b_d1 = (folds["model"] == B) & (folds["probe"] == "M5") & (folds["scenario"] == "D1") & (folds["fold"] == 1)
    folds.loc[b_d1 & folds["label"].isna() & (folds["metric"] == "accuracy"), "delta"] = 0.0
    robust = _card(summary_cards(folds, TASK, DATASET), "most robust")
    assert f"<b>{B} · M5</b>" in robust and "mean Δ −0.025 over 2 scenarios" in robust  # D1 −0.01, D2 −0.04
    assert _cells(folds, "robustness")[(B, "M5", "Δ D1")] == pytest.approx(-0.01)

    # a failed test cell (no value, no Δ) of one seed: the mean over the other, as the table's cell
    acc = results["label"].isna() & (results["metric"] == "accuracy")
    one = results.copy()
    one.loc[acc & (one["model"] == B) & (one["scenario"] == "D1") & (one["seed"] == 1), ["value", "delta"]] = np.nan
    assert "mean Δ −0.030" in _card(summary_cards(one, TASK, DATASET), "most robust")
    # …of every seed on one scenario: B has no Δ there, so it is not ranked (its mean would be over D1 alone)
    failed = results.copy()
    failed.loc[acc & (failed["model"] == B) & (failed["scenario"] == "D2"), ["value", "delta"]] = np.nan
    robust = _card(summary_cards(failed, TASK, DATASET), "most robust")
    assert f"<b>{A} · M2</b>" in robust and "mean Δ −0.120 over 2 scenarios" in robust and "worst D2 −0.140" in robust
    assert "also the best mean deformed accuracy (0.830)" in robust and "a different model" not in robust
    assert f"not ranked: {B} · M5 (no Δ on D2)" in robust
    # …and of every model: no headline, the reason
    failed.loc[acc & (failed["scenario"] == "D2"), ["value", "delta"]] = np.nan
    robust = _card(summary_cards(failed, TASK, DATASET), "most robust")
    assert "<b>–</b><span>no model has a change on every scenario: " in robust and f"{C} · M1 (no Δ on D2)" in robust

    # a tie: A loses exactly what B loses; both are named, each with its worst scenario
    tied = _set(results, {(A, "M2"): {"D1": [0.94, 0.92], "D2": [0.92, 0.90]}}, PAIRED)
    robust = _card(summary_cards(tied, TASK, DATASET), "most robust")
    assert f"<b>{A} · M2 = {B} · M5 (tied)</b>" in robust and f"worst {A} D2 −0.040, {B} D2 −0.040" in robust
    # …and on clean audio
    tied = _set(results, {(B, "M5"): {CLEAN: [0.96, 0.94]}}, PAIRED)
    clean = _card(summary_cards(tied, TASK, DATASET), "best on clean")
    assert f"<b>{A} · M2 = {B} · M5 (tied)</b><span>0.950 each over 2 seeds" in clean

    # one model: nothing to be more robust than; its change is still the headline
    alone = results[results["model"] == A]
    card = _card(summary_cards(alone, TASK, DATASET), "under deformation")
    assert f"<b>{A} · M2</b>" in card and "mean Δ −0.120 over 2 scenarios" in card and "best mean" not in card
    h = headline(alone, TASK, DATASET)
    assert h is not None and summary_lines(h)[1] == (
        f"  under deformation: {A} · M2 (mean Δ −0.120 over 2 scenarios, worst D2 −0.140)"
    )
    # scenarios tied for the worst are all named: "worst D1" alone read as worse than D2, which lost as much
    even = _set(alone, {(A, "M2"): {"D1": [0.82, 0.80]}}, PAIRED)
    h = headline(even, TASK, DATASET)
    assert h is not None and summary_lines(h)[1] == (
        f"  under deformation: {A} · M2 (mean Δ −0.140 over 2 scenarios, worst D1 = D2 −0.140 (tied))"
    )
    assert "worst D1 = D2 −0.140 (tied)" in _card(summary_cards(even, TASK, DATASET), "under deformation")


def test_a_group_without_deformations_has_no_robustness_card_nor_line(results):
    clean = results[results["scenario"] == CLEAN]
    cards = summary_cards(clean, TASK, DATASET)
    assert f"<b>{A} · M2</b>" in _card(cards, "best on clean") and cards.count('class="rv-card') == 3
    assert "Δ" not in cards and not _card(cards, "most robust") and not _card(cards, "under deformation")
    h = headline(clean, TASK, DATASET)
    assert h is not None and h.robustness is None and len(summary_lines(h)) == 1


def test_an_error_metric_is_most_robust_where_it_grows_least(tmp_path):
    """For a regression error (lower is better) a loss is a positive Δ: the most robust model grows its error least,
    the best on clean has the lowest error."""
    exp = FakeExperiment("emotion", "regression", "deam", 2, ("mean_absolute_error", "r2"))
    spec = FakeRunSpec(run_id="reg", experiments=(exp,), models=(A, B), probes=("M1",), scenarios=(CLEAN, "D1", "D2"),
                       n_test=20, n_resamples=10)  # fmt: skip
    df = load_run(make_run_dir(tmp_path, spec)).results
    mae = {
        (A, "M1"): {CLEAN: [0.50, 0.50], "D1": [0.70, 0.70], "D2": [0.80, 0.80]},
        (B, "M1"): {CLEAN: [0.60, 0.60], "D1": [0.65, 0.65], "D2": [0.62, 0.62]},
    }
    df = _set(df, mae, {})
    cards = summary_cards(df, "emotion", "deam")
    assert f"<b>{A} · M1</b><span>0.500 ± 0.000 over 2 seeds" in _card(cards, "best on clean")
    assert "best on clean mean_absolute_error (lower is better)" in cards
    robust = _card(cards, "most robust")
    assert f"<b>{B} · M1</b>" in robust and "mean Δ +0.035 over 2 scenarios" in robust and "worst D1 +0.050" in robust
    assert "also the best mean deformed mean_absolute_error (0.635)" in robust
    h = headline(df, "emotion", "deam")
    assert h is not None and summary_lines(h) == [
        f"emotion — deam, mean_absolute_error (lower is better): best on clean {A} · M1 0.500 ± 0.000 (each model's "
        "probe chosen on clean test mean_absolute_error, a test-set choice: the run directory has no validation record "
        "(probes/*.parquet))",
        f"  most robust: {B} · M1 (mean Δ +0.035 over 2 scenarios, worst D1 +0.050); also the best mean deformed "
        "mean_absolute_error (0.635)",
    ]


def test_a_report_computes_each_sections_headline_once_and_draws_each_figure_once(run_dir, monkeypatch):
    """CPU of `repeval report` went to work done again: a section's headline (the probe choice, the robustness
    rankings) was computed by its cards, its tables' marks, its per-label tables and its confusion matrices — four
    times — and each figure was drawn twice (savefig lays a figure out in a draw of its own before rendering it)."""
    from matplotlib.figure import Figure

    from repeval.report import summary
    from repeval.report.html import build_report_html
    from repeval.report.results import groups, load_runs

    runs = load_runs([run_dir])
    headlines, draws = [], []
    compute, draw = summary.headline, Figure.draw
    monkeypatch.setattr(summary, "headline", lambda *a, **k: headlines.append(a[1:3]) or compute(*a, **k))
    monkeypatch.setattr(Figure, "draw", lambda fig, renderer: draws.append(fig) or draw(fig, renderer))
    page = build_report_html(runs)
    assert sorted(headlines) == sorted(groups(runs[0].results)), headlines  # one per task/dataset section
    assert draws and len(draws) == len({id(fig) for fig in draws}), draws  # (kept alive: no id is reused)
    assert len(draws) == page.count("data:image/png;base64,")  # every figure on the page, drawn once


def test_the_headlines_best_reads_at_its_table_columns_precision(tmp_path):
    """The headline said its best on clean alone, at the precision of a column of that one value: an MAE of 12.345
    beside another model's 1234.5 read ``12.35 ± 0.00`` in the headline and ``12`` in the table's clean column. It
    reads at the column's precision now, as the table shows it."""
    exp = FakeExperiment("emotion", "regression", "deam", 2, ("mean_absolute_error", "r2"))
    spec = FakeRunSpec(run_id="reg", experiments=(exp,), models=(A, B), probes=("M1",), scenarios=(CLEAN, "D1"),
                       n_test=20, n_resamples=10)  # fmt: skip
    df = load_run(make_run_dir(tmp_path, spec)).results
    mae = {
        (A, "M1"): {CLEAN: [12.345, 12.345], "D1": [13.0, 13.0]},
        (B, "M1"): {CLEAN: [1234.5, 1234.5], "D1": [1300.0, 1300.0]},
    }
    df = _set(df, mae, {})
    table = make_table(df, "model_comparison", task="emotion", metrics=["mean_absolute_error"])
    shown = render(table, "markdown")
    assert f"| {A} | M1 | **12 ± 0** |" in shown, shown
    h = headline(df, "emotion", "deam")
    assert h is not None and f"best on clean {A} · M1 12 ± 0 " in summary_lines(h)[0], summary_lines(h)
