"""A clip's embedding does not depend on which clips share its model call: a rerun, and a resumed run (which embeds
only the missing tracks, in other batches), store the same bits on CPU."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.config.embed import EmbeddingModelConfig
from repeval.models import build_model
from repeval.testing.configs import notes_dataset, notes_manifest


@pytest.mark.parametrize("model_id", ["msd-musicnn", "crepe-tiny"])
def test_a_clips_frames_are_the_same_alone_and_in_any_batch(model_id: str) -> None:
    """onnxruntime's musicnn rounded a patch by its place in the run (up to 1.9e-6), torch's crepe a window alone
    differently from one in a larger batch (1.5e-6: the 3.2-s clip's 33 windows alone end in a call of one)."""
    model = build_model(EmbeddingModelConfig(id=model_id))
    rng = np.random.default_rng(1)
    sr = model.sample_rate_hz
    clips = [(0.1 * rng.standard_normal(int(sr * s))).astype(np.float32) for s in (1.0, 3.2, 2.5, 4.0)]
    alone = [model.embed_batch([c])[0] for c in clips]
    for order in (list(range(len(clips))), [2, 0, 3, 1]):
        together = model.embed_batch([clips[i] for i in order])
        for i, frames in zip(order, together, strict=True):
            np.testing.assert_array_equal(frames, alone[i], err_msg=f"clip {i} in batch order {order}")


def test_a_short_clip_is_not_filled_up_to_a_full_model_call() -> None:
    """Every call was filled up with zero windows to max_batch_windows: crepe-tiny computed 32 windows for a clip of
    11, 64 for one of 33, and CLMR 32 for a one-second clip's one (40 times its CPU time). Only a call that would
    hold a window alone gets a zero window too."""
    model = build_model(EmbeddingModelConfig(id="crepe-tiny"))
    forward, sizes = model._forward, []

    def counted(windows: np.ndarray) -> np.ndarray:
        sizes.append(len(windows))
        return forward(windows)

    model._forward = counted  # type: ignore[method-assign]
    sr = model.sample_rate_hz
    for seconds, frames in ((1.0, 11), (3.2, 33), (0.6, 7)):
        sizes.clear()
        out = model.embed_batch([np.full(int(sr * seconds), 0.1, np.float32)])[0]
        assert len(out) == frames and sum(sizes) == frames + (frames % 32 == 1), (seconds, sizes)


def _config(root: Path, manifest: Path, store: Path) -> Path:
    cfg = {
        "run": {"run_id": "t", "store": str(store), "runs_dir": str(root / "runs"), "part_rows": 4},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(manifest)],
                "embedding_models": [{"id": "msd-musicnn", "batch_size": 4}],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    path = root / f"config-{store.name}-{manifest.stem}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_resumed_run_stores_the_bits_of_an_uninterrupted_one(ray_session, rendered_notes, tmp_path):
    """Every other track embedded first, the rest by the resumed run: each in other model calls (and places in them)
    than in one run of all. Before, resumed this way, 18 of 24 tracks' msd-musicnn embeddings differed by up to
    9.5e-7 from an uninterrupted run's."""
    rows = list(csv.DictReader(rendered_notes.open()))[:4]
    every = notes_manifest(rendered_notes, tmp_path / "all.csv", rows)
    half = notes_manifest(rendered_notes, tmp_path / "half.csv", rows[1::2])
    for manifest, store in ((every, "whole"), (half, "resumed"), (every, "resumed")):
        runner.stage_embed(
            runner.make_context(load_config(_config(tmp_path, manifest, tmp_path / store))), progress=False
        )
    whole, resumed = (
        pq.read_table(tmp_path / store / "notes" / "msd-musicnn" / "clean").sort_by("track_id")
        for store in ("whole", "resumed")
    )
    assert whole.num_rows == resumed.num_rows == len(rows)
    for col in ("track_id", "embedding", "n_frames"):
        assert whole.column(col).equals(resumed.column(col)), col
