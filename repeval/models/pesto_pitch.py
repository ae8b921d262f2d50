"""PESTO self-supervised pitch estimator (pesto-pitch 2.0.1, shipped ``mir-1k_g7`` weights).

One frame every ``hop_s`` (default 10 ms, PESTO's step) of a harmonic CQT. ``output``:

- ``activations`` (default): the 384-bin pitch distribution (1/3-semitone bins) the package
  returns — what pitch probes are usually trained on;
- ``features``: the encoder's flattened input to its final Toeplitz layer (657-d), a denser
  pre-classifier representation.

PESTO computes its CQT kernels for the sampling rate it is given; repeval feeds 16 kHz audio, deliberately:
``pesto.predict(x, sr)`` at a file's own rate gives each rate its own CQT and frame grid (at 22.05 kHz its 10-ms
step is 221 samples, 10.02 ms: a 45.8-s file gets 4,575 frames instead of 4,585), so one data set's files at
different rates would be heard differently; the shipped checkpoint was trained on MIR-1K, at 16 kHz. On the 16-kHz
samples repeval's decoder gives (soxr), the clip means are ``pesto.predict``'s to float32 rounding (≤ 4e-6 of their
largest value); against ``pesto.predict`` at the files' own 44.1 or 22.05 kHz they came within 3% (cosine ≥ 0.9994;
five files, session 53).
Frame ``k`` is the CQT column centred on ``k · hop`` (the shipped checkpoint's longest kernel: 4,096 samples,
reflect-padded past the clip's ends; a clip shorter than half a kernel, on which the package fails, reflected once
and zero-padded past that) through a per-frame encoder — ``n`` samples give ``1 + n // hop`` frames, a clip shorter
than a kernel too — so a long track's windows are invisible (:meth:`Pesto.frame_geometry`): given an offset, the CQT reads the audio before it instead of padding there, and given
a number of frames, it reads the audio they need and computes no more. The CQT's convolutions are rebuilt without
padding (same weights) and their input padded explicitly, so either is public torch API.
``import pesto`` needs torchaudio only to read files: it is imported here with a placeholder
torchaudio that is removed right after (torchaudio wheels do not import beside the CPU torch).
Install: ``pip install --no-deps pesto-pitch==2.0.1`` and ``pip install omegaconf`` (its
checkpoint stores omegaconf hyper-parameters). CPU cost: at 10 ms hop ≈130× log-mel
statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repeval.models._common import RebuildOnUnpickle, as_mono, choose_device, extra_reason, pad_to, stub_modules
from repeval.models.base import EmbeddingModel, FrameGeometry, PerClip, param_or_default, refuse_choice, register_model

SR = 16000
MIN_SAMPLES = 4096
_DIMS = {"activations": 384, "features": 657}
#: samples of the longest CQT kernel of each shipped checkpoint at 16 kHz (a frame reads as many, centred on it)
KERNELS = {"mir-1k_g7": 4096}


@register_model("pesto")
class Pesto(RebuildOnUnpickle, EmbeddingModel):
    """PESTO pitch activations (or encoder features) per 10 ms frame; see the module docstring."""

    description = "PESTO (mir-1k_g7) 384-bin pitch activations per 10 ms frame"
    extra = "torch"
    uses_gpu = True
    #: 2: a clip shorter than the CQT's kernel (0.256 s) gives the frames centred on it, its end reflected as the
    #: package does (1: 26 frames, its end zero-padded to 4,096 samples)
    embedding_version: ClassVar[str] = "2"
    requires: ClassVar[tuple[str, ...]] = ("torch", "pesto", "omegaconf")
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {"output": tuple(_DIMS)}

    def __init__(
        self,
        output: str = "activations",
        checkpoint: str = "mir-1k_g7",
        hop_s: float = 0.01,
        device: str = "auto",
        **params: Any,
    ) -> None:
        refuse_choice(self, "output", output)
        super().__init__(output=output, checkpoint=checkpoint, hop_s=hop_s, device=device, **params)
        with stub_modules("torchaudio", why="repeval passes waveforms, never files"):
            import pesto

        self.output = output
        self.sample_rate_hz = SR
        self.embedding_dim = _DIMS[output]
        self.device = choose_device(device)
        self._model = pesto.load_model(checkpoint, step_size=hop_s * 1000.0, sampling_rate=SR).to(self.device).eval()
        self._features: list[Any] = []
        #: (kernel, hop, padding) of the CQT, which reads its input as given (padded explicitly): None, as shipped
        self._cqt = self._unpadded_convs()
        if output == "features":
            self._model.encoder.fc.register_forward_hook(lambda mod, inp, out: self._features.append(inp[0]))

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return extra_reason("torch", cls.requires, "(pesto itself: `pip install --no-deps pesto-pitch==2.0.1`)")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, _DIMS.get(param_or_default(cls, params, "output"))

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry | None:
        """Frame ``k`` reads the kernel's samples centred on ``k · hop`` (``n`` samples: ``1 + n // hop`` frames)
        and may be centred anywhere (``align`` 1): a window reaches the model with half a kernel of the previous
        window, its frames centred from the window's start, and with the next window's first half kernel less a hop,
        on which it computes no frame (``stops``). ``None`` for a checkpoint of unknown kernel."""
        kernel = KERNELS.get(str(param_or_default(cls, params, "checkpoint")))
        if kernel is None:
            return None
        hop = int(float(param_or_default(cls, params, "hop_s")) * SR + 0.5)  # pesto's Preprocessor rounding
        return FrameGeometry(hop=hop, left=kernel // 2, right=kernel // 2, span=0, align=1, stops=True)

    def embed_batch(
        self, audios: list[np.ndarray], offsets: PerClip = None, n_frames: PerClip = None
    ) -> list[np.ndarray]:
        at = [0] * len(audios) if offsets is None else [int(o) for o in offsets]
        wanted = [-1] * len(audios) if n_frames is None else [int(n) for n in n_frames]
        return [self._embed(a, o, n) for a, o, n in zip(audios, at, wanted, strict=True)]

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self._embed(audio, 0, -1)

    def _unpadded_convs(self) -> tuple[int, int, int] | None:
        """Make the CQT's convolutions read their input as given — the reflection padding they did, done before them
        (:meth:`_embed`) — and return ``(kernel, hop, padding)``; ``None`` (convolutions left as they are) unless
        all harmonics share one kernel size, centred (half a kernel of reflection on each side)."""
        import torch

        cqts = list(self._model.preprocessor.hcqt_kernels.cqt_kernels)
        convs = [c.conv for c in cqts]
        first = convs[0]
        kernel, pad = first.kernel_size[0], first.padding[0]
        if any(
            type(c) is not torch.nn.Conv1d
            or c.bias is not None
            or (c.kernel_size, c.stride, c.padding, c.padding_mode, c.dilation, c.groups)
            != (first.kernel_size, first.stride, (kernel // 2,), "reflect", (1,), 1)
            for c in convs
        ):
            return None
        for cqt, c in zip(cqts, convs, strict=True):
            plain = torch.nn.Conv1d(c.in_channels, c.out_channels, kernel, stride=c.stride, padding=0, bias=False)
            plain.weight = c.weight
            cqt.conv = plain.to(c.weight.device)
        return kernel, int(first.stride[0]), pad

    def _embed(self, audio: np.ndarray, offset: int, wanted: int) -> np.ndarray:
        """The frames of ``audio`` centred every hop from ``offset`` samples into it — the CQT reads the half kernel
        before ``offset`` (at least that much audio) instead of reflecting the clip's start — up to ``wanted`` of
        them (negative: all; the CQT then reads the audio the last one needs, reflecting the clip's end only past
        it)."""
        import torch

        audio = as_mono(audio)
        if self._cqt is None:
            if offset:
                raise ValueError(f"pesto: cannot start frames {offset} samples into a clip with this checkpoint's CQT")
            x = torch.from_numpy(pad_to(audio, MIN_SAMPLES).copy()).to(self.device)
            # frames centred on the clip only: not on the zeros that let the package's CQT reflect a short clip
            frames = 1 + len(audio) // int(float(self.params["hop_s"]) * SR + 0.5)
        else:
            kernel, hop, half = self._cqt
            if offset and offset < half:
                raise ValueError(f"pesto: cannot start frames {offset} samples into a clip: it needs {half} before")
            # the package's CQT reflects half a kernel at each end of the clip; done here, so that a clip shorter
            # than that reflects what it has (the package fails on it) and an offset reads the audio before it
            clip = audio[offset - half :] if offset else reflect_pad(audio, half, 0)
            frames = (len(clip) - half) // hop + 1  # centred on the clip, from where its frames start to its end
            frames = frames if wanted < 0 else max(1, min(frames, wanted))
            need = (frames - 1) * hop + kernel
            x = torch.from_numpy(reflect_pad(clip[:need], 0, need - min(need, len(clip)))).to(self.device)
        self._features.clear()
        with torch.inference_mode():
            _, _, _, act = self._model(x, sr=SR, return_activations=True)
        out = self._features[0] if self.output == "features" else act
        self._features.clear()
        return np.ascontiguousarray(out.reshape(-1, self.embedding_dim)[:frames].float().cpu().numpy())


def reflect_pad(audio: np.ndarray, before: int, after: int) -> np.ndarray:
    """``audio`` (float32) with ``before`` and ``after`` samples more at its ends: its reflection there (torch's
    ``reflect``, the edge sample not repeated) as far as the audio reaches, zeros past that."""
    most = len(audio) - 1
    first, last = min(before, most), min(after, most)
    out = np.pad(audio, (first, last), mode="reflect") if first or last else audio
    return np.pad(out, (before - first, after - last)).astype(np.float32, copy=False)
