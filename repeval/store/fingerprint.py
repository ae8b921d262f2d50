"""Comparing a partition's stamp with the fingerprint a run computes it under: the conflict, what differs, the
windowing entries a stamp from before them is accepted without, and the ``sources`` a stamp accumulates."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from repeval.store.layout import stored_name

#: fingerprint entries that only say how a track longer than one analysis window is processed (a deformation scenario
#: applied to the whole track, then cut into windows; windows that reach the model with the context its frames need
#: across their edges — see repeval.pipeline.stages.DecodeDeform): a partition stamped before the entry existed whose
#: rows are all one window long (``n_chunks`` ≤ 1) holds exactly the rows a run with the entry computes, so it is
#: accepted and re-stamped instead of being a conflict
WINDOWING_ENTRIES: dict[str, Any] = {"deformed": "whole track", "windows": "overlapped"}

#: why a partition stamped before each windowing entry differs, when it holds tracks of several windows
WINDOWING_HINTS = {
    "deformed": "the scenario has a step that acts on the track as a whole, which repeval now applies to each track "
    "whole; these rows of tracks longer than one window were deformed window by window",
    "windows": "repeval now gives the model each window of a long track with the audio its frames need across the "
    "window's edges, so a track's frames are those of the whole track; these rows of tracks longer than one window "
    "were embedded window by window alone",
}


#: a key one fingerprint has and the other has not (:func:`fingerprint_diff`): not the same as a stored null
_UNSET: Any = object()


class StoreConflict(RuntimeError):
    """A partition exists but was computed with a different configuration."""


def fingerprint_diff(old: Any, new: Any, path: str = "") -> str:
    """What differs between two fingerprints, key by key: ``keep_frames: stored true, now false; ...`` (JSON values);
    a key only one side has is said to be not set there, and so is a model parameter that is null (its constructor's
    default: the model chooses) — ``model.params.patchHopSize: not set when it was embedded (the model's default),
    now 31``, not ``stored null``; the model's type where it differs (``model.family``), its params then not compared
    (another type's are its own: not "not set")."""
    if isinstance(old, dict) and isinstance(new, dict):
        if not path and _other_type(old, new):  # one type's params are not the other's: not compared
            old, new = ({**fp, "model": {"family": fp["model"]["family"]}} for fp in (old, new))
        parts = []
        for key in sorted(set(old) | set(new), key=str):
            a, b = old.get(key, _UNSET), new.get(key, _UNSET)
            if a != b and not (a in (_UNSET, None) and b in (_UNSET, None)):  # absent and null alike
                parts.append(fingerprint_diff(a, b, f"{path}.{key}" if path else str(key)))
        return "; ".join(parts)

    def short(v: Any) -> str:
        text = json.dumps(v, sort_keys=True, default=str)
        return text if len(text) <= 120 else text[:117] + "..."

    if path == "model.family":  # the configuration's `type`
        return f"the model's type: stored {short(old)}, now {short(new)}: the types differ, each with params of its own"
    if path == "model.version":  # the model's embedding_version, absent at "1" (pipeline.partitions.model_fingerprint)
        old, new = (None if v is _UNSET else v for v in (old, new))
        return f"the model's embedding_version: stored {short(old or '1')}, now {short(new or '1')}"
    # a model parameter stamped null (a constructor's None default: the model chooses) or not at all (a parameter the
    # model had not then) is one the model ran with its own default for
    unset = (_UNSET, None) if path.startswith("model.params.") else (_UNSET,)
    default = " (the model's default)" if len(unset) > 1 else ""
    gone = "not there" if path.startswith("files.") else "not set"  # a file a deformation step reads (its folder's)
    then = f"{gone} when it was embedded{default}" if old in unset else f"stored {short(old)}"
    now = f"now {gone}{default}" if new in unset else f"now {short(new)}"
    return f"{path or 'fingerprint'}: {then}, {now}"


def _other_type(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two fingerprints record models of other registered families (types)."""
    a, b = old.get("model"), new.get("model")
    return (
        isinstance(a, dict) and isinstance(b, dict) and "family" in a and "family" in b and a["family"] != b["family"]
    )


def _described_diff(old: Any, new: dict[str, Any], old_described: Any, new_described: dict[str, Any] | None) -> str:
    """:func:`fingerprint_diff`, with each hash that differs replaced by the values it stands for where both sides
    describe it (``described``: key path such as ``model.params`` → value); the hashes otherwise."""
    if not isinstance(old, dict) or not isinstance(old_described, dict) or not new_described:
        return fingerprint_diff(old, new)
    old_x, new_x = json.loads(json.dumps(old)), json.loads(json.dumps(new))
    for path, value in new_described.items():
        if path not in old_described or old_described[path] == value:
            continue  # not described then, or alike: the hashes say it
        *head, last = path.split(".")
        a, b = old_x, new_x
        for key in head:
            a, b = a.get(key) if isinstance(a, dict) else None, b.get(key) if isinstance(b, dict) else None
        if isinstance(a, dict) and isinstance(b, dict) and last in a and last in b and a[last] != b[last]:
            a[last], b[last] = old_described[path], value
    return fingerprint_diff(old_x, new_x) or fingerprint_diff(old, new)


def merge_sources(recorded: Any, sources: list[dict[str, Any]] | None) -> Any:
    """``recorded`` (a partition's ``sources``) with each of ``sources`` it lacks added, in order; ``recorded`` itself
    when nothing is new."""
    old = recorded if isinstance(recorded, list) else []
    new = [s for s in sources or [] if s not in old]
    return [*old, *new] if new else recorded


def new_model_id(model: str, family: Any, taken: Iterable[str] = ()) -> str:
    """Where and how to give embedding model ``model`` (of registered family ``family``, when known) a new id: the
    first of ``model-2``, ``model-3``, … that none of ``taken`` (the ids a configuration uses) is stored as."""
    used = {stored_name(t).casefold() for t in taken}
    n = 2
    while stored_name(f"{model}-{n}").casefold() in used:
        n += 1
    return f"in embedding_models, `id: {model}-{n}`" + (
        f" with `type: {family}`" if isinstance(family, str) and family else ""
    )


def computed_twice(partition: str, diff: str, planned_by: str, new_id: str | None, alike: str = "") -> str:
    """The error of store partition ``partition`` that two experiments of one run compute differently (``diff``, the
    first's fingerprint said as stored: :func:`fingerprint_diff`) — one model id under other ``params`` on a dataset —
    in the words of both checks that refuse it: the configuration's (``repeval validate``, ``plan``, a run's start;
    ``planned_by``: the first's embedding model) and a run's plan of the partition's stamp (``planned_by``: an earlier
    experiment). ``new_id``: :func:`new_model_id` where the model differs (``None``: the scenario's entries).
    ``alike``: why params that read alike are hashed apart — ``diff`` names them as written —, whose fix comes first."""
    fix = (
        f"give the model a new id in one of them ({new_id})"
        if new_id
        else "give the model or scenario a new id in one of them"
    )
    said = f"store partition {partition}: two experiments of this run compute it differently — {diff}"
    if alike:
        return f"{said}; their model.params read alike {alike}: write them alike, or {fix}"
    return f"{said} (stored: as {planned_by} plans it; nothing is stored yet); {fix}"
