"""One group of the grid driver (:mod:`repeval.tuning.grid`) — (task, dataset, embedding model[, fold]) — its plan,
the Tune experiments of its tune-mode specs, and what its trials produced: result, history and probe rows, failed
trials with their reason, and the ``select: best`` configurations, tested here.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from repeval.config import Config, ExperimentConfig
from repeval.probes import ProbeData
from repeval.probes.inference import predict
from repeval.probes.losses import criterion_of
from repeval.tuning.checkpoint import MEMBERS_FILE, PROBES_FILE
from repeval.tuning.notes import left_warnings
from repeval.tuning.search import expand_all, tune_space
from repeval.tuning.space_checks import asha_budget, asha_idle
from repeval.tuning.trial import BatchData, EvalSettings, Member, Unit, resuming, scored_tests, tune_trial
from repeval.tuning.tuner import _fit, sampler
from repeval.tuning.units import _fingerprint, data_identity, marker_record, plan_units
from repeval.warn import SaidByTrials
from repeval.words import counted

# the grid driver's logger, as before this module was split from it: the command line's lines name it
log = logging.getLogger("repeval.tuning.grid")


@dataclass
class GroupResult:
    rows: list[dict[str, Any]]
    history: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    trial_seconds: float
    wall_seconds: float
    #: one row per probe configuration: spec, name, params, mean criterion, selected
    probes: list[dict[str, Any]] = field(default_factory=list)
    #: (probe, seed, scenario) → confusion matrix (labels = the task's classes)
    confusion: dict[tuple[str, int, str], list[list[int]]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    experiments: list[str] = field(default_factory=list)
    trials: int = 0
    #: trials whose unit an interrupted run had finished: its checkpoint was reported, nothing trained
    reused_trials: int = 0
    #: the MKL code paths the trials ran (:func:`repeval.cpu.mkl_status` in each trial's process)
    mkl: set[str] = field(default_factory=set)
    #: the pages the trials' large tensors went on (:func:`repeval.cpu.huge_pages_status` in each trial's process)
    pages: set[str] = field(default_factory=set)
    #: what the trials' allocator does with freed blocks (:func:`repeval.cpu.keep_freed_memory` in each trial's process)
    allocator: set[str] = field(default_factory=set)
    #: every tested (probe, seed): its row name, configuration (spec, point, sampled values) and the trial checkpoint
    #: holding its weights (``path`` on the Tune storage's filesystem, ``member`` key, ``digest`` of its files): a rerun
    #: that adds a deformation scenario tests them on it without training again (:mod:`repeval.retest`)
    tested: list[dict[str, Any]] = field(default_factory=list)


def _read_checkpoint(result: Any) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]] | None:
    """A finished trial's member reports, kept state dicts, and where they are: ``{"path", "digest"}``
    (:func:`checkpoint_digest`)."""
    import torch

    if result.checkpoint is None:
        return None
    with result.checkpoint.as_directory() as d:
        members_file = Path(d) / MEMBERS_FILE
        if not members_file.exists():
            return None
        members, probes = members_file.read_bytes(), (Path(d) / PROBES_FILE).read_bytes()
        reports = json.loads(members)
        states = torch.load(io.BytesIO(probes), weights_only=True)
    return reports, states, {"path": str(result.checkpoint.path), "digest": checkpoint_digest(members, probes)}


def checkpoint_digest(members: bytes, probes: bytes) -> str:
    """What identifies a trial checkpoint's content: a hash of its ``members.json`` and ``probes.pt``."""
    return hashlib.sha256(hashlib.sha256(members).digest() + probes).hexdigest()


#: what a traceback says between an exception and the next of its chain → how a reason joins them: one raised
#: while handling it (a cleanup that failed too), or raised from it (``raise … from exc``)
_CHAINED = {
    "During handling of the above exception, another exception occurred:": "; then, while handling it: ",
    "The above exception was the direct cause of the following exception:": "; which caused: ",
}


