"""Train every probe configuration × seed of an experiment on Ray Tune, then evaluate each
selected checkpoint on the clean test set and every deformation scenario's test set.

One Tune experiment per (task, dataset, embedding model): the embeddings are loaded once and
shared with all trials through the object store (``tune.with_parameters``).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.config import Config, ExperimentConfig
from repeval.probes import ProbeData, train_probe

log = logging.getLogger(__name__)


@dataclass
class GroupResult:
    rows: list[dict[str, Any]]
    history: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    trial_seconds: float
    wall_seconds: float


def _trainable(config: dict[str, Any], data: ProbeData, probes: list[Any], metric_names: list[str]) -> None:
    import torch
    from ray import tune

    from repeval.metrics import compute_metrics

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    cfg = probes[config["probe_index"]]
    t0 = time.perf_counter()
    result = train_probe(cfg, data, seed=int(config["seed"]), report=None)
    history = result.history
    for rec in history[:-1]:
        tune.report({**rec, "done": False})
    out: dict[str, Any] = dict(history[-1]) if history else {}
    out["train_seconds"] = time.perf_counter() - t0
    out["best_epoch"] = result.best_epoch
    out["history"] = json.dumps(history)
    if result.failed:
        out["failed"] = result.failed
        tune.report(out)
        return
    rows = []
    for sid, scores in result.test_scores.items():
        _, y, _ = data.tests[sid]
        for r in compute_metrics(metric_names, data.task_type, y, scores, data.classes):
            rows.append({"scenario": sid, "metric": r.metric, "label": r.label, "value": r.value, "n_test": len(y)})
    out["test_rows"] = json.dumps(rows)
    with tempfile.TemporaryDirectory() as d:
        torch.save(result.state_dict, Path(d) / "probe.pt")
        tune.report(out, checkpoint=tune.Checkpoint.from_directory(d))


def run_group(
    cfg: Config,
    exp: ExperimentConfig,
    dataset: str,
    model: str,
    data: ProbeData,
    storage_path: str,
) -> GroupResult:
    import ray
    from ray import tune

    res = cfg.run.resources
    probes = list(exp.downstream_models)
    names = exp.probe_names()
    t0 = time.perf_counter()
    space = {
        "probe_index": tune.grid_search(list(range(len(probes)))),
        "seed": tune.grid_search([cfg.run.seed + s for s in range(cfg.run.seeds)]),
    }
    trainable = tune.with_parameters(_trainable, data=data, probes=probes, metric_names=list(exp.metric_names))
    trial_gpu = res.trial_num_gpus if ray.cluster_resources().get("GPU", 0) > 0 else 0
    trainable = tune.with_resources(trainable, {"cpu": res.trial_num_cpus, "gpu": trial_gpu})
    name = f"{exp.task.name}__{dataset}__{model}"
    tuner = tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=res.max_concurrent_trials),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )
    grid = tuner.fit()
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    trial_seconds = 0.0
    base = {"task": exp.task.name, "task_type": data.task_type, "dataset": dataset, "model": model}
    for r in grid:
        conf = r.config or {}
        probe = names[conf.get("probe_index", 0)]
        seed = int(conf.get("seed", 0))
        m = r.metrics or {}
        if r.error is not None or m.get("failed") or "test_rows" not in m:
            reason = str(r.error) if r.error is not None else m.get("failed", "no result")
            failed.append({**base, "probe": probe, "seed": seed, "reason": reason.strip().splitlines()[-1][:500]})
            continue
        trial_seconds += float(m.get("train_seconds", 0.0))
        for h in json.loads(m["history"]):
            history.append({**base, "probe": probe, "seed": seed, **h})
        for row in json.loads(m["test_rows"]):
            rows.append({**base, "probe": probe, "seed": seed, **row})
    return GroupResult(rows, history, failed, trial_seconds, time.perf_counter() - t0)


RESULT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("task", pa.string()),
        ("task_type", pa.string()),
        ("dataset", pa.string()),
        ("model", pa.string()),
        ("probe", pa.string()),
        ("seed", pa.int64()),
        ("scenario", pa.string()),
        ("metric", pa.string()),
        ("label", pa.string()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n_test", pa.int64()),
    ]
)


def results_table(run_id: str, rows: list[dict[str, Any]]) -> pa.Table:
    full = [{"ci_low": None, "ci_high": None, **r, "run_id": run_id} for r in rows]
    for r in full:
        r["value"] = float(r["value"]) if r["value"] is not None and np.isfinite(r["value"]) else None
    return pa.Table.from_pylist(full, schema=RESULT_SCHEMA)
