"""Spotify basic-pitch 0.4.0 (ICASSP 2022) frame activations through onnxruntime.

The wheel's ``nmp.onnx`` maps 2 s windows (43,844 samples at 22,050 Hz) to posteriorgrams at
≈86 frames/s: ``contour`` (264 bins, 1/3 semitone), ``note`` (88) and ``onset`` (88). repeval
windows the audio exactly like ``basic_pitch.inference.run_inference`` (30 overlapping frames,
half trimmed at each side, trimmed to the clip length) and returns, per frame, the
concatenation of the ``outputs`` named in the params (default all three: 440-d).

No frame geometry (a long track's pipeline windows are each embedded alone): a 2-s window's 142 kept frames span
36,352 samples but windows start every 36,164, and the stitched frames are cut to 86 a second of the clip (its frames
are 86.13 a second), so which frames a track has at a given time depends on its whole length, not on a bounded
context around it. A track of one window (shorter than 1.5 × ``chunk_s``) gets ``run_inference``'s frames exactly:
on five files (0.8-46 s, 44.1 and 22.05 kHz, a stereo MP3) the clip means were equal to the bit, but for a 45.8-s one
in two 30-s windows — 2% of their largest value away (cosine 0.99999), its two windows' frames near their edge
computed on each window's audio alone; with ``params.chunk_s: 60`` it was one window and equal too (session 53).
Set ``chunk_s`` above two thirds of the longest track for the package's frames, at the memory of a window that long.

``import basic_pitch`` imports tensorflow when present, which must not happen in a shared
worker (essentia aborts beside TF 2.x), so the package is never imported: only its model file
is read. Install: ``pip install --no-deps basic-pitch==0.4.0`` plus ``onnxruntime``.
CPU cost: ≈25× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repeval.models._common import RebuildOnUnpickle, as_mono, extra_reason, ort_session_options, package_dir
from repeval.models.base import EmbeddingModel, PerClip, refuse_offsets, register_model

SR = 22050
FFT_HOP = 256
WINDOW = SR * 2 - FFT_HOP  # AUDIO_N_SAMPLES
N_OVERLAP_FRAMES = 30
OVERLAP = N_OVERLAP_FRAMES * FFT_HOP
HOP = WINDOW - OVERLAP
FPS = SR // FFT_HOP  # ANNOTATIONS_FPS = 86
_OUTPUTS = {
    "contour": ("StatefulPartitionedCall:0", 264),
    "note": ("StatefulPartitionedCall:1", 88),
    "onset": ("StatefulPartitionedCall:2", 88),
}
_INPUT = "serving_default_input_2:0"


@register_model("basic-pitch")
class BasicPitch(RebuildOnUnpickle, EmbeddingModel):
    """basic-pitch posteriorgrams (contour ⊕ note ⊕ onset) per ≈11.6 ms frame."""

    description = "basic-pitch (ONNX) contour+note+onset activations, 440-d per 11.6 ms frame"
    extra = "onnx"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "basic_pitch")
    #: how many windows an onnxruntime call takes changes how the model runs, not its frames (below): a store
    #: embedded at one size is complete for another
    fingerprint_exempt: ClassVar[tuple[str, ...]] = ("max_batch_windows",)

    # max_batch_windows, windows per onnxruntime call: 8 runs as fast as 16 and gives each clip the same frames
    # (16, 8 and 4 gave identical arrays) with a 110–200 MiB lower peak RSS per process (32 clips of 5 s, one
    # thread: 453 against 562–659 MiB; docs/benchmarks.md, session 28)
    def __init__(self, outputs: list[str] | None = None, max_batch_windows: int = 8, **params: Any) -> None:
        outputs = list(outputs or ["contour", "note", "onset"])
        unknown = [o for o in outputs if o not in _OUTPUTS]
        if unknown or not outputs:
            raise ValueError(f"basic-pitch: unknown outputs {unknown}; choose from {sorted(_OUTPUTS)}")
        super().__init__(outputs=outputs, max_batch_windows=max_batch_windows, **params)
        import onnxruntime as ort

        self.outputs = outputs
        self.sample_rate_hz = SR
        self.embedding_dim = sum(_OUTPUTS[o][1] for o in outputs)
        self.max_batch_windows = int(max_batch_windows)
        path = package_dir("basic_pitch") / "saved_models" / "icassp_2022" / "nmp.onnx"
        self._session = ort.InferenceSession(
            str(path), sess_options=ort_session_options(), providers=["CPUExecutionProvider"]
        )

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return extra_reason("onnx", cls.requires, "(basic-pitch itself: `pip install --no-deps basic-pitch==0.4.0`)")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        outputs = params.get("outputs") or list(_OUTPUTS)
        return SR, sum(_OUTPUTS[o][1] for o in outputs if o in _OUTPUTS)

    @classmethod
    def declared_hop_s(cls, params: dict[str, Any]) -> float | None:
        """A clip's frames are cut to 86 a second of it (``ANNOTATIONS_FPS``, :meth:`embed_batch`)."""
        return 1 / FPS

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        audio = np.concatenate([np.zeros(OVERLAP // 2, dtype=np.float32), audio])
        starts = range(0, len(audio), HOP)
        out = np.zeros((len(starts), WINDOW, 1), dtype=np.float32)
        for i, s in enumerate(starts):
            chunk = audio[s : s + WINDOW]
            out[i, : len(chunk), 0] = chunk
        return out

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.embed_batch([audio])[0]

    def embed_batch(
        self, audios: list[np.ndarray], offsets: PerClip = None, n_frames: PerClip = None
    ) -> list[np.ndarray]:
        refuse_offsets(self, offsets)
        clips = [as_mono(a) for a in audios]
        wins = [self._windows(a) for a in clips]
        counts = [len(w) for w in wins]
        stacked = np.concatenate(wins) if wins else np.zeros((0, WINDOW, 1), np.float32)
        names = [_OUTPUTS[o][0] for o in self.outputs]
        parts = []
        for i in range(0, len(stacked), self.max_batch_windows):
            res = self._session.run(names, {_INPUT: stacked[i : i + self.max_batch_windows]})
            parts.append(np.concatenate(res, axis=-1))  # (b, frames, dim)
        if not parts:
            return []
        frames = np.concatenate(parts)
        n_olap = N_OVERLAP_FRAMES // 2
        frames = frames[:, n_olap:-n_olap, :]
        out = []
        for clip, chunk in zip(clips, np.split(frames, np.cumsum(counts)[:-1]), strict=True):
            n_keep = max(1, int(np.floor(len(clip) * (FPS / SR))))
            out.append(np.ascontiguousarray(chunk.reshape(-1, self.embedding_dim)[:n_keep], dtype=np.float32))
        return out
