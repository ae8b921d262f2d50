"""Shared plumbing for the embedding-model families (not a plug-in itself).

Everything here is cheap to import: heavy frameworks (torch, tensorflow, essentia, onnxruntime,
transformers) are imported inside the functions that need them, so importing
:mod:`repeval.models` never loads a framework — essential because essentia-tensorflow aborts a
process that already imported tensorflow 2.x, and vice versa.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from repeval.models.base import EmbeddingModel, ModelUnavailable, PerClip, refuse_offsets
from repeval.words import counted

#: environment each isolated process group needs (set before the framework is imported);
#: the pipeline passes these as the actor's ``runtime_env={"env_vars": ...}``.
PROCESS_GROUP_ENV: dict[str, dict[str, str]] = {
    "default": {},
    "tf": {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    "essentia": {"TF_CPP_MIN_LOG_LEVEL": "2"},
}

#: the per-process thread cap set by :func:`repeval.pipeline.embedder.limit_threads`, read by the families
#: whose framework keeps its own thread pools (TensorFlow sessions, onnxruntime): threadpoolctl and
#: ``torch.set_num_threads`` do not reach those, and their default is one thread per core
THREADS_ENV = "REPEVAL_MODEL_THREADS"


def model_threads() -> int | None:
    """The thread cap this process runs models with (``$REPEVAL_MODEL_THREADS``), or None for the default."""
    value = os.environ.get(THREADS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def ort_session_options() -> Any:
    """onnxruntime's session options for a model of the zoo: errors only in its log, the pipeline's thread cap
    (:func:`model_threads`; onnxruntime's default: one thread per core) and no spinning — by default a session's
    pool threads busy-wait for the next op after each one, CPU taken from the decode tasks and the other actors
    that share the cores (with several threads per session: its CPU time well above its wall time)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    threads = model_threads()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


#: where user-supplied weights (.pb graphs, checkpoints) are looked up when a config gives no path
MODELS_DIR_ENV = "REPEVAL_MODELS_DIR"


def models_dir() -> Path:
    """Directory searched for user-supplied weights: ``$REPEVAL_MODELS_DIR`` or ``~/.cache/repeval/models``."""
    return Path(os.environ.get(MODELS_DIR_ENV) or Path.home() / ".cache" / "repeval" / "models")


def weight_path(params: dict[str, Any], key: str, default_name: str) -> Path:
    """The weights file named by ``params[key]``, else ``models_dir()/default_name``."""
    value = params.get(key)
    return Path(value).expanduser() if value else models_dir() / default_name


def missing_weights_reason(path: Path, key: str, what: str) -> str | None:
    if path.is_file():
        return None
    return (
        f"weights file {path} not found: obtain {what}, then set `params.{key}` to its path "
        f"(or place it in ${MODELS_DIR_ENV}, default ~/.cache/repeval/models)"
    )


def checkpoint_reason(requires: Sequence[str], params: dict[str, Any], default_name: str, what: str) -> str | None:
    """Why a torch model whose weights ``params.checkpoint`` names (else ``default_name`` in the models folder)
    cannot run: a module of the ``torch`` extra missing, or the weights file not found (``what``: what to obtain);
    ``None``: it can."""
    return extra_reason("torch", requires) or missing_weights_reason(
        weight_path(params, "checkpoint", default_name), "checkpoint", what
    )


def missing_modules(*modules: str) -> list[str]:
    """Top-level modules that are not installed (checked without importing them)."""
    out = []
    for mod in modules:
        try:
            if importlib.util.find_spec(mod) is None:
                out.append(mod)
        except (ImportError, ValueError):
            out.append(mod)
    return out


def extra_reason(extra: str, modules: Sequence[str], hint: str = "") -> str | None:
    """``None`` when every module is installed, else a reason naming the install command."""
    missing = missing_modules(*modules)
    if not missing:
        return None
    msg = f"optional dependencies missing ({', '.join(missing)}): pip install 'repeval[{extra}]'"
    return f"{msg} {hint}".strip()


def package_dir(module: str) -> Path:
    """Install directory of a package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package '{module}' is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@contextlib.contextmanager
def stub_modules(*names: str, why: str = "") -> Iterator[None]:
    """Temporarily provide placeholder modules for absent optional imports.

    torchcrepe and pesto import ``torchaudio`` at module level but only use it to read files,
    which repeval never asks them to do; torchaudio wheels on PyPI do not import beside the CPU
    torch. The placeholder is removed from ``sys.modules`` on exit, so no other code sees it;
    any use of it raises an ImportError naming the reason.
    """
    added: dict[str, types.ModuleType] = {}
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
            continue
        except Exception:
            pass
        stub = types.ModuleType(name)

        def _missing(attr: str, _name: str = name) -> Any:
            if attr.startswith("__"):  # introspection (``getattr(m, "__file__", None)``) must see a plain module
                raise AttributeError(attr)
            raise ImportError(f"'{_name}.{attr}' is unavailable: {_name} is not installed ({why})")

        stub.__getattr__ = _missing  # type: ignore[method-assign]
        sys.modules[name] = stub
        added[name] = stub
    try:
        yield
    finally:
        for name, stub in added.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def as_mono(audio: np.ndarray) -> np.ndarray:
    """Validate one waveform: 1-D, non-empty; returned as contiguous float32."""
    arr = np.asarray(audio, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"expected one mono waveform (1-D array), got shape {arr.shape}: downmix before embedding")
    if arr.size == 0:
        raise ValueError("cannot embed an empty waveform (0 samples): the decoder produced no audio")
    return np.ascontiguousarray(arr)


def pad_to(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Zero-pad at the end to at least ``n_samples``."""
    if len(audio) >= n_samples:
        return audio
    return np.pad(audio, (0, n_samples - len(audio)))


def frame_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start indices of windows over ``n_samples``.

    At least one; a tail of at least half a hop past the last full window gets its own (padded) window.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples and n_samples - (starts[-1] + window) >= hop // 2:
        starts.append(starts[-1] + hop)
    return starts


def cut_windows(audio: np.ndarray, window: int, hop: int) -> np.ndarray:
    """``(n_windows, window)`` zero-padded windows of ``audio``."""
    starts = frame_starts(len(audio), window, hop)
    audio = pad_to(audio, starts[-1] + window)
    idx = np.asarray(starts)[:, None] + np.arange(window)[None, :]
    return audio[idx]


#: whether a model built in this context may take a GPU its ``params.device: auto`` finds: ``False`` in a stream's
#: embedding actor or decode task that Ray granted no GPU (:func:`gpu_granted`), ``None`` (no say) elsewhere
_GPU_GRANTED: contextvars.ContextVar[bool | None] = contextvars.ContextVar("repeval_gpu_granted", default=None)


@contextlib.contextmanager
def gpu_granted(granted: bool | None) -> Iterator[None]:
    """Build models under ``granted``: ``False`` when this process was granted no GPU (a stream's actor under
    ``run.resources.use_gpu: never``), so that ``params.device: auto`` picks the CPU (:func:`pick_device`)."""
    token = _GPU_GRANTED.set(granted)
    try:
        yield
    finally:
        _GPU_GRANTED.reset(token)


def pick_device(requested: str | None, cuda_available: bool, granted: bool | None = None) -> str:
    """The device ``params.device`` = ``requested`` names; ``auto`` (or none): ``cuda`` when torch sees a GPU
    (``cuda_available``) and this process may take it, else ``cpu``. ``granted`` false (by default, as
    :func:`gpu_granted` set it): Ray granted the process no GPU — under ``run.resources.use_gpu: never`` Ray leaves
    ``CUDA_VISIBLE_DEVICES`` as it is, so torch on a GPU node sees every GPU, and the model took one that the run
    said not to use (and that another actor may hold)."""
    granted = _GPU_GRANTED.get() if granted is None else granted
    if requested in (None, "", "auto"):
        return "cuda" if cuda_available and granted is not False else "cpu"
    return str(requested)


def choose_device(requested: str | None) -> str:
    """``auto`` → ``cuda`` when a GPU is visible and may be used (:func:`pick_device`, :func:`gpu_granted`), else
    ``cpu``. A ``cuda`` device asked for (``params.device``) where torch cannot use one raises
    :class:`~repeval.models.base.ModelUnavailable` naming the fix — torch's own error ("Torch not compiled with CUDA
    enabled") killed the embedding actor, its traceback in the job's log."""
    import torch

    if requested in (None, "", "auto"):
        return pick_device(requested, torch.cuda.is_available())
    reason = device_unusable(requested)
    if reason:
        raise ModelUnavailable(reason)
    return str(requested)


def device_unusable(requested: Any) -> str | None:
    """Why the device a model's ``params.device`` names cannot be used in this process (``cuda`` where torch sees no
    GPU), naming the fix; None when it can, or when none is named (``auto``: the GPU when there is one)."""
    if not str(requested or "").startswith("cuda"):
        return None
    why = cuda_unusable()
    if why is None:
        return None
    return (
        f"params.device is {requested!r}, but {why} — set params.device: auto (the GPU where torch sees one, else "
        "the CPU), or install a CUDA build of torch on the nodes its actors run on"
    )


def cuda_unusable() -> str | None:
    """Why torch in this process cannot use a GPU (a CPU-only build; no CUDA device visible), or None when it can."""
    import torch

    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    return (
        f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device "
        f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})"
    )


