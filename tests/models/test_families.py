"""Family-specific behaviour: id parsing, the model validator, declared frame hops, what importing the zoo loads."""

from __future__ import annotations

import subprocess
import sys
import threading
import types
from typing import Any

import numpy as np
import pytest
from families_cases import _needs

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import MODELS, resolve_model
from repeval.models._common import cut_windows, stub_modules
from repeval.models.validate import ValidationReport, _run_checks, list_models


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


def test_basic_pitch_windows_per_call_are_not_part_of_the_store_fingerprint() -> None:
    """basic-pitch's ``max_batch_windows`` chooses how many windows an onnxruntime call takes, not the frames (16, 8
    and 4 give identical arrays): changing it no longer refuses the store embedded before; ``outputs`` still does."""
    from repeval.pipeline.partitions import model_fingerprint

    def fingerprint(params: dict) -> str:
        return str(model_fingerprint(EmbeddingModelConfig(id="basic-pitch", params=params)))

    assert len({fingerprint(p) for p in ({}, {"max_batch_windows": 4}, {"max_batch_windows": 16})}) == 1
    assert fingerprint({"outputs": ["note"]}) != fingerprint({})
