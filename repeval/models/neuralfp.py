"""NeuralFP (Chang et al., ICASSP 2021): a contrastive audio-fingerprint encoder, loading a local checkpoint.

Architecture as in the authors' reference implementation: 1 s segments at 8 kHz → log-mel
(n_fft 1024, hop 256, 256 bands in 300–4000 Hz, magnitude + 0.06, log10, max-normalised to
0 dB with an 80 dB floor; 256 × 32) → eight separable conv layers (1×3 then 3×1 convolutions,
ELU, layer normalisation over the whole feature map; 128…1024 channels, strides halving
frequency every layer and time every other) → "divide and encode" head (128 slices of 8 values,
each through 8→32 ELU→1) → L2 normalisation: **128-d** per segment, segments every ``hop_s``
(default 0.5 s, the paper's), the first starting at the clip's first sample (mir_ref prepends half a segment of
zeros), the last partial segment zero-padded when at least half a hop long. ~19M parameters.

``params.checkpoint`` (default ``$REPEVAL_MODELS_DIR/neuralfp.pt``) is a PyTorch state dict of
:func:`build_neuralfp` (``torch.load(weights_only=True)``); the released model is a TensorFlow
checkpoint whose weights must be converted to these names first (no converter ships yet).
CPU cost: ≈40× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import (
    WindowedModel,
    checkpoint_reason,
    choose_device,
    cut_windows,
    load_converted,
    mel_filterbank,
    weight_path,
)
from repeval.models.base import FrameGeometry, param_or_default, register_model

SR = 8000
SEGMENT = 8000
N_FFT = 1024
FFT_HOP = 256
N_MELS = 256
N_FRAMES = 32
EMBEDDING_DIM = 128
_CHANNELS = (128, 128, 256, 256, 512, 512, 1024, 1024)
_STRIDES = [((1, 2), (2, 1))] * 4 + [((1, 1), (2, 1)), ((1, 2), (2, 1)), ((1, 1), (2, 1)), ((1, 2), (2, 1))]


def build_neuralfp() -> Any:
    """The NeuralFP encoder as a torch module: (batch, 1, 256 mels, 32 frames) → (batch, 128), unit norm."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def same(size: int, k: int, s: int) -> tuple[int, int, int]:
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        return out, total // 2, total - total // 2

    class SepConv(nn.Module):
        def __init__(self, cin: int, cout: int, shape: tuple[int, int], strides: tuple[tuple[int, int], ...]):
            super().__init__()
            f, t = shape
            t1, *self.pad_t = same(t, 3, strides[0][1])
            f1 = math.ceil(f / strides[0][0])
            f2, *self.pad_f = same(f1, 3, strides[1][0])
            t2 = math.ceil(t1 / strides[1][1])
            self.conv_1x3 = nn.Conv2d(cin, cout, (1, 3), stride=strides[0])
            self.norm_1x3 = nn.LayerNorm([cout, f1, t1], eps=1e-3)
            self.conv_3x1 = nn.Conv2d(cout, cout, (3, 1), stride=strides[1])
            self.norm_3x1 = nn.LayerNorm([cout, f2, t2], eps=1e-3)
            self.out_shape = (f2, t2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.norm_1x3(F.elu(self.conv_1x3(F.pad(x, (*self.pad_t, 0, 0)))))
            return self.norm_3x1(F.elu(self.conv_3x1(F.pad(x, (0, 0, *self.pad_f)))))

    class NeuralFP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers, shape, cin = [], (N_MELS, N_FRAMES), 1
            for cout, strides in zip(_CHANNELS, _STRIDES, strict=True):
                layer = SepConv(cin, cout, shape, strides)
                layers.append(layer)
                shape, cin = layer.out_shape, cout
            self.front = nn.Sequential(*layers)
            width = cin * shape[0] * shape[1] // EMBEDDING_DIM
            self.slice_fc1 = nn.Parameter(torch.zeros(EMBEDDING_DIM, width, 32))
            self.slice_b1 = nn.Parameter(torch.zeros(EMBEDDING_DIM, 32))
            self.slice_fc2 = nn.Parameter(torch.zeros(EMBEDDING_DIM, 32))
            self.slice_b2 = nn.Parameter(torch.zeros(EMBEDDING_DIM))
            for p in (self.slice_fc1, self.slice_fc2):
                nn.init.uniform_(p, -0.3, 0.3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.front(x).permute(0, 2, 3, 1).reshape(x.shape[0], EMBEDDING_DIM, -1)  # Keras flattens (F, T, C)
            h = F.elu(torch.einsum("bqs,qsu->bqu", h, self.slice_fc1) + self.slice_b1)
            out = torch.einsum("bqu,qu->bq", h, self.slice_fc2) + self.slice_b2
            return F.normalize(out, dim=1)

    return NeuralFP()


@register_model("neuralfp")
class NeuralFPModel(WindowedModel):
    """NeuralFP, 128-d unit-norm fingerprint per 1 s segment (hop 0.5 s); see the module docstring."""

    description = "NeuralFP (local checkpoint), 128-d per 1 s segment at 8 kHz, hop 0.5 s"
    extra = "torch"
    uses_gpu = True
    max_batch_windows = 64
    requires: ClassVar[tuple[str, ...]] = ("torch",)

    def __init__(self, checkpoint: str | None = None, hop_s: float = 0.5, device: str = "auto", **params: Any) -> None:
        super().__init__(checkpoint=checkpoint, hop_s=hop_s, device=device, **params)
        self.sample_rate_hz = SR
        self.embedding_dim = EMBEDDING_DIM
        self.hop = self.frame_geometry({"hop_s": hop_s}).hop
        self.device = choose_device(device)
        self._mel = mel_filterbank(SR, N_FFT, N_MELS, fmin=300.0, fmax=4000.0)
        self._window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        path = weight_path(self.params, "checkpoint", "neuralfp.pt")
        self._net = load_converted(build_neuralfp(), path, "NeuralFP", self.device)

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return checkpoint_reason(
            cls.requires, params, "neuralfp.pt", "NeuralFP weights converted to a PyTorch state dict"
        )

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, EMBEDDING_DIM

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """Segment ``k`` is the 8,000 samples from ``k · hop`` alone (its log-mel is padded and normalised on its
        own); a remainder of at least half a hop past the last whole segment gets a zero-padded segment of its own."""
        hop = max(1, round(float(param_or_default(cls, params, "hop_s")) * SR))
        return FrameGeometry(hop=hop, left=0, right=SEGMENT, span=SEGMENT, tail=max(1, hop // 2))

    def _logmel(self, segment: np.ndarray) -> np.ndarray:
        padded = np.pad(segment, N_FFT // 2)
        idx = np.arange(N_FFT)[None, :] + FFT_HOP * np.arange(N_FRAMES)[:, None]
        mag = np.abs(np.fft.rfft(padded[idx] * self._window, axis=1)).astype(np.float32)
        x = np.log10(np.maximum(mag @ self._mel.T + 0.06, 1e-10))
        return np.maximum(x - x.max(), -80.0).T  # (mels, frames)

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        return np.stack([self._logmel(w) for w in cut_windows(audio, SEGMENT, self.hop)])[:, None]

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._net(torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)).float().cpu().numpy()
