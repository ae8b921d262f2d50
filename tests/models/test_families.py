"""Family-specific behaviour: id parsing, layer means, checkpoint layouts, fidelity to upstream code."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import MODELS, resolve_model
from repeval.models._common import cut_windows, missing_modules, stub_modules
from repeval.models.validate import ValidationReport, _run_checks, list_models
from repeval.testing.ahead import ahead_fixture

REPO = Path(__file__).resolve().parents[2]


def _needs(*modules: str) -> pytest.MarkDecorator:
    missing = missing_modules(*modules)
    return pytest.mark.skipif(bool(missing), reason=f"optional dependencies missing: {', '.join(missing)}")


@pytest.mark.parametrize(
    ("model_id", "model", "layers"),
    [
        ("mert-v1-95m-6", "m-a-p/MERT-v1-95M", [6]),
        ("mert-v1-95m-4-5-6-7-8", "m-a-p/MERT-v1-95M", [4, 5, 6, 7, 8]),
        ("mert-v1-330m", "m-a-p/MERT-v1-330M", None),
    ],
)
def test_mert_ids_resolve_to_hub_model_and_layers(model_id: str, model: str, layers: list[int] | None) -> None:
    fam, params = resolve_model(EmbeddingModelConfig(id=model_id))
    assert fam.name == "mert-v1"
    assert params["model"] == model
    assert params["layers"] == layers
    assert fam.cls.default_trust_remote_code


def test_thesis_ids_all_resolve() -> None:
    for model_id in ("vggish-audioset", "effnet-discogs", "msd-musicnn", "openl3", "neuralfp", "clmr-v2", "mule"):
        assert resolve_model(EmbeddingModelConfig(id=model_id))[0].name == model_id


def test_list_models_reports_every_family_with_a_reason_naming_the_fix() -> None:
    rows = {r["id"]: r for r in list_models()}
    assert set(rows) == set(MODELS.names())
    for row in rows.values():
        assert row["available"] == (row["reason"] is None)
        assert {"family", "embedding_dim", "sample_rate_hz", "extra", "process_group"} <= set(row)
    # onnxruntime by default: no isolated TensorFlow process group
    assert rows["msd-musicnn"]["embedding_dim"] == 200 and rows["msd-musicnn"]["process_group"] == "default"
    assert rows["mule"]["embedding_dim"] == 1728
    if not rows["vggish-audioset"]["available"] and "essentia" not in (rows["vggish-audioset"]["reason"] or ""):
        assert "graph_path" in rows["vggish-audioset"]["reason"]


def test_validator_flags_a_broken_model() -> None:
    class Broken:
        sample_rate_hz = 16000
        embedding_dim = 8

        @classmethod
        def declared_sizes(cls, params: dict) -> tuple[int, int]:
            return 16000, 8

        def embed(self, audio: np.ndarray) -> np.ndarray:
            return np.full((1, 7), np.nan)  # wrong size, wrong dtype, not finite, accepts empty input

        def embed_batch(self, audios: list) -> list:
            return [self.embed(a) for a in audios]

    report = ValidationReport("broken", "broken", "default")
    _run_checks(report, Broken(), {}, ((0.1, 8000),), 0)
    failed = {c.name.split(" ")[0] for c in report.failures()}
    assert not report.ok and {"embed", "empty"} <= failed
    # each embed failure says what is wrong and the fix, in the words of a run's error records
    said = next(c.detail for c in report.failures() if c.name.startswith("embed"))
    assert said.endswith("but its embedding_dim is 8: make embed's frames that wide, or embedding_dim their width")
    Broken.embedding_dim = 7  # the right width: then the NaN, then the float64
    report = ValidationReport("broken", "broken", "default")
    _run_checks(report, Broken(), {}, ((0.1, 8000),), 0)
    said = next(c.detail for c in report.failures() if c.name.startswith("embed"))
    assert said.endswith(
        "model returned 7 NaN or infinite values in frames of shape (1, 7): fix it (`repeval validate-model` checks it)"
    )
    Broken.embed = lambda self, audio: np.ones((1, 7))  # type: ignore[method-assign]
    report = ValidationReport("broken", "broken", "default")
    _run_checks(report, Broken(), {}, ((0.1, 8000),), 0)
    # float64 frames, which a run casts to float32 noting it once per model: one failure for every clip, not one each
    assert [(c.name, c.detail) for c in report.failures() if c.name.startswith(("embed ", "float32"))] == [
        (
            "float32 frames",
            "model returned float64 frames (for 2 of 2 clips), not float32: a run stores them as float32, the store's "
            "precision, and notes it — make embed return frames.astype(np.float32)",
        )
    ]


class _Session:
    """A model holding what does not pickle (as an onnxruntime.InferenceSession does not)."""

    sample_rate_hz = 16000
    embedding_dim = 4

    def __init__(self) -> None:
        self.session = threading.Lock()

    @classmethod
    def declared_sizes(cls, params: dict) -> tuple[None, None]:
        return None, None

    def embed(self, audio: np.ndarray) -> np.ndarray:
        if audio.size == 0:
            raise ValueError("empty audio")
        return np.full((2, 4), float(audio.std()), np.float32)

    def embed_batch(self, audios: list) -> list:
        return [self.embed(a) for a in audios]


def test_validator_passes_a_model_that_does_not_pickle() -> None:
    """An ONNX Runtime session in a plugin model failed `repeval validate-model` ("FAIL pickle round trip: cannot
    pickle 'InferenceSession'"), though a run builds each model in its worker and never ships a built one."""
    report = ValidationReport("session", "session", "default")
    _run_checks(report, _Session(), {}, ((0.1, 8000),), 0)
    assert report.ok, report.summary()
    said = next(c.detail for c in report.checks if c.name == "pickle round trip")
    assert said.startswith("does not pickle (TypeError: cannot pickle '_thread.lock' object): not needed")


def test_cut_windows_covers_the_clip() -> None:
    w = cut_windows(np.arange(10, dtype=np.float32), 4, 4)
    assert w.shape == (3, 4) and w[-1].tolist() == [8, 9, 0, 0]
    assert cut_windows(np.ones(2, np.float32), 4, 2).shape == (1, 4)


def test_stub_modules_leaves_no_trace() -> None:
    with stub_modules("repeval_no_such_module", why="test"):
        mod = sys.modules["repeval_no_such_module"]
        with pytest.raises(ImportError, match="test"):
            _ = mod.load
    assert "repeval_no_such_module" not in sys.modules


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


def test_essentia_refuses_a_process_with_tensorflow(monkeypatch: pytest.MonkeyPatch) -> None:
    from repeval.models.essentia_tf import VGGishAudioSet

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    with pytest.raises(RuntimeError, match="process group"):
        VGGishAudioSet(graph_path="/nonexistent.pb")


def test_essentia_patch_hop_is_a_parameter_checked_with_the_config() -> None:
    """``patchHopSize`` (spectrogram frames between an Essentia graph's patches) was refused by the config check though
    the frame memory ``repeval plan`` states follows it: now a parameter, a value that is no whole number of frames is
    refused when the configuration is checked, naming the default; openl3 (its own ``hop_s``) has none. Essentia
    takes 0 as a patch's length (patches without overlap: it was refused) and refuses a hop over a patch's length only
    when the model is built, in the embedding actor (it was accepted here, the embed failing with essentia's
    "`patchHopSize` has to be smaller than the number of timestamps")."""
    from repeval.models.base import check_params
    from repeval.models.essentia_tf import MusiCNNEssentia

    for hop in (31, 187, 0):
        check_params(EmbeddingModelConfig(id="musicnn-essentia", params={"patchHopSize": hop}))
    assert MusiCNNEssentia.declared_hop_s({"patchHopSize": 31}) == 31 * 256 / 16000
    assert MusiCNNEssentia.declared_hop_s({"patchHopSize": 0}) == MusiCNNEssentia.declared_hop_s({"patchHopSize": 187})
    for bad in (-3, 188, 2**31, 1.5, "93"):
        with pytest.raises(
            ValueError,
            match=r"patches of 187 frames: a whole number from 1 to 187 \(or 0: 187, patches without overlap\), got "
            r".*essentia's default \(93: a patch every 1.49 s",
        ):
            check_params(EmbeddingModelConfig(id="musicnn-essentia", params={"patchHopSize": bad}))
    with pytest.raises(ValueError, match="openl3 has no parameter 'patchHopSize'"):
        check_params(EmbeddingModelConfig(id="openl3", params={"patchHopSize": 31}))


def test_declared_hops_follow_the_constructors_defaults_and_hf_states_its_checkpoints_frames_offline() -> None:
    """The hop ``repeval plan`` states frame memory from follows the parameters the model runs with: openl3's and the
    hf encoders' hard-coded defaults (0.1 s, ``window``, 5 s) ignored a subclass' own. An hf family's checkpoint whose
    config is not on this machine (none is here: planning downloads nothing) has its frames stated from its published
    config (before: "not known"); another hub id's is not known, and the plan says why and how to have it stated."""
    from repeval.models.essentia_tf import OpenL3
    from repeval.models.hf import HFAudioEncoder
    from repeval.plan_memory import frame_rate, undeclared_frames

    class CoarseOpenL3(OpenL3):
        def __init__(self, hop_s: float = 0.5, **params: Any) -> None:
            super().__init__(hop_s=hop_s, **params)

    class NativeEncoder(HFAudioEncoder):
        default_model = "m-a-p/MERT-v1-95M"

        def __init__(self, frames: str = "native", window_s: float = 10.0, **params: Any) -> None:
            super().__init__(frames=frames, window_s=window_s, **params)

    assert CoarseOpenL3.declared_hop_s({}) == 0.5 and CoarseOpenL3.declared_hop_s({"hop_s": 0.25}) == 0.25
    assert OpenL3.declared_hop_s({}) == 0.1 and OpenL3.declared_hop_s({"hop_s": "fast"}) is None
    assert NativeEncoder.declared_hop_s({}) == 320 / 24000 and NativeEncoder.declared_hop_s({"frames": "window"}) == 10
    assert frame_rate(EmbeddingModelConfig(id="mert-v1-95m-6")) == (5.0, 768)
    assert frame_rate(EmbeddingModelConfig(id="mert-v1-330m", params={"frames": "native"})) == (320 / 24000, 1024)
    assert frame_rate(EmbeddingModelConfig(id="hubert-base", params={"frames": "native"})) == (0.02, 768)
    unknown = EmbeddingModelConfig(id="enc", type="hf-audio", params={"model": "someone/an-encoder"})
    assert frame_rate(unknown) is None
    assert undeclared_frames(unknown) == (
        "someone/an-encoder's config.json is not on this machine (the Hugging Face cache or a save_pretrained "
        "directory) and planning downloads nothing: `hf download someone/an-encoder config.json "
        "preprocessor_config.json` lets it be stated"
    )


def test_hf_plan_names_a_missing_directory_and_a_bad_window() -> None:
    """A transformers encoder's ``params.model`` naming a directory that is not there stopped ``repeval plan`` with
    huggingface_hub's "Repo id must be in the form 'repo_name' or 'namespace/repo_name'" (the path asked of the hub
    cache); the plan and the model's availability now say the directory is not there and name the fix. A
    ``window_s`` of 0 on a registered checkpoint had the plan's frame memory blamed on its config.json not being
    local (its frames are known without it)."""
    from repeval.models.hf import HFAudioEncoder
    from repeval.plan_memory import frame_rate, undeclared_frames

    missing = "/nonexistent/mert-checkpoint"
    typo = EmbeddingModelConfig(id="enc", type="hf-audio", params={"model": missing})
    said = f"{missing} is no directory on this machine: set params.model to a save_pretrained directory or a hub id"
    assert frame_rate(typo) is None and undeclared_frames(typo) == said
    assert HFAudioEncoder.availability({"model": missing}) == said
    no_window = EmbeddingModelConfig(id="mert-v1-95m", params={"window_s": 0})
    assert frame_rate(no_window) is None
    assert undeclared_frames(no_window) == "params.window_s is not a positive number of seconds"


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


@_needs("onnxruntime", "basic_pitch", "musicnn")
@pytest.mark.parametrize("name", ["msd-musicnn", "basic-pitch"])
def test_onnx_sessions_threads_wait_without_spinning(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An onnxruntime model's session threads sleep between ops instead of busy-waiting (onnxruntime's default):
    spinning took CPU from the decode tasks and the other actors on the shared cores (msd-musicnn, 2 threads beside
    a busy process: 3.2 CPU-s instead of 2.9 for the same frames in the same time); the pipeline's thread cap holds."""
    from repeval.models import build_model

    monkeypatch.setenv("REPEVAL_MODEL_THREADS", "2")
    opts = build_model(EmbeddingModelConfig(id=name))._session.get_session_options()
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 2 and opts.log_severity_level == 3


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


def test_importing_the_zoo_loads_no_framework() -> None:
    """essentia aborts beside tensorflow 2.x: registering models must import neither (nor torch, ...)."""
    code = (
        "import sys, repeval.models, repeval.models.validate; "
        "print([m for m in ('torch', 'tensorflow', 'essentia', 'onnxruntime', 'transformers') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (22050, 2048, 128, 0.0, None),
        (16000, 512, 64, 0.0, None),
        (44100, 1024, 40, 0.0, None),
        (16000, 512, 96, 0.0, None),  # musicnn's
        (8000, 1024, 256, 300.0, 4000.0),  # neuralfp's
        (22050, 2048, 64, 50.0, 8000.0),
    ],
)
def test_numpy_mel_filterbank_is_librosas(sr, n_fft, n_mels, fmin, fmax):
    """The handcrafted baselines, musicnn and neuralfp build their mel filters without librosa (its import loads
    scipy.signal and numba in every embedding actor); the matrix must be librosa's, bit for bit."""
    import librosa

    from repeval.models._common import mel_filterbank

    ours = mel_filterbank(sr, n_fft, n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax))


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


def test_basic_pitch_windows_per_call_are_not_part_of_the_store_fingerprint() -> None:
    """basic-pitch's ``max_batch_windows`` chooses how many windows an onnxruntime call takes, not the frames (16, 8
    and 4 give identical arrays): changing it no longer refuses the store embedded before; ``outputs`` still does."""
    from repeval.pipeline.partitions import model_fingerprint

    def fingerprint(params: dict) -> str:
        return str(model_fingerprint(EmbeddingModelConfig(id="basic-pitch", params=params)))

    assert len({fingerprint(p) for p in ({}, {"max_batch_windows": 4}, {"max_batch_windows": 16})}) == 1
    assert fingerprint({"outputs": ["note"]}) != fingerprint({})
