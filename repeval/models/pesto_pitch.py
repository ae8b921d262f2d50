"""PESTO self-supervised pitch estimator (pesto-pitch 2.0.1, shipped ``mir-1k_g7`` weights).

One frame every ``hop_s`` (default 10 ms, PESTO's step) of a harmonic CQT. ``output``:

- ``activations`` (default): the 384-bin pitch distribution (1/3-semitone bins) the package
  returns — what pitch probes are usually trained on;
- ``features``: the encoder's flattened input to its final Toeplitz layer (657-d), a denser
  pre-classifier representation.

PESTO computes its CQT kernels for the sampling rate it is given; repeval feeds 16 kHz audio.
Frame ``k`` is the CQT column centred on ``k · hop`` (the shipped checkpoint's longest kernel: 4,096 samples,
reflect-padded past the clip's ends) through a per-frame encoder, so a long track's windows are invisible
(:meth:`Pesto.frame_geometry`): given an offset, the CQT reads the audio before it instead of padding there.
``import pesto`` needs torchaudio only to read files: it is imported here with a placeholder
torchaudio that is removed right after (torchaudio wheels do not import beside the CPU torch).
Install: ``pip install --no-deps pesto-pitch==2.0.1`` and ``pip install omegaconf`` (its
checkpoint stores omegaconf hyper-parameters). CPU cost: at 10 ms hop ≈130× log-mel
statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import RebuildOnUnpickle, as_mono, choose_device, extra_reason, pad_to, stub_modules
from repeval.models.base import EmbeddingModel, FrameGeometry, register_model

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
    requires: ClassVar[tuple[str, ...]] = ("torch", "pesto", "omegaconf")

    def __init__(
        self,
        output: str = "activations",
        checkpoint: str = "mir-1k_g7",
        hop_s: float = 0.01,
        device: str = "auto",
        **params: Any,
    ) -> None:
        if output not in _DIMS:
            raise ValueError(f"pesto: unknown output '{output}'; choose one of {sorted(_DIMS)}")
        super().__init__(output=output, checkpoint=checkpoint, hop_s=hop_s, device=device, **params)
        with stub_modules("torchaudio", why="repeval passes waveforms, never files"):
            import pesto

        self.output = output
        self.sample_rate_hz = SR
        self.embedding_dim = _DIMS[output]
        self.device = choose_device(device)
        self._model = pesto.load_model(checkpoint, step_size=hop_s * 1000.0, sampling_rate=SR).to(self.device).eval()
        self._features: list[Any] = []
        if output == "features":
            self._model.encoder.fc.register_forward_hook(lambda mod, inp, out: self._features.append(inp[0]))

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return extra_reason("torch", cls.requires, "(pesto itself: `pip install --no-deps pesto-pitch==2.0.1`)")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, _DIMS.get(params.get("output", "activations"))

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry | None:
        """Frame ``k`` reads the kernel's samples centred on ``k · hop`` (``n`` samples: ``1 + n // hop`` frames)
        and may be centred anywhere (``align`` 1): a window reaches the model with half a kernel of the previous
        window, its frames centred from the window's start. ``None`` for a checkpoint of unknown kernel."""
        kernel = KERNELS.get(str(params.get("checkpoint", "mir-1k_g7")))
        if kernel is None:
            return None
        hop = int(float(params.get("hop_s", 0.01)) * SR + 0.5)  # pesto's Preprocessor rounding
        return FrameGeometry(hop=hop, left=kernel // 2, right=kernel // 2, span=0, align=1)

    def embed_batch(self, audios: list[np.ndarray], offsets: Sequence[int] | None = None) -> list[np.ndarray]:
        at = [0] * len(audios) if offsets is None else [int(o) for o in offsets]
        return [self._embed(a, o) for a, o in zip(audios, at, strict=True)]

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self._embed(audio, 0)

    def _embed(self, audio: np.ndarray, offset: int) -> np.ndarray:
        """The frames of ``audio`` centred every hop from ``offset`` samples into it: the CQT reads the half kernel
        before ``offset`` (at least that much audio) instead of reflecting the clip's start."""
        import torch

        audio = as_mono(audio)
        convs = [c.conv for c in self._model.preprocessor.hcqt_kernels.cqt_kernels]
        if offset:
            half = convs[0].kernel_size[0] // 2
            if offset < half or any(c.kernel_size != convs[0].kernel_size for c in convs):
                raise ValueError(f"pesto: cannot start frames {offset} samples into a clip with this checkpoint's CQT")
            audio = audio[offset - half :]
        audio = pad_to(audio, MIN_SAMPLES)  # the CQT reflect-pads 2,048 samples on each side
        self._features.clear()
        # with an offset, the convolutions reflect the clip's end only: its start is the audio their frames read
        pads = [c._reversed_padding_repeated_twice for c in convs]
        try:
            for c in convs if offset else []:
                c._reversed_padding_repeated_twice = [0, *c._reversed_padding_repeated_twice[1:]]
            with torch.inference_mode():
                x = torch.from_numpy(audio).to(self.device)
                _, _, _, act = self._model(x, sr=SR, return_activations=True)
        finally:
            for c, pad in zip(convs, pads, strict=True):
                c._reversed_padding_repeated_twice = pad
        out = self._features[0] if self.output == "features" else act
        self._features.clear()
        return np.ascontiguousarray(out.reshape(-1, self.embedding_dim).float().cpu().numpy())
