"""CLMR (Spijkervet & Burgoyne 2021): a SampleCNN encoder on raw waveforms, loading a local checkpoint.

The encoder is SampleCNN with nine stride-3 blocks on 59,049-sample windows (≈2.68 s at
22,050 Hz); the embedding is its 512-d output before the projection/classifier head. Clips are
cut into windows every ``hop_s`` (default: the window length, no overlap); clips shorter than one window are
zero-padded, and so is a last partial window of at least half a hop — a shorter tail is dropped (mir_ref pads every
remainder, however short, into a window that weighs as much as a full one in the clip's mean).

``params.checkpoint`` (default ``$REPEVAL_MODELS_DIR/clmr-v2.pt``) is loaded with
``torch.load(weights_only=True)``. Accepted layouts: a SampleCNN state dict
(``sequential.*`` [+ ``fc.*``]), or CLMR's training state dicts whose encoder keys carry an
``encoder.`` / ``model.encoder.`` prefix (optionally under ``state_dict``). A PyTorch-Lightning
``.ckpt`` that pickles hyper-parameter objects must first be re-saved as tensors only.
CPU cost: ≈30× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core machine).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from repeval.models._common import (
    WindowedModel,
    checkpoint_reason,
    choose_device,
    cut_windows,
    load_state_dict,
    weight_path,
)
from repeval.models.base import FrameGeometry, register_model

SR = 22050
WINDOW = 59049  # 3 ** 10
_HIDDEN = [(128, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256), (256, 256), (256, 256), (256, 512)]


def _hop(hop_s: float | None) -> int:
    """Samples between windows: ``hop_s`` (default: the window's length)."""
    return WINDOW if hop_s is None else max(1, round(hop_s * SR))


def build_samplecnn(out_dim: int = 50) -> Any:
    """CLMR's SampleCNN (strides [3] * 9) with module names matching its checkpoints."""
    import torch.nn as nn

    class SampleCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            blocks: list[nn.Module] = [nn.Sequential(nn.Conv1d(1, 128, 3, stride=3), nn.BatchNorm1d(128), nn.ReLU())]
            for h_in, h_out in _HIDDEN:
                blocks.append(
                    nn.Sequential(
                        nn.Conv1d(h_in, h_out, 3, padding=1), nn.BatchNorm1d(h_out), nn.ReLU(), nn.MaxPool1d(3, 3)
                    )
                )
            blocks.append(nn.Sequential(nn.Conv1d(512, 512, 3, padding=1), nn.BatchNorm1d(512), nn.ReLU()))
            self.sequential = nn.Sequential(*blocks)
            self.fc = nn.Linear(512, out_dim)

        def forward(self, x: Any) -> Any:  # (batch, 1, 59049) -> (batch, 512)
            return self.sequential(x).reshape(x.shape[0], -1)

    return SampleCNN()


def encoder_state(state: dict[str, Any]) -> dict[str, Any]:
    """The SampleCNN encoder tensors of any accepted checkpoint layout (see the module docstring)."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    for prefix in ("model.encoder.", "encoder.", ""):
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix + "sequential.")}
        if picked:
            return picked
    raise ValueError(
        "no SampleCNN encoder weights found (expected keys 'sequential.*', 'encoder.sequential.*' or "
        "'model.encoder.sequential.*'): is this a CLMR SampleCNN checkpoint?"
    )


@register_model("clmr-v2")
class CLMR(WindowedModel):
    """CLMR SampleCNN encoder, 512-d per 59,049-sample window; see the module docstring."""

    description = "CLMR SampleCNN (local checkpoint), 512-d per 2.68 s window at 22.05 kHz"
    extra = "torch"
    uses_gpu = True
    max_batch_windows = 32
    requires: ClassVar[tuple[str, ...]] = ("torch",)

    def __init__(
        self, checkpoint: str | None = None, hop_s: float | None = None, device: str = "auto", **params: Any
    ) -> None:
        super().__init__(checkpoint=checkpoint, hop_s=hop_s, device=device, **params)
        self.sample_rate_hz = SR
        self.embedding_dim = 512
        self.hop = _hop(hop_s)
        self.device = choose_device(device)
        path = weight_path(self.params, "checkpoint", "clmr-v2.pt")
        net = build_samplecnn()
        missing, _ = net.load_state_dict(encoder_state(load_state_dict(path, "['state_dict']")), strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing:
            raise ValueError(f"{path} lacks SampleCNN weights {missing[:4]}…: is this a CLMR SampleCNN checkpoint?")
        self._net = net.to(self.device).eval()

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        return checkpoint_reason(cls.requires, params, "clmr-v2.pt", "a CLMR SampleCNN checkpoint (CLMR releases)")

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, 512

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """Window ``k`` is the 59,049 samples from ``k · hop`` alone (SampleCNN reads nothing else); a remainder of
        at least half a hop past the last whole window gets a zero-padded window of its own."""
        hop = _hop(params.get("hop_s"))
        return FrameGeometry(hop=hop, left=0, right=WINDOW, span=WINDOW, tail=max(1, hop // 2))

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        return cut_windows(audio, WINDOW, self.hop)

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)[:, None, :]
            return self._net(x).float().cpu().numpy()
