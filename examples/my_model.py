"""An embedding model of your own, evaluated by repeval without changing repeval (README, "Your own model").

Name this file in a configuration's top-level ``plugins:`` list (``examples/my_model.yaml`` does) and use the name
it registers under ``embedding_models:``; ``repeval validate-model my-spectrum-projection --plugin
examples/my_model.py`` checks it against the contract.

The model: log-magnitude spectra of 64-ms frames (32-ms hop) at 16 kHz, projected to ``dim`` dimensions by a
fixed, seeded random matrix — numpy only, standing in for a network. A torch model has the same shape: load the
weights once in ``__init__`` (``torch.load``, ``.eval()``), and in ``embed`` run it under ``torch.inference_mode()``
and return ``.numpy()`` as float32.
"""

from __future__ import annotations

import numpy as np

from repeval.models import EmbeddingModel, register_model


@register_model("my-spectrum-projection")
class SpectrumProjection(EmbeddingModel):
    description = "log spectra times a seeded random projection (examples/my_model.py)"
    #: the rate repeval decodes (and resamples) the audio to before it reaches embed()
    sample_rate_hz = 16000
    #: raise it whenever a change makes the same params give other embeddings: the store then refuses the old ones
    embedding_version = "1"

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        """Everything under ``params:`` in the configuration arrives here, checked against these parameters."""
        super().__init__(dim=dim, seed=seed)
        self.embedding_dim = int(dim)
        self.n_fft, self.hop = 1024, 512
        self.window = np.hanning(self.n_fft).astype(np.float32)
        # the "weights", built once per worker process (a real model loads its checkpoint here)
        bins = self.n_fft // 2 + 1
        rng = np.random.default_rng(seed)
        self.projection = (rng.standard_normal((bins, self.embedding_dim)) / np.sqrt(bins)).astype(np.float32)

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """One mono float32 clip at ``sample_rate_hz`` → its frames, ``(n_frames >= 1, embedding_dim)`` float32
        (repeval averages them into the track's embedding)."""
        if audio.size == 0:
            raise ValueError("empty audio")
        if len(audio) < self.n_fft:  # a clip shorter than one frame: one zero-padded frame
            audio = np.pad(audio, (0, self.n_fft - len(audio)))
        frames = np.lib.stride_tricks.sliding_window_view(audio, self.n_fft)[:: self.hop] * self.window
        spectra = np.log1p(np.abs(np.fft.rfft(frames, axis=1))).astype(np.float32)
        return spectra @ self.projection
