"""Table presets, best-value highlighting and every output format."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from repeval.report.render import PM_KEPT as PM_HTML
from repeval.report.render import render
from repeval.report.results import RESULT_COLUMNS, load_run, normalise_results
from repeval.report.tables import POOLED_LEGEND, make_table, table_command

TASK = "instrument_recognition"


@pytest.fixture(scope="module")
def results(run_dir):
    return load_run(run_dir).results


def _manual(results, metric, scenario, model, probe):
    sel = results[
        results["label"].isna()
        & (results["task"] == TASK)
        & (results["metric"] == metric)
        & (results["scenario"] == scenario)
        & (results["model"] == model)
        & (results["probe"] == probe)
    ]
    return sel.set_index("seed")["value"]


def test_all_deform_all_models_cells_are_seed_mean_and_std(results):
    t = make_table(results, "all_deform_all_models", task=TASK)
    assert t.row_names == ["model", "probe"]
    assert len(t.rows) == 3 * 3
    assert [p for _, p in t.rows[:3]] == ["M1", "M2", "M5"]
    assert t.columns[:3] == [("accuracy", "clean"), ("accuracy", "D1"), ("accuracy", "D2")]
    for i, (model, probe) in enumerate(t.rows):
        for j, (metric, scenario) in enumerate(t.columns):
            v = _manual(results, metric, scenario, model, probe)
            assert t.mean[i, j] == pytest.approx(v.mean())
            assert t.std[i, j] == pytest.approx(v.std(ddof=1))
            assert t.n[i, j] == t.n_seeds[i, j] == 2 and t.n_folds[i, j] == 1
    # best flags: exactly the column maxima
    for j in range(len(t.columns)):
        assert t.best[:, j].any()
        np.testing.assert_array_equal(t.best[:, j], np.isclose(t.mean[:, j], t.mean[:, j].max(), rtol=0, atol=1e-12))


def test_a_cells_n_counts_its_replicates_and_says_of_how_many_seeds_and_folds(results):
    """Cells said "n_seeds" (CSV ``:n_seeds``, the HTML tooltips) of what was the count of replicates, seeds × folds: a
    k-fold run of 2 seeds × 3 folds read as 6 seeds. ``n`` is the replicates now (as a cell's ``(n=…)``), with the
    seeds and folds of those beside it, in every preset, the CSV and the tooltips."""
    one = results[results["task"] == TASK]
    folds = pd.concat([one.assign(fold=f, value=one["value"] + 0.01 * f) for f in range(3)], ignore_index=True)
    for preset in ("all_deform_all_models", "model_comparison", "robustness"):
        t = make_table(folds, preset, task=TASK)
        assert (t.n == 6).all() and (t.n_seeds == 2).all() and (t.n_folds == 3).all(), preset
    t = make_table(folds, "all_deform_all_models", task=TASK)
    assert t.replicates == "2 seeds × 3 folds"
    row = next(csv.DictReader(io.StringIO(render(t, "csv"))))
    assert (row["accuracy:clean:n"], row["accuracy:clean:n_seeds"], row["accuracy:clean:n_folds"]) == ("6", "2", "3")
    tips = _Cells()
    tips.feed(render(t, "html"))
    assert tips.rows[0][2][1]["title"].startswith("n=6 replicates (2 seeds × 3 folds); 95% bootstrap CI")
    frame = t.to_frame()
    assert (frame["n"] == 6).all() and (frame["n_seeds"] == 2).all() and (frame["n_folds"] == 3).all()
    # one split: a seed left without a value (a failed training) counts in neither n nor n_seeds
    gone = one[~((one["model"] == "msd-musicnn") & (one["probe"] == "M1") & (one["seed"] == 1))]
    t = make_table(gone, "all_deform_all_models", task=TASK)
    i = t.rows.index(("msd-musicnn", "M1"))
    assert (t.n[i, 0], t.n_seeds[i, 0], t.n_folds[i, 0]) == (1, 1, 1)
    assert "(n=1)" in render(t, "md") and "n=1 replicate (1 seed)" in render(t, "html")


def test_model_comparison_picks_best_clean_probe(results):
    t = make_table(results, "model_comparison", task=TASK)
    assert t.row_names == ["model", "probe"]
    assert [c for c, _ in t.columns] == ["accuracy", "f1_macro", "f1_micro"]
    for i, (model, probe) in enumerate(t.rows):
        means = {p: _manual(results, "accuracy", "clean", model, p).mean() for p in ("M1", "M2", "M5")}
        assert probe == max(means, key=means.get)
        assert t.mean[i, 0] == pytest.approx(means[probe])
    assert "test-set choice" in t.caption


def test_robustness_deltas_are_paired_by_seed(results):
    t = make_table(results, "robustness", task=TASK, metrics=["accuracy"])
    assert t.columns == [("accuracy", "clean"), ("accuracy", "Δ D1"), ("accuracy", "Δ D2")]
    assert t.delta == [False, True, True]
    model, probe = t.rows[0]
    clean = _manual(results, "accuracy", "clean", model, probe)
    d2 = _manual(results, "accuracy", "D2", model, probe)
    diff = (d2 - clean).dropna()
    assert t.mean[0, 2] == pytest.approx(diff.mean())
    assert t.std[0, 2] == pytest.approx(diff.std(ddof=1))


def test_robustness_caption_says_which_deltas_left_tracks_out_over_folds_and_seeds(results):
    """Δ is the results' ``delta`` (both metrics on the tracks scored clean and deformed); the caption names, per
    scenario and model, the most tracks a Δ left out — over a k-fold dataset's folds, each track tested in one."""
    folds = pd.concat([results.assign(fold=k, n_test=30, n_delta=results["n_delta"].where(
        results["n_delta"].isna(), 30)) for k in range(3)], ignore_index=True).astype({"fold": "Int64"})  # fmt: skip
    lost = (folds["model"] == "msd-musicnn") & (folds["scenario"] == "D1") & (folds["fold"] == 1)
    folds.loc[lost, ["n_test", "n_delta"]] = 28  # two tracks failed to deform in fold 1: Δ over the other 28
    folds.loc[lost & (folds["seed"] == 1), ["n_test", "n_delta"]] = 29  # (as if) one for the other seed: the most
    folds.loc[lost & (folds["probe"] == "M1") & (folds["seed"] == 0), "delta"] = 1.0
    t = make_table(folds, "robustness", task=TASK, metrics=["accuracy"])
    assert t.caption == (
        "Δ = deformed minus clean on the same test tracks, paired by seed and fold; test tracks left out of Δ (scored "
        "clean or deformed only): D1 2 for msd-musicnn (Δ over 88)"
    )
    i, j = t.rows.index(("msd-musicnn", "M1")), t.columns.index(("accuracy", "Δ D1"))
    per = folds[folds["label"].isna() & (folds["metric"] == "accuracy") & (folds["model"] == "msd-musicnn")
                & (folds["probe"] == "M1") & (folds["scenario"] == "D1")]  # fmt: skip
    assert t.mean[i, j] == pytest.approx(per["delta"].mean()) and (per["delta"] == 1.0).sum() == 1


def test_robustness_of_results_written_before_delta_says_where_the_test_sets_differ(results):
    """Results without ``delta`` (an earlier repeval) subtract the values, as before, and the caption says which
    scenario's test set held other tracks than clean's."""
    old = results.drop(columns=["delta", "n_delta"])
    old.loc[(old["model"] == "msd-musicnn") & (old["scenario"] == "D1"), "n_test"] = 87
    df = normalise_results(old)
    assert df["n_delta"].isna().all() and df["delta"].isna().all()
    t = make_table(df, "robustness", task=TASK, metrics=["accuracy"])
    model, probe = t.rows[0]
    diff = (_manual(df, "accuracy", "D2", model, probe) - _manual(df, "accuracy", "clean", model, probe)).dropna()
    assert t.mean[0, 2] == pytest.approx(diff.mean())
    assert t.caption.endswith(
        "; Δ over test sets of different tracks (results of an earlier repeval, which did not pair Δ on the same "
        "tracks; a new run does): D1 87 against 90 clean for msd-musicnn"
    )


def test_lower_is_better_metric_highlights_the_minimum():
    rows = []
    for model, value in [("a", 0.3), ("b", 0.1), ("c", 0.2)]:
        rows.append(
            dict(run_id="r", task="tempo", task_type="regression", dataset="d", model=model, probe="M1", seed=0,
                 scenario="clean", metric="mean_squared_error", label=None, value=value, ci_low=None, ci_high=None,
                 n_test=10)
        )  # fmt: skip
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    t = make_table(df, "all_deform_all_models")
    assert t.best[:, 0].tolist() == [False, True, False]
    assert np.isnan(t.std).all()  # one seed: no std
    md = render(t, "markdown")
    assert "| b | M1 | **0.100** |" in md
    with pytest.raises(ValueError, match="needs clean and deformed"):
        make_table(df, "robustness")


def test_a_value_that_rounds_to_zero_prints_without_a_sign():
    """A Δ (or a value) that rounds to zero is ``0.000`` — never ``−0.000`` nor ``+0.000`` — in every format; a Δ
    that does not round to zero keeps its sign."""
    cell = dict(run_id="r", task="tempo", task_type="regression", dataset="d", probe="M1", seed=0, metric="r2",
                label=None, ci_low=None, ci_high=None, n_test=10)  # fmt: skip
    pairs = [("a", 0.5, 0.5 - 1e-15), ("b", 0.5, 0.5 + 1e-15), ("c", 0.5, 0.5), ("d", 0.5, 0.52), ("e", -1e-15, -0.03)]
    rows = [
        {**cell, "model": model, "scenario": scenario, "value": value}
        for model, clean, deformed in pairs
        for scenario, value in (("clean", clean), ("D1", deformed))
    ]
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    t = make_table(df, "robustness")
    md = render(t, "markdown").splitlines()
    assert md[-5:] == [
        "| a | M1 | **0.500** | 0.000 |",
        "| b | M1 | **0.500** | 0.000 |",
        "| c | M1 | **0.500** | 0.000 |",
        "| d | M1 | **0.500** | **+0.020** |",
        "| e | M1 | 0.000 | −0.030 |",  # a clean value of −1e-15 (noise) is not −0.000 either
    ]
    for fmt in ("plain", "html", "latex"):
        text = render(t, fmt)
        assert "−0.000" not in text and "-0.000" not in text and "+0.000" not in text, fmt


def test_each_column_shows_its_values_at_a_precision_of_their_own(tmp_path):
    """Every cell had three decimals: a regression's MSE read ``1200000.000 ± 200000.000`` and a change of R² under
    deformation too small for three decimals ``−0.000``. A column's decimals now come from its values (a score within
    ±1 keeps three; larger values four significant digits; a column of tiny values its largest's two), its means and
    stds alike, in every format; ``--decimals`` sets them all."""
    from typer.testing import CliRunner

    from repeval.cli import app

    cell = dict(run_id="r", task="tempo", task_type="regression", dataset="d", probe="M1", label=None, ci_low=None,
                ci_high=None, n_test=10)  # fmt: skip
    clean = {
        ("a", "mean_squared_error"): [1_000_000.0, 1_200_000.0, 1_400_000.0],
        ("b", "mean_squared_error"): [2500.0, 2600.0, 2700.0],
        ("a", "r2"): [0.5, 0.6, 0.7],
        ("b", "r2"): [0.9, 0.91, 0.92],
    }
    change = {"a": -0.0004, "b": -0.0002}  # R² under D1; the MSE rises by 30.25
    rows = [
        {**cell, "model": model, "metric": metric, "seed": seed, "scenario": scenario, "value": value + shift}
        for (model, metric), values in clean.items()
        for seed, value in enumerate(values)
        for scenario, shift in (("clean", 0.0), ("D1", change[model] if metric == "r2" else 30.25))
    ]
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    md = render(make_table(df, "robustness", metrics=["mean_squared_error", "r2"]), "markdown").splitlines()
    assert md[-2:] == [
        "| a | M1 | 1200000 ± 200000 | +30.25 ± 0.00 | 0.600 ± 0.100 | −0.00040 ± 0.00000 |",  # (a tie: no best)
        "| b | M1 | **2600 ± 100** | +30.25 ± 0.00 | **0.910 ± 0.010** | **−0.00020 ± 0.00000** |",
    ], md
    t = make_table(df, "all_deform_all_models")
    for fmt in ("plain", "html", "latex"):
        assert "1200000 ± 200000" in render(t, fmt).replace(PM_HTML, " ± ").replace("$\\pm$", "±"), fmt
    assert "1200000.000 ± 200000.000" in render(t, "markdown", decimals=3)  # --decimals: every column alike
    df.to_parquet(tmp_path / "results.parquet")
    (tmp_path / "config.yaml").write_text("experiments: []\n")
    for given, cells in (([], "2600 ± 100"), (["--decimals", "1"], "2600.0 ± 100.0")):
        res = CliRunner().invoke(app, ["table", str(tmp_path), "--format", "markdown", *given])
        assert res.exit_code == 0 and f"| b | M1 | **{cells}** |" in res.output, res.output
    said = " ".join(CliRunner().invoke(app, ["table", str(tmp_path), "--format", "plain"]).output.split())
    assert "(lower is better): best on clean b · M1 2600 ± 100 (" in said, said  # the headline's value too


def test_scale_multiplies_scores_not_errors_and_the_caption_says_so(results):
    """``--scale 100`` multiplied every column: an MSE of 0.385 read ``38.500`` beside R² in percent, and no caption
    said the values were scaled. Scores (and their changes) are multiplied now, errors keep the target's units, and
    the caption says which; CSV scales the same columns."""
    cell = dict(run_id="r", task="tempo", task_type="regression", dataset="d", probe="M1", seed=0, label=None,
                ci_low=None, ci_high=None, n_test=10)  # fmt: skip
    values = {("a", "mean_squared_error"): (0.385, 0.4), ("a", "r2"): (0.61, 0.55)}
    rows = [
        {**cell, "model": model, "metric": metric, "scenario": scenario, "value": value}
        for (model, metric), pair in values.items()
        for scenario, value in zip(("clean", "D1"), pair, strict=True)
    ]
    t = make_table(pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), "robustness", metrics=["mean_squared_error", "r2"])
    md = render(t, "markdown", scale=100).splitlines()
    assert md[-1] == "| a | M1 | 0.385 | +0.015 | 61.000 | −6.000 |", md  # one model: none the best
    assert "r2 ×100; mean_squared_error as computed (an error in the target's units)" in md[0]
    for fmt in ("plain", "latex", "html"):
        assert "mean_squared_error as computed" in render(t, fmt, scale=100).replace("\\_", "_"), fmt
    csv = pd.read_csv(io.StringIO(render(t, "csv", scale=100)))
    assert csv["mean_squared_error:clean"].tolist() == [0.385] and csv["r2:clean"].tolist() == [61.0]
    assert "×" not in render(t, "markdown")  # unscaled: nothing said
    scores = make_table(results, "robustness", task=TASK, metrics=["accuracy"])
    assert "values ×100" in render(scores, "markdown", scale=100).splitlines()[0]


