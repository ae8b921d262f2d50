"""A finished probe grid whose deformation scenarios alone changed since it was trained: tested again, not trained.

Training reads the clean train and validation splits alone, so a scenario added to (or removed from) the
configuration, or computed anew under its id, changes a group's test sets and nothing it was trained on (unless it
augments the training data). :func:`scenarios_only` tells such a change
from one that needs training again (:func:`repeval.runner.inputs_change`); :func:`retest_group` then drops a removed
scenario's results and scores an added one's test set with the probes the group tested before — every seed, fold and
selected configuration, whose weights its Tune trials' checkpoints hold (recorded when it was committed, with a digest
of their content, in ``groups/<group>.tested.json``: :func:`write_tested`). Its rows, confusion matrices and failed
test cells are the ones training again would give; when a checkpoint is gone, moved or not the one recorded, the
group is trained again instead.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq

from repeval.deformations import CLEAN
from repeval.words import named

if TYPE_CHECKING:
    from repeval.runner import RunContext, _Pending

log = logging.getLogger("repeval.runner")


def tested_path(ctx: RunContext, name: str) -> Path:
    return ctx.run_dir / "groups" / f"{name}.tested.json"


def scenarios_only(before: Any, now: dict[str, Any]) -> tuple[list[str], list[str]] | None:
    """``(added, removed)`` deformation scenarios when they are all that differs between a group's recorded inputs
    (``before``) and this run's (``now``): the same clean partition, splits and training settings. A scenario whose
    partition differs under the same id (another deformation under its id — an unnamed scenario renumbered by one
    inserted before it — or other rows or error records) is in both: its results are dropped and its test set scored
    again. One the probes trained on (``augment``) must keep its partition. ``None`` otherwise (the group is trained
    again). Both lists follow the configuration's order (``now``'s), the scenarios it no longer has after.

    A scenario is never matched to another id by its partition's fingerprint: a scenario's id seeds its deformation
    (:func:`repeval.deformations.scenario_seed`), so the same steps under another id deform the tracks anew — the old
    id's rows are not the rows a fresh run computes under the new one."""
    if not isinstance(before, dict):
        return None
    from repeval.run.groups import as_recorded

    now = as_recorded(before, now)  # what an earlier repeval's record lacks is not a change
    old, new = before.get("partitions"), now.get("partitions")
    if not isinstance(old, dict) or not isinstance(new, dict) or CLEAN not in old or CLEAN not in new:
        return None
    if {k: v for k, v in before.items() if k != "partitions"} != {k: v for k, v in now.items() if k != "partitions"}:
        return None
    changed = {s for s in set(old) & set(new) if old[s] != new[s]}
    if CLEAN in changed or changed & set(now.get("augment") or []):
        return None
    # in the configuration's order (now's: inputs.json keeps its keys sorted), those no longer in it after
    added = [s for s in new if s not in old or s in changed]
    removed = [s for s in new if s in changed] + [s for s in old if s not in new]
    return (added, removed) if added or removed else None


def changed_words(before: Any, now: dict[str, Any], changed: list[str]) -> str:
    """The ``changed`` scenarios (:func:`scenarios_only`: another partition under the same id), each with how its
    partition differs from the grid's record (:func:`repeval.run.groups.partition_change`): ``noise_10db (40 rows, 0
    error records then, 240 rows, 0 error records now — rows added under the same configuration …)``. The record
    holds each partition's counts, configuration and write, read from its manifest without opening a row file: it
    cannot tell rows added for other tracks (a run deforming its training tracks too) from the grid's own test rows
    rewritten, so either is tested again — from the probes' checkpoints, no training, the same scores when those rows
    did not change."""
    from repeval.run.groups import as_recorded, partition_change

    old = before.get("partitions") if isinstance(before, dict) else None
    new = as_recorded(before, now).get("partitions")
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ", ".join(changed)
    return ", ".join(
        f"{sid} ({partition_change(old.get(sid), new.get(sid)).removeprefix(': ').strip()})" for sid in changed
    )


def changed_scenarios(before: Any, now: dict[str, Any], changed: list[str]) -> str:
    """:func:`changed_words` after ``scenario`` or ``scenarios``, as the run's log and ``repeval plan`` say them."""
    return f"{'scenario' if len(changed) == 1 else 'scenarios'} {changed_words(before, now, changed)}"


def write_tested(ctx: RunContext, name: str, tested: list[dict[str, Any]]) -> None:
    """Record where the weights of the group's tested probes are (their paths relative to the run's Tune storage);
    none when one of them lies outside it (the group is then trained again if a scenario is added)."""
    from repeval.rundir import filesystem_of
    from repeval.runner import _write_text_atomic

    path = tested_path(ctx, name)
    root = filesystem_of(ctx.tune_storage)[1].rstrip("/") + "/"
    if not tested or not all(str(t["path"]).startswith(root) for t in tested):
        path.unlink(missing_ok=True)
        return
    kept = [{**t, "path": str(t["path"])[len(root) :]} for t in tested]
    _write_text_atomic(path, json.dumps(kept, sort_keys=True))


