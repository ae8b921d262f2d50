"""Scenarios with a step that acts on the track as a whole (Reverse, Shift, LoudnessNormalization, AdjustDuration, …)
are applied to the whole decoded track and then cut into the model's windows; window-by-window scenarios (Gain, …)
keep streaming. Real music (a librosa example recording) in 1 s windows, so a track has several."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from repeval.audio import decode, iter_chunks
from repeval.config import Config
from repeval.config.embed import EmbeddingModelConfig
from repeval.deformations import Scenario, scenario_seed
from repeval.pipeline import stages
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.embedder import Embed
from repeval.pipeline.partitions import ModelSpec
from repeval.pipeline.stages import DecodeDeform, table_to_batch

SR = 8000
CHUNK_S = 1.0
MUSIC = "librosa_examples/audio/Kevin_MacLeod_-_Vibe_Ace.ogg"


@pytest.fixture(scope="module")
def tracks(shared_data, tmp_path_factory):
    """``music``: 4.3 s of a recording under a crescendo (each window louder than the one before), four 1 s windows;
    ``clip``: its first 0.8 s, one window; ``long``: two minutes of it."""
    d = tmp_path_factory.mktemp("whole")
    x = decode(str(shared_data / MUSIC), SR, 10.0)
    music = (x[: int(4.3 * SR)] * np.linspace(0.05, 1.0, int(4.3 * SR))).astype(np.float32)
    sf.write(d / "music.wav", music, SR, subtype="FLOAT")
    sf.write(d / "clip.wav", music[: int(0.8 * SR)], SR, subtype="FLOAT")
    sf.write(d / "long.wav", np.tile(x, 12)[: 120 * SR], SR, subtype="FLOAT")
    return d


def _rows(d, names, steps, seed=7, **kw):
    udf = DecodeDeform(SR, {"D1": steps}, seed, chunk_s=CHUNK_S, **kw)
    batch = {
        "track_id": np.array(names),
        "audio_path": np.array([str(d / f"{n}.wav") for n in names]),
        "split": np.array(["test"] * len(names)),
        "scenarios": [np.array(["clean", "D1"]) for _ in names],
    }
    return table_to_batch(pa.concat_tables(udf(batch)))


def _select(out, tid, sid):
    return (out["track_id"] == tid) & (out["scenario"] == sid)


@pytest.mark.parametrize(
    "step",
    [
        ("Reverse", {"p": 1.0}),
        ("Shift", {"min_shift": 0.3, "max_shift": 0.3, "p": 1.0}),
        ("LoudnessNormalization", {"min_lufs": -20.0, "max_lufs": -20.0, "p": 1.0}),
    ],
    ids=lambda s: s[0],
)
def test_a_track_level_scenario_is_the_transform_of_the_whole_track_cut_into_windows(tracks, step):
    out = _rows(tracks, ["music", "clip"], [step])
    assert not any(out["error"])
    for tid in ("music", "clip"):
        path = str(tracks / f"{tid}.wav")
        expected, sampled = Scenario("D1", [step])(decode(path, SR), SR, scenario_seed(7, tid, "D1"))
        d1 = _select(out, tid, "D1")
        windows = [len(w) for w in iter_chunks(path, SR, CHUNK_S)]
        # the whole track deformed at once, bit for bit, in the windows the clean track has
        np.testing.assert_array_equal(np.concatenate(list(out["audio"][d1])), expected)
        assert [len(a) for a in out["audio"][d1]] == [len(a) for a in out["audio"][_select(out, tid, "clean")]]
        assert [len(a) for a in out["audio"][d1]] == windows and len(windows) == (4 if tid == "music" else 1)
        assert list(out["n_chunks"][d1]) == [0] * (len(windows) - 1) + [len(windows)]
        # the parameters sampled for the track, stored with every chunk
        assert set(out["deformation_params"][d1]) == {json.dumps(sampled)}


def test_a_track_level_step_that_changes_the_length_is_chunked_and_assembled_by_its_deformed_length(tracks):
    """AdjustDuration to 2.2 s: the 4.3 s track is cut to 2.2 s and the 0.8 s clip padded to it — two windows
    each, and the stored row says 2.2 s of audio in two chunks (window by window, each window became 2.2 s)."""
    step = ("AdjustDuration", {"duration_seconds": 2.2, "p": 1.0})
    rows = _rows(tracks, ["music", "clip"], [step])
    emb = Embed(EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR, "chunk_s": CHUNK_S}), threads=1)
    block, errors = TrackAssembler(keep_frames=False).add(emb(rows))
    assert not len(errors) and block is not None
    cols = (block.track_id, block.scenario, block.n_chunks, block.audio_seconds)
    got = {(t, s): (int(n), float(a)) for t, s, n, a in zip(*cols, strict=True)}
    assert got[("music", "D1")] == (2, pytest.approx(2.2)) and got[("clip", "D1")] == (2, pytest.approx(2.2))
    assert got[("music", "clean")] == (4, pytest.approx(4.3)) and got[("clip", "clean")] == (1, pytest.approx(0.8))


def test_a_track_longer_than_the_limit_is_an_error_record_in_a_track_level_scenario_only(tracks):
    out = _rows(tracks, ["music", "clip"], [("Reverse", {"p": 1.0})], whole_track_max_s=2.0)
    music = _select(out, "music", "D1")
    assert list(out["stage"][music]) == ["deform"] and list(out["n_chunks"][music]) == [1]
    (reason,) = out["error"][music]
    assert "track longer than 2 s" in reason and "Reverse" in reason
    assert "run.deform_whole_track_max_s" in reason and "--retry-errors" in reason
    # the clean track and the short clip are unaffected
    assert len(out["audio"][_select(out, "music", "clean")]) == 4 and not any(out["error"][~music])
    # a window-by-window scenario streams past the limit
    gain = _rows(
        tracks, ["music"], [("Gain", {"min_gain_db": -6.0, "max_gain_db": -6.0, "p": 1.0})], whole_track_max_s=2.0
    )
    assert not any(gain["error"]) and len(gain["audio"][_select(gain, "music", "D1")]) == 4


def test_a_window_by_window_scenario_streams_and_a_track_level_one_holds_the_track(tracks, monkeypatch):
    """Memory as numpy reports it to tracemalloc, two minutes of audio in 1 s windows, output tables flushed and
    dropped as they come: Gain holds a few windows and read blocks; Reverse holds the track and its reversed copy."""
    monkeypatch.setattr(stages, "MAX_BATCH_SAMPLES", 2 * SR)
    track_bytes = 120 * SR * 4
    peaks = {}
    for name in ("Gain", "Reverse"):
        udf = DecodeDeform(SR, {"D1": [(name, {"p": 1.0})]}, 0, chunk_s=CHUNK_S)
        batch = {
            "track_id": np.array(["long"]),
            "audio_path": np.array([str(tracks / "long.wav")]),
            "split": np.array(["test"]),
            "scenarios": [np.array(["D1"])],
        }
        udf._scenarios()  # builds the transforms (and imports audiomentations) before measuring
        tracemalloc.start()
        try:
            rows = sum(t.num_rows for t in udf(batch))
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert rows == 120
    assert peaks["Gain"] < track_bytes / 2 < track_bytes < peaks["Reverse"], peaks


def test_the_partition_fingerprint_says_a_scenario_is_deformed_whole():
    """A partition computed window by window (before) is not completed with whole-track rows: the fingerprint differs
    for a scenario with a track-level step — and only for one, and only for a chunked model."""
    cfg = Config.model_validate(
        {
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "x"}],
                    "deformations": [
                        {"name": "gain", "steps": [{"type": "Gain", "params": {"p": 1}}]},
                        {"name": "rev", "steps": [{"type": "Gain", "params": {"p": 1}}, {"type": "Reverse"}]},
                    ],
                    "embedding_models": ["mfcc-stats", {"id": "logmel-stats", "params": {"chunk_s": None}}],
                    "downstream_models": [{"type": "classifier", "hidden_units": []}],
                }
            ],
            "run": {"deform_whole_track_max_s": None},
        }
    )
    assert cfg.run.deform_whole_track_max_s is None
    assert Config.model_validate({**cfg.model_dump(), "run": {}}).run.deform_whole_track_max_s == 1200
    exp = cfg.experiments[0]
    ds = exp.datasets[0]
    chunked, whole_file = (ModelSpec.of(cfg, m) for m in exp.embedding_models)
    assert chunked.partition(cfg, exp, ds, "rev").fingerprint["deformed"] == "whole track"
    assert "deformed" not in chunked.partition(cfg, exp, ds, "gain").fingerprint
    assert "deformed" not in chunked.partition(cfg, exp, ds, "clean").fingerprint
    assert "deformed" not in whole_file.partition(cfg, exp, ds, "rev").fingerprint  # one window: as before
    # mfcc-stats states its frame geometry: a chunked partition's windows overlap (tests/pipeline/test_seams.py)
    assert {chunked.partition(cfg, exp, ds, sid).fingerprint["windows"] for sid in ("clean", "gain")} == {"overlapped"}
    assert "windows" not in whole_file.partition(cfg, exp, ds, "clean").fingerprint
    with pytest.raises(ValueError, match="deform_whole_track_max_s"):
        Config.model_validate({**cfg.model_dump(), "run": {"deform_whole_track_max_s": 0}})


def test_non_finite_samples_out_of_a_whole_track_scenario_are_an_error_record(tracks):
    """As in a streamed scenario: a step that fails on the whole track (900 dB of gain after a Reverse overflows) is
    that scenario's error record; the clean windows still come."""
    steps = [("Reverse", {"p": 1.0}), ("Gain", {"min_gain_db": 900.0, "max_gain_db": 900.0, "p": 1.0})]
    out = _rows(tracks, ["music"], steps)
    d1 = _select(out, "music", "D1")
    assert list(out["stage"][d1]) == ["deform"] and list(out["n_chunks"][d1]) == [1]
    assert "non-finite" in out["error"][d1][0]
    assert len(out["audio"][_select(out, "music", "clean")]) == 4
