"""The embedding stage: for each embedding model, stream the tracks that still need work — from every dataset
and experiment of the run that uses the model — through Ray Data and write them into the store, one partition
per (dataset, scenario) (``clean``, D1, ...). One stream per model means one actor pool: the weights are loaded
once per actor for the whole run, not once per dataset (a stream's start-up — worker processes, framework
imports, weights — is seconds on a small machine, paid once per model instead of once per dataset × model).

Only the splits in ``run.deform_splits`` (default: test) are deformed — probes are trained on
clean audio and tested on clean and deformed audio. Each track is decoded once, whatever the
number of scenarios it needs.

Stream: :class:`~repeval.pipeline.source.TodoSource` (blocks of the to-do table, read inside the decode
tasks) → ``DecodeDeform`` tasks (decode block-wise,
chunk to the model's window, deform) → ``Embed`` actor pool (one per model; resources from
:mod:`repeval.pipeline.resources`) → driver: reassemble chunks, write atomic part files. A light
model (handcrafted features) runs inside the decode tasks instead (``DecodeEmbed``; see
``run.resources.embed_in_decode``). Nothing
is materialised; the driver never builds a Python object per catalog row to plan the work (the
to-do set is computed with Arrow kernels against the ids already in the store)."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets import spill
from repeval.datasets.spill import TableSpool
from repeval.deformations import scenario_steps, validate_steps_at
from repeval.models import resolve_model
from repeval.pipeline.assemble import TrackAssembler, errors_table, rows_table
from repeval.pipeline.partitions import (  # noqa: F401  (model_chunk_s and the fingerprints: imported from here)
    ModelSpec,
    accepted_spec,
    changed_source,
    model_chunk_s,
    model_fingerprint,
    model_geometry,
    run_sources,
    scenario_fingerprint,
    source_note,
    wanted_masks,
)
from repeval.pipeline.resources import EmbedResources, plan_resources
from repeval.pipeline.stages import (
    CLEAN,
    MAX_BATCH_SAMPLES,
    DecodeDeform,
    DecodeEmbed,
    Embed,
    KeepFrames,
    model_config_for_build,
)
from repeval.pipeline.summary import EmbedSummary, Progress
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.store import ERROR_SCHEMA, embedding_schema, repeval_version
from repeval.warn import warn_once

log = logging.getLogger(__name__)

__all__ = ["EmbedSummary", "embed_experiment", "embed_experiments", "model_chunk_s", "plan_todo", "stream_resources"]

#: input rows per Ray Data block: one decode task (and batch) each; small blocks keep the actors fed early
#: and evenly, large ones amortise Ray's per-task and per-batch costs (2,000 clips of 3 s, mfcc-stats, 2 CPUs:
#: 32 rows and embedding batches of 16: 16.5 s; 64 and 32: 15.0 s; 128 and 32: 14.5 s but the first rows
#: 0.7 s later). A decode task's output is cut at ``MAX_BATCH_SAMPLES`` whatever the block size
#: (:data:`STREAM_BLOCK_BYTES`).
MAX_BLOCK_ROWS = 64
#: the same when a light model runs inside the decode tasks (nothing goes to an actor, so nothing waits for the
#: first block): Ray Data notices a finished task on a 0.1 s tick and starts the next one a few tenths of a second
#: later, so tasks must last longer than that (2,000 clips of 3 s, mfcc-stats, 2 CPUs, execution only: 64-row
#: tasks of ~0.25 s ran about one at a time, 9.1–9.3 s; 250-row tasks of ~1 s, 7.4 s)
FUSED_MAX_BLOCK_ROWS = 256
#: at most this many blocks per stream: each costs the driver ~2 ms to hand to Ray Data before the first task
#: starts (a put of its read task and Ray Data's bookkeeping; 2 CPUs: 10,000 blocks, 19 s) and a few KB while the
#: stream runs, so a catalog of millions gets larger blocks instead (1,000,000 tracks: 245 rows each, a task of
#: tens of seconds against Ray Data's ~15 ms per task), still dozens per CPU on a large cluster
MAX_STREAM_BLOCKS = 4096
#: chunks per embedding call when the model config does not set ``batch_size`` (fewer in a short stream)
DEFAULT_EMBED_BATCH = 32
#: Ray Data's target block size while a stream runs (``DataContext.target_max_block_size``, 128 MiB by default): a
#: decode task's output batches (``MAX_BATCH_SAMPLES`` float32 samples each) are each a block of their own, so an
#: embedding actor gets at most ~4 M samples of audio per call. Ray Data otherwise buffers a task's batches into one
#: block of up to 128 MiB — six 3-minute tracks at 16 kHz, ~13 s of MusiCNN per actor call, nothing written until
#: it ends and the last calls on one actor while the other idles (40 such tracks, 2 CPUs: 87.7 s against the
#: model's 54.4 s; short clips fill a block with fewer samples than this and are unchanged)
STREAM_BLOCK_BYTES = MAX_BATCH_SAMPLES * 4


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
    """Embed what the store lacks for one experiment (see :func:`embed_experiments`)."""
    return embed_experiments(cfg, [(exp, rows_by_dataset, deform_ids)], store, deformed_only, progress, retry_errors)


#: one experiment's work: the experiment, its rows per dataset, and (k folds) the tracks to deform per dataset
Work = tuple[ExperimentConfig, dict[str, pa.Table], dict[str, pa.Array] | None]


@dataclass
class _Stream:
    """One model's stream: every (dataset, scenario) partition of every experiment that needs it.

    A partition's routing key is ``dataset<US>scenario`` (US, the unit separator, cannot occur in a name
    read from YAML): decode, deformation seeds and the store see the plain scenario id; the key only keeps
    two datasets' tracks (whose ids may coincide) apart between decode and the writers."""

    mcfg: Any
    sample_rate: int
    chunk_s: float | None
    keys: list[str] = field(default_factory=list)
    sids: dict[str, str] = field(default_factory=dict)
    #: the partition keys whose rows keep frame-level embeddings (:meth:`repeval.config.Config.keeps_frames`)
    frames: set[str] = field(default_factory=set)
    steps: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    planned: dict[str, pa.Array] = field(default_factory=dict)
    #: partition keys whose stored tracks the summary has counted
    examined: set[str] = field(default_factory=set)
    todo: TableSpool | None = None  # the to-do rows of every (experiment, dataset), spilled past PARTITION_ROWS
    labels: list[str] = field(default_factory=list)
    #: dataset → (its rows' columns, partition key → missing tracks) planned but not yet spooled: the experiments
    #: that share a dataset (whatever their rows: :func:`merge_todo`) merge their masks here, so a track one task
    #: wants clean and another deformed (other scenarios, ``augment``) is decoded once, in one to-do row
    pending: dict[str, tuple[pa.Table, dict[str, np.ndarray]]] = field(default_factory=dict)

    def add_todo(self, piece: pa.Table) -> None:
        if self.todo is None:
            self.todo = TableSpool(piece.schema)
        elif piece.schema != self.todo.schema:
            piece = piece.cast(self.todo.schema)
        for batch in piece.to_batches():
            self.todo.write(batch)


