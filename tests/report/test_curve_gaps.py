"""A robustness curve's missing points (:mod:`repeval.report.curve_gaps`): a level a model's run tests without a
value breaks its line, and the note below the curve and the CSV's ``missing`` column say why; a model whose every
probe training failed, without a line, is named too."""

from __future__ import annotations

import html as html_lib
import re
import shutil

import numpy as np
import yaml

from repeval.report import plots
from repeval.report.curves import CURVES_CSV, curve_figure, curve_numbers, find_series, group_definitions
from repeval.report.results import load_run
from repeval.testing.configs import snr_steps

TASK, DATASET = "instrument_recognition", "tinysol"
TAGS, TAGGED = "autotagging", "magnatagatune"
#: a ``failed.parquet`` row of the tags' group, its model, probe, seed, scenario and reason to be given
FAILED_ROW = {"task": TAGS, "dataset": TAGGED, "fold": None, "params": "{}"}


def test_a_point_missing_for_a_model_breaks_its_line_and_the_report_and_csv_say_which_and_why(series_run, tmp_path):
    """A model without a value at a level its run tests — a failed test cell, or none at all — had its line drawn
    straight across the gap (the table showing "–"), as if it were measured there. The line breaks there now, and a
    note below the curve names each missing point and why: the reason ``failed.parquet`` gives, else not run. The
    CSV left missing points out (a reader of it could not tell a gap from a level never tested); each is a row now,
    its mean empty and why in ``missing``. A seed whose training failed (``failed.parquet``'s row without a scenario:
    an exception or a NaN loss) is said beside the point's own reason — it was said alone, as if it were why the
    other seeds had no value there. A model whose every training failed has no result: it had no line, and no note
    said so; one says so now, and the CSV has its rows, its reason on one line (read by pandas and by duckdb)."""
    from dataclasses import replace

    import duckdb
    import pandas as pd

    from repeval.report.curve_files import CurveFiles, write_curve_files
    from repeval.report.curves import curves_block

    run = load_run(series_run)
    df = run.results
    models = list(dict.fromkeys(df[df["task"] == TAGS]["model"]))
    failing, diverged, absent = models
    untrainable = "untrainable"  # every training failed: no row in the results
    # diverged: seed 0's training failed (none of its rows), seed 1 stopped before D1
    gone = ((df["model"] == failing) & (df["scenario"] == "D1")) | ((df["model"] == absent) & (df["scenario"] == "D2"))
    gone |= (df["model"] == diverged) & ((df["seed"] == 0) | (df["scenario"] == "D1"))
    probes_of = df[(df["task"] == TAGS) & (df["model"] == failing)]["probe"].unique()
    nan_loss = "non-finite loss at epoch 3: the training diverged — lower learning_rate, or set standardize: true"
    failed = pd.DataFrame(
        [{"task": TAGS, "dataset": TAGGED, "model": failing, "probe": p, "seed": 0, "fold": None, "params": "{}",
          "scenario": "D1", "reason": "scores not finite"} for p in probes_of]
        + [{"task": TAGS, "dataset": TAGGED, "model": diverged, "probe": p, "seed": 0, "fold": None, "params": "{}",
            "scenario": None, "reason": nan_loss} for p in probes_of]
        + [{"task": TAGS, "dataset": TAGGED, "model": untrainable, "probe": "M1", "seed": s, "fold": None,
            "params": "{}", "scenario": None, "reason": 'RuntimeError: bad "value", 3\n  in layer 2 — fix it'}
           for s in (1, 0)]
    )  # fmt: skip
    cut = replace(run, results=df[~gone].reset_index(drop=True), failed=failed)
    rows = cut.results[(cut.results["task"] == TAGS) & (cut.results["dataset"] == TAGGED)]
    (series,) = find_series(group_definitions([cut], cut.results, TAGS, TAGGED)[0], TAGS, TAGGED)
    probes = plots.best_probes(cut.results, TAGS, TAGGED, "roc_auc_macro")
    curve = curve_numbers(rows, series, "roc_auc_macro", probes)
    ax = curve_figure(curve).axes[0]
    want = {failing: -6, diverged: -6, absent: -18}
    for container, model in zip(ax.containers, probes, strict=True):
        x, y = container.lines[0].get_xdata(), container.lines[0].get_ydata()
        np.testing.assert_allclose(x, [0, -6, -18])  # clean, D1, D2: each point in its place, a gap where missing
        assert [float(v) for v, w in zip(x, y, strict=True) if not np.isfinite(w)] == [want[model]]
    files = CurveFiles(tmp_path)
    page = html_lib.unescape(curves_block([cut], cut.results, TAGS, TAGGED, None, files))
    (note,) = re.findall(r"\d+ points? missing[^<]*", page)
    assert note.startswith("3 points missing, each line broken there (– in the table): ")
    assert re.search(rf"{re.escape(failing)} · \S+ at D1 \(-6 dB\): failed \(scores not finite\)", note), note
    said = "not run (no result: the run stopped before it, or no test track was embedded there), and training failed "
    said += "(seed 0): non-finite loss at epoch 3: the training diverged"
    assert re.search(rf"{re.escape(diverged)} · \S+ at D1 \(-6 dB\): {re.escape(said)};", note), note
    (without,) = re.findall(r"\d+ models? without a line[^<]*", page)
    trained = 'training failed (seeds 0, 1): RuntimeError: bad "value", 3 in layer 2'
    assert without == f"1 model without a line (nor a row in the table) — {untrainable} · M1: {trained}"
    assert re.search(rf"{re.escape(absent)} · \S+ at D2 \(-18 dB\): not run \(no result", note), note
    write_curve_files(files)
    csv_rows = pd.read_csv(tmp_path / CURVES_CSV)  # as a reader parses it: a gap's mean NaN, not the row left out
    assert len(csv_rows) == 4 * 3 and csv_rows["mean"].dtype == float
    assert duckdb.sql(f"select * from '{tmp_path / CURVES_CSV}'").df().equals(csv_rows)
    gone = csv_rows[csv_rows["model"] == untrainable]
    assert gone["level"].fillna(0).tolist() == [0, -6, -18] and set(gone["missing"]) == {trained}
    gaps = csv_rows[csv_rows["mean"].isna() & (csv_rows["model"] != untrainable)]
    assert dict(zip(gaps["model"], gaps["level"], strict=True)) == want
    assert gaps["n"].tolist() == [0, 0, 0] and gaps["std"].isna().all()
    why = dict(zip(gaps["model"], gaps["missing"], strict=True))
    assert why[failing] == "failed (scores not finite)" and why[diverged] == said
    assert why[absent].startswith("not run (no result")
    assert csv_rows[csv_rows["mean"].notna()]["missing"].isna().all()  # empty where the point has a value


