"""Fake but realistic predictions and run directories for metric and report tests.

``make_run_dir`` writes what the tuning stage writes — ``results.parquet``, ``config.yaml``,
``history.parquet``, ``probes/*.parquet`` (each probe's validation criterion) and ``confusion/*.json`` — with values computed by the real metrics on
synthetic predictions whose quality depends on model, probe, scenario and seed, so tables
and plots show the structure of a real evaluation (bigger probes help, noise hurts).
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml

KEYS = ["C major", "G major", "A minor", "C minor", "E minor", "F# major", "Bb minor", "D major"]

INSTRUMENTS = ["flute", "oboe", "clarinet", "bassoon", "horn", "trumpet", "violin", "cello"]
TAGS = ["rock", "pop", "guitar", "piano", "vocal", "drums", "electronic", "ambient", "fast", "slow"]


def fake_predictions(
    task_type: str, rng: np.random.Generator, n: int = 60, c: int = 5, ties: bool = False, quality: float = 0.5
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Random ``(y_true, y_score, labels)`` for ``task_type``; ``quality`` in [0, 1] sets the signal."""

    def scores(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(0, 4, size=shape) / 4.0 if ties else rng.random(shape)

    if task_type == "multilabel_classification":
        y = (rng.random((n, c)) < 0.3).astype(int)
        y[0], y[1] = 1, 0  # every label defined
        s = scores((n, c)) + quality * 1.5 * y * rng.random((n, c))
        return y, s / s.max(), [TAGS[i] if i < len(TAGS) else f"tag{i}" for i in range(c)]
    if task_type == "regression":
        y = rng.normal(size=(n, c))
        return y, y + rng.normal(scale=1.5 * (1 - quality) + 0.1, size=(n, c)), [f"dim{i}" for i in range(c)]
    if task_type == "key_estimation":
        labels = KEYS[:c]
    else:
        labels = [INSTRUMENTS[i] if i < len(INSTRUMENTS) else f"class{i}" for i in range(c)]
    y = rng.integers(0, c, size=n)
    s = scores((n, c))
    s[np.arange(n), y] += rng.random(n) * 2 * quality
    s = s / s.sum(axis=1, keepdims=True)
    return y, s, labels


@dataclass(frozen=True)
class FakeExperiment:
    task: str
    task_type: str
    dataset: str
    n_labels: int
    metrics: tuple[str, ...]


DEFAULT_EXPERIMENTS = (
    FakeExperiment(
        "instrument_recognition", "multiclass_classification", "tinysol", 6, ("accuracy", "f1_macro", "f1_micro")
    ),
    FakeExperiment("autotagging", "multilabel_classification", "magnatagatune", 8, ("roc_auc_macro", "pr_auc_macro")),
)


@dataclass
class FakeRunSpec:
    run_id: str = "demo"
    experiments: Sequence[FakeExperiment] = DEFAULT_EXPERIMENTS
    models: Sequence[str] = ("mert-v1-95m-6", "msd-musicnn", "logmel-stats")
    probes: Sequence[str] = ("M1", "M2", "M3", "M4", "M5")
    seeds: Sequence[int] = (0, 1)
    scenarios: Sequence[str] = ("clean", "D1", "D2", "D3")
    n_test: int = 90
    n_resamples: int = 100
    seed: int = 0
    #: model quality in [0, 1]; missing models get a value from the seed
    model_quality: dict[str, float] = field(default_factory=dict)
    #: write ``probes/<group>.parquet`` (off: a run from before the record existed)
    write_probes: bool = True
    #: added to a probe's validation criterion (e.g. to make the validation and the test choice differ)
    val_bias: dict[str, float] = field(default_factory=dict)
    #: a probe's ``save_criterion`` in ``config.yaml`` (missing: the task's default)
    save_criteria: dict[str, str] = field(default_factory=dict)


_SCENARIO_HIT = {"clean": 0.0, "D1": 0.25, "D2": 0.55, "D3": 0.1, "D4": 0.05}


def make_run_dir(root: Path, spec: FakeRunSpec | None = None, **overrides: object) -> Path:
    """Write a fake run directory ``root/<run_id>`` and return its path."""
    from repeval.metrics import compute_metrics, confusion_matrix, write_confusion

    spec = spec or FakeRunSpec()
    for k, v in overrides.items():
        setattr(spec, k, v)
    run = Path(root) / spec.run_id
    run.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    quality = {m: spec.model_quality.get(m, float(rng.uniform(0.3, 0.9))) for m in spec.models}
    rows: list[dict[str, object]] = []
    history: list[dict[str, object]] = []
    probe_rows: dict[str, list[dict[str, object]]] = {}
    for exp in spec.experiments:
        for model in spec.models:
            for p_idx, probe in enumerate(spec.probes):
                for seed in spec.seeds:
                    cell_rng = np.random.default_rng(
                        [spec.seed, zlib.crc32(f"{exp.task}/{model}/{probe}".encode()), seed]
                    )
                    base_q = quality[model] * (0.75 + 0.06 * p_idx) + cell_rng.normal(0, 0.02)
                    history += _history(exp, model, probe, seed, base_q, cell_rng)
                    val = base_q + spec.val_bias.get(probe, 0.0)
                    if spec.save_criteria.get(probe) == "val_loss":
                        val = 1.0 - val
                    probe_rows.setdefault(f"{exp.task}__{exp.dataset}__{model}", []).append(
                        {
                            "task": exp.task,
                            "task_type": exp.task_type,
                            "dataset": exp.dataset,
                            "model": model,
                            "spec": probe,
                            "probe": probe,
                            "seed": int(seed),
                            "params": "{}",
                            "best_criterion": float(val),
                            "best_epoch": 10,
                            "epochs": 20,
                            "status": "ok",
                            "selected": True,
                            "fold": None,
                        }
                    )
                    clean: dict[tuple[str, str | None], float] = {}  # Δ: the tracks are the same in every scenario
                    for scenario in spec.scenarios:
                        q = float(np.clip(base_q - _SCENARIO_HIT.get(scenario, 0.2) * (1.2 - quality[model]), 0, 1))
                        y, s, labels = fake_predictions(exp.task_type, cell_rng, spec.n_test, exp.n_labels, quality=q)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            metric_rows = compute_metrics(
                                exp.metrics, exp.task_type, y, s, labels, ci=True, n_resamples=spec.n_resamples
                            )
                        for r in metric_rows:
                            if scenario == "clean":
                                clean[(r.metric, r.label)] = r.value
                            before = clean.get((r.metric, r.label)) if scenario != "clean" else None
                            rows.append(
                                {
                                    "run_id": spec.run_id,
                                    "task": exp.task,
                                    "task_type": exp.task_type,
                                    "dataset": exp.dataset,
                                    "model": model,
                                    "probe": probe,
                                    "seed": int(seed),
                                    "scenario": scenario,
                                    "metric": r.metric,
                                    "label": r.label,
                                    "value": r.value,
                                    "ci_low": r.ci_low,
                                    "ci_high": r.ci_high,
                                    "n_test": spec.n_test,
                                    "delta": None if before is None else r.value - before,
                                    "n_delta": None if scenario == "clean" or not clean else spec.n_test,
                                }
                            )
                        if exp.task_type in ("multiclass_classification", "key_estimation"):
                            name = f"{exp.task}__{exp.dataset}__{model}__{probe}__{seed}__{scenario}.json"
                            write_confusion(run / "confusion" / name, confusion_matrix(y, s, labels), labels)
    from repeval.report.results import HISTORY_COLUMNS, write_results
    from repeval.tuning.results import PROBES_SCHEMA, typed_table

    write_results(pd.DataFrame(rows), run / "results.parquet")
    if spec.write_probes:
        (run / "probes").mkdir(exist_ok=True)
        for i, group in enumerate(probe_rows.values()):  # names may hold any character: number the files
            pq.write_table(typed_table(group, PROBES_SCHEMA), run / "probes" / f"group{i}.parquet")
    pd.DataFrame(history, columns=list(HISTORY_COLUMNS)).to_parquet(run / "history.parquet", index=False)
    (run / "config.yaml").write_text(yaml.safe_dump(_config(spec), sort_keys=False))
    return run


def _history(
    exp: FakeExperiment, model: str, probe: str, seed: int, q: float, rng: np.random.Generator
) -> list[dict[str, object]]:
    epochs = int(rng.integers(15, 40))
    out: list[dict[str, object]] = []
    for epoch in range(epochs):
        train = 2.0 * np.exp(-epoch / (6 + 10 * q)) + 0.3 * (1 - q) + rng.normal(0, 0.01)
        val = train + 0.02 * max(0, epoch - epochs + 10) + rng.normal(0, 0.02) + 0.05
        out.append(
            {
                "task": exp.task,
                "dataset": exp.dataset,
                "model": model,
                "probe": probe,
                "seed": seed,
                "epoch": epoch,
                "train_loss": float(train),
                "val_loss": float(val),
                "val_criterion": float(np.clip(q * (1 - np.exp(-epoch / 5)), 0, 1)),
            }
        )
    return out


def _config(spec: FakeRunSpec) -> dict[str, object]:
    hidden = {"M1": [], "M2": [128], "M3": [256, 128], "M4": ["infer"], "M5": ["infer", "infer"]}
    return {
        "run": {"id": spec.run_id, "seed": spec.seed, "seeds": list(spec.seeds)},
        "experiments": [
            {
                "task": {"name": e.task, "type": e.task_type, "embedding_aggregation": "mean"},
                "datasets": [{"name": e.dataset, "type": "mirdata"}],
                "embedding_models": list(spec.models),
                "downstream_models": [
                    {"name": p, "type": "classifier", "hidden_units": hidden.get(p, [])}
                    | ({"save_criterion": spec.save_criteria[p]} if p in spec.save_criteria else {})
                    for p in spec.probes
                ],
                "metrics": list(e.metrics),
            }
            for e in spec.experiments
        ],
    }
