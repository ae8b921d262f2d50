"""The files a deformation step reads — ``AddBackgroundNoise``'s and ``AddShortNoises``' ``sounds_path``,
``ApplyImpulseResponse``'s ``ir_path``: checked when the configuration is validated (:func:`check_paths`), and
identified by their content in a scenario's partition fingerprint (:func:`scenario_files`), so that a noise or impulse
response file replaced, added or removed under the same path deforms the tracks anew instead of completing partitions
deformed with the old ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: what a parameter naming files takes, and how to write it
PATH_FORMS = "a folder of audio files, one file or a list of them"


def _is_path_param(key: str) -> bool:
    return key.endswith(("_path", "_paths"))


def _given(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _local(v: Any) -> bool:
    """A path on this machine, not a URI (``s3://…``: refused when the configuration is validated)."""
    return isinstance(v, str | Path) and "://" not in str(v)


def check_paths(type_: str, params: dict[str, Any], forms: dict[str, str], exist: bool = True) -> None:
    """Files and folders a transform reads (``sounds_path``, ``ir_path``, …) must be named, be local paths (not a
    URI: audiomentations opens them as files) and — unless not ``exist`` (``repeval validate --skip-data-check``, a
    configuration for another machine) — exist and hold audio files: audiomentations' own check is a bare assert on
    the number of files it found. ``forms``: what each such parameter is, to say how to write it."""
    from audiomentations.core.utils import SUPPORTED_EXTENSIONS, find_audio_files_in_paths

    for key, value in params.items():
        if not _is_path_param(key) or value is None:
            continue
        given = _given(value)
        if not given or any(not isinstance(v, str | Path) or not str(v) for v in given):
            raise ValueError(f"{type_}.{key}: {value!r} names no files — give {forms.get(key, PATH_FORMS)}")
        for v in given:
            if not _local(v):
                raise ValueError(
                    f"{type_}.{key}: {str(v)!r} is a URI, but audiomentations reads local files only — copy the "
                    "files to a local folder on each node (or a shared filesystem path every node mounts) and give "
                    "that path"
                )
            if not exist:
                continue
            if not Path(v).exists():
                raise ValueError(
                    f"{type_}.{key}: {str(v)!r} does not exist — point it at an existing audio file or a folder of them"
                )
            if not find_audio_files_in_paths(v):
                what = "folder holds no audio files" if Path(v).is_dir() else "file is not an audio file"
                raise ValueError(
                    f"{type_}.{key}: the {what} audiomentations reads ({str(v)!r}; it reads "
                    f"{', '.join(SUPPORTED_EXTENSIONS)}) — put the recordings there, or point it at another folder"
                )


def unchecked_paths(params: dict[str, Any]) -> list[tuple[str, str]]:
    """A step's file parameters as ``(key, path)``, each path of a list on its own: what ``repeval validate
    --skip-data-check`` does not check (:func:`check_paths` with ``exist=False``)."""
    return [
        (key, str(v))
        for key, value in params.items()
        if _is_path_param(key) and value is not None
        for v in _given(value)
    ]


def scenario_files(steps: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, str]]:
    """The audio files each step's path parameters resolve to, as audiomentations finds them: ``{"steps[0].sounds_path":
    {"rain.wav": "52012 bytes, sha256 …", …}}`` — each file by its name relative to the folder given (a file
    given: its name), sorted; a list of paths as ``steps[0].sounds_path[1]`` for each entry. Empty when no step reads
    files. The paths' own spelling is the scenario's; this is
    what they hold. Each file is read once per process and version, a large one sampled
    (:func:`~repeval.models.provenance.file_digest`)."""
    from audiomentations.core.utils import find_audio_files_in_paths

    from repeval.models.provenance import file_digest

    out: dict[str, dict[str, str]] = {}
    for i, (_, params) in enumerate(steps):
        for key, value in params.items():
            if not _is_path_param(key) or value is None:
                continue
            given = _given(value)
            for j, v in enumerate(given):
                if not _local(v) or not str(v):
                    continue
                root = Path(os.path.abspath(v))  # as audiomentations resolves it
                found = {}
                for f in find_audio_files_in_paths(v):
                    name = f.relative_to(root).as_posix() if root.is_dir() else f.name
                    known = file_digest(f)
                    found[name] = f"{known[0]} bytes, sha256 {known[1]}" if known else "not readable"
                where = f"steps[{i}].{key}" + (f"[{j}]" if isinstance(value, list | tuple) else "")
                out[where] = dict(sorted(found.items()))
    return out


def with_stand_ins(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with each file parameter (``sounds_path``, ``ir_path``, …) naming one stand-in recording (half a
    second of noise, written once per process): the transform is built and tried with the rest of its parameters
    when the files it names are not on this machine (``repeval validate --skip-data-check``)."""
    return {
        key: (str(_stand_in()) if _is_path_param(key) and value is not None else value) for key, value in params.items()
    }


_STAND_IN: list[Any] = []  # the folder holding the stand-in, removed when the process ends


def _stand_in() -> Path:
    import tempfile

    import numpy as np
    import soundfile as sf

    if not _STAND_IN:
        _STAND_IN.append(tempfile.TemporaryDirectory(prefix="repeval-stand-in-"))
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, 22_050).astype(np.float32)
        sf.write(Path(_STAND_IN[0].name) / "stand-in.wav", noise, 44_100)
    return Path(_STAND_IN[0].name) / "stand-in.wav"
