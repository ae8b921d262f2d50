"""Each model's probe is chosen on validation (the protocol), not on the clean test set, where the run records it."""

from __future__ import annotations

import html
import io

import pandas as pd
import pyarrow as pa
import pytest

from repeval.report import plots
from repeval.report.html import _confusion_block
from repeval.report.results import CLEAN, load_run
from repeval.report.selection import combine_validation
from repeval.report.summary import summary_cards
from repeval.report.tables import make_table, table_command
from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir

TASK, DATASET = "instrument_recognition", "tinysol"
PROBES = ("M1", "M2", "M5")


def _run(root, run_id, **kw):
    spec = FakeRunSpec(
        run_id=run_id, experiments=DEFAULT_EXPERIMENTS[:1], probes=PROBES, seeds=(0, 1), scenarios=(CLEAN,),
        n_test=60, n_resamples=10, **kw,
    )  # fmt: skip
    return make_run_dir(root, spec)


def _test_choice(results):
    """Per model, the probe with the best clean-test accuracy (what the report used to pick)."""
    sel = results[results["label"].isna() & (results["metric"] == "accuracy") & (results["scenario"] == CLEAN)]
    means = sel.groupby(["model", "probe"])["value"].mean()
    return {m: means.loc[m].idxmax() for m in dict.fromkeys(sel["model"])}


def _csv_probes(out):
    df = pd.read_csv(io.StringIO(out))
    return dict(zip(df["model"], df["probe"], strict=True))


@pytest.fixture(scope="module")
def val_run(tmp_path_factory):
    # M1 has by far the best validation criterion; on the test set the bigger probes win
    return load_run(_run(tmp_path_factory.mktemp("val"), "val", val_bias={"M1": 1.0}))


def test_validation_choice_wins_over_the_test_choice_in_tables_and_report(val_run):
    results, validation = val_run.results, combine_validation([val_run])
    by_test = _test_choice(results)
    assert set(by_test.values()) != {"M1"}  # the two rules disagree on these results
    t = make_table(results, "model_comparison", task=TASK, validation=validation)
    assert {m: p for m, p in t.rows} == dict.fromkeys(by_test, "M1")
    # the rule said once (it read "the best mean validation val_accuracy …, then tested once (chosen on validation)")
    assert (
        "per model the probe chosen on validation: the best mean val_accuracy over seeds (and folds), then tested once"
        in t.caption
    )
    assert t.caption.count("validation") == 1 and "test-set choice" not in t.caption
    # `repeval table` and the report's figures and summary card pick the same probe
    out = table_command([val_run.path], "model_comparison", "csv", task=TASK)
    assert set(_csv_probes(out).values()) == {"M1"}
    assert plots.best_probes(results, TASK, DATASET, "accuracy", validation) == dict.fromkeys(by_test, "M1")
    card = summary_cards(results, TASK, DATASET, validation)
    assert " · M1</b>" in card and "chosen on validation val_accuracy" in card
    block = _confusion_block([val_run], results, TASK, DATASET, False, validation)
    assert "chosen on validation val_accuracy" in block and all(f"{m} M1, clean" in block for m in by_test)


def test_differing_criteria_or_no_record_fall_back_to_the_test_choice_and_say_so(tmp_path):
    mixed = load_run(_run(tmp_path, "mixed", val_bias={"M1": 1.0}, save_criteria={"M2": "val_loss"}))
    by_test = _test_choice(mixed.results)
    t = make_table(mixed.results, "model_comparison", task=TASK, validation=combine_validation([mixed]))
    assert {m: p for m, p in t.rows} == by_test
    assert (
        "per model the probe chosen on clean test, a test-set choice: the best mean accuracy — validation criteria "
        "differ (val_accuracy, val_loss)" in t.caption
    )
    assert t.caption.count("chosen on") == 1 and "chosen on validation" not in t.caption

    old = _run(tmp_path, "old", val_bias={"M1": 1.0}, write_probes=False)  # a run from before probes/ existed
    assert load_run(old).validation is None
    out = table_command([old], "model_comparison", "plain", task=TASK)
    assert _test_choice(load_run(old).results) == by_test  # same seeds and qualities: same test choice
    assert (
        "chosen on clean test, a test-set choice: the best mean accuracy — the run directory has no validation record"
        in " ".join(out.split())
    )