def _reason(err: Any) -> str:
    """A failure's reason from its error or traceback text: the exception's line (the text's last). One raised while
    handling another, or from another, keeps that one too, first — it is the cause, and the last line alone would
    lose it: ``ValueError: bad; then, while handling it: RuntimeError: cleanup failed``, ``OSError: …; which caused:
    ValueError: …`` (unless the later line already says it)."""
    pieces = re.split(f"({'|'.join(map(re.escape, _CHAINED))})", str(err))
    found: list[tuple[str, str]] = []  # (how it follows the one before, its line)
    for how, part in zip(["", *pieces[1::2]], pieces[::2], strict=True):
        lines = [ln.strip() for ln in part.splitlines() if ln.strip()]
        if lines and lines[-1] not in (line for _, line in found):
            found.append((_CHAINED.get(how, ""), lines[-1]))
    said = [line.split(": ", 1)[-1] for _, line in found]  # what each says, without its type
    kept = [(how, line) for i, (how, line) in enumerate(found)
            if len(said[i]) < 8 or not any(said[i] in later for _, later in found[i + 1:])]  # fmt: skip
    return "".join(f"{how if i else ''}{line[: 500 // len(kept)]}" for i, (how, line) in enumerate(kept)) or (
        "trial failed"
    )


def best_candidate(cands: list[tuple[Any, ...]], mode: str) -> tuple[Any, ...]:
    """``select: best``'s choice among ``(mean criterion, point, …, sampled, …)`` candidates: the best mean criterion,
    and among equal ones the first point of the grid (then the first sample, by its values) — not the first to
    finish, which depends on the order trials ran in, and differs between an interrupted and resumed run and one run
    through, or between two runs with concurrent trials. Small validation sets tie often (an accuracy over 10 tracks)."""
    sign = -1.0 if mode == "min" else 1.0
    ordered = sorted(cands, key=lambda c: (c[1], json.dumps(c[4], sort_keys=True, default=str)))
    return max(ordered, key=lambda c: sign * c[0])


def exception_reason(exc: BaseException) -> str:
    """:func:`_reason` of an exception caught here (its chain included)."""
    return _reason("".join(traceback.format_exception(exc)))


@dataclass
class GroupInput:
    """One group to train: (task, dataset, model[, fold]) and its embeddings; ``name`` names its Tune experiments."""

    exp: ExperimentConfig
    dataset: str
    model: str
    data: ProbeData
    name: str = ""
    #: ``data``'s object-store reference when the caller already put it there (:func:`repeval.tuning.grid.share`); else it is put once
    ref: Any = None
    #: the fold of a ``split_type: all`` dataset (``None``: one split)
    fold: int | None = None
    #: what the group is trained on (:func:`repeval.runner.group_inputs`), recorded in its experiments' markers
    inputs: dict[str, Any] | None = None
    #: the latest write time (ns) of the row part files of the store partitions ``data`` was read from
    #: (:func:`repeval.run.groups.partitions_written_ns`), asked only of a Tune marker an earlier repeval wrote without
    #: the data's identity (:func:`repeval.tuning.tuner._rewritten_since`); ``None``: not known
    written_ns: Callable[[], int | None] | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.cell

    @property
    def cell(self) -> str:
        """``<task>__<dataset>__<model>``: the group without its fold — what every fold shares."""
        return f"{self.exp.task.name}__{self.dataset}__{self.model}"


def _unless_idle(spec: Any, max_epochs: int | None, group: str) -> Any:
    """``spec``, without the halving of its stacks (``scheduler`` on a grid) when it would stop nothing under
    ``run.max_epochs`` (:func:`asha_idle`): said as a Tune-mode spec's scheduler left unmade is
    (:meth:`_Group.run_tune_mode`)."""
    idle = asha_idle(spec, max_epochs)  # the rule repeval validate and repeval plan apply
    if spec.scheduler is None or spec.tune_mode or idle is None:
        return spec
    log.info("%s: %s's ASHA scheduler stops none, so none is made: %s", group, spec.name, idle[0])
    return replace(spec, scheduler=None)