def test_errors_name_the_choices(results):
    with pytest.raises(ValueError, match="did you mean 'robustness'"):
        make_table(results, "robustnes", task=TASK)
    with pytest.raises(ValueError, match="several task/dataset pairs"):
        make_table(results, "all_deform_all_models")
    with pytest.raises(ValueError, match="did you mean 'markdown'"):
        table_command([], "robustness", "markdwn")
    for scale in (0.0, -100.0, float("nan")):  # every cell 0.000, or signs flipped under the unflipped best marks
        with pytest.raises(ValueError, match="--scale must be a positive factor"):
            table_command([], "robustness", "markdown", scale=scale)


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows: list[list[tuple[str, dict]]] = []
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self.rows[-1].append(("", dict(attrs)))

    def handle_data(self, data):
        if self._in_body and self.rows and self.rows[-1]:
            text, attrs = self.rows[-1][-1]
            self.rows[-1][-1] = (text + data, attrs)


def test_formats(results):
    t = make_table(results, "all_deform_all_models", task=TASK, metrics=["accuracy"])
    best_row = int(np.argmax(t.mean[:, 0]))
    best_text = f"{t.mean[best_row, 0]:.3f} ± {t.std[best_row, 0]:.3f}"

    md = render(t, "md")
    assert f"**{best_text}**" in md and md.count("**") == 2 * (t.best.sum() + 1)

    tex = render(t, "latex")
    assert r"\textbf{" + best_text.replace(" ± ", r" $\pm$ ") + "}" in tex
    assert tex.count("{") == tex.count("}") and r"\multicolumn{3}{c}{accuracy}" in tex
    assert "mert-v1-95m-6 & M1" in tex and "\n & M2 &" in tex  # model printed once per block

    parsed = list(csv.DictReader(io.StringIO(render(t, "csv"))))
    assert len(parsed) == len(t.rows)
    assert float(parsed[best_row]["accuracy:clean"]) == pytest.approx(t.mean[best_row, 0])
    assert float(parsed[best_row]["accuracy:clean:std"]) == pytest.approx(t.std[best_row, 0])

    p = _Cells()
    p.feed(render(t, "html"))
    assert len(p.rows) == len(t.rows)
    best_cells = [
        (i, j) for i, row in enumerate(p.rows) for j, (_, a) in enumerate(row) if "best" in a.get("class", "")
    ]
    assert (best_row, 2) in best_cells
    assert float(p.rows[best_row][2][1]["data-value"]) == pytest.approx(t.mean[best_row, 0])
    assert "bootstrap CI" in p.rows[0][2][1]["title"]

    plain = render(t, "plain")
    assert f"{best_text}*" in plain and "\x1b[" not in plain
    colour = render(t, "terminal", color=True)
    assert "\x1b[" in colour and best_text in colour
    # the caption says what the colour marks, as the plain one says what * marks (it ended in a dangling "; ")
    caption = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", colour).split("┘", 1)[1].split())
    # …and that a flagged cell is the best test value over every probe, not the probe a model stands with
    assert caption == f"{t.full_caption}; bold green: {POOLED_LEGEND}"
    assert " ".join(plain.split("┘", 1)[1].split()) == f"{t.full_caption}; * {POOLED_LEGEND}"