def test_over_several_runs_a_point_missing_for_a_model_breaks_its_line_in_the_reports_figure(series_run, tmp_path):
    """Over several runs the report's figure was drawn before each model's levels were known: a point a model's run
    tests without a value was bridged, the note below saying the line broke there. It breaks in the figure too."""
    from dataclasses import replace

    from repeval.report.curve_files import CurveFiles
    from repeval.report.curves import curves_block
    from repeval.report.results import combine_results

    run = load_run(series_run)
    df = run.results.assign(run_id="again")
    model = str(df[df["task"] == TAGS]["model"].iloc[0])
    again = replace(run, run_id="again", results=df[(df["model"] != model) | (df["scenario"] != "D1")])
    both = combine_results([run, again])
    both = both.assign(model=both["run_id"].astype(str) + "/" + both["model"])  # as the report names them
    files = CurveFiles(tmp_path)
    page = html_lib.unescape(curves_block([run, again], both, TAGS, TAGGED, None, files))
    assert f"1 point missing, its line broken there (– in the table): again/{model} · " in page
    ((fig, _),) = files.figures
    ax = fig.axes[0]
    names = [t.get_text().split(" · ")[0] for t in ax.get_legend().get_texts()]
    lines = {name: c.lines[0] for c, name in zip(ax.containers, names, strict=True)}
    for name, line in lines.items():  # clean (0 dB), D1 (−6 dB), D2 (−18 dB): D1 a gap in the line it is missing from
        np.testing.assert_allclose(line.get_xdata(), [0, -6, -18])
        assert np.isfinite(line.get_ydata()).tolist() == [True, name != f"again/{model}", True], name


