"""Essentia TensorFlow models from user-supplied frozen graphs (``.pb``): VGGish, EffNet, MusiCNN, MAEST, OpenL3.

No package ships these graphs: download them from the Essentia models site and set
``params.graph_path`` (or place them, under the file names below, in ``$REPEVAL_MODELS_DIR``).
Each family drives essentia's own ``TensorflowPredict*`` algorithm (which computes the mel
input exactly as the model was trained) and returns one embedding per patch:

================  =================================  ======================  ======  =========
id                default graph file                 output node             dim     patch/hop
================  =================================  ======================  ======  =========
vggish-audioset   audioset-vggish-3.pb               model/vggish/embeddings 128     0.96/0.93 s
effnet-discogs    discogs-effnet-bs64-1.pb           PartitionedCall:1       1280    2.05/0.99 s
musicnn-essentia  msd-musicnn-1.pb                   model/dense/BiasAdd     200     3/1.5 s
maest             discogs-maest-30s-pw-2.pb          StatefulPartitionedCall:7  2304  30/30 s
openl3            openl3-music-mel128-emb512-3.pb    embeddings              512     1/0.1 s
================  =================================  ======================  ======  =========

``params.output`` / ``params.input`` / ``params.embedding_dim`` override the node names and size
for other graphs of the same family. MAEST's attention outputs are (tokens × 768); by default
the CLS token, the DIST token and the mean of the others are concatenated (``token_pooling``:
``concat``, ``cls`` or ``mean``). OpenL3's 128-band log-mel (48 kHz, hop 242, 199 frames per
1 s window, kapre-style dB with an 80 dB range) is computed in numpy and fed through the
generic ``TensorflowPredict``.

**Process group ``essentia``.** essentia-tensorflow bundles TensorFlow 2.5: importing it in a
process that imported tensorflow 2.x aborts the process, so these models run in their own
worker processes. Install: ``pip install essentia-tensorflow==2.1b6.dev1389``.
CPU cost: not measured here (no real graphs on this machine); MAEST (transformer, 30 s
patches) is by far the most expensive.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import (
    RebuildOnUnpickle,
    as_mono,
    extra_reason,
    missing_weights_reason,
    pad_to,
    weight_path,
)
from repeval.models.base import EmbeddingModel, param_or_default, refuse_choice, register_model

log = logging.getLogger(__name__)


def _check_process() -> None:
    if "tensorflow" in sys.modules:
        raise RuntimeError(
            "essentia-tensorflow cannot run in a process that imported tensorflow (the process would abort): "
            "run essentia models in the 'essentia' process group (the pipeline does) or in a fresh process"
        )


class EssentiaModel(RebuildOnUnpickle, EmbeddingModel):
    """One ``TensorflowPredict*`` algorithm on a user-supplied graph; see the module docstring."""

    extra = "essentia"
    process_group = "essentia"
    requires: ClassVar[tuple[str, ...]] = ("essentia",)
    algorithm: ClassVar[str] = ""
    graph_file: ClassVar[str] = ""
    input_node: ClassVar[str] = ""
    output_node: ClassVar[str] = ""
    dim: ClassVar[int] = 0
    rate: ClassVar[int] = 16000
    #: audio (samples) that yields one full patch, padded to when a clip is shorter
    min_samples: ClassVar[int] = 16000
    extra_args: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        graph_path: str | None = None,
        output: str | None = None,
        input: str | None = None,
        embedding_dim: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(graph_path=graph_path, output=output, input=input, embedding_dim=embedding_dim, **params)
        _check_process()
        self.sample_rate_hz = self.rate
        self.embedding_dim = int(embedding_dim or self.dim)
        self.graph = str(weight_path(self.params, "graph_path", self.graph_file))
        self._setup(input or self.input_node, output or self.output_node, params)

    def _setup(self, input_node: str, output_node: str, params: dict[str, Any]) -> None:
        import essentia
        import essentia.standard as es

        essentia.log.infoActive = False
        essentia.log.warningActive = False
        # essentia's patchHopSize alone: its patchSize must match the graph's input shape (a patch family's
        # :attr:`EssentiaPatchModel.patch_size`) and its batchSize (patches a TensorFlow call) changes no embedding —
        # the effnet-bs64 graph takes batches of 64 only — so the config check lets neither through
        hop = params.get("patchHopSize")
        kwargs = {**self.extra_args, **({} if hop is None else {"patchHopSize": hop})}
        algo = getattr(es, self.algorithm)
        self._algo = algo(graphFilename=self.graph, input=input_node, output=output_node, **kwargs)

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return extra_reason("essentia", cls.requires) or missing_weights_reason(
            weight_path(params, "graph_path", cls.graph_file), "graph_path", f"the Essentia model {cls.graph_file}"
        )

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return cls.rate, int(params.get("embedding_dim") or cls.dim)

    def _postprocess(self, out: np.ndarray) -> np.ndarray:
        return out.reshape(out.shape[0], -1)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        audio = pad_to(as_mono(audio), self.min_samples)
        out = self._postprocess(np.asarray(self._algo(audio), dtype=np.float32))
        if out.ndim != 2 or out.shape[0] == 0 or out.shape[1] != self.embedding_dim:
            raise ValueError(
                f"{self.name}: graph {self.graph} returned shape {out.shape}, expected (n, {self.embedding_dim}): "
                "check params.output (node name) and params.embedding_dim"
            )
        return np.ascontiguousarray(out)


class EssentiaPatchModel(EssentiaModel):
    """A ``TensorflowPredict*`` algorithm that cuts its mel spectrogram into patches, one embedding each:
    ``patchHopSize`` (spectrogram frames between patches; default: essentia's for the family, :attr:`patch_hop`) sets
    how often — and so the frames a track gives and the memory a frame-level probe holds (:meth:`declared_hop_s`)."""

    #: samples between the algorithm's spectrogram frames, the frames of a patch (essentia's ``patchSize``) and its
    #: ``patchHopSize`` default: spectrogram frames between patches (one embedding each)
    frame_hop: ClassVar[int] = 0
    patch_size: ClassVar[int] = 0
    patch_hop: ClassVar[int] = 0

    def __init__(self, patchHopSize: int | None = None, **params: Any) -> None:
        self.checked_patch_hop(patchHopSize)
        super().__init__(patchHopSize=patchHopSize, **params)

    @classmethod
    def checked_patch_hop(cls, value: Any) -> int:
        """``patchHopSize`` as the spectrogram frames between patches (``None``: essentia's default; 0, as essentia
        takes it: a patch's length, no overlap); a ``ValueError`` naming the fix for anything but a whole number up to
        a patch's length (essentia refuses a longer hop only when the model is built, in the embedding actor)."""
        if value is None:
            return cls.patch_hop
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= cls.patch_size:
            seconds = cls.frame_hop / cls.rate
            raise ValueError(
                f"{cls.name}: patchHopSize is the number of spectrogram frames ({seconds * 1000:g} ms each) between "
                f"patches of {cls.patch_size} frames: a whole number from 1 to {cls.patch_size} (or 0: "
                f"{cls.patch_size}, patches without overlap), got {value!r} — leave it out for essentia's default "
                f"({cls.patch_hop}: a patch every {cls.patch_hop * seconds:.3g} s)"
            )
        return value or cls.patch_size

    @classmethod
    def variant(cls, params: dict[str, Any]) -> type[EmbeddingModel]:
        cls.checked_patch_hop(params.get("patchHopSize"))  # refused when the configuration is checked
        return cls

    @classmethod
    def declared_hop_s(cls, params: dict[str, Any]) -> float | None:
        """A patch every ``patchHopSize`` spectrogram frames (essentia's default unless ``params`` set it)."""
        try:
            return cls.checked_patch_hop(params.get("patchHopSize")) * cls.frame_hop / cls.rate
        except ValueError:
            return None


@register_model("vggish-audioset")
class VGGishAudioSet(EssentiaPatchModel):
    description = "VGGish trained on AudioSet (Essentia graph), 128-d per 0.96 s patch"
    algorithm = "TensorflowPredictVGGish"
    graph_file = "audioset-vggish-3.pb"
    input_node = "model/Placeholder"
    output_node = "model/vggish/embeddings"
    dim = 128
    frame_hop = 160
    patch_size = 96
    patch_hop = 93
    min_samples = patch_size * frame_hop + 400


@register_model("effnet-discogs")
class EffNetDiscogs(EssentiaPatchModel):
    description = "EffNet trained on Discogs styles (Essentia graph), 1,280-d per 2 s patch"
    algorithm = "TensorflowPredictEffnetDiscogs"
    graph_file = "discogs-effnet-bs64-1.pb"
    input_node = "serving_default_melspectrogram"
    output_node = "PartitionedCall:1"
    dim = 1280
    frame_hop = 256
    patch_size = 128
    patch_hop = 62
    min_samples = patch_size * frame_hop + 512


@register_model("musicnn-essentia")
class MusiCNNEssentia(EssentiaPatchModel):
    description = "MusiCNN-MSD (Essentia graph msd-musicnn-1.pb), 200-d per 3 s patch"
    algorithm = "TensorflowPredictMusiCNN"
    graph_file = "msd-musicnn-1.pb"
    input_node = "model/Placeholder"
    output_node = "model/dense/BiasAdd"
    dim = 200
    frame_hop = 256
    patch_size = 187
    patch_hop = 93
    min_samples = patch_size * frame_hop + 512


@register_model("maest")
class MAEST(EssentiaPatchModel):
    description = "MAEST-30s (Essentia graph), CLS+DIST+mean tokens of attention layer 7 (2,304-d) per 30 s"
    algorithm = "TensorflowPredictMAEST"
    graph_file = "discogs-maest-30s-pw-2.pb"
    input_node = "serving_default_melspectrogram"
    output_node = "StatefulPartitionedCall:7"
    dim = 2304
    frame_hop = 256
    patch_size = 1876
    patch_hop = 1875
    min_samples = patch_size * frame_hop + 512
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {"token_pooling": ("concat", "cls", "mean")}

    def __init__(self, token_pooling: str = "concat", **params: Any) -> None:
        refuse_choice(self, "token_pooling", token_pooling)
        self.token_pooling = token_pooling
        if token_pooling != "concat" and not params.get("embedding_dim"):
            params["embedding_dim"] = self.dim // 3
        super().__init__(token_pooling=token_pooling, **params)

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        pooled = cls.dim if param_or_default(cls, params, "token_pooling") == "concat" else cls.dim // 3
        return cls.rate, int(params.get("embedding_dim") or pooled)

    def _postprocess(self, out: np.ndarray) -> np.ndarray:
        if out.ndim == 4:  # (patches, 1, tokens, dim)
            out = out[:, 0]
        if out.ndim != 3:
            return out.reshape(out.shape[0], -1)
        if self.token_pooling == "cls":
            return out[:, 0]
        if self.token_pooling == "mean":
            return out.mean(axis=1)
        rest = out[:, 2:].mean(axis=1) if out.shape[1] > 2 else out.mean(axis=1)
        return np.concatenate([out[:, 0], out[:, min(1, out.shape[1] - 1)], rest], axis=1)


@register_model("openl3")
class OpenL3(EssentiaModel):
    description = "OpenL3 music mel128 (Essentia graph), 512-d per 1 s window, hop 0.1 s"
    algorithm = "TensorflowPredict"
    graph_file = "openl3-music-mel128-emb512-3.pb"
    input_node = "melspectrogram"
    output_node = "embeddings"
    dim = 512
    rate = 48000
    min_samples = 48000
    n_mels = 128
    n_fft = 2048
    fft_hop = 242
    n_frames = 199

    def __init__(self, hop_s: float = 0.1, max_batch_windows: int = 64, **params: Any) -> None:
        self.hop = max(1, round(hop_s * self.rate))
        self.max_batch_windows = int(max_batch_windows)
        super().__init__(hop_s=hop_s, max_batch_windows=max_batch_windows, **params)

    @classmethod
    def declared_hop_s(cls, params: dict[str, Any]) -> float | None:
        """A window every ``hop_s`` (the constructor's default unless ``params`` set it) rounded to whole samples
        (:meth:`embed`)."""
        hop_s = super().declared_hop_s(params)
        return None if hop_s is None else max(1, round(hop_s * cls.rate)) / cls.rate

    def _setup(self, input_node: str, output_node: str, params: dict[str, Any]) -> None:
        import essentia
        import essentia.standard as es
        import librosa

        essentia.log.infoActive = False
        essentia.log.warningActive = False
        self._in, self._out = input_node, output_node
        self._algo = es.TensorflowPredict(graphFilename=self.graph, inputs=[input_node], outputs=[output_node])
        self._pool_cls = essentia.Pool
        self._mel = librosa.filters.mel(sr=self.rate, n_fft=self.n_fft, n_mels=self.n_mels, htk=True, norm=None).astype(
            np.float32
        )
        self._window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)

    def _melspec(self, window: np.ndarray) -> np.ndarray:
        padded = np.pad(window, self.n_fft // 2)
        idx = np.arange(self.n_fft)[None, :] + self.fft_hop * np.arange(self.n_frames)[:, None]
        mag = np.abs(np.fft.rfft(padded[idx] * self._window, axis=1)).astype(np.float32)
        db = 10.0 * np.log10(np.maximum(mag @ self._mel.T, 1e-10))
        db = np.maximum(db - db.max(), -80.0)
        return db.T[:, :, None]  # (mels, frames, 1)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        audio = as_mono(audio)
        audio = np.pad(audio, (self.min_samples // 2, 0))  # openl3 centres its first window on t = 0
        n = max(1, 1 + (len(audio) - self.min_samples) // self.hop)
        audio = pad_to(audio, (n - 1) * self.hop + self.min_samples)
        outs = []
        for start in range(0, n, self.max_batch_windows):
            specs = [
                self._melspec(audio[i * self.hop : i * self.hop + self.min_samples])
                for i in range(start, min(n, start + self.max_batch_windows))
            ]
            pool = self._pool_cls()
            pool.set(self._in, np.ascontiguousarray(np.stack(specs), dtype=np.float32))
            outs.append(np.asarray(self._algo(pool)[self._out], dtype=np.float32).reshape(len(specs), -1))
        out = np.concatenate(outs)
        if out.shape[1] != self.embedding_dim:
            raise ValueError(
                f"openl3: graph {self.graph} returned {out.shape[1]}-d, expected {self.embedding_dim}: check params"
            )
        return out