def test_table_command_over_two_runs(run_dir, second_run_dir):
    out = table_command([run_dir, second_run_dir], "model_comparison", "csv", task=TASK)
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns[:3]) == ["run_id", "model", "probe"]
    assert set(df["run_id"]) == {"demo", "other"}
    assert len(df[df["run_id"] == "other"]) == 1
    text = table_command([run_dir], "all_deform_all_models", "markdown")
    assert "instrument_recognition — tinysol" in text and "autotagging — magnatagatune" in text
    assert "roc_auc_macro clean" in text


def test_tasks_preset_puts_a_datasets_tasks_side_by_side(results, tmp_path):
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    base = results[results["task"] == TASK]
    aug = base.assign(task="instrument_augmented", value=base["value"] + 0.05)  # the same cells, 0.05 higher
    both = pd.concat([base, aug, results[results["task"] != TASK]], ignore_index=True)
    t = make_table(both, "tasks", metrics=["accuracy"])
    assert t.row_names == ["model", "probe", "task"] and t.dataset == "tinysol"
    assert t.title == "tinysol — tasks instrument_recognition, instrument_augmented"
    assert len(t.rows) == 2 * 3 * 3 and t.rows[0][2] == TASK and t.rows[1][2] == "instrument_augmented"
    for i, (model, probe, task) in enumerate(t.rows):
        for j, (metric, scenario) in enumerate(t.columns):
            v = _manual(results, metric, scenario, model, probe).mean() + (0.05 if task != TASK else 0.0)
            assert t.mean[i, j] == pytest.approx(v)
    assert all(t.rows[i][2] == "instrument_augmented" for i in np.flatnonzero(t.best[:, 0]))  # best across tasks
    with pytest.raises(ValueError, match="each dataset here has one task") as err:
        make_table(results, "tasks")
    assert "the other presets show it — all_deform_all_models, model_comparison or robustness" in str(err.value)
    with pytest.raises(ValueError, match="needs two or more tasks on dataset 'tinysol'"):
        make_table(both, "tasks", task=TASK)

    metrics = ("accuracy", "f1_macro")
    spec = FakeRunSpec(
        run_id="pair", n_resamples=20, probes=("M1",), seeds=(0,),
        experiments=(FakeExperiment("clean_training", "multiclass_classification", "notes", 4, metrics),
                     FakeExperiment("augmented", "multiclass_classification", "notes", 4, metrics)),
    )  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    md = table_command([run], "tasks", "markdown", metrics=["accuracy"])
    assert md.count("| clean_training |") == md.count("| augmented |") == 3  # one row per model
    assert "notes — tasks clean_training, augmented" in md

    # two datasets, each with both tasks: one CSV table, the group's dataset leading, one "task" column (the row's)
    spec = FakeRunSpec(
        run_id="pairs", n_resamples=20, probes=("M1",), seeds=(0,),
        experiments=tuple(FakeExperiment(task, "multiclass_classification", ds, 4, metrics)
                          for ds in ("notes", "keys") for task in ("clean_training", "augmented")),
    )  # fmt: skip
    out = table_command([make_run_dir(tmp_path / "pairs", spec)], "tasks", "csv", metrics=["accuracy"])
    assert out.splitlines()[0].startswith("dataset,model,probe,task,accuracy:")
    assert sum("accuracy:clean:std" in line for line in out.splitlines()) == 1  # one header
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns).count("task") == 1 and not any(c.startswith("task.") for c in df.columns)
    assert sorted(set(zip(df["dataset"], df["task"], strict=True))) == [
        ("keys", "augmented"),
        ("keys", "clean_training"),
        ("notes", "augmented"),
        ("notes", "clean_training"),
    ]
    assert len(df) == 2 * 2 * 3 and df["accuracy:clean"].notna().all()


