"""Reading run directories."""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from repeval.report.results import (
    HISTORY_COLUMNS,
    RESULT_COLUMNS,
    combine_results,
    load_run,
    load_runs,
    ordered_scenarios,
    write_results,
)


def test_fake_run_has_the_documented_layout(run_dir):
    run = load_run(run_dir)
    assert run.run_id == "demo"
    assert list(run.results.columns) == list(RESULT_COLUMNS)
    res = run.results
    assert set(res["scenario"]) == {"clean", "D1", "D2"}
    assert res["label"].isna().any() and res["label"].notna().any()
    assert res.loc[res["label"].isna(), "ci_low"].notna().all()
    assert (res["ci_low"] <= res["ci_high"] + 1e-12).all()
    assert run.history is not None and list(run.history.columns) == list(HISTORY_COLUMNS)
    assert run.config["run"]["id"] == "demo"
    assert run.confusion
    key = next(iter(run.confusion))
    labels, matrix = run.confusion[key]
    n_test = res[(res["model"] == key.model) & (res["scenario"] == key.scenario)]["n_test"].iloc[0]
    assert matrix.shape == (len(labels), len(labels)) and matrix.sum() == n_test


def test_history_folder_is_read_too(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    hist = pd.read_parquet(copy / "history.parquet")
    (copy / "history.parquet").unlink()
    (copy / "history").mkdir()
    for i, (_, part) in enumerate(hist.groupby("model")):
        part.to_parquet(copy / "history" / f"g{i}.parquet")
    assert len(load_run(copy).history) == len(hist)


def test_missing_results_and_columns_name_the_fix(tmp_path, run_dir):
    with pytest.raises(ValueError, match=r"no results.parquet .*does not exist"):
        load_run(tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    pd.read_parquet(run_dir / "results.parquet").drop(columns=["n_test", "probe"]).to_parquet(bad / "results.parquet")
    with pytest.raises(ValueError, match="lacks the result columns probe, n_test"):
        load_run(bad)
    with pytest.raises(ValueError, match="no run directories"):
        load_runs([])


def test_a_runs_directory_or_an_unfinished_run_without_results_says_what_to_pass_or_run(tmp_path, run_dir):
    """``repeval table runs`` (the runs directory) names its runs; a run stopped before its test stage names its
    last command's state and how to finish it, not only that results.parquet is missing."""
    from repeval.run.status import write_status

    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "demo")
    stopped = runs / "stopped"
    stopped.mkdir()
    write_status(stopped, "run", "interrupted", "stopped by Ctrl-C; rerun it to resume (finished work is kept)")
    with pytest.raises(ValueError) as info:
        load_run(runs)
    assert f"it is a runs directory; pass one of its runs ({runs / 'demo'}, {runs / 'stopped'})" in str(info.value)
    with pytest.raises(ValueError) as info:
        load_run(stopped)
    said = str(info.value)
    assert "its last command, `repeval run`, was interrupted (stopped by Ctrl-C) before the test stage" in said
    assert "run `repeval run CONFIG` with the run's configuration" in said
    write_status(stopped, "train", "failed", "no space left on device")
    with pytest.raises(ValueError, match=r"`repeval train`, failed \(no space left on device\) before the test"):
        load_run(stopped)
    # an interruption's status names the command line that resumes it: the hint gives it, as the `run` that finishes
    cmd = f"repeval embed {tmp_path / 'c.yaml'} --run-id stopped --store {tmp_path / 'st'}"
    write_status(stopped, "embed", "interrupted", f"stopped by Ctrl-C; `{cmd}` resumes it (finished work is kept)")
    with pytest.raises(ValueError) as info:
        load_run(stopped)
    said = str(info.value)
    assert "`repeval embed`, was interrupted (stopped by Ctrl-C) before the test stage wrote results; " in said
    assert f"`repeval run {tmp_path / 'c.yaml'} --run-id stopped --store {tmp_path / 'st'}` finishes it" in said
    # a failure's status.json records its command line too: the hint names the run's own `repeval run`
    cmd = f"repeval train {tmp_path / 'c.yaml'} --run-id stopped"
    write_status(stopped, "train", "failed", "no space left on device", resume=cmd)
    with pytest.raises(ValueError) as info:
        load_run(stopped)
    assert f"`repeval run {tmp_path / 'c.yaml'} --run-id stopped` finishes it" in str(info.value), str(info.value)
    write_status(stopped, "run", "finished")  # an odd state (results deleted by hand): the usual words
    with pytest.raises(ValueError, match="pass a run directory such as runs/<run_id>"):
        load_run(stopped)
    # a run's file, or its id without its runs directory: the run's directory is named
    with pytest.raises(
        ValueError, match=re.escape(f"results.parquet is a file of a run; pass the run's directory, {runs / 'demo'}")
    ):
        load_run(runs / "demo" / "results.parquet")
    with pytest.raises(ValueError, match=re.escape(f"does not exist): pass the run's directory, {runs / 'demo'}")):
        load_run(tmp_path / "demo")


def test_combine_and_duplicate_runs(run_dir, second_run_dir):
    runs = load_runs([run_dir, second_run_dir, run_dir])
    assert [r.run_id for r in runs] == ["demo", "other"]
    assert set(combine_results(runs)["run_id"]) == {"demo", "other"}


def test_write_results_round_trip(run_dir, tmp_path):
    df = pd.read_parquet(run_dir / "results.parquet")
    out = write_results(df, tmp_path / "r.parquet")
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, df)


def test_ordered_scenarios():
    assert ordered_scenarios(["noise", "D10", "D2", "clean", "noise"]) == ["clean", "noise", "D10", "D2"]


