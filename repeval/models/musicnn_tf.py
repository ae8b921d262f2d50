"""MusiCNN and VGG taggers from the ``musicnn`` 0.1.0 wheel (Pons & Serra 2019).

The wheel ships TF1 checkpoints of ``MSD_musicnn`` (the thesis' ``msd-musicnn``), ``MTT_musicnn``,
``MTT_vgg`` and ``MSD_vgg``. repeval builds the graph once per process (musicnn's own
``extractor()`` rebuilds it for every file: ≈1.5 s/clip instead of ≈0.08 s) and feeds it
patches of 187 frames (3 s) of a 96-band log-mel at 16 kHz (hop 256) every ``hop_s`` seconds, rounded down to whole
frames. The default, 3 s, gives 187 frames: musicnn's own non-overlapping patches. mir_ref ran Essentia's
``TensorflowPredictMusiCNN``, whose hop is 93 frames: ``hop_s: 1.5`` reproduces it (twice the patches and the cost;
on a 20-s recording its clip mean came within 0.3% of Essentia's on a graph frozen from this checkpoint, the 3-s
default within 6%). The last partial patch is dropped, as musicnn and Essentia drop it; clips shorter than one patch
are zero-padded to 3 s (musicnn's own ``batch_data`` raises an UnboundLocalError on them). Each patch yields one frame:

- musicnn models: ``dense`` (default, 200-d): the penultimate dense layer before its ReLU and batch normalisation,
  the node Essentia's musicnn graphs expose as embeddings (``model/dense/BiasAdd``) and the layer of the thesis'
  ``msd-musicnn`` (mir_ref ran Essentia's ``msd-musicnn-1.pb``, a conversion of this checkpoint);
  ``penultimate`` (200-d) is that layer after ReLU and batch normalisation, musicnn's ``extractor()`` feature of that
  name (its ``extractor()`` returns the first patch's values for every patch: a bug in musicnn 0.1.0, not here);
  ``mean_pool``/``max_pool`` (753-d mid-end poolings);
- vgg models: ``pool5`` flattened (256-d; vgg has no dense penultimate layer).

The log-mel is librosa's power mel as musicnn computes it, with two deliberate differences (:func:`logmel`):
``reflect`` centring (librosa's before 0.10, when musicnn was trained; ``pad_mode: constant`` gives today's), and
float32 arithmetic after the float16 rounding (musicnn's float16 arithmetic overflows on loud audio).
Embeddings version 2: before it the default layer was ``penultimate`` and patches started every 188 frames instead of
187 (``hop_s`` was rounded to the nearest frame).

**Backends.** ``backend: onnx`` (the default) runs the checkpoint's inference graph in onnxruntime, converted once
to ONNX by :mod:`repeval.models.musicnn_onnx` (a child process with TensorFlow; cached in
``$REPEVAL_MODELS_DIR/musicnn-onnx``, which ``scripts/setup.sh`` fills), in the default process group: the process
that embeds never imports TensorFlow. Its frames agree with TensorFlow's to float32 rounding (a real recording, every
layer, 30 patches of three recordings: at most 2.5e-6 of the layer's largest value, cosine ≥ 0.9999998 per patch).
A fresh process reaches its first batch of 8 patches in 1.1-1.2 CPU-s against TensorFlow's 5.0-5.1 (imports,
graph, restore, first batch; peak RSS 575 against 890-950 MiB) and runs a patch in 40-65 ms against 120-250 at one
thread, 8 patches a call (msd-vgg: 21-44 against 37-84 ms; session 44, a 2-core machine shared with other work); it
now runs one patch a call, as fast (:attr:`MusiCNN.max_batch_windows`). ``backend`` is not part of a store's
fingerprint (``fingerprint_exempt``): a partition embedded by either backend is complete for the other, and a
store embedded before the ONNX backend existed is neither refused nor recomputed.

``backend: tf`` runs the checkpoint in a TensorFlow session in the isolated process group ``tf``:
tensorflow 2.21 runs these tf.compat.v1 layers only with legacy Keras:
the worker must set ``TF_USE_LEGACY_KERAS=1`` before tensorflow is imported and disables eager
execution for the whole process, and essentia (bundling TF 2.5) must never share the process.
Install: ``pip install 'repeval[onnx]'`` (onnxruntime; converting needs ``repeval[tf,onnx]`` once) or, for ``tf``,
``pip install tensorflow==2.21.0 tf-keras==2.21.0``; then ``pip install --no-deps musicnn==0.1.0`` (its metadata
pins numpy<1.17).
CPU cost: musicnn ≈35×, vgg ≈10× log-mel statistics (benchmarks/bench_models.py, one run on a
shared 2-core machine).
"""

