"""The embedding-model contract and registry.

A model is a callable class: weights load once in ``__init__``; ``embed(audio)`` maps one mono
float32 waveform at ``sample_rate_hz`` to a ``(n_frames, embedding_dim)`` float32 array. The
pipeline aggregates frames (mean by default). ``embed_batch`` may be overridden for batched
inference; the default loops.

Families register with ``@register_model("name")``. A family may also claim ids by pattern
(``parse_id``), e.g. ``mert-v1-95m-4-5-6-7-8`` → family ``mert-v1-95m`` with ``layers=[4..8]``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeAlias

import numpy as np

from repeval.json_keys import sorted_json
from repeval.models.param_kinds import (
    annotated_kind_error,
    as_built,
    enum_annotated,
    enum_error,
    literal_annotated,
    literal_error,
)
from repeval.models.param_numbers import with_number_hint
from repeval.registry import ParamProblems, Registry, did_you_mean, unknown_name_message, unknown_param

#: one integer per clip of a batch (``embed_batch``'s ``offsets``, ``n_frames``), or ``None``
PerClip: TypeAlias = Sequence[int] | None


class ModelUnavailable(RuntimeError):
    """The model is known but cannot run here (missing extra or weights); the message names the fix."""


@dataclass(frozen=True)
class FrameGeometry:
    """Where a model's output frames lie in its input, in samples at its rate: frame ``k`` starts at ``k · hop`` and
    depends on the input in ``[k · hop − left, k · hop + right)`` only (outside the input: the model's own padding,
    at the track's ends only once the pipeline has added context), and an input of ``n`` samples yields
    :meth:`count` frames. The pipeline uses it to make the windows of a long track invisible
    (:class:`repeval.pipeline.stages.DecodeDeform`): window boundaries fall on multiples of ``hop``, each window
    reaches the model with :attr:`before` samples of the previous window and :attr:`after` of the next one (or, when
    its frames read less than a hop, without the :attr:`trim` samples at its end that none of them reads), and the
    frames computed on that context are dropped — so a track's frames are those the model gives on the whole track.
    """

    #: samples between consecutive frames
    hop: int
    #: samples before a frame's start that it depends on
    left: int
    #: samples from a frame's start that it depends on (less than ``hop``: a frame centred on a short excerpt, as
    #: CREPE's, and a window's last :attr:`trim` samples are read by no frame that starts in it)
    right: int
    #: the shortest input that yields one frame without padding: ``n`` samples yield
    #: ``(max(n, span) − span) // hop + 1`` frames
    span: int
    #: the finest grid, in samples, the model can start its frames on within its input (``embed_batch``'s
    #: ``offsets``); 0 (the default): ``hop`` — the model's frames start at its input's start
    align: int = 0
    #: a model that gives what is left past the last frame that fits its input a zero-padded frame of its own when it
    #: is at least ``tail`` samples long (CLMR, NeuralFP: half a hop); 0 (the default): it gives it none
    tail: int = 0
    #: whether the model's ``embed_batch`` honours ``n_frames`` — how many frames each clip needs from where its
    #: frames start — and computes no more: a window's frames past its end, centred on the next window's context
    #: (PESTO, CREPE below a 32-ms hop), are then not computed; False (the default): it computes all it can and the
    #: pipeline drops those
    stops: bool = False
    #: output rows each frame gives, one after the other (basic-pitch: a 2-s window's 142 posteriorgram frames); the
    #: pipeline's ``skip``, ``keep`` and ``n_frames`` count rows
    rows: int = 1
    #: a model that cuts a track's rows to ``floor(n · rows_per_sample)`` of a track of ``n`` samples (basic-pitch:
    #: 86 a second, though its windows give 86.13); 0 (the default): no cut
    rows_per_sample: float = 0.0

    def count(self, n_samples: int) -> int:
        """Frames the model gives on ``n_samples`` samples."""
        n = int(n_samples)
        frames = (max(n, self.span) - self.span) // self.hop + 1
        rest = n - (frames - 1) * self.hop - self.span
        return frames + int(self.tail > 0 and rest > 0 and rest >= self.tail)

    def count_rows(self, n_samples: int) -> int:
        """Rows the model gives on a track of ``n_samples`` samples: :attr:`rows` per frame, cut at
        :attr:`rows_per_sample`."""
        rows = self.count(n_samples) * self.rows
        if self.rows_per_sample > 0:
            rows = min(rows, int(np.floor(int(n_samples) * self.rows_per_sample)))
        return rows

    @property
    def offset(self) -> bool:
        """Whether the model starts its frames at an offset into its input (``align`` finer than ``hop``): a window
        then reaches it with :attr:`before` samples of context and its frames start at the window's start."""
        return 0 < self.align < self.hop

    @property
    def before(self) -> int:
        """Context a window needs from the previous one: ``left`` rounded up to whole ``align`` units — with
        :attr:`offset`, the model starts its frames there, at the window's start; otherwise ``align`` is ``hop``:
        the window's input starts on the track's frame grid and the frames computed on the context are dropped."""
        unit = self.align if self.offset else self.hop
        return -(-self.left // unit) * unit

    @property
    def after(self) -> int:
        """Context a window needs from the next one: what its last frame reads past the window's end."""
        return max(0, self.right - self.hop)

    @property
    def trim(self) -> int:
        """Samples at the end of a window (not a track's last) that no frame starting in it reads (``right`` below
        ``hop``): left out of the model's input, so it computes no frame past the window's end."""
        return max(0, self.hop - self.right)


class EmbeddingModel:
    """Base class of every embedding model."""

    #: registered family name
    name: ClassVar[str] = ""
    #: optional-dependency extra that provides it (``None`` for base install)
    extra: ClassVar[str | None] = None
    #: human description for ``repeval models``
    description: ClassVar[str] = ""
    #: which kind of worker it needs: ``default`` or an isolated process group (``tf``, ``essentia``)
    process_group: ClassVar[str] = "default"
    #: whether the model benefits from a GPU when present
    uses_gpu: ClassVar[bool] = False
    #: no weights, cheap to build, single-threaded: by default it runs inside the decode tasks instead of an
    #: actor pool (``run.resources.embed_in_decode``)
    light: ClassVar[bool] = False
    #: params that choose how, not what, it computes (a framework whose numbers agree to float32 rounding): left
    #: out of the partition fingerprint, so changing them neither refuses nor recomputes a store's partition
    fingerprint_exempt: ClassVar[tuple[str, ...]] = ()
    #: what the family computes for given params: raise it whenever a change makes the same params give other
    #: embeddings, so a store partition embedded before is refused rather than completed with rows that differ
    #: (a version other than "1" joins the partition's fingerprint; see repeval.pipeline.partitions)
    embedding_version: ClassVar[str] = "1"
    #: params that take one of a few values (hf encoders' ``frames``: ``window`` or ``native``): any other is refused
    #: when the configuration is checked (:func:`check_params`), naming them, rather than when the model is built in
    #: its actor; the constructor refuses it with the same words (:func:`refuse_choice`)
    param_choices: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: those of :attr:`param_choices` that take a list of one or more of their values (basic-pitch's ``outputs``)
    param_choice_lists: ClassVar[tuple[str, ...]] = ()
    #: whether a clip's frames from :meth:`embed_batch` are the same bits whichever clips share the call and wherever
    #: it sits in it (true of the default ``embed_batch``, which embeds each clip alone). A model whose own
    #: ``embed_batch`` pads clips to the longest, or runs them through a framework that rounds an input by the
    #: batch's size or its place in it (torch's and TensorFlow's CPU kernels do), sets it False: the pipeline then
    #: calls ``embed_batch`` with one clip at a time, so a rerun and a resumed run — whose calls hold other clips —
    #: store the bits of one uninterrupted run
    batch_invariant: ClassVar[bool] = True

    sample_rate_hz: int
    embedding_dim: int

    def __init__(self, **params: Any) -> None:
        self.params = params

    def embed(self, audio: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def embed_batch(
        self, audios: list[np.ndarray], offsets: PerClip = None, n_frames: PerClip = None
    ) -> list[np.ndarray]:
        """The frames of each clip. ``offsets`` (samples, multiples of its frame geometry's ``align``): where in
        each clip the model starts its frames — the audio before is context its first frames read; only a model
        whose :meth:`frame_geometry` has an :attr:`FrameGeometry.align` is given offsets. ``n_frames``: the frames each
        clip needs from there (negative: all) — a model whose frame geometry has :attr:`FrameGeometry.stops` computes
        no more (it is given them only then); any other may ignore them."""
        refuse_offsets(self, offsets)
        return [self.embed(a) for a in audios]

    @classmethod
    def variant(cls, params: dict[str, Any]) -> type[EmbeddingModel]:
        """The class that runs these params: this one, or a subclass when a param chooses the framework (and so
        the process group, extra and requirements: musicnn's ``backend``); a ``ValueError`` for a value it cannot
        run, raised when the configuration is checked."""
        return cls

    @classmethod
    def availability(cls, params: dict[str, Any]) -> str | None:
        """``None`` when runnable here, else the reason (naming the fix)."""
        return None

    @classmethod
    def declared_sizes(cls, params: dict[str, Any]) -> tuple[int | None, int | None]:
        """``(sample_rate_hz, embedding_dim)`` known without loading weights (``None`` where unknown)."""
        return None, None

    @classmethod
    def frame_geometry(cls, params: dict[str, Any]) -> FrameGeometry | None:
        """Where the frames lie (:class:`FrameGeometry`) for these params, known without loading weights; ``None``
        (the default) where it cannot be stated — a model that cuts its input into windows of its own, pads or
        trims it as a whole (a transformer encoder's fixed context), or whose frames depend on the whole input.
        Such a model gets each window of a long track alone, its frames near window edges computed on that
        window's audio only."""
        return None

    @classmethod
    def declared_hop_s(cls, params: dict[str, Any]) -> float | None:
        """Seconds between consecutive output frames over a long track, known without loading weights (a config
        file's read at most) — what ``repeval plan`` states a frame-level trial's memory per minute of audio from;
        ``None`` where unknown. By default: its frame geometry's — its rows cut to ``rows_per_sample``, else its hop
        over its rows per frame, at its declared rate — else its ``hop_s`` (the constructor's default under
        ``params``)."""
        rate, _ = cls.declared_sizes(params)
        geometry = cls.frame_geometry(params)
        if geometry is not None and rate:
            if geometry.rows_per_sample > 0:
                return 1 / (geometry.rows_per_sample * rate)
            return geometry.hop / geometry.rows / rate
        return positive_seconds(param_or_default(cls, params, "hop_s"))

    @classmethod
    def undeclared_frames(cls, params: dict[str, Any]) -> str:
        """Why :meth:`declared_hop_s` or :meth:`declared_sizes` says ``None`` for these params (what ``repeval plan``
        says in place of a frame memory), naming the fix where there is one."""
        return "the model declares no frame rate or dimension"

    @property
    def version(self) -> str:
        return self.embedding_version


def refuse_offsets(model: EmbeddingModel, offsets: Sequence[int] | None) -> None:
    """Raise unless ``offsets`` are all 0: ``model`` starts its frames at its input's start only."""
    if offsets is not None and any(offsets):
        raise ValueError(f"{model.name or type(model).__name__} cannot start its frames at an offset into its input")


@dataclass(frozen=True)
class ModelFamily:
    name: str
    cls: type[EmbeddingModel]
    #: maps a config id to params for this family, or None when the id is not this family's
    parse_id: Callable[[str], dict[str, Any] | None] | None = None
    default_params: dict[str, Any] = field(default_factory=dict)


MODELS: Registry[ModelFamily] = Registry("embedding model")


class NameTaken(ValueError):
    """A model registered under a name another class has (:func:`register_model`)."""

    def __init__(self, name: str, taken_by: str, given_by: str) -> None:
        self.model_name, self.taken_by, self.given_by = name, taken_by, given_by
        super().__init__(
            f"embedding model '{name}' is registered by {taken_by} already: register {given_by} under another name"
        )


def register_model(
    name: str,
    parse_id: Callable[[str], dict[str, Any] | None] | None = None,
    **default_params: Any,
) -> Callable[[type[EmbeddingModel]], type[EmbeddingModel]]:
    def deco(cls: type[EmbeddingModel]) -> type[EmbeddingModel]:
        if name in MODELS:
            taken = MODELS.get(name).cls
            if (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
                raise NameTaken(
                    name, f"{taken.__module__}.{taken.__qualname__}", f"{cls.__module__}.{cls.__qualname__}"
                )
            MODELS.remove(name)  # the same class again: its module imported anew
        cls.name = name
        MODELS.register(name)(ModelFamily(name, cls, parse_id, default_params))
        return cls

    return deco


def resolve_model(cfg: Any) -> tuple[ModelFamily, dict[str, Any]]:
    """Resolve an :class:`EmbeddingModelConfig` to its family and merged params. A name no family claims loads the
    installed plugins' models (the ``repeval.models`` entry points, :mod:`repeval.models.plugins`) and is looked up
    again."""
    found = _resolve(cfg)
    broken = ""  # an installed plugin that cannot be used: said beside the unknown name, not instead of it
    if found is None:
        from repeval.models.plugins import PluginError, load_entry_points

        try:
            if load_entry_points():
                found = _resolve(cfg)
        except PluginError as exc:  # the installed plugins that can be used are loaded all the same
            found = _resolve(cfg)
            broken = f" (an installed plugin, which may register it, cannot be used: {exc})"
    if found is None:
        raise ValueError(unknown_name_message("embedding model", cfg.type or cfg.id, set(MODELS.names())) + broken)
    return found


def _resolve(cfg: Any) -> tuple[ModelFamily, dict[str, Any]] | None:
    type_name = cfg.type or cfg.id
    if type_name in MODELS:
        fam = MODELS.get(type_name)
        return _variant(fam, {**fam.default_params, **cfg.params})
    for _, fam in MODELS.items():
        if fam.parse_id is not None:
            parsed = fam.parse_id(type_name)
            if parsed is not None:
                return _variant(fam, {**fam.default_params, **parsed, **cfg.params})
    return None


def _variant(fam: ModelFamily, params: dict[str, Any]) -> tuple[ModelFamily, dict[str, Any]]:
    """The family with the class that runs ``params`` (:meth:`EmbeddingModel.variant`)."""
    cls = fam.cls.variant(params)
    return (fam if cls is fam.cls else replace(fam, cls=cls)), params


#: parameters every model accepts: the analysis window the pipeline cuts audio into (``model_chunk_s``)
GENERIC_PARAMS = ("chunk_s",)


def model_parameters(cls: type[EmbeddingModel]) -> dict[str, inspect.Parameter]:
    """The named parameters of a model class' constructors (its own and its bases' up to :class:`EmbeddingModel`,
    which keeps whatever else is passed): what a configuration's ``params`` may set."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is EmbeddingModel or klass is object:
            break
        init = vars(klass).get("__init__")
        if init is None:
            continue
        for name, par in inspect.signature(init).parameters.items():
            if name != "self" and par.kind not in (par.VAR_KEYWORD, par.VAR_POSITIONAL):
                out.setdefault(name, par)
    return out


def param_or_default(cls: type[EmbeddingModel], params: dict[str, Any], name: str) -> Any:
    """``params[name]``, else the default of the constructor's parameter ``name`` (:func:`model_parameters`; ``None``
    without one) — what the model runs with, read without building it."""
    if name in params:
        return params[name]
    par = model_parameters(cls).get(name)
    return None if par is None or par.default is inspect.Parameter.empty else par.default


def positive_seconds(value: Any) -> float | None:
    """``value`` as a positive number of seconds, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


def choice_problem(cls: type[EmbeddingModel], key: str, value: Any) -> str | None:
    """Why ``value`` cannot stand for ``key``, one of :attr:`EmbeddingModel.param_choices` (None when it can)."""
    choices = cls.param_choices.get(key)
    if choices is None:
        return None
    said = [repr(c) for c in choices]
    among = said[0] if len(said) == 1 else f"{', '.join(said[:-1])} or {said[-1]}"
    if key in cls.param_choice_lists:
        if isinstance(value, list | tuple) and value and all(v in choices for v in value):
            return None
        bad = [v for v in value if v not in choices] if isinstance(value, list | tuple) else [value]
        if isinstance(value, str) and value in choices:
            hint = f" — write it as a list: [{value}]"
        else:
            hint = did_you_mean(bad[0], choices) if bad and isinstance(bad[0], str) else ""
        return f"expected a list of one or more of {among}, got {value!r}{hint}"
    if value in choices:
        return None
    hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    return f"expected {among}, got {value!r}{hint}"


def refuse_choice(model: EmbeddingModel, key: str, value: Any) -> None:
    """Raise a ``ValueError`` (``<name>: params.<key>: expected …``) unless ``value`` is one of ``key``'s
    :attr:`EmbeddingModel.param_choices`."""
    problem = choice_problem(type(model), key, value)
    if problem:
        raise ValueError(f"{model.name}: params.{key}: {problem}")


def _type_error(cls: type, key: str, value: Any, default: Any) -> str | None:
    """Why ``value`` cannot stand where the constructor's default is ``default`` (None when it can); a default of
    None (or none) says nothing of the kind: then its annotation does (``list[int] | int | None``)."""
    if default is None or default is inspect.Parameter.empty:  # (a param of a few values: its choices say it)
        return None if key in getattr(cls, "param_choices", {}) else annotated_kind_error(cls, key, value)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else f"expected an integer, got {value!r}"
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    if isinstance(default, str):
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    # a list's default says it is a list, not of what: its annotation does (``scales: list[float] = [1.0]``)
    return annotated_kind_error(cls, key, value) if isinstance(default, list | tuple) else None


def check_params(cfg: Any) -> None:
    """Raise :class:`~repeval.registry.ParamProblems` (a ``ValueError``) naming the fix for each parameter of a model
    configuration's ``params`` its family does not have (with the closest spelling) or given a value of the wrong kind
    (against the constructor's default) or a value other than its :attr:`~EmbeddingModel.param_choices`, all at once;
    with none, a light model (no weights) is also built and run on half a second of noise, so a value it cannot work
    with (``n_mfcc: -4``) fails here rather than on every track."""
    fam, params = resolve_model(cfg)
    known = model_parameters(fam.cls)
    name = cfg.type or cfg.id
    problems: list[tuple[str, str]] = []  # every parameter at fault, each at its own key
    for key, value in cfg.params.items():
        if key == "chunk_s":  # seconds; null or ≤ 0: the whole file (see model_chunk_s)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append((key, f"expected a number of seconds (null or 0: the whole file), got {value!r}"))
            continue
        if key in GENERIC_PARAMS:
            continue
        if key not in known:
            problems.append(unknown_param(name, key, [*sorted(known), *GENERIC_PARAMS]))
            continue
        default = known[key].default
        if value is None and default is None:  # null: the constructor's default (musicnn's layer, its checkpoint's)
            continue
        # a Literal or Enum annotation says the kind, not the default
        problem = literal_error(fam.cls, name, key, value) or enum_error(fam.cls, name, key, value)
        if problem is None and not literal_annotated(fam.cls, key) and not enum_annotated(fam.cls, key):
            problem = _type_error(fam.cls, key, value, default)
        problem = problem or choice_problem(fam.cls, key, value)
        if problem:
            problems.append((key, with_number_hint(problem, value)))
    if problems:
        raise ParamProblems(problems)
    if fam.cls.light:
        _try_light(fam.name, name, params, repr(cfg.params))


#: (family, params as JSON) → why the light model failed on noise, or None: each is tried once (a config may list one
#: model in many experiments)
_LIGHT_TRIED: dict[tuple[str, str], str | None] = {}


def _try_light(family: str, name: str, params: dict[str, Any], given: str) -> None:
    """Build a light model with ``params`` — as the run builds it: the keys of a value a parameter takes as YAML read
    them (``{0: 0.5}``, not ``{'0': 0.5}``) — and embed half a second of noise, once per family and params."""
    key = (family, sorted_json(params))
    if key not in _LIGHT_TRIED:
        if len(_LIGHT_TRIED) >= 64:
            _LIGHT_TRIED.clear()
        _LIGHT_TRIED[key] = _light_fault(MODELS.get(family).cls, params)
    fault = _LIGHT_TRIED[key]
    if fault is not None:
        raise ValueError(
            f"{name} with params {given} does not work on half a second of noise: {fault} — check its params"
        )


def _light_fault(cls: type[EmbeddingModel], params: dict[str, Any]) -> str | None:
    """Why a light model of ``cls`` with ``params`` fails on half a second of noise, or None."""
    try:
        model = cls(**as_built(cls, copy.deepcopy(params)))
        rate = int(model.sample_rate_hz)
        out = model.embed(np.random.default_rng(0).uniform(-0.5, 0.5, rate // 2).astype(np.float32))
        if out.ndim != 2 or out.shape[1] <= 0 or out.shape[1] != model.embedding_dim:
            return f"it returned an array of shape {out.shape} (embedding_dim {model.embedding_dim})"
    except Exception as exc:
        return str(exc)
    return None


def build_model(cfg: Any, where: str = "here") -> EmbeddingModel:
    """The model of ``cfg``; :class:`ModelUnavailable` ("embedding model '<id>' cannot run ``where``: <reason>")
    when it cannot run in this process."""
    fam, params = resolve_model(cfg)
    reason = unavailable_reason(fam.cls, params)
    if reason:
        raise ModelUnavailable(f"embedding model '{cfg.id}' cannot run {where}: {reason}")
    return fam.cls(**as_built(fam.cls, params))  # an Enum's name as its member


def unavailable_reason(cls: type[EmbeddingModel], params: dict[str, Any]) -> str | None:
    """Why a model of family ``cls`` with ``params`` cannot run in this process, naming the fix: its
    :meth:`~EmbeddingModel.availability` (an extra, weights), then the device its ``params.device`` names (``cuda``
    where torch sees no GPU: torch's own error killed the embedding actor); None when it can."""
    reason = cls.availability(params)
    if reason or "device" not in params:
        return reason
    from repeval.models._common import device_unusable

    return device_unusable(params["device"])
