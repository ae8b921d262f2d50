"""A long track reaches a model in windows; for a model that declares where its frames lie (its frame geometry),
the windows are invisible: the frames the pipeline's stages give equal those the model gives on the whole track."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pa_compute
import pytest
import soundfile as sf

from repeval.audio import chunk_blocks, decode
from repeval.audio.decode import window_sizes
from repeval.config.embed import EmbeddingModelConfig
from repeval.models import resolve_model
from repeval.models.base import FrameGeometry
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.embedder import Embed
from repeval.pipeline.partitions import model_geometry, window_s
from repeval.pipeline.stages import DecodeDeform

SR = 22050
#: a streamed scenario (noise seeded per window, a gain sampled for the track) and a track-level one
SCENARIOS = {
    "noisy": [("Gain", {"min_gain_db": -9, "max_gain_db": -3, "p": 1}), ("AddGaussianNoise", {"p": 1})],
    "reversed": [("Reverse", {"p": 1})],
}


def _track(path: Path, seconds: float) -> str:
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t / 5)) + noise).astype(np.float32), SR)
    return str(path)


def _pipeline(model_cfg: EmbeddingModelConfig, path: str, scenarios: dict) -> tuple[dict, DecodeDeform, Embed]:
    """The stages a stream runs (decode and deform, embed, assemble) on one track in every scenario: its rows by
    scenario, the decoder and the embedder."""
    fam, params = resolve_model(model_cfg)
    embed = Embed(model_cfg, keep_frames=True)
    chunk_s = float(params["chunk_s"])
    decoder = DecodeDeform(
        embed.model.sample_rate_hz, scenarios, 7, chunk_s=chunk_s, geometry=model_geometry(fam, params)
    )
    batch = {
        "track_id": np.array(["t"]),
        "audio_path": np.array([path]),
        "split": np.array(["test"]),
        "scenarios": np.array([["clean", *scenarios]], dtype=object),
    }
    assembler, rows = TrackAssembler(keep_frames=True), {}
    for table in decoder(batch):
        block, errors = assembler.add(embed(table))
        assert not len(errors), errors.reason
        for i in range(0 if block is None else len(block)):
            rows[str(block.scenario[i])] = {k: v[i] for k, v in block.__dict__.items()}
    return rows, decoder, embed


@pytest.mark.parametrize("seconds", [10.0, 11.3])
def test_frames_of_a_track_of_several_windows_are_the_whole_tracks(tmp_path: Path, seconds: float) -> None:
    """mfcc-stats in 3-s windows: a track of 3–4 windows gets, clean, the frames of the whole decoded track (count
    exact, values to float tolerance); window by window alone it lost frames at each window edge. Deformed window by
    window, the model reads the windows as deformed in their own windows (a window's context from its neighbour
    gets that neighbour's noise); deformed whole (Reverse), it reads the reversed track."""
    path = _track(tmp_path / "long.wav", seconds)
    cfg = EmbeddingModelConfig(id="mfcc-stats", params={"chunk_s": 3.0})
    rows, decoder, embed = _pipeline(cfg, path, SCENARIOS)
    model = embed.model
    whole = decode(path, SR)
    geometry = type(model).frame_geometry({})
    # the noisy scenario's track: its windows (on the model's frame grid) as the decoder deforms each
    streamed = DecodeDeform(SR, SCENARIOS, 7, chunk_s=3.0)
    scenario = streamed._scenarios()["noisy"]
    windows = list(chunk_blocks([whole], SR, 3.0, *decoder._grid()))
    noisy = np.concatenate([streamed._deform(scenario, "t", "noisy", i, w)[0] for i, w in enumerate(windows)])
    for sid, audio in (("clean", whole), ("noisy", noisy), ("reversed", whole[::-1].copy())):
        row, expected = rows[sid], model.embed(audio)
        assert len(expected) == geometry.count(len(audio))
        assert row["n_chunks"] == len(windows) >= 3 and row["n_frames"] == len(expected), sid
        np.testing.assert_allclose(np.stack(row["frames"]), expected, rtol=1e-5, atol=1e-5, err_msg=sid)
        np.testing.assert_allclose(row["embedding"], expected.mean(axis=0), rtol=1e-5, atol=1e-5, err_msg=sid)
        assert abs(row["audio_seconds"] - seconds) < 1e-3, sid
    assert np.abs(noisy - whole).max() > 1e-3  # (the noise is there)


def test_a_track_of_one_window_reaches_the_model_as_before(tmp_path: Path) -> None:
    """Below 1.5 windows a track is one window, embedded whole: the same bits as without a frame geometry."""
    path = _track(tmp_path / "short.wav", 4.4)
    cfg = EmbeddingModelConfig(id="mfcc-stats", params={"chunk_s": 3.0})
    rows, _, embed = _pipeline(cfg, path, {})
    expected = embed.model.embed(decode(path, SR))
    assert rows["clean"]["n_chunks"] == 1
    np.testing.assert_array_equal(np.stack(rows["clean"]["frames"]), expected)
    np.testing.assert_array_equal(rows["clean"]["embedding"], expected.mean(axis=0))


@pytest.mark.parametrize(
    "params",
    [{}, {"hop_s": 0.25, "window_s": 0.5, "n_fft": 1024, "sample_rate_hz": 16000}, {"hop_s": 2.0, "window_s": 0.3}],
)
@pytest.mark.parametrize("model_id", ["mfcc-stats", "logmel-stats", "chroma-stats"])
def test_handcrafted_frame_geometry_counts_the_models_frames(model_id: str, params: dict) -> None:
    """The handcrafted statistics' frame count, at lengths around one frame's extent and its hops."""
    fam, merged = resolve_model(EmbeddingModelConfig(id=model_id, params=params))
    model, geometry = fam.cls(**merged), fam.cls.frame_geometry(merged)
    assert isinstance(geometry, FrameGeometry) and geometry.left == 0
    rng = np.random.default_rng(0)
    for n in (10, 1000, geometry.span - 1, geometry.span, geometry.span + geometry.hop - 1, geometry.span + geometry.hop,
              5 * geometry.hop + 17, 123457):  # fmt: skip
        assert len(model.embed(0.1 * rng.standard_normal(n).astype(np.float32))) == geometry.count(n), n


def test_window_sizes_fall_on_the_frame_grid_and_cut_tracks_where_they_were() -> None:
    """Windows on a grid of hops: each but the last a whole number of hops, at least the minimum size; the track is
    one window below 1.5 × chunk_s whatever the grid, and the last window holds at least half a window."""
    from repeval.audio.decode import window_sizes

    assert window_sizes(8000, 5.0) == (40000, 60000)
    size, hold = window_sizes(22050, 30.0, 11264, 47104)
    assert size % 11264 == 0 and size <= 661500 and hold == 661500 + 330750
    assert window_sizes(16000, 1.0, 47872, 95744) == (95744, 143616)  # a window below the minimum: raised to it
    rng = np.random.default_rng(1)
    for n in (10, 59999, 60000, 95743, 143615, 143616, 400000):
        audio = rng.standard_normal(n).astype(np.float32)
        cut = list(chunk_blocks([audio[:1000], audio[1000:]], 16000, 3.0, 4096, 20000))
        size, hold = window_sizes(16000, 3.0, 4096, 20000)
        assert np.array_equal(np.concatenate(cut), audio)
        assert (len(cut) == 1) == (n < hold)
        assert all(len(c) == size for c in cut[:-1]) and (len(cut) == 1 or len(cut[-1]) >= size // 2)


@pytest.mark.parametrize(
    ("model_id", "params", "chunk_s", "seconds"),
    [
        ("clmr-v2", {}, 3.0, 15.0),  # 2.68-s windows end to end; the track's last 1.6 s in a zero-padded one
        ("clmr-v2", {"hop_s": 2.0}, 3.0, 15.0),  # overlapping: a window's last frame reads 0.68 s of the next
        ("neuralfp", {}, 2.0, 6.1),
        ("crepe-tiny", {}, 1.0, 3.3),  # 64-ms frames every 0.1 s: half a frame before, a window's last 68 ms out
        ("crepe-tiny", {"hop_s": 0.025}, 1.0, 3.3),  # frames read past their hop: the next window's first 23 ms in
        ("mule", {}, 3.0, 20.5),
        ("pesto", {}, 0.5, 1.3),  # 256-ms CQT frames every 10 ms: the next window's first 118 ms in
    ],
)
def test_frames_of_a_track_of_several_windows_are_the_whole_tracks_in_each_family(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_id: str, params: dict, chunk_s: float, seconds: float
) -> None:
    """CLMR, NeuralFP, CREPE, MULE and PESTO (stand-in or shipped weights) on a track of 3 windows of a small
    ``chunk_s`` through the pipeline's stages give the frames of the model on the whole decoded track — window by window
    alone each window had frames of its own grid and edges (CLMR: one 2.68-s window per 3-s window, dropping the rest).
    The model computes no frame on a window's context, before it or after it — where a frame reads past its hop
    (crepe-tiny at a 25-ms hop, pesto), it is told how many frames a window keeps (its geometry ``stops``) and computes
    none centred on the next window's start (it computed 1 and 12 at each window edge) — and a row's
    ``audio_seconds`` is the track's. MULE's slices are embedded one by one, so a small network reading all of each
    slice stands in for its SF-NFNet (63M parameters: ~10 s to save, load and run here; the contract test runs it):
    the slices it read through the pipeline are the whole track's, and its frames their outputs."""
    from repeval.models.dummies import dummy_params

    if model_id == "mule":
        import torch

        import repeval.models.mule

        def small_net() -> torch.nn.Module:  # (slices, 1, 96 mels, 300 frames) -> (slices, 1728)
            conv = torch.nn.Conv2d(1, 4, (96, 10), stride=(1, 10))
            return torch.nn.Sequential(conv, torch.nn.Flatten(), torch.nn.Linear(4 * 30, 1728))

        monkeypatch.setattr(repeval.models.mule, "build_sfnfnet", small_net)
    cfg = EmbeddingModelConfig(
        id=model_id, params={**dummy_params(model_id, tmp_path / "w"), **params, "chunk_s": chunk_s}
    )
    path = _track(tmp_path / "long.wav", seconds)
    computed, embed_all, asked = [0], Embed._embed_all, []

    def counting(self: Embed, *args: list) -> list:
        out = embed_all(self, *args)
        computed[0] += sum(len(r) for r in out)  # the frames the model gave, before those on context are dropped
        return out

    monkeypatch.setattr(Embed, "_embed_all", counting)
    fam, merged = resolve_model(cfg)
    family, geometry = fam.cls, model_geometry(fam, merged)
    embed_batch = family.embed_batch
    monkeypatch.setattr(family, "embed_batch", lambda m, audios, **kw: asked.append(kw) or embed_batch(m, audios, **kw))
    read: list[tuple[np.ndarray, np.ndarray]] = []
    if model_id == "mule":
        forward = family._forward
        monkeypatch.setattr(family, "_forward", lambda m, w: read.append((w, forward(m, w))) or read[-1][1])
    rows, _, embed = _pipeline(cfg, path, {})
    row = rows["clean"]
    whole = decode(path, embed.model.sample_rate_hz)
    if read:
        slices = embed.model._windows(whole)
        # a zero window given a call that would hold one window alone is not the track's
        real = [(w[i], f[i]) for w, f in read for i in range(len(w)) if w[i].any()]
        np.testing.assert_allclose(np.stack([w for w, _ in real]), slices, rtol=1e-4, atol=1e-4)
        expected = np.stack([f for _, f in real])
    else:
        expected = embed.model.embed(whole)
    assert row["n_frames"] == len(expected) > 3 and row["n_chunks"] == 3
    # pesto's 4,096-tap CQT convolution rounds by its input's length: frames anywhere in a window (not only at its
    # edges) differ by up to 1.3e-4 on a scale of 1; a window's edge frame computed on that window alone, by up to 1
    atol = 5e-4 if model_id == "pesto" else 1e-5
    np.testing.assert_allclose(np.stack(row["frames"]), expected, rtol=1e-5, atol=atol)
    assert computed[0] == len(expected)
    assert geometry.count(len(whole)) == len(expected)
    # told how many frames each window keeps only where its frame geometry says it stops there
    told = [n for kw in asked for n in kw.get("n_frames", ())]
    assert bool(told) == geometry.stops == (model_id in ("crepe-tiny", "pesto")), asked
    assert not told or sum(told) == len(expected)  # each window's own frames
    assert abs(row["audio_seconds"] - seconds) < 1e-3


def test_frame_geometries_count_the_frames_of_clmr_neuralfp_crepe_and_mule() -> None:
    """Each family's frames at lengths around one frame's extent, its hop and half a hop (CLMR's and NeuralFP's
    zero-padded tail window), without running a network: the windows the model would feed it. MULE has no geometry
    below 152 frames of hop (its first slice would read the clip's padding)."""
    from repeval.models._common import frame_starts
    from repeval.models.clmr import CLMR, WINDOW
    from repeval.models.crepe import CrepeTiny
    from repeval.models.mule import MULE, slice_centres
    from repeval.models.neuralfp import SEGMENT, NeuralFPModel

    crepe = object.__new__(CrepeTiny)
    for family, params in [
        (CLMR, {}), (CLMR, {"hop_s": 1.0}), (CLMR, {"hop_s": 6.0}), (NeuralFPModel, {}), (NeuralFPModel, {"hop_s": 0.3}),
        (CrepeTiny, {}), (CrepeTiny, {"hop_s": 0.01}), (MULE, {}), (MULE, {"hop_frames": 152}), (MULE, {"hop_frames": 500}),
    ]:  # fmt: skip
        g = family.frame_geometry(params)
        assert g is not None
        for n in {1, 999, g.span - 1, g.span, g.span + g.tail - 1, g.span + g.tail, g.span + g.hop - 1,
                  g.span + g.hop, 3 * g.hop + 7, 48000, 123457} - {0, -1}:  # fmt: skip
            if family is CLMR or family is NeuralFPModel:
                got = len(frame_starts(n, WINDOW if family is CLMR else SEGMENT, g.hop))
            elif family is CrepeTiny:
                crepe.hop = g.hop
                got = len(crepe._windows(np.zeros(n, np.float32)))
            else:
                got = len(slice_centres(1 + max(n, 3 * 16000) // 160, g.hop // 160))
            assert got == g.count(n), (family.name, params, n)
    assert MULE.frame_geometry({"hop_frames": 151}) is None


def test_a_chunk_s_below_the_models_shortest_window_is_said_with_the_window_used(
    tmp_path: Path, rendered_notes: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A window holds whole hops of the model's frames and at least twice what a frame reads: a ``chunk_s`` below
    that (msd-musicnn below 5.984 s; mfcc-stats at a 2-s hop below 2 s) was raised to it silently. ``repeval plan``
    (and the embedding stage) now warns, once, naming the windows the track is cut into — those the decoder cuts;
    a ``chunk_s`` set to that value, or the model's own, is not warned about."""
    import logging

    from repeval.config import parse_config
    from repeval.plan import make_plan
    from repeval.warn import reset_warned

    def plan(params: dict) -> list[str]:
        raw = {
            "run": {"run_id": "w", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")},
            "experiments": [{
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": str(rendered_notes),
                              "label_column": "instrument", "split_column": "split"}],
                "embedding_models": [{"id": "mfcc-stats", "params": {"hop_s": 2.0, "window_s": 0.3, **params}}],
                "downstream_models": [{}],
            }],
        }  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="repeval"):
            make_plan(parse_config(raw))
            make_plan(parse_config(raw))
        return [r.getMessage() for r in caplog.records if "chunk_s" in r.getMessage()]

    reset_warned()
    said = plan({"chunk_s": 1.0})
    assert len(said) == 1 and said[0].startswith("mfcc-stats: params.chunk_s 1 s is shorter than its windows"), said
    # the value that cuts the same windows (22,050 Hz: 44,032 samples; 1.997 s would be 44,034, a track's second
    # window starting 2 samples later) — its partitions are those of chunk_s 1 (their fingerprints' window)
    assert "cut into windows of 1.9969 s; set chunk_s: 1.9969 (or more)" in said[0]
    assert plan({"chunk_s": 1.9969}) == [] and plan({}) == [] and plan({"chunk_s": 4.0}) == []
    windows = [window_s(*resolve_model(EmbeddingModelConfig(id="mfcc-stats", params={"hop_s": 2.0, "window_s": 0.3,
               "chunk_s": c})), 22050) for c in (1.0, 1.9969, 1.997)]  # fmt: skip
    assert windows == [1.9969, 1.9969, 1.997]
    # the windows the decoder cuts a long track into
    cfg = EmbeddingModelConfig(id="mfcc-stats", params={"hop_s": 2.0, "window_s": 0.3, "chunk_s": 1.0})
    decoder = DecodeDeform(SR, {}, 7, chunk_s=1.0, geometry=model_geometry(*resolve_model(cfg)))
    batch = {"track_id": np.array(["t"]), "audio_path": np.array([_track(tmp_path / "long.wav", 9.0)]),
             "split": np.array(["test"]), "scenarios": np.array([["clean"]], dtype=object)}  # fmt: skip
    table = next(iter(decoder(batch)))
    audio, context = table.column("audio").to_pylist(), table.column("context").to_pylist()
    windows = [len(a) - c for a, c in zip(audio, context, strict=True)]
    assert windows[:-1] == [44032] * 4 and f"{44032 / SR:.3f}" == "1.997"  # one of its hops


#: basic-pitch's own inference on its ONNX model, tensorflow kept out (``import basic_pitch`` imports it when present)
_RUN_INFERENCE = r"""
import os, sys
sys.modules["tensorflow"] = None
import numpy as np
import basic_pitch
from basic_pitch.inference import Model, run_inference
onnx = os.path.join(os.path.dirname(basic_pitch.__file__), "saved_models", "icassp_2022", "nmp.onnx")
out = run_inference(sys.argv[1], Model(onnx))
np.save(sys.argv[2], np.concatenate([out["contour"], out["note"], out["onset"]], axis=1))
"""

LONG_SONG = "librosa_examples/audio/Karissa_Hobbs_-_Lets_Go_Fishin.ogg"  # 133 s


@pytest.fixture(scope="module")
def run_inference_frames(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """``basic_pitch.inference.run_inference``'s contour ⊕ note ⊕ onset frames of a 133-s song (a subprocess)."""
    import subprocess
    import sys

    pytest.importorskip("onnxruntime")
    pytest.importorskip("basic_pitch")
    out = tmp_path_factory.mktemp("run_inference") / "frames.npy"
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_INFERENCE, str(shared_data / LONG_SONG), str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out)


@pytest.mark.parametrize("chunk_s", [30.0, 5.0])
def test_basic_pitch_frames_of_a_long_track_are_run_inferences(
    shared_data: Path, run_inference_frames: np.ndarray, chunk_s: float
) -> None:
    """basic-pitch on a 133-s song in windows (4 of 30 s, 27 of 5 s) through the pipeline's stages gives
    ``run_inference``'s frames of the whole song, equal to the bit: its windows fall on basic-pitch's 36,164-sample
    grid, each reaching the model with 3,840 samples of its neighbours each side (the model's 2-s windows of the whole
    song), and the song's frames are cut at 86 a second. Window by window alone it had 3 frames fewer and frames at
    each window edge up to 0.87 away."""
    cfg = EmbeddingModelConfig(id="basic-pitch", params={"chunk_s": chunk_s})
    rows, _, _ = _pipeline(cfg, str(shared_data / LONG_SONG), {})
    row = rows["clean"]
    assert row["n_chunks"] == (4 if chunk_s == 30.0 else 27)
    np.testing.assert_array_equal(np.stack(row["frames"]), run_inference_frames)
    assert row["n_frames"] == len(run_inference_frames)


@pytest.mark.parametrize(("chunk_s", "windows"), [(30.0, 82), (5.0, 160)])
def test_basic_pitch_rows_of_any_track_are_run_inferences_count(tmp_path: Path, chunk_s: float, windows: int) -> None:
    """basic-pitch's 2-s windows give 142 rows per 36,164 samples — 86.58 a second — and ``run_inference`` cuts a
    track's rows to 86 a second of it, so the cut falls 0.67% of the track before its end: before its last window
    past about 39 minutes at 30-s windows (40.6 min here, its last window the shortest, 15.5 s), several windows
    before it at 5-s windows (13.2 min). The decoder reads ahead as far as it
    must to know where the cut falls, and each window keeps the rows before it (none past it): the track's rows are
    ``run_inference``'s count, through the decoder's own loop, clean and deformed whole (Reverse). Before, the
    windows before the last kept their rows whole (up to 300 rows more here) and the last kept one; a window that
    keeps none reaches the embedder, which gives it no frame and calls no model, as a window that does keep rows."""
    from repeval.models.basicpitch import FPS, BasicPitch

    g = BasicPitch.frame_geometry({})
    model = object.__new__(BasicPitch)
    for n in (300, g.hop - g.left, g.hop - g.left + 1, 3 * g.hop + 7, 123457):
        assert len(model._windows(np.zeros(n, np.float32))) == g.count(n)
        assert g.count_rows(n) == int(np.floor(n * FPS / SR)) <= g.count(n) * g.rows
    decoder = DecodeDeform(SR, {}, 7, chunk_s=chunk_s, geometry=g)
    size, hold = window_sizes(SR, chunk_s, *decoder._grid())
    n = windows * size + hold - size + 100  # silence (only the arithmetic is at stake), in a small FLAC file
    path = tmp_path / "long.flac"
    with sf.SoundFile(path, "w", SR, 1, format="FLAC", subtype="PCM_16") as fh:
        for start in range(0, n, 1 << 22):
            fh.write(np.zeros(min(1 << 22, n - start), np.int16))
    scenarios = {"reversed": [("Reverse", {"p": 1})]} if n <= 1200 * SR else {}
    decoder = DecodeDeform(SR, scenarios, 7, chunk_s=chunk_s, geometry=g)
    batch = {
        "track_id": np.array(["t"]),
        "audio_path": np.array([str(path)]),
        "split": np.array(["test"]),
        "scenarios": np.array([["clean", *scenarios]], dtype=object),
    }
    keeps: dict[str, list[int]] = {sid: [] for sid in ["clean", *scenarios]}
    tail = None
    for table in decoder(batch):
        assert not any(table.column("error").to_pylist())
        for sid, keep in zip(table.column("scenario").to_pylist(), table.column("keep").to_pylist(), strict=True):
            keeps[sid].append(keep)
        tail = table.filter(pa_compute.equal(table.column("scenario"), "clean"))
    rows = [size // g.hop * g.rows] * (len(keeps["clean"]) - 1)
    for sid, got in keeps.items():
        assert sum(got) == g.count_rows(n) == int(np.floor(n * FPS / SR)), sid
        half = len(got) // 2
        assert all(0 <= k <= r for k, r in zip(got, rows, strict=False)) and got[:half] == rows[:half], sid
    assert 0 in keeps["clean"] or chunk_s == 30.0
    # the last windows through the embedder: the frames each keeps, none for those past the cut
    assert tail is not None
    embed = Embed(EmbeddingModelConfig(id="basic-pitch", params={"chunk_s": chunk_s}))
    last = tail.slice(max(0, len(tail) - 3))
    out = embed(last)
    assert not any(out["error"]) and out["n_frames"].tolist() == last.column("keep").to_pylist()
