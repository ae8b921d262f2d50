"""What the tests of run files cut short or unreadable share: a grid's key, a failure record, two small runs."""

from __future__ import annotations

GRID = "t__d__m"


def _failure(model: str) -> dict[str, object]:
    return {"task": "t", "task_type": "multiclass_classification", "dataset": "d", "model": model, "probe": "M1",
            "seed": 0, "params": "{}", "scenario": None, "reason": "non-finite loss", "fold": None}  # fmt: skip


def _two_runs(tmp_path):
    from repeval.testing.results import FakeRunSpec, make_run_dir

    spec = {"models": ("a",), "probes": ("M1", "M2"), "seeds": (0, 1), "scenarios": ("clean",), "n_resamples": 10}
    return [
        make_run_dir(tmp_path / str(i), FakeRunSpec(run_id=f"r{i}", **spec))  # type: ignore[arg-type]
        for i in (1, 2)
    ]
