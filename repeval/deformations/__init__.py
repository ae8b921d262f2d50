"""Deformation scenarios built from audiomentations waveform transforms.

A scenario is an ordered list of ``{type, params}`` steps (the thesis syntax). Every
audiomentations waveform transform is allowed except ``Lambda`` (an arbitrary callable cannot
come from a config file). Sampling is seeded from (run seed, track id, scenario id) so reruns
are bit-identical on CPU, and the sampled parameters are returned for storage.

Each transform either acts window by window (:data:`WINDOWED`: the pipeline streams a long track through it in the
model's windows) or on the track as a whole (:data:`TRACK_LEVEL`, with the reason: a scenario holding one is applied
to the whole decoded track, up to :data:`WHOLE_TRACK_MAX_S` seconds by default — see
:class:`repeval.pipeline.stages.DecodeDeform`).
"""

from __future__ import annotations

import functools
import inspect
import random
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from repeval.deformations.files import check_paths, with_stand_ins
from repeval.json_keys import json_text
from repeval.registry import ParamProblems, unknown_name_message, unknown_param

#: the scenario id of the undeformed audio (every run embeds and tests it)
CLEAN = "clean"

#: transforms that cannot be described by plain config values
FORBIDDEN = {"Lambda"}

#: the most seconds of a track a scenario with a track-level step deforms at once (``run.deform_whole_track_max_s``)
WHOLE_TRACK_MAX_S = 1200.0

#: transforms that give the same result applied window by window as applied to the whole track (up to a few
#: milliseconds at each window's edges): point-wise (Gain, Clip, BitCrush, PolarityInversion), time-invariant
#: filters whose state lasts milliseconds (the Butterworth, shelf, peaking and parametric-EQ filters,
#: AirAbsorption's STFT mask), a resampling trip (Resample, Aliasing), an MP3 round trip that keeps the input's
#: timing (see :func:`acts_on_whole_track`), and noise of a fixed amplitude (AddGaussianNoise). Their scenarios are
#: streamed: a long track is decoded and deformed one window at a time. Every other transform is track-level.
WINDOWED = frozenset(
    {
        "AddGaussianNoise",
        "AirAbsorption",
        "Aliasing",
        "BandPassFilter",
        "BandStopFilter",
        "BitCrush",
        "Clip",
        "Gain",
        "HighPassFilter",
        "HighShelfFilter",
        "LowPassFilter",
        "LowShelfFilter",
        "Mp3Compression",
        "PeakingFilter",
        "PolarityInversion",
        "Resample",
        "SevenBandParametricEQ",
    }
)

#: why each other transform of audiomentations 0.43 acts on the whole track: applied window by window (parameters
#: sampled on the first window, then frozen) it would be another deformation. A transform in neither table (one a
#: later audiomentations adds) is track-level too: the safe side.
TRACK_LEVEL = {
    "AddBackgroundNoise": "noise excerpt drawn for the signal's duration (per window the same excerpt repeats), "
    "level from the signal's RMS",
    "AddColorNoise": "noise level from the signal's RMS (the SNR)",
    "AddGaussianSNR": "noise level from the signal's RMS (the SNR)",
    "AddShortNoises": "sounds placed at times over the signal's duration",
    "AdjustDuration": "sets the signal's length",
    "ApplyImpulseResponse": "reverb tails cross window edges; output scaled to the signal's peak",
    "ClippingDistortion": "clipping thresholds are percentiles of the signal",
    "GainTransition": "a fade placed at a time in the signal",
    "Limiter": "threshold relative to the signal's peak; envelope and look-ahead delay run across the signal",
    "LoudnessNormalization": "the signal's integrated loudness",
    "Normalize": "the signal's peak",
    "Padding": "pads a fraction of the signal's length at its start or end",
    "PitchShift": "phase vocoder / stretcher state and timing run across the signal",
    "RepeatPart": "repeats a part at a position in the signal",
    "Reverse": "reverses the signal",
    "RoomSimulator": "reverb tails cross window edges",
    "Shift": "shifts (rolls) the signal by a fraction of its length or a time",
    "TanhDistortion": "drive from a percentile of the signal, output matched to the signal's RMS",
    "TimeMask": "silences a part placed in the signal",
    "TimeStretch": "stretches the signal (then cuts or pads it to its length)",
    "Trim": "cuts the signal's leading and trailing silence",
}

