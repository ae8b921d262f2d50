"""What runs inside one Ray Tune trial.

A trial trains a *unit*: a list of members ``(probe configuration, seed)``. In grid mode a unit
is a chunk of configurations that share a stack shape (trained vectorised, see
:func:`repeval.probes.train_probes`) with all their seeds; in tune mode it is one sampled
configuration with all its seeds, reporting after every validation so a scheduler (ASHA) can
stop it.

A trial's checkpoint — what it holds, and its reuse by a rerun — is :mod:`repeval.tuning.checkpoint`'s; per-member
training curves are written as TensorBoard event files under ``<trial dir>/members/``; Tune's
own logger writes the trial's reported scalars next to them.

A trial's code runs once: when it raises, the attempt Tune starts again (``tuner.TRIAL_RETRIES``, meant for a worker
that died) raises the same error at once instead of training the unit again
(:func:`repeval.tuning.notes.raised_once`); what it warned is written beside its results as it trains
(:mod:`repeval.tuning.notes`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from repeval.probes import Halving, ProbeData, TrainResult
from repeval.tuning.checkpoint import _reuse_finished, _save_and_report
from repeval.tuning.notes import _KeptBeside, raised_once
from repeval.warn import SaidByTestSets, TrialWarnings, member_scope, warn_once
from repeval.words import counted

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One (configuration, seed) of a unit; ``key`` names it in checkpoints and reports."""

    spec: int
    point: int
    name: str
    seed: int
    config: Any  # ProbeConfig
    #: successive halving inside the member's stack (``scheduler: asha`` on a grid)
    halving: Halving | None = None

    @property
    def key(self) -> str:
        return f"{self.spec}:{self.point}:{self.seed}"


@dataclass
class Unit:
    members: list[Member]
    #: test every member in the trial (select: all); otherwise only keep the unit's best (select: best)
    evaluate: bool
    spec: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSettings:
    metric_names: list[str]
    bootstrap_resamples: int
    ci_alpha: float
    seed: int
    max_epochs: int | None


def test_rows(
    data: ProbeData, scores: dict[str, np.ndarray], ev: EvalSettings
) -> tuple[list[dict[str, Any]], dict[str, list[list[int]]]]:
    """Metric rows (aggregate and per label, with bootstrap intervals) and confusion matrices per scenario; a
    deformed scenario's rows carry their change from clean on the tracks both test sets hold
    (:func:`repeval.tuning.paired.add_deltas`). The metrics' warnings about a test set name it, each said once for
    the test sets that gave it word for word (:class:`repeval.warn.SaidByTestSets`)."""
    from repeval.metrics import compute_metrics, confusion_matrix
    from repeval.tuning.paired import add_deltas, tracks_scored

    rows: list[dict[str, Any]] = []
    confusion: dict[str, list[list[int]]] = {}
    with SaidByTestSets() as said:
        for sid, sc in scores.items():
            _, y, _ = data.tests[sid]
            ci = ev.bootstrap_resamples > 0
            with said.test_set(sid):
                got = compute_metrics(
                    ev.metric_names, data.task_type, y, sc, data.classes, ci=ci,
                    n_resamples=max(1, ev.bootstrap_resamples), alpha=ev.ci_alpha, seed=ev.seed,
                )  # fmt: skip
            for r in got:
                rows.append(
                    {"scenario": sid, "metric": r.metric, "label": r.label, "value": r.value,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "n_test": tracks_scored(y, data.classes, r.label)}
                )  # fmt: skip
            if data.task_type in ("multiclass_classification", "key_estimation"):
                confusion[sid] = confusion_matrix(y, sc, data.classes, task_type=data.task_type).tolist()
        add_deltas(rows, data, scores, ev.metric_names, said)
    return rows, confusion


def _magnitude(x: np.ndarray) -> float:
    """The largest absolute value in ``x`` (two reductions, no copy: a training split may be large)."""
    x = np.asarray(x)
    return float(max(abs(float(x.max())), abs(float(x.min())))) if x.size else 0.0