def test_a_point_failed_in_a_column_the_runs_define_differently_is_said_failed(series_run, tmp_path):
    """Two runs defining D2 differently (5 and 10 dB SNR) have a column each, ``D2 (<run>)``: a point failed in one
    of them was said not run, ``failed.parquet`` looked up under the column's name, not the run's scenario, D2."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from repeval.report.curves import curves_block
    from repeval.report.results import combine_results, load_runs
    from repeval.tuning.results import FAILED_SCHEMA

    other = tmp_path / "other" / "demo"
    shutil.copytree(series_run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["experiments"][0]["deformations"] = [snr_steps(20), snr_steps(10)]
    (other / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    df = pd.read_parquet(other / "results.parquet")
    model = str(df[df["task"] == TASK]["model"].iloc[0])
    df[(df["model"] != model) | (df["scenario"] != "D2")].to_parquet(other / "results.parquet", index=False)
    failed = [{"task": TASK, "task_type": "multiclass_classification", "dataset": DATASET, "model": model, "probe": p,
               "seed": 0, "params": "{}", "scenario": "D2", "reason": "scores not finite", "fold": None}
              for p in df["probe"].unique()]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(failed, schema=FAILED_SCHEMA), other / "failed.parquet")
    runs = load_runs([series_run, other])
    both = combine_results(runs)
    both = both.assign(model=both["run_id"].astype(str) + "/" + both["model"])  # as the report names them
    page = html_lib.unescape(curves_block(runs, both, TASK, DATASET))
    (note,) = re.findall(r"\d+ points? missing[^<]*", page)
    second = re.escape(runs[1].run_id)
    assert re.search(
        rf"{second}/{re.escape(model)} · \S+ at D2 \({second}\) \(10 dB\): failed \(scores not finite\)", note
    ), note


def test_a_point_over_fewer_seeds_than_its_run_has_is_hollow_and_said_in_the_table_and_a_note(series_run):
    """A probe whose test cell failed in one seed, or whose training failed in one seed, has points over fewer seeds
    than its run has: the figure drew them as every other point (a mean of one seed passing for the mean of two) and
    the table said nothing of a row whose every point lost the seed (``(n=…)`` was against the row's most). Such a
    point is hollow now, the legend says what hollow means, its table cell says ``n=1 of 2``, and a note below the
    curve says which points and why."""
    from dataclasses import replace

    import pandas as pd

    from repeval.report.curve_files import CurveFiles
    from repeval.report.curves import curves_block

    run = load_run(series_run)
    df = run.results
    cell, seed, whole = list(dict.fromkeys(df[df["task"] == TAGS]["model"]))
    gone = ((df["model"] == cell) & (df["seed"] == 1) & (df["scenario"] == "D1")) | (
        (df["model"] == seed) & (df["seed"] == 0)
    )
    nan_loss = "non-finite loss at epoch 3: the training diverged — lower learning_rate, or set standardize: true"
    failed = pd.DataFrame(
        [
            {**FAILED_ROW, "model": model, "probe": p, "seed": s, "scenario": scenario, "reason": why}
            for model, s, scenario, why in [(cell, 1, "D1", "scores not finite"), (seed, 0, None, nan_loss)]
            for p in df[df["task"] == TAGS]["probe"].unique()
        ]
    )
    cut = replace(run, results=df[~gone].reset_index(drop=True), failed=failed)
    files = CurveFiles(series_run / "unused")  # (the figures kept, not written)
    page = html_lib.unescape(curves_block([cut], cut.results, TAGS, TAGGED, None, files))
    ((fig, _),) = files.figures
    ax = fig.axes[0]
    hollow = [line for line in ax.lines if line.get_markerfacecolor() == "white"]
    colours = {c.lines[0].get_color(): name.get_text().split(" · ")[0]
               for c, name in zip(ax.containers, ax.get_legend().get_texts(), strict=False)}  # fmt: skip
    drawn = {colours[line.get_markeredgecolor()]: line.get_xdata().tolist() for line in hollow}
    assert drawn == {cell: [-6.0], seed: [0.0, -6.0, -18.0]}  # clean, D1, D2 of the model that lost a seed's training
    assert ax.get_legend().get_texts()[-1].get_text().startswith("hollow: over fewer seeds than")
    rows = {r.split(" · ")[0]: r for r in re.findall(r"<tr><td>([^<]*</td>.*?)</tr>", page)}
    assert rows[cell].count("(n=1 of 2)") == 1 and rows[seed].count("(n=1 of 2)") == 3
    assert "(n=" not in rows[whole]
    (note,) = re.findall(r"\d+ points? over fewer[^<]*", page)
    assert note.startswith(
        "4 points over fewer seeds than their run has (hollow in the figure, n=… of … in the table): "
    )
    assert re.search(
        rf"{re.escape(cell)} · \S+ at D1 \(-6 dB\): 1 of 2 seeds \(test failed \(seed 1\): scores not finite\)", note
    ), note
    trained = r"1 of 2 seeds \(training failed \(seed 0\): non-finite loss at epoch 3: the training diverged\)"
    assert re.search(rf"{re.escape(seed)} · \S+ at clean \(0 dB\), D1 \(-6 dB\), D2 \(-18 dB\): {trained}", note), note


def test_a_fold_whose_every_training_failed_counts_among_the_replicates_its_run_has(series_run):
    """A k-fold dataset's fold whose every probe training failed, in each model, has no result at all: the replicates
    a run has were counted from its results' folds (seeds × 1 here), so no point was over fewer than that — every
    point, a mean over one fold of two, was drawn as whole. The folds ``failed.parquet`` names count too (as its
    seeds do): each point is hollow, over 2 of 4 seeds × folds."""
    from dataclasses import replace

    import pandas as pd

    from repeval.report.curves import curves_block

    run = load_run(series_run)
    df = run.results.assign(fold=0)  # fold 0 of two: fold 1 trained, every training of it failed
    tags = df[df["task"] == TAGS]
    failed = pd.DataFrame(
        [
            {**FAILED_ROW, "fold": 1, "model": m, "probe": p, "seed": s, "scenario": None, "reason": "labels: none"}
            for m in tags["model"].unique()
            for p in tags["probe"].unique()
            for s in (0, 1)
        ]
    )
    page = html_lib.unescape(curves_block([replace(run, results=df, failed=failed)], df, TAGS, TAGGED))
    rows = re.findall(r"<tr><td>([^<]*</td>.*?)</tr>", page)
    assert rows and all(r.count("(n=2 of 4)") == 3 for r in rows), rows
    assert "over fewer seeds × folds than their run has" in page
    assert ": 2 of 4 seeds × folds (training failed (seeds 0, 1; fold 1): labels: none)" in page  # which fold, too


def test_a_point_of_a_run_shown_with_a_slash_in_its_name_says_why_it_is_over_fewer_seeds(series_run, tmp_path):
    """Two runs of one id in folders of one name (``a/x/runs/demo``, ``b/x/runs/demo``) are shown as ``demo`` and
    ``demo@b/x/runs``: a model of the second, ``demo@b/x/runs/<model>``, was split at its first '/', so its run was
    not found: its failed training was said "not run: no result", and a point without a value was not said missing."""
    import pandas as pd
    import pyarrow.parquet as pq

    from repeval.report.curves import curves_block
    from repeval.report.results import combine_results, load_runs
    from repeval.tuning.results import FAILED_SCHEMA, typed_table

    first, second = (shutil.copytree(series_run, tmp_path / side / "x" / "runs" / "demo") for side in "ab")
    df = pq.read_table(second / "results.parquet").to_pandas()
    model = str(df[df["task"] == TAGS]["model"].iloc[0])
    lost = (df["model"] == model) & (df["seed"] == 0) & (df["task"] == TAGS)
    hole = (df["model"] == model) & (df["scenario"] == "D2") & (df["task"] == TAGS)
    table = pq.read_table(second / "results.parquet")
    pq.write_table(table.filter(pd.Series(~(lost | hole)).to_numpy()), second / "results.parquet")
    failed = [{**FAILED_ROW, "task_type": "multilabel_classification", "model": model, "probe": p, "seed": 0,
               "scenario": None, "reason": "non-finite loss at epoch 3"} for p in df["probe"].unique()]  # fmt: skip
    pq.write_table(typed_table(failed, FAILED_SCHEMA), second / "failed.parquet")
    runs = load_runs([first, second])
    assert runs[1].run_id == "demo@b/x/runs"
    combined = combine_results(runs)
    keyed = combined.assign(model=combined["run_id"] + "/" + combined["model"])
    page = re.sub(r"<img [^>]*>", "", " ".join(html_lib.unescape(curves_block(runs, keyed, TAGS, TAGGED)).split()))
    trained = "training failed (seed 0): non-finite loss at epoch 3"
    assert f"demo@b/x/runs/{model} · " in page and "1 of 2 seeds (" + trained in page, page
    gap = rf"demo@b/x/runs/{re.escape(model)} · \S+ at D2 \(-18 dB\): not run [^;]*, and {re.escape(trained)}"
    assert re.search(gap, page), page
