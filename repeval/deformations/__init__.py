"""Deformation scenarios built from audiomentations waveform transforms.

A scenario is an ordered list of ``{type, params}`` steps (the thesis syntax). Every
audiomentations waveform transform is allowed except ``Lambda`` (an arbitrary callable cannot
come from a config file). Sampling is seeded from (run seed, track id, scenario id) so reruns
are bit-identical on CPU, and the sampled parameters are returned for storage.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from repeval.registry import unknown_name_message

#: transforms that cannot be described by plain config values
FORBIDDEN = {"Lambda"}

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


def build_transform(type_: str, params: dict[str, Any]) -> Any:
    transforms = waveform_transforms()
    if type_ not in transforms:
        raise ValueError(unknown_name_message("deformation", type_, set(transforms)))
    cls = transforms[type_]
    params = normalise_params(params)
    sig = inspect.signature(cls)
    accepts_kwargs = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    valid = list(sig.parameters)
    for key in params:
        if key not in valid and not accepts_kwargs:
            from repeval.registry import closest

            hint = closest(key, valid)
            raise ValueError(
                f"{type_} has no parameter '{key}'"
                + (f" — did you mean '{hint}'?" if hint else "")
                + f" (parameters: {', '.join(valid)})"
            )
    _check_paths(type_, params)
    try:
        return cls(**_defaults(cls, params))
    except Exception as exc:  # audiomentations raises AssertionError/ValueError/TypeError
        raise ValueError(f"{type_}({json.dumps(params, default=str)}): {_reason(exc)}") from None


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


def _check_paths(type_: str, params: dict[str, Any]) -> None:
    """Files and folders a transform reads (``sounds_path``, ``ir_path``, …) must exist: audiomentations' own
    check is a bare assert on the number of files it found."""
    for key, value in params.items():
        if not key.endswith(("_path", "_paths")) or value is None:
            continue
        for v in value if isinstance(value, list | tuple) else [value]:
            if isinstance(v, str | Path) and "://" not in str(v) and not Path(v).exists():
                raise ValueError(
                    f"{type_}.{key}: {str(v)!r} does not exist — point it at an existing audio file or a folder of them"
                )


#: what a scenario's steps are tried on while the configuration is validated: half a second of noise
PROBE_SAMPLE_RATE_HZ = 44_100


def validate_step(type_: str, params: dict[str, Any]) -> None:
    """Build the transform and apply it once (with ``p = 1``) to half a second of noise: parameters that
    audiomentations only checks when it runs (a resampling rate of 0, …) fail here, while the configuration is
    validated, instead of turning every deformed track into an error record."""
    transform = build_transform(type_, params)
    if getattr(transform, "p", None) is not None:
        transform.p = 1.0
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, PROBE_SAMPLE_RATE_HZ // 2).astype(np.float32)
    try:
        with _seeded(0):
            transform(samples=audio, sample_rate=PROBE_SAMPLE_RATE_HZ)
    except Exception as exc:
        raise ValueError(
            f"{type_}({json.dumps(params, default=str)}) fails on half a second of noise at {PROBE_SAMPLE_RATE_HZ} Hz: "
            f"{_reason(exc)}"
        ) from None


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
        if any(t == "RoomSimulator" for t, _ in steps):
            import pyroomacoustics.random  # noqa: F401  (loaded before the first call, so _seeded seeds it)

    @classmethod
    def from_config(cls, scenario_id: str, cfg: Any) -> Scenario:
        return cls(scenario_id, [(s.type, dict(s.params)) for s in cfg.steps])

    def __call__(self, audio: np.ndarray, sample_rate_hz: int, seed: int) -> tuple[np.ndarray, list[dict[str, Any]]]:
        sampled = []
        with _seeded(seed):
            for (type_, _), t in zip(self.steps, self.transforms, strict=True):
                audio = t(samples=audio.astype(np.float32, copy=False), sample_rate=sample_rate_hz)
                sampled.append({"type": type_, **_jsonable(t.parameters)})
        return np.asarray(audio, dtype=np.float32), sampled


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
