"""The embedding stage: for each (dataset, model) stream the tracks that still need work through
Ray Data and write them into the store, one partition per scenario (``clean``, D1, ...).

Only the splits in ``run.deform_splits`` (default: test) are deformed — probes are trained on
clean audio and tested on clean and deformed audio. Each track is decoded once, whatever the
number of scenarios it needs.

Stream: ``from_arrow`` (slices of the to-do table) → ``DecodeDeform`` tasks (decode block-wise,
chunk to the model's window, deform) → ``Embed`` actor pool (one per model; resources from
:mod:`repeval.pipeline.resources`) → driver: reassemble chunks, write atomic part files. Nothing
is materialised; the driver never builds a Python object per catalog row to plan the work (the
to-do set is computed with Arrow kernels against the ids already in the store).
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.models import resolve_model
from repeval.pipeline.assemble import TrackAssembler, errors_table, rows_table
from repeval.pipeline.resources import EmbedResources, plan_resources
from repeval.pipeline.stages import CLEAN, DEFAULT_CHUNK_S, DecodeDeform, Embed
from repeval.pipeline.summary import EmbedSummary, Progress
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.store import ERROR_SCHEMA, STORE_FORMAT, embedding_schema, repeval_version

log = logging.getLogger(__name__)

__all__ = ["EmbedSummary", "embed_experiment", "model_chunk_s", "plan_todo"]

#: input rows per Ray Data block: one decode task (and batch) each; small blocks keep the actors fed early
#: and evenly, large ones amortise Ray's per-task and per-batch costs (2,000 clips of 3 s, mfcc-stats, 2 CPUs:
#: 32 rows and embedding batches of 16: 16.5 s; 64 and 32: 15.0 s; 128 and 32: 14.5 s but the first rows
#: 0.7 s later). A decode task's output is cut at ``MAX_BATCH_SAMPLES`` whatever the block size.
MAX_BLOCK_ROWS = 64
#: chunks per embedding call when the model config does not set ``batch_size`` (fewer in a short stream)
DEFAULT_EMBED_BATCH = 32


def model_fingerprint(model_cfg: Any) -> dict[str, Any]:
    fam, params = resolve_model(model_cfg)
    return {"family": fam.name, "params": config_hash(params)}


def scenario_fingerprint(exp: ExperimentConfig, sid: str, ds: Any, run_seed: int) -> dict[str, Any]:
    if sid == CLEAN:
        return {"scenario": CLEAN}
    scen = exp.scenarios_for(ds)[sid]
    return {"scenario": config_hash(scen), "seed": run_seed}


def model_chunk_s(fam: Any, params: dict[str, Any]) -> float | None:
    """The analysis window: ``params.chunk_s``, else the model's declared ``chunk_s``, else 30 s.

    ``None`` or a non-positive value in params means "whole file" (only for models that need it).
    """
    if "chunk_s" in params:
        v = params["chunk_s"]
        return float(v) if v is not None and float(v) > 0 else None
    declared = getattr(fam.cls, "chunk_s", None)
    return float(declared) if declared else DEFAULT_CHUNK_S


def plan_todo(rows: pa.Table, masks: dict[str, np.ndarray]) -> pa.Table:
    """The rows that need work, with a ``scenarios`` column of indices into ``list(masks)``.

    ``masks[sid]`` is a boolean array over ``rows``: the track is wanted in that scenario and not
    in the store yet. Vectorised: no Python object per row.
    """
    sids = list(masks)
    if not sids:
        return rows.slice(0, 0).append_column("scenarios", pa.array([], pa.list_(pa.int16())))
    mat = np.stack([masks[s] for s in sids], axis=1)
    need = mat.any(axis=1)
    todo = rows.filter(pa.array(need))
    sub = mat[need]
    offsets = np.concatenate([[0], np.cumsum(sub.sum(axis=1))]).astype(np.int32)
    values = np.nonzero(sub)[1].astype(np.int16)  # row-major: each row's scenarios in order
    return todo.append_column("scenarios", pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))


def embed_experiment(
    cfg: Config,
    exp: ExperimentConfig,
    rows_by_dataset: dict[str, pa.Table],
    store: EmbeddingStore,
    deformed_only: bool = False,
    progress: bool | None = None,
    retry_errors: bool = False,
    deform_ids: dict[str, pa.Array] | None = None,
) -> EmbedSummary:
    """Embed what the store lacks for one experiment; ``retry_errors`` first deletes the error records of its
    partitions, so tracks that failed before (a file since fixed or replaced) are computed again.

    Tracks in ``run.deform_splits`` are deformed; ``deform_ids[dataset]``, when given, names them instead
    (k folds: a track in the test split of any fold).
    """
    from repeval.ray_utils import cluster_cpus, cluster_gpus

    summary = EmbedSummary()
    run = cfg.run
    t0 = time.perf_counter()
    for ds in exp.datasets:
        rows = rows_by_dataset[ds.name]
        scenarios = exp.scenarios_for(ds)
        ids = rows.column("track_id").combine_chunks()
        if deform_ids is not None and ds.name in deform_ids:
            in_deform = pc.is_in(ids, value_set=deform_ids[ds.name])
        else:
            in_deform = pc.is_in(rows.column("split"), value_set=pa.array(list(run.deform_splits), pa.string()))
        deform_mask = pc.fill_null(in_deform, False).to_numpy(zero_copy_only=False)
        for mcfg in exp.embedding_models:
            fam, params = resolve_model(mcfg)
            sample_rate = int(
                params.get("sample_rate_hz") or getattr(fam.cls, "sample_rate_hz", 0) or run.sample_rate_hz
            )
            chunk_s = model_chunk_s(fam, params)
            masks: dict[str, np.ndarray] = {}
            parts = {}
            provenance = {}
            for sid in ([] if deformed_only else [CLEAN]) + list(scenarios):
                part = store.partition(ds.name, mcfg.id, sid)
                fp = {
                    "model": model_fingerprint(mcfg),
                    **scenario_fingerprint(exp, sid, ds, run.seed),
                    "sample_rate_hz": sample_rate,
                    "chunk_s": chunk_s,
                    "keep_frames": run.keep_frames,
                    "store_format": STORE_FORMAT,
                }
                part.check_compatible(fp)
                if retry_errors:
                    summary.retried += part.clear_errors()
                wanted = np.ones(rows.num_rows, bool) if sid == CLEAN else deform_mask
                done = pc.is_in(ids, value_set=part.done_ids()).to_numpy(zero_copy_only=False)
                missing = wanted & ~done
                summary.skipped += int((wanted & done).sum())
                if not missing.any() and part.complete:
                    continue
                # a partition shared by several tasks (one dataset, other splits) may need more tracks
                part.reopen()
                part.stamp(
                    fp, {"config_hash": config_hash(fp), "model_id": mcfg.id, "repeval_version": repeval_version()}
                )
                parts[sid] = part
                masks[sid] = missing
                provenance[sid] = {
                    "model": mcfg.id,
                    "config_hash": config_hash(fp),
                    "repeval_version": repeval_version(),
                }
            if not parts:
                log.info("%s/%s: all partitions complete", ds.name, mcfg.id)
                continue
            todo = plan_todo(rows, masks)
            versions: dict[str, str] = {}
            if todo.num_rows:
                import ray  # issue 8: custom resources (run.resources.embed_resources) cap the pool

                res = plan_resources(fam.cls, run.resources, cluster_cpus(), cluster_gpus(), ray.cluster_resources())
                summary.resources[mcfg.id] = res.describe()
                log.info("%s/%s: %d tracks to embed; %s", ds.name, mcfg.id, todo.num_rows, res.describe())
                versions = _run_pipeline(
                    cfg,
                    mcfg,
                    sample_rate,
                    chunk_s,
                    todo,
                    scenarios,
                    list(masks),
                    parts,
                    provenance,
                    res,
                    summary,
                    progress,
                    f"{ds.name}/{mcfg.id}",
                )
            for sid, part in parts.items():
                info = {
                    "dataset": ds.name,
                    "model": mcfg.id,
                    "scenario": sid,
                    "task": exp.task.name,
                    "sample_rate_hz": sample_rate,
                    "chunk_s": chunk_s,
                    "keep_frames": run.keep_frames,
                }
                version = versions.get(sid) or _stored_version(part)
                if version:
                    info["model_version"] = version
                part.finish(info)
                summary.partitions_completed.append(part.path)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _stored_version(part: Any) -> str | None:
    import pyarrow.parquet as pq

    m = part.manifest() or {}
    if m.get("model_version"):
        return str(m["model_version"])
    for f in part.part_files()[:1]:
        col = pq.read_table(f, columns=["model_version"], filesystem=part.fs).column(0)
        if len(col):
            return col[0].as_py()
    return None


def _blocks(todo: pa.Table, n_cpus: float) -> list[pa.Table]:
    """Slices of the to-do table, one Ray Data block each (enough blocks to keep every CPU busy)."""
    n = todo.num_rows
    size = max(1, min(MAX_BLOCK_ROWS, math.ceil(n / max(4 * n_cpus, 1))))
    return [todo.slice(i, size) for i in range(0, n, size)]


def _run_pipeline(
    cfg: Config,
    mcfg: Any,
    sample_rate: int,
    chunk_s: float | None,
    todo: pa.Table,
    scenarios: dict[str, Any],
    sids: list[str],
    parts: dict[str, Any],
    provenance: dict[str, dict[str, Any]],
    res: EmbedResources,
    summary: EmbedSummary,
    progress: bool | None,
    label: str,
) -> dict[str, str]:
    import ray.data
    from ray.data import DataContext

    from repeval.ray_utils import cluster_cpus

    if os.environ.get("REPEVAL_RAY_DATA_LOG_LEVEL"):  # set by the CLI (ray.data resets its level on import)
        logging.getLogger("ray.data").setLevel(os.environ["REPEVAL_RAY_DATA_LOG_LEVEL"])

    run = cfg.run
    steps = {sid: [(s.type, dict(s.params)) for s in scen.steps] for sid, scen in scenarios.items() if sid in parts}
    n_expected = int(pc.sum(pc.list_value_length(todo.column("scenarios"))).as_py() or 0)
    # a short stream gets smaller batches: about four per actor, or the last batches leave actors idle
    batch_size = mcfg.batch_size or max(1, min(DEFAULT_EMBED_BATCH, math.ceil(n_expected / (4 * res.n_actors))))
    ctx = DataContext.get_current()
    old_bars = ctx.enable_progress_bars
    # without a terminal Ray Data replaces its bars with a progress log line every few seconds: keep logs clean
    show = progress if progress is not None else (old_bars and sys.stderr.isatty())
    ctx.enable_progress_bars = bool(show)

    inp = todo.select(["track_id", "audio_path", "split", "scenarios"])
    blocks = _blocks(inp, cluster_cpus())
    ds: Any = ray.data.from_arrow(blocks)
    decode = DecodeDeform(sample_rate, steps, run.seed, chunk_s=chunk_s, scenario_ids=sids)
    # a callable instance runs as stateless tasks; the Embed class runs as an actor pool
    # one batch per block: a larger batch_size would make Ray Data bundle several blocks into one task
    ds = ds.map_batches(decode, batch_size=max(b.num_rows for b in blocks), num_cpus=res.decode_num_cpus)
    ds = ds.map_batches(
        Embed,
        fn_constructor_args=(mcfg, run.keep_frames, res.threads),
        batch_format="pyarrow",
        **res.actor_kwargs(batch_size),
    )

    bar = Progress(n_expected, f"write {label}", progress)
    assembler = TrackAssembler(run.keep_frames)
    writers: dict[str, PartitionWriter] = {}
    versions: dict[str, str] = {}
    summary.tracks += todo.num_rows

    def writer(sid: str, dim: int) -> PartitionWriter:
        if sid not in writers:
            writers[sid] = PartitionWriter(parts[sid], embedding_schema(dim, run.keep_frames), run.part_rows)
        return writers[sid]

    t_start = time.perf_counter()
    first = True
    actors: dict[str, Any] = {}
    try:
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            if first:
                summary.startup_s += time.perf_counter() - t_start
                first = False
            for a in _embed_actors(ds):  # an actor restarted or added since the last batch
                actors.setdefault(a._actor_id.hex(), a)
            block, errors = assembler.add(batch)
            now = np.datetime64(int(time.time() * 1000), "ms")
            if len(errors):
                err_sids = np.array(errors.scenario)
                for sid in np.unique(err_sids):
                    sub = _take_errors(errors, np.flatnonzero(err_sids == sid))
                    w = writer(str(sid), batch["embedding"].shape[1])
                    w.add_errors(errors_table(sub, ERROR_SCHEMA, {**provenance[str(sid)], "created_at": now}))
                summary.errors += len(errors)
                summary.errors_by_stage.update(errors.stage)
            if block is not None:
                for sid in np.unique(block.scenario):
                    sid = str(sid)
                    sub = block.take(np.flatnonzero(block.scenario == sid))
                    w = writer(sid, sub.embedding.shape[1])
                    w.add_table(rows_table(sub, w.schema, {**provenance[sid], "created_at": now}))
                    versions.setdefault(sid, str(sub.model_version[0]))
                    summary.rows_by_scenario[sid] += len(sub)
                summary.computed += len(block)
                summary.audio_seconds += float(block.audio_seconds.sum())
            bar.update((len(block) if block is not None else 0) + len(errors))
        summary.operators = _operators(ds)
        if os.environ.get("REPEVAL_DATA_STATS") == "1":  # Ray Data's per-operator timing breakdown
            log.warning("%s", ds.stats())
    except BaseException:
        for a in _embed_actors(ds):  # those still in the pool, if Ray Data has not released them yet
            actors.setdefault(a._actor_id.hex(), a)
        _release_actors(actors)
        raise
    finally:
        # everything finished so far is kept, even when the stream fails part-way
        summary.abandoned += assembler.abandon()
        for w in writers.values():
            w.flush()
        bar.close()
        ctx.enable_progress_bars = old_bars
        summary.stream_s += time.perf_counter() - t_start
    return versions


def _embed_actors(ds: Any) -> list[Any]:
    """Handles of the stream's embedding actors (running and starting), read from Ray Data's executor.

    Private in Ray 2.60 (pinned); :func:`_release_actors` needs them because Ray Data releases a failed
    stream's actors by dropping its handles, and the exception's traceback keeps those alive for as long
    as the caller holds it (a notebook, a retry loop): the idle actors would keep their CPUs and the
    next stream would wait for them forever. Returns ``[]`` when the layout is not as expected.
    """
    executor = getattr(ds, "_current_executor", None)
    topology = getattr(executor, "_topology", None) or {}
    found = []
    for op in list(topology):
        pool = getattr(op, "_actor_pool", None)
        if pool is not None:
            found += list(getattr(pool, "_running_actors", {}))
            found += list(getattr(pool, "_pending_actors", {}).values())
    return found


def _release_actors(actors: dict[str, Any]) -> None:
    """Kill a failed stream's embedding actors now (see :func:`_embed_actors`)."""
    import ray

    for actor in actors.values():
        try:
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # best effort: the original error is what the caller needs
            log.debug("could not kill an embedding actor of the failed stream: %s", exc)


def _take_errors(errors: Any, idx: np.ndarray) -> Any:
    from repeval.pipeline.assemble import ErrorBlock

    out = ErrorBlock()
    for i in idx:
        out.add(errors.track_id[i], errors.split[i], errors.scenario[i], errors.stage[i], errors.reason[i])
    return out


def _operators(ds: Any) -> list[str]:
    """Operator names of the executed plan, e.g. ``['MapBatches(DecodeDeform)', 'MapBatches(Embed)']``."""
    try:
        text = ds.stats()
    except Exception:
        return []
    return re.findall(r"^Operator \d+ (.+?): ", text, flags=re.M)