def test_the_criterion_each_probe_recorded_decides_the_direction(tmp_path):
    """A preset's criterion depends on the task type (Jukemir: R² on a regression task) and is not in the run's
    config: the probes' files record it, and the report reads it there. Runs from before the column keep the
    config's (here the default, val_accuracy)."""
    import pyarrow.parquet as pq

    from repeval.report.selection import load_validation

    run = _run(tmp_path, "rec", val_bias={"M1": 1.0})
    for f in (run / "probes").glob("*.parquet"):
        table = pq.read_table(f)
        assert set(table.column("criterion").to_pylist()) == {None}  # not recorded: as before the column
        pq.write_table(table.set_column(table.schema.get_field_index("criterion"), "criterion",
                                        pa.array(["val_loss"] * len(table), pa.string())), f)  # fmt: skip
    loaded = load_run(run)
    val = load_validation(run, "rec", loaded.config, loaded.results)
    assert set(zip(val["criterion"], val["mode"], strict=True)) == {("val_loss", "min")}
    # M1 had the best (highest) criterion: with the recorded val_loss, lower is better — it is chosen last now
    t = make_table(loaded.results, "model_comparison", task=TASK, validation=combine_validation([loaded]))
    assert "chosen on validation: the best mean val_loss" in t.caption and "M1" not in {p for _, p in t.rows}


def test_confusion_block_shows_every_scenario_for_the_summary_cards_best_tied_ones_included(tmp_path):
    # two runs of the same results: every model is tied with its twin, so the best on clean is two models
    spec = dict(experiments=DEFAULT_EXPERIMENTS[:1], models=("A", "B"), model_quality={"A": 0.9, "B": 0.4},
                probes=("M1", "M2"), seeds=(0,), scenarios=(CLEAN, "D1"), n_test=30, n_resamples=5)  # fmt: skip
    runs = [load_run(make_run_dir(tmp_path, FakeRunSpec(run_id=r, **spec))) for r in ("r1", "r2")]
    df = pd.concat([r.results for r in runs], ignore_index=True)
    df = df.assign(model=df["run_id"] + "/" + df["model"])
    validation = combine_validation(runs, prefix_models=True)
    card = summary_cards(df, TASK, DATASET, validation)
    block = _confusion_block(runs, df, TASK, DATASET, True, validation)
    probe = plots.best_probes(df, TASK, DATASET, None, validation)["r1/A"]
    assert f"r1/A · {probe} = r2/A · {probe} (tied)" in card
    assert f"(r1/A · {probe} = r2/A · {probe} (tied))" in block
    for run in ("r1", "r2"):  # each tied best model: clean and D1; the other model: clean only
        assert f"{run}/A {probe}, D1, seed 0" in block and f"{run}/A {probe}, clean, seed 0" in block
        assert f"{run}/B " in block and f"{run}/B {plots.best_probes(df, TASK, DATASET)[f'{run}/B']}, D1" not in block


def test_a_probe_without_a_criterion_record_falls_back_to_the_test_choice(val_run):
    """Validation rows of probes whose record lacks the criterion (NaN after combining frames) are not a criterion
    of their own: the table falls back to the test-set choice and says why, instead of failing to sort them."""
    import numpy as np

    validation = combine_validation([val_run])
    gap = validation["probe"] == "M2"
    assert gap.any() and (~gap).any()
    validation.loc[gap, ["criterion", "mode"]] = np.nan
    t = make_table(val_run.results, "model_comparison", task=TASK, validation=validation)
    assert {m: p for m, p in t.rows} == _test_choice(val_run.results)
    assert "the run's config does not name its probes' validation criterion" in " ".join(t.caption.split())


def test_the_headline_says_why_the_tables_best_clean_cell_is_not_it(val_run):
    """The card and the run's closing line named the best model with its probe chosen on validation, while the
    all-probes table beside them flagged another probe's higher clean test value as best, unexplained. The headline
    stays the validation choice (a test-set pick must not make the "best" claim), and says which cell the tables
    flag and why it is not the headline; without a validation record both are the clean-test choice: no such note."""
    from repeval.report.summary import headline, passed_over_note, summary_lines

    results, validation = val_run.results, combine_validation([val_run])
    h = headline(results, TASK, DATASET, validation)
    assert h is not None and {p for _, p in h.best} == {"M1"}  # the validation choice
    table = make_table(results, "all_deform_all_models", task=TASK, dataset=DATASET, metrics=["accuracy"])
    flagged = table.to_frame().query("best and column == 'clean'")
    assert {(r.model, r.probe) for r in flagged.itertuples()} == set(h.test_best) and "M1" not in set(flagged["probe"])
    assert h.test_best_mean == pytest.approx(flagged["mean"].iloc[0])
    model, probe = h.test_best[0]
    note = passed_over_note(h)
    assert note == (
        f"the tables' best clean accuracy, {model} · {probe} {flagged['mean'].iloc[0]:.3f}, is a probe not chosen on "
        "validation for its model: naming it best would choose the probe on the test set"
    )
    card = summary_cards(results, TASK, DATASET, validation)
    assert f'<span class="rv-passed-over">{html.escape(note)}</span>' in card
    lines = summary_lines(h)
    assert lines[0].endswith("(each model's probe chosen on validation val_accuracy)") and lines[1] == "  " + note

    # chosen on the clean test set (no validation record): the headline is the flagged cell, nothing to explain
    by_test = headline(results, TASK, DATASET)
    assert by_test is not None and by_test.test_best == [] and passed_over_note(by_test) == ""
    assert set(by_test.best) == set(h.test_best)
    assert "rv-passed-over" not in summary_cards(results, TASK, DATASET)


