"""Reading run directories."""

from __future__ import annotations

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
    assert ordered_scenarios(["D10", "D2", "clean", "noise"]) == ["clean", "D2", "D10", "noise"]