def test_robustness_over_runs_shows_every_deformed_pair_and_skips_a_clean_only_one(run_dir, tmp_path, caplog):
    """`repeval table RUN --preset robustness` (the command `repeval run` suggests) failed with "robustness needs
    clean and deformed results" as soon as one task/dataset of the runs had no deformations, showing no table for
    the ones that had; they are now shown and the clean-only pair is named in a warning."""
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    spec = FakeRunSpec(
        run_id="clean_only", n_resamples=20, probes=("M1",), seeds=(0,), scenarios=("clean",),
        experiments=(FakeExperiment("pitch", "multiclass_classification", "notes", 4, ("accuracy",)),),
    )  # fmt: skip
    clean_run = make_run_dir(tmp_path, spec)
    with caplog.at_level("WARNING", logger="repeval.report.tables"):
        md = table_command([run_dir, clean_run], "robustness", "markdown")
    assert "instrument_recognition — tinysol" in md and "autotagging — magnatagatune" in md
    assert "Δ D1" in md and "pitch" not in md
    assert "pitch — notes has no deformed test sets" in caplog.text
    with pytest.raises(ValueError, match="robustness needs clean and deformed results"):  # nothing to show: an error
        table_command([clean_run], "robustness", "markdown")


def test_run_suggests_the_robustness_table_only_when_something_was_tested_deformed():
    """`repeval run` ended with "next: … `repeval table RUN --preset robustness`" for a config without deformations,
    a command that can only fail there."""
    import copy

    from repeval.cli.experiment import _next_hint
    from repeval.config import parse_config

    exp = {
        "task": {"name": "inst", "type": "multiclass_classification"},
        "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
        "embedding_models": ["mfcc-stats"],
        "downstream_models": [{"name": "lin"}],
    }
    deformed = copy.deepcopy(exp) | {"deformations": [[{"type": "Gain", "params": {"min_gain_db": -6}}]]}
    assert _next_hint(parse_config({"experiments": [exp]}), "R") == "next: `repeval report R` (HTML report)"
    hint = _next_hint(parse_config({"experiments": [exp, deformed | {"task": {**exp["task"], "name": "b"}}]}), "R")
    assert hint == "next: `repeval report R` (HTML report), `repeval table R --preset robustness`"


