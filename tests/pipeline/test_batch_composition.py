"""A clip's embedding does not depend on which clips share its model call: a rerun, and a resumed run (which embeds
only the missing tracks, in other batches), store the same bits on CPU — repeval's models (msd-musicnn on onnxruntime,
crepe, a transformers encoder, the handcrafted statistics; musicnn on TensorFlow: tests/models/test_families.py) and a
plugin's model that declares its own ``embed_batch`` is not batch-invariant."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.config.embed import EmbeddingModelConfig
from repeval.models import EmbeddingModel, build_model
from repeval.models.dummies import tiny_hf_model
from repeval.models.validate import ValidationReport, _run_checks
from repeval.pipeline.embedder import Embed
from repeval.testing.configs import notes_dataset, notes_manifest
from repeval.testing.plugins import plugins_forgotten

#: a plugin whose ``embed_batch`` pads the batch's clips to the longest and gives each its frames over the padded
#: length — a clip's mean then depends on the clips beside it — and says so (``batch_invariant = False``)
PADDING_PLUGIN = """
import numpy as np

from repeval.models import EmbeddingModel, register_model


@register_model("padded-spectra")
class PaddedSpectra(EmbeddingModel):
    description = "log spectra of clips zero-padded to the batch's longest"
    sample_rate_hz = 16000
    embedding_dim = 8
    batch_invariant = False

    def embed(self, audio):
        return self.embed_batch([audio])[0]

    def embed_batch(self, audios, offsets=None, n_frames=None):
        longest = -(-max(len(a) for a in audios) // 512) * 512
        frames = [np.pad(a, (0, longest - len(a))).reshape(-1, 512) for a in audios]
        return [np.log1p(np.abs(np.fft.rfft(f, axis=1))[:, :8]).astype(np.float32) for f in frames]
"""


@pytest.fixture(scope="module")
def tiny_data2vec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random data2vec-audio encoder (save_pretrained): its windows rounded by the call's size and their place
    in it, where wav2vec2's and HuBERT's tiny ones did not."""
    return tiny_hf_model(tmp_path_factory.mktemp("hf") / "data2vec", "data2vec-audio")


def _alone_and_together(model: EmbeddingModel, seconds: tuple[float, ...]) -> None:
    """Each clip embedded alone, then all together in two orders: the same bits."""
    embed = model.embed_batch
    rng = np.random.default_rng(1)
    sr = model.sample_rate_hz
    clips = [(0.1 * rng.standard_normal(int(sr * s))).astype(np.float32) for s in seconds]
    alone = [embed([c])[0] for c in clips]
    for order in (list(range(len(clips))), [2, 0, 3, 1, *range(4, len(clips))]):
        together = embed([clips[i] for i in order])
        for i, frames in zip(order, together, strict=True):
            np.testing.assert_array_equal(frames, alone[i], err_msg=f"clip {i} in batch order {order}")


@pytest.mark.parametrize("frames", ["window", "native"])
def test_a_transformers_window_is_the_same_alone_and_beside_others(tiny_data2vec: Path, frames: str) -> None:
    """Equal windows of several clips shared a forward pass: data2vec-audio rounded a window by the pass's size and
    its place in it (up to 3.7e-6 in a native frame). On the CPU each window now has a pass of its own."""
    model = build_model(
        EmbeddingModelConfig(id="d2v", type="hf-audio", params={"model": str(tiny_data2vec), "frames": frames})
    )
    _alone_and_together(model, (2.0, 2.0, 5.0, 2.0, 10.0, 2.0))


@pytest.mark.parametrize("model_id", ["msd-musicnn", "crepe-tiny", "logmel-stats", "chroma-stats"])
def test_a_clips_frames_are_the_same_alone_and_in_any_batch(model_id: str) -> None:
    """onnxruntime's musicnn rounded a patch by its place in the run (up to 1.9e-6), torch's crepe a window alone
    differently from one in a larger batch (1.5e-6: the 3.2-s clip's 33 windows alone end in a call of one)."""
    _alone_and_together(build_model(EmbeddingModelConfig(id=model_id)), (1.0, 3.2, 2.5, 4.0))


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


def _config(root: Path, manifest: Path, store: Path, models: list[dict[str, Any]]) -> Path:
    cfg = {
        "run": {"run_id": "t", "store": str(store), "runs_dir": str(root / "runs"), "part_rows": 4},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(manifest)],
                "embedding_models": models,
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
    9.5e-7 from an uninterrupted run's. A plugin's model that pads a batch's clips to the longest is checked through
    the embedding stage in one process below, a transformers encoder above, musicnn on TensorFlow in
    tests/models/test_families.py (each model through the engine is three more streams, each starting its actors)."""
    rng = np.random.default_rng(0)
    extra = []
    for name, seconds in (("short", 0.7), ("long", 2.3)):  # notes are 1.5 s: clips of other lengths beside them
        path = tmp_path / f"{name}.wav"
        sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
        extra.append((name, path, None))
    rows = list(csv.DictReader(rendered_notes.open()))[:4]
    every = notes_manifest(rendered_notes, tmp_path / "all.csv", rows, extra)
    ids = [r["track_id"] for r in rows] + ["short", "long"]
    half_rows = [r for r in csv.DictReader(every.open()) if r["track_id"] in ids[1::2]]
    half = tmp_path / "half.csv"
    with half.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(half_rows[0]))
        w.writeheader()
        w.writerows(half_rows)
    models = [{"id": "msd-musicnn", "batch_size": 4}]
    for manifest, store in ((every, "whole"), (half, "resumed"), (every, "resumed")):
        cfg = load_config(_config(tmp_path, manifest, tmp_path / store, models))
        runner.stage_embed(runner.make_context(cfg), progress=False)
    differ = []
    for model in ("msd-musicnn",):
        whole, resumed = (
            pq.read_table(tmp_path / store / "notes" / model / "clean").sort_by("track_id")
            for store in ("whole", "resumed")
        )
        assert whole.num_rows == resumed.num_rows == len(ids), model
        differ += [
            (model, c) for c in ("track_id", "embedding", "n_frames") if not whole.column(c).equals(resumed.column(c))
        ]
    assert differ == []


def test_validate_model_checks_embed_batch_as_a_run_calls_it_and_names_batch_invariant() -> None:
    """`repeval validate-model` called embed_batch with several clips whatever the model declared: a plugin that pads
    a call's clips to the longest and says ``batch_invariant = False`` (a run calls it one clip at a time) failed
    "embed_batch == embed", and one that does not say so was not told of the declaration."""
    namespace: dict[str, Any] = {}
    with plugins_forgotten():
        exec(PADDING_PLUGIN, namespace)  # the plugin source above, as a user file holds it
    padded = namespace["PaddedSpectra"]

    class Unsaid(padded):  # type: ignore[misc, valid-type]
        batch_invariant = True

    for cls, ok in ((padded, True), (type("Inherited", (padded,), {}), True), (Unsaid, False)):
        report = ValidationReport(cls.__name__, cls.__name__, "default")
        _run_checks(report, cls(), {}, ((0.3, 16000), (1.1, 16000)), 0)
        check = next(c for c in report.checks if c.name == "embed_batch == embed")
        assert check.ok is ok, (cls.__name__, check.detail)
    assert check.detail.endswith(
        "set batch_invariant = False on the model's class: a run then calls it one clip at a time"
    )


class _BatchOnly(EmbeddingModel):
    """A plugin's model that defines ``embed_batch`` alone (``embed`` is the base class's, not implemented) and says
    its clips' frames depend on the call's others; it cannot embed a clip under 0.1 s."""

    sample_rate_hz = 16000
    embedding_dim = 8
    batch_invariant = False

    def __init__(self) -> None:
        self.calls = 0

    def embed_batch(self, audios: list, offsets: Any = None, n_frames: Any = None) -> list:
        self.calls += 1
        if min(len(a) for a in audios) < 1600:
            raise ValueError("clip too short")
        return [np.full((1, 8), len(a), np.float32) for a in audios]


@pytest.mark.parametrize("invariant", [False, True])
def test_a_clip_that_fails_alone_fails_alone(invariant: bool) -> None:
    """A batch whose call raised on one clip had each of its clips embedded again through ``embed`` — a plugin that
    defines ``embed_batch`` alone then gave every clip an error record (NotImplementedError); with ``batch_invariant
    = False`` each clip's call ran twice. Each clip is now called alone through ``embed_batch``, once, its error its
    own."""
    emb = Embed(EmbeddingModelConfig(id="logmel-stats"))
    emb.model = model = type("Said", (_BatchOnly,), {"batch_invariant": invariant})()
    got = emb._embed_all([np.zeros(n, np.float32) for n in (16000, 800, 3200)], [0, 0, 0], [-1, -1, -1])
    assert [type(g).__name__ for g in got] == ["ndarray", "ValueError", "ndarray"], got
    assert model.calls == 3 + invariant  # the batch's call, then each clip's


def test_the_embedding_stage_calls_a_model_that_is_not_batch_invariant_one_clip_at_a_time() -> None:
    """A plugin's model that pads a call's clips to the longest says ``batch_invariant = False``: the embedding stage
    (actors and decode tasks alike) calls it one clip at a time, so each clip's frames are those it has alone —
    whichever clips share its batch in a run, a rerun or a resumed run. Before, it got the batch in one call: the
    short clips' frames were those of the longest clip's length (a resumed run stored other rows)."""
    namespace: dict[str, Any] = {}
    with plugins_forgotten():
        exec(PADDING_PLUGIN, namespace)  # the plugin source above, as a user file holds it
    emb = Embed(EmbeddingModelConfig(id="logmel-stats"))
    emb.model = model = namespace["PaddedSpectra"]()
    rng = np.random.default_rng(2)
    clips = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (11200, 36800, 4000)]
    alone = [model.embed_batch([c])[0] for c in clips]
    got = emb._embed_all(clips, [0, 0, 0], [-1, -1, -1])
    for i, frames in enumerate(got):
        assert isinstance(frames, np.ndarray), frames
        np.testing.assert_array_equal(frames, alone[i], err_msg=f"clip {i}")