def nonfinite_test(data: ProbeData, scenario: str, scores: np.ndarray) -> str | None:
    """Why test set ``scenario``'s ``scores`` (one row per track) cannot be scored — some are NaN or infinite — or
    ``None`` when every one is finite. The metrics refuse such scores; the reason names the scenario, how many tracks
    got them, and how far the scenario's embeddings lie from the training split's (inputs far outside it overflow a
    probe's float32 outputs)."""
    sc = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
    bad = int(np.count_nonzero(~np.isfinite(sc).all(axis=1)))
    if not bad:
        return None
    x = data.tests[scenario][0]
    return (
        f"test set {scenario!r}: {bad} of {counted(len(sc), 'track')} got non-finite scores (NaN or inf), so this probe and "
        f"seed are not scored on it (its other test sets are); the largest embedding magnitude there is "
        f"{_magnitude(x):.3g}, in the training split {_magnitude(data.x_train):.3g} — embeddings far outside the "
        "training range overflow the probe's outputs (check the deformation and the model on that scenario), "
        "otherwise the probe diverged (lower the learning rate or standardise the embeddings)"
    )


def scored_tests(
    data: ProbeData, scores: dict[str, np.ndarray], ev: EvalSettings
) -> tuple[list[dict[str, Any]], dict[str, list[list[int]]], dict[str, str]]:
    """:func:`test_rows` of the test sets whose scores are all finite, and ``{scenario: reason}``
    (:func:`nonfinite_test`) of the others: a probe that gives non-finite scores on one test set is a failure of
    that (probe, seed, scenario) cell alone, recorded with its reason, never of the trial or of the train stage."""
    failed = {sid: why for sid, sc in scores.items() if (why := nonfinite_test(data, sid, sc)) is not None}
    rows, confusion = test_rows(data, {sid: sc for sid, sc in scores.items() if sid not in failed}, ev)
    return rows, confusion, failed


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def member_report(m: Member, r: TrainResult) -> dict[str, Any]:
    return {
        "key": m.key,
        "name": m.name,
        "seed": m.seed,
        "best_epoch": r.best_epoch,
        "best_criterion": _finite(r.best_criterion),
        "epochs": r.epochs,
        "steps": r.steps,
        "failed": r.failed,
        "stopped": r.stopped,
        "history": r.history,
    }


def unit_best(unit: Unit, reports: list[dict[str, Any]], task_type: str) -> tuple[int, int] | None:
    """``(spec, point)`` with the best mean criterion over its seeds (a point with a failed seed is out)."""
    from repeval.probes.losses import criterion_of

    by_point: dict[tuple[int, int], list[float | None]] = {}
    mode_of: dict[tuple[int, int], str] = {}
    for m, rep in zip(unit.members, reports, strict=True):
        by_point.setdefault((m.spec, m.point), []).append(None if rep["failed"] else rep["best_criterion"])
        mode_of[(m.spec, m.point)] = criterion_of(m.config, task_type)[1]
    best, best_val = None, 0.0
    for key, vals in by_point.items():
        if any(v is None for v in vals):
            continue
        sign = -1.0 if mode_of[key] == "min" else 1.0
        score = sign * float(np.mean(vals))  # type: ignore[arg-type]
        if best is None or score > best_val:
            best, best_val = key, score
    return best


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name)


def write_tensorboard(
    trial_dir: str | None, members: list[Member], results: list[TrainResult], group: str | None = None
) -> None:
    """One TensorBoard run per member: ``members/<probe>__seed<seed>`` with its per-epoch curves —
    ``members/<group>/<probe>__seed<seed>`` in an experiment that several groups share, whose name does not tell them
    apart."""
    if not trial_dir:
        return
    from repeval.tuning.events import write_scalars

    folder = os.path.join(trial_dir, "members", *([_safe(group)] if group else []))
    for m, r in zip(members, results, strict=True):
        write_scalars(
            os.path.join(folder, _safe(f"{m.name}__seed{m.seed}")),
            (
                (key, rec[key], int(rec["epoch"]))
                for rec in r.history
                for key in ("train_loss", "val_loss", "val_criterion", "best_criterion")
                if key in rec and math.isfinite(rec[key])
            ),
        )