def test_table_command_names_the_tasks_and_datasets_there(run_dir, second_run_dir):
    """`repeval table RUN --task nope` said only "no results for task='nope' dataset=None"; it now lists the tasks
    (or datasets) the runs hold, with the closest one; `--decimals -2` said "Format specifier missing precision"."""
    from typer.testing import CliRunner

    from repeval.cli import app

    def table(*args: str) -> str:
        r = CliRunner().invoke(app, ["table", str(run_dir), str(second_run_dir), *args])
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
        return " ".join(r.output.split())  # unwrapped

    out = table("--task", "instrument_recognitoin")
    assert "no task 'instrument_recognitoin' in the results of" in out and str(second_run_dir) in out
    assert "did you mean 'instrument_recognition'? Tasks there: instrument_recognition, autotagging" in out
    out = table("--task", "nope")
    assert "no task 'nope' in the results of" in out and "did you mean" not in out
    assert "Tasks there: instrument_recognition, autotagging" in out
    out = table("--dataset", "tinysl", "--task", TASK)
    assert "no dataset 'tinysl'" in out and "did you mean 'tinysol'? Datasets there: tinysol, magnatagatune" in out
    out = table("--preset", "tasks", "--task", f"{TASK}, nope")  # the tasks preset takes a list
    assert "no task 'nope'" in out
    out = table("--task", TASK, "--dataset", "magnatagatune")  # both exist, not together
    assert "no results for task 'instrument_recognition' on dataset 'magnatagatune'" in out
    assert "instrument_recognition/tinysol, autotagging/magnatagatune" in out
    out = table("--decimals", "-2")
    assert "--decimals must be 0 or more" in out and "-2" in out
    assert "precision" not in out
    r = CliRunner().invoke(app, ["table", str(run_dir), "--task", TASK, "--decimals", "0", "--format", "csv"])
    assert r.exit_code == 0, r.output


