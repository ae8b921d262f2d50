"""What the ``repeval runs`` tests share: a failed.parquet row."""

from __future__ import annotations


def _failure(probe: str, scenario: str | None) -> dict[str, object]:
    return {
        "task": "instrument-recognition", "task_type": "multiclass_classification", "dataset": "tinysol",
        "model": "msd-musicnn", "probe": probe, "seed": 0, "params": "{}", "scenario": scenario,
        "reason": "non-finite loss at epoch 3" if scenario is None else f"test set '{scenario}': non-finite scores",
        "fold": None,
    }  # fmt: skip
