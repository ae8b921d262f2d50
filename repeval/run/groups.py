"""A probe grid's inputs (what it is trained on), whether it is done for them, and the grids still to train."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets.base import OBSERVED
from repeval.run.context import RunContext, group_name
from repeval.run.files import _read_json

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def group_inputs(
    ctx: RunContext, ei: int, dataset: str, model: str, scenarios: list[str], rows: pa.Table | None = None
) -> dict[str, Any]:
    """What a group was trained on: each partition's row and error counts (from its manifest) and the number
    of tracks per split (of ``rows``, default the dataset's rows). A finished group is reused only while these
    are unchanged — a store completed further, or an error retried with ``--retry-errors``, trains it again."""
    from repeval.pipeline.stages import CLEAN

    parts = {}
    for sid in [CLEAN, *scenarios]:
        m = ctx.store.partition(dataset, model, sid).manifest() or {}
        parts[sid] = [m.get("rows"), m.get("errors"), m.get("config_hash")]
    rows = ctx.rows[(ei, dataset)] if rows is None else rows
    counts = pc.value_counts(rows.column("split")).to_pylist()
    out: dict[str, Any] = {"partitions": parts, "splits": {str(c["values"]): int(c["counts"]) for c in counts}}
    if OBSERVED in rows.column_names:  # absent when every pair counts (earlier runs' groups hold)
        out["unannotated"] = "mask"
    exp = ctx.cfg.experiments[ei]
    if exp.task.aggregation != "mean":  # absent for mean: earlier runs' groups hold
        out["aggregation"] = exp.task.aggregation
    augment = _augment(exp, dataset)
    if augment:
        out["augment"] = augment
    if ei not in ctx.training_hashes:
        ctx.training_hashes[ei] = training_hash(ctx.cfg, exp)
    out["training"] = ctx.training_hashes[ei]
    return out


def training_hash(cfg: Config, exp: ExperimentConfig) -> str:
    """What a group's probes and results are computed with besides its embeddings and splits: the task, the probe
    configurations as expanded (a preset's values included), the metrics and the run's seeds, epoch cap and interval
    settings. A finished group is trained again when it changes (an edited learning rate or metric, another seed
    count): its results would otherwise be the old configuration's under the new one's name. Settings that change
    only how fast training runs (``vectorize``, ``pack_trials``, ``train_batch_mb``, resources) are left out."""
    from repeval.tuning.search import expand_all

    specs = expand_all(exp.downstream_models, exp.task.effective_type)
    run = cfg.run
    probes = [
        [
            s.name,
            s.select,
            s.space,
            s.num_samples,
            s.scheduler,
            [[p.name, p.config.model_dump(mode="json")] for p in s.points],
        ]
        for s in specs
    ]
    desc = {
        "task": exp.task.model_dump(mode="json"),
        "probes": probes,
        "metrics": exp.metrics,
        "run": [run.seed, run.seeds, run.max_epochs, run.bootstrap_resamples, run.ci_alpha],
    }
    return config_hash(desc)


def _augment(exp: ExperimentConfig, dataset: str) -> list[str]:
    """The scenarios whose deformed training tracks augment ``exp``'s probes on ``dataset``."""
    return next((exp.augment_for(ds) for ds in exp.datasets if ds.name == dataset), [])


@dataclass
class _Pending:
    """A group whose results are not in the run directory yet."""

    ei: int
    exp: ExperimentConfig
    dataset: str
    model: str
    scenarios: list[str]
    fold: int | None
    rows: pa.Table
    name: str
    inputs: dict[str, Any]
    #: ``(added, removed)`` deformation scenarios when only they changed since the group was trained: it is tested
    #: again, not trained (:func:`repeval.retest.retest_group`)
    retest: tuple[list[str], list[str]] | None = None


def _pending_group(
    ctx: RunContext,
    ei: int,
    exp: ExperimentConfig,
    dataset: str,
    model: str,
    scenarios: list[str],
    fold: int | None,
    rows: pa.Table,
    summary: dict[str, Any],
) -> _Pending | None:
    """The group — (task, dataset, model) and, for k folds, one fold — unless it is done (then counted as skipped)."""
    name = group_name(exp, dataset, model, fold)
    inputs = group_inputs(ctx, ei, dataset, model, scenarios, rows)
    trained = group_trained(ctx, name, inputs)
    if trained:
        summary["skipped"] += 1
        return None
    retest = None
    if trained is not None:
        from repeval.retest import scenarios_only

        before = _read_json(ctx.run_dir / "groups" / f"{name}.inputs.json")
        retest = scenarios_only(before, inputs)
        if retest is None:
            log.warning(
                "%s: trained before on other inputs (%s); training it again", name, inputs_change(before, inputs)
            )
    return _Pending(ei, exp, dataset, model, scenarios, fold, rows, name, inputs, retest)


def _retested(ctx: RunContext, item: _Pending, summary: dict[str, Any]) -> bool:
    """Whether ``item``, a finished group whose deformation scenarios alone changed, was brought up to date without
    training (:func:`repeval.retest.retest_group`); else it is trained again, as the warning says."""
    if item.retest is None:
        return False
    from repeval.retest import retest_group

    added, removed = item.retest
    why = retest_group(ctx, item, added, removed, summary)
    if why is None:
        return True
    before = _read_json(ctx.run_dir / "groups" / f"{item.name}.inputs.json")
    log.warning(
        "%s: trained before on other inputs (%s), and %s; training it again",
        item.name, inputs_change(before, item.inputs), why,
    )  # fmt: skip
    return False


def inputs_change(before: Any, now: dict[str, Any]) -> str:
    """What differs between a finished group's recorded inputs (:func:`group_inputs`, ``before``) and this run's, in
    words: why it is trained again — a scenario added or removed, a partition with other rows or error records, other
    splits or training settings."""
    if not isinstance(before, dict):
        return "its record of them, the group's inputs.json, is missing or unreadable"
    said = []
    if before.get("training") != now.get("training"):
        said.append("the training settings changed: the task, probes, metrics, run.seed(s), max_epochs or intervals")
    old, new = before.get("partitions") or {}, now.get("partitions") or {}
    added, removed = sorted(set(new) - set(old)), sorted(set(old) - set(new))
    if added:
        said.append(f"scenario(s) {', '.join(added)} added")
    if removed:
        said.append(f"scenario(s) {', '.join(removed)} removed")

    def counts(v: Any) -> str:
        rows, errors = [*v, None, None][:2] if isinstance(v, list) else (None, None)
        return f"{rows} rows, {errors} error records"

    for sid in sorted(set(old) & set(new)):
        if old[sid] == new[sid]:
            continue
        if counts(old[sid]) != counts(new[sid]):
            said.append(f"partition {sid}: {counts(old[sid])} then, {counts(new[sid])} now")
        else:
            said.append(f"partition {sid}: computed under another configuration (config hash)")
    if before.get("splits") != now.get("splits"):

        def splits(v: Any) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(v.items())) if isinstance(v, dict) else str(v)

        said.append(f"the tracks per split: {splits(before.get('splits'))} then, {splits(now.get('splits'))} now")
    for key in ("unannotated", "aggregation", "augment"):
        if before.get(key) != now.get(key):
            said.append(f"{key}: {before.get(key)} then, {now.get(key)} now")
    return "; ".join(said) or "its inputs.json differs"


def group_trained(ctx: RunContext, name: str, inputs: dict[str, Any]) -> bool | None:
    """Whether group ``name`` is done for these inputs (:func:`group_inputs`): ``None`` when it was never trained,
    ``False`` when it was trained on other embeddings or splits (it is trained again)."""
    groups_dir = ctx.run_dir / "groups"
    if not (groups_dir / f"{name}.parquet").exists():
        return None
    return bool(_read_json(groups_dir / f"{name}.inputs.json") == inputs)
