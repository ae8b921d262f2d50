"""Train every probe configuration × seed of an experiment on Ray Tune, then evaluate each
selected checkpoint on the clean test set and every deformation scenario's test set.

Per (task, dataset, embedding model) — a *group* — the embeddings are loaded once and shared
with every trial through the object store (``tune.with_parameters``). The group's probe specs
(:mod:`repeval.tuning.search`) are expanded and planned:

- **grid mode** (plain probes, presets, ``search.grid``): configurations that share a stack
  shape are chunked into *units* of at most ``run.vectorize`` members (configuration × seed);
  one Tune experiment ``<group>`` runs one trial per unit, heaviest first. With ``scheduler:
  asha`` the weaker configurations of a unit stop at ASHA's rungs inside the trial
  (:class:`repeval.probes.schedule.Halving`).
- **tune mode** (``search.space``, or ASHA with ``brackets`` > 1): one experiment
  ``<group>__<spec>`` per spec, one trial per (sampled) configuration with all its seeds,
  reporting after each validation so Tune's ASHA can stop it.

``select: all`` specs are tested inside their trials. ``select: best`` specs (Jukemir, HEAR)
keep only each trial's best configuration; the best over all trials (mean validation criterion
over seeds) is tested once, here. An experiment directory left by an interrupted run is
resumed with ``Tuner.restore`` (finished trials are kept, unfinished ones rerun); trials that
raised stay failed and are recorded with their reason while the rest continue. A trial whose worker died is started
once more (:data:`TRIAL_RETRIES`); one whose code raised is not trained again
(:func:`repeval.tuning.trial.raised_once`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import re
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from repeval.config import Config, ExperimentConfig
from repeval.probes import ProbeData, group_key
from repeval.probes.inference import predict
from repeval.probes.inputs import pca_too_wide
from repeval.probes.losses import criterion_of
from repeval.tuning.results import RESULT_SCHEMA, results_table, seed_summary
from repeval.tuning.search import ProbeSpec, expand_all, tune_space
from repeval.tuning.trial import (
    MEMBERS_FILE,
    PROBES_FILE,
    BatchData,
    EvalSettings,
    Member,
    Unit,
    grid_trial,
    left_warnings,
    read_finished,
    resuming,
    scored_tests,
    tune_trial,
)
from repeval.warn import SaidByTrials

log = logging.getLogger(__name__)

__all__ = [
    "RESULT_SCHEMA",
    "GroupInput",
    "GroupResult",
    "plan_units",
    "results_table",
    "run_group",
    "run_groups",
    "seed_summary",
]


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


# ------------------------------------------------------------------------------ planning


#: per-epoch cost (see :func:`_cost`) below which a unit is not worth a trial of its own. Each trial slot pays
#: its actor's start (importing torch and ``ray.tune``, ~2.5 s) once whatever the number of trials; a trial on
#: a reused actor then starts ~0.05–0.1 s after the previous one reported. 2e8 is about 25 ms per epoch on one
#: core here (the thesis' M3 on a 2,000 × 512 table), ~1 s over an early-stopped run, so that gap stays
#: around 10%. Smaller units are packed together (still at least one unit per slot). Separate trials
#: balance the slots better: early stopping, unknown in advance, decides how long each unit takes, and
#: Tune hands the next unit to whichever slot frees first.
MIN_UNIT_COST = 2e8


def _member_cost(cfg: Any, data: ProbeData) -> float:
    from repeval.probes.data import input_dim_of
    from repeval.probes.model import resolve_hidden_units

    d = input_dim_of(cfg, data)
    dims = [d, *resolve_hidden_units(cfg.hidden_units, d, data.n_outputs), data.n_outputs]
    params = sum(a * b for a, b in itertools.pairwise(dims))
    n = len(data.train_counts) if data.train_counts is not None else len(data.x_train)  # rows the layers see
    masked = (d if cfg.effective_input_dropout else 0) + (sum(dims[1:-1]) if cfg.dropout else 0)
    pooling = 2 * len(data.x_train) * d if data.attention else 0  # attention: scores and weighted sums of frames
    return n * (params + 100 * masked) + pooling + math.ceil(n / cfg.batch_size) * 3e5


def _cost(unit: Unit, data: ProbeData) -> float:
    """A rough per-epoch cost to balance and order units: weights touched, dropout draws, steps (weights
    calibrated on the Jukemir grid: a dropout draw costs about as much as 100 multiply-adds of a weight)."""
    return sum(_member_cost(m.config, data) for m in unit.members)


def _pack(units: list[Unit], data: ProbeData, n_bins: int) -> list[Unit]:
    """Merge units into about ``n_bins`` (heaviest first into the lightest bin). Only units whose results are
    handled alike share a bin (``select: all`` units together, ``select: best`` units of the same spec), and
    never two chunks of one stack shape: a trial trains one stack per shape, which must stay within
    ``run.vectorize`` members."""
    by_key: dict[tuple[bool, int], list[Unit]] = {}
    for u in units:
        by_key.setdefault((u.evaluate, -1 if u.evaluate else u.spec), []).append(u)
    cost = {id(u): _cost(u, data) for u in units}
    total = sum(cost.values()) or 1.0
    out: list[Unit] = []
    for (evaluate, _), group in by_key.items():
        share = sum(cost[id(u)] for u in group) / total
        k = min(len(group), max(1, round(n_bins * share)))
        bins: list[list[Member]] = [[] for _ in range(k)]
        shapes: list[set[tuple]] = [set() for _ in range(k)]
        loads = [0.0] * k
        for u in sorted(group, key=lambda u: -cost[id(u)]):
            mine = {group_key(m.config, data) for m in u.members}
            free = [i for i in range(len(bins)) if not shapes[i] & mine]
            if not free:
                bins.append([])
                shapes.append(set())
                loads.append(0.0)
                free = [len(bins) - 1]
            i = min(free, key=lambda j: loads[j])
            bins[i].extend(u.members)
            shapes[i] |= mine
            loads[i] += cost[id(u)]
        out.extend(Unit(b, evaluate, b[0].spec) for b in bins if b)
    return out


def plan_units(
    specs: list[ProbeSpec], data: ProbeData, seeds: list[int], vectorize: int, slots: int = 1, pack: bool = True
) -> tuple[list[Unit], list[tuple[int, list[Unit]]]]:
    """Grid-mode units (chunks of stackable configurations × seeds) and tune-mode units per spec.

    Stacks larger than ``vectorize`` members are chunked, every n-th configuration to a chunk (so that
    chunks mix the grid's values alike). The target is four units per trial slot (so
    that the slots finish together), fewer when the work is small (no unit under
    :data:`MIN_UNIT_COST`, at least one per slot): with ``pack``, small units are packed together — a unit may then
    hold several stacks, trained one after the other in its trial — and the costliest units are
    halved until the target is met (or nothing is left to split). Units are ordered heaviest first.
    """
    grid_units: list[Unit] = []
    tune_units: list[tuple[int, list[Unit]]] = []
    per_unit = max(1, vectorize // max(1, len(seeds)))  # configurations per unit
    for si, spec in enumerate(specs):
        if spec.tune_mode:
            units = [
                Unit([Member(si, pi, pt.name, s, pt.config) for s in seeds], spec.select == "all", si)
                for pi, pt in enumerate(spec.points)
            ]
            tune_units.append((si, units))
            continue
        stacks: dict[tuple, list[int]] = {}
        for pi, pt in enumerate(spec.points):
            stacks.setdefault(group_key(pt.config, data), []).append(pi)
        for points in stacks.values():
            n_chunks = math.ceil(len(points) / per_unit)
            for c in range(n_chunks):
                # every n-th configuration, not a contiguous run: a grid's later axes (learning rate,
                # standardisation, …) change how many epochs early stopping lets a probe train, and a chunk
                # that took all the slow values of one (measured: 72.6 s against 21.3 s for chunks of equal
                # size) would end the grid alone on one slot
                chunk = points[c::n_chunks]
                members = [
                    Member(si, pi, spec.points[pi].name, s, spec.points[pi].config, spec.halving(si, pi))
                    for pi in chunk
                    for s in seeds
                ]
                grid_units.append(Unit(members, spec.select == "all", si))
    # enough units to keep every slot busy to the end (four per slot), but none too small to be worth a trial
    total = sum(_cost(u, data) for u in grid_units)
    target = max(slots, min(4 * slots, math.ceil(total / MIN_UNIT_COST))) if pack else 4 * slots
    if pack and len(grid_units) > target:
        grid_units = _pack(grid_units, data, target)
    while len(grid_units) < target:
        splittable = [u for u in grid_units if len({m.point for m in u.members}) > 1]
        if not splittable:
            break
        big = max(splittable, key=lambda u: _cost(u, data))
        points = sorted({m.point for m in big.members})
        half = set(points[::2])  # alternate configurations, for the same reason as the chunks above
        grid_units.remove(big)
        for part in ([m for m in big.members if m.point in half], [m for m in big.members if m.point not in half]):
            grid_units.append(Unit(part, big.evaluate, big.spec))
    grid_units.sort(key=lambda u: -_cost(u, data))  # Tune starts grid trials in order: heaviest first
    return grid_units, tune_units


#: probe keys added after fingerprints were first written, left out of them at their default so that an
#: experiment interrupted before the upgrade still resumes
_NEW_PROBE_KEYS = {
    "attention_heads": 1,
    "lr_decay_patience": None,
    "lr_decay_factor": 0.5,
    "lr_schedule": "constant",
    "warmup_steps": 0,
}


def _probe_fingerprint(cfg: Any) -> dict[str, Any]:
    out = cfg.model_dump(mode="json")
    for key, default in _NEW_PROBE_KEYS.items():
        if out.get(key) == default:
            del out[key]
    return out


def _fingerprint(units: list[Unit], ev: EvalSettings, data: ProbeData, extra: Any = None) -> str:
    desc = {
        "units": [
            [(m.key, _probe_fingerprint(m.config), *([m.halving] if m.halving else [])) for m in u.members]
            + [u.evaluate]
            for u in units
        ],
        "ev": ev.__dict__,
        "data": [data.task_type, list(data.x_train.shape), list(data.x_val.shape), sorted(data.tests)],
        "extra": extra,
    }
    if data.val_groups is not None:  # prediction-level aggregation (absent otherwise: earlier fingerprints hold)
        desc["aggregation"] = "prediction"
    elif data.attention:
        desc["aggregation"] = "attention"
    if data.task_type == "regression":  # probes fit standardised targets (checkpoints of raw-target ones differ)
        desc["targets"] = "standardised"
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------ running


def sampler(seed: int, name: str, max_concurrent: int | None) -> Any:
    """Tune's variant generator for experiment ``name``, its random draws seeded from the run's ``seed`` and
    the name: a search space samples the same configurations on every run of a configuration (so a rerun
    whose experiment state was lost still finds its finished trials), and different ones per experiment (the
    caller names the group without its fold, so every fold of a k-fold dataset samples the same ones).
    It carries ``max_concurrent`` itself (Tune ignores ``TuneConfig.max_concurrent_trials`` beside it)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return BasicVariantGenerator(random_state=int.from_bytes(digest[:4], "little"), max_concurrent=max_concurrent or 0)


