"""``repeval runs``: what it counts, read from real run files (:mod:`repeval.report.runs`)."""

from __future__ import annotations

import json
import re
import shutil

import pyarrow.parquet as pq
from typer.testing import CliRunner

from repeval.cli import app
from repeval.report.html import _failed_block
from repeval.report.results import load_run
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def _failure(probe: str, scenario: str | None) -> dict[str, object]:
    return {
        "task": "instrument-recognition", "task_type": "multiclass_classification", "dataset": "tinysol",
        "model": "msd-musicnn", "probe": probe, "seed": 0, "params": "{}", "scenario": scenario,
        "reason": "non-finite loss at epoch 3" if scenario is None else f"test set '{scenario}': non-finite scores",
        "fold": None,
    }  # fmt: skip


def test_runs_counts_failed_trainings_and_failed_test_cells_apart(run_dir, tmp_path):
    """``failed`` summed the rows of failed.parquet: probe trainings that failed *and* test cells (a trained probe,
    seed and test set whose scores were not finite), so one probe that trained but scored NaN on 4 test sets read
    as "failed: 5" next to a single real failed training. ``repeval runs`` (and --json), the train line and the
    report now count them apart; a failed.parquet written before its ``scenario`` column holds trainings only."""
    runs = tmp_path / "runs"
    run = runs / "r"
    shutil.copytree(run_dir, run)
    rows = [_failure("M2", None)] + [_failure("M1", s) for s in ("D1", "D2", "D3", "D4")]
    pq.write_table(typed_table(rows, FAILED_SCHEMA), run / "failed.parquet")
    shutil.copytree(run, runs / "old")  # a run written before the scenario column: every row a training
    pq.write_table(typed_table(rows[:2], FAILED_SCHEMA).drop(["scenario"]), runs / "old" / "failed.parquet")

    listed = {r["run"]: r for r in json.loads(CliRunner().invoke(app, ["runs", str(runs), "--json"]).output)}
    assert (listed["r"]["failed_trainings"], listed["r"]["failed_cells"]) == (1, 4)
    assert (listed["old"]["failed_trainings"], listed["old"]["failed_cells"]) == (2, 0)
    res = CliRunner().invoke(app, ["runs", str(runs)])
    assert res.exit_code == 0, res.output
    assert re.search(r"failed trainings\s+failed cells\s+updated", res.output), res.output
    assert re.search(r"\nr\s+evaluated\s+\S+.*?\s\d+\s+1\s+4\s", res.output), res.output
    assert "failed cells: test cells (a trained probe, seed and test set) whose scores were not finite" in res.output

    block = _failed_block([load_run(run)], "instrument-recognition", "tinysol")
    assert "Failed probe trainings (1) and failed test cells (4)" in block