def _stream_batch_size(current: Any, other: Any) -> Any:
    """The model config a shared stream runs with when two experiments set the model's ``batch_size``: a set
    value beats none, and of two the smaller (the one that fits the tighter memory) — announced, not silent."""
    a, b = current.batch_size, other.batch_size
    if b is None or a == b:
        return current
    use = b if a is None else min(a, b)
    if a is not None:
        log.warning("%s: experiments set batch_size %d and %d; its one stream uses %d", current.id, a, b, use)
    return current if use == a else current.model_copy(update={"batch_size": use})


KEY_SEP = "\x1f"


def stream_key(dataset: str, sid: str) -> str:
    return f"{dataset}{KEY_SEP}{sid}"


def embed_experiments(
    cfg: Config,
    work: Sequence[Work],
    store: EmbeddingStore,
    deformed_only: bool = False,
    progress: bool | None = None,
    retry_errors: bool = False,
    sources: dict[str, list[dict[str, Any]]] | None = None,
) -> EmbedSummary:
    """Embed what the store lacks for a run's experiments: one stream (one actor pool, weights loaded once per
    actor) per embedding model, however many datasets and experiments use it.

    ``retry_errors`` first deletes the error records of the partitions, so tracks that failed before (a file
    since fixed or replaced) are computed again. Tracks in ``run.deform_splits`` are deformed; a work item's
    ``deform_ids[dataset]``, when given, names them instead (k folds: a track in the test split of any fold).
    A partition two experiments share (one dataset, two tasks) is planned once: a track is embedded once.
    ``sources``: where each dataset takes its audio from (:func:`~repeval.pipeline.partitions.run_sources`, with
    what its loader found of the audio files); by default from the configuration alone.
    """
    summary = EmbedSummary(store_uri=store.uri)
    t0 = time.perf_counter()
    streams: dict[str, _Stream] = {}
    uses: dict[str, int] = {}
    for exp, _, _ in work:
        for ds in exp.datasets:
            uses[ds.name] = uses.get(ds.name, 0) + 1
    check_scenarios_at_model_rates(cfg, [exp for exp, _, _ in work])
    if sources is None:
        sources = run_sources((ds, None) for exp, _, _ in work for ds in exp.datasets)
    for exp, rows_by_dataset, deform_ids in work:
        for ds in exp.datasets:
            _plan_dataset(cfg, exp, ds, rows_by_dataset[ds.name], deform_ids, store, streams, summary,
                          deformed_only, retry_errors, shared=uses[ds.name] > 1, sources=sources[ds.name])  # fmt: skip
    # every model with tracks to embed, checked where its actors will run before any stream starts
    check_models_on_nodes(cfg, [st.mcfg for st in streams.values() if _has_work(st)])
    for st in streams.values():
        for dataset, (cols, masks) in st.pending.items():
            _spool_todo(st, dataset, cols, masks)
        st.pending.clear()
        _run_stream(cfg, st, store, summary, progress)
    summary.wall_s = time.perf_counter() - t0
    return summary