#: times Tune starts a failed trial again: a trial whose worker died (killed, out of memory, its node lost) would
#: otherwise be recorded as failed and its group committed without it, for good. Tune retries a trial that raised
#: too, but its retry re-raises the first attempt's error at once without training (the unit's code runs once:
#: :func:`repeval.tuning.trial.raised_once`; memory, I/O and Ray's own errors excepted)
TRIAL_RETRIES = 1


def _fit(
    name: str,
    make_trainable: Callable[[dict[str, str]], Any],
    param_space: dict[str, Any],
    tune_config: Any,
    storage_path: str,
    fingerprint: str,
    n_units: int,
) -> tuple[list[tuple[dict[str, Any], Any]], bool]:
    """Run (or resume) one Tune experiment; returns ``([(trial config, Result)], restored)``.

    A restored experiment is used only when it accounts for every unit of the grid; one left by a driver
    killed at an unlucky moment (trials without their configuration, units missing) is moved aside and the
    experiment runs afresh. Either way nothing a trial of the same plan finished is trained again: the
    whole checkpoints of the earlier experiments of this plan (:func:`_reusable`) go to ``make_trainable``,
    whose trials report them instead of training (:func:`repeval.tuning.trial.resuming`) — also those Tune
    had not recorded yet when the driver was killed."""
    import os

    from ray import tune

    # Tune's "new output" engine prints a configuration box and result paths even with verbose=0; the legacy
    # reporter honours verbose=0 (repeval prints its own summary; failures are recorded with their reason)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # small grids snapshot their state often; Tune's warning about it is advice for long experiments
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune catches Ctrl-C itself, stops its trials and returns normally: the grid would be collected with the units
    # that happened to finish and committed as trained (the rest lost for good). Without its handler Ctrl-C raises
    # KeyboardInterrupt here: nothing is committed, and the rerun restores the experiment, reusing every trial
    # checkpoint already written (as after a killed driver)
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # issue 8: storage_path may be a URI (s3://, gs://, ...): file operations go through pyarrow.fs
    from repeval.rundir import TuneStorage

    st = TuneStorage(storage_path)
    path, marker = st.uri(name), f"{name}.repeval.json"
    stored = _marker_fingerprint(st.read_text(marker))
    # without its experiment state (a driver killed before Tune first wrote it) a restore runs, finds no trials and
    # is moved aside after seconds of Tune's start: go to the fresh experiment at once (it reuses every checkpoint)
    if stored == fingerprint and st.has_experiment_state(name) and tune.Tuner.can_restore(path):
        log.info("resuming Tune experiment %s", path)
        try:
            with _quiet_missing_metrics():
                tuner = tune.Tuner.restore(
                    path,
                    make_trainable(_reusable(st, name, fingerprint, current=True)),
                    resume_unfinished=True,
                    resume_errored=False,
                    restart_errored=False,
                )
        except Exception as exc:  # a state file cut short by a kill: rerun it, keep the old one aside
            _move_aside(
                st,
                name,
                "incomplete",
                f"could not be restored ({type(exc).__name__}: {exc}); running it again",
                fingerprint,
            )
        else:
            pairs = _fit_grid(tuner)
            if {c.get("unit") for c, _ in pairs} == set(range(n_units)):
                return pairs, True
            _move_aside(
                st,
                name,
                "incomplete",
                "could not be resumed whole (interrupted mid-write); running it again",
                fingerprint,
            )
    elif st.exists(name) and stored is not None and stored != fingerprint:  # another configuration's: never mix
        _move_aside(st, name, "stale", "was planned for another configuration")
    elif st.exists(name):  # no readable marker or no restorable state: a driver killed while starting it
        reason = "has no restorable state or marker (interrupted while starting)"
        _move_aside(st, name, "incomplete", reason, fingerprint if stored == fingerprint else None)
    finished = _reusable(st, name, fingerprint)
    st.write_text(marker, json.dumps({"fingerprint": fingerprint}))
    # end issue 8
    tuner = tune.Tuner(
        make_trainable(finished),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )
    return _fit_grid(tuner), False


