"""A probe grid's inputs (what it is trained on), whether it is done for them, and the grids still to train."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets.base import OBSERVED
from repeval.run.context import RunContext, group_name
from repeval.run.files import _read_json, _write_text_atomic, unreadable_parquet
from repeval.words import named

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def group_inputs(
    ctx: RunContext, ei: int, dataset: str, model: str, scenarios: list[str], rows: pa.Table | None = None
) -> dict[str, Any]:
    """What a group was trained on: each partition's row and error counts, config hash and write (from its manifest:
    :func:`partition_written`), the number of tracks per split and a digest of the tracks' ids, splits and labels
    (:func:`tracks_digest`; of ``rows``, default the dataset's rows). A finished group is reused only while these are
    unchanged (:func:`same_inputs`) — a store completed further, an error retried with ``--retry-errors``, a partition
    deleted and embedded anew, or an edited label trains it again."""
    from repeval.pipeline.stages import CLEAN

    parts = {}
    for sid in [CLEAN, *scenarios]:
        m = ctx.store.partition(dataset, model, sid).manifest() or {}
        parts[sid] = [m.get("rows"), m.get("errors"), m.get("config_hash"), partition_written(m)]
    rows = ctx.rows[(ei, dataset)] if rows is None else rows
    counts = pc.value_counts(rows.column("split")).to_pylist()
    out: dict[str, Any] = {"partitions": parts, "splits": {str(c["values"]): int(c["counts"]) for c in counts}}
    out["tracks"] = _tracks_digest_of(ctx, rows)
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


def partition_written(manifest: dict[str, Any]) -> Any:
    """Which write of a partition its manifest records: the digest of its row part files' names
    (``parts_digest``: each name is unique to the write that made it), else — a manifest written before it was kept —
    the time it was marked complete. It changes when the partition is embedded anew (``repeval store rm``, then a
    run: fixed audio at the same paths gives the same counts and config hash), not when it is read again, nor when
    ``--retry-errors`` fails on the same tracks again. ``None`` without a manifest."""
    return manifest.get("parts_digest") or manifest.get("completed_at")


def tracks_digest(rows: pa.Table) -> str:
    """A digest of what a group's rows say of each track — its id, split and labels (and the labels it annotates,
    :data:`OBSERVED`) — in any row order (probes read the tracks in id order): it changes when a label is edited even
    if the tracks per split stay as many. Each row's fields are joined into one string, hashed to 64 bits
    (:func:`repeval.datasets.spill.hash64`, vectorized), and the sorted hashes digested: ~0.3 s for 1,000,000 rows
    on one core here, whatever their order; once per rows table and run (:attr:`RunContext.tracks_digests`)."""
    from repeval.datasets.spill import hash64

    def text(name: str) -> Any:
        col = rows.column(name)
        listed = pa.types.is_list(col.type) or pa.types.is_large_list(col.type)
        return pc.binary_join(col, "\x1f") if listed else pc.cast(col, pa.string())

    names = [c for c in ("track_id", "split", "label", OBSERVED) if c in rows.column_names]
    h = hashlib.sha256(",".join(names).encode())
    if rows.num_rows:  # a null (split, list) joins as "\x00", told from an empty one
        line = pc.binary_join_element_wise(*map(text, names), "\x1e", null_handling="replace", null_replacement="\x00")
        h.update(np.sort(hash64(line)).tobytes())
    return h.hexdigest()[:16]


def _tracks_digest_of(ctx: RunContext, rows: pa.Table) -> str:
    """:func:`tracks_digest` of ``rows``, computed once per table a run holds (every model's group shares it)."""
    held = ctx.tracks_digests.get(id(rows))
    if held is None or held[0] is not rows:
        held = ctx.tracks_digests[id(rows)] = (rows, tracks_digest(rows))
    return held[1]


#: what an earlier repeval's group record, which lacks ``tracks``, is compared as when the splits file saved before this
#: run (by the run that trained the group, or a later one) holds other track ids, splits or labels than now
#: (:func:`note_saved_splits`): labels edited before the upgrade train the group again
SAVED_SPLITS_DIFFER = "other than in the splits/ file saved before"


def earlier_records(ctx: RunContext) -> bool:
    """Whether a group record of the run lacks the tracks' digest (written by an earlier repeval): only then are the
    splits files saved before read (:func:`note_saved_splits`). Looked once per run (one small file per group)."""
    if ctx.earlier_records is None:
        records = (ctx.run_dir / "groups").glob("*.inputs.json")
        ctx.earlier_records = any(isinstance(r, dict) and "tracks" not in r for r in map(_read_json, records))
    return ctx.earlier_records


def note_saved_splits(ctx: RunContext, path: Path, rows: pa.Table, save: bool) -> None:
    """Before a load saves ``rows`` as the splits file ``path`` (``save``; ``repeval plan`` does not): note in
    :attr:`RunContext.splits_changed` when the file there, saved by an earlier load, holds other track ids, splits or
    labels — compared on the columns both have (a file saved before :data:`OBSERVED` was kept lacks it) — and, saving,
    give the earlier repeval's records of the groups that read it :data:`SAVED_SPLITS_DIFFER` as their tracks' digest,
    so a later command (``repeval train`` after ``repeval embed``), which finds the file rewritten, still trains them
    again. Only while an earlier repeval's group record lacks the tracks' digest (:func:`earlier_records`): a record
    that has it says so itself. An unreadable file is not compared (nothing known)."""
    if not path.exists() or not earlier_records(ctx):
        return
    try:
        saved = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return
    names = [c for c in ("track_id", "split", "label", OBSERVED) if c in saved.column_names]
    if any(c not in rows.column_names for c in names) or tracks_digest(saved.select(names)) != tracks_digest(
        rows.select(names)
    ):
        stem = path.name.removesuffix(".parquet")
        ctx.splits_changed.add(stem)
        if save:
            _mark_earlier_records(ctx, stem)


def _mark_earlier_records(ctx: RunContext, stem: str) -> None:
    """Give each earlier repeval's record (no tracks' digest) of a group reading the splits file ``stem``
    (``<task>__<dataset>[__fold<k>]``; its groups ``<task>__<dataset>__<model>[__fold<k>]`` for the configuration's
    models) :data:`SAVED_SPLITS_DIFFER` as its tracks' digest."""
    import json

    found = re.fullmatch(r"(.+?)(__fold\d+)?", stem)
    base, fold = (found.group(1), found.group(2) or "") if found else (stem, "")
    models = {m.id for exp in ctx.cfg.experiments for m in exp.embedding_models}
    for model in sorted(models):
        path = ctx.run_dir / "groups" / f"{base}__{model}{fold}.inputs.json"
        record = _read_json(path) if path.exists() else None
        if isinstance(record, dict) and "tracks" not in record:
            _write_text_atomic(path, json.dumps({**record, "tracks": SAVED_SPLITS_DIFFER}, sort_keys=True))


def _saved_splits_differ(ctx: RunContext, name: str, model: str) -> bool:
    """Whether group ``name`` (of ``model``) reads a splits file :func:`note_saved_splits` found changed."""
    found = re.fullmatch(rf"(.+)__{re.escape(model)}(__fold\d+)?", name)
    return found is not None and found.group(1) + (found.group(2) or "") in ctx.splits_changed


#: keys of :func:`group_inputs` that groups recorded before repeval kept them lack: absent from a group's recorded
#: inputs, they are not compared (:func:`as_recorded`) — an upgrade does not train every finished group again
LATER_KEYS = ("tracks",)


def as_recorded(before: Any, now: dict[str, Any]) -> dict[str, Any]:
    """``now`` (:func:`group_inputs`) as a group recorded before repeval kept all of it would have recorded it:
    without the :data:`LATER_KEYS` ``before`` lacks, and each partition's entry cut to the length of ``before``'s
    (``[rows, errors, config hash]`` then, before the write was kept: :func:`partition_written`). What compares."""
    if not isinstance(before, dict):
        return now
    out = {k: v for k, v in now.items() if k in before or k not in LATER_KEYS}
    old, new = before.get("partitions"), now.get("partitions")
    if isinstance(old, dict) and isinstance(new, dict):
        out["partitions"] = {
            sid: v[: len(old[sid])] if isinstance(v, list) and isinstance(old.get(sid), list) else v
            for sid, v in new.items()
        }
    return out


#: how much later than a group's record (its file's modification time) a partition's newest row part file must be
#: written (the time in its name) for a record that lacks the partitions' writes to count the partition as embedded
#: anew since: slack for the clocks of the hosts that wrote them and for coarse file times
REWRITE_SLACK_S = 60.0


def recorded_inputs(ctx: RunContext, name: str, dataset: str | None = None, model: str | None = None) -> Any:
    """Group ``name``'s recorded inputs (its ``groups/<name>.inputs.json``, :func:`group_inputs`; ``None`` when it is
    missing or unreadable). A record written before repeval kept each partition's write (:func:`partition_written`;
    ``[rows, errors, config hash]``) cannot tell a partition embedded anew since — ``repeval store rm`` and a run
    before the upgrade: the same counts and config hash. Given the group's ``dataset`` and ``model``, each of its
    partitions whose newest row part file was written after the record (the write time every part file's name holds,
    :func:`repeval.store.layout.write_table_atomic`, more than :data:`REWRITE_SLACK_S` after the record file's
    modification time) gets a write no partition has: the group is trained again, the warning naming the partition
    re-embedded. A partition whose rows were not rewritten (read again, or ``--retry-errors`` failing on the same
    tracks again, which rewrites its manifest but no row part file) stays as recorded; so does every partition when
    the record's modification time is later than its writing (a run directory copied without keeping file times; a
    remote one's record keeps its upload time when pulled, :meth:`repeval.rundir.RunLocation.pull`): missed, never a
    false change."""
    path = ctx.run_dir / "groups" / f"{name}.inputs.json"
    before = _read_json(path)
    if isinstance(before, dict) and "tracks" not in before and model and _saved_splits_differ(ctx, name, model):
        before = {**before, "tracks": SAVED_SPLITS_DIFFER}
    parts = before.get("partitions") if isinstance(before, dict) else None
    if dataset is None or model is None or not isinstance(parts, dict):
        return before
    older = [sid for sid, v in parts.items() if isinstance(v, list) and len(v) == 3]
    if not older:
        return before
    try:
        recorded_ns = path.stat().st_mtime_ns
    except OSError:
        return before
    anew = {}
    for sid in older:
        newest_ns = partitions_written_ns(ctx, dataset, model, [sid])
        if written_after(newest_ns, recorded_ns):
            anew[sid] = [*parts[sid], f"embedded anew at {newest_ns} ns, after the group was recorded"]
    return {**before, "partitions": {**parts, **anew}} if anew else before


def written_after(newest_ns: int | None, recorded_ns: int) -> bool:
    """Whether rows written at ``newest_ns`` (:func:`partitions_written_ns`) came after a record whose file was
    modified at ``recorded_ns``, by more than :data:`REWRITE_SLACK_S` — a group's record (:func:`recorded_inputs`)
    or a Tune experiment's marker (:func:`repeval.tuning.tuner._rewritten_since`)."""
    return newest_ns is not None and newest_ns > recorded_ns + int(REWRITE_SLACK_S * 1e9)


def partitions_written_ns(ctx: RunContext, dataset: str, model: str, scenarios: list[str]) -> int | None:
    """The latest write time (ns) of the row part files of the store partitions of ``dataset`` and ``model`` for
    ``scenarios`` (one listing each; the time in each name); ``None`` when they hold none."""
    times = [ctx.store.partition(dataset, model, sid).newest_write_ns() for sid in scenarios]
    return max((t for t in times if t is not None), default=None)


def same_inputs(before: Any, now: dict[str, Any]) -> bool:
    """Whether a group's recorded inputs (``before``) are this run's (``now``), as far as ``before`` records them."""
    return isinstance(before, dict) and before == as_recorded(before, now)


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


def target_name(exp: ExperimentConfig, dataset: str) -> str:
    """What ``exp``'s task predicts on ``dataset``, naming a regression target given without a name (``0.31``, not
    ``valence=0.31``) in results: a catalog's label column, else the task's label (its name when it sets none)."""
    ds = next((d for d in exp.datasets if d.name == dataset), None)
    return (ds.label_column if ds is not None and ds.type == "catalog" else None) or exp.task.label or exp.task.name


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
    trained = group_trained(ctx, name, inputs, dataset, model)
    if trained:
        summary["skipped"] += 1
        _complete_record(ctx, name, inputs)
        return None
    retest = None
    if trained is not None:
        from repeval.retest import scenarios_only

        before = recorded_inputs(ctx, name, dataset, model)
        retest = scenarios_only(before, inputs)
        if retest is None:
            log.warning(
                "%s: trained before on other inputs (%s); training it again", name, inputs_change(before, inputs)
            )
    return _Pending(ei, exp, dataset, model, scenarios, fold, rows, name, inputs, retest)


def _complete_record(ctx: RunContext, name: str, inputs: dict[str, Any]) -> None:
    """Write a finished group's inputs whole when its record, written before repeval kept all of them, lacks some
    (:func:`as_recorded`): from this run on, a partition embedded anew or an edited label trains it again."""
    path = ctx.run_dir / "groups" / f"{name}.inputs.json"
    if _read_json(path) != inputs:
        import json

        _write_text_atomic(path, json.dumps(inputs, sort_keys=True))


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
    before = recorded_inputs(ctx, item.name, item.dataset, item.model)
    log.warning(
        "%s: trained before on other inputs (%s), and %s; training it again",
        item.name, inputs_change(before, item.inputs), why,
    )  # fmt: skip
    return False


def inputs_change(before: Any, now: dict[str, Any]) -> str:
    """What differs between a finished group's recorded inputs (:func:`group_inputs`, ``before``) and this run's, in
    words: why it is trained again — a scenario added or removed, a partition with other rows or error records or
    embedded anew, other splits or labels, other training settings. Only what ``before`` records is compared
    (:func:`as_recorded`). Scenarios are named in the configuration's order (``now``'s: clean first, then the
    deformations as listed), those removed in the record's after them."""
    if not isinstance(before, dict):
        return "its record of them, the group's inputs.json, is missing or unreadable"
    now = as_recorded(before, now)
    said = []
    if before.get("training") != now.get("training"):
        said.append(
            "the training settings changed: the task, probes, metrics, run.seed or run.seeds, max_epochs or intervals"
        )
    old, new = before.get("partitions") or {}, now.get("partitions") or {}
    # inputs.json keeps its keys sorted: the configuration's order is now's (group_inputs'), clean first
    added, removed = [sid for sid in new if sid not in old], _clean_first([sid for sid in old if sid not in new])
    if added:
        said.append(f"{named('scenario', added)} added")
    if removed:
        said.append(f"{named('scenario', removed)} removed")

    said += [
        f"partition {sid}{partition_change(old[sid], new[sid])}" for sid in new if sid in old and old[sid] != new[sid]
    ]
    if before.get("splits") != now.get("splits"):

        def splits(v: Any) -> str:
            return ", ".join(f"{k} {n}" for k, n in sorted(v.items())) if isinstance(v, dict) else str(v)

        said.append(f"the tracks per split: {splits(before.get('splits'))} then, {splits(now.get('splits'))} now")
    elif before.get("tracks") == SAVED_SPLITS_DIFFER:  # an earlier repeval's record: the splits file it saved says
        said.append(
            "labels changed: the dataset's labels, track ids or splits differ from the splits/ file saved when it was "
            "trained, by an earlier repeval (as many tracks per split)"
        )
    elif before.get("tracks") != now.get("tracks"):
        said.append("labels changed: the dataset's labels, track ids or splits differ (as many tracks per split)")
    for key in ("unannotated", "aggregation", "augment"):
        if before.get(key) != now.get(key):
            said.append(f"{key}: {before.get(key)} then, {now.get(key)} now")
    return "; ".join(said) or "its inputs.json differs"


def partition_change(old: Any, new: Any) -> str:
    """How a partition's recorded entry (:func:`group_inputs`: ``[rows, errors, config hash, write]``) differs from
    its entry now, in words that follow its id: ``: 40 rows, 0 error records then, 240 rows, 0 error records now``;
    rows added under the same configuration say what adds them (a run that deforms its training tracks too, or one
    that tests more tracks) and that a grid's own test rows are not read to tell."""

    def counts(v: Any) -> str:
        rows, errors = [*v, None, None][:2] if isinstance(v, list) else (None, None)
        return f"{rows} rows, {errors} error records"

    lists = isinstance(old, list) and isinstance(new, list)
    if (new[0] if isinstance(new, list) and new else None) is None:  # (the plan's entry of one to be computed)
        return " not in the store now: computed before the grid is tested"
    if counts(old) != counts(new):
        said = f": {counts(old)} then, {counts(new)} now"
        grew = lists and all(isinstance(v, int) for v in (old[0], new[0], old[1], new[1])) and new[0] > old[0]
        if grew and old[1] == new[1] and old[2:3] == new[2:3]:
            said += (
                ": rows added under the same configuration, as a run that deforms its training tracks too (augment) "
                "adds them; whether this grid's test rows changed is not read from the store, so they are scored again"
            )
        return said
    if lists and old[:3] == new[:3]:
        return " re-embedded: written anew since, as many rows under the same configuration"
    return ": computed under another configuration (config hash)"


def _clean_first(sids: list[str]) -> list[str]:
    """``sids`` with ``clean`` first, the rest in the order given."""
    from repeval.pipeline.stages import CLEAN

    return [sid for sid in sids if sid == CLEAN] + [sid for sid in sids if sid != CLEAN]


def group_trained(
    ctx: RunContext, name: str, inputs: dict[str, Any], dataset: str | None = None, model: str | None = None
) -> bool | None:
    """Whether group ``name`` is done for these inputs (:func:`group_inputs`, compared by :func:`same_inputs` with
    its record, :func:`recorded_inputs` — of ``dataset`` and ``model``, which tell an earlier repeval's record a
    partition embedded anew since): ``None`` when it was never trained — or its results file is unreadable (cut
    short, corrupted: it is trained again, as said in a warning) —, ``False`` when it was trained on other embeddings,
    splits or labels (it is trained again)."""
    path = ctx.run_dir / "groups" / f"{name}.parquet"
    if not path.exists():
        return None
    why = unreadable_parquet(path)
    if why is not None:
        log.warning(
            "%s is unreadable (%s): cut short or corrupted; probe grid %s is trained again to write it anew",
            path, why, name,
        )  # fmt: skip
        return None
    return same_inputs(recorded_inputs(ctx, name, dataset, model), inputs)
