"""The `repeval table` command over runs: the tasks and datasets it names, robustness over runs, scale in CSV,
the run's headline and tables fitted to the terminal's width."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from tables_cases import TASK

from repeval.report.tables import POOLED_LEGEND, table_command


def test_table_command_over_two_runs(run_dir, second_run_dir):
    out = table_command([run_dir, second_run_dir], "model_comparison", "csv", task=TASK)
    df = pd.read_csv(io.StringIO(out))
    assert list(df.columns[:3]) == ["run_id", "model", "probe"]
    assert set(df["run_id"]) == {"demo", "other"}
    assert len(df[df["run_id"] == "other"]) == 1
    text = table_command([run_dir], "all_deform_all_models", "markdown")
    assert "instrument_recognition — tinysol" in text and "autotagging — magnatagatune" in text
    assert "roc_auc_macro clean" in text


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
