"""``repeval plan``'s frame memory before embedding — MiB per minute of audio from the frame rate and dimension a model
declares without loading weights (:func:`repeval.plan_memory.frame_rate`) — against the frames the model gives on a
real recording: basic-pitch (its shipped ONNX model) and a transformers encoder (a small one saved locally: its config
gives the rate), built here and given the whole decoded track; the Essentia graphs (stand-in graphs through essentia's
own algorithms, which cut the patches), which run in a process of their own, through a real embed into the store."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from repeval import runner
from repeval.audio.decode import decode
from repeval.config import parse_config
from repeval.models import build_model
from repeval.plan import make_plan
from repeval.plan_memory import frame_rate

TRACK = "librosa_examples/audio/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg"  # 45.8 s: two 30-s windows


def _hf(workdir: Path) -> list[dict[str, Any]]:
    from repeval.models.dummies import tiny_hf_model

    model = str(tiny_hf_model(workdir / "tiny-rates-hubert", "hubert"))
    return [
        {"id": "hf-window", "type": "hf-audio", "params": {"model": model, "window_s": 2.0}},
        {"id": "hf-native", "type": "hf-audio", "params": {"model": model, "frames": "native"}},
    ]


def _essentia(workdir: Path) -> list[dict[str, Any]]:
    from repeval.models.dummies import ESSENTIA_FAMILIES, write_essentia_dummies

    names = [n for n in ESSENTIA_FAMILIES if n != "openl3"]  # openl3: its own hop_s, known before
    write_essentia_dummies(workdir, tuple(names))
    hop = {"id": "vggish-hop-31", "type": "vggish-audioset", "params": {"patchHopSize": 31}}  # a patch every 0.31 s
    models: list[dict[str, Any]] = [{"id": n, "params": {}} for n in names] + [hop]
    for m in models:
        m["params"]["graph_path"] = str(workdir / f"dummy-{m.get('type', m['id'])}.pb")
    return models


def _extent_s(model_id: str) -> float:
    """What one frame reads (seconds): the frames of a piece of audio embedded alone fall short of its length over
    the hop by this much less one hop, and a fraction of a frame (0: less than a hop)."""
    from repeval.models import MODELS

    if model_id not in MODELS.names():
        return 0.0  # hf: one frame per equal window, or the front-end's receptive field (less than a hop here)
    cls: Any = MODELS.get(model_id).cls
    return cls.min_samples / cls.rate if hasattr(cls, "min_samples") else 0.0


FAMILIES = {
    "basic-pitch": lambda _: [
        {"id": "basic-pitch"},
        {"id": "bp-note", "type": "basic-pitch", "params": {"outputs": ["note"]}},
    ],
    "hf": _hf,
    "essentia": _essentia,
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_frame_memory_per_minute_is_the_frames_a_real_embed_stores(
    ray_session, shared_data, dummy_dir, tmp_path, family
):
    """Before embedding, ``repeval plan`` said "not known" for these families (their frame rate lives in the
    package's constants, the model config or essentia's patch hop — ``patchHopSize``, which a config can set: it was
    refused); it now gives MiB per minute of audio, and the
    model's frames of a real 45.8-s recording have the dimension it names and, within each piece's edge (the whole
    track; the Essentia graphs: each 30-s window the store's rows were embedded in), as many frames."""
    models = FAMILIES[family](dummy_dir)
    manifest = tmp_path / "m.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows(
            [["track_id", "audio_path", "label", "split"], ["t", shared_data / TRACK, "a", "train"]]
        )
    cfg = parse_config(
        {
            "run": {
                "run_id": "rates",
                "store": str(tmp_path / "store"),
                "runs_dir": str(tmp_path / "runs"),
                # one embedding actor per model: the track's two windows need no more, and each actor of the pool
                # loads essentia and its graph (seconds of CPU)
                "resources": {"embed_actors": 1},
            },
            "experiments": [
                {
                    "task": {"name": "t", "type": "multiclass_classification", "embedding_aggregation": "prediction"},
                    "datasets": [
                        {
                            "name": "d",
                            "type": "catalog",
                            "manifest": str(manifest),
                            "label_column": "label",
                            "split_column": "split",
                        }
                    ],
                    "embedding_models": models,
                    "downstream_models": [{"name": "linear", "hidden_units": []}],
                }
            ],
        }
    )
    before = make_plan(cfg).memory
    assert len(before) == len(models)
    embedded = family == "essentia"  # the others: built here (no process of their own), the whole track at once
    if embedded:
        assert runner.stage_embed(runner.make_context(cfg), progress=False).errors == 0
    for m, line in zip(cfg.experiments[0].embedding_models, before, strict=True):
        rate = frame_rate(m)
        assert rate is not None, line
        hop_s, dim = rate
        assert f"{60 / hop_s * dim * 4 / 2**20:.3g} MiB per minute of training audio ({dim}-d frames" in line, line
        if embedded:
            part = tmp_path / "store" / "d" / m.id / "clean"
            t = pq.read_table(part, columns=["n_frames", "n_chunks", "audio_seconds"])
            assert pq.read_schema(next(part.glob("*.parquet"))).field("embedding").type.list_size == dim, m.id
            n_frames, pieces, seconds = (t.column(c)[0].as_py() for c in ("n_frames", "n_chunks", "audio_seconds"))
        else:
            model = build_model(m)
            audio = decode(str(shared_data / TRACK), model.sample_rate_hz)
            (frames,) = model.embed_batch([audio])
            assert np.asarray(frames).shape[1] == dim == model.embedding_dim, m.id
            n_frames, pieces, seconds = len(frames), 1, len(audio) / model.sample_rate_hz
        estimate = seconds / hop_s
        # the pieces embedded alone: the pipeline's 30-s windows (or the whole track), and an hf encoder's equal
        # windows within them
        if m.params.get("frames") == "native":
            pieces += math.ceil(seconds / m.params.get("window_s", 5.0))
        slack = pieces * max(1.0, _extent_s(m.type or m.id) / hop_s)
        assert abs(n_frames - estimate) <= slack, (m.id, n_frames, estimate, slack)