def retest_check(
    run_dir: Path, tune_storage: str, name: str, added: list[str]
) -> tuple[list[dict[str, Any]], str | None]:
    """The probes finished group ``name`` tested (``groups/<name>.tested.json``) and, when they rule out testing it
    without training, why: the record is missing, or (a scenario is ``added``: they are read back) one of their
    checkpoints is gone. What :func:`retest_group` checks first, and ``repeval plan`` alone (it reads no checkpoint:
    whether their content is the one recorded — :func:`_states` — is known only when the run reads them)."""
    from repeval.rundir import TuneStorage
    from repeval.runner import _read_json
    from repeval.tuning.checkpoint import MEMBERS_FILE, PROBES_FILE

    path = run_dir / "groups" / f"{name}.tested.json"
    tested = _read_json(path)
    if not isinstance(tested, list) or not tested or not all(isinstance(t, dict) for t in tested):
        return [], f"the record of the probes it selected, {path.name}, is missing or unreadable"
    if not added:
        return tested, None
    storage = TuneStorage(tune_storage)
    for rel in dict.fromkeys(t.get("path") for t in tested):
        if not isinstance(rel, str) or not all(storage.exists(f"{rel}/{f}") for f in (MEMBERS_FILE, PROBES_FILE)):
            return tested, _unreadable(tune_storage)
    return tested, None


def _unreadable(tune_storage: str) -> str:
    return (
        f"the probes it selected cannot be read back from their Tune checkpoints under {tune_storage} (moved, "
        "deleted or trained again since)"
    )


