"""transformers audio encoders: MERT, HuBERT, wav2vec2, data2vec-audio, any AutoModel with hidden states.

``params``:

- ``model``: a hub id (``m-a-p/MERT-v1-95M``) or a local directory written by ``save_pretrained``;
- ``layers``: hidden-state indices (0 = the CNN feature projection, i = transformer layer i,
  negative counts from the end); several layers are averaged — mir_ref's ids
  ``mert-v1-95m-6`` (layer 6) and ``mert-v1-95m-4-5-6-7-8`` (mean of layers 4..8). Default: last;
- ``window_s`` (default 5 s, MERT's training context): audio is cut into windows so attention
  cost stays linear in clip length — the nearest whole number of equal windows (a 7-s clip is one window, 8 s two
  of 4 s), so that in ``window`` frames every window's frames weigh alike in the clip's mean, as in a mean over the
  clip's frames; on a GPU windows of equal length share a forward pass (``max_batch_windows``, no padding masks),
  on the CPU each window has one of its own (docs/store.md: bit-identical reruns). This is the one deliberate
  difference from mir_ref's MERT embeddings, which attend over the whole clip at once (equal for clips up to 1.5 windows);
- ``frames``: ``window`` (default) emits the mean over each window's frames, ``native`` every
  model frame (≈50–75 per second: large stores);
- ``normalize``: zero-mean/unit-variance per window (default: the checkpoint's feature-extractor
  ``do_normalize``); ``trust_remote_code`` (MERT needs it); ``allow_download`` (default False:
  weights must be local or in the Hugging Face cache, since workers must not download at
  catalog scale).

The model's sampling rate comes from its feature-extractor config (MERT: 24 kHz, others 16 kHz);
the pipeline resamples to it. CPU cost: a 95M-parameter encoder (MERT-v1-95M, HuBERT/wav2vec2
base) ≈170× log-mel statistics (benchmarks/bench_models.py, one run on a shared 2-core
machine); use a GPU for catalogs.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import RebuildOnUnpickle, as_mono, choose_device, extra_reason, pad_to
from repeval.models.base import (
    EmbeddingModel,
    PerClip,
    param_or_default,
    positive_seconds,
    refuse_choice,
    refuse_offsets,
    register_model,
)

log = logging.getLogger(__name__)

MIN_SAMPLES = 400  # the wav2vec2-style CNN front-end's receptive field

#: the registered families' checkpoints as their published ``config.json`` and ``preprocessor_config.json`` give
#: them — (sampling rate, hidden size, the front-end's stride in samples: the product of ``conv_stride``) — so
#: ``repeval plan`` states their frame memory before they are downloaded; a local config comes first
KNOWN_CHECKPOINTS: dict[str, tuple[int, int, int]] = {
    "m-a-p/MERT-v1-95M": (24000, 768, 320),
    "m-a-p/MERT-v1-330M": (24000, 1024, 320),
    "facebook/hubert-base-ls960": (16000, 768, 320),
    "facebook/wav2vec2-base": (16000, 768, 320),
    "facebook/data2vec-audio-base": (16000, 768, 320),
}


def _config_file(model: str, filename: str) -> Path | None:
    local = Path(model).expanduser()
    if local.is_dir():
        path = local / filename
        return path if path.is_file() else None
    if not _hub_id(model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(model, filename)
    return Path(found) if isinstance(found, str) else None


def _hub_id(model: str) -> bool:
    """Whether ``model`` (no directory here) can name a hub repository — ``/data/mert``, ``./mert`` cannot: a local
    directory that is not there (without huggingface_hub: ``True``, not known)."""
    try:
        from huggingface_hub.utils import validate_repo_id
    except ImportError:
        return True
    try:
        validate_repo_id(model)
    except ValueError:  # (HFValidationError)
        return False
    return True


def _no_directory(model: str) -> str:
    return f"{model} is no directory on this machine: set params.model to a save_pretrained directory or a hub id"


def _read_json(model: str, filename: str) -> dict[str, Any]:
    path = _config_file(model, filename)
    return json.loads(path.read_text()) if path else {}


def _layers_out_of_range(model: str, layers: Any) -> str | None:
    """Why ``params.layers`` names a hidden state the checkpoint's local ``config.json`` does not have (the words the
    constructor would raise in every embedding actor), so ``repeval validate`` says it first; None when it does not."""
    n_states = int(_read_json(model, "config.json").get("num_hidden_layers") or 0) + 1
    wanted = [layers] if isinstance(layers, int) else layers if isinstance(layers, list) else []
    bad = [ly for ly in wanted if isinstance(ly, int) and n_states > 1 and not -n_states <= ly < n_states]
    if not bad:
        return None
    return f"params.layers {bad} out of range: {model} has hidden states 0..{n_states - 1} (or -1..-{n_states})"


def _download_json(model: str, filename: str) -> dict[str, Any]:
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(model, filename)).read_text())
    except Exception as exc:  # the file is optional: fall back to the model config's rate
        log.warning("%s: no %s (%s); assuming the model config's sampling rate", model, filename, exc)
        return {}


class HFAudioEncoder(RebuildOnUnpickle, EmbeddingModel):
    """Hidden states of a transformers audio encoder; see the module docstring."""

    description = "any transformers audio encoder (params.model: hub id or local dir), layer selection"
    extra = "transformers"
    uses_gpu = True
    requires: ClassVar[tuple[str, ...]] = ("torch", "transformers")
    default_model: ClassVar[str | None] = None
    default_trust_remote_code: ClassVar[bool] = False
    #: 2: clips cut into equal windows (before, 5-s windows and whatever remained)
    embedding_version = "2"
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {"frames": ("window", "native")}

    def __init__(
        self,
        model: str | None = None,
        layers: list[int] | int | None = None,
        window_s: float = 5.0,
        frames: str = "window",
        normalize: bool | None = None,
        trust_remote_code: bool | None = None,
        allow_download: bool = False,
        device: str = "auto",
        max_batch_windows: int = 8,
        **params: Any,
    ) -> None:
        model = model or self.default_model
        if not model:
            raise ValueError(f"{self.name}: set params.model to a hub id or a local save_pretrained directory")
        refuse_choice(self, "frames", frames)
        trust = self.default_trust_remote_code if trust_remote_code is None else bool(trust_remote_code)
        layer_list = [layers] if isinstance(layers, int) else list(layers or [-1])
        super().__init__(
            model=model, layers=layer_list, window_s=window_s, frames=frames, normalize=normalize,
            trust_remote_code=trust, allow_download=allow_download, device=device,
            max_batch_windows=max_batch_windows, **params,
        )  # fmt: skip
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        local_only = not allow_download
        self.device = choose_device(device)
        self._model = AutoModel.from_pretrained(model, trust_remote_code=trust, local_files_only=local_only)
        self._model.to(self.device).eval()
        cfg = self._model.config
        n_states = int(getattr(cfg, "num_hidden_layers", 0)) + 1
        self.layers = [ly if ly >= 0 else n_states + ly for ly in layer_list]
        bad = [ly for ly in self.layers if not 0 <= ly < n_states]
        if bad:
            raise ValueError(f"{self.name}: layers {bad} out of range; {model} has hidden states 0..{n_states - 1}")
        fe = _read_json(model, "preprocessor_config.json")
        if not fe and allow_download:
            fe = _download_json(model, "preprocessor_config.json")
        self.sample_rate_hz = int(fe.get("sampling_rate") or getattr(cfg, "sampling_rate", 0) or 16000)
        self.normalize = bool(fe.get("do_normalize", False)) if normalize is None else bool(normalize)
        self.embedding_dim = int(cfg.hidden_size)
        self.window = max(MIN_SAMPLES, round(window_s * self.sample_rate_hz))
        self.frames = frames
        #: windows per forward pass: ``max_batch_windows`` on a GPU, one on the CPU — there a window's hidden states
        #: depended on the windows beside it in the call (tiny data2vec-audio: up to 3.7e-6 in a native frame, by
        #: its size and the window's place in it), so a rerun or a resumed run, whose calls hold other windows,
        #: stored other bits; on one CPU thread a 5-s window of a HuBERT-base-sized encoder costs what it does among
        #: 8 (960-1030 against 980-1060 ms)
        self.max_batch_windows = max(1, int(max_batch_windows)) if str(self.device).startswith("cuda") else 1

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        reason = extra_reason("transformers", cls.requires)
        if reason:
            return reason
        model = params.get("model") or cls.default_model
        if not model:
            return "params.model is not set: give a hub id or a local save_pretrained directory"
        if Path(str(model)).expanduser().is_dir():
            return (
                _layers_out_of_range(str(model), params.get("layers"))
                if _config_file(model, "config.json")
                else f"{model} has no config.json: not a save_pretrained directory"
            )
        if not _hub_id(model):
            return _no_directory(model)
        if _config_file(model, "config.json"):
            return _layers_out_of_range(str(model), params.get("layers"))
        if params.get("allow_download"):
            return None
        return (
            f"weights for '{model}' are not in the Hugging Face cache and downloads are off: run "
            f"`hf download {model}` where the hub is reachable (or set HF_HOME to a cache that has it), "
            "set params.model to a local directory, or set params.allow_download: true"
        )

    @classmethod
    def _declared(cls, params: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
        """``(sampling rate, hidden size, front-end stride in samples)`` of the model ``params`` name, from its
        config files where they are local (the rate as the constructor takes it: the feature extractor's, the model
        config's, else 16 kHz), else from :data:`KNOWN_CHECKPOINTS`; ``None`` where not known."""
        model = params.get("model") or cls.default_model
        if not model:
            return None, None, None
        cfg = _read_json(model, "config.json")
        if not cfg:
            return KNOWN_CHECKPOINTS.get(str(model), (None, None, None))
        fe = _read_json(model, "preprocessor_config.json")
        strides = cfg.get("conv_stride")
        return (
            int(fe.get("sampling_rate") or cfg.get("sampling_rate") or 16000),
            int(cfg["hidden_size"]) if "hidden_size" in cfg else None,
            int(np.prod([int(x) for x in strides])) if strides else None,
        )

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        rate, dim, _ = cls._declared(params)
        return rate, dim

    @classmethod
    def declared_hop_s(cls, params: dict[str, Any]) -> float | None:
        """``frames: window``: ``window_s`` (a clip's nearest whole number of equal windows, one frame each);
        ``native``: its convolutional front-end's stride (320 samples: 20 ms at 16 kHz) at its sampling rate — each
        the constructor's default unless ``params`` set it; ``None`` where not known (:meth:`undeclared_frames`)."""
        if param_or_default(cls, params, "frames") == "window":
            return positive_seconds(param_or_default(cls, params, "window_s"))
        rate, _, stride = cls._declared(params)
        return stride / rate if stride and rate else None

    @classmethod
    def undeclared_frames(cls, params: dict[str, Any]) -> str:
        model = params.get("model") or cls.default_model
        if not model:
            return "params.model is not set"
        if param_or_default(cls, params, "frames") == "window" and not positive_seconds(
            param_or_default(cls, params, "window_s")
        ):
            return "params.window_s is not a positive number of seconds"
        if not _hub_id(model) and not Path(model).expanduser().is_dir():
            return _no_directory(model)
        if not _config_file(model, "config.json"):
            return (
                f"{model}'s config.json is not on this machine (the Hugging Face cache or a save_pretrained directory) "
                f"and planning downloads nothing: `hf download {model} config.json "
                "preprocessor_config.json` lets it be stated"
            )
        return f"{model}'s config.json gives no hidden_size or conv_stride"

    def _split(self, audio: np.ndarray) -> list[np.ndarray]:
        """The clip as the nearest whole number of equal windows (lengths differing by one sample at most): each
        window's frames then weigh alike in the clip's mean, as they do in a mean over the clip's frames (a 5.1-s clip
        cut into 5 s + 0.1 s gave the 0.1-s tail half the clip's embedding)."""
        audio = pad_to(as_mono(audio), MIN_SAMPLES)
        n = max(1, min(round(len(audio) / self.window), len(audio) // MIN_SAMPLES))
        pieces = np.array_split(audio, n)
        if self.normalize:
            pieces = [(p - p.mean()) / np.sqrt(p.var() + 1e-7) for p in pieces]
        return pieces

    def _run(self, windows: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
            hidden = self._model(x, output_hidden_states=True).hidden_states
            h = torch.stack([hidden[i] for i in self.layers]).mean(0)  # (b, frames, dim)
            if self.frames == "window":
                h = h.mean(1, keepdim=True)
        return h.float().cpu().numpy()

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.embed_batch([audio])[0]

    def embed_batch(
        self, audios: list[np.ndarray], offsets: PerClip = None, n_frames: PerClip = None
    ) -> list[np.ndarray]:
        refuse_offsets(self, offsets)
        pieces = [(c, j, p) for c, a in enumerate(audios) for j, p in enumerate(self._split(a))]
        results: dict[tuple[int, int], np.ndarray] = {}
        by_len: dict[int, list[tuple[int, int, np.ndarray]]] = {}
        for item in pieces:
            by_len.setdefault(len(item[2]), []).append(item)
        for group in by_len.values():
            for i in range(0, len(group), self.max_batch_windows):
                chunk = group[i : i + self.max_batch_windows]
                out = self._run(np.stack([p for _, _, p in chunk]))
                for (c, j, _), o in zip(chunk, out, strict=True):
                    results[(c, j)] = o
        per_clip: list[list[np.ndarray]] = [[] for _ in audios]
        for c, j, _ in pieces:
            per_clip[c].append(results[(c, j)])
        return [np.ascontiguousarray(np.concatenate(parts), dtype=np.float32) for parts in per_clip]


register_model("hf-audio")(HFAudioEncoder)


def _mert_id(model_id: str) -> dict[str, Any] | None:
    m = re.fullmatch(r"mert-v1-(95m|330m)((?:-\d+)*)", model_id)
    if not m:
        return None
    layers = [int(x) for x in m.group(2).split("-") if x]
    return {"model": f"m-a-p/MERT-v1-{m.group(1).upper()}", "layers": layers or None}


@register_model("mert-v1", parse_id=_mert_id, model="m-a-p/MERT-v1-95M")
class MERT(HFAudioEncoder):
    description = "MERT-v1 (95M/330M; ids mert-v1-95m-6, mert-v1-95m-4-5-6-7-8 = mean of layers 4..8)"
    default_model = "m-a-p/MERT-v1-95M"
    default_trust_remote_code = True


@register_model("hubert-base")
class HuBERTBase(HFAudioEncoder):
    description = "HuBERT base (facebook/hubert-base-ls960), last layer by default"
    default_model = "facebook/hubert-base-ls960"


@register_model("wav2vec2-base")
class Wav2Vec2Base(HFAudioEncoder):
    description = "wav2vec 2.0 base (facebook/wav2vec2-base), last layer by default"
    default_model = "facebook/wav2vec2-base"


@register_model("data2vec-audio-base")
class Data2VecAudioBase(HFAudioEncoder):
    description = "data2vec-audio base (facebook/data2vec-audio-base), last layer by default"
    default_model = "facebook/data2vec-audio-base"