class _Group:
    """A group's plan (specs, seeds, grid- and tune-mode units) and what its trials produced."""

    def __init__(self, cfg: Config, inp: GroupInput, slots: int, said: SaidByTrials) -> None:
        run = cfg.run
        self.inp, self.data = inp, inp.data
        specs = expand_all(inp.exp.downstream_models, inp.exp.task.effective_type)
        self.specs = [_unless_idle(spec, run.max_epochs, inp.name) for spec in specs]
        seeds = [run.seed + s for s in range(run.seeds)]
        self.ev = EvalSettings(
            list(inp.exp.metric_names), run.bootstrap_resamples, run.ci_alpha, run.seed, run.max_epochs
        )
        self.base = {"task": inp.exp.task.name, "task_type": self.data.task_type, "dataset": inp.dataset,
                     "model": inp.model}  # fmt: skip
        self.out = GroupResult([], [], [], 0.0, 0.0, labels=list(self.data.classes))
        self.slots = slots
        self.grid_units, self.tune_units = plan_units(
            self.specs, self.data, seeds, run.vectorize, slots, run.pack_trials
        )
        #: what its trials warned (in their processes, whose logs the user does not see), with its batch's other
        #: groups': said once every trial of the batch is in (:func:`repeval.tuning.grid.run_groups`)
        self.said = said
        said.expect(inp.name)
        self._data_identity: str | None = None
        #: select: best — (spec) → [(mean criterion, point, {seed: state}, reports, sampled, {seed: its checkpoint})]
        self.candidates: dict[
            int, list[tuple[float, int, dict[int, dict[str, Any]], list[dict[str, Any]], dict, dict[int, dict]]]
        ] = {}

    def fingerprint(self) -> str:
        return _fingerprint(self.grid_units, self.ev, self.data)

    def data_identity(self) -> str:
        """What the group's trials train and test on (:func:`repeval.tuning.units.data_identity`; computed once)."""
        if self._data_identity is None:
            self._data_identity = data_identity(self.data)
        return self._data_identity

    def ref(self) -> Any:
        """The group's embeddings in the object store (put once, shared by all its trials and experiments)."""
        if self.inp.ref is None:
            import ray

            self.inp.ref = ray.put(self.data)
        return self.inp.ref

    def criterion(self, m: Member, sampled: dict[str, Any] | None) -> str:
        """The validation criterion a member's ``best_criterion`` is a value of (recorded with it: the report picks
        probes by it, and a preset's criterion depends on the task type). A sample that makes no probe (values
        validation could not try together: its trial failed saying why) has its grid point's criterion: recording
        that failure must not stop the train stage."""
        from repeval.tuning.search import sampled_config

        point = self.specs[m.spec].points[m.point]
        try:
            cfg = sampled_config(point, sampled or {})
        except ValueError:
            cfg = point.config
        return criterion_of(cfg, self.data.task_type)[0]

    def probe_row(self, m: Member, name: str, sampled: dict[str, Any] | None, status: str,
                  rep: dict[str, Any] | None = None, selected: bool = False) -> dict[str, Any]:  # fmt: skip
        """``probes/<group>.parquet``'s row of member ``m`` (reported as ``name``); ``rep`` its trial's report."""
        rep = rep or {}
        return {**self.base, "spec": self.specs[m.spec].name, "probe": name, "seed": m.seed,
                "params": self.params(m, sampled), "criterion": self.criterion(m, sampled),
                "best_criterion": rep.get("best_criterion"), "best_epoch": rep.get("best_epoch"),
                "epochs": rep.get("epochs"), "status": status, "selected": selected}  # fmt: skip

    def params(self, m: Member, sampled: dict[str, Any] | None) -> str:
        """The values that tell member ``m``'s configuration from its spec's others (a grid's, a space's), as JSON."""
        return json.dumps({**self.specs[m.spec].points[m.point].params, **(sampled or {})})

    def failure(
        self, m: Member, name: str, sampled: dict[str, Any] | None, reason: str, scenario: str | None = None
    ) -> dict[str, Any]:
        """``failed.parquet``'s row: which configuration (its ``params``: the sampled ones of a search space share
        their probe's name) failed, and why; ``scenario``: the one test set it could not be scored on (it trained,
        and its other test sets are in the results), ``None`` when its training failed."""
        return {**self.base, "probe": name, "seed": m.seed, "params": self.params(m, sampled), "scenario": scenario,
                "reason": reason}  # fmt: skip

    def collect(self, unit: Unit, r: Any, name_suffix: str = "", sampled: dict[str, Any] | None = None) -> None:
        out = self.out
        out.trials += 1
        got = None if r.error is not None else _read_checkpoint(r)
        if got is None:
            # the trial raised (each of its configurations failed, with the exception as reason), or the scheduler
            # stopped it before it finished (pruned, not failed); what it warned until then is beside its results
            left = left_warnings(r.filesystem, r.path, len(unit.members))
            self.said.add_left_out(self.inp.name, max((rep.get("warnings_left_out", 0) for rep in left), default=0))
            # Tune's ASHA stopped it after the epoch of its last report: said as the grid's halving says it
            epoch = None if r.error is not None else (r.metrics or {}).get("epoch")
            stopped = {"epochs": int(epoch)} if isinstance(epoch, int | float) else {}
            status = "failed" if r.error else "stopped by scheduler"
            if stopped:
                status = f"stopped by ASHA at epoch {stopped['epochs']}"
            for m, rep in zip(unit.members, left, strict=True):
                name = m.name + name_suffix
                if r.error is not None:
                    out.failed.append(self.failure(m, name, sampled, _reason(r.error)))
                out.probes.append(self.probe_row(m, name, sampled, status, stopped))
                self.said.add(self.inp.name, name, m.seed, rep)
            return
        reports, states, where = got
        self.said.add_left_out(self.inp.name, max((rep.get("warnings_left_out", 0) for rep in reports), default=0))
        metrics = r.metrics or {}
        out.trial_seconds += float(metrics.get("train_seconds", 0.0))
        if metrics.get("reused"):
            out.reused_trials += 1
        if metrics.get("mkl"):
            out.mkl.add(str(metrics["mkl"]))
        if metrics.get("pages"):
            out.pages.add(str(metrics["pages"]))
        if metrics.get("allocator"):
            out.allocator.add(str(metrics["allocator"]))
        by_point: dict[int, list[tuple[Member, dict[str, Any]]]] = {}
        # a search space's samples share their probe's name: under select: best only the selected one's curves are
        # kept (select_best adds them), or every sample's would be one probe's in history/ and the report's curves
        # (their TensorBoard files stay in the Tune directory)
        curves = unit.evaluate or not sampled
        for m, rep in zip(unit.members, reports, strict=True):
            name = m.name + name_suffix
            by_point.setdefault(m.point, []).append((m, rep))
            for h in rep["history"] if curves else ():
                out.history.append({**self.base, "probe": name, "seed": m.seed, **h})
            status = "failed" if rep["failed"] else (rep.get("stopped") or "ok")
            if rep["failed"]:
                out.failed.append(self.failure(m, name, sampled, rep["failed"]))
            out.probes.append(self.probe_row(m, name, sampled, status, rep, bool(unit.evaluate and not rep["failed"])))
            for row in rep.get("rows", []):
                out.rows.append({**self.base, "probe": name, "seed": m.seed, **row})
            for sid, reason in (rep.get("test_failed") or {}).items():  # non-finite scores on one test set
                out.failed.append(self.failure(m, name, sampled, reason, sid))
            self.said.add(self.inp.name, name, m.seed, rep)
            for sid, mat in (rep.get("confusion") or {}).items():
                out.confusion[(name, m.seed, sid)] = mat
            if unit.evaluate and not rep["failed"] and m.key in states:
                out.tested.append(self.tested_entry(m, name, sampled, where))
        if not unit.evaluate:
            for point, pairs in by_point.items():
                st = {m.seed: states[m.key] for m, _ in pairs if m.key in states}
                vals = [rep["best_criterion"] for _, rep in pairs]
                if len(st) == len(pairs) and all(v is not None for v in vals):
                    kept = {m.seed: {**where, "member": m.key} for m, _ in pairs}
                    self.candidates.setdefault(unit.spec, []).append(
                        (float(np.mean(vals)), point, st, [rep for _, rep in pairs], sampled or {}, kept)
                    )

    def tested_entry(
        self, m: Member, name: str, sampled: dict[str, Any] | None, where: dict[str, str]
    ) -> dict[str, Any]:
        """:attr:`GroupResult.tested`'s entry of member ``m`` (tested as ``name``), kept in trial checkpoint ``where``."""
        return {"probe": name, "seed": m.seed, "spec": m.spec, "point": m.point, "sampled": sampled or {},
                "params": self.params(m, sampled), **where, "member": m.key}  # fmt: skip

    def run_tune_mode(self, cfg: Config, storage_path: str, resources: dict[str, float], use_gpu: bool,
                      wrap: Callable[[Callable[..., None]], Callable[..., None]]) -> None:  # fmt: skip
        """One experiment per tune-mode spec (a search space, or ASHA): ``<group>__<spec>``."""
        from ray import tune

        run, data, res = cfg.run, self.data, cfg.run.resources
        for si, units in self.tune_units:
            spec = self.specs[si]
            name = f"{self.inp.name}__{spec.name}"
            space = {"unit": tune.grid_search(list(range(len(units)))), "use_gpu": use_gpu}
            if spec.space:
                space["sampled"] = tune_space(spec)
            mode = criterion_of(spec.points[0].config, data.task_type)[1]
            scheduler = None
            # ASHA's rungs in epochs, as on a grid (Halving): every trial reports "epoch" after each validation (its
            # final report, which carries the checkpoint, has none and is not judged). Counted in reports instead, a
            # grace period of 10 "epochs" meant 30 with val_every 3. Rungs lie below the epoch budget (and max_t): a
            # trial at its last validation has trained its budget and goes on to report its checkpoint
            budget = asha_budget(spec, run.max_epochs)
            idle = asha_idle(spec, run.max_epochs)  # the rule repeval validate and repeval plan apply
            if spec.scheduler is not None and idle is not None:
                log.info("%s: %s's ASHA scheduler stops none, so none is made: %s", self.inp.name, spec.name, idle[0])
            elif spec.scheduler is not None:
                from ray.tune.schedulers import ASHAScheduler

                scheduler = ASHAScheduler(
                    time_attr="epoch",
                    metric="best_criterion",
                    mode=mode,
                    max_t=budget - 0.5,  # type: ignore[arg-type]  # Ray's rungs go up to max_t inclusive (a float works)
                    grace_period=int(spec.scheduler["grace_period"]),
                    reduction_factor=spec.scheduler["reduction_factor"],
                    brackets=spec.scheduler["brackets"],
                    stop_last_trials=False,  # a trial that ran its budget finishes and reports its checkpoint
                )

            def make_trainable(
                finished: dict[str, str], units: list[Unit] = units, judged: bool = scheduler is not None
            ) -> Any:
                # with a scheduler a trial is judged on every report: a reused checkpoint replays the reports
                # its trial made, so each is judged at its own iteration (one that cannot is trained again)
                return tune.with_resources(
                    tune.with_parameters(
                        resuming(wrap(tune_trial), judged=judged),
                        data=BatchData([self.ref()], [0] * len(units), [self.ev]),
                        units=units,
                        finished=finished,
                    ),
                    resources,
                )

            tc = tune.TuneConfig(
                num_samples=spec.num_samples if spec.space else 1,
                scheduler=scheduler,
                # every fold of a k-fold dataset samples the same configurations (its experiment's name, no fold):
                # a configuration's results then average over the folds (one split: the experiment's name as ever)
                search_alg=sampler(run.seed, f"{self.inp.cell}__{spec.name}", res.max_concurrent_trials),
                reuse_actors=run.reuse_actors,
            )
            extra = {"space": spec.space, "num_samples": spec.num_samples, "scheduler": spec.scheduler}
            fp = _fingerprint(units, self.ev, data, extra)
            record = marker_record(cfg, [self], self.slots, judged=scheduler is not None)
            data_id, written = self.data_identity(), self.inp.written_ns
            pairs, _ = _fit(name, make_trainable, space, tc, storage_path, fp, len(units), record, data_id, written)
            self.out.experiments.append(str(Path(storage_path) / name))
            for conf, r in pairs:
                sampled = conf.get("sampled") or {}
                suffix = ""
                if spec.space and spec.select == "all" and r.metrics:
                    trial = str(r.metrics.get("trial_id", ""))
                    # k folds: the sample's index (``_00003``), the same configuration in every fold's experiment
                    suffix = f"-{trial.rsplit('_', 1)[-1] if self.inp.fold is not None else trial}"
                self.collect(units[conf["unit"]], r, suffix, sampled)

    def select_best(self) -> None:
        """select: best — the best configuration of each spec, tested once."""
        from repeval.tuning.search import sampled_config

        out, base, data = self.out, self.base, self.data
        for si, cands in sorted(self.candidates.items()):
            spec = self.specs[si]
            named, mode = criterion_of(spec.points[0].config, data.task_type)
            crit, point, states, reports, sampled, kept = best_candidate(cands, mode)
            pt = spec.points[point]
            pcfg = sampled_config(pt, sampled)
            for seed, state in sorted(states.items()):
                member = Member(si, point, spec.name, seed, pcfg)
                out.tested.append(self.tested_entry(member, spec.name, sampled, kept[seed]))
                try:
                    scores = {
                        sid: data.track_scores(sid, predict(pcfg, data, state, x, data.test_counts.get(sid)))
                        for sid, (x, _, _) in data.tests.items()
                    }
                    rows, confusion, bad = scored_tests(data, scores, self.ev)
                except Exception as exc:  # recorded like a trial that raised: the other seeds and groups go on
                    log.exception("%s: testing %s (seed %d) raised", self.inp.name, spec.name, seed)
                    out.failed.append(self.failure(member, spec.name, sampled, exception_reason(exc)))
                    continue
                for sid, reason in bad.items():
                    out.failed.append(self.failure(member, spec.name, sampled, reason, sid))
                for row in rows:
                    out.rows.append({**base, "probe": spec.name, "seed": seed, **row})
                for sid, mat in confusion.items():
                    out.confusion[(spec.name, seed, sid)] = mat
            for rep, seed in zip(reports, sorted(states), strict=False):
                for h in rep["history"]:
                    out.history.append({**base, "probe": spec.name, "seed": seed, **h})
            for p in out.probes:
                if (
                    p["spec"] == spec.name
                    and p["probe"] == pt.name
                    and json.loads(p["params"]) == {**pt.params, **sampled}
                ):
                    p["selected"] = True
            # configurations: a grid's points, or a search space's sampled points (which share their point)
            tried = {p["params"] for p in out.probes if p["spec"] == spec.name}
            settings = {**pt.params, **sampled}  # what the name stands for: marble-4 is learning_rate=0.005
            log.info(
                "%s: %s selected %s (%s%s %.4f%s, the mean over %s) among %s%s",
                self.inp.name, spec.name, pt.name, f"{settings_said(settings)}; " if settings else "", named, crit,
                ", lower is better" if mode == "min" else "",
                counted(len(states), "seed"), counted(len(tried), "configuration"),
                left_out(out.probes, spec.name),
            )  # fmt: skip
        for si, spec in enumerate(self.specs):
            trained = [p for p in out.probes if p["spec"] == spec.name]
            if spec.select == "best" and si not in self.candidates and trained:
                log.warning(
                    "%s: %s has no configuration to select and test: %s",
                    self.inp.name, spec.name, left_out(out.probes, spec.name, every=True),
                )  # fmt: skip


