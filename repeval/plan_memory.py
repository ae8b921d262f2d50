"""The memory a probe trial holds for frame-level training (``embedding_aggregation: prediction | attention``): the
training split's frames whole, ``frames × dim × 4`` bytes — said by ``repeval plan`` and, once, by ``repeval run``
before training, with a warning naming the fixes when it exceeds the memory a node has (:func:`frame_memory`)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from repeval.pipeline.stages import CLEAN

log = logging.getLogger(__name__)

#: float32 frames
_BYTES_PER_VALUE = 4
_FIXES = (
    "`embedding_aggregation: mean` (one vector per track), a larger hop (the model's `frames`/hop param), fewer "
    "tracks, or a node with more memory"
)


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


#: the key of a resources mapping that holds the largest alive node's Ray ``memory`` (:func:`warn_frame_memory`)
NODE_MEMORY = "largest node memory"


def machine_memory_bytes(cluster: Mapping[str, float] | None = None) -> tuple[float, str]:
    """The memory a trial can have and what says so: the largest node's Ray ``memory`` resource when known, else the
    cluster's (all its nodes': a trial has one node's — an upper bound), else this machine's."""
    if cluster is not None and cluster.get(NODE_MEMORY):
        return float(cluster[NODE_MEMORY]), "the largest Ray node's memory resource"
    if cluster is not None and cluster.get("memory"):
        return float(cluster["memory"]), "the cluster's Ray memory resource (all its nodes')"
    import os

    try:
        import psutil

        return float(psutil.virtual_memory().total), "this machine's memory"
    except ImportError:  # psutil comes with Ray's extras, not always
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "this machine's memory"


def _stored_train_frames(store: Any, ds: Any, model_id: str) -> tuple[int, int] | None:
    """``(frames of the training split, dim)`` from the clean partition's ``n_frames`` and schema, once complete; for
    ``split_type: all`` the training folds' share of all frames (a fold trains on all but two)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from repeval.store.layout import read_parquet

    part = store.partition(ds.name, model_id, CLEAN)
    if not part.manifest():
        return None
    files = part.part_files()
    if not files:
        return None
    field = pq.read_schema(files[0], filesystem=part.fs).field("embedding")
    dim = int(field.type.list_size)
    frames = 0
    for f in files:
        t = read_parquet(part.fs, f, ["split", "n_frames"])
        if ds.split_type == "all":
            frames += int(pc.sum(t.column("n_frames")).as_py() or 0)
        else:
            train = t.filter(pc.equal(t.column("split"), "train"))
            frames += int(pc.sum(train.column("n_frames")).as_py() or 0)
    if ds.split_type == "all":
        frames = frames * max(ds.n_folds - 2, 1) // ds.n_folds
    return frames, dim


def frame_rate(model: Any) -> tuple[float, int] | None:
    """``(seconds between frames, dimension)`` of a model's frames from what it declares without loading weights
    (:meth:`~repeval.models.base.EmbeddingModel.declared_hop_s`, ``declared_sizes``); ``None`` if it declares
    neither."""
    from repeval.models import resolve_model

    fam, params = resolve_model(model)
    _, dim = fam.cls.declared_sizes(params)
    hop_s = fam.cls.declared_hop_s(params)
    if not dim or not hop_s or hop_s <= 0:
        return None
    return hop_s, int(dim)


def undeclared_frames(model: Any) -> str:
    """Why a model declares no frame rate or dimension (:meth:`~repeval.models.base.EmbeddingModel.undeclared_frames`)."""
    from repeval.models import resolve_model

    fam, params = resolve_model(model)
    return fam.cls.undeclared_frames(params)


def _rate(model: Any) -> str | None:
    """Bytes per minute of audio from the model's declared frame rate and dimension; ``None`` if not declared."""
    rate = frame_rate(model)
    if rate is None:
        return None
    hop_s, dim = rate
    per_minute = 60 / hop_s * dim * _BYTES_PER_VALUE
    return f"{per_minute / 2**20:.3g} MiB per minute of training audio ({dim}-d frames every {hop_s:.3g} s)"


def frame_memory(
    cfg: Any,
    store: Any | None,
    cluster: Mapping[str, float] | None = None,
    only: Collection[tuple[str, str, str]] | None = None,
) -> tuple[list[str], list[str]]:
    """``(lines, warnings)``: per dataset × model of a frame-level task, the training split's frames in memory —
    exact from the store once embedded, else the model's rate per minute of audio (the tracks' durations are known
    once embedded), else not known — and a warning for each that exceeds :func:`machine_memory_bytes`. ``only``:
    the (task, dataset, model) of the grids to train (``repeval run``: not those trained before), else all."""
    lines: list[str] = []
    warnings: list[str] = []
    seen: set[tuple[str, str]] = set()
    memory, source = machine_memory_bytes(cluster)
    for exp in cfg.experiments:
        if exp.task.aggregation not in ("prediction", "attention"):
            continue
        for ds in exp.datasets:
            for m in exp.embedding_models:
                if (ds.name, m.id) in seen or (only is not None and (exp.task.name, ds.name, m.id) not in only):
                    continue
                seen.add((ds.name, m.id))
                stored = _stored_train_frames(store, ds, m.id) if store is not None and store.exists() else None
                what = f"{ds.name}/{m.id} ({exp.task.aggregation})"
                if stored is None:
                    rate = _rate(m)
                    lines.append(
                        f"frame memory: {what}: {rate}; the tracks' durations are known once embedded"
                        if rate
                        else f"frame memory: {what}: not known until embedded ({undeclared_frames(m)})"
                    )
                    continue
                frames, dim = stored
                nbytes = frames * dim * _BYTES_PER_VALUE
                lines.append(
                    f"frame memory: {what}: {_gib(nbytes)} per probe trial — the training split's {frames:,} frames "
                    f"× {dim} × 4 B, held whole"
                )
                if nbytes > memory:
                    warnings.append(
                        f"{what}: a probe trial holds the training split's frames whole, {_gib(nbytes)}, more than "
                        f"{source} ({_gib(memory)}): use {_FIXES}"
                    )
    return lines, warnings


def largest_node_memory(nodes: list[dict[str, float]] | None = None) -> dict[str, float]:
    """``{NODE_MEMORY: bytes}``: the largest alive node's Ray ``memory`` resource (of ``nodes``, each live node's
    resources, else of the Ray this process is attached to) — what a trial can have, where
    ``ray.cluster_resources()`` sums every node's — else ``{}`` (not attached, or not known: the estimate is advice)."""
    try:
        import ray

        from repeval.ray_fit import alive_node_resources

        if nodes is None:
            nodes = alive_node_resources() if ray.is_initialized() else []
        alive = [float(n.get("memory", 0.0)) for n in nodes]
    except Exception:  # Ray's resources not known: the caller's other measure
        return {}
    return {NODE_MEMORY: max(alive)} if alive and max(alive) > 0 else {}


def warn_frame_memory(cfg: Any, store: Any, only: Collection[tuple[str, str, str]]) -> None:
    """``repeval run``'s word before training (once per process): :func:`frame_memory` of the grids it trains
    (``only``) with Ray's resources."""
    from repeval.warn import warn_once

    lines, warnings = frame_memory(cfg, store, largest_node_memory() or None, only)
    for line in lines:
        log.info("%s", line)
    for w in warnings:
        warn_once(log, ("frame memory", w), "%s", w)
