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
once more (:data:`repeval.tuning.tuner.TRIAL_RETRIES`); one whose code raised is not trained again
(:func:`repeval.tuning.notes.raised_once`).

This module drives the groups; :mod:`repeval.tuning.units` plans their units, :mod:`repeval.tuning.tuner` runs or
resumes a Tune experiment, :mod:`repeval.tuning.group` collects a group's results and tests its ``select: best``
configurations, and :mod:`repeval.tuning.trial` is what runs inside a trial.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from repeval.config import Config, ExperimentConfig
from repeval.probes import ProbeData
from repeval.probes.inputs import pca_too_wide
from repeval.tuning.group import GroupInput, GroupResult, _Group
from repeval.tuning.progress import experiment_label
from repeval.tuning.results import RESULT_SCHEMA, results_table, seed_summary
from repeval.tuning.search import expand_all
from repeval.tuning.trial import BatchData, grid_trial, resuming
from repeval.tuning.tuner import _fit
from repeval.tuning.units import _cost, marker_record, plan_units, trial_slots
from repeval.warn import SaidByTrials

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


def share(data: ProbeData) -> tuple[Any, ProbeData]:
    """``data`` put into Ray's object store once: its reference, and a ProbeData whose arrays are read-only views of
    the stored copy. A caller that keeps only these (and passes the reference on in :class:`GroupInput`) holds a
    group's embeddings once — in the object store, where its trials read them — instead of once there and once in
    its own heap while the group trains."""
    import ray

    ref = ray.put(data)
    return ref, ray.get(ref)


def data_nbytes(data: ProbeData) -> int:
    """Bytes of a group's embeddings (what it holds in the object store while its grid runs)."""
    arrays = [data.x_train, data.y_train, data.x_val, data.y_val]
    arrays += [a for x, y, _ in data.tests.values() for a in (x, y)]
    arrays += [g for g in [data.val_groups, *data.test_groups.values()] if g is not None]
    arrays += [c for c in [data.train_counts, data.val_counts, *data.test_counts.values()] if c is not None]
    arrays += [data.train_frame_counts] if data.train_frame_counts is not None else []
    return int(sum(np.asarray(a).nbytes for a in arrays))


def batch_name(names: list[str]) -> str:
    """The Tune experiment of a batch of groups: named after its groups (the same pending groups, the same name)."""
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    return f"groups-{len(names)}-{digest}"


def _latest_written(inputs: list[GroupInput]) -> Callable[[], int | None] | None:
    """The latest of the groups' :attr:`GroupInput.written_ns`, asked when called (``None``: none is known)."""
    known = [inp.written_ns for inp in inputs if inp.written_ns is not None]
    if not known:
        return None
    return lambda: max((t for t in (w() for w in known) if t is not None), default=None)


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

    from repeval.ray_fit import check_trials_fit
    from repeval.ray_utils import wants_gpu

    for inp in inputs:
        check_emb_shape(inp)
    t0 = time.perf_counter()
    res = cfg.run.resources
    use_gpu = wants_gpu(res.use_gpu, res.trial_num_gpus, float(ray.cluster_resources().get("GPU", 0)))
    check_trials_fit(res, use_gpu)  # not trials that would wait for ever for a node that big
    resources = {"cpu": res.trial_num_cpus, "gpu": res.trial_num_gpus if use_gpu else 0}
    slots = trial_slots(cfg, float(ray.cluster_resources().get("CPU", 1)))
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
            name, fp, held = groups[0].inp.name, groups[0].fingerprint(), groups[0].data_identity()
        else:
            name = batch_name([g.inp.name for g in groups])
            fp = hashlib.sha256(
                json.dumps([[g.inp.name, g.fingerprint()] for g in groups] + [flat]).encode()
            ).hexdigest()
            held = hashlib.sha256(json.dumps([g.data_identity() for g in groups]).encode()).hexdigest()
        batch = BatchData(
            [g.ref() for g in groups],
            [gi for gi, _ in flat],
            [g.ev for g in groups],
            [g.inp.name for g in groups] if len(groups) > 1 else [],
        )
        params: dict[str, Any] = {"data": batch, "units": units}

        def make_trainable(finished: dict[str, str]) -> Any:
            return tune.with_resources(
                tune.with_parameters(resuming(wrap(grid_trial)), **params, finished=finished), resources
            )

        t_fit = time.perf_counter()
        record = marker_record(cfg, groups, slots, unit_groups=[gi for gi, _ in flat])
        written = _latest_written([g.inp for g in groups])
        label = experiment_label([g.inp.name for g in groups])  # what its progress lines name: its grids
        pairs, _ = _fit(name, make_trainable, space, tc, storage_path, fp, len(flat), record, held, written, label)
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
