"""musicnn: its input against librosa's, its TensorFlow and ONNX backends, and its actors' imports and batches."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from families_cases import REPO, _needs

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import resolve_model
from repeval.testing.ahead import ahead_fixture


@_needs("librosa")
def test_musicnn_input_matches_librosa_melspectrogram() -> None:
    import librosa

    from repeval.models.musicnn_tf import HOP, N_FFT, N_MELS, SR, logmel

    audio = (0.3 * np.random.default_rng(3).standard_normal(SR * 2 + 17)).astype(np.float32)
    ref = librosa.feature.melspectrogram(
        y=audio, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS, pad_mode="constant"
    )
    ref = np.log10(10000 * ref.T.astype(np.float16).astype(np.float32) + 1)
    np.testing.assert_allclose(logmel(audio, pad_mode="constant"), ref, rtol=1e-3, atol=1e-3)


#: a real recording, decoded as the engine decodes it, its first 7 s at 1/20 of its gain: musicnn's own log-mel
#: (float16 arithmetic) overflows on the full-gain recording
_MUSICNN_CLIP = ("librosa_examples/audio/Kevin_MacLeod_-_Vibe_Ace.ogg", 7.0, 0.05)


def run_musicnn(environ: dict[str, str]) -> tuple[str, ...]:
    """One fresh ``tf`` process for the musicnn tests (TensorFlow's import and a graph cost seconds): its lines.
    Started as soon as the tests are collected (``ahead_fixture``): it runs while the tests before this module do."""
    tmp = Path(tempfile.mkdtemp(prefix="rv-musicnn-"))
    try:
        return _musicnn_lines(REPO.parent / "shared" / "data", tmp, environ)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


musicnn_process = ahead_fixture("musicnn_process", run_musicnn, scope="module", uses=("shared_data",))


def _musicnn_lines(shared_data: Path, tmp: Path, environ: dict[str, str]) -> tuple[str, ...]:
    rel, seconds, gain = _MUSICNN_CLIP
    code = (
        "import os, sys, numpy as np\n"
        "from repeval.models._common import PROCESS_GROUP_ENV\n"
        "os.environ.update(PROCESS_GROUP_ENV['tf'])\n"
        "from repeval.config.embed import EmbeddingModelConfig\n"
        "from repeval.models import build_model\n"
        "m = build_model(EmbeddingModelConfig(id='msd-musicnn'))\n"
        "out = m.embed_batch([np.zeros(16000 * 4, np.float32) + 0.01])\n"
        "print(out[0].shape, [k for k in ('librosa', 'numba', 'scipy.signal', 'tensorflow') if k in sys.modules])\n"
        # backend: tf (after the line above: the onnxruntime model never imported TensorFlow)
        "tfm = build_model(EmbeddingModelConfig(id='msd-musicnn', params={'backend': 'tf'}))\n"
        "ops = tfm._sess.graph.get_operations()\n"
        "flow = ('If', 'StatelessIf', 'Switch', 'Merge')\n"
        "print('GRAPH', len(ops), sorted({o.type for o in ops if o.type in flow}))\n"
        # patches per session call (one: the default; 8, the memory a process first touches) must not change what a
        # clip gets
        "rng = np.random.default_rng(0)\n"
        "clips = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (16000 * 7, 16000 * 22, 9000, 16000 * 13)]\n"
        # REPEVAL_MODEL_THREADS=1 (the pipeline's cap): about one thread works at a time (the log-mel in this thread, the
        # session in TensorFlow's) — with the session's ConfigProto alone TensorFlow kept two threads busy at once;
        # measured over the three passes (the model's session is warm: it embedded a clip above)
        "import time\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        "small = np.concatenate(m.embed_batch(clips))\n"
        "m.max_batch_windows = 8\n"
        "large = np.concatenate(m.embed_batch(clips))\n"
        "m.max_batch_windows = 1\n"
        "one = np.concatenate([m.embed(c) for c in clips])\n"
        "load = (time.process_time() - c) / (time.perf_counter() - t)\n"
        "print(small.shape, float(np.abs(small - large).max()), float(np.abs(small - one).max()))\n"
        "print('CPU_PER_WALL', load)\n"
        # backend: tf, a clip of 1, 2 and 9 patches: the session calls each runs in, and its frames alone and together
        "sizes, tf_forward = [], tfm._forward\n"
        "tfm._forward = lambda w: (sizes.append(len(w)), tf_forward(w))[1]\n"
        "noise = np.random.default_rng(2)\n"
        "tf_clips = [0.1 * noise.standard_normal(n).astype(np.float32) for n in (9000, 16000 * 7, 16000 * 28)]\n"
        "alone = [tfm.embed_batch([c])[0] for c in tf_clips]\n"
        "sizes.clear()\n"
        "together = tfm.embed_batch(tf_clips)\n"
        "print('TF_CALLS', sizes, [bool(np.array_equal(a, b)) for a, b in zip(alone, together)])\n"
        "tfm._forward = tf_forward\n"
        # the reference: musicnn's own patches (its batch_data, on a file at 16 kHz) through musicnn's graph built as
        # its extractor() builds it, read at the node Essentia's msd-musicnn-1.pb (mir_ref's) takes embeddings from
        "import soundfile as sf, tensorflow as tf, musicnn\n"
        "from repeval.audio.decode import decode\n"
        "from musicnn import models\n"
        "from musicnn.extractor import batch_data\n"
        f"audio = decode({str(shared_data / rel)!r}, 16000, {seconds}) * np.float32({gain})\n"
        f"path = {str(tmp / 'clip.wav')!r}\n"
        "sf.write(path, audio, 16000, subtype='FLOAT')\n"
        "patches, _ = batch_data(path, 187, 187)\n"
        "g = tf.Graph()\n"
        "with g.as_default(), tf.name_scope('model'):\n"
        "    x = tf.compat.v1.placeholder(tf.float32, [None, 187, 96])\n"
        "    outs = models.define_model(x, False, 'MSD_musicnn', 50)\n"
        "    saver = tf.compat.v1.train.Saver()\n"
        "sess = tf.compat.v1.Session(graph=g)\n"
        "saver.restore(sess, os.path.join(os.path.dirname(musicnn.__file__), 'MSD_musicnn') + os.sep)\n"
        "ref = sess.run(g.get_tensor_by_name('model/dense/BiasAdd:0'), {x: patches})\n"
        "ours = build_model(EmbeddingModelConfig(id='msd-musicnn', params={'pad_mode': 'constant'})).embed(audio)\n"
        "print('REF', ours.shape, ref.shape, float(np.abs(ours - ref).max()), float(np.abs(ref).max()))\n"
        # the backends on the real recording (full gain, 4 patches): each layer of the ONNX models against that
        # TensorFlow graph, and msd-musicnn and msd-vgg with backend onnx against backend tf; largest difference, scale
        f"audio = decode({str(shared_data / rel)!r}, 16000, 12.0)\n"
        "wins, agree = m._windows(audio), []\n"
        "tensors = {'dense': g.get_tensor_by_name('model/dense/BiasAdd:0'), 'penultimate': outs[8],\n"
        "           'mean_pool': outs[6], 'max_pool': outs[7]}\n"
        "def row(name, a, b):\n"
        "    agree.append((name, a.shape == b.shape, float(np.abs(a - b).max()), float(np.abs(b).max())))\n"
        "for layer, tensor in tensors.items():\n"
        "    onnx = build_model(EmbeddingModelConfig(id='msd-musicnn', params={'layer': layer}))\n"
        "    row(layer, onnx._forward(wins), sess.run(tensor, {x: wins}))\n"
        "row('msd-musicnn', m.embed(audio), tfm.embed(audio))\n"
        "vgg = [build_model(EmbeddingModelConfig(id='msd-vgg', params={'backend': k})) for k in ('onnx', 'tf')]\n"
        "row('msd-vgg', vgg[0].embed(audio), vgg[1].embed(audio))\n"
        "print('AGREE', agree)\n"
        # a track of three 6-s windows through the pipeline's stages against the model on the whole track, and the
        # frame count the geometry states at lengths around a patch (3-s hops; 1.5-s hops: the same graph)
        "from repeval.models import resolve_model\n"
        "from repeval.pipeline.assemble import TrackAssembler\n"
        "from repeval.pipeline.partitions import model_geometry\n"
        "from repeval.pipeline.embedder import Embed\n"
        "from repeval.pipeline.stages import DecodeDeform\n"
        f"long = {str(tmp / 'long.wav')!r}\n"
        "sf.write(long, 0.2 * rng.standard_normal(16000 * 16).astype(np.float32), 16000, subtype='FLOAT')\n"
        "cfg = EmbeddingModelConfig(id='msd-musicnn', params={'chunk_s': 6.0})\n"
        "emb = Embed(cfg, keep_frames=True)\n"
        # the patches the model computes for the windowed track (none on a window's context: as many as on the whole)
        "computed, forward = [0], emb.model._forward\n"
        "emb.model._forward = lambda w: (computed.__setitem__(0, computed[0] + len(w)), forward(w))[1]\n"
        "dd = DecodeDeform(16000, {}, 0, chunk_s=6.0, geometry=model_geometry(*resolve_model(cfg)))\n"
        "batch = {'track_id': np.array(['t']), 'audio_path': np.array([long]), 'split': np.array(['test']),\n"
        "         'scenarios': np.array([['clean']], dtype=object)}\n"
        "asm = TrackAssembler(True)\n"
        "block = [b for t in dd(batch) for b in [asm.add(emb(t))[0]] if b is not None][0]\n"
        "whole = m.embed(decode(long, 16000))\n"
        "got = np.asarray(block.frames[0], np.float32)\n"
        "print('SEAMS', block.n_chunks[0], got.shape, whole.shape, float(np.abs(got - whole).max()) if\n"
        "      got.shape == whole.shape else -1, float(np.abs(whole).max()), computed[0])\n"
        "counts = []\n"
        "for hop_s in (3.0, 1.5):\n"
        "    g = type(m).frame_geometry({'hop_s': hop_s})\n"
        "    m.hop_frames = g.hop // 256\n"
        "    for n in (9000, g.span - 1, g.span, g.span + g.hop - 1, g.span + g.hop, 16000 * 13 + 5):\n"
        "        counts.append((len(m.embed(np.zeros(n, np.float32) + 0.01)), g.count(n)))\n"
        "print('COUNTS', all(a == b for a, b in counts), counts)\n"
    )
    env = {**environ, "REPEVAL_MODEL_THREADS": "1"}
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    env.pop("TF_NUM_INTEROP_THREADS", None)
    r = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=REPO
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return tuple(r.stdout.strip().splitlines())


def test_a_musicnn_actor_never_imports_librosa_and_its_batches_do_not_change_a_clip(
    musicnn_process: tuple[str, ...],
) -> None:
    """A musicnn actor's start (TensorFlow's import, the graph, the first batch) must not pay for librosa's
    import (scipy.signal, numba: ~1 CPU-s of every TensorFlow actor's start): a fresh process builds the model,
    embeds a clip and lists what it imported. In the same process: clips embedded one patch per session call
    (the default), 8 per call and one clip at a time get the same frames."""
    imports, _graph, batches, load, *_ = musicnn_process
    assert float(load.split()[1]) <= 1.5, load  # 1.2 here; 1.9 with the ConfigProto alone (two busy threads)
    assert imports == "(1, 200) []"  # nor TensorFlow (onnxruntime, the default backend)
    shape, d_large, d_one = batches.rsplit(" ", 2)
    assert shape == "(14, 200)"  # 2 + 7 + 1 (zero-padded) + 4 patches of 3 s: at 8, two calls, the second clip in both
    assert float(d_large) <= 1e-5 and float(d_one) <= 1e-5, batches


def test_musicnn_on_tensorflow_runs_each_clips_patches_in_calls_of_their_own(musicnn_process: tuple[str, ...]) -> None:
    """TensorFlow's musicnn rounds a patch by its place in the session call (up to 9.1e-6), and a batch's patches ran
    8 a call whichever clip they came from — a clip's frames then depended on the clips before it in the batch, and a
    rerun or resumed run, whose batches hold other clips, stored other bits (the engine's check of it took a third
    of tests/pipeline/test_batch_composition.py's time). Each clip's patches now run in calls of their own, 8 at a
    time from its first: a clip of 1, 2 and 9 patches in one batch runs 1, 2, 8 and 1 a call, each clip's frames
    the bits it gets alone."""
    calls = next(line for line in musicnn_process if line.startswith("TF_CALLS"))
    assert calls == "TF_CALLS [1, 2, 8, 1] [True, True, True]"


def test_a_musicnn_actor_builds_the_inference_graph_alone(musicnn_process: tuple[str, ...]) -> None:
    """The model's graph holds its inference ops only: built with a training placeholder (defaulting to False) each
    batch normalisation and dropout was a conditional of its training and inference branches — 992 ops instead of
    732, about twice the build (~0.45 CPU-s of each TensorFlow actor's start, inside a stream's time to its first
    rows) for the same frames."""
    graph = next(line for line in musicnn_process if line.startswith("GRAPH"))
    assert graph.endswith(" []"), graph  # no conditional


def test_msd_musicnn_is_mir_refs_layer_on_musicnns_own_patches(musicnn_process: tuple[str, ...]) -> None:
    """msd-musicnn on a real recording is, patch for patch, musicnn's checkpoint on the patches musicnn's own
    batch_data cuts (one every 187 frames; repeval started one every 188) read at ``model/dense/BiasAdd``, the node
    Essentia's msd-musicnn-1.pb — mir_ref's msd-musicnn — gives embeddings from (repeval read musicnn's
    ``penultimate``, that layer after ReLU and batch normalisation: 6.1 away on a scale of 6.3 here)."""
    *_, ref, _agree, _seams, _counts = musicnn_process
    label, ours_shape, ref_shape, diff, scale = ref.replace("(", "").replace(")", "").replace(", ", ",").split(" ")
    assert label == "REF" and ours_shape == ref_shape == "2,200", ref
    # musicnn's log-mel differs from repeval's by float16 arithmetic (≤ 1e-3 on a log10 scale of ~0–3)
    assert float(diff) <= 0.01 * float(scale), ref


def test_musicnn_onnx_backend_agrees_with_tensorflow_to_float32_rounding(musicnn_process: tuple[str, ...]) -> None:
    """onnxruntime on the checkpoint's ONNX conversion (the default backend: a process that embeds never imports
    TensorFlow) gives TensorFlow's frames on a real recording at every layer — msd-musicnn's ``dense``,
    ``penultimate``, ``mean_pool`` and ``max_pool`` against musicnn's own graph on the same patches, msd-musicnn and
    msd-vgg against ``backend: tf`` — to float32 rounding of their sums (about 1e-6 of the layer's scale): why a
    store's partition is not recomputed when the backend changes."""
    agree = next(line for line in musicnn_process if line.startswith("AGREE"))
    rows = ast.literal_eval(agree.removeprefix("AGREE "))  # the tuples the fixture's process printed
    names = ["dense", "penultimate", "mean_pool", "max_pool", "msd-musicnn", "msd-vgg"]
    assert [r[0] for r in rows] == names, agree
    for name, same_shape, diff, scale in rows:
        assert same_shape and scale > 0.5, (name, agree)
        assert diff <= 1e-5 * scale, (name, diff, scale)


def test_musicnn_onnx_cache_rebuilds_a_corrupt_file_and_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A cached ONNX model that onnxruntime cannot load (a partial copy, a full disk) is converted again — a warning
    naming the file, not a crash — and a second model loads the cache without converting (no TensorFlow here)."""
    import logging

    from repeval.models import build_model
    from repeval.models.musicnn_onnx import cache_path

    monkeypatch.setenv("REPEVAL_MODELS_DIR", str(tmp_path))
    path = cache_path("MTT_musicnn", "mean_pool")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x08\x0a\x12\x07partial")
    cfg = EmbeddingModelConfig(id="mtt-musicnn", params={"layer": "mean_pool"})
    audio = np.random.default_rng(0).standard_normal(16000 * 4).astype(np.float32) * 0.1
    with caplog.at_level(logging.INFO, logger="repeval.models.musicnn_onnx"):
        first = build_model(cfg).embed(audio)
    assert any("does not load" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    stamp = path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="repeval.models.musicnn_onnx"):
        second = build_model(cfg).embed(audio)
    assert not caplog.records and path.stat().st_mtime_ns == stamp
    assert first.shape == (1, 753) and np.array_equal(first, second)
    assert "tensorflow" not in sys.modules
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_musicnn_backend_is_checked_with_the_config_and_chooses_the_process_group() -> None:
    """``params.backend`` is onnx (default: the default process group) or tf (the isolated ``tf`` group); another
    value is a configuration error naming both; the backend is not part of the store's fingerprint."""
    from repeval.pipeline.partitions import model_fingerprint

    groups = {
        k: resolve_model(EmbeddingModelConfig(id="msd-vgg", params=p))[0].cls.process_group
        for k, p in (("default", {}), ("onnx", {"backend": "onnx"}), ("tf", {"backend": "tf"}))
    }
    assert groups == {"default": "default", "onnx": "default", "tf": "tf"}
    with pytest.raises(ValueError, match=r"params\.backend\n  expected 'onnx' or 'tf', got 'torch'"):
        EmbeddingModelConfig(id="msd-vgg", params={"backend": "torch"})
    prints = {
        str(model_fingerprint(EmbeddingModelConfig(id="msd-musicnn", params=p)))
        for p in ({}, {"backend": "tf"}, {"backend": "onnx"})
    }
    assert len(prints) == 1


def test_msd_musicnn_frames_of_a_track_of_several_windows_are_the_whole_tracks(
    musicnn_process: tuple[str, ...],
) -> None:
    """A 16-s track in 6-s windows through the pipeline's stages (decode, embed, assemble) gets msd-musicnn's patches
    of the whole decoded track: each window reaches the model with the previous window's last 256 samples (its first
    spectral frame reads half an FFT before the window), the model starting its patches at the window's start — window
    by window alone a window's patches started at its own start, off musicnn's 187-frame grid, and its tail was
    dropped. The model computes the whole track's 5 patches, no more: with a whole patch of context before each window
    (the context rounded up to a patch) it computed 7, two thrown away. The frame geometry counts the model's patches
    at lengths around one patch, at 3-s and 1.5-s hops."""
    *_, seams, counts = musicnn_process
    fields = seams.replace("(", "").replace(")", "").replace(", ", ",").split(" ")
    label, n_chunks, got, whole, diff, scale, computed = fields
    assert label == "SEAMS" and n_chunks == "3" and got == whole == "5,200", seams
    assert computed == "5", seams
    assert 0 <= float(diff) <= 1e-4 * float(scale), seams
    assert counts.startswith("COUNTS True"), counts