def check_scenarios_at_model_rates(cfg: Config, experiments: Sequence[ExperimentConfig]) -> None:
    """Every deformation scenario tried at the rate of each model that hears it, before the store is touched: the
    configuration was validated at 44.1 kHz, and a filter frequency above a 16 kHz model's Nyquist frequency (or a
    step that makes NaN at that rate) would leave the deformation undone or make every deformed track an error."""
    checked: set[tuple[str, int]] = set()
    for exp in experiments:
        for ds in exp.datasets:
            scenarios = exp.scenarios_for(ds)
            if not scenarios:
                continue
            for mcfg in exp.embedding_models:
                rate = ModelSpec.of(cfg, mcfg).sample_rate_hz
                for sid, sc in scenarios.items():
                    steps = scenario_steps(sc)
                    seen = (json.dumps([sid, steps], sort_keys=True, default=str), rate)
                    if seen in checked:
                        continue
                    checked.add(seen)
                    try:
                        validate_steps_at(sid, steps, rate)
                    except ValueError as exc:
                        raise ValueError(f"{exc} (embedding model {mcfg.id} hears audio at {rate} Hz)") from None


def _plan_dataset(
    cfg: Config,
    exp: ExperimentConfig,
    ds: Any,
    rows: pa.Table,
    deform_ids: dict[str, pa.Array] | None,
    store: EmbeddingStore,
    streams: dict[str, _Stream],
    summary: EmbedSummary,
    deformed_only: bool,
    retry_errors: bool,
    shared: bool = True,
    sources: list[dict[str, Any]] | None = None,
) -> None:
    """Add one (experiment, dataset)'s missing tracks to each model's stream. ``shared``: another experiment
    of the run uses the dataset too, so the ids planned here are kept for its turn (a track is embedded once);
    otherwise they are not kept (a copy of the wanted ids per scenario: ~12 MB per million tracks). ``sources``:
    where the run's definitions of the dataset take its audio from, recorded in the partitions it computes or
    reuses; reused rows computed from audio elsewhere are said once per dataset and model (not recomputed)."""
    scenarios = exp.scenarios_for(ds)
    ids = rows.column("track_id").combine_chunks()
    wanted_in = wanted_masks(cfg, exp, ds, rows, deform_ids)
    for mcfg in exp.embedding_models:
        spec = ModelSpec.of(cfg, mcfg)
        sample_rate, chunk_s = spec.sample_rate_hz, spec.chunk_s
        name = config_hash({"model": mcfg.id, **spec.fingerprint, "sample_rate_hz": sample_rate, "chunk_s": chunk_s})
        st = streams.setdefault(name, _Stream(mcfg, sample_rate, chunk_s))
        st.mcfg = _stream_batch_size(st.mcfg, mcfg)
        masks: dict[str, np.ndarray] = {}
        moved: dict[str, tuple[Any, int]] = {}  # scenario → (the sources its reused rows were computed from, tracks)
        for sid in ([] if deformed_only else [CLEAN]) + list(scenarios):
            key = stream_key(ds.name, sid)
            part = store.partition(ds.name, mcfg.id, sid)
            pspec = accepted_spec(part, spec.partition(cfg, exp, ds, sid))  # stored with frames: completed with them
            fp = pspec.fingerprint
            if retry_errors and key not in st.parts:
                summary.retried += part.clear_errors()
            wanted = wanted_in[sid]
            done = pc.is_in(ids, value_set=part.done_ids()).to_numpy(zero_copy_only=False)
            if key not in st.examined:  # tracks in the store, counted once per partition however many tasks use it
                reused = int((wanted & done).sum())
                summary.skipped += reused
                recorded = changed_source(part, sources) if reused and sources else None
                if recorded is not None:
                    moved[sid] = (recorded, reused)
                _count_earlier_errors(part, ids, wanted, summary)
                st.examined.add(key)
            if key in st.planned:  # another experiment's share of this partition already holds these tracks
                done |= pc.is_in(ids, value_set=st.planned[key]).to_numpy(zero_copy_only=False)
            missing = wanted & ~done
            if not missing.any() and (part.complete or key in st.parts):
                if key not in st.parts:  # complete; accepted under a stamp from before WINDOWING_ENTRIES: say so once
                    part.restamp(fp, {"config_hash": config_hash(fp)})
                    if sid in moved:  # reused from another source: said once below, then recorded (not again)
                        part.add_sources(sources or [])
                continue
            if key not in st.parts:
                # a partition shared by several tasks (one dataset, other splits) may need more tracks
                part.reopen()
                part.stamp(
                    fp,
                    {"config_hash": config_hash(fp), "model_id": mcfg.id, "repeval_version": repeval_version()},
                    described=pspec.described,
                    sources=sources,
                )
                st.keys.append(key)
                st.sids[key] = sid
                st.parts[key] = part
                if pspec.frames:
                    st.frames.add(key)
                st.provenance[key] = {
                    "model": mcfg.id,
                    "config_hash": config_hash(fp),
                    "repeval_version": repeval_version(),
                }
                st.info[key] = {
                    "dataset": ds.name,
                    "model": mcfg.id,
                    "scenario": sid,
                    "task": exp.task.name,
                    "sample_rate_hz": sample_rate,
                    "chunk_s": spec.window_s,  # the windows used (a chunk_s below the model's shortest: raised)
                    "keep_frames": pspec.frames,
                }
                if sid != CLEAN:
                    st.steps[key] = scenario_steps(scenarios[sid])
            if shared:
                new_ids = ids.filter(pa.array(missing))
                st.planned[key] = pa.concat_arrays([st.planned[key], new_ids]) if key in st.planned else new_ids
            masks[key] = missing
        if moved:
            note = source_note(store.uri, ds.name, mcfg.id, moved, sources)
            warn_once(
                log,
                ("source", store.uri, ds.name, mcfg.id, json.dumps([moved, sources], sort_keys=True, default=str)),
                "%s",
                note,
            )
        if not masks:
            if not any(info["dataset"] == ds.name for info in st.info.values()):  # not planned by another task
                log.info("%s/%s: all partitions complete", ds.name, mcfg.id)
            continue
        cols = rows.select(["track_id", "audio_path", "split"])  # only the columns a stream reads
        pending = st.pending.get(ds.name)
        if pending is not None and pending[0].column("track_id").equals(cols.column("track_id")):
            for key, m in masks.items():  # the same rows: one to-do row per track for both experiments
                pending[1][key] = pending[1][key] | m if key in pending[1] else m
            continue
        # other rows under the same dataset name (another task's subset, order or cap): one to-do row per track
        st.pending[ds.name] = (cols, masks) if pending is None else merge_todo(*pending, cols, masks)


