"""What a run asks of each store partition: the configuration it is computed under (its fingerprint) and the
tracks it must hold. The embedding stage plans its streams from these, and ``repeval plan`` reports with them
what that stage would do — one rule, so a partition the plan calls complete is one the stage leaves alone."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.deformations import scenario_steps, track_level_steps
from repeval.models import resolve_model
from repeval.pipeline.stages import CLEAN, DEFAULT_CHUNK_S, window_grid
from repeval.store import StoreConflict
from repeval.store.store import STORE_FORMAT
from repeval.warn import warn_once

log = logging.getLogger(__name__)


def model_fingerprint(model_cfg: Any) -> dict[str, Any]:
    """The family, a hash of the configured params and, once raised above "1", the family's ``embedding_version``
    (absent at "1", so partitions stamped before versions joined the fingerprint keep theirs)."""
    fam, params = resolve_model(model_cfg)
    out = {"family": fam.name, "params": config_hash(params)}
    version = str(getattr(fam.cls, "embedding_version", "1"))
    if version != "1":
        out["version"] = version
    return out


def scenario_fingerprint(exp: ExperimentConfig, sid: str, ds: Any, run_seed: int) -> dict[str, Any]:
    if sid == CLEAN:
        return {"scenario": CLEAN}
    scen = exp.scenarios_for(ds)[sid]
    return {"scenario": config_hash(scen), "seed": run_seed}


def model_geometry(fam: Any, params: dict[str, Any]) -> Any:
    """The model's :class:`~repeval.models.base.FrameGeometry` when its long tracks are cut into windows (a
    ``chunk_s``) and it declares one; else ``None`` (each window embedded alone)."""
    if model_chunk_s(fam, params) is None:
        return None
    return fam.cls.frame_geometry(params)


def raised_chunk_s(cfg: Config, mcfg: Any) -> float | None:
    """The windows (seconds, rounded up to the millisecond) a model's long tracks are cut into when they are longer
    than the ``params.chunk_s`` it is configured with — its frame geometry's windows hold whole hops, and at least
    twice what one of its frames reads (:func:`~repeval.pipeline.stages.window_grid`: msd-musicnn's, 5.984 s) —
    else ``None``; said once as a warning naming the value, so that a ``chunk_s`` below it is not changed silently."""
    from repeval.audio.decode import window_sizes

    fam, params = resolve_model(mcfg)
    asked = params.get("chunk_s")
    geometry = model_geometry(fam, params) if "chunk_s" in params else None
    if geometry is None or not isinstance(asked, int | float) or asked <= 0:
        return None
    rate = int(model_rate(fam, params) or cfg.run.sample_rate_hz)
    size = window_sizes(rate, float(asked), *window_grid(geometry))[0]
    if size <= round(float(asked) * rate):
        return None
    used = math.ceil(size / rate * 1000) / 1000
    warn_once(
        log,
        ("chunk_s", mcfg.id, float(asked), used),
        "%s: params.chunk_s %g s is shorter than its windows can be — on its frame grid, each holding at least twice "
        "what one of its frames reads — so its long tracks are cut into windows of %g s; set chunk_s: %g (or more) "
        "to say so",
        mcfg.id,
        asked,
        used,
        used,
    )
    return used


def model_chunk_s(fam: Any, params: dict[str, Any]) -> float | None:
    """The analysis window: ``params.chunk_s``, else the model's declared ``chunk_s``, else 30 s.

    ``None`` or a non-positive value in params means "whole file" (only for models that need it).
    """
    if "chunk_s" in params:
        v = params["chunk_s"]
        return float(v) if v is not None and float(v) > 0 else None
    declared = getattr(fam.cls, "chunk_s", None)
    return float(declared) if declared else DEFAULT_CHUNK_S


def _json(value: Any) -> Any:
    """``value`` as plain JSON (what a stamp can hold)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def model_settings(fam: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The model's parameters as it runs with them: its constructors' defaults (along its classes) under the
    configured ``params``. Kept readable beside the fingerprint's hash of ``params``, so a conflict can say
    ``model.params.n_mfcc: stored 20, now 30``."""
    from repeval.models.base import model_parameters

    defaults = {k: p.default for k, p in model_parameters(fam.cls).items() if p.default is not p.empty}
    return _json({**defaults, **params})


@dataclass(frozen=True)
class PartitionSpec:
    """One partition a run computes: its fingerprint and, readable, what the fingerprint hashes (``described``:
    fingerprint key path → value, stored with the partition's stamp)."""

    sid: str
    fingerprint: dict[str, Any]
    described: dict[str, Any]

    @property
    def frames(self) -> bool:
        """Whether the partition's rows hold frame-level embeddings (a ``frames`` column)."""
        return bool(self.fingerprint["keep_frames"])

    def with_frames(self) -> PartitionSpec:
        return PartitionSpec(self.sid, {**self.fingerprint, "keep_frames": True}, self.described)


def model_rate(fam: Any, params: dict[str, Any]) -> int | None:
    """The sampling rate a model runs at, known without building it: ``params.sample_rate_hz``, else what the family
    declares for these params (:meth:`~repeval.models.base.EmbeddingModel.declared_sizes`), else a class-level
    ``sample_rate_hz``; ``None`` when none says (then the stream decodes at ``run.sample_rate_hz``, and the model's
    actors refuse a rate other than theirs)."""
    try:
        declared = fam.cls.declared_sizes(params)[0]
    except Exception:  # a declaration that needs what is not here (weights' configuration): not known
        declared = None
    rate = params.get("sample_rate_hz") or declared or getattr(fam.cls, "sample_rate_hz", None)
    return int(rate) if rate else None


@dataclass(frozen=True)
class ModelSpec:
    """How a run computes one model's partitions of one dataset."""

    model_id: str
    sample_rate_hz: int
    chunk_s: float | None
    fingerprint: dict[str, Any]
    settings: dict[str, Any]
    #: windows reach the model with the context its frames need across their edges (a frame geometry)
    overlapped: bool = False

    @classmethod
    def of(cls, cfg: Config, mcfg: Any) -> ModelSpec:
        fam, params = resolve_model(mcfg)
        sample_rate = int(model_rate(fam, params) or cfg.run.sample_rate_hz)
        fp = model_fingerprint(mcfg)
        overlapped = model_geometry(fam, params) is not None
        raised_chunk_s(cfg, mcfg)
        return cls(mcfg.id, sample_rate, model_chunk_s(fam, params), fp, model_settings(fam, params), overlapped)

    def partition(self, cfg: Config, exp: ExperimentConfig, ds: Any, sid: str) -> PartitionSpec:
        """The partition of ``ds`` in scenario ``sid``, as this run asks for it: with frames when a task of the run
        reads them there (:meth:`~repeval.config.Config.keeps_frames`)."""
        fp = {
            "model": self.fingerprint,
            **scenario_fingerprint(exp, sid, ds, cfg.run.seed),
            "sample_rate_hz": self.sample_rate_hz,
            "chunk_s": self.chunk_s,
            "keep_frames": cfg.keeps_frames(ds.name, self.model_id),
            "store_format": STORE_FORMAT,
        }
        if self.overlapped:
            # a track of several windows has the frames of the whole track: a partition computed window by window
            # alone (before repeval overlapped windows) differs on every such track, and is not completed with these
            fp["windows"] = "overlapped"
        described = {"model.params": self.settings}
        if sid != CLEAN:
            scenario = exp.scenarios_for(ds)[sid]
            described["scenario"] = _json(scenario.model_dump(mode="json"))
            if self.chunk_s is not None and track_level_steps(scenario_steps(scenario)):
                # deformed whole, then chunked: a partition computed window by window (before repeval deformed such
                # scenarios whole) differs on every track longer than a window, and is not completed with these rows
                fp["deformed"] = "whole track"
        return PartitionSpec(sid, fp, described)


def wanted_masks(cfg: Config, exp: ExperimentConfig, ds: Any, rows: pa.Table, deform_ids: Any) -> dict[str, np.ndarray]:
    """Per scenario of ``exp`` on ``ds`` (``clean`` first): which of ``rows`` the run embeds in it. Deformed: the
    tracks in ``run.deform_splits`` (k folds: ``deform_ids[dataset]``), and the training tracks of scenarios that
    augment the probes' training data (k folds: every track)."""
    run = cfg.run
    ids = rows.column("track_id")
    if deform_ids is not None and ds.name in deform_ids:
        in_deform = pc.is_in(ids, value_set=deform_ids[ds.name])
    else:
        in_deform = pc.is_in(rows.column("split"), value_set=pa.array(list(run.deform_splits), pa.string()))
    deform_mask = pc.fill_null(in_deform, False).to_numpy(zero_copy_only=False)
    augmented = set(exp.augment_for(ds))
    aug_mask = np.zeros(rows.num_rows, bool)
    if augmented and deform_ids is not None and ds.name in deform_ids:
        aug_mask[:] = True
    elif augmented:
        aug_mask = pc.fill_null(pc.equal(rows.column("split"), "train"), False).to_numpy(zero_copy_only=False)
    out = {CLEAN: np.ones(rows.num_rows, bool)}
    for sid in exp.scenarios_for(ds):
        out[sid] = deform_mask | aug_mask if sid in augmented else deform_mask
    return out


def accepted_spec(part: Any, spec: PartitionSpec) -> PartitionSpec:
    """``spec`` checked against what ``part`` holds (:meth:`~repeval.store.Partition.check_compatible`, whose
    :class:`~repeval.store.StoreConflict` it raises): the spec the run computes the partition under. A partition
    stored with frames that ``spec`` does not ask for (an earlier run kept them: ``run.keep_frames: true``, or a task
    that reads them) serves the run as it is and is completed with frames — rows without them never join it."""
    framed = spec.with_frames()
    try:
        kept = part.check_compatible(spec.fingerprint, spec.described)
    except StoreConflict:
        if spec.frames or not _compatible(part, framed):
            raise
        return framed  # stored with frames, and differing otherwise only as the windowing rule accepts
    return framed if kept else spec


def _compatible(part: Any, spec: PartitionSpec) -> bool:
    try:
        part.check_compatible(spec.fingerprint, spec.described)
    except StoreConflict:
        return False
    return True


def partition_state(part: Any, spec: PartitionSpec, ids: pa.Array, wanted: np.ndarray) -> tuple[str, str]:
    """What the embedding stage would do with ``part`` for the wanted tracks (``ids[wanted]``): ``("complete",
    "")`` (nothing), ``("todo", what)`` (embed tracks, or mark it complete) or ``("conflict", the error the stage
    would stop with)``."""
    try:
        accepted_spec(part, spec)
    except StoreConflict as exc:
        return "conflict", str(exc)
    done = pc.is_in(ids, value_set=part.done_ids()).to_numpy(zero_copy_only=False)
    missing = int((wanted & ~done).sum())
    if missing:
        return "todo", f"{missing:,} of {int(wanted.sum()):,} track(s) to embed"
    return ("complete", "") if part.complete else ("todo", "not marked complete")