#: parameter names of older audiomentations releases (the thesis' Appendix A uses them)
PARAM_ALIASES = {
    "min_snr_in_db": "min_snr_db",
    "max_snr_in_db": "max_snr_db",
    "min_gain_in_db": "min_gain_db",
    "max_gain_in_db": "max_gain_db",
    "min_SNR": "min_snr_db",
    "max_SNR": "max_snr_db",
}


def normalise_params(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        key = PARAM_ALIASES.get(k, k)
        if key in out:
            raise ValueError(f"parameter '{k}' given twice (as '{k}' and '{key}')")
        out[key] = v
    return out


@functools.cache
def waveform_transforms() -> dict[str, type]:
    import audiomentations
    from audiomentations.core.transforms_interface import BaseWaveformTransform

    out = {}
    for name in dir(audiomentations):
        obj = getattr(audiomentations, name)
        if isinstance(obj, type) and issubclass(obj, BaseWaveformTransform) and name not in FORBIDDEN:
            out[name] = obj
    return out


def _defaults(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    # audiomentations' default mp3 backend (fast-mp3-augment) is an optional package: use
    # lameenc unless the user chose a backend
    if cls.__name__ == "Mp3Compression" and "backend" not in params:
        import importlib.util

        if importlib.util.find_spec("fast_mp3_augment") is None:
            return {"preserve_delay": True, **params, "backend": "lameenc"}
    return params


def build_transform(type_: str, params: dict[str, Any], files: bool = True) -> Any:
    """The transform ``type_(**params)``, every parameter at fault said at its key; not ``files``: the files it reads
    are not checked (:func:`~repeval.deformations.files.check_paths`) and a stand-in recording is read instead."""
    transforms = waveform_transforms()
    if type_ in FORBIDDEN:
        raise ValueError(
            f"{type_} cannot be a deformation step: the function it calls cannot be written in a configuration file "
            "— every other audiomentations waveform transform can (a transform of your own belongs in "
            "audiomentations, CONTRIBUTING.md)"
        )
    if type_ not in transforms:
        raise ValueError(unknown_name_message("deformation", type_, set(transforms)))
    cls = transforms[type_]
    params = normalise_params(params)
    sig = inspect.signature(cls)
    accepts_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    valid = list(sig.parameters)
    problems: list[tuple[str, str]] = []  # every parameter at fault, each at its own key
    for key in params:
        if key not in valid and not accepts_kwargs:
            problems.append(unknown_param(type_, key, valid))
    problems += _number_problems(type_, sig, params) + _missing_problems(type_, sig, params)
    if problems:
        raise ParamProblems(problems)
    check_paths(type_, params, REQUIRED_PARAMS, exist=files)
    try:
        return cls(**_defaults(cls, params if files else with_stand_ins(params)))
    except Exception as exc:  # audiomentations raises AssertionError/ValueError/TypeError
        if problems := _check_problems(type_, sig, params, exc):
            raise ParamProblems(problems) from None
        raise ValueError(f"{type_}({json_text(params)}): {_reason(exc)}") from None


def _number_problems(type_: str, sig: inspect.Signature, params: dict[str, Any]) -> list[tuple[str, str]]:
    """A parameter whose default is a number must not be text (``min_snr_db: "10"`` or ``10dB`` in YAML):
    audiomentations compares it with numbers, and Python's ``'>' not supported between instances of 'str' and
    'int'`` named neither the parameter nor the fix. One ``(key, message)`` per such parameter."""
    out = []
    for key, value in params.items():
        if key not in sig.parameters or not isinstance(value, str):
            continue
        default = sig.parameters[key].default
        if isinstance(default, int | float) and not isinstance(default, bool):
            out.append(
                (
                    key,
                    f"{type_}.{key} is the text {value!r}, not a number — write numbers without quotes or units "
                    f"(e.g. {key}: {default!r}, its default)",
                )
            )
    return out


#: what a transform's parameter without a default is, and how to give it (``AdjustDuration``: one of two lengths)
REQUIRED_PARAMS = {
    "sounds_path": "the sounds to mix in: a folder of audio files, one file or a list of them (e.g. sounds_path: "
    "data/noise/)",
    "ir_path": "the impulse responses to convolve with (room or device recordings): a folder of audio files, one file "
    "or a list of them (e.g. ir_path: data/irs/)",
}


def _missing_problems(type_: str, sig: inspect.Signature, params: dict[str, Any]) -> list[tuple[str, str]]:
    """A parameter the transform cannot do without, not given: audiomentations' own error was Python's ``__init__()
    missing 1 required positional argument`` or, for ``AdjustDuration``'s length, a bare assert. One ``(key,
    message)`` per missing parameter, saying what it is and how to write it."""
    out = []
    for key, par in sig.parameters.items():
        if par.default is par.empty and par.kind in (par.POSITIONAL_OR_KEYWORD, par.KEYWORD_ONLY) and key not in params:
            what = REQUIRED_PARAMS.get(key, "a value it has no default for")
            out.append((key, f"{type_} needs {key}: {what}"))
    if type_ == "AdjustDuration" and params.get("duration_seconds") is None and params.get("duration_samples") is None:
        out.append(
            (
                "duration_seconds",
                "AdjustDuration needs the length to set: duration_seconds (e.g. duration_seconds: 10.0) or "
                "duration_samples",
            )
        )
    return out


def _reason(exc: BaseException) -> str:
    """An exception's message, or — for audiomentations' bare ``assert``s — the check that failed."""
    if str(exc):
        return str(exc)
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    line = frames[-1].line if frames else None
    if line:
        where = frames[-1]
        return f"its check `{line.removeprefix('assert ')}` failed ({Path(where.filename).name}:{where.lineno})"
    return type(exc).__name__


def _check_problems(
    type_: str, sig: inspect.Signature, params: dict[str, Any], exc: BaseException
) -> list[tuple[str, str]]:
    """A bare ``assert`` of audiomentations that failed on parameters the configuration gives (``assert 0 <= p <=
    1``), said at the first one's key with its value, the check and the fix — not the check's source line
    (``transforms_interface.py:41``); ``[]`` for any other failure."""
    import re
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    line = (frames[-1].line or "") if frames and isinstance(exc, AssertionError) and not str(exc) else ""
    check = line.removeprefix("assert ").replace("self.", "").strip()
    names = [n for n in dict.fromkeys(re.findall(r"[A-Za-z_]\w*", check)) if n in params] if line else []
    if not names:
        return []
    key = names[0]
    given = " and ".join(f"{n} {params[n]!r}" for n in names[1:])
    default = sig.parameters[key].default if key in sig.parameters else inspect.Parameter.empty
    example = (
        f" (e.g. {key}: {default!r}, its default)" if len(names) == 1 and default is not inspect.Parameter.empty else ""
    )
    fix = f"give {key} a value that passes it{example}" if len(names) == 1 else "change them so they pass it"
    return [(key, f"{type_}.{key} is {params[key]!r}{', ' + given if given else ''}: it must pass `{check}` — {fix}")]


#: a transform's attributes that are frequencies in Hz: each must stay below the Nyquist frequency of the rate the
#: audio is deformed at (above it a filter does nothing, cuts everything, or diverges into NaN)
FREQUENCY_ATTRIBUTES = ("max_cutoff_freq", "max_center_freq")  # the minima are at most these


#: what a scenario's steps are tried on while the configuration is validated: half a second of noise
PROBE_SAMPLE_RATE_HZ = 44_100


def validate_step(
    type_: str, params: dict[str, Any], sample_rate_hz: int = PROBE_SAMPLE_RATE_HZ, files: bool = True
) -> None:
    """Build the transform and apply it once (with ``p = 1``) to half a second of noise at ``sample_rate_hz``:
    parameters that audiomentations only checks when it runs (a resampling rate of 0, …) fail here, while the
    configuration is validated, instead of turning every deformed track into an error record. Run again at each
    model's rate when the run is planned (:func:`validate_steps_at`): a filter frequency at or above that rate's
    Nyquist frequency, or a step that makes NaN there, fails too. Not ``files`` (``repeval validate
    --skip-data-check``): the files it reads (``sounds_path``, ``ir_path``) need not be on this machine
    (:func:`build_transform`)."""
    transform = build_transform(type_, params, files)
    where = f"{type_}({json_text(params)})"  # (a date key, or keys of several kinds in a value: data, as YAML read it)
    nyquist = sample_rate_hz / 2
    for attr in FREQUENCY_ATTRIBUTES:
        value = getattr(transform, attr, None)
        if isinstance(value, int | float) and value >= nyquist:
            raise ValueError(
                f"{where}: {attr} is {value:g} Hz, at or above the Nyquist frequency ({nyquist:g} Hz) of audio at "
                f"{sample_rate_hz} Hz — the filter would not do what it says: keep it below {nyquist:g} Hz"
                + ("" if attr in params else " (the default: set it)")
            )
    if getattr(transform, "p", None) is not None:
        transform.p = 1.0
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, sample_rate_hz // 2).astype(np.float32)
    try:
        with _seeded(0):
            out = transform(samples=audio, sample_rate=sample_rate_hz)
    except Exception as exc:
        raise ValueError(f"{where} fails on half a second of noise at {sample_rate_hz} Hz: {_reason(exc)}") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{where} makes non-finite samples (NaN/inf) of half a second of noise at {sample_rate_hz} Hz")


def validate_steps_at(scenario_id: str, steps: list[tuple[str, dict[str, Any]]], sample_rate_hz: int) -> None:
    """:func:`validate_step` for each step of a scenario at the rate its audio is deformed at (a model's rate,
    known when the run is planned), the error naming the scenario."""
    for i, (type_, params) in enumerate(steps):
        try:
            validate_step(type_, params, sample_rate_hz)
        except ValueError as exc:
            raise ValueError(f"deformation scenario {scenario_id!r}, step {i + 1}: {exc}") from None


def acts_on_whole_track(type_: str, params: dict[str, Any]) -> bool:
    """Whether a step acts on the track as a whole (:data:`TRACK_LEVEL`), so that a scenario holding it is applied
    to the whole decoded track instead of window by window. ``Mp3Compression`` with ``preserve_delay`` or the
    ``lameenc`` backend (used when ``fast-mp3-augment`` is not installed) keeps the encoder's delay: window by
    window, every window would start later and grow longer."""
    if type_ not in WINDOWED:
        return True
    if type_ == "Mp3Compression":
        cls = waveform_transforms()[type_]
        params = _defaults(cls, normalise_params(params))
        return params.get("backend") == "lameenc" or bool(params.get("preserve_delay"))
    return False


def track_level_steps(steps: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The types of a scenario's steps that act on the whole track (:func:`acts_on_whole_track`), in order."""
    return [t for t, p in steps if acts_on_whole_track(t, p)]


def scenario_steps(cfg: Any) -> list[tuple[str, dict[str, Any]]]:
    """A configured scenario's steps as ``(type, params)`` pairs."""
    return [(s.type, dict(s.params)) for s in cfg.steps]


def scenario_seed(run_seed: int, track_id: str, scenario_id: str) -> int:
    from repeval.datasets.splits import hash_str

    return hash_str(f"{run_seed}\0{track_id}\0{scenario_id}") % (2**32)


@contextmanager
def _seeded(seed: int):
    """audiomentations samples from the global ``random`` and ``numpy.random`` states: seed both for one
    application and restore them afterwards (and pyroomacoustics' generator, when RoomSimulator loaded it)."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    room = sys.modules.get("pyroomacoustics.random")
    if room is not None:  # RoomSimulator's ray tracer draws from pyroomacoustics' own numpy and C++ generators
        room.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class Scenario:
    """A built scenario: call it on mono float32 audio to get (deformed audio, sampled params)."""

    def __init__(self, scenario_id: str, steps: list[tuple[str, dict[str, Any]]]) -> None:
        self.scenario_id = scenario_id
        self.steps = steps
        self.transforms = [build_transform(t, p) for t, p in steps]
        #: the steps that act on the whole track: the scenario is applied to whole tracks, not window by window
        self.track_level = track_level_steps(steps)
        if any(t == "RoomSimulator" for t, _ in steps):
            import pyroomacoustics.random  # noqa: F401  (loaded before the first call, so _seeded seeds it)

    @classmethod
    def from_config(cls, scenario_id: str, cfg: Any) -> Scenario:
        return cls(scenario_id, scenario_steps(cfg))

    def __call__(self, audio: np.ndarray, sample_rate_hz: int, seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Apply the steps in order. A step that fails or makes non-finite samples raises a :class:`ValueError`
        naming it and the clip's length. ``Resample`` returns audio at another rate; it is resampled back to
        ``sample_rate_hz`` (to the length it had), so the step acts as a trip through a system at that rate — fed on
        as it was, the model would hear it slowed down or sped up."""
        sampled = []
        with _seeded(seed):
            for i, ((type_, _), t) in enumerate(zip(self.steps, self.transforms, strict=True)):
                n = len(audio)
                before = audio.astype(np.float32, copy=False)
                try:
                    audio = t(samples=before, sample_rate=sample_rate_hz)
                except Exception as exc:
                    short = (
                        f" — the configuration was checked on 0.5 s of noise: a clip this short may be too short for "
                        f"{type_}"
                        if n < sample_rate_hz // 2
                        else ""
                    )
                    raise ValueError(
                        f"step {i + 1} ({type_}) fails on {n} samples ({n / sample_rate_hz:.3g} s at {sample_rate_hz}"
                        f" Hz): {_reason(exc)}{short}"
                    ) from None
                if type_ == "Resample" and t.parameters.get("should_apply"):
                    audio = _resample_back(audio, int(t.parameters["target_sample_rate"]), sample_rate_hz, n)
                if not np.isfinite(audio).all():
                    raise ValueError(f"step {i + 1} ({type_}) makes non-finite samples (NaN/inf) of {n} samples")
                # a step its p skipped: audiomentations keeps there the values it drew for the clip before (or, for
                # some, drew for this one anyway), which this clip did not hear
                skipped = t.parameters.get("should_apply") is False
                sampled.append({"type": type_, **({"should_apply": False} if skipped else _recorded(t, before))})
        return np.asarray(audio, dtype=np.float32), sampled


def _recorded(transform: Any, samples: np.ndarray) -> dict[str, Any]:
    """What a step applied to ``samples`` records: the parameters audiomentations sampled, plus what they stand for
    in the configuration's own units where audiomentations keeps something else — ``snr_db`` beside the noise level
    of ``AddGaussianSNR`` (``noise_std``) and ``AddColorNoise`` (``desired_noise_rms``), worked back from the
    step's input RMS as audiomentations set it (to 0.001 dB; none for a silent input), ``gain_db`` beside ``Gain``'s
    ``amplitude_ratio`` — and, for ``SevenBandParametricEQ``, its seven bands (``bands``: each one's
    ``center_freq``, ``gain_db``, ``q_factor``, lowest first), which audiomentations keeps in its sub-filters."""
    out = _jsonable(transform.parameters)
    name = type(transform).__name__
    level = {"AddGaussianSNR": "noise_std", "AddColorNoise": "desired_noise_rms"}.get(name)
    if level is not None and out.get(level):
        from audiomentations.core.utils import calculate_rms

        clean_rms = float(calculate_rms(samples))
        if clean_rms > 0:
            out["snr_db"] = round(20 * float(np.log10(clean_rms / out[level])), 3)
    if name == "Gain" and out.get("amplitude_ratio"):
        out["gain_db"] = round(20 * float(np.log10(out["amplitude_ratio"])), 3)
    if name == "SevenBandParametricEQ":
        bands = [transform.low_shelf_filter, *transform.peaking_filters, transform.high_shelf_filter]
        out["bands"] = [
            {"type": type(b).__name__, **{k: v for k, v in _jsonable(b.parameters).items() if k != "should_apply"}}
            for b in bands
        ]
    return out


def _resample_back(audio: np.ndarray, from_hz: int, to_hz: int, n: int) -> np.ndarray:
    """``audio`` at ``from_hz`` back at ``to_hz``, trimmed or zero-padded to ``n`` samples."""
    import soxr

    if from_hz == to_hz:
        return audio
    back = soxr.resample(np.asarray(audio, np.float32), from_hz, to_hz).astype(np.float32, copy=False)
    return back[:n] if len(back) >= n else np.concatenate([back, np.zeros(n - len(back), np.float32)])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist() if v.size <= 16 else f"array{list(v.shape)}"
        elif not isinstance(v, str | int | float | bool | type(None) | list | dict):
            v = str(v)
        out[k] = v
    return out
