"""What a rerun reuses of the Tune experiments an interrupted run left, as ``repeval plan`` counts it.

The plan reads the experiments' markers and checkpoint summaries only — no Ray, no embeddings — and judges each
marker as the rerun's training stage does (:func:`repeval.tuning.tuner._fit`): of this plan by its fingerprint and
recorded groups; a marker an earlier repeval wrote without the data's identity, by its time against the row part files
of the partitions its groups train on (:func:`repeval.tuning.tuner._rewritten_since`) — an experiment the rerun moves
aside as stale is not counted, nor its copies that are told the same way. What it cannot tell, the data's content
against a marker that records it, is counted as reused: an upper bound.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

from repeval.tuning.tuner import (
    MARKER_SUFFIX,
    UNREAD_DATA,
    _finished_checkpoints,
    _marker,
    _merged,
    _plan_checkpoints,
    _rewritten_since,
    _same_plan,
)

#: group names → the latest write time (ns) of the row part files of the store partitions they train on
#: (:func:`repeval.run.groups.partitions_written_ns`), ``None`` when none is known
Written = Callable[[Sequence[str]], int | None]


def _written_of(written: Written | None, groups: Sequence[str]) -> Callable[[], int | None] | None:
    """What the rerun's experiment of ``groups`` asks of its partitions' writes (asked once, when needed)."""
    return functools.cache(lambda: written(groups)) if written is not None else None


def finished_of_groups(
    storage_path: str, pending: dict[str, Any], settings: dict[str, Any], written: Written | None = None
) -> dict[str, tuple[int, int]]:
    """Group name → ``(trials, probe trainings)`` that a rerun would not train again: the whole trial checkpoints
    (:func:`~repeval.tuning.tuner._reusable`, as the rerun finds them) of the experiments whose marker records exactly
    these groups (``pending``: name → :func:`repeval.runner.group_inputs`, as they are now) and ``settings`` (those of
    the marker's ``settings`` that ``settings`` has) — the rerun then plans the same units, the same fingerprint. Reads
    markers and checkpoint summaries only (``repeval plan``: no Ray, no embeddings), so the marker's data identity is
    not compared: the rerun reuses them only if its data's content is the one recorded (an upper bound). A marker
    without the data's identity (an earlier repeval's) older than a partition's rewrite (``written``) is not counted,
    nor a copy so marked: the rerun moves the experiment aside as stale."""
    from repeval.run.groups import same_inputs as same
    from repeval.rundir import TuneStorage
    from repeval.tuning.checkpoint import open_finished

    st = TuneStorage(storage_path)
    out: dict[str, tuple[int, int]] = {}
    for marker in st.names():
        if not marker.endswith(MARKER_SUFFIX):
            continue
        name = marker[: -len(MARKER_SUFFIX)]
        if ".incomplete-" in name or ".stale-" in name:
            continue
        rec = _marker(st.read_text(marker))
        groups, fp, kept = rec.get("groups"), rec.get("fingerprint"), rec.get("settings") or {}
        if not isinstance(groups, list) or not groups or not isinstance(fp, str):
            continue  # written before markers recorded their groups, or cut short
        if any(kept.get(k) != v for k, v in settings.items()):
            continue
        if any(not isinstance(g, list) or len(g) != 2 or g[0] not in pending or not same(g[1], pending[g[0]])
               for g in groups):  # fmt: skip
            continue  # one of its groups is done or has other inputs now: the rerun plans another experiment
        unit_groups = rec.get("unit_groups")
        data = rec.get("data") if isinstance(rec.get("data"), str) else UNREAD_DATA
        when = _written_of(written, [g[0] for g in groups])
        current = _same_plan(rec, fp, data, _rewritten_since(st, marker, rec, data, when))  # else moved aside as stale
        held, _ = _plan_checkpoints(st, name, fp, data, current=current, say=False, written=when)
        for key, src in _merged(held).items():
            found = open_finished(src, st)
            if found is None:
                continue
            summary = found[2]
            if rec.get("judged") and not isinstance(summary.get("reported"), list):
                continue  # judged by a scheduler and its reports not kept: trained again
            try:
                unit = int(json.loads(key)["unit"])
                group = groups[unit_groups[unit] if isinstance(unit_groups, list) else 0][0]
                members = int(summary["metrics"].get("members", 0))
            except (ValueError, KeyError, IndexError, TypeError):
                continue
            trials, trainings = out.get(group, (0, 0))
            out[group] = (trials + 1, trainings + members)
    return out


def unrecorded_of_groups(
    storage_path: str, groups_of: Callable[[str], Sequence[str]], written: Written | None = None
) -> tuple[int, int, int]:
    """``(experiments, trials, probe trainings)`` of the Tune experiments of the grids not done (``groups_of``: a Tune
    experiment's name → the grids a rerun may start it for, none for another) whose marker an earlier repeval wrote
    without their groups: whether a rerun reuses their whole trial checkpoints (each experiment's own and those of its
    copies moved aside as incomplete) depends on the fingerprint it plans, which needs the embeddings — at most these.
    Of them, those the rerun moves aside whatever it plans are left out: a marker (the experiment's, or a copy's)
    without the data's identity older than a rewrite of those grids' partitions (``written``). Reads markers and
    checkpoint summaries only, like :func:`finished_of_groups`."""
    from repeval.rundir import TuneStorage
    from repeval.tuning.checkpoint import open_finished

    st = TuneStorage(storage_path)
    names = st.names()
    experiments = trials = trainings = 0
    for marker in names:
        name = marker[: -len(MARKER_SUFFIX)] if marker.endswith(MARKER_SUFFIX) else None
        grids = groups_of(name) if name is not None and ".incomplete-" not in name and ".stale-" not in name else []
        if name is None or not grids:
            continue
        rec = _marker(st.read_text(marker))
        if "groups" in rec or not isinstance(rec.get("fingerprint"), str):
            continue  # recorded (finished_of_groups counts it), or no marker to resume by: never reused
        when = _written_of(written, grids)
        copies = [n for n in names if n.startswith(f"{name}.incomplete-") and not n.endswith(MARKER_SUFFIX)]
        found: dict[str, int] = {}
        for d in [name, *copies]:
            own = marker if d == name else f"{d}{MARKER_SUFFIX}"
            if _rewritten_since(st, own, _marker(st.read_text(own)), UNREAD_DATA, when):
                continue  # of the old embeddings: moved aside as stale, or a copy never reused
            for key, src in _finished_checkpoints(st, d, say=False).items():
                opened = open_finished(src, st) if key not in found else None
                metrics = opened[2].get("metrics") if opened is not None else None
                if isinstance(metrics, dict) and isinstance(metrics.get("members"), int):
                    found[key] = metrics["members"]
        experiments += bool(found)
        trials += len(found)
        trainings += sum(found.values())
    return experiments, trials, trainings