def _fit_grid(tuner: Any) -> list[tuple[dict[str, Any], Any]]:
    """``tuner.fit()``'s ``(trial config, Result)`` pairs, Ray Tune's Ctrl-C handling off (see :func:`_fit`)."""
    with _plain_trial_actors():
        return _trial_results(tuner.fit())


def _reusable(st: Any, name: str, fingerprint: str, *, current: bool = False) -> dict[str, str]:
    """Trial key → whole checkpoint of this plan: under experiment ``name`` itself with ``current`` (the caller
    read its marker), then under every experiment of this plan moved aside as incomplete (newest first), so
    that a run killed again while resuming loses nothing either."""
    prefix = f"{name}.incomplete-"
    aside = sorted((n for n in st.names() if n.startswith(prefix) and not n.endswith(".repeval.json")), reverse=True)
    dirs = [name] if current else []
    dirs += [n for n in aside if _marker_fingerprint(st.read_text(f"{n}.repeval.json")) == fingerprint]
    out: dict[str, str] = {}
    for d in dirs:
        for key, src in _finished_checkpoints(st, d).items():
            out.setdefault(key, src)
    return out


def _finished_checkpoints(st: Any, name: str) -> dict[str, str]:
    """Trial key → path (or URI) of each whole trial checkpoint under experiment directory ``name``: the work
    its trials finished, whether or not Tune's experiment state recorded it before the driver stopped."""
    import pyarrow.fs as pafs

    out: dict[str, str] = {}
    root = f"{st.base}/{name}"
    try:  # one listing (on an object store, one paginated call): <experiment>/<trial>/checkpoint_NNNNNN
        infos = st.fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except OSError:
        return out
    ckpts = sorted(
        (
            i.path
            for i in infos
            if i.type == pafs.FileType.Directory
            and Path(i.path).name.startswith("checkpoint_")
            and str(Path(i.path).parent.parent) == str(Path(root))
        ),
        reverse=True,  # a trial's newest checkpoint first
    )
    for ck in ckpts:
        summary = read_finished(st.fs, ck)
        if summary is not None:
            rel = ck[len(st.base) + 1 :]
            out.setdefault(summary["key"], st.uri(rel))
    if out:
        log.info(
            "%s holds %d whole trial checkpoint(s); a trial that must run again reuses its own", st.uri(name), len(out)
        )
    return out