def settings_said(settings: dict[str, Any]) -> str:
    """A configuration's own settings as a log line says them, ``learning_rate=0.005, hidden_units=[512]`` (a sampled
    number to 4 significant digits)."""

    def said(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return v if isinstance(v, str) else json.dumps(v)

    return ", ".join(f"{k}={said(v)}" for k, v in settings.items())


def left_out(probes: list[dict[str, Any]], spec: str, every: bool = False) -> str:
    """What ``select: best`` says of the configurations of ``spec`` (its rows in ``probes``) it could not choose: those
    with a failed seed (their mean would be over the other seeds: they are left out, not averaged); ``every`` (none was
    left to choose): also those a scheduler stopped. No other is left out: a probe whose validation value is never
    finite keeps no checkpoint and fails (:func:`repeval.probes.losses.never_finite`), and a trial keeps the
    checkpoints of its best configuration with no failed seed (:func:`repeval.tuning.trial.unit_best`), a candidate."""
    rows = [p for p in probes if p["spec"] == spec]
    failed = {p["params"] for p in rows if p["status"] == "failed"}
    if not every:
        if not failed:
            return ""
        return f"; left out: {counted(len(failed), 'configuration')} with a failed seed (failed.parquet says why)"
    total = {p["params"] for p in rows}
    if len(failed) == len(total):
        said = "its one configuration" if len(total) == 1 else f"each of its {len(total):,} configurations"
        return f"{said} failed in at least one seed (failed.parquet says why)"
    stopped = {p["params"] for p in rows if str(p["status"]).startswith("stopped")} - failed
    parts = []
    if failed:
        parts.append(f"{counted(len(failed), 'configuration')} failed in at least one seed (failed.parquet says why)")
    if stopped:
        parts.append(f"the scheduler stopped {counted(len(stopped), 'configuration')}")
    return f"{'; '.join(parts)} (probes/ lists each)"
