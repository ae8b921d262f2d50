"""Handcrafted baselines: log-mel, MFCC and chroma statistics.

Each frame of the output summarises a window of ``window_s`` seconds (hop ``hop_s``) by the
mean and standard deviation of its spectral frames, so a clip-level mean over frames is a
mean-of-stats embedding. Pure numpy (+ librosa filter banks), CPU cost ≈ a few ms per second of
audio.

The features are repeval's own definitions, not librosa's feature functions: spectral frames start at the clip's
first sample (librosa centres them); log-mel is ``ln(mel power + 1e-6)`` (librosa's ``power_to_db`` is
``10·log10`` with a 1e-10 floor: a scale of 10/ln 10 and a lower floor, which matters in near-silence); MFCC is the
orthonormal DCT-II of that log-mel; chroma is librosa's chroma filter bank (no tuning estimate) on the magnitude
spectrum (``chroma_stft`` defaults to power and estimates tuning), each frame divided by its maximum.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repeval.models._common import as_mono, mel_filterbank
from repeval.models.base import EmbeddingModel, FrameGeometry, param_or_default, register_model


def _frames(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    if len(audio) < n_fft:
        audio = np.pad(audio, (0, n_fft - len(audio)))
    n = 1 + (len(audio) - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return audio[idx]


def _stats_frames(sample_rate_hz: int, hop_length: int, window_s: float, hop_s: float) -> tuple[int, int]:
    """(spectral frames per output frame, spectral frames between output frames)."""
    return max(1, round(window_s * sample_rate_hz / hop_length)), max(1, round(hop_s * sample_rate_hz / hop_length))


class _SpectralStats(EmbeddingModel):
    n_bands: int
    light = True

    def __init__(
        self,
        sample_rate_hz: int = 22050,
        n_fft: int = 2048,
        hop_length: int = 512,
        window_s: float = 1.0,
        hop_s: float = 0.5,
        **params: Any,
    ) -> None:
        super().__init__(**params)
        self.sample_rate_hz = int(sample_rate_hz)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.window_frames, self.hop_frames = _stats_frames(sample_rate_hz, hop_length, window_s, hop_s)
        self._window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)
        self._setup()
        self.embedding_dim = 2 * self.n_bands

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return int(param_or_default(cls, params, "sample_rate_hz")), 2 * cls._declared_bands(params)

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """Output frame ``k`` summarises the spectral frames ``k · hop_frames …`` of the next ``window_s``: the
        samples from ``k · hop_frames · hop_length`` over ``(window_frames − 1) · hop_length + n_fft``; a clip
        shorter than that gives one frame of what it holds."""
        hop_length = int(param_or_default(cls, params, "hop_length"))
        window, hop = _stats_frames(
            int(param_or_default(cls, params, "sample_rate_hz")),
            hop_length,
            float(param_or_default(cls, params, "window_s")),
            float(param_or_default(cls, params, "hop_s")),
        )
        extent = (window - 1) * hop_length + int(param_or_default(cls, params, "n_fft"))
        return FrameGeometry(hop=hop * hop_length, left=0, right=extent, span=extent)

    @classmethod
    def _declared_bands(cls, params: dict[str, Any]) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _setup(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bands(self, power: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, audio: np.ndarray) -> np.ndarray:
        audio = as_mono(audio)
        spec = np.abs(np.fft.rfft(_frames(audio, self.n_fft, self.hop_length) * self._window, axis=1)) ** 2
        feats = self._bands(spec.astype(np.float32))  # (T, n_bands)
        T = feats.shape[0]
        starts = range(0, max(1, T - self.window_frames + 1), self.hop_frames)
        out = np.empty((len(starts), self.embedding_dim), dtype=np.float32)
        for i, s in enumerate(starts):
            w = feats[s : s + self.window_frames]
            out[i, : self.n_bands] = w.mean(0)
            out[i, self.n_bands :] = w.std(0)
        return out


@register_model("logmel-stats")
class LogMelStats(_SpectralStats):
    description = "mean and std of log-mel bands over 1 s windows (handcrafted baseline)"

    def __init__(self, n_mels: int = 64, **kw: Any) -> None:
        self.n_bands = int(n_mels)
        super().__init__(**kw)

    @classmethod
    def _declared_bands(cls, params: dict[str, Any]) -> int:
        return int(param_or_default(cls, params, "n_mels"))

    def _setup(self) -> None:
        self._mel = mel_filterbank(self.sample_rate_hz, self.n_fft, self.n_bands)

    def _bands(self, power: np.ndarray) -> np.ndarray:
        return np.log(power @ self._mel.T + 1e-6)


@register_model("mfcc-stats")
class MFCCStats(LogMelStats):
    description = "mean and std of MFCCs over 1 s windows (handcrafted baseline)"

    def __init__(self, n_mfcc: int = 20, n_mels: int = 64, **kw: Any) -> None:
        self.n_mfcc = int(n_mfcc)
        super().__init__(n_mels=n_mels, **kw)
        self.n_bands = self.n_mfcc
        self.embedding_dim = 2 * self.n_mfcc

    @classmethod
    def _declared_bands(cls, params: dict[str, Any]) -> int:
        return int(param_or_default(cls, params, "n_mfcc"))

    def _bands(self, power: np.ndarray) -> np.ndarray:
        logmel = super()._bands(power)
        import scipy.fft  # here, not at the top: every process that imports the model zoo would pay for it

        return scipy.fft.dct(logmel, type=2, norm="ortho", axis=1)[:, : self.n_mfcc].astype(np.float32)


@register_model("chroma-stats")
class ChromaStats(_SpectralStats):
    description = "mean and std of 12-bin chroma over 1 s windows (handcrafted baseline)"

    def __init__(self, **kw: Any) -> None:
        self.n_bands = 12
        super().__init__(**kw)

    @classmethod
    def _declared_bands(cls, params: dict[str, Any]) -> int:
        return 12

    def _setup(self) -> None:
        import librosa

        self._chroma = librosa.filters.chroma(sr=self.sample_rate_hz, n_fft=self.n_fft).astype(np.float32)

    def _bands(self, power: np.ndarray) -> np.ndarray:
        c = np.sqrt(power) @ self._chroma.T
        return c / (c.max(axis=1, keepdims=True) + 1e-8)