def _scenario_run(root, run_id, scenarios, configured):
    """A small run whose results list ``scenarios`` in that order and whose config.yaml lists the deformations
    ``configured`` (None: one without a name, D1, D2, … by position)."""
    import yaml

    from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir

    spec = FakeRunSpec(run_id=run_id, experiments=DEFAULT_EXPERIMENTS[:1], models=("m-a", "m-b"), probes=("M1",),
                       seeds=(0,), scenarios=scenarios, n_test=30, n_resamples=5)  # fmt: skip
    run = make_run_dir(root, spec)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    step = {"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6, "p": 1}}
    cfg["experiments"][0]["deformations"] = [{"steps": [step]} | ({"name": n} if n else {}) for n in configured]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run


def test_scenarios_come_in_the_configurations_order_not_by_name(tmp_path):
    """Tables, heat maps and the report's listings sorted the scenarios by name (mp3 before noise); they follow the
    configuration: clean, then its deformations in order (an unnamed third one is D3), whatever order the results
    file holds them in. Two runs combined: the first run's order, then the scenarios only the second has."""
    from repeval.report import plots
    from repeval.report.html import _per_label_block
    from repeval.report.summary import summary_cards
    from repeval.report.tables import make_table, table_command

    task, dataset = "instrument_recognition", "tinysol"
    first = _scenario_run(tmp_path, "first", ("clean", "D3", "mp3", "noise"), ["noise", "mp3", None])
    run = load_run(first)
    want = ["clean", "noise", "mp3", "D3"]
    assert ordered_scenarios(run.results["scenario"].unique()) == want
    t = make_table(run.results, "all_deform_all_models", metrics=["accuracy"])
    assert [s for _, s in t.columns] == want
    t = make_table(run.results, "robustness", metrics=["accuracy"])
    assert [s for _, s in t.columns] == ["clean", "Δ noise", "Δ mp3", "Δ D3"]
    out = table_command([first], "robustness", "plain", metrics=["accuracy"])
    assert out.index("Δ noise") < out.index("Δ mp3") < out.index("Δ D3")
    heat = plots.robustness_heatmap(run.results, task, dataset, "accuracy")
    assert [x.get_text() for x in heat.axes[0].get_xticklabels()] == want[1:]
    assert "over 3 scenarios (noise, mp3, D3)" in summary_cards(run.results, task, dataset)
    block = _per_label_block(run.results, task, dataset)
    every = re.search(r'id="labels-all-[^"]*".*?</thead>', block, re.S).group(0)  # one per-label metric: f1_macro
    assert re.findall(r'data-kind="num"[^>]*>([^<]*)</th>', every) == want
    by_scenario = re.search(r'id="labels-byscenario-[^"]*".*?</thead>', block, re.S).group(0)
    assert re.findall(r'data-kind="num"[^>]*>([^<]*)</th>', by_scenario) == ["mean", *want]

    second = _scenario_run(tmp_path, "second", ("clean", "hum", "mp3"), ["mp3", "hum"])
    both = combine_results(load_runs([first, second]))
    t = make_table(both, "all_deform_all_models", metrics=["accuracy"])
    assert [s for _, s in t.columns] == [*want, "hum"]


def test_two_runs_with_one_id_from_two_runs_directories_are_both_compared(run_dir, tmp_path, caplog):
    """``repeval table runs/quickstart ../laptop/runs/quickstart`` kept the first and dropped the second with a
    warning ("given twice"), though they are two runs; now the second is named after its runs directory, and only the
    same directory given twice is dropped."""
    from repeval.report.tables import make_table

    here, there = tmp_path / "runs" / "demo", tmp_path / "laptop" / "runs" / "demo"
    shutil.copytree(run_dir, here)
    shutil.copytree(run_dir, there)
    caplog.set_level("WARNING", logger="repeval.report.results")
    runs = load_runs([here, there, here])
    assert [r.run_id for r in runs] == ["demo", "demo@laptop/runs"]  # "runs" alone would name the first's folder too
    assert "run id 'demo' of" in caplog.text and "shown as 'demo@laptop/runs'" in caplog.text
    assert "run 'demo' given twice" in caplog.text  # the same directory again: kept once
    results = combine_results(runs)
    assert sorted(results["run_id"].unique()) == ["demo", "demo@laptop/runs"]
    assert len(results) == 2 * len(runs[0].results)
    assert runs[1].validation is None or set(runs[1].validation["run_id"]) == {"demo@laptop/runs"}
    task, dataset = results[["task", "dataset"]].iloc[0]
    table = make_table(results, "model_comparison", task=task, dataset=dataset)
    assert {"demo", "demo@laptop/runs"} == {row[table.row_names.index("run_id")] for row in table.rows}, table.rows
    # the report's confusion matrices found each model's run by the text before the first '/' of "<run>/<model>":
    # "demo@laptop" is no run, and the report stopped on a StopIteration
    from repeval.report.html import _confusion_block
    from repeval.report.selection import combine_validation

    keyed = results.assign(model=results["run_id"] + "/" + results["model"])
    block = _confusion_block(runs, keyed, task, dataset, True, combine_validation(runs, prefix_models=True))
    assert "demo@laptop/runs/" in block and "demo/" in block
    # a copy beside the first, in the same runs directory: named after its folder, not its absolute path
    shutil.copytree(run_dir, tmp_path / "runs" / "demo-copy")
    assert load_runs([here, tmp_path / "runs" / "demo-copy"])[1].run_id == "demo@demo-copy"
