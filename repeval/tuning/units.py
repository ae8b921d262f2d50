"""Plan a group's grid-mode and tune-mode trials: units of (probe configuration × seed), their cost, and the
fingerprint of a plan (what an interrupted experiment must match to be resumed).

The driver (:mod:`repeval.tuning.grid`) runs the units these give; :mod:`repeval.tuning.trial` trains one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any

import numpy as np

from repeval.config import Config
from repeval.probes import ProbeData, group_key
from repeval.tuning.search import ProbeSpec
from repeval.tuning.trial import EvalSettings, Member, Unit

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
    halved until the target is met (or nothing is left to split; a stack that halves, ``scheduler: asha`` on a grid,
    is not split: its configurations are ranked together). Units are ordered heaviest first.
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
        # a stack that halves (scheduler: asha on a grid) ranks its configurations together: split over trials, each
        # part would rank its own few (one alone: none stopped) — it stays whole, as its chunks of run.vectorize
        splittable = [
            u for u in grid_units if len({m.point for m in u.members}) > 1 and not any(m.halving for m in u.members)
        ]
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
        if data.train_frame_counts is not None:  # tracks of unequal lengths, each weighing alike in training
            desc["frames"] = "per track"
    elif data.attention:
        desc["aggregation"] = "attention"
    if data.task_type == "regression":  # probes fit standardised targets (checkpoints of raw-target ones differ)
        desc["targets"] = "standardised"
    return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()


def data_identity(data: ProbeData) -> str:
    """What ``data`` holds — every array its trials train and test on, its classes and test track ids — as a SHA-256:
    recorded in a Tune experiment's marker beside its fingerprint (:func:`_fingerprint`, which covers the arrays'
    shapes only), so that an experiment is never resumed, nor its trials reused, on other embeddings or labels of
    the same shapes (a partition embedded anew: another model version, fixed audio; edited labels). Every byte is
    read once, without copies, as fast as SHA-256 alone: 22–50 ms for a 20,000 × 512 float32 table (41 MB) on one
    core here (0.5–1.2 ms per MB), once per group and run — about a third of reading those rows from one Parquet
    file (120 ms)."""
    h = hashlib.sha256()

    def add(a: Any) -> None:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8) if a.size else b"")

    h.update(json.dumps([data.task_type, data.classes]).encode())
    for a in (data.x_train, data.y_train, data.x_val, data.y_val):
        add(a)
    for sid in sorted(data.tests):
        x, y, ids = data.tests[sid]
        h.update(sid.encode())
        add(x)
        add(y)
        h.update(json.dumps(list(ids), default=str).encode())
    optional: dict[str, np.ndarray | None] = {
        "val_groups": data.val_groups, "train_counts": data.train_counts, "val_counts": data.val_counts,
        "train_frame_counts": data.train_frame_counts,
    }  # fmt: skip
    optional.update({f"test_groups:{k}": v for k, v in sorted(data.test_groups.items())})
    optional.update({f"test_counts:{k}": v for k, v in sorted(data.test_counts.items())})
    for key, extra in optional.items():
        if extra is not None:
            h.update(key.encode())
            add(extra)
    return h.hexdigest()


def trial_slots(cfg: Config, cpus: float) -> int:
    """How many trials run at once on ``cpus`` (the cluster's): what a group's units are planned for."""
    res = cfg.run.resources
    return res.max_concurrent_trials or max(1, int(cpus // res.trial_num_cpus))


def unit_settings(cfg: Config, slots: int | None = None) -> dict[str, Any]:
    """The settings besides a group's inputs (:func:`repeval.runner.group_inputs`) that decide its units — and so
    its experiments' fingerprints — recorded in their markers; ``slots`` when known."""
    out: dict[str, Any] = {"vectorize": cfg.run.vectorize, "pack_trials": cfg.run.pack_trials}
    if slots is not None:
        out["slots"] = slots
    return out


def marker_record(cfg: Config, groups: list[Any], slots: int, **extra: Any) -> dict[str, Any] | None:
    """What a Tune experiment's marker records beside its fingerprint for ``repeval plan``
    (:func:`repeval.tuning.reusable.finished_of_groups`): its groups with their inputs, the unit settings and
    ``extra``; ``None`` when a group's inputs are not known (a caller other than the run's training stage)."""
    if any(g.inp.inputs is None for g in groups):
        return None
    return {"groups": [[g.inp.name, g.inp.inputs] for g in groups], "settings": unit_settings(cfg, slots), **extra}
