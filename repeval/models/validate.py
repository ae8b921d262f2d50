"""``repeval validate-model`` and ``repeval models``: check a model against the contract, list the zoo.

:func:`validate_model` builds a model (in its own process when its ``process_group`` is not
``default``), feeds it noise of awkward lengths recorded at awkward sample rates (resampled
to the model's rate with soxr, as the pipeline does), and checks: declared sizes, output shape
``(n_frames >= 1, embedding_dim)``, float32, finite values, rejection of empty input, determinism,
batch/single agreement and a pickle round trip (a model that does not pickle passes: a run builds it in each
worker process from its configuration and never ships it; one that pickles must embed alike once unpickled).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from repeval.models._common import PROCESS_GROUP_ENV
from repeval.words import counted

log = logging.getLogger(__name__)

PROCESS_GROUP_VAR = "REPEVAL_PROCESS_GROUP"
#: (seconds, recorded sample rate) of the noise clips fed to the model
DEFAULT_CLIPS: tuple[tuple[float, int], ...] = ((0.25, 11025), (1.013, 44100), (4.05, 48000), (2.2, 8000))
_RTOL, _ATOL = 1e-4, 1e-5


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


#: a size a model sets when it is built (in ``__init__``, from its weights or params) and does not declare
AT_BUILD = "? (set at build)"


def known_sizes(cls: Any, params: dict[str, Any]) -> tuple[int | None, int | None]:
    """``(sample_rate_hz, embedding_dim)`` of a model class known without building it: what it declares for
    ``params`` (:meth:`~repeval.models.base.EmbeddingModel.declared_sizes`), else its class attributes (a plugin's
    may set them there); ``None`` where it sets one only when built."""
    sr, dim = cls.declared_sizes(params)
    return sr or getattr(cls, "sample_rate_hz", None), dim or getattr(cls, "embedding_dim", None)


def sizes_text(sr: int | None, dim: int | None) -> str:
    """``64-d @ 16000 Hz`` — ``dim at build @ 16000 Hz`` where the model sets its size when built, ``sizes at build``
    where it sets both (``repeval models``)."""
    if sr is None and dim is None:
        return "sizes at build"
    return f"{f'{dim}-d' if dim else 'dim at build'} @ {f'{sr} Hz' if sr else 'rate at build'}"


@dataclass
class ValidationReport:
    model_id: str
    family: str
    process_group: str
    sample_rate_hz: int | None = None
    embedding_dim: int | None = None
    unavailable: str | None = None
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.unavailable is None and bool(self.checks) and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        data = {k: v for k, v in data.items() if k != "ok"}
        data["checks"] = [Check(**c) for c in data.get("checks", [])]
        return cls(**data)

    def summary(self) -> str:
        sr, dim = (AT_BUILD if v is None else v for v in (self.sample_rate_hz, self.embedding_dim))
        head = f"{self.model_id} [{self.family}, {self.process_group}] sr={sr} dim={dim}"
        if self.unavailable:
            return f"{head}: UNAVAILABLE — {self.unavailable}"
        lines = [f"{head}: {'OK' if self.ok else 'FAILED'} ({self.seconds:.1f} s)"]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}{': ' + c.detail if c.detail else ''}" for c in self.checks]
        return "\n".join(lines)


def _as_config(cfg: Any) -> Any:
    """``cfg`` as an :class:`EmbeddingModelConfig`; an invalid one raises :class:`ConfigError` with the config
    loader's one line per problem (an unknown id: the closest ids, and where to list them), not pydantic's report."""
    from pydantic import ValidationError

    from repeval.config.embed import EmbeddingModelConfig
    from repeval.config.loader import ConfigError, _format

    if isinstance(cfg, EmbeddingModelConfig):
        return cfg
    try:
        return EmbeddingModelConfig(id=cfg) if isinstance(cfg, str) else EmbeddingModelConfig.model_validate(cfg)
    except ValidationError as exc:
        problems = [p.removeprefix("(top level): ") for p in _format(exc)]
        if any("unknown embedding model" in p for p in problems):
            problems[-1] += " (`repeval models` lists them and whether each is available)"
        raise ConfigError(problems) from None


def _noise(seconds: float, rate_in: int, rate_out: int, seed: int) -> np.ndarray:
    import soxr

    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal(max(1, int(seconds * rate_in)))).astype(np.float32)
    return np.asarray(soxr.resample(x, rate_in, rate_out), dtype=np.float32) if rate_in != rate_out else x


def frames_problem(frames: np.ndarray, dim: int) -> str | None:
    """What is wrong with the frames a model's ``embed`` returned, said with the fix (an error record's reason);
    None when they are a ``(n_frames >= 1, dim)`` array of finite values."""
    if frames.ndim != 2:
        return (
            f"model returned frames of shape {frames.shape}, not (n_frames, {dim}): make embed return a 2-D array "
            "(one frame: frames[None, :])"
        )
    if frames.shape[1] != dim:
        return (
            f"model returned frames of shape {frames.shape}, but its embedding_dim is {dim}: make embed's frames "
            "that wide, or embedding_dim their width"
        )
    if frames.shape[0] == 0:
        return f"model returned no frames (shape {frames.shape}): make embed return at least one"
    bad = int(frames.size - np.isfinite(frames).sum())
    if bad:
        return (
            f"model returned {counted(bad, 'NaN or infinite value')} in frames of shape {frames.shape}: fix it (`repeval "
            "validate-model` checks it)"
        )
    return None


def _close(a: np.ndarray, b: np.ndarray) -> tuple[bool, str]:
    if a.shape != b.shape:
        return False, f"shapes differ {a.shape} vs {b.shape}"
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return bool(np.allclose(a, b, rtol=_RTOL, atol=_ATOL)), f"max |diff| {diff:.2e}"


def _run_checks(
    report: ValidationReport, model: Any, params: dict[str, Any], clips: tuple[tuple[float, int], ...], seed: int
) -> None:
    sr, dim = model.sample_rate_hz, model.embedding_dim
    report.sample_rate_hz, report.embedding_dim = int(sr), int(dim)
    declared = type(model).declared_sizes(params)
    report.add(
        "declared sizes",
        all(d is None or d == v for d, v in zip(declared, (sr, dim), strict=True)),
        f"declared {declared}, built ({sr}, {dim})",
    )
    audios = [_noise(s, r, sr, seed + i) for i, (s, r) in enumerate(clips)] + [_noise(10 / sr, sr, sr, seed + 99)]
    outs: list[np.ndarray | None] = []
    wide: list[str] = []  # the dtype of each clip's frames other than float32 (a run casts them: said once, below)
    for audio in audios:
        label = f"{len(audio)} samples"
        try:
            out = model.embed(audio)
        except Exception as exc:
            report.add(f"embed {label}", False, repr(exc)[:300])
            outs.append(None)
            continue
        if not isinstance(out, np.ndarray):
            problem: str | None = f"model returned a {type(out).__name__}, not a numpy array: make embed return one"
        else:
            problem = frames_problem(out, dim)
            if problem is None and out.dtype != np.float32:
                wide.append(str(out.dtype))
        ok = problem is None
        detail = (
            f"shape {out.shape} dtype {out.dtype} finite {bool(np.isfinite(out).all())}"
            if isinstance(out, np.ndarray)
            else ""
        )
        detail = " — ".join(s for s in (detail, problem) if s)
        report.add(f"embed {label}", ok, detail)
        outs.append(out if ok else None)
    if wide:  # one line for every clip, not one per clip
        report.add(
            "float32 frames",
            False,
            f"model returned {wide[0]} frames (for {len(wide)} of {counted(len(audios), 'clip')}), not float32: a run "
            "stores them as float32, the store's precision, and notes it — make embed return "
            "frames.astype(np.float32)",
        )
    try:
        model.embed(np.zeros(0, dtype=np.float32))
        report.add("empty input raises ValueError", False, "no error raised")
    except ValueError:
        report.add("empty input raises ValueError", True)
    except Exception as exc:
        report.add("empty input raises ValueError", False, f"raised {type(exc).__name__}: {exc}"[:300])
    ok_outs = [(i, o) for i, o in enumerate(outs) if o is not None]
    if not ok_outs:
        return
    ref_i, ref = ok_outs[0]
    report.add("deterministic", *_close(ref, model.embed(audios[ref_i])))
    try:
        invariant = getattr(model, "batch_invariant", True)
        # as a run calls it: one clip at a time from a model that says its clips' frames depend on the call's others
        batch = model.embed_batch(audios) if invariant else [model.embed_batch([a])[0] for a in audios]
        pairs = [_close(b, o) for b, o in zip(batch, outs, strict=True) if o is not None]
        same = len(batch) == len(audios) and all(p[0] for p in pairs)
        said = "; ".join(p[1] for p in pairs)
        if not same and invariant:
            said += (
                " — if a clip's frames from embed_batch depend on the clips beside it in the call (padding to the "
                "longest), set batch_invariant = False on the model's class: a run then calls it one clip at a time"
            )
        report.add("embed_batch == embed", same, said)
    except Exception as exc:
        report.add("embed_batch == embed", False, repr(exc)[:300])
    try:
        pickle.dumps(model)
    except Exception as exc:  # an ONNX or TF session, a lock: fine, a run never ships a built model
        said = f"{type(exc).__name__}: {exc}"[:200]
        report.add("pickle round trip", True, f"does not pickle ({said}): not needed, a run builds it in each worker")
        return
    try:
        report.add("pickle round trip", *_close(pickle.loads(pickle.dumps(model)).embed(audios[ref_i]), ref))
    except Exception as exc:
        report.add("pickle round trip", False, repr(exc)[:300])


def model_params_of(pairs: Sequence[str]) -> dict[str, Any]:
    """``repeval validate-model --param k=v``'s params: each value read as YAML, as in a config's ``params:``."""
    import yaml

    params: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--param {pair!r} is not NAME=VALUE: write it as --param weights_path=/models/cnn.pt")
        params[key.strip()] = yaml.safe_load(value) if value.strip() else value
    return params


def _prepare(cfg: Any, dummy_weights: str | Path | None) -> tuple[Any, Any, dict[str, Any]]:
    from repeval.models import resolve_model

    config = _as_config(cfg)
    fam, params = resolve_model(config)
    if dummy_weights is not None:
        from repeval.models.dummies import dummy_params

        extra = dummy_params(fam.name, Path(dummy_weights))
        config = config.model_copy(update={"params": {**extra, **config.params}})
        fam, params = resolve_model(config)
    return config, fam, params


def _needs_isolation(group: str, isolate: bool | None) -> bool:
    if isolate is None:
        return group != "default" and os.environ.get(PROCESS_GROUP_VAR) != group
    return isolate


def validate_model(
    cfg: Any,
    *,
    dummy_weights: str | Path | None = None,
    isolate: bool | None = None,
    clips: tuple[tuple[float, int], ...] = DEFAULT_CLIPS,
    seed: int = 0,
    timeout_s: float = 1800.0,
    plugins: Sequence[str] = (),
) -> ValidationReport:
    """Validate one model config (an id, a dict or an :class:`EmbeddingModelConfig`).

    ``dummy_weights``: a directory for stand-in weights (:mod:`repeval.models.dummies`), to check
    a family whose real weights are absent. ``isolate``: run in a fresh process with the
    family's process-group environment (default: when the family's group is not ``default``).
    ``plugins``: modules or ``.py`` files that register models of your own (:mod:`repeval.models.plugins`),
    imported first.
    """
    return validate_models(
        [cfg], dummy_weights=dummy_weights, isolate=isolate, clips=clips, seed=seed, timeout_s=timeout_s,
        plugins=plugins,
    )[0]  # fmt: skip


def validate_models(
    cfgs: list[Any],
    *,
    dummy_weights: str | Path | None = None,
    isolate: bool | None = None,
    clips: tuple[tuple[float, int], ...] = DEFAULT_CLIPS,
    seed: int = 0,
    timeout_s: float = 1800.0,
    plugins: Sequence[str] = (),
) -> list[ValidationReport]:
    """Validate several configs; those needing isolation share one fresh process per process group."""
    from repeval.models.plugins import load_plugins, plugins_of

    records = plugins_of(plugins)
    load_plugins(records)
    prepared = [_prepare(c, dummy_weights) for c in cfgs]
    reports: list[ValidationReport | None] = [None] * len(prepared)
    isolated: dict[str, list[int]] = {}
    for i, (config, fam, params) in enumerate(prepared):
        group = fam.cls.process_group
        if _needs_isolation(group, isolate):
            isolated.setdefault(group, []).append(i)
        else:
            reports[i] = _validate_here(config, fam, params, clips, seed)
    for group, idx in isolated.items():
        for i, rep in zip(
            idx,
            _validate_in_subprocess([prepared[i][0] for i in idx], group, clips, seed, timeout_s, records),
            strict=True,
        ):
            reports[i] = rep
    return [r for r in reports if r is not None]


def _validate_here(config: Any, fam: Any, params: dict[str, Any], clips: Any, seed: int) -> ValidationReport:
    report = ValidationReport(config.id, fam.name, fam.cls.process_group)
    try:  # what is known unbuilt: a build that fails says no more (a declared_sizes that raises: the build's check)
        report.sample_rate_hz, report.embedding_dim = known_sizes(fam.cls, params)
    except Exception:
        pass
    started = time.perf_counter()
    reason = fam.cls.availability(params)
    if reason:
        report.unavailable = reason
        return report
    try:
        from repeval.models.param_kinds import as_built

        model = fam.cls(**as_built(fam.cls, params))
    except Exception as exc:
        report.add("build", False, f"{type(exc).__name__}: {exc}"[:500])  # (an OSError's str names its file)
        return report
    report.add("build", True)
    _run_checks(report, model, params, clips, seed)
    report.seconds = time.perf_counter() - started
    return report


def _validate_in_subprocess(
    configs: list[Any], group: str, clips: Any, seed: int, timeout_s: float, plugins: Sequence[Any] = ()
) -> list[ValidationReport]:
    env = {**os.environ, **PROCESS_GROUP_ENV.get(group, {}), PROCESS_GROUP_VAR: group}
    payload = json.dumps(
        {
            "configs": [c.model_dump() for c in configs],
            "clips": [list(c) for c in clips],
            "seed": seed,
            "plugins": [p.path or p.spec for p in plugins],  # (a file: its path resolved here)
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "repeval.models.validate", "--payload", payload],
        env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    found = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            rep = ValidationReport.from_dict(json.loads(line))
            found[rep.model_id] = rep
    out = []
    for config in configs:
        if config.id in found:
            out.append(found[config.id])
            continue
        rep = ValidationReport(config.id, config.type or config.id, group)
        rep.add(f"run in '{group}' process", False, f"exit {proc.returncode}: {proc.stderr[-1500:]}")
        out.append(rep)
    return out


def list_models(plugins: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per registered family: id, family, dim, sample rate, availability reason, extra, process group, and
    the plugin that registered it (None: repeval's own) — the installed plugins' models (entry points) and those
    of ``plugins`` (modules or ``.py`` files) included; an installed plugin that cannot be used is left out (its
    error is :func:`~repeval.models.plugins.load_entry_points`', which ``repeval models`` says after the list)."""
    from repeval.models import MODELS
    from repeval.models.plugins import PluginError, load_entry_points, load_plugins, plugin_of

    try:
        load_entry_points()
    except PluginError:
        pass
    load_plugins(plugins)
    rows = []
    for name, fam in MODELS.items():
        params = dict(fam.default_params)
        try:
            reason = fam.cls.availability(params)
        except Exception as exc:
            reason = f"availability check failed: {exc}"
        sr, dim = known_sizes(fam.cls, params)
        rows.append(
            {
                "id": name,
                "family": fam.cls.__module__.rsplit(".", 1)[-1],
                "description": fam.cls.description,
                "embedding_dim": dim,
                "sample_rate_hz": sr,
                "available": reason is None,
                "reason": reason,
                "extra": fam.cls.extra,
                "process_group": fam.cls.process_group,
                "uses_gpu": fam.cls.uses_gpu,
                "plugin": plugin_of(name),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of the isolated validation process (``python -m repeval.models.validate``)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payload", required=True, help="JSON: {configs, clips, seed}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data = json.loads(args.payload)
    clips = tuple(tuple(c) for c in data["clips"])
    for config in data["configs"]:
        report = validate_model(config, isolate=False, clips=clips, seed=data["seed"], plugins=data.get("plugins", ()))
        sys.stdout.write(json.dumps(report.to_dict()) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