from __future__ import annotations

import copyreg
import functools
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from repeval.models._common import (
    PROCESS_GROUP_ENV,
    WindowedModel,
    extra_reason,
    mel_filterbank,
    missing_modules,
    model_threads,
    ort_session_options,
    pad_to,
)
from repeval.models.base import FrameGeometry, param_or_default, refuse_choice, register_model

log = logging.getLogger(__name__)

SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187  # librosa.time_to_frames(3 s) + 1, as musicnn computes it
PATCH_SAMPLES = (PATCH_FRAMES - 1) * HOP  # audio (with librosa centring) that yields >= 187 frames

_LAYERS = {
    "musicnn": {"dense": 200, "penultimate": 200, "mean_pool": 753, "max_pool": 753},
    "vgg": {"pool5": 256},
}


@functools.lru_cache(maxsize=1)
def _filters() -> tuple[np.ndarray, np.ndarray]:
    """librosa's mel filters (:func:`mel_filterbank`, bit for bit, without librosa's import) and a periodic Hann."""
    return mel_filterbank(SR, N_FFT, N_MELS), np.hanning(N_FFT + 1)[:-1].astype(np.float32)


def logmel(audio: np.ndarray, pad_mode: str = "reflect") -> np.ndarray:
    """musicnn's input, (frames, 96): librosa power mel (centred), float16-rounded, ``log10(10000·x + 1)``.

    ``reflect`` centring is librosa's at the time musicnn was trained (< 0.10); ``constant``
    matches today's librosa. musicnn's own ``batch_data`` multiplies in float16 and overflows to
    inf (then NaN) under numpy 2 for mel values above 6.55; here the float16 rounding is kept
    but the arithmetic is float32.
    """
    mel_fb, window = _filters()
    mode = pad_mode if len(audio) > N_FFT // 2 else "constant"
    padded = np.pad(audio, N_FFT // 2, mode=mode)  # type: ignore[call-overload]
    n = 1 + (len(padded) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(padded[idx] * window, axis=1)) ** 2
    mel = np.minimum(power.astype(np.float32) @ mel_fb.T, 65504.0).astype(np.float16)
    return np.log10(10000 * mel.astype(np.float32) + 1)


def _patch_hop(hop_s: float) -> int:
    """Spectral frames between patches: ``hop_s`` rounded down (3 s: 187 frames, musicnn's patch)."""
    return max(1, math.floor(hop_s * SR / HOP + 1e-9))


BACKENDS = ("onnx", "tf")


def _arch(checkpoint: str) -> str:
    return "vgg" if "vgg" in checkpoint else "musicnn"


class MusiCNN(WindowedModel):
    """One musicnn/vgg checkpoint from the wheel, run by onnxruntime (``backend: onnx``, the default) or
    TensorFlow (``backend: tf``: :meth:`variant` gives the class that runs in the ``tf`` process group); see the
    module docstring."""

    extra = "onnx"
    checkpoint: ClassVar[str] = "MSD_musicnn"
    #: the backends' frames agree to float32 rounding: a partition embedded by one is complete for the other
    fingerprint_exempt: ClassVar[tuple[str, ...]] = ("backend",)
    #: patches per onnxruntime run: one. onnxruntime's musicnn convolutions round a patch differently by its index in
    #: the run modulo 4 (up to 1.9e-6 in an embedding), so a clip's embedding depended on which clips shared its run
    #: and a resumed run stored other bits than an uninterrupted one; one patch a run costs nothing on one CPU
    #: thread (msd-musicnn 35.0 against 35.5 ms per patch at 8, msd-vgg 17.7 against 18.4) and each run's
    #: activations are ~25 MiB per patch (the TF backend: ``_TFMusiCNN``)
    max_batch_windows = 1
    embedding_version = "2"
    requires: ClassVar[tuple[str, ...]] = ("onnxruntime", "musicnn")
    #: what converting the checkpoint to ONNX needs (once per checkpoint and layer; cached)
    converter_requires: ClassVar[tuple[str, ...]] = ("tensorflow", "tf_keras", "onnx")
    #: ``layer`` follows the checkpoint's architecture: each subclass gets its own (:meth:`__init_subclass__`)
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {"layer": tuple(_LAYERS["musicnn"]), "backend": BACKENDS}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``param_choices``: its bases' and its own, ``layer`` those of its checkpoint's architecture (unless it
        names its own)."""
        super().__init_subclass__(**kwargs)
        inherited = {
            k: v for klass in reversed(cls.__mro__[1:]) for k, v in vars(klass).get("param_choices", {}).items()
        }
        own = vars(cls).get("param_choices", {})
        cls.param_choices = {**inherited, "layer": tuple(_LAYERS[_arch(cls.checkpoint)]), "backend": BACKENDS, **own}

    def __init__(
        self,
        layer: str | None = None,
        hop_s: float = 3.0,
        pad_mode: str = "reflect",
        backend: str = "onnx",
        **params: Any,
    ) -> None:
        layer = layer or _default_layer(self.checkpoint)
        refuse_choice(self, "layer", layer)
        refuse_choice(self, "backend", backend)
        super().__init__(layer=layer, hop_s=hop_s, pad_mode=pad_mode, backend=backend, **params)
        self.layer = layer
        self.pad_mode = pad_mode
        self.sample_rate_hz = SR
        self.embedding_dim = _LAYERS[_arch(self.checkpoint)][layer]
        self.hop_frames = _patch_hop(hop_s)
        self._build()

    @classmethod
    def variant(cls, params: dict[str, Any]) -> type[MusiCNN]:
        """This class (a subclass or plugin keeps itself and its defaults), or its TensorFlow variant for
        ``backend: tf``; a backend of neither is refused by the configuration check at its key (``param_choices``)."""
        onnx = vars(cls).get("_onnx_class", cls)
        return _tf_variant(onnx) if param_or_default(onnx, params, "backend") == "tf" else onnx

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        reason = extra_reason(str(cls.extra), cls.requires, "(then `pip install --no-deps musicnn==0.1.0`)")
        if reason or cls.process_group == "tf":
            return reason
        from repeval.models.musicnn_onnx import cache_path

        missing = missing_modules(*cls.converter_requires)
        if missing and not cache_path(cls.checkpoint, params.get("layer") or _default_layer(cls.checkpoint)).is_file():
            return (
                f"the ONNX model of musicnn's {cls.checkpoint} is not converted yet and converting it needs "
                f"{', '.join(missing)}: pip install 'repeval[tf,onnx]' (then `python -m repeval.models.musicnn_onnx "
                "--all`), or set params.backend: tf"
            )
        return None

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        return SR, _LAYERS[_arch(cls.checkpoint)].get(params.get("layer") or _default_layer(cls.checkpoint))

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry:
        """Patch ``k`` is 187 centred spectral frames from frame ``k · hop_frames``: the samples from half an FFT
        before ``k · hop_frames · 256`` over 187 hops; the last one ends on a frame centred within the input (its
        end reflected), and a clip shorter than a patch is zero-padded to one. Patches may start on any spectral
        frame (``align``: 256 samples), so a window's context before is one hop of 256 samples, not a patch."""
        hop = _patch_hop(float(param_or_default(cls, params, "hop_s"))) * HOP
        return FrameGeometry(hop=hop, left=N_FFT // 2, right=PATCH_FRAMES * HOP, span=PATCH_SAMPLES, align=HOP)

    def _build(self) -> None:
        """onnxruntime on the ONNX conversion of the checkpoint (:mod:`repeval.models.musicnn_onnx`)."""
        import onnxruntime as ort

        from repeval.models.musicnn_onnx import onnx_model

        opts = ort_session_options()
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL

        def session(path: Path) -> Any:
            return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

        self._session = onnx_model(self.checkpoint, self.layer, session)
        log.debug("loaded %s as ONNX (%s layer)", self.checkpoint, self.layer)

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        out = self._session.run(None, {"x": windows.astype(np.float32)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(windows), -1)

    def _windows(self, audio: np.ndarray) -> np.ndarray:
        return self._windows_at(audio, 0)

    def _windows_at(self, audio: np.ndarray, offset: int) -> np.ndarray:
        """Patches from spectral frame ``offset // 256`` (``offset``: whole hops of 256 samples, the frame
        geometry's ``align``), the frame centred ``offset`` samples into ``audio``; at least one."""
        if offset % HOP:
            raise ValueError(f"{self.name}: offset {offset} is not a multiple of the spectral hop ({HOP} samples)")
        spec = logmel(pad_to(audio, PATCH_SAMPLES + offset), self.pad_mode)
        starts = range(offset // HOP, spec.shape[0] - PATCH_FRAMES + 1, self.hop_frames)
        return np.stack([spec[s : s + PATCH_FRAMES] for s in starts])


@register_model("msd-musicnn")
class MSDMusiCNN(MusiCNN):
    description = "MusiCNN trained on MSD tags (musicnn wheel), 200-d dense layer (mir_ref's) per 3 s patch"
    checkpoint = "MSD_musicnn"


@register_model("mtt-musicnn")
class MTTMusiCNN(MusiCNN):
    description = "MusiCNN trained on MagnaTagATune (musicnn wheel), 200-d dense layer per 3 s patch"
    checkpoint = "MTT_musicnn"


@register_model("msd-vgg")
class MSDVGG(MusiCNN):
    description = "VGG-like tagger trained on MSD (musicnn wheel), flattened pool5 (256-d) per 3 s patch"
    checkpoint = "MSD_vgg"


@register_model("mtt-vgg")
class MTTVGG(MusiCNN):
    description = "VGG-like tagger trained on MagnaTagATune (musicnn wheel), flattened pool5 (256-d) per 3 s patch"
    checkpoint = "MTT_vgg"


class _TFMusiCNN(MusiCNN):
    """``backend: tf``: the checkpoint's TF1 graph in a TensorFlow session, in the ``tf`` process group."""

    extra = "tf"
    process_group = "tf"
    #: patches per session run: 8, 16 and 32 give bit-identical embeddings at the same speed on one CPU thread,
    #: but each run's activations are ~25 MiB per patch, all touched (page-faulted) in a process' first call and
    #: kept: at 32 a MusiCNN process peaked at 1.5-1.8 GiB against 1.06 GiB at 8 (docs/benchmarks.md, session 27)
    max_batch_windows = 8
    #: TensorFlow's musicnn rounds a patch by its place in the run (up to 9.1e-6 by its index modulo 8; vgg only a
    #: patch alone), so a clip's patches run apart from other clips' (a rerun or resumed run, whose runs hold other
    #: clips, stored other bits): one patch a run would cost 52 against 41 ms a patch at 8 on one thread
    calls_per_clip = True
    requires: ClassVar[tuple[str, ...]] = ("tensorflow", "tf_keras", "musicnn")

    def _build(self) -> None:
        threads = model_threads()  # the pipeline's cap (TF's default: a pool as large as the machine)
        if "tensorflow" not in sys.modules:
            for key, value in PROCESS_GROUP_ENV["tf"].items():
                os.environ.setdefault(key, value)
            if threads:  # what caps TensorFlow 2.21's pools: the session's ConfigProto alone left it two busy
                for key in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):  # threads on two cores
                    os.environ.setdefault(key, str(threads))
        elif os.environ.get("TF_USE_LEGACY_KERAS") != "1":
            raise RuntimeError(
                f"{self.name} needs TF_USE_LEGACY_KERAS=1 set before tensorflow is imported: run it in the "
                "'tf' process group (the pipeline does), or export TF_USE_LEGACY_KERAS=1"
            )
        import tensorflow as tf
        from musicnn import configuration, models

        tf.compat.v1.disable_eager_execution()  # TF1 Saver restore; this process is tf-only by design
        labels = configuration.MTT_LABELS if self.checkpoint.startswith("MTT") else configuration.MSD_LABELS
        graph = tf.Graph()
        with graph.as_default():
            self._x = tf.compat.v1.placeholder(tf.float32, [None, PATCH_FRAMES, N_MELS])
            # inference only: a Python False, so the layers build their inference ops alone (a training placeholder,
            # even one defaulting to False, made each batch normalisation and dropout a tf.cond of both branches:
            # 992 ops instead of 732 and twice the build, ~0.45 CPU-s of every actor's start; the same frames)
            outs = models.define_model(self._x, False, self.checkpoint, len(labels))
            if "vgg" in self.checkpoint:
                self._y = tf.compat.v1.layers.flatten(outs[-1])
            elif self.layer == "dense":  # the penultimate layer's pre-activation (Essentia's model/dense/BiasAdd)
                self._y = graph.get_tensor_by_name("dense/BiasAdd:0")
            else:
                names = ["timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate"]
                self._y = dict(zip(names, outs[1:], strict=True))[self.layer]
            saver = tf.compat.v1.train.Saver()
        config = (
            tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
            if threads
            else None
        )
        self._sess = tf.compat.v1.Session(graph=graph, config=config)
        import musicnn

        saver.restore(self._sess, os.path.join(os.path.dirname(musicnn.__file__), self.checkpoint) + os.sep)
        log.debug("built %s graph (%s layer)", self.checkpoint, self.layer)

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        out = self._sess.run(self._y, feed_dict={self._x: windows.astype(np.float32)})
        return np.asarray(out, dtype=np.float32).reshape(len(windows), -1)


def _default_layer(checkpoint: str) -> str:
    return "pool5" if "vgg" in checkpoint else "dense"


class _TFVariant(type):
    """The type of :func:`_tf_variant`'s classes: one pickles as that call on its ONNX class (:func:`_made_again`,
    registered with :mod:`copyreg`), which any process finds by name — a plugin's module defines it — where the
    variant's own name is found only in a process that has made it."""


#: beside a plugin class' own metaclass (``abc.ABCMeta`` of an ``abc.ABC`` mixin), a type of both: its variants' type
_VARIANT_TYPES: dict[type, type] = {type: _TFVariant}


def _variant_type(cls: type) -> type:
    """The type of ``cls``' TensorFlow variant: :class:`_TFVariant`, with ``cls``' metaclass when it has one of its
    own (a class's type must derive from each of its bases' types), registered with :mod:`copyreg` as it is."""
    meta = type(cls)
    made = meta if issubclass(meta, _TFVariant) else _VARIANT_TYPES.get(meta)
    if made is None:
        made = _VARIANT_TYPES[meta] = type(f"_TFVariant_{meta.__name__}", (_TFVariant, meta), {})
        copyreg.pickle(made, _made_again)
    return made


def _tf_variant(cls: type[MusiCNN]) -> type[MusiCNN]:
    """``cls`` on TensorFlow: ``_TF_<name>`` in this module (of a class from another module, its module and name
    spelt out: :func:`_variant_name`), made once per class; it and its models pickle by ``cls``'s name
    (:class:`_TFVariant`) — to a Ray actor too."""
    name = _variant_name(cls)
    variant: Any = globals().get(name)
    if variant is None or vars(variant)["_onnx_class"] is not cls:  # new, or its class' module imported again
        namespace = {"__module__": __name__, "__qualname__": name, "__doc__": cls.__doc__, "_onnx_class": cls}
        variant = _variant_type(cls)(name, (_TFMusiCNN, cls), namespace)
        globals()[name] = variant  # found by name where it was made: what pickles it by reference, not by value
    return variant


def _variant_name(cls: type[MusiCNN]) -> str:
    """``_TF_<name>`` of a class of this module, else ``_TF_`` and ``module:qualname`` escaped to an identifier
    (``_`` as ``_u``, ``.`` as ``_d``, ``:`` as ``_c``)."""
    if cls.__module__ == __name__:
        return f"_TF_{cls.__qualname__}"
    said = f"{cls.__module__}:{cls.__qualname__}"
    return "_TF_" + said.replace("_", "_u").replace(".", "_d").replace(":", "_c")


def _made_again(variant: _TFVariant) -> str | tuple[Any, tuple[type[MusiCNN]]]:
    """How ``variant`` pickles (:mod:`copyreg`): :func:`_tf_variant` of its ONNX class; a class of its type that
    :func:`_tf_variant` did not make (a plugin's subclass of a variant: the type is inherited) by its name."""
    onnx = vars(variant).get("_onnx_class")
    return variant.__qualname__ if onnx is None else (_tf_variant, (onnx,))


copyreg.pickle(_TFVariant, _made_again)
_TF_MSDMusiCNN, _TF_MTTMusiCNN, _TF_MSDVGG, _TF_MTTVGG = map(_tf_variant, (MSDMusiCNN, MTTMusiCNN, MSDVGG, MTTVGG))