def _states(ctx: RunContext, tested: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The state dict of each tested entry, read from its trial checkpoint; ``None`` when one is missing or its
    content is not the one recorded."""
    import io

    import torch

    from repeval.rundir import TuneStorage
    from repeval.tuning.checkpoint import MEMBERS_FILE, PROBES_FILE
    from repeval.tuning.group import checkpoint_digest

    storage = TuneStorage(ctx.tune_storage)
    loaded: dict[str, dict[str, Any]] = {}
    out = []
    for t in tested:
        rel = t.get("path")
        if not isinstance(rel, str):
            return None
        if rel not in loaded:
            try:
                with storage.fs.open_input_stream(f"{storage.base}/{rel}/{MEMBERS_FILE}") as f:
                    members = f.read()
                with storage.fs.open_input_stream(f"{storage.base}/{rel}/{PROBES_FILE}") as f:
                    probes = f.read()
            except (OSError, ValueError):
                return None
            if checkpoint_digest(members, probes) != t.get("digest"):
                return None
            loaded[rel] = torch.load(io.BytesIO(probes), weights_only=True)
        state = loaded[rel].get(str(t.get("member")))
        if state is None:
            return None
        out.append(state)
    return out


def retest_group(
    ctx: RunContext, item: _Pending, added: list[str], removed: list[str], summary: dict[str, Any]
) -> str | None:
    """Bring finished group ``item`` to its configured scenarios without training it: drop the ``removed``
    scenarios' rows, confusion matrices and failed cells, test its probes on the ``added`` ones. Returns ``None``
    when done, else why it could not (nothing written: the group is then trained again)."""
    from repeval.metrics import write_confusion
    from repeval.run.groups import recorded_inputs
    from repeval.run.train import read_failed
    from repeval.runner import _record_failed, _write_atomic, _write_text_atomic, fold_suffix, group_name
    from repeval.tuning.grid import results_table
    from repeval.tuning.results import with_result_columns

    groups = ctx.run_dir / "groups"
    before_inputs = recorded_inputs(ctx, item.name, item.dataset, item.model)  # (its record is replaced below)
    tested, why = retest_check(ctx.run_dir, ctx.tune_storage, item.name, added)
    if why is not None:
        return why
    states = _states(ctx, tested) if added else []
    if states is None:
        return _unreadable(ctx.tune_storage)
    before = with_result_columns(pq.read_table(groups / f"{item.name}.parquet")).to_pylist()
    gone = {(r["probe"], r["seed"], r["scenario"]) for r in before if r["scenario"] in removed}
    rows = [r for r in before if r["scenario"] not in removed]
    confusion: dict[tuple[str, int, str], list[list[int]]] = {}
    failed: list[dict[str, Any]] = []
    labels: list[str] = []
    if added:
        try:
            new_rows, confusion, failed, labels = _score(ctx, item, added, tested, states, _target(item, before))
        except Exception:  # trained again, as it would have been before: never a wrong result
            log.exception("%s: testing the selected probes on %s raised", item.name, named("scenario", added))
            return f"testing the probes it selected on {named('scenario', added)} raised (logged above)"
        rows += new_rows
    # the inputs record goes first: a rerun stopped before the results are written trains the group again
    (groups / f"{item.name}.inputs.json").unlink(missing_ok=True)
    cell = group_name(item.exp, item.dataset, item.model)
    suffix = fold_suffix(item.fold)
    for probe, seed, sid in gone:
        (ctx.run_dir / "confusion" / f"{cell}__{probe}__{seed}__{sid}{suffix}.json").unlink(missing_ok=True)
    for (probe, seed, sid), matrix in confusion.items():
        write_confusion(
            ctx.run_dir / "confusion" / f"{cell}__{probe}__{seed}__{sid}{suffix}.json", np.asarray(matrix), labels
        )
    path = ctx.run_dir / "failed.parquet"
    key = (item.exp.task.name, item.dataset, item.model, item.fold)
    kept = read_failed(path)
    kept = [f for f in kept if (f["task"], f["dataset"], f["model"], f["fold"]) == key and f["scenario"] not in removed]
    _record_failed(ctx, item, kept + [{**f, "fold": item.fold} for f in failed])
    summary["failed"] += [{**f, "fold": item.fold} for f in failed]
    _write_atomic(results_table(ctx.run_id, rows), groups / f"{item.name}.parquet")
    _write_text_atomic(groups / f"{item.name}.inputs.json", json.dumps(item.inputs, sort_keys=True))
    changed = [s for s in added if s in removed]  # another partition under the same id: its rows replaced
    new, gone_ids = [s for s in added if s not in changed], [s for s in removed if s not in changed]
    said = [f"tested on the added {named('scenario', new)} with the probes it selected before"] if new else []
    said += [
        f"tested again on the changed {changed_scenarios(before_inputs, item.inputs, changed)} with the "
        "probes it selected before"
    ] if changed else []  # fmt: skip
    said += [f"the results of the removed {named('scenario', gone_ids)} dropped"] if gone_ids else []
    log.info(
        "%s: %s — not trained again: only its deformation scenarios changed, not what it trains on",
        item.name, "; ".join(said),
    )  # fmt: skip
    summary["retested"] = summary.get("retested", 0) + 1
    return None


#: how results named a regression task's targets given without a name before they took the label column's name
_UNNAMED = re.compile(r"dim\d+")


def _target(item: _Pending, before: list[dict[str, Any]]) -> str | None:
    """What names group ``item``'s regression targets given without a name in the rows of its added scenarios: the
    label column's name (:func:`~repeval.run.groups.target_name`), as training names them — or, for a group whose
    results (``before``) name them ``dim0``, ``dim1``, … (trained by a repeval before targets took that name),
    ``None``, which keeps those names: each target has one name in a group's per-label rows."""
    from repeval.run.groups import target_name

    labels = {r["label"] for r in before if r.get("label") is not None}
    if item.exp.task.effective_type == "regression" and labels and all(_UNNAMED.fullmatch(x) for x in labels):
        return None
    return target_name(item.exp, item.dataset)


def _score(
    ctx: RunContext,
    item: _Pending,
    added: list[str],
    tested: list[dict[str, Any]],
    states: list[dict[str, Any]],
    target: str | None,
) -> tuple[list[dict[str, Any]], dict[tuple[str, int, str], list[list[int]]], list[dict[str, Any]], list[str]]:
    """The ``added`` test sets of group ``item`` scored with its ``tested`` probes (their ``states``), as its
    training would have: result rows, confusion matrices, failed test cells, and the task's labels; ``target`` names
    regression targets given without a name (:func:`_target`)."""
    from repeval.probes.inference import predict
    from repeval.run.train import group_probe_data
    from repeval.tuning.search import expand_all, sampled_config
    from repeval.tuning.trial import EvalSettings, scored_tests

    run, exp = ctx.cfg.run, item.exp
    data = group_probe_data(ctx, item, added, target)  # the clean splits and the added scenarios' test sets
    specs = expand_all(exp.downstream_models, exp.task.effective_type)
    ev = EvalSettings(list(exp.metric_names), run.bootstrap_resamples, run.ci_alpha, run.seed, run.max_epochs)
    base = {"task": exp.task.name, "task_type": data.task_type, "dataset": item.dataset, "model": item.model}
    rows: list[dict[str, Any]] = []
    confusion: dict[tuple[str, int, str], list[list[int]]] = {}
    failed: list[dict[str, Any]] = []
    for t, state in zip(tested, states, strict=True):
        pcfg = sampled_config(specs[t["spec"]].points[t["point"]], t["sampled"])
        scores = {
            sid: data.track_scores(sid, predict(pcfg, data, state, x, data.test_counts.get(sid)))
            for sid, (x, _, _) in data.tests.items()
        }
        got, mats, bad = scored_tests(data, scores, ev)  # clean's rows are scored again for the changes (delta)
        probe, seed = t["probe"], t["seed"]
        rows += [{**base, "probe": probe, "seed": seed, **r, "fold": item.fold} for r in got if r["scenario"] in added]
        confusion.update({(probe, seed, sid): m for sid, m in mats.items() if sid in added})
        failed += [{**base, "probe": probe, "seed": seed, "params": t["params"], "scenario": sid, "reason": why}
                   for sid, why in bad.items() if sid in added]  # fmt: skip
    return rows, confusion, failed, list(data.classes)