def test_csv_honours_scale_as_the_other_formats_do(run_dir):
    """``--scale 100 --format csv`` printed the unscaled fractions, silently, where every other format printed
    percentages. The CSV's means, stds and intervals are scaled now; its counts are not."""
    plain = pd.read_csv(io.StringIO(table_command([run_dir], "robustness", "csv", task=TASK)))
    pct = pd.read_csv(io.StringIO(table_command([run_dir], "robustness", "csv", task=TASK, scale=100)))
    assert list(pct.columns) == list(plain.columns) and len(pct) == len(plain)
    for col in plain.columns[2:]:
        if col.endswith((":n", ":n_seeds", ":n_folds")):
            assert (pct[col] == plain[col]).all(), col
        else:
            assert plain[col].notna().any() or col.endswith(("ci_low", "ci_high")), col
            np.testing.assert_allclose(pct[col], plain[col] * 100, rtol=1e-12, err_msg=col)
    md = table_command([run_dir], "robustness", "markdown", task=TASK, scale=100, decimals=1)
    first = f"{plain.iloc[0, 2] * 100:.1f}"
    assert f"| {plain.iloc[0, 0]} | {plain.iloc[0, 1]} | {first}" in md.replace("**", "")  # the number markdown shows


def test_latex_sets_a_minus_sign_and_markdown_and_latex_say_what_bold_means(results):
    """LaTeX set a negative Δ as ``-0.152``, a hyphen in text mode, not a minus sign; and the Markdown and LaTeX tables
    marked the best value of each column in bold without saying so (the terminal says ``* best in column``)."""
    t = make_table(results, "robustness", task=TASK, metrics=["accuracy"])
    assert (t.mean[:, 1:] < 0).any()  # the fixture's deformations hurt: negative changes to print
    tex = render(t, "latex")
    body = tex[tex.index(r"\midrule") : tex.index(r"\bottomrule")]
    negatives = int((np.round(t.mean[:, 1:], 3) < 0).sum())
    assert body.count("$-$") == negatives and not re.search(r"(?<![\w$])-\d", body)
    assert f"bold: {POOLED_LEGEND})}}".replace("_", r"\_") in tex.splitlines()[3]  # the \caption line
    md = render(t, "markdown")
    assert md.splitlines()[0].endswith(f"; bold: {POOLED_LEGEND}")
    assert md.count("**") == 2 * (t.best.sum() + 1)  # the title and the best cells only