def merge_todo(
    a: pa.Table, a_masks: dict[str, np.ndarray], b: pa.Table, b_masks: dict[str, np.ndarray]
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Two experiments' planned rows of one dataset as one set: a track in both (same id, same audio file) is one
    row wanting the union of its scenarios — decoded once — and ``b``'s other tracks follow ``a``'s rows. A track
    whose audio file differs between the two keeps a row of its own. Arrow kernels, no Python object per row."""
    at = pc.index_in(b.column("track_id").combine_chunks(), value_set=a.column("track_id").combine_chunks())
    pos = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    found = pos >= 0
    if found.any():  # the same file too (a name shared by two definitions of a dataset keeps both files)
        a_paths = a.column("audio_path").take(pa.array(pos[found]))
        same = pc.equal(a_paths, b.column("audio_path").combine_chunks().filter(pa.array(found)))
        found[found] = pc.fill_null(same, False).to_numpy(zero_copy_only=False)
    rest = ~found
    if b.schema != a.schema:
        b = b.cast(a.schema)
    merged = pa.concat_tables([a, b.filter(pa.array(rest))]) if rest.any() else a
    n_a, n_rest = a.num_rows, int(rest.sum())
    masks: dict[str, np.ndarray] = {}
    for key in {**a_masks, **b_masks}:
        m = np.zeros(n_a + n_rest, bool)
        if key in a_masks:
            m[:n_a] = a_masks[key]
        if key in b_masks:
            mb = b_masks[key]
            m[pos[found & mb]] = True  # duplicates set the same flag: no read-modify-write race
            m[n_a:] = mb[rest]
        masks[key] = m
    return merged, masks


def _spool_todo(st: _Stream, dataset: str, cols: pa.Table, masks: dict[str, np.ndarray]) -> None:
    """Write a dataset's planned to-do rows into the stream's spool, :data:`spill.PARTITION_ROWS` rows at a time (a
    catalog's to-do is not held), each row's scenario indices shifted to the stream's partition keys."""
    local = np.array([st.keys.index(k) for k in masks], np.int16)
    n_todo = 0
    step = spill.PARTITION_ROWS
    for start in range(0, cols.num_rows, step):
        todo = plan_todo(cols.slice(start, step), {k: m[start : start + step] for k, m in masks.items()})
        if not todo.num_rows:
            continue
        col = todo.column("scenarios").combine_chunks()
        values = local[col.values.to_numpy(zero_copy_only=False)] if len(col.values) else np.zeros(0, np.int16)
        shifted = pa.ListArray.from_arrays(col.offsets, pa.array(values, pa.int16()))
        st.add_todo(todo.set_column(todo.schema.get_field_index("scenarios"), "scenarios", shifted))
        n_todo += todo.num_rows
    if n_todo:
        st.labels.append(f"{dataset} {n_todo}")


def stream_resources(mcfg: Any, resources: Any) -> EmbedResources:
    """What a stream of model ``mcfg`` requests from the running Ray under ``run.resources``."""
    import ray  # issue 8: custom resources (run.resources.embed_resources) cap the pool

    from repeval.ray_utils import cluster_cpus, cluster_gpus

    fam, _ = resolve_model(mcfg)
    return plan_resources(fam.cls, resources, cluster_cpus(), cluster_gpus(), ray.cluster_resources())


#: how long the check of the models on each node may take (a node busy starting workers): past it, its actors check
PREFLIGHT_TIMEOUT_S = 120.0


def _has_work(st: _Stream) -> bool:
    return any(bool(m.any()) for _, masks in st.pending.values() for m in masks.values())


def unavailable_here(mcfgs: list[Any]) -> dict[str, str]:
    """Model id -> why this process cannot build it (what :func:`repeval.models.build_model` refuses), for those."""
    out = {}
    for mcfg in mcfgs:
        try:
            fam, params = resolve_model(model_config_for_build(mcfg))
            reason = fam.cls.availability(params)
        except Exception as exc:  # a broken install (a package that imports but fails): a reason, not a crash
            reason = f"checking it failed with {_first_line(exc)} — {REINSTALL_FIX}"
        if reason:
            out[mcfg.id] = reason
    return out


#: what to do when checking a model fails on a node (a broken or missing install rather than a missing extra)
REINSTALL_FIX = (
    "install the same repeval version, with the extras its models need, on every node (`pip install "
    "'repeval[models]'`; on a cluster, in the image or runtime_env its workers use)"
)


def _first_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, its first line (a Ray task's error: the exception raised in the task)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # RayTaskError: what the task raised
        exc = cause
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (f": {text[0]}" if text else "")


@dataclass
class NodeCheck:
    """What :func:`models_on_nodes` found: ``problems`` maps ``(model id, reason)`` to the addresses of the nodes
    that cannot run it; ``checked`` the addresses of the nodes that answered; ``single`` whether the cluster has
    one live node (the machine the driver runs on); ``unplaced`` the models no live node has the resources for
    (they are checked on the nodes the autoscaler adds, at their actors' start)."""

    problems: dict[tuple[str, str], list[str]]
    checked: list[str]
    single: bool
    unplaced: list[str]


def unavailable_lines(problems: dict[tuple[str, str], list[str]], here: bool) -> list[str]:
    """``embedding model '<id>' cannot run here|on node(s) <addresses>: <reason>``, one per problem (as
    :class:`NodeCheck` holds them), sorted; ``here``: the problems of the machine this process runs on."""
    return [
        f"embedding model '{model_id}' cannot run "
        + ("here" if here else f"on node{'s' * (len(ips) > 1)} {', '.join(sorted(ips))}")
        + f": {reason}"
        for (model_id, reason), ips in sorted(problems.items())
    ]


def models_on_nodes(cfg: Config, mcfgs: list[Any]) -> NodeCheck:
    """Check every model in ``mcfgs`` on every live node its embedding actors (or decode tasks) may go to — by a
    task on each node, since a cluster's nodes need not have the driver's packages or weights; the driver's node
    answers in this process. A node that went away or is too busy to answer is left out (logged): its actors
    check at their start, as do those of the nodes the autoscaler adds later."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    wanted: dict[str, list[Any]] = {}
    unplaced = []
    for mcfg in mcfgs:
        res = stream_resources(mcfg, cfg.run.resources)
        needs = {"CPU": 1e-9, **({"GPU": 1e-9} if res.num_gpus else {}), **res.resources}
        placed = False
        for node in nodes:
            have = node.get("Resources", {})
            if all(have.get(k, 0.0) >= v for k, v in needs.items()):
                wanted.setdefault(node["NodeID"], []).append(mcfg)
                placed = True
        if not placed:
            unplaced.append(mcfg.id)
    # the driver's node answers in this process (its workers run this Python): a single machine starts no task for it
    here = ray.get_runtime_context().get_node_id()
    check = ray.remote(num_cpus=0)(unavailable_here)
    refs = {
        nid: check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nid, soft=False)).remote(models)
        for nid, models in wanted.items()
        if nid != here
    }
    where = {n["NodeID"]: n.get("NodeManagerAddress", n["NodeID"]) for n in nodes}
    problems: dict[tuple[str, str], list[str]] = {}
    checked = []
    if here in wanted:
        checked.append(where[here])
        for model_id, reason in unavailable_here(wanted[here]).items():
            problems.setdefault((model_id, reason), []).append(where[here])
    for nid, ref in refs.items():
        found = node_answer(ref, [m.id for m in wanted[nid]], where[nid])
        if found is None:
            continue
        checked.append(where[nid])
        for model_id, reason in found.items():
            problems.setdefault((model_id, reason), []).append(where[nid])
    return NodeCheck(problems, checked, len(nodes) == 1, unplaced)


def node_answer(ref: Any, model_ids: list[str], node: str) -> dict[str, str] | None:
    """What the check task ``ref`` on ``node`` found (model id -> reason, as :func:`unavailable_here`); when the
    task itself failed there — repeval or a package it imports missing or broken on that node — that failure as the
    reason of each of ``model_ids``; ``None`` (logged) when the node went away or was too busy to answer (its
    actors check at their start)."""
    import ray

    try:
        found: dict[str, str] = ray.get(ref, timeout=PREFLIGHT_TIMEOUT_S)
    except ray.exceptions.RayTaskError as exc:
        reason = f"checking its models failed there with {_first_line(exc)} — {REINSTALL_FIX}"
        return dict.fromkeys(model_ids, reason)
    except ray.exceptions.RayError as exc:
        log.warning("could not check the embedding models on node %s (%s)", node, exc)
        return None
    return found


def check_models_on_nodes(cfg: Config, mcfgs: list[Any]) -> None:
    """Raise :class:`~repeval.models.ModelUnavailable` (the reason names the fix) unless every model in ``mcfgs``
    can run on every live node its embedding actors (or decode tasks) may go to (:func:`models_on_nodes`); before
    any stream has embedded a track. Nodes the autoscaler adds later check at their actors' start."""
    from repeval.models import ModelUnavailable

    found = models_on_nodes(cfg, mcfgs)
    if found.problems:
        raise ModelUnavailable("; ".join(unavailable_lines(found.problems, here=found.single)))


def _run_stream(cfg: Config, st: _Stream, store: EmbeddingStore, summary: EmbedSummary, progress: bool | None) -> None:
    """Run one model's stream (if it has tracks to embed), then mark its partitions complete."""
    mcfg = st.mcfg
    versions: dict[str, str] = {}
    if st.todo is not None:
        todo = st.todo.table()
        st.todo = None
        res = stream_resources(mcfg, cfg.run.resources)
        datasets = sorted({st.info[k]["dataset"] for k in st.keys})
        label = f"{datasets[0]}/{mcfg.id}" if len(datasets) == 1 else f"{mcfg.id} ({len(datasets)} datasets)"
        log.info("%s: %d tracks to embed (%s); %s", label, todo.num_rows, ", ".join(st.labels), res.describe())
        versions = _run_pipeline(cfg, st, todo, res, summary, progress, label)
    for key, part in st.parts.items():
        info = dict(st.info[key])
        version = versions.get(key) or _stored_version(part)
        if version:
            info["model_version"] = version
        part.finish(info)
        summary.partitions_completed.append(part.path)


def _count_earlier_errors(part: Any, ids: pa.Array, wanted: np.ndarray, summary: EmbedSummary) -> None:
    """Count the tracks of ``ids`` this run wants (``wanted``) that hold an error record from an earlier run of
    ``part`` (they are not computed again, nor evaluated)."""
    failed = part.error_ids()
    if not len(failed):
        return
    n = int((wanted & pc.is_in(ids, value_set=failed).to_numpy(zero_copy_only=False)).sum())
    if n:
        summary.earlier_errors[part.name] += n


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


def block_rows(n_rows: int, n_cpus: float, max_rows: int = MAX_BLOCK_ROWS) -> int:
    """Rows per Ray Data block (one decode task each): at most ``max_rows``, and at least four blocks per CPU, so
    the last tasks do not leave CPUs idle — but never more than ``MAX_STREAM_BLOCKS`` blocks (larger blocks then)."""
    size = max(1, min(max_rows, math.ceil(n_rows / max(4 * n_cpus, 1))))
    return max(size, math.ceil(n_rows / MAX_STREAM_BLOCKS))


def stream_settings(ds: Any, progress: bool | None) -> Any:
    """``ds`` with a stream's Ray Data settings, on its own context (the copy of ``DataContext.get_current()`` Ray
    Data took when the dataset was made, shared by the datasets derived from it — the process' context, which a
    user's own Ray Data work in the same process reads, is left as it is): progress bars (``progress``; by default
    on a terminal only — without one Ray Data logs a progress line every few seconds instead) and blocks of at most
    :data:`STREAM_BLOCK_BYTES` (each decode batch a block of its own)."""
    ctx = ds.context
    ctx.enable_progress_bars = bool(
        progress if progress is not None else (ctx.enable_progress_bars and sys.stderr.isatty())
    )
    if ctx.target_max_block_size is None or ctx.target_max_block_size > STREAM_BLOCK_BYTES:
        ctx.target_max_block_size = STREAM_BLOCK_BYTES
    return ds


def _run_pipeline(
    cfg: Config,
    st: _Stream,
    todo: pa.Table,
    res: EmbedResources,
    summary: EmbedSummary,
    progress: bool | None,
    label: str,
) -> dict[str, str]:
    from repeval.pipeline.source import read_todo
    from repeval.ray_utils import cluster_cpus, prompt_stream_limits

    prompt_stream_limits()  # parallel tasks from the stream's start, not 1–2 s into it
    if os.environ.get("REPEVAL_RAY_DATA_LOG_LEVEL"):  # set by the CLI (ray.data resets its level on import)
        logging.getLogger("ray.data").setLevel(os.environ["REPEVAL_RAY_DATA_LOG_LEVEL"])

    run = cfg.run
    mcfg, parts, provenance, sids = st.mcfg, st.parts, st.provenance, st.sids
    n_expected = int(pc.sum(pc.list_value_length(todo.column("scenarios"))).as_py() or 0)
    if res.fused:  # the model runs in the decode tasks, in calls of batch_size chunks like an actor's
        batch_size = mcfg.batch_size or DEFAULT_EMBED_BATCH
    else:  # a short stream gets smaller batches: about four per actor, or the last batches leave actors idle
        batch_size = mcfg.batch_size or max(1, min(DEFAULT_EMBED_BATCH, math.ceil(n_expected / (4 * res.n_actors))))
    summary.resources[mcfg.id] = f"{res.describe()}; {batch_size} chunks per embedding call"
    n_cpus = cluster_cpus()
    summary.model_processes[mcfg.id] = res.n_actors or res.decode_tasks or max(1, int(n_cpus))
    inp = todo.select(["track_id", "audio_path", "split", "scenarios"])
    rows = block_rows(inp.num_rows, n_cpus, FUSED_MAX_BLOCK_ROWS if res.fused else MAX_BLOCK_ROWS)
    # the read runs with the decode stage's arguments, so it fuses into it: one task per block
    decode_kw = res.decode_kwargs(n_blocks=math.ceil(inp.num_rows / rows))  # the read's blocks (block_slices)
    ds: Any = stream_settings(read_todo(inp, rows, **decode_kw), progress)
    decode = DecodeDeform(
        st.sample_rate,
        st.steps,
        run.seed,
        chunk_s=st.chunk_s,
        scenario_ids=st.keys,
        seed_ids=sids,
        whole_track_max_s=run.deform_whole_track_max_s,
        geometry=model_geometry(*resolve_model(mcfg)),
    )
    # the models keep the frames of these partitions' chunks only: all (True) or none (False) when so, the setting
    # a worker's model is built under by repeval before this stream (a benchmark's warm-up) and kept for it
    keep = frozenset(st.frames)
    frames: KeepFrames = bool(keep) if keep in (frozenset(), frozenset(st.keys)) else keep
    # a callable instance runs as stateless tasks; the Embed class runs as an actor pool. One batch per block
    # (batch_size=None): a batch size would make Ray Data bundle blocks into tasks and keep the read unfused
    if res.fused:  # decoded and embedded in the same task (a light model, or run.resources.embed_in_decode: always)
        fused = DecodeEmbed(decode, mcfg, frames, res.threads, batch_size)
        ds = ds.map_batches(fused, batch_size=None, **decode_kw)
    else:
        ds = ds.map_batches(decode, batch_size=None, **decode_kw)
        ds = ds.map_batches(
            Embed,
            fn_constructor_args=(mcfg, frames, res.threads, st.sample_rate),
            batch_format="pyarrow",
            **res.actor_kwargs(batch_size),
        )

    bar = Progress(n_expected, f"write {label}", progress)
    assembler = TrackAssembler(bool(frames))
    writers: dict[str, PartitionWriter] = {}
    versions: dict[str, str] = {}
    summary.tracks += todo.num_rows

    def writer(key: str, dim: int) -> PartitionWriter:
        if key not in writers:
            writers[key] = PartitionWriter(parts[key], embedding_schema(dim, key in keep), run.part_rows)
        return writers[key]

    summary.streams += 1
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
                err_keys = np.array(errors.scenario)
                for key in np.unique(err_keys):
                    key = str(key)
                    sub = _take_errors(errors, np.flatnonzero(err_keys == key), sids[key])
                    w = writer(key, batch["embedding"].shape[1])
                    w.add_errors(errors_table(sub, ERROR_SCHEMA, {**provenance[key], "created_at": now}))
                    summary.add_failures(parts[key].name, sub.track_id, sub.stage, sub.reason)
                summary.errors += len(errors)
                summary.errors_by_stage.update(errors.stage)
            if block is not None:
                for key in np.unique(block.scenario):
                    key = str(key)
                    sub = block.take(np.flatnonzero(block.scenario == key))
                    sub = dataclasses.replace(sub, scenario=np.full(len(sub), sids[key], dtype=object))
                    w = writer(key, sub.embedding.shape[1])
                    w.add_table(rows_table(sub, w.schema, {**provenance[key], "created_at": now}))
                    versions.setdefault(key, str(sub.model_version[0]))
                    summary.rows_by_scenario[sids[key]] += len(sub)
                summary.computed += len(block)
                summary.audio_seconds += float(block.audio_seconds.sum())
            bar.update((len(block) if block is not None else 0) + len(errors))
        summary.operators = _operators(ds)
        if os.environ.get("REPEVAL_DATA_STATS") == "1":  # Ray Data's per-operator timing breakdown
            log.warning("%s", ds.stats())
    except BaseException as exc:
        for a in _embed_actors(ds):  # those still in the pool, if Ray Data has not released them yet
            actors.setdefault(a._actor_id.hex(), a)
        _stop_stream(ds, exc)
        _release_actors(actors)
        raise
    finally:
        # everything finished so far is kept, even when the stream fails part-way
        summary.abandoned += assembler.abandon()
        for w in writers.values():
            w.flush()
        bar.close()
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


#: how long a broken-off stream's scheduling thread is waited for (Ray Data itself waits 2 s)
STREAM_STOP_S = 30.0


def _stop_stream(ds: Any, exc: BaseException) -> None:
    """Stop a broken-off stream's executor (Ctrl-C, SIGTERM, a write error) and wait for its scheduling thread.

    Ray Data stops the executor when the loop over its batches ends, but waits only 2 s for the thread's current
    scheduling step: on a loaded machine (a Ctrl-C reaches Ray's workers too) a step outlasted that, the command
    printed "interrupted", and at exit ``ray.shutdown`` pulled Ray out from under the thread, which printed a
    ``RaySystemError`` traceback (CI, 2 cores). The thread ends after its step; nothing else is waited for.
    Private in Ray 2.60 (pinned), like :func:`_embed_actors`; best effort."""
    executor = getattr(ds, "_current_executor", None)
    if executor is None:
        return
    try:
        executor.shutdown(force=True, exception=exc)  # already done by Ray Data's iterator, normally
        if executor.is_alive():
            executor.join(timeout=STREAM_STOP_S)
    except Exception as err:  # the original error is what the caller needs
        log.debug("could not stop the broken-off stream's executor: %s", err)


def _release_actors(actors: dict[str, Any]) -> None:
    """Kill a failed stream's embedding actors now (see :func:`_embed_actors`)."""
    import ray

    for actor in actors.values():
        try:
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # best effort: the original error is what the caller needs
            log.debug("could not kill an embedding actor of the failed stream: %s", exc)


def _take_errors(errors: Any, idx: np.ndarray, sid: str) -> Any:
    """The error records at ``idx``, under their plain scenario id."""
    from repeval.pipeline.assemble import ErrorBlock

    out = ErrorBlock()
    for i in idx:
        out.add(errors.track_id[i], errors.split[i], sid, errors.stage[i], errors.reason[i])
    return out


def _operators(ds: Any) -> list[str]:
    """Operator names of the executed plan, e.g. ``['MapBatches(DecodeDeform)', 'MapBatches(Embed)']``."""
    try:
        text = ds.stats()
    except Exception:
        return []
    return re.findall(r"^Operator \d+ (.+?): ", text, flags=re.M)