@contextlib.contextmanager
def _quiet_missing_metrics() -> Iterator[None]:
    """Silence Tune's "Failed to fetch metrics for N trial(s)" while it restores an experiment: the trials the
    interrupted run had not finished have no result files yet, which is why they run again (repeval reads
    each trial's checkpoint, never those files)."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _plain_trial_actors() -> Iterator[None]:
    """Let Tune's trial actors start in Ray's prestarted idle workers.

    Tune declares every trial actor with ``runtime_env={"env_vars": {"PL_DISABLE_FORK": "1", …}}``
    (``ray.tune.execution.class_cache``; the variable is for PyTorch Lightning, which repeval's trials never
    import). Ray places an actor only in a worker with the same runtime env, and the workers it prestarts have
    none, so every trial actor used to start a fresh Python process (~1 s here, on top of its imports). With
    the variable left out — and nothing else to propagate (AWS credentials, Ray Train settings) — the runtime
    env is empty and a trial actor takes an idle prestarted worker when one is free (measured: 0.45 s against
    1.95 s to start two actors). Restored on exit; a Ray without this module is left alone."""
    try:
        from ray.tune.execution import class_cache

        defaults = class_cache.DEFAULT_ENV_VARS
    except (ImportError, AttributeError):  # another Ray: nothing to adjust
        yield
        return
    saved = dict(defaults)
    defaults.pop("PL_DISABLE_FORK", None)
    try:
        yield
    finally:
        defaults.clear()
        defaults.update(saved)


def _marker_fingerprint(text: str | None) -> str | None:
    """The fingerprint in a Tune experiment's repeval marker; ``None`` when it is missing or unreadable."""
    try:
        value = json.loads(text).get("fingerprint") if text else None
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _move_aside(st: Any, name: str, tag: str, reason: str, fingerprint: str | None = None) -> str:
    """Rename experiment ``name`` to ``<name>.<tag>-<time>``; with ``fingerprint`` (its plan's, known), a marker
    next to it says so, so that its finished trials can be reused (:func:`_reusable`)."""
    dest = stem = f"{name}.{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while st.exists(dest):  # two moves within a second
        n += 1
        dest = f"{stem}-{n}"
    if fingerprint is not None:
        st.write_text(f"{dest}.repeval.json", json.dumps({"fingerprint": fingerprint}))
    st.move(name, dest)
    log.warning("Tune experiment %s %s; kept it at %s", st.uri(name), reason, st.uri(dest))
    return dest


