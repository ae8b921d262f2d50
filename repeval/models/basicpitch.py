"""Spotify basic-pitch 0.4.0 (ICASSP 2022) frame activations through onnxruntime.

The wheel's ``nmp.onnx`` maps 2 s windows (43,844 samples at 22,050 Hz) to posteriorgrams at
≈86 frames/s: ``contour`` (264 bins, 1/3 semitone), ``note`` (88) and ``onset`` (88). repeval
windows the audio exactly like ``basic_pitch.inference.run_inference`` (30 overlapping frames,
half trimmed at each side, trimmed to the clip length) and returns, per frame, the
concatenation of the ``outputs`` named in the params (default all three: 440-d).

A long track's pipeline windows are invisible (:meth:`BasicPitch.frame_geometry`): its frames are the 2-s windows,
142 output rows each, every 36,164 samples; windows on that grid reach the model with 3,840 samples of their neighbours
each side and it starts its 2-s windows 3,840 samples before theirs (``offsets``), as ``run_inference`` does on the
whole track, computing only the rows asked (``n_frames``); the track's rows are cut to 86 a second of it
(``rows_per_sample``). A 133-s song in 4 windows of 30 s or 27 of 5 s gets ``run_inference``'s frames to the bit
(tests/pipeline/test_seams.py). The windows give 142 rows per 36,164 samples (86.58 a second), so the cut drops the
last 0.67% of a track's rows: past about 39 minutes at 30-s windows (6.4 at 5-s windows) it falls before the track's
last window, and the decoder reads far enough ahead to know where (:mod:`repeval.pipeline.readahead`), each window keeping
its rows before the cut — ``run_inference``'s count at any length.

``import basic_pitch`` imports tensorflow when present, which must not happen in a shared
worker (essentia aborts beside TF 2.x), so the package is never imported: only its model file
is read. Install: ``pip install --no-deps basic-pitch==0.4.0`` plus ``onnxruntime``.
CPU cost: ≈25× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repeval.models._common import RebuildOnUnpickle, as_mono, extra_reason, ort_session_options, package_dir
from repeval.models.base import EmbeddingModel, FrameGeometry, PerClip, refuse_choice, register_model

SR = 22050
FFT_HOP = 256
WINDOW = SR * 2 - FFT_HOP  # AUDIO_N_SAMPLES
N_OVERLAP_FRAMES = 30
OVERLAP = N_OVERLAP_FRAMES * FFT_HOP
HOP = WINDOW - OVERLAP
FPS = SR // FFT_HOP  # ANNOTATIONS_FPS = 86
ROWS = 2 * FPS - N_OVERLAP_FRAMES  # a window's 172 frames less half the overlap at each side
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
    #: the posteriorgrams concatenated, in the order given: any of them, once or more
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {"outputs": tuple(_OUTPUTS)}
    param_choice_lists: ClassVar[tuple[str, ...]] = ("outputs",)

    # max_batch_windows, windows per onnxruntime call: 8 runs as fast as 16 and gives each clip the same frames
    # (16, 8 and 4 gave identical arrays) with a 110–200 MiB lower peak RSS per process (32 clips of 5 s, one
    # thread: 453 against 562–659 MiB; docs/benchmarks.md, session 28)
    def __init__(self, outputs: list[str] | None = None, max_batch_windows: int = 8, **params: Any) -> None:
        outputs = ["contour", "note", "onset"] if outputs is None else outputs
        refuse_choice(self, "outputs", outputs)
        outputs = list(outputs)
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
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """A frame per 2-s window, 142 rows each: window ``k`` of a track starts ``k`` hops of 36,164 samples in,
        less the 3,840 zeros ``run_inference`` puts before the track, and reads 43,844 samples — so a pipeline window
        on that grid, with 3,840 samples of its neighbours each side, gets ``run_inference``'s windows of the whole
        track, and the track's rows are cut to 86 a second of it. ``span``: the padding makes ``n`` samples
        ``ceil((n + 3,840) / hop)`` windows."""
        half = OVERLAP // 2
        return FrameGeometry(
            hop=HOP, left=half, right=WINDOW - half, span=1 - half, align=1, stops=True, rows=ROWS,
            rows_per_sample=FPS / SR,
        )  # fmt: skip

    def _windows(self, audio: np.ndarray, offset: int = 0, rows: int = -1) -> np.ndarray:
        """The 2-s windows whose frames start ``offset`` samples into ``audio`` (the audio before: the context the
        first one reads, zeros where there is less), as many as give ``rows`` rows (negative: all)."""
        half = OVERLAP // 2
        pad = np.zeros(max(0, half - offset), dtype=np.float32)
        audio = np.concatenate([pad, audio[max(0, offset - half) :]])
        starts = range(0, len(audio), HOP)[: -(-rows // ROWS) if rows >= 0 else None]
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
        """Each clip's rows: ``run_inference``'s; with ``offsets`` (a pipeline window with context before it), its
        windows start there; with ``n_frames`` (of rows, negative: all), only those rows' windows are computed."""
        clips = [as_mono(a) for a in audios]
        offs = [int(o) for o in offsets] if offsets is not None else [0] * len(clips)
        wanted = [int(n) for n in n_frames] if n_frames is not None else [-1] * len(clips)
        wins = [self._windows(a, o, n) for a, o, n in zip(clips, offs, wanted, strict=True)]
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
        for clip, o, n, chunk in zip(clips, offs, wanted, np.split(frames, np.cumsum(counts)[:-1]), strict=True):
            n_keep = n if n >= 0 else max(1, int(np.floor((len(clip) - o) * (FPS / SR))))
            out.append(np.ascontiguousarray(chunk.reshape(-1, self.embedding_dim)[:n_keep], dtype=np.float32))
        return out