def test_the_all_probes_tables_mark_the_probe_each_model_stands_with(val_run):
    """Beside the flag on each column's best value, the report's tables over every probe mark (✓) the probe each
    model stands with in the cards — validation's choice — and say what the mark is; over several runs too (rows
    lead with the run id, the cards name the models ``<run>/<model>``); a grid of one probe per model marks nothing."""
    import re

    from repeval.report.html import _table_block
    from repeval.report.summary import headline

    results, validation = val_run.results, combine_validation([val_run])
    models = set(results["model"])
    legend = "the probe each model stands with in the cards above, chosen on validation val_accuracy"
    h = headline(results, TASK, DATASET, validation)
    block = _table_block(results, "all_deform_all_models", TASK, DATASET, "All", chosen=h)
    marked = re.findall(r'<td data-value="([^"]*)">[^<]*</td><td class="rv-chosen" data-value="([^"]*)" title="([^"]*)"',
                        block)  # fmt: skip
    assert sorted((m, p) for m, p, _ in marked) == sorted((m, "M1") for m in models)
    assert {t for _, _, t in marked} == {legend} and f"✓: {legend}" in block

    two = pd.concat([results, results.assign(run_id="b")], ignore_index=True)
    both = pd.concat([validation, validation.assign(run_id="b")], ignore_index=True)
    keyed = headline(two.assign(model=two["run_id"] + "/" + two["model"]), TASK, DATASET,
                     both.assign(model=both["run_id"] + "/" + both["model"]))  # fmt: skip
    block = _table_block(two, "all_deform_all_models", TASK, DATASET, "All", chosen=keyed, prefixed=True)
    rows = re.findall(r'<tr><td data-value="([^"]*)">[^<]*</td><td data-value="([^"]*)">[^<]*</td><td class="rv-chosen"'
                      r' data-value="([^"]*)"', block)  # fmt: skip
    assert sorted(rows) == sorted((r, m, "M1") for r in ("val", "b") for m in models)

    one = results[results["probe"] == "M2"]
    block = _table_block(one, "all_deform_all_models", TASK, DATASET, "All", chosen=headline(one, TASK, DATASET))
    assert "rv-chosen" not in block and "✓" not in block


def test_a_probes_file_not_read_is_the_reason_given_for_its_test_choice(tmp_path):
    """A probes/ file not read (cut short here; another user's in the permission test) made the report say of its
    models' probes "the run directory has no validation record (probes/*.parquet)" — the wrong cause, while the note
    at the top had the real one. Now the per-model reason names the file and why it was not read."""
    import os

    run = _run(tmp_path, "cut", val_bias={"M1": 1.0})
    files = sorted((run / "probes").glob("*.parquet"))
    os.truncate(files[0], files[0].stat().st_size // 2)
    loaded = load_run(run)
    t = make_table(loaded.results, "model_comparison", task=TASK, validation=combine_validation([loaded]))
    assert f"its validation record could not be read ({files[0]}: cut short or corrupted)" in t.caption, t.caption
    assert "no validation record" not in t.caption


def test_a_file_in_place_of_the_probes_folder_is_said_with_the_fix(tmp_path):
    """A file where ``runs/<id>/probes/`` belongs read as no folder at all: the report chose every probe on clean test,
    saying only that the run has no validation record. It is now said — what is there, what that leaves out, the fix —
    and each model's reason names it."""
    import shutil

    run = _run(tmp_path, "filed", val_bias={"M1": 1.0})
    shutil.rmtree(run / "probes")
    (run / "probes").write_bytes(b"not a folder")
    loaded = load_run(run)
    said = [n for n in loaded.unread if str(run / "probes") in n]
    assert len(said) == 1, loaded.unread
    assert "it is a file, not a folder: move it aside" in said[0], said[0]
    assert "chosen on clean test" in said[0]
    t = make_table(loaded.results, "model_comparison", task=TASK, validation=combine_validation([loaded]))
    assert "no validation record" not in t.caption, t.caption