def _trial_results(grid: Any) -> list[tuple[dict[str, Any], Any]]:
    """``(trial config, Result)`` for every trial of a ``ResultGrid``.

    ``Result.config`` is read from the trial's last reported metrics, which a trial that failed before its
    first report does not have; the trial's own configuration comes from the experiment analysis, whose
    trials the ResultGrid lists in the same order."""
    results = list(grid)
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None)
    if trials is not None and len(trials) == len(results):
        return [(dict(t.config or {}), r) for t, r in zip(trials, results, strict=True)]
    return [(dict(r.config or {}), r) for r in results]


def _read_checkpoint(result: Any) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
    import torch

    if result.checkpoint is None:
        return None
    with result.checkpoint.as_directory() as d:
        members_file = Path(d) / MEMBERS_FILE
        if not members_file.exists():
            return None
        reports = json.loads(members_file.read_text())
        states = torch.load(Path(d) / PROBES_FILE, weights_only=True)
    return reports, states


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
    #: ``data``'s object-store reference when the caller already put it there (:func:`share`); else it is put once
    ref: Any = None
    #: the fold of a ``split_type: all`` dataset (``None``: one split)
    fold: int | None = None

    def __post_init__(self) -> None:
        self.name = self.name or self.cell

    @property
    def cell(self) -> str:
        """``<task>__<dataset>__<model>``: the group without its fold — what every fold shares."""
        return f"{self.exp.task.name}__{self.dataset}__{self.model}"


