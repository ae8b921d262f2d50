"""MULE (McCallum et al., ISMIR 2022): SF-NFNet-F0 on log-mel slices, loading a local checkpoint.

Architecture (paper poster + the authors' reference code): a slow path (time stride 8, 128→1,536
channels) and a fast path (time stride 2, 16→192 channels) of normaliser-free NFNet-F0 stages
(depths 1, 2, 6, 3; bottleneck blocks with grouped 1×3 / 3×1 convolutions, squeeze-excite,
scaled GELU, weight-standardised convolutions, skip gain), fast-to-slow fusion before every
stage, then global average pooling of both paths and concatenation: **1,728-d** (1,536 + 192).

Extraction as MULE's ``mule_embedding.yml``: 16 kHz audio → 96-band mel (n_fft 2048, window 400,
hop 160, fmax 8 kHz, HTK scale, L2-normalised filters, power) → ``log10(10000·x + 1)``; slices of
300 frames (3 s) centred every ``hop_frames`` (default 200 = 2 s) from frame ``hop_frames`` on — MULE's
``SliceExtractor`` centres none on frame 0 (:func:`slice_centres`) — each standardised to zero mean / unit
variance; one embedding per slice, and a track's embedding (``mule_embedding_average.yml``'s ``TimelineAverage``)
the mean of its slices'. Clips shorter than 3 s are zero-padded. (The reference also skips a centre at every
multiple of its 8,000-frame processing block, 80 s apart; repeval does not.)

``params.checkpoint`` (default ``$REPEVAL_MODELS_DIR/mule.pt``) is a PyTorch state dict of
:func:`build_sfnfnet` (``torch.load(weights_only=True)``). The released MULE model is a Keras
SavedModel: convert its weights to this module's parameter names first (no converter ships yet).
CPU cost: ≈120× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import (
    WindowedModel,
    checkpoint_reason,
    choose_device,
    load_converted,
    pad_to,
    weight_path,
)
from repeval.models.base import FrameGeometry, param_or_default, register_model

SR = 16000
SLICE = 300
MEL_HOP = 160  # samples between mel frames
MEL_WINDOW = 400  # samples a mel frame reads (its Hann window, centred in the 2,048-sample FFT)
EMBEDDING_DIM = 1728
_GELU_GAIN = 1.7015043497085571
_ALPHA = 0.2


def build_sfnfnet() -> Any:
    """SF-NFNet-F0 as a torch module mapping (batch, 1, 96 mels, 300 frames) to (batch, 1728)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def act(x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x) * _GELU_GAIN

    def same_pad(x: torch.Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[-2:], kernel, stride, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        flat = (*pads[1], *pads[0])
        return F.pad(x, flat) if any(flat) else x

    class WSConv(nn.Conv2d):
        """Weight-standardised conv with TF 'same' padding and a per-channel gain.

        In eval mode the standardised kernel (a function of the weights only) is cached.
        """

        def __init__(
            self, cin: int, cout: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1), groups: int = 1
        ):
            super().__init__(cin, cout, kernel, stride=stride, groups=groups)
            self.gain = nn.Parameter(torch.ones(cout))
            self._cached: torch.Tensor | None = None

        def standardized(self) -> torch.Tensor:
            w = self.weight
            mean = w.mean(dim=(1, 2, 3), keepdim=True)
            var = w.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
            scale = torch.rsqrt(torch.clamp(var * w[0].numel(), min=1e-4)) * self.gain[:, None, None, None]
            return w * scale - mean * scale

        def train(self, mode: bool = True) -> Any:
            self._cached = None
            return super().train(mode)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.training:
                w = self.standardized()
            else:
                if self._cached is None or self._cached.device != self.weight.device:
                    self._cached = self.standardized().detach()
                w = self._cached
            return F.conv2d(same_pad(x, self.kernel_size, self.stride), w, self.bias, self.stride, 0, 1, self.groups)

    class Stem(nn.Module):
        def __init__(self, kernels: list[tuple[int, int]], channels: list[int], strides: list[tuple[int, int]]):
            super().__init__()
            cins = [1, *channels[:-1]]
            self.convs = nn.ModuleList(
                WSConv(i, o, k, s) for i, o, k, s in zip(cins, channels, kernels, strides, strict=True)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for i, conv in enumerate(self.convs):
                x = conv(x)
                if i < len(self.convs) - 1:
                    x = act(x)
            return x

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, freq_down: int, group_size: int, beta: float, transition: bool):
            super().__init__()
            mid, groups = cout // 2, max(1, cout // 2 // group_size)
            self.beta, self.freq_down = beta, freq_down
            self.transition = transition or freq_down > 1 or cin != cout
            self.conv0 = WSConv(cin, mid, (1, 1))
            self.conv1 = WSConv(mid, mid, (1, 3), (freq_down, 1), groups)
            self.conv2 = WSConv(mid, mid, (3, 1), groups=groups)
            self.conv3 = WSConv(mid, cout, (1, 1))
            self.se_reduce = nn.Linear(cout, cout // 2)
            self.se_expand = nn.Linear(cout // 2, cout)
            self.skip_gain = nn.Parameter(torch.zeros(()))
            self.shortcut = WSConv(cin, cout, (1, 1)) if self.transition else None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = act(x) * self.beta
            skip = out if self.transition else x
            h = act(self.conv0(out))
            h = act(self.conv1(h))
            h = act(self.conv2(h))
            h = self.conv3(h)
            se = torch.sigmoid(self.se_expand(F.relu(self.se_reduce(h.mean(dim=(2, 3))))))
            h = h * (2.0 * se)[:, :, None, None] * self.skip_gain * _ALPHA
            if self.freq_down > 1:
                skip = F.avg_pool2d(skip, (self.freq_down, 1), (self.freq_down, 1), ceil_mode=True)
            if self.shortcut is not None:
                skip = self.shortcut(skip)
            return skip + h

    def stage(cin: int, cout: int, depth: int, freq_down: int, group_size: int, expected: float) -> nn.Sequential:
        blocks = [Block(cin, cout, freq_down, group_size, 1.0 / expected, transition=True)]
        std = (expected**2 + _ALPHA**2) ** 0.5
        for _ in range(1, depth):
            blocks.append(Block(cout, cout, 1, group_size, 1.0 / std, transition=False))
            std = (std**2 + _ALPHA**2) ** 0.5
        return nn.Sequential(*blocks)

    class Fusion(nn.Module):
        def __init__(self, cin: int, mid: int, cout: int):
            super().__init__()
            self.time_conv = WSConv(cin, mid, (1, 7), (1, 4))
            self.proj = WSConv(mid, cout, (1, 1))

        def forward(self, slow: torch.Tensor, fast: torch.Tensor) -> torch.Tensor:
            return torch.cat([slow, self.proj(self.time_conv(fast))], dim=1)

    class SFNFNetF0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.slow_stem = Stem([(3, 1)] * 3 + [(3, 3)], [16, 32, 64, 128], [(2, 8), (1, 1), (1, 1), (2, 2)])
            self.fast_stem = Stem([(3, 3)] * 4, [2, 4, 8, 16], [(2, 2), (1, 1), (1, 1), (2, 2)])
            depths, downs = (1, 2, 6, 3), (1, 2, 2, 2)
            expected = [1.0] + [(1.0 + _ALPHA**2) ** 0.5] * 3
            slow_in, slow_out = (256, 512, 1024, 4608), (256, 512, 1536, 1536)
            fast_in, fast_out = (16, 32, 64, 192), (32, 64, 192, 192)
            self.slow = nn.ModuleList(
                stage(i, o, d, f, 128, e)
                for i, o, d, f, e in zip(slow_in, slow_out, depths, downs, expected, strict=True)
            )
            self.fast = nn.ModuleList(
                stage(i, o, d, f, 16, e)
                for i, o, d, f, e in zip(fast_in, fast_out, depths, downs, expected, strict=True)
            )
            self.fusion = nn.ModuleList(
                Fusion(i, m, o)
                for i, m, o in zip((16, 32, 64, 192), (32, 32, 64, 192), (128, 256, 512, 3072), strict=True)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            slow, fast = self.slow_stem(x), self.fast_stem(x)
            for fuse, slow_stage, fast_stage in zip(self.fusion, self.slow, self.fast, strict=True):
                slow = slow_stage(fuse(slow, fast))
                fast = fast_stage(fast)
            return act(torch.cat([slow.mean(dim=(2, 3)), fast.mean(dim=(2, 3))], dim=1))

    return SFNFNetF0()


def slice_centres(n_frames: int, hop_frames: int) -> list[int]:
    """The mel frames MULE's slices are centred on: every ``hop_frames`` after the first frame — MULE's
    ``SliceExtractor.extract_range`` takes the multiples of its hop *greater than* the start, so no slice is centred
    on frame 0 — each clamped so that its 300 frames lie inside the ``n_frames`` (≥ 300: clips are padded to 3 s).
    A clip with no such multiple (``hop_frames`` ≥ ``n_frames``) gets one slice, its first 300 frames."""
    half = SLICE // 2
    return [min(max(c, half), n_frames - half) for c in range(hop_frames, n_frames, hop_frames)] or [half]


@register_model("mule")
class MULE(WindowedModel):
    """MULE SF-NFNet-F0, 1,728-d per 3 s slice every 2 s; see the module docstring."""

    description = "MULE SF-NFNet-F0 (local checkpoint), 1,728-d per 3 s log-mel slice, hop 2 s"
    #: 2: no slice centred on frame 0 (version 1 added one there, over the first 3 s again)
    embedding_version: ClassVar[str] = "2"
    extra = "torch"
    uses_gpu = True
    max_batch_windows = 16
    requires: ClassVar[tuple[str, ...]] = ("torch", "librosa")

    def __init__(
        self, checkpoint: str | None = None, hop_frames: int = 200, device: str = "auto", **params: Any
    ) -> None:
        super().__init__(checkpoint=checkpoint, hop_frames=hop_frames, device=device, **params)
        import librosa

        self.sample_rate_hz = SR
        self.embedding_dim = EMBEDDING_DIM
        self.hop_frames = max(1, int(hop_frames))
        self.device = choose_device(device)
        self._mel = librosa.filters.mel(sr=SR, n_fft=2048, n_mels=96, fmin=0.0, fmax=8000.0, htk=True, norm=2.0)
        self._mel = self._mel.astype(np.float32)
        path = weight_path(self.params, "checkpoint", "mule.pt")
        self._net = load_converted(build_sfnfnet(), path, "SF-NFNet-F0", self.device)

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return checkpoint_reason(cls.requires, params, "mule.pt", "MULE weights converted to a PyTorch state dict")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, EMBEDDING_DIM

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry | None:
        """Slice ``k`` is centred on mel frame ``(k + 1) · hop_frames``, its 300 frames reading the samples from
        ``k · hop`` + ``160 · (hop_frames − 150) − 200`` over 300 mel hops and a window (each slice standardised on
        its own); ``n`` samples give ``n // hop`` slices (at least one; the last clamped into the clip, at the
        track's end only). For ``hop_frames`` below 152 the first slice reads the clip's padding — or, below 150, is
        clamped at its start — so a window's first slice would not be the track's: no geometry then."""
        hop_frames = max(1, int(param_or_default(cls, params, "hop_frames")))
        first = MEL_HOP * (hop_frames - SLICE // 2) - MEL_WINDOW // 2  # where slice 0 starts reading
        if first < 0:
            return None
        hop = MEL_HOP * hop_frames
        return FrameGeometry(hop=hop, left=0, right=first + MEL_HOP * (SLICE - 1) + MEL_WINDOW, span=hop)

    def _logmel(self, audio: np.ndarray) -> np.ndarray:
        import librosa

        power = (
            np.abs(
                librosa.stft(
                    audio, n_fft=2048, hop_length=MEL_HOP, win_length=MEL_WINDOW, window="hann", pad_mode="reflect"
                )
            )
            ** 2
        )
        return np.log10(10000.0 * (self._mel @ power) + 1.0).astype(np.float32)  # (96, frames)

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        spec = self._logmel(pad_to(audio, 3 * SR))
        centres = slice_centres(spec.shape[1], self.hop_frames)
        slices = np.stack([spec[:, c - SLICE // 2 : c + SLICE // 2] for c in centres])
        slices -= slices.mean(axis=(1, 2), keepdims=True)
        slices /= np.maximum(slices.std(axis=(1, 2), keepdims=True), 0.01)
        return slices[:, None]

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self._net(torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)).float().cpu().numpy()
