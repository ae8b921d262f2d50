"""The embedding stage: for each (dataset, model) stream the tracks that still need work through
Ray Data and write them into the store, one partition per scenario (``clean``, D1, ...).

Only the splits in ``run.deform_splits`` (default: test) are deformed — probes are trained on
clean audio and tested on clean and deformed audio.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.models import resolve_model
from repeval.pipeline.stages import CLEAN, DecodeDeform, Embed
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.store import embedding_schema

log = logging.getLogger(__name__)


@dataclass
class EmbedSummary:
    computed: int = 0
    skipped: int = 0
    errors: int = 0
    audio_seconds: float = 0.0
    wall_s: float = 0.0
    partitions_completed: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.audio_seconds / self.wall_s if self.wall_s else 0.0
        return (
            f"embedded {self.computed} rows ({self.skipped} already in store, {self.errors} errors) "
            f"in {self.wall_s:.1f}s — {rate:.0f} s of audio per second"
        )


def model_fingerprint(model_cfg: Any) -> dict[str, Any]:
    fam, params = resolve_model(model_cfg)
    return {"family": fam.name, "params": config_hash(params)}


def scenario_fingerprint(exp: ExperimentConfig, sid: str, ds: Any, run_seed: int) -> dict[str, Any]:
    if sid == CLEAN:
        return {"scenario": CLEAN}
    scen = exp.scenarios_for(ds)[sid]
    return {"scenario": config_hash(scen), "seed": run_seed}


def embed_experiment(
    cfg: Config,
    exp: ExperimentConfig,
    rows_by_dataset: dict[str, pa.Table],
    store: EmbeddingStore,
    deformed_only: bool = False,
) -> EmbedSummary:
    from repeval.ray_utils import cluster_cpus, cluster_gpus

    summary = EmbedSummary()
    run = cfg.run
    t0 = time.perf_counter()
    for ds in exp.datasets:
        rows = rows_by_dataset[ds.name]
        scenarios = exp.scenarios_for(ds)
        for mcfg in exp.embedding_models:
            fam, params = resolve_model(mcfg)
            sample_rate = int(params.get("sample_rate_hz") or getattr(fam.cls, "sample_rate_hz", 0) or run.sample_rate_hz)
            wanted_by_track: dict[str, list[str]] = {}
            parts = {}
            track_ids = rows.column("track_id").to_pylist()
            track_splits = rows.column("split").to_pylist()
            for sid in ([] if deformed_only else [CLEAN]) + list(scenarios):
                part = store.partition(ds.name, mcfg.id, sid)
                fp = {"model": model_fingerprint(mcfg), **scenario_fingerprint(exp, sid, ds, run.seed)}
                part.check_compatible(fp)
                splits_needed = None if sid == CLEAN else set(run.deform_splits)
                wanted = [t for t, sp in zip(track_ids, track_splits, strict=True) if splits_needed is None or sp in splits_needed]
                done = part.done_track_ids()
                missing = [t for t in wanted if t not in done]
                summary.skipped += len(wanted) - len(missing)
                if not missing and part.complete:
                    continue
                # a partition shared by several tasks (one dataset, other splits) may need more tracks
                part.reopen()
                part.stamp(fp)
                parts[sid] = part
                for tid in missing:
                    wanted_by_track.setdefault(tid, []).append(sid)
            if not parts:
                log.info("%s/%s: all partitions complete", ds.name, mcfg.id)
                continue
            if wanted_by_track:
                todo = rows.filter(pa.array([t in wanted_by_track for t in rows.column("track_id").to_pylist()]))
                todo = todo.append_column(
                    "scenarios", pa.array([wanted_by_track[t] for t in todo.column("track_id").to_pylist()], pa.list_(pa.string()))
                )
                _run_pipeline(cfg, exp, ds, mcfg, sample_rate, todo, scenarios, parts, summary, cluster_cpus(), cluster_gpus())
            for sid, part in parts.items():
                part.finish({"dataset": ds.name, "model": mcfg.id, "scenario": sid, "task": exp.task.name})
                summary.partitions_completed.append(part.path)
    summary.wall_s = time.perf_counter() - t0
    return summary


def _run_pipeline(
    cfg: Config,
    exp: ExperimentConfig,
    ds_cfg: Any,
    mcfg: Any,
    sample_rate: int,
    todo: pa.Table,
    scenarios: dict[str, Any],
    parts: dict[str, Any],
    summary: EmbedSummary,
    n_cpus: float,
    n_gpus: float,
) -> None:
    import ray.data

    run = cfg.run
    res = run.resources
    fam, _ = resolve_model(mcfg)
    use_gpu = n_gpus > 0 and fam.cls.uses_gpu
    # leave room for decode tasks: on 2 CPUs one actor; more CPUs, more actors
    n_actors = res.embed_actors or (max(1, int(n_gpus / max(res.embed_num_gpus, 1e-6))) if use_gpu else max(1, int((n_cpus - res.decode_num_cpus) // res.embed_num_cpus)))
    steps = {sid: [(s.type, dict(s.params)) for s in scen.steps] for sid, scen in scenarios.items() if sid in parts}
    batch_size = mcfg.batch_size or 16
    ds = ray.data.from_arrow(todo.select(["track_id", "audio_path", "split", "scenarios"]))
    ds = ds.repartition(max(1, min(todo.num_rows // 8, 200)))
    # a callable instance runs as stateless tasks (decode); the Embed class runs as an actor pool
    ds = ds.map_batches(DecodeDeform(sample_rate, steps, run.seed), batch_size=8, num_cpus=res.decode_num_cpus)
    embed_kwargs: dict[str, Any] = {
        "fn_constructor_args": (mcfg, run.keep_frames),
        "batch_size": batch_size,
        "compute": ray.data.ActorPoolStrategy(size=n_actors),
        "num_cpus": res.embed_num_cpus,
    }
    if use_gpu:
        embed_kwargs["num_gpus"] = res.embed_num_gpus
    ds = ds.map_batches(Embed, **embed_kwargs)
    writers: dict[str, PartitionWriter] = {}

    def writer(sid: str, dim: int) -> PartitionWriter:
        if sid not in writers:
            writers[sid] = PartitionWriter(parts[sid], embedding_schema(dim, run.keep_frames), run.part_rows)
        return writers[sid]
    try:
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            for i in range(len(batch["track_id"])):
                sid = str(batch["scenario"][i])
                w = writer(sid, batch["embedding"].shape[1])
                tid, split = str(batch["track_id"][i]), str(batch["split"][i])
                err = str(batch["error"][i])
                if err:
                    w.add_error({"track_id": tid, "split": split, "stage": str(batch["stage"][i]), "reason": err,
                                 "model": mcfg.id, "scenario": sid})
                    summary.errors += 1
                    continue
                row = {
                    "track_id": tid,
                    "split": split,
                    "embedding": np.asarray(batch["embedding"][i], np.float32),
                    "n_frames": int(batch["n_frames"][i]),
                    "deformation_params": str(batch["deformation_params"][i]) or None,
                    "model": mcfg.id,
                    "scenario": sid,
                    "audio_seconds": float(batch["audio_seconds"][i]),
                }
                if run.keep_frames:
                    row["frames"] = [np.asarray(f, np.float32) for f in batch["frames"][i]]
                w.add(row)
                summary.computed += 1
                summary.audio_seconds += row["audio_seconds"]
    finally:
        # everything computed so far is kept, even when the stream fails part-way
        for w in writers.values():
            w.flush()
