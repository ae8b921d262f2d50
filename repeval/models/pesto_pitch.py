"""PESTO self-supervised pitch estimator (pesto-pitch 2.0.1, shipped ``mir-1k_g7`` weights).

One frame every ``hop_s`` (default 10 ms, PESTO's step) of a harmonic CQT. ``output``:

- ``activations`` (default): the 384-bin pitch distribution (1/3-semitone bins) the package
  returns — what pitch probes are usually trained on;
- ``features``: the encoder's flattened input to its final Toeplitz layer (657-d), a denser
  pre-classifier representation.

PESTO computes its CQT kernels for the sampling rate it is given; repeval feeds 16 kHz audio.
No frame geometry yet: a frame reads the 4,096 samples centred on it, but pesto centres its first frame on its
input's first sample and reflect-pads there itself, so a window given the context its first frames need would
compute ≈25 frames per window edge on that context (the pipeline's windows are each embedded alone).
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
from repeval.models.base import EmbeddingModel, register_model

SR = 16000
MIN_SAMPLES = 4096
_DIMS = {"activations": 384, "features": 657}


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

    def embed(self, audio: np.ndarray) -> np.ndarray:
        import torch

        audio = as_mono(audio)
        audio = pad_to(audio, MIN_SAMPLES)  # the CQT reflect-pads 2,048 samples on each side
        self._features.clear()
        with torch.inference_mode():
            x = torch.from_numpy(audio).to(self.device)
            _, _, _, act = self._model(x, sr=SR, return_activations=True)
        out = self._features[0] if self.output == "features" else act
        self._features.clear()
        return np.ascontiguousarray(out.reshape(-1, self.embedding_dim).float().cpu().numpy())