def share(data: ProbeData) -> tuple[Any, ProbeData]:
    """``data`` put into Ray's object store once: its reference, and a ProbeData whose arrays are read-only views of
    the stored copy. A caller that keeps only these (and passes the reference on in :class:`GroupInput`) holds a
    group's embeddings once — in the object store, where its trials read them — instead of once there and once in
    its own heap while the group trains."""
    import ray

    ref = ray.put(data)
    return ref, ray.get(ref)


class _Group:
    """A group's plan (specs, seeds, grid- and tune-mode units) and what its trials produced."""

    def __init__(self, cfg: Config, inp: GroupInput, slots: int, said: SaidByTrials) -> None:
        run = cfg.run
        self.inp, self.data = inp, inp.data
        self.specs = expand_all(inp.exp.downstream_models, inp.exp.task.effective_type)
        seeds = [run.seed + s for s in range(run.seeds)]
        self.ev = EvalSettings(
            list(inp.exp.metric_names), run.bootstrap_resamples, run.ci_alpha, run.seed, run.max_epochs
        )
        self.base = {"task": inp.exp.task.name, "task_type": self.data.task_type, "dataset": inp.dataset,
                     "model": inp.model}  # fmt: skip
        self.out = GroupResult([], [], [], 0.0, 0.0, labels=list(self.data.classes))
        self.grid_units, self.tune_units = plan_units(
            self.specs, self.data, seeds, run.vectorize, slots, run.pack_trials
        )
        #: what its trials warned (in their processes, whose logs the user does not see), with its batch's other
        #: groups': said once every trial of the batch is in (:func:`run_groups`)
        self.said = said
        said.expect(inp.name)
        #: select: best — (spec) → [(mean criterion, point, {seed: state}, reports, sampled)]
        self.candidates: dict[int, list[tuple[float, int, dict[int, dict[str, Any]], list[dict[str, Any]], dict]]] = {}

    def fingerprint(self) -> str:
        return _fingerprint(self.grid_units, self.ev, self.data)

    def ref(self) -> Any:
        """The group's embeddings in the object store (put once, shared by all its trials and experiments)."""
        if self.inp.ref is None:
            import ray

            self.inp.ref = ray.put(self.data)
        return self.inp.ref

    def criterion(self, m: Member, sampled: dict[str, Any] | None) -> str:
        """The validation criterion a member's ``best_criterion`` is a value of (recorded with it: the report picks
        probes by it, and a preset's criterion depends on the task type)."""
        from repeval.tuning.search import sampled_config

        cfg = sampled_config(self.specs[m.spec].points[m.point], sampled or {})
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
            for m, rep in zip(unit.members, left, strict=True):
                name = m.name + name_suffix
                if r.error is not None:
                    out.failed.append(self.failure(m, name, sampled, _reason(r.error)))
                out.probes.append(self.probe_row(m, name, sampled, "failed" if r.error else "stopped by scheduler"))
                self.said.add(self.inp.name, name, m.seed, rep)
            return
        reports, states = got
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
        for m, rep in zip(unit.members, reports, strict=True):
            name = m.name + name_suffix
            by_point.setdefault(m.point, []).append((m, rep))
            for h in rep["history"]:
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
        if not unit.evaluate:
            for point, pairs in by_point.items():
                st = {m.seed: states[m.key] for m, _ in pairs if m.key in states}
                vals = [rep["best_criterion"] for _, rep in pairs]
                if len(st) == len(pairs) and all(v is not None for v in vals):
                    self.candidates.setdefault(unit.spec, []).append(
                        (float(np.mean(vals)), point, st, [rep for _, rep in pairs], sampled or {})
                    )

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
            budget = max(p.config.epochs for p in spec.points)
            if run.max_epochs:
                budget = min(budget, run.max_epochs)
            if spec.scheduler is not None and spec.scheduler["max_t"]:
                budget = min(budget, int(spec.scheduler["max_t"]))
            if spec.scheduler is not None and int(spec.scheduler["grace_period"]) < budget:
                from ray.tune.schedulers import ASHAScheduler

                scheduler = ASHAScheduler(
                    time_attr="epoch",
                    metric="best_criterion",
                    mode=mode,
                    max_t=budget - 0.5,  # Ray's rungs go up to max_t inclusive
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
            pairs, _ = _fit(name, make_trainable, space, tc, storage_path, fp, len(units))
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
            mode = criterion_of(spec.points[0].config, data.task_type)[1]
            sign = -1.0 if mode == "min" else 1.0
            crit, point, states, reports, sampled = max(cands, key=lambda c: sign * c[0])
            pt = spec.points[point]
            pcfg = sampled_config(pt, sampled)
            for seed, state in sorted(states.items()):
                member = Member(si, point, spec.name, seed, pcfg)
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
            log.info(
                "%s: %s selected %s (validation %.4f, the mean over %d seed(s)) among %d configurations",
                self.inp.name, spec.name, pt.name, crit, len(states), len(tried),
            )  # fmt: skip


def data_nbytes(data: ProbeData) -> int:
    """Bytes of a group's embeddings (what it holds in the object store while its grid runs)."""
    arrays = [data.x_train, data.y_train, data.x_val, data.y_val]
    arrays += [a for x, y, _ in data.tests.values() for a in (x, y)]
    arrays += [g for g in [data.val_groups, *data.test_groups.values()] if g is not None]
    arrays += [c for c in [data.train_counts, data.val_counts, *data.test_counts.values()] if c is not None]
    return int(sum(np.asarray(a).nbytes for a in arrays))


def batch_name(names: list[str]) -> str:
    """The Tune experiment of a batch of groups: named after its groups (the same pending groups, the same name)."""
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return f"groups-{len(names)}-{digest}"


def check_emb_shape(inp: GroupInput) -> None:
    """``ValueError`` when a probe's ``emb_shape`` (without PCA: mir_ref's input width of the probe) is not the
    width of the group's embeddings — the probe would otherwise train on another input than the one written — or
    when a PCA of a probe (a grid point of it included) asks for more dimensions than the embedding width or the
    training rows give: scikit-learn's PCA (mir_ref's) refuses it, and capping it would train another probe than the
    one written. All before any trial starts; a sampled (``search.space``) PCA target fails its own trial instead
    (:class:`repeval.probes.inputs.Preprocess`)."""
    n_rows, width = (int(n) for n in inp.data.x_train.shape[:2])
    for i, spec in enumerate(expand_all(inp.exp.downstream_models, inp.exp.task.effective_type)):
        for pt in spec.points:
            pca = pt.config.effective_pca_dim
            wrong = pca_too_wide(pca, n_rows, width) if pca else None
            if wrong:
                point = f" (grid point {pt.name!r}: {json.dumps(pt.params)})" if len(spec.points) > 1 else ""
                fold = f" (fold {inp.fold})" if inp.fold is not None else ""
                raise ValueError(
                    f"task {inp.exp.task.name!r}: downstream_models[{i}]{point} on model {inp.model!r} and dataset "
                    f"{inp.dataset!r}{fold}: {wrong}"
                )
    for i, p in enumerate(inp.exp.downstream_models):
        if isinstance(p.emb_shape, int) and p.effective_pca_dim is None and p.emb_shape != width:
            raise ValueError(
                f"task {inp.exp.task.name!r}: downstream_models[{i}].emb_shape is {p.emb_shape}, but model "
                f"{inp.model!r} gives {width}-dimensional embeddings on dataset {inp.dataset!r} — emb_shape is the "
                f"probe's input width: set it to infer (or {width}), or add emb_dim_reduction: PCA to reduce the "
                f"embeddings to {p.emb_shape} dimensions"
            )


def run_group(
    cfg: Config,
    exp: ExperimentConfig,
    dataset: str,
    model: str,
    data: ProbeData,
    storage_path: str,
    *,
    name: str | None = None,
    wrap_trainable: Callable[[Callable[..., None]], Callable[..., None]] | None = None,
) -> GroupResult:
    """Train and test every probe of one (task, dataset, model); ``name`` names its Tune experiment(s)
    (default ``<task>__<dataset>__<model>``; one per fold for k folds); ``wrap_trainable`` is a test hook."""
    inp = GroupInput(exp, dataset, model, data, name or "")
    return run_groups(cfg, [inp], storage_path, wrap_trainable=wrap_trainable)[0]


def run_groups(
    cfg: Config,
    inputs: list[GroupInput],
    storage_path: str,
    *,
    wrap_trainable: Callable[[Callable[..., None]], Callable[..., None]] | None = None,
) -> list[GroupResult]:
    """Train and test the probes of several groups; their grid-mode trials share one Tune experiment.

    One group runs as before: experiment ``<group>``. Several run as experiment :func:`batch_name` — the
    trials of every group, heaviest first, on actors that Tune reuses from trial to trial whatever their
    group (``reuse_actors``): each trial actor pays its start-up (``ray.tune`` and torch imports, about
    2 s of CPU) once per batch instead of once per group. Each group's embeddings go into the object store
    once; a trial fetches its own group's. Tune-mode specs keep their own experiments per group.
    """
    import ray
    from ray import tune

    from repeval.ray_utils import wants_gpu

    for inp in inputs:
        check_emb_shape(inp)
    t0 = time.perf_counter()
    res = cfg.run.resources
    use_gpu = wants_gpu(res.use_gpu, res.trial_num_gpus, float(ray.cluster_resources().get("GPU", 0)))
    resources = {"cpu": res.trial_num_cpus, "gpu": res.trial_num_gpus if use_gpu else 0}
    slots = res.max_concurrent_trials or max(1, int(ray.cluster_resources().get("CPU", 1) // res.trial_num_cpus))
    said = SaidByTrials()
    groups = [_Group(cfg, inp, slots, said) for inp in inputs]

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        return wrap_trainable(fn) if wrap_trainable is not None else fn

    # ---- grid mode: one experiment for every group's units
    flat = [(gi, ui) for gi, g in enumerate(groups) for ui in range(len(g.grid_units))]
    if len(groups) > 1:  # heaviest first across groups (Tune starts grid trials in order)
        flat.sort(key=lambda p: -_cost(groups[p[0]].grid_units[p[1]], groups[p[0]].data))
    if flat:
        units = [groups[gi].grid_units[ui] for gi, ui in flat]
        space = {"unit": tune.grid_search(list(range(len(flat)))), "use_gpu": use_gpu}
        tc = tune.TuneConfig(reuse_actors=cfg.run.reuse_actors, max_concurrent_trials=res.max_concurrent_trials)
        if len(groups) == 1:
            name, fp = groups[0].inp.name, groups[0].fingerprint()
        else:
            name = batch_name([g.inp.name for g in groups])
            fp = hashlib.sha256(
                json.dumps([[g.inp.name, g.fingerprint()] for g in groups] + [flat]).encode()
            ).hexdigest()
        batch = BatchData([g.ref() for g in groups], [gi for gi, _ in flat], [g.ev for g in groups])
        params: dict[str, Any] = {"data": batch, "units": units}

        def make_trainable(finished: dict[str, str]) -> Any:
            return tune.with_resources(
                tune.with_parameters(resuming(wrap(grid_trial)), **params, finished=finished), resources
            )

        t_fit = time.perf_counter()
        pairs, _ = _fit(name, make_trainable, space, tc, storage_path, fp, len(flat))
        fit_seconds = time.perf_counter() - t_fit
        for conf, r in pairs:
            gi, ui = flat[conf["unit"]]
            groups[gi].collect(groups[gi].grid_units[ui], r)
        total = sum(g.out.trial_seconds for g in groups) or 1.0
        for g in groups:
            g.out.experiments.append(str(Path(storage_path) / name))
            # the shared experiment's wall time, split in proportion to each group's training time
            g.out.wall_seconds += fit_seconds * g.out.trial_seconds / total
    for g in groups:
        t = time.perf_counter()
        g.run_tune_mode(cfg, storage_path, resources, use_gpu, wrap)
        g.out.wall_seconds += time.perf_counter() - t
    # every trial's warnings, once each for the batch (a node's warning is not said again for each group); select:
    # best tests below, here, and warns as it goes
    said.say()
    for g in groups:
        t = time.perf_counter()
        g.select_best()
        g.out.wall_seconds += time.perf_counter() - t
    if len(groups) == 1:
        groups[0].out.wall_seconds = time.perf_counter() - t0
    return [g.out for g in groups]
