"""Whether a store partition accepts a run's :class:`~repeval.pipeline.partitions.PartitionSpec` — as it is, with
the frames it holds, or as repeval fingerprinted it before (``PartitionSpec.stamped_before``) — and what a conflict
adds when it can tell why the stored fingerprint differs: a scenario renumbered (:func:`renumbered_hint`), the same
values hashed by an earlier rule or written otherwise (:func:`written_hint`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from repeval.config.loader import _said_once, config_hash
from repeval.json_keys import date_values, json_text, other_keys, sorted_json
from repeval.models.param_fingerprints import first_given_as_text
from repeval.store import StoreConflict
from repeval.store.fingerprint import _described_diff, computed_twice, new_model_id
from repeval.store.layout import stored_name
from repeval.words import named

if TYPE_CHECKING:
    from repeval.config import Config
    from repeval.pipeline.partitions import PartitionSpec

#: why two fingerprints of the same values differ (:func:`written_hint`, :func:`computed_twice_problem`)
WRITTEN_OTHERWISE = (
    "(the values, with the model's defaults, keys as text) but are written otherwise: a value at its default written "
    "out or left unset, a key written as a number, null or date (`1:`) or as text (`'1':`), or a date value unquoted "
    "(`2024-01-01`) or quoted (`'2024-01-01'`)"
)


def accepted_spec(part: Any, spec: PartitionSpec) -> PartitionSpec:
    """``spec`` checked against what ``part`` holds (:meth:`~repeval.store.Partition.check_compatible`, whose
    :class:`~repeval.store.StoreConflict` it raises): the spec the run computes the partition under. A partition
    stored with frames that ``spec`` does not ask for (an earlier run kept them: ``run.keep_frames: true``, or a task
    that reads them) serves the run as it is and is completed with frames — rows without them never join it."""
    try:
        return _accepted(part, spec)
    except StoreConflict as exc:
        for before in spec.stamped_before(part.stamped()):  # a chunk_s that gives these windows, as stamped before
            try:
                return _accepted(part, before)
            except StoreConflict:
                pass
        hint = renumbered_hint(part, spec) or written_hint(part, spec)
        if not hint:
            raise
        raise StoreConflict(f"{exc}{hint}") from None


def renumbered_hint(part: Any, spec: PartitionSpec) -> str:
    """What to add to the conflict of a partition holding another of the run's scenarios (``spec.others``): renumbered
    by one inserted before it, and not reused under its new id, which seeds the deformation (``""``: none of them)."""
    stamp = part.stamped()
    fp = stamp.get("fingerprint") if isinstance(stamp, dict) else None
    held = fp.get("scenario") if isinstance(fp, dict) else None
    now = None if held is None else next((o for o, sc in spec.others if config_hash(sc) == held), None)
    if now is None:
        return ""
    return (
        f". It holds the scenario this configuration calls {now}: unnamed scenarios take their position's id (D1, D2, "
        "…), so one inserted before them renumbers them, and a renumbered scenario is computed anew under its new id "
        "(the id seeds each track's deformation). Add new scenarios after the unnamed ones to keep their ids and "
        "partitions, or delete the renumbered partitions to compute them under their new ids"
    )


def written_hint(part: Any, spec: PartitionSpec) -> str:
    """What to add to the conflict of a partition whose model params or scenario hash differs from the run's while
    they are the same values, written otherwise: hashed by the rule before repeval told a number, null or date key, or
    a date value, from its text (:func:`config_hash`'s ``keys_as_text``), or described alike (``""``: neither)."""
    stamp = part.stamped()
    old = stamp.get("fingerprint") if isinstance(stamp, dict) else None
    if not isinstance(old, dict):
        return ""
    told = stamp.get("described")
    told = told if isinstance(told, dict) else {}
    model = old.get("model")
    model = model if isinstance(model, dict) else {}
    now, params = spec.fingerprint, spec.model.params if spec.model else None
    writings = [params, *spec.model.earlier] if spec.model else []  # an Enum member by its name or value, as written
    if spec.model is not None and spec.model.as_text and model.get("params") != now["model"]["params"]:
        held = model.get("params")
        then = next((o for o in spec.model.text_writings if held in (config_hash(o), config_hash(o, True))), None)
        if then is not None:  # the writing the partition was stamped under: what the model got then, as text
            if spec.model.as_mapping:  # a dataclass, given as the mapping then
                return _as_mapping_hint(spec, then)
            found = first_given_as_text(spec.model.family.cls, then)
            shown = f" (`{found[0]!r}`, not `{type(found[1]).__name__}.{found[1].name}`)" if found else ""
            return (
                f". The stored model.params hash is this configuration's as repeval hashed it when it gave the model "
                f"the `Enum` members of {named('param', spec.model.as_text)} as text{shown}: "
                "it builds them as members now, which a model may read otherwise, so the partition's rows are not "
                "reused"
            )
    sides = {  # path → (stored hash, the run's, what it hashes as repeval hashed it before)
        "model.params": (model.get("params"), now["model"]["params"], writings),
        "scenario": (old.get("scenario"), now.get("scenario"), [spec.described.get("scenario")]),
    }
    if before := [
        p
        for p, (held, hashed, of) in sides.items()
        if held != hashed and held in {config_hash(o, True) for o in of if o is not None}
    ]:
        # the params as the run holds them say which rule applies; a scenario's (described: JSON) may hold either
        keys, dates = other_keys(params), date_values(params)
        if "scenario" in before or not (keys or dates):
            keys = dates = True
        told_apart = (
            " or ".join(["a number, null or date key (`1:`)"] * keys + ["a date value (`2024-01-01`)"] * dates)
            + " from its text ("
            + ", ".join(["`'1':`"] * keys + ["`'2024-01-01'`"] * dates)
            + ")"
        )
        written = " or ".join(["keys"] * keys + ["dates"] * dates)
        return (
            f". The stored {' and '.join(before)} {'hash is' if len(before) == 1 else 'hashes are'} this "
            f"configuration's as repeval hashed it before it told {told_apart}, which it hashed alike: the partition "
            f"was embedded with these params or with the same {written} written as text, which cannot be told apart, "
            "so its rows are not reused"
        )
    if alike := [
        p for p, (held, hashed, _) in sides.items() if held != hashed and p in told and told[p] == spec.described.get(p)
    ]:
        return f". Its {' and '.join(alike)} read as this configuration's {WRITTEN_OTHERWISE}"
    return ""


def computed_twice_problem(
    cfg: Config, first: tuple[str, Any, Any, Any], here: tuple[str, Any, Any, Any]
) -> str | None:
    """The error of two experiments of ``cfg`` that list one dataset with one embedding model id computed otherwise
    (``first``, ``here``: each the model's key path, its experiment, the dataset and the model): the store partitions
    of that dataset and model would hold the rows of both, so the run refuses it as it plans them
    (:meth:`~repeval.store.Partition.check_compatible`), in these words; ``None`` when their clean partition's
    fingerprints, as the run computes them, are the same (a ``batch_size`` differs: one stream uses the smaller).
    Params that read alike but are hashed apart are named as written, the fix to write them alike first."""
    from repeval.pipeline.partitions import ModelSpec
    from repeval.pipeline.stages import CLEAN

    (where, *was), (at, *now) = first, here
    a, b = (ModelSpec.of(cfg, m).partition(cfg, exp, ds, CLEAN) for exp, ds, m in (was, now))
    if a.fingerprint == b.fingerprint:
        return None
    ds, model = now[1].name, now[2].id
    partition = "/".join(map(stored_name, (ds, model, CLEAN)))
    new_id = new_model_id(model, b.fingerprint["model"]["family"], cfg.embedding_model_ids())
    written = _written_otherwise(a, b, where)
    if written:
        return f"{at}: {computed_twice(partition, written, where, new_id, WRITTEN_OTHERWISE)}"
    diff = _described_diff(a.fingerprint, b.fingerprint, a.described, b.described)
    return f"{at}: {computed_twice(partition, diff, where, new_id)}"


def exempt_differences(fam: Any, there: dict[str, Any], here: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The params family ``fam`` leaves out of the store's fingerprint (its ``fingerprint_exempt``: how, not what, it
    computes) that two of its configurations' ``params`` (``there``, ``here``) run with otherwise: each ``(name, the
    value there, here)``, a param left unset as its default."""
    from repeval.models.base import param_or_default

    out = []
    for key in getattr(fam.cls, "fingerprint_exempt", ()):
        a, b = (param_or_default(fam.cls, p, key) for p in (there, here))
        if sorted_json(a) != sorted_json(b):
            out.append((key, a, b))
    return out


#: the place of a note of :func:`one_stream_notes`: an experiment's embedding model
_MODEL_PLACE = re.compile(r"^(experiments\[\d+\]\.embedding_models\[\d+\])(: .*)$", re.S)


def one_stream_notes(cfg: Config) -> list[str]:
    """Each embedding model that two experiments of ``cfg`` list under one id, computed alike but for params its
    family leaves out of the store's fingerprint (:func:`exempt_differences`: musicnn's ``backend``, basic-pitch's
    ``max_batch_windows``): one stream embeds the tracks of both, with the first's values (the embeddings are the
    same either way) — said as a note by ``repeval validate`` and ``plan``, naming the values that run and how to
    run each with its own; said once for the experiments that set them alike (the other places named)."""
    from repeval.models import resolve_model
    from repeval.pipeline.partitions import ModelSpec

    firsts: dict[str, tuple[str, Any]] = {}
    taken = cfg.embedding_model_ids()
    notes = []
    for ei, exp in enumerate(cfg.experiments):
        for mi, m in enumerate(exp.embedding_models):
            fam, params = resolve_model(m)
            if not getattr(fam.cls, "fingerprint_exempt", ()):
                continue
            where = f"experiments[{ei}].embedding_models[{mi}]"
            first, was = firsts.setdefault(ModelSpec.of(cfg, m).stream_name(), (where, m))
            differ = exempt_differences(fam, resolve_model(was)[1], params) if first != where else []
            if not differ:
                continue
            runs = ", ".join(
                f"params.{k}: {json_text(a)}, as {first} {'sets' if k in was.params else 'leaves'} it, "
                f"not {json_text(b)} as {'set' if k in m.params else 'left unset'} here"
                for k, a, b in differ
            )
            one = len(differ) == 1
            how = " and ".join(f"params.{k}" for k, _, _ in differ)
            notes.append(
                f"{where}: model {m.id!r} is embedded with {runs} — one stream embeds the tracks of both ({how} "
                f"{'says' if one else 'say'} how, not what, the model computes, and the store's fingerprint leaves "
                f"{'it' if one else 'them'} out: the embeddings are the same either way); to run each with its own, "
                f"give the model a new id in one of them ({new_model_id(m.id, fam.name, taken)})"
            )
    return _said_once(notes, _MODEL_PLACE)  # a task grid setting it alike: one note, not one per experiment


def _written_otherwise(a: PartitionSpec, b: PartitionSpec, where: str) -> str:
    """The params, as written, of two specs of one partition whose fingerprints differ in their params' hash alone
    while the params read alike (``described``; ``where``: the first's key path): each written in one alone, or
    written otherwise in both (a key as a number or as text, a date quoted or not); ``""`` when they differ otherwise."""
    fa, fb = ({**fp, "model": {**fp["model"], "params": None}} for fp in (a.fingerprint, b.fingerprint))
    if fa != fb or a.described != b.described or a.model is None or b.model is None:
        return ""
    was, now = a.model.params, b.model.params
    said = []
    for key in sorted(set(was) | set(now), key=str):
        if key not in was:
            said.append(f"model.params.{key}: {json_text(now[key])} here, not written in {where}")
        elif key not in now:
            said.append(f"model.params.{key}: not written here, {json_text(was[key])} in {where}")
        elif sorted_json(was[key]) != sorted_json(now[key]):
            said.append(f"model.params.{key}: written otherwise here than in {where}")
    return "; ".join(said)


def _accepted(part: Any, spec: PartitionSpec) -> PartitionSpec:
    framed = spec.with_frames()
    try:
        kept = part.check_compatible(spec.fingerprint, spec.described, spec.taken)
    except StoreConflict:
        if spec.frames or not _compatible(part, framed):
            raise
        return framed  # stored with frames, and differing otherwise only as the windowing rule accepts
    return framed if kept else spec


def _compatible(part: Any, spec: PartitionSpec) -> bool:
    try:
        part.check_compatible(spec.fingerprint, spec.described, spec.taken)
    except StoreConflict:
        return False
    return True


def _as_mapping_hint(spec: PartitionSpec, then: dict[str, Any]) -> str:
    """What a conflict adds of a partition stamped when repeval gave the model its dataclass params as the mapping
    written (``spec.model.as_mapping``), the params' writing ``then`` — and, where ``then`` holds them as written, the
    ``Enum`` members of others as text."""
    assert spec.model is not None
    mapped = spec.model.as_mapping
    each = [
        f"{k} as mappings (`dict`s, not `{kind}`s)" if many else f"{k} as a mapping (a `dict`, not a `{kind}`)"
        for k, kind, many in mapped
    ]
    dataclasses = {k for k, _, _ in mapped}
    text = [k for k in spec.model.as_text if k not in dataclasses and then.get(k) != spec.model.params.get(k)]
    as_text = f" and the `Enum` members of {named('param', text)} as text" * bool(text)
    built = "the dataclass" if len(mapped) == 1 and not mapped[0][2] else "the dataclasses"
    return (
        f". The stored model.params hash is this configuration's as repeval hashed it when it gave the model "
        f"{named('param', each)}{as_text}: it builds {built}{' and members' * bool(text)} now, which a model may read "
        "otherwise, so the partition's rows are not reused"
    )
