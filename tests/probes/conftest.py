"""Small synthetic probe data (class-conditional Gaussians, see :mod:`repeval.probes.synthetic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from repeval.probes import ProbeData
from repeval.probes.synthetic import gaussian_probe_data
from repeval.testing.configs import notes_dataset


@pytest.fixture
def mc_data() -> ProbeData:
    return gaussian_probe_data()


class FramesRun:
    """A real run on the rendered notes whose task reads frame-level embeddings (``prediction`` or ``attention``):
    MFCC statistics of 0.5-s windows every 0.25 s (~5 frames per 1.5-s note), one deformation, a linear probe
    and a ``select: best`` grid (tested once after the grid, from its checkpoint, outside the trials)."""

    def __init__(self, tmp_path: Path, manifest: Path, store: Path) -> None:
        self.tmp_path, self.manifest, self.store = tmp_path, manifest, store

    def config(self, aggregation: str, run_id: str) -> dict[str, Any]:
        """The run's config (runs under ``tmp_path``, the store the frame-level runs share)."""
        return _frames_config(self.tmp_path, self.manifest, aggregation, run_id, self.store)

    def embed(self, aggregation: str, run_id: str) -> tuple[dict[str, Any], Path, Any]:
        """Write the config to ``tmp_path/config.yaml`` and embed the notes (keeping frames, which the task's
        aggregation turns on for its partitions): ``(config dict, its path, the run context)``."""
        import yaml

        from repeval import runner
        from repeval.config import load_config

        cfg_dict = self.config(aggregation, run_id)
        path = self.tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg_dict))
        cfg = load_config(path)
        assert cfg.keeps_frames("notes", "mfcc-frames")  # turned on by the task's aggregation
        ctx = runner.make_context(cfg)
        assert runner.stage_embed(ctx).errors == 0
        return cfg_dict, path, ctx

    @staticmethod
    def train_and_evaluate(ctx: Any, aggregation: str) -> None:
        """Train the run's one group, test it: the group's inputs name the aggregation; both probes are tested
        on the clean and the deformed notes, per note (8 test notes), well above chance."""
        import json

        from repeval import runner

        assert runner.stage_train(ctx)["trained"] == 1
        inputs = json.loads((ctx.run_dir / "groups" / "instrument__notes__mfcc-frames.inputs.json").read_text())
        assert inputs["aggregation"] == aggregation
        results = runner.stage_evaluate(ctx).to_pandas()
        acc = results[results["label"].isna() & (results["metric"] == "accuracy")]
        assert sorted(zip(acc["probe"], acc["scenario"], strict=True)) == [
            ("M1", "D1"), ("M1", "clean"), ("picked", "D1"), ("picked", "clean")
        ]  # fmt: skip
        assert (acc["n_test"] == 8).all()  # scored per note, not per frame
        assert (acc[acc["scenario"] == "D1"]["n_delta"] == 8).all()  # Δ over the same notes (select: all and best)
        assert (acc[acc["scenario"] == "clean"]["value"] > 0.5).all()  # chance is 0.25


@pytest.fixture(scope="session")
def frames_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The store of the frame-level runs: they embed alike (the task's aggregation, all that differs, is the probes'),
    so the run that comes second finds its partitions complete — one embedding stream, not one per run."""
    return tmp_path_factory.mktemp("frames") / "store"


@pytest.fixture
def frames_run(tmp_path: Path, rendered_notes: Path, frames_store: Path) -> FramesRun:
    return FramesRun(tmp_path, rendered_notes, frames_store)


def _frames_config(tmp_path: Path, manifest: Path, aggregation: str, run_id: str, store: Path) -> dict[str, Any]:
    grid: dict[str, list[Any]] = {"learning_rate": [0.01, 0.003]}
    if aggregation == "attention":
        grid["attention_heads"] = [1, 2]  # one query or two per probe, picked by validation
    return {
        "run": {"run_id": run_id, "store": str(store), "runs_dir": str(tmp_path / "runs")},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification", "aggregation": aggregation},
                "datasets": [notes_dataset(manifest)],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -12, "p": 1}}]],
                "embedding_models": [
                    {"id": "mfcc-frames", "type": "mfcc-stats", "params": {"window_s": 0.5, "hop_s": 0.25}}
                ],
                "downstream_models": [
                    {"hidden_units": [], "standardize": True, "learning_rate": 0.01, "batch_size": 16, "epochs": 60},
                    {
                        "name": "picked",
                        "hidden_units": [],
                        "standardize": True,
                        "batch_size": 16,
                        "epochs": 30,
                        "search": {"grid": grid, "select": "best"},
                    },
                ],
                "metrics": ["accuracy"],
            }
        ],
    }