def _rebuild(cls: type[EmbeddingModel], params: dict[str, Any]) -> EmbeddingModel:
    from repeval.models.param_kinds import as_built

    return cls(**as_built(cls, params))


class RebuildOnUnpickle:
    """Pickle as (class, constructor params) and reload weights on unpickle.

    Ray ships models by pickle; a TF session, an ONNX session or an essentia algorithm cannot be
    pickled, and shipping hundreds of MB of torch weights through the object store is wasteful
    when every worker can load them locally. Subclasses must keep every constructor argument
    in ``self.params``.
    """

    params: dict[str, Any]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), dict(self.params)))


class WindowedModel(RebuildOnUnpickle, EmbeddingModel):
    """A model that maps fixed-size windows of one clip to one vector each.

    Subclasses implement ``_windows(audio) -> (n, ...)`` (n >= 1; one whose frame geometry has an ``align`` also
    ``_windows_at(audio, offset)``: its windows from ``offset`` samples into ``audio``) and
    ``_forward(windows) -> (n, embedding_dim)``; ``embed_batch`` runs the windows of all clips
    of a batch together, ``max_batch_windows`` at a time. Window outputs must not depend on
    the other windows in a batch (true for inference-mode CNNs). No ``_forward`` call gets a window alone (a call
    that would is given a zero window too, its output dropped): torch's CPU convolutions round a batch of one
    differently (crepe-full 4.1e-6, crepe-tiny 1.5e-6, CLMR 1.3e-8 off) while batches of 2 to 32 give a window the
    same bits, so a window's frames would otherwise depend on which clips shared its model call — which differs
    between a run and its rerun or resume. Filling every call up to ``max_batch_windows`` instead cost 40 times the
    CPU time of CLMR (3 times crepe-full's) on one-second clips one at a time. A model whose outputs depend on a
    window's place in the call (onnxruntime's musicnn convolutions: by its index modulo 4) sets
    ``max_batch_windows = 1``, or :attr:`calls_per_clip` where one window a call is slower (TensorFlow's).
    """

    max_batch_windows: int = 64
    #: each clip's windows in calls of their own, ``max_batch_windows`` at a time from its first: a window's place in
    #: its call and the call's size then depend on its clip alone, not on the clips beside it (a clip of one window is
    #: a call of one, always) — for a model whose outputs depend on a window's place in the call and that runs one
    #: window a call slower
    calls_per_clip: bool = False

    def _windows(self, audio: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _windows_at(self, audio: np.ndarray, offset: int) -> np.ndarray:
        """The windows of ``audio`` from ``offset`` samples into it (the audio before: context they read)."""
        refuse_offsets(self, [offset])
        return self._windows(audio)

    def _forward(self, windows: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed(self, audio: np.ndarray) -> np.ndarray:
        return self.embed_batch([audio])[0]

    def embed_batch(
        self, audios: list[np.ndarray], offsets: PerClip = None, n_frames: PerClip = None
    ) -> list[np.ndarray]:
        """The windows of each clip (from its offset), all clips' through ``_forward`` together; a clip's
        ``n_frames`` (negative: all) — its frame geometry's :attr:`~repeval.models.base.FrameGeometry.stops` says
        the pipeline gives them — leaves its windows past the first ``n_frames`` out of the forward pass."""
        if not audios:
            return []
        at = [0] * len(audios) if offsets is None else [int(o) for o in offsets]
        wins = [
            self._windows_at(as_mono(a), o) if o else self._windows(as_mono(a)) for a, o in zip(audios, at, strict=True)
        ]
        if n_frames is not None:
            wins = [w if int(n) < 0 else w[: max(1, int(n))] for w, n in zip(wins, n_frames, strict=True)]
        step = max(1, int(self.max_batch_windows))
        if self.calls_per_clip:
            return [self._forward_all(w, step) for w in wins]
        counts = [len(w) for w in wins]
        stacked = np.concatenate(wins, axis=0)
        if step > 1 and len(stacked) % step == 1:  # no window alone in a call: see the class docstring
            stacked = np.concatenate([stacked, np.zeros((1, *stacked.shape[1:]), stacked.dtype)])
        out = self._forward_all(stacked, step)[: sum(counts)]
        return [np.ascontiguousarray(x) for x in np.split(out, np.cumsum(counts)[:-1])]

    def _forward_all(self, windows: np.ndarray, step: int) -> np.ndarray:
        """``(n, embedding_dim)``: ``_forward`` on ``windows``, ``step`` at a time."""
        outs = [
            np.asarray(self._forward(windows[i : i + step]), dtype=np.float32) for i in range(0, len(windows), step)
        ]
        return np.ascontiguousarray(np.concatenate(outs, axis=0).reshape(len(windows), -1))


def _not_saved_by_torch(path: Path) -> str | None:
    """Why the file at ``path`` is not one ``torch.save`` wrote (empty, cut short, another kind of file), without
    loading it; ``None``: it may be (a zip archive — torch's format since 1.6 — or a pickle, its format before)."""
    import zipfile

    size = path.stat().st_size
    if not size:
        return "it is empty"
    with path.open("rb") as fh:
        pickle = fh.read(1) == b"\x80"  # a pickle's protocol mark
    if pickle or zipfile.is_zipfile(path):
        return None
    return f"it is not a file torch.save wrote ({counted(size, 'byte')}): cut short or corrupted"


def load_state_dict(path: Path, fix: str) -> dict[str, Any]:
    """``torch.load(weights_only=True)``; a checkpoint that needs arbitrary unpickling is refused with the fix, a
    file that is no checkpoint (empty, cut short) saying to obtain it again."""
    import torch

    why = _not_saved_by_torch(path)
    if why is not None:  # torch would say to load it with weights_only=False, or nothing (an empty file)
        raise ValueError(f"cannot load {path}: {why} — obtain or convert the weights again")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError and friends
        raise ValueError(
            f"cannot load {path} with torch.load(weights_only=True): {exc}. Re-save only its tensors, "
            f"e.g. torch.save(torch.load(p, weights_only=False){fix}, 'weights.pt') in a trusted session"
        ) from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a state dict (name → tensor)")
    return obj


def load_converted(net: Any, path: Path, layout: str, device: Any) -> Any:
    """``net`` (a torch module) with the state dict at ``path`` — weights converted to repeval's ``layout``: each of
    its tensors and no other — on ``device``, in eval mode; a file of another layout is refused saying to convert it."""
    try:
        net.load_state_dict(load_state_dict(path, ""), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path} does not match repeval's {layout} layout ({exc}); convert the weights first") from exc
    return net.to(device).eval()


# ----------------------------------------------------------------------------- mel filters without librosa
_F_SP, _MIN_LOG_HZ, _LOGSTEP = 200.0 / 3, 1000.0, np.log(6.4) / 27.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale (linear below 1 kHz, logarithmic above), as ``librosa.hz_to_mel(htk=False)``."""
    f = np.asanyarray(f, dtype=np.float64)
    mels = f / _F_SP
    log = f >= _MIN_LOG_HZ
    return np.where(log, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asanyarray(m, dtype=np.float64)
    return np.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (m - _MIN_LOG_MEL)), _F_SP * m)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)`` (Slaney scale and area
    normalisation, float32; ``fmax`` defaults to Nyquist) in numpy, bit for bit: the same matrix without
    importing librosa, which loads ``scipy.signal`` and numba — ~1 CPU-s in every embedding actor that starts
    (in a TensorFlow actor, a fifth of its start before the first rows)."""
    fmax = float(sr) / 2 if fmax is None else float(fmax)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(float(fmin)), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    return weights
