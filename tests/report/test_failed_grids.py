"""What evaluating a run says of a probe grid of its configuration without results: one never trained (an
interrupted ``train``) is trained by the next ``repeval run``; one trained whose every training failed is not."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pyarrow.parquet as pq

from repeval import runner
from repeval.config import parse_config
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def test_a_grid_whose_every_training_failed_is_not_said_to_be_untrained(run_dir: Path, tmp_path: Path, caplog) -> None:
    """A probe grid whose every training diverged (``learning_rate: 4e16``, ``standardize: false``) has no results
    file, and the next `repeval run` warned it "is not trained yet … `repeval run` trains them" — it was trained,
    and trained again as configured it fails alike. The warning now says its trainings failed, why, and what to do."""
    run = tmp_path / "r"
    shutil.copytree(run_dir, run)
    (run / "groups").mkdir()
    res = pq.read_table(run / "results.parquet")
    task, dataset = res["task"][0].as_py(), res["dataset"][0].as_py()
    pq.write_table(res.filter(res["model"].to_numpy() == "msd-musicnn"), run / "groups" / f"{task}__{dataset}__msd-musicnn.parquet")  # fmt: skip
    diverged = "non-finite loss at epoch 1: the training diverged — lower learning_rate, or set standardize: true"
    failures = [{"task": task, "task_type": "multiclass_classification", "dataset": dataset, "model": "chroma-stats",
                 "probe": "M1", "seed": seed, "params": "{}", "scenario": None, "reason": diverged, "fold": None}
                for seed in (0, 1)]  # fmt: skip
    pq.write_table(typed_table(failures, FAILED_SCHEMA), run / "failed.parquet")
    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": task, "type": "multiclass_classification"},
                    "datasets": [{"name": dataset, "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                    "embedding_models": ["msd-musicnn", "chroma-stats", "mfcc-stats"],
                    "downstream_models": [{"type": "classifier", "hidden_units": []}],
                }
            ]
        }
    )
    caplog.set_level("WARNING", logger="repeval.runner")
    runner.stage_evaluate(types.SimpleNamespace(run_dir=run, cfg=cfg))
    said = " ".join(caplog.text.split())
    failed = f"{task}__{dataset}__chroma-stats"
    assert (
        f"1 probe grid of this configuration was trained but every training failed: {failed} (probe M1, seed 0: "
        f"{diverged}) — the results lack it; trained again as configured it fails alike: change what the reason "
        "names (the probe's settings in the configuration), then `repeval run` trains it again"
    ) in said, said
    assert f"1 probe grid of this configuration is not trained yet: {task}__{dataset}__mfcc-stats —" in said, said
    assert f"not trained yet: {failed}" not in said