def test_repeval_table_says_the_star_is_no_probe_choice_and_prints_the_runs_headline(run_dir):
    """`repeval table` printed the tables alone: nothing said that a starred cell is the best test value over every
    probe (a test-set pick), nor which probe each model stands with. A table over every probe now says so under it,
    and on a terminal is followed by the headline `repeval run` prints (the probe chosen on validation); csv and the
    model comparison (one chosen probe per model) are as they were."""
    from repeval.report.results import load_runs
    from repeval.report.summary import summary_text

    out = table_command([run_dir], "all_deform_all_models", "plain", task=TASK, headline=True)
    tables, headline = out.rstrip("\n").rsplit("\n\n", 1)
    assert " ".join(tables.split("┘")[-1].split()).endswith(f"* {POOLED_LEGEND}")
    assert headline == summary_text(load_runs([run_dir]), {(TASK, "tinysol")})  # --task: its headline only
    assert headline.startswith(f"{TASK} — ") and "best on clean" in headline and "chosen on validation" in headline
    assert "autotagging" not in out and "autotagging" in table_command([run_dir], headline=True)
    assert out.count("best on clean") == 1
    # under tables of percentages, the headline's fractions are said to be as computed (0.912 beside 91.230)
    scaled = table_command([run_dir], "all_deform_all_models", "plain", task=TASK, headline=True, scale=100)
    assert (
        scaled.rstrip("\n").rsplit("\n\n", 1)[1]
        == f"the headline's values as computed (the tables' scores ×100):\n{headline}"
    )
    csv_text = table_command([run_dir], "all_deform_all_models", "csv", task=TASK, headline=True)
    assert csv_text == table_command([run_dir], "all_deform_all_models", "csv", task=TASK)
    chosen = table_command([run_dir], "model_comparison", "plain", task=TASK, headline=True)
    assert "best on clean" not in chosen and " ".join(chosen.split()).endswith("* best in column")
    # the caption says "clean audio" (its title does not); the report's heading no longer repeats it
    assert chosen.count("clean audio") == 1


def test_a_terminal_table_wider_than_the_terminal_is_split_into_blocks_that_fit(run_dir, monkeypatch):
    """`repeval table` printed one table as wide as its columns (~170 characters for the quickstart) whatever the
    terminal; on a terminal it now splits the columns into blocks that fit, each leading with the row keys, a
    metric's columns together; a file or pipe still gets the one table."""
    import sys

    from rich.cells import cell_len

    from repeval.report.render import terminal_width

    whole = table_command([run_dir], "all_deform_all_models", "plain", task=TASK)
    assert max(cell_len(line) for line in whole.splitlines()) > 100
    out = table_command([run_dir], "all_deform_all_models", "plain", task=TASK, width=100)
    lines = out.splitlines()
    assert max(cell_len(line) for line in lines) <= 100
    blocks = out.split("┏")[1:]
    assert len(blocks) == 3 and "(1/3)" in out and "(3/3)" in out
    for metric, block in zip(("accuracy", "f1_macro", "f1_micro"), blocks, strict=True):
        header = block.split("┡")[0]
        assert "model" in header and "probe" in header  # the row keys lead every block
        assert header.count(metric) == 3 and "clean" in header and "D2" in header  # the metric's scenarios together
    legend = " ".join(out.split("┘")[-1].split())
    assert legend.count(f"* {POOLED_LEGEND}") == 1 and legend.endswith(POOLED_LEGEND)  # under the last block only
    # every cell of the one table is in one of the blocks
    cells = lambda text: sorted(re.findall(r"[−\d.]+ ± [\d.]+\*?", text))  # noqa: E731
    assert cells(out) == cells(whole)
    # only a terminal is fitted: here standard output is captured, a terminal of 90 columns otherwise
    assert terminal_width() is None
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "90")
    assert terminal_width() == 90


