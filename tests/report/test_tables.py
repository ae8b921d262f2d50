"""Table presets, best-value highlighting and every output format."""

from __future__ import annotations

import csv
import io
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from tables_cases import TASK

from repeval.report.render import PM_KEPT as PM_HTML
from repeval.report.render import render
from repeval.report.results import RESULT_COLUMNS, load_run, normalise_results
from repeval.report.tables import POOLED_LEGEND, make_table, table_command


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