def run_unit(
    unit: Unit,
    data: ProbeData,
    ev: EvalSettings,
    *,
    on_validation: Any = None,
    device: str = "cpu",
) -> tuple[list[TrainResult], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Train a unit; returns results, member reports, and the state dicts worth keeping."""
    from repeval.probes import train_probes

    results = train_probes(
        [(m.config, m.seed) for m in unit.members],
        data,
        max_epochs=ev.max_epochs,
        evaluate_tests=unit.evaluate,
        on_validation=on_validation,
        device=device,
        halving=[m.halving for m in unit.members] if any(m.halving for m in unit.members) else None,
    )
    reports = [member_report(m, r) for m, r in zip(unit.members, results, strict=True)]
    keep: dict[str, dict[str, Any]] = {}
    if unit.evaluate:
        for i, (m, r, rep) in enumerate(zip(unit.members, results, reports, strict=True)):
            if r.failed is None:
                with member_scope(i):  # its test sets' warnings are this member's (TrialWarnings)
                    rep["rows"], rep["confusion"], rep["test_failed"] = scored_tests(data, r.test_scores, ev)
                keep[m.key] = r.state_dict
    else:
        best = unit_best(unit, reports, data.task_type)
        for m, r in zip(unit.members, results, strict=True):
            if best is not None and (m.spec, m.point) == best:
                keep[m.key] = r.state_dict
    return results, reports, keep


def run_caught(
    unit: Unit, data: ProbeData, ev: EvalSettings, config: dict[str, Any], on_validation: Any = None
) -> tuple[list[TrainResult], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """:func:`run_unit` on the device the trial was granted (:func:`_device`), catching what repeval warns meanwhile
    (:class:`repeval.warn.TrialWarnings`): each member's report gets the warnings of its training and tests, which
    the driver says again (:meth:`repeval.tuning.group._Group.collect`) — the user does not see this process's log.
    A trial that raises, that a scheduler stops at a report (``on_validation``'s) or whose worker dies (killed, out of
    memory: Tune starts it again, once) leaves no checkpoint: what it warned until then is written beside its results
    (:data:`repeval.tuning.notes.WARNINGS_FILE`) when it changed — after each validation (before its report, where a
    scheduler may stop the trial), once trained, and as it raises — for the driver to say too (a failed probe's
    warnings are the ones its user needs most). A retry that dies before warning leaves the first attempt's."""
    with TrialWarnings() as caught:
        kept = _KeptBeside(caught, len(unit.members))

        def validated(epoch: int, recs: list[tuple[int, dict[str, float]]]) -> None:
            kept.write()
            if on_validation is not None:
                on_validation(epoch, recs)

        try:
            out = run_unit(unit, data, ev, on_validation=validated, device=_device(config))
        finally:
            kept.write()
    caught.into(out[1])
    return out


def _device(config: dict[str, Any]) -> str:
    """``cuda`` when the trial was granted a GPU (``use_gpu``) and torch here can use it, else ``cpu`` — with a
    warning, once per process, when the GPU was granted but torch cannot use it: the trial holds it and trains on the
    CPU."""
    if not config.get("use_gpu"):
        return "cpu"
    import socket

    from repeval.models._common import cuda_unusable

    why = cuda_unusable()
    if why is None:
        return "cuda"
    warn_once(
        log, "granted GPU unused",
        "a probe trial on %s was granted a GPU, but %s: its probes train on the CPU while the GPU stays reserved for "
        "it — install a CUDA build of torch on the GPU nodes, or set run.resources.trial_num_gpus: 0 (or use_gpu: "
        "never) to train probes on CPUs alone",
        socket.gethostname(), why,
    )  # fmt: skip
    return "cpu"


def resuming(fn: Any, *, judged: bool = False) -> Any:
    """Wrap a trial function so that a unit whose checkpoint an interrupted run already persisted reports that
    checkpoint instead of training again (``finished``, ``judged``: see
    :func:`repeval.tuning.checkpoint._reuse_finished`), and so that a trial whose code raised is not run again by
    Tune's retry (:func:`repeval.tuning.notes.raised_once`)."""

    def trial(config: dict[str, Any], finished: dict[str, str] | None = None, **kwargs: Any) -> None:
        with raised_once():
            if _reuse_finished(config, finished, judged=judged):
                return
            fn(config, **kwargs)

    trial.__name__ = getattr(fn, "__name__", "trial")
    trial.__qualname__ = getattr(fn, "__qualname__", "trial")
    return trial


def _summary(reports: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    from repeval.cpu import huge_pages_status, keep_freed_memory, mkl_status

    crit = [r["best_criterion"] for r in reports if not r["failed"] and r["best_criterion"] is not None]
    return {
        "train_seconds": seconds,
        "mkl": mkl_status(),  # the trial's own process: on a cluster its node's environment decides
        "pages": huge_pages_status(),  # likewise (speed only: results do not depend on it)
        "allocator": keep_freed_memory(),  # likewise (speed only)
        "members": len(reports),
        "failed_members": sum(1 for r in reports if r["failed"]),
        "best_criterion": float(np.mean(crit)) if crit else float("nan"),
        "epochs": int(sum(r["epochs"] for r in reports)),
    }


@dataclass
class BatchData:
    """What a trial trains on: the embeddings of the groups sharing its Tune experiment (one or several, see
    :func:`repeval.tuning.grid.run_groups`) — one object-store reference per group, the group of each unit, and each
    group's evaluation settings; the groups' names when several share it (their TensorBoard curves are filed under
    them), else none: the experiment is named after its one group."""

    refs: list[Any]
    unit_group: list[int]
    evs: list[EvalSettings]
    names: list[str] = field(default_factory=list)

    def group_name(self, unit: int) -> str | None:
        return self.names[self.unit_group[unit]] if self.names else None

    def for_unit(self, unit: int) -> tuple[ProbeData, EvalSettings]:
        import ray

        gi = self.unit_group[unit]
        return ray.get(self.refs[gi]), self.evs[gi]


def _trial_process(config: dict[str, Any], data: BatchData) -> tuple[ProbeData, EvalSettings]:
    """Set up a trial's process — freed memory kept, Tune's SIGTERM a quiet exit (see the module), torch's threads
    ``OMP_NUM_THREADS`` — and give its unit's group's data and evaluation settings."""
    import torch

    from repeval.cpu import keep_freed_memory
    from repeval.quiet_exit import quiet_exit_requests_in_callbacks

    keep_freed_memory()
    quiet_exit_requests_in_callbacks()  # Tune ends this actor with SIGTERM (see the module)
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    return data.for_unit(config["unit"])


def grid_trial(config: dict[str, Any], data: BatchData, units: list[Unit]) -> None:
    """A grid-mode trial: train one unit (vectorised), report once with a checkpoint."""
    from ray import tune

    probe_data, ev = _trial_process(config, data)
    unit = units[config["unit"]]
    t0 = time.perf_counter()
    results, reports, keep = run_caught(unit, probe_data, ev, config)
    seconds = time.perf_counter() - t0
    write_tensorboard(tune.get_context().get_trial_dir(), unit.members, results, data.group_name(config["unit"]))
    _save_and_report(_summary(reports, seconds), reports, keep, config)


def tune_trial(config: dict[str, Any], data: BatchData, units: list[Unit]) -> None:
    """A tune-mode trial: one (sampled) configuration × every seed, reporting after each validation."""
    from ray import tune

    from repeval.tuning.search import ProbePoint, sampled_config

    probe_data, ev = _trial_process(config, data)
    template = units[config["unit"]]
    sampled = dict(config.get("sampled") or {})
    point = template.members[0]
    cfg = sampled_config(ProbePoint(point.name, point.config), sampled)
    unit = Unit(
        [Member(m.spec, m.point, m.name, m.seed, cfg) for m in template.members], template.evaluate, template.spec
    )
    latest: dict[int, float] = {}
    reported: list[dict[str, Any]] = []  # kept in the checkpoint: a rerun that reuses it replays them
    t0 = time.perf_counter()

    def on_validation(epoch: int, recs: list[tuple[int, dict[str, float]]]) -> None:
        for i, rec in recs:
            latest[i] = rec["best_criterion"]
        vals = [v for v in latest.values() if math.isfinite(v)]
        if vals:
            # fsum: the mean does not depend on the order the unit's stacks validated their members in
            reported.append({"best_criterion": math.fsum(vals) / len(vals), "epoch": epoch, "done": False})
            tune.report(dict(reported[-1]))

    results, reports, keep = run_caught(unit, probe_data, ev, config, on_validation)
    seconds = time.perf_counter() - t0
    write_tensorboard(tune.get_context().get_trial_dir(), unit.members, results)
    summary = _summary(reports, seconds)
    summary["sampled"] = json.dumps(sampled)
    for rep in reports:
        rep["sampled"] = sampled
    if template.evaluate is False:  # select: best — keep this trial's configuration (all seeds)
        keep = {m.key: r.state_dict for m, r in zip(unit.members, results, strict=True) if r.failed is None}
    _save_and_report(summary, reports, keep, config, reported)