def test_the_headline_under_a_fitted_table_is_wrapped_to_the_terminal_too(run_dir):
    """The table fitted the terminal, the headline under it did not: a study's lines ran to ~200 characters, cut by the
    terminal anywhere (in a model's name, a number) and carried on at column 0. They are wrapped at spaces to the
    width, each continuation indented under its line; without a width they are as they were."""
    from rich.cells import cell_len

    from repeval.report.results import load_runs
    from repeval.report.summary import summary_text

    headline = summary_text(load_runs([run_dir]), {(TASK, "tinysol")})
    assert max(map(len, headline.splitlines())) > 80  # there is something to wrap
    out = table_command([run_dir], "all_deform_all_models", "plain", task=TASK, width=80, headline=True)
    wrapped = out.rstrip("\n").rsplit("\n\n", 1)[1]
    assert max(cell_len(line) for line in out.splitlines()) <= 80
    assert " ".join(wrapped.split()) == " ".join(headline.split())  # every word kept, in order
    starts = [line for line in wrapped.splitlines() if not line.startswith("    ")]
    assert len(starts) == len(headline.splitlines()) and len(wrapped.splitlines()) > len(starts)  # continuations
    unwrapped = table_command([run_dir], "all_deform_all_models", "plain", task=TASK, headline=True)
    assert unwrapped.rstrip("\n").endswith(headline)


def test_the_tasks_table_says_a_tag_threshold_only_of_tagging_metrics(tmp_path):
    """A dataset's tasks side by side — an instrument task (multiclass: f1_macro of the top-scored class) beside a
    tagging one scored by ROC-AUC — said "f1_macro: a tag predicted at score ≥ 0.5" of the multiclass f1_macro; a
    tagging task's own f1_macro still says it."""
    from repeval.report.tables import table_command
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    exps = (
        FakeExperiment("instrument", "multiclass_classification", "mine", 3, ("f1_macro",)),
        FakeExperiment("tags", "multilabel_classification", "mine", 4, ("roc_auc_macro",)),
    )
    spec = FakeRunSpec(
        run_id="t", experiments=exps, models=("mfcc-stats",), probes=("M1",), seeds=(0,), scenarios=("clean",),
        n_test=20, n_resamples=5,
    )  # fmt: skip
    run = make_run_dir(tmp_path, spec)
    table = table_command([run], "tasks", "markdown")
    assert "roc_auc_macro" in table and "f1_macro" in table
    assert "a tag predicted" not in table, table
    exps = (*exps[:1], FakeExperiment("tags", "multilabel_classification", "mine", 4, ("f1_macro",)))
    run = make_run_dir(tmp_path / "2", FakeRunSpec(**{**spec.__dict__, "experiments": exps}))
    assert "f1_macro: a tag predicted at score ≥ 0.5" in table_command([run], "tasks", "markdown")


def test_a_cell_without_a_value_says_why_not_n_0_replicates(results):
    """A '–' cell (here a scenario one model was not tested on) had the tooltip "n=0 replicates (0 seeds)", which reads
    like a count of failures; it says now that the row was not scored there, and the ways that comes about."""
    from repeval.report.render import NO_SCORE, render_html

    gap = (results["model"] == results["model"].iloc[0]) & (results["scenario"] == "D1")
    html_text = render_html(make_table(results[~gap], "all_deform_all_models", task=TASK))
    empty = re.findall(r'<td class="num" data-value="" title="([^"]*)">–</td>', html_text)
    assert empty and set(empty) == {NO_SCORE}, empty
    assert "n=0 replicates" not in html_text


def test_a_cell_whose_value_is_undefined_in_every_replicate_says_so(results):
    """A metric undefined on the test tracks (an R² of a constant target: results.parquet holds NaN) leaves a '–'
    cell, whose tooltip said only "not scored for this row" — another task's metric, an untested scenario, or failed
    replicates — none of them true, and failed.parquet has no row to say why. It names the undefined value too."""
    import html

    from repeval.report.render import render_html

    one = (results["model"] == results["model"].iloc[0]) & (results["scenario"] == "D1")
    html_text = render_html(
        make_table(results.assign(value=results["value"].mask(one)), "all_deform_all_models", task=TASK)
    )
    empty = {html.unescape(t) for t in re.findall(r'<td class="num" data-value="" title="([^"]*)">–</td>', html_text)}
    assert empty and all("undefined on its test tracks in every replicate" in t for t in empty), empty


def test_a_printed_cell_wraps_after_its_mean_never_after_the_plus_minus(results):
    """Printed, a wide table's cells wrap to fit the page — at every space: "0.939 ± 0.047" came out on three lines,
    a '±' alone on the middle one. The ± is kept with the std (a no-break space): two lines at most, mean and spread."""
    from repeval.report.render import render_html

    cells = re.findall(
        r'<td class="num[^"]*" data-value="[^"]*" title="[^"]*">([^<]*)</td>',
        render_html(make_table(results, "all_deform_all_models", task=TASK)),
    )
    spread = [c for c in cells if "±" in c]
    assert spread and all(re.fullmatch(r"\S+ ±\u00a0\S+( \(n=\d+\))?", c) for c in spread), spread[:5]
