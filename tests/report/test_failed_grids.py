"""What evaluating a run says of a probe grid of its configuration without results: one never trained (an
interrupted ``train``) is trained by the next ``repeval run``; one trained whose every training failed is not — and
`repeval runs` says which is which."""

from __future__ import annotations

import json
import shutil
import types
from pathlib import Path

import pyarrow.parquet as pq

from repeval import runner
from repeval.config import parse_config
from repeval.tuning.results import FAILED_SCHEMA, typed_table

DIVERGED = "non-finite loss at epoch 1: the training diverged — lower learning_rate, or set standardize: true"


def _evaluated(run_dir: Path, run: Path, models: list[str]) -> tuple[str, str]:
    """``run``, a copy of ``run_dir`` with msd-musicnn's grid trained (when among ``models``) and every training of
    chroma-stats' failed, evaluated with a configuration of ``models``; its task and dataset."""
    shutil.copytree(run_dir, run)
    (run / "groups").mkdir()
    (run / "results.parquet").rename(run / "earlier.parquet")  # (not the evaluation's own)
    res = pq.read_table(run / "earlier.parquet")
    task, dataset = res["task"][0].as_py(), res["dataset"][0].as_py()
    if "msd-musicnn" in models:
        pq.write_table(res.filter(res["model"].to_numpy() == "msd-musicnn"), run / "groups" / f"{task}__{dataset}__msd-musicnn.parquet")  # fmt: skip
    failures = [{"task": task, "task_type": "multiclass_classification", "dataset": dataset, "model": "chroma-stats",
                 "probe": "M1", "seed": seed, "params": "{}", "scenario": None, "reason": DIVERGED, "fold": None}
                for seed in (0, 1)]  # fmt: skip
    pq.write_table(typed_table(failures, FAILED_SCHEMA), run / "failed.parquet")
    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": task, "type": "multiclass_classification"},
                    "datasets": [{"name": dataset, "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                    "embedding_models": models,
                    "downstream_models": [{"type": "classifier", "hidden_units": []}],
                }
            ]
        }
    )
    runner.stage_evaluate(types.SimpleNamespace(run_dir=run, cfg=cfg))
    return task, dataset


def test_a_grid_whose_every_training_failed_is_not_said_to_be_untrained(run_dir: Path, tmp_path: Path, caplog) -> None:
    """A probe grid whose every training diverged (``learning_rate: 4e16``, ``standardize: false``) has no results
    file, and the next `repeval run` warned it "is not trained yet … `repeval run` trains them" — it was trained,
    and trained again as configured it fails alike. The warning now says its trainings failed, why, and what to do."""
    caplog.set_level("WARNING", logger="repeval.runner")
    task, dataset = _evaluated(run_dir, tmp_path / "r", ["msd-musicnn", "chroma-stats", "mfcc-stats"])
    said = " ".join(caplog.text.split())
    failed = f"{task}__{dataset}__chroma-stats"
    assert (
        f"1 probe grid of this configuration was trained but every training failed, no probe of it trained: {failed} "
        f"(probe M1, seed 0: {DIVERGED}) — the results lack it (failed.parquet has each failure); trained again as "
        "configured it fails alike: change what the reason names (the probe's settings in the configuration), then "
        "`repeval run` trains it again"
    ) in said, said
    assert f"1 probe grid of this configuration is not trained yet: {task}__{dataset}__mfcc-stats —" in said, said
    assert f"not trained yet: {failed}" not in said


def test_repeval_runs_says_a_grid_whose_every_training_failed_failed(run_dir: Path, tmp_path: Path) -> None:
    """`repeval runs` listed a run with a grid whose every training failed as "partly trained", its results lacking a
    grid "not trained when it was evaluated" that `repeval run` would train — it would fail alike. It says the grid
    failed now, in the state, in a line naming why and the fix, and under ``grids_failed`` of ``--json``."""
    from repeval.report.runs import runs_text

    task, dataset = _evaluated(run_dir, tmp_path / "runs" / "r", ["msd-musicnn", "chroma-stats"])
    failed = f"{task}__{dataset}__chroma-stats"
    (info,) = json.loads(runs_text(str(tmp_path / "runs"), as_json=True))
    assert info["state"] == "evaluated, 1 grid failed"
    assert (info["grids_untrained"], info["grids_failed"]) == ([], {failed: f"probe M1, seed 0: {DIVERGED}"})
    listed = runs_text(str(tmp_path / "runs"))
    assert "partly trained" not in listed and "not trained when" not in listed
    assert (
        f"r: 1 probe grid of its configuration was trained but every training failed, no probe of it trained: {failed}"
        f" (probe M1, seed 0: {DIVERGED}) — the results lack it (failed.parquet has each failure); trained again as "
        "configured it fails alike: change what the reason names (the probe's settings in the configuration), then "
        "`repeval run CONFIG` with the run's configuration trains it again"
    ) in " ".join(listed.split()), listed


def test_evaluating_a_run_whose_every_training_failed_says_so_not_to_train_first(run_dir: Path, tmp_path: Path) -> None:
    """A run whose every probe training failed (each grid's trainings diverged) has no grid's results, and evaluating
    it said "no trained probe grid …: train them first — `repeval train CONFIG`", a step out of order: it was
    trained, and trained again as configured it fails alike. It says every training failed, why, and what to do."""
    import pytest

    from repeval.rundir import EarlierStageUnfinished

    with pytest.raises(ValueError) as refused:
        _evaluated(run_dir, tmp_path / "r", ["chroma-stats"])
    assert not isinstance(refused.value, EarlierStageUnfinished)
    said = " ".join(str(refused.value).split())
    assert said.startswith(f"nothing to evaluate in {tmp_path / 'r'}: 1 probe grid of this configuration was trained ")
    assert (
        f"every training failed, no probe of it trained: instrument_recognition__tinysol__chroma-stats (probe M1, seed 0: {DIVERGED})"
        in said
    )
    assert "train them first" not in said and not (tmp_path / "r" / "results.parquet").exists()
