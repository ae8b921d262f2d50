"""What a run asks of each store partition: the configuration it is computed under (its fingerprint) and the
tracks it must hold. The embedding stage plans its streams from these, and ``repeval plan`` reports with them
what that stage would do — one rule, so a partition the plan calls complete is one the stage leaves alone."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets.rows import iso_time
from repeval.deformations import scenario_steps, track_level_steps
from repeval.models import resolve_model
from repeval.pipeline.stages import CLEAN, DEFAULT_CHUNK_S, window_grid
from repeval.store import StoreConflict
from repeval.store.layout import STORE_FORMAT
from repeval.warn import warn_once

log = logging.getLogger(__name__)


def model_fingerprint(model_cfg: Any) -> dict[str, Any]:
    """The family, a hash of the configured params but ``chunk_s`` (the windows the partition's fingerprint records:
    :func:`window_s`) and those its ``fingerprint_exempt`` names (:func:`_fingerprinted`) and, once raised above "1",
    the family's ``embedding_version`` (absent at "1", so partitions stamped before versions joined the fingerprint
    keep theirs)."""
    fam, params = resolve_model(model_cfg)
    out = {"family": fam.name, "params": config_hash(_fingerprinted(fam, params))}
    version = str(getattr(fam.cls, "embedding_version", "1"))
    if version != "1":
        out["version"] = version
    return out


def scenario_fingerprint(exp: ExperimentConfig, sid: str, ds: Any, run_seed: int) -> dict[str, Any]:
    if sid == CLEAN:
        return {"scenario": CLEAN}
    scen = exp.scenarios_for(ds)[sid]
    return {"scenario": config_hash(scen), "seed": run_seed}


def model_geometry(fam: Any, params: dict[str, Any]) -> Any:
    """The model's :class:`~repeval.models.base.FrameGeometry` when its long tracks are cut into windows (a
    ``chunk_s``) and it declares one; else ``None`` (each window embedded alone)."""
    if model_chunk_s(fam, params) is None:
        return None
    return fam.cls.frame_geometry(params)


def raised_chunk_s(cfg: Config, mcfg: Any) -> float | None:
    """The windows (seconds, as :func:`window_s` gives them: a ``chunk_s`` of that value cuts tracks alike and shares
    their partitions) a model's long tracks are cut into when they are longer than the ``params.chunk_s`` it is
    configured with — its frame geometry's windows hold whole hops, and at least twice what one of its frames reads
    (:func:`~repeval.pipeline.stages.window_grid`: msd-musicnn's, 5.984 s) — else ``None``; said once as a warning
    naming the value, so that a ``chunk_s`` below it is not changed silently."""
    fam, params = resolve_model(mcfg)
    asked = params.get("chunk_s")
    if not isinstance(asked, int | float) or isinstance(asked, bool) or asked <= 0:
        return None
    rate = int(model_rate(fam, params) or cfg.run.sample_rate_hz)
    used = window_s(fam, params, rate)
    if used is None or round(used * rate) <= round(float(asked) * rate):
        return None
    warn_once(
        log,
        ("chunk_s", mcfg.id, float(asked), used),
        "%s: params.chunk_s %g s is shorter than its windows can be — on its frame grid, each holding at least twice "
        "what one of its frames reads — so its long tracks are cut into windows of %r s; set chunk_s: %r (or more) "
        "to say so",
        mcfg.id,
        asked,
        used,
        used,
    )
    return used


def model_chunk_s(fam: Any, params: dict[str, Any]) -> float | None:
    """The analysis window: ``params.chunk_s``, else the model's declared ``chunk_s``, else 30 s.

    ``None`` or a non-positive value in params means "whole file" (only for models that need it).
    """
    if "chunk_s" in params:
        v = params["chunk_s"]
        return float(v) if v is not None and float(v) > 0 else None
    declared = getattr(fam.cls, "chunk_s", None)
    return float(declared) if declared else DEFAULT_CHUNK_S


def window_s(fam: Any, params: dict[str, Any], sample_rate_hz: int) -> float | None:
    """The windows (seconds) a model's long tracks are cut into: its ``chunk_s`` (:func:`model_chunk_s`; ``None``:
    whole tracks) or, when its frame geometry's grid holds a window of that many samples or raises it to more
    (:func:`raised_chunk_s`), that window, in the fewest decimals from the millisecond on that give it — which, as a
    ``chunk_s``, cuts tracks alike (its windows, and the length from which a track has more than one, are those of
    the window's own samples). What a partition's fingerprint records, so equivalent settings share it."""
    from repeval.audio.decode import window_sizes

    chunk = model_chunk_s(fam, params)
    geometry = model_geometry(fam, params)
    if chunk is None or geometry is None:
        return chunk
    size = window_sizes(sample_rate_hz, chunk, *window_grid(geometry))[0]
    if size < round(chunk * sample_rate_hz):
        return chunk  # below it on the grid: a track has a second window from 1.5 × chunk_s on
    exact = size / sample_rate_hz
    return next((v for v in (round(exact, n) for n in range(3, 10)) if round(v * sample_rate_hz) == size), exact)


def _without_window(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` but ``chunk_s``: a pipeline setting, not the model's (its windows join a fingerprint as used)."""
    return {k: v for k, v in params.items() if k != "chunk_s"}


def _fingerprinted(fam: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The params a partition's fingerprint hashes: :func:`_without_window`, less those choosing how, not what, the
    family computes (its ``fingerprint_exempt``: musicnn's ``backend``)."""
    exempt = set(getattr(fam.cls, "fingerprint_exempt", ()))
    return {k: v for k, v in _without_window(params).items() if k not in exempt}


def _json(value: Any) -> Any:
    """``value`` as plain JSON (what a stamp can hold)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def model_settings(fam: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The model's parameters as it runs with them: its constructors' defaults (along its classes) under the
    configured ``params``. Kept readable beside the fingerprint's hash of ``params``, so a conflict can say
    ``model.params.n_mfcc: stored 20, now 30``."""
    from repeval.models.base import model_parameters

    defaults = {k: p.default for k, p in model_parameters(fam.cls).items() if p.default is not p.empty}
    return _json({**defaults, **_without_window(params)})


@dataclass(frozen=True)
class PartitionSpec:
    """One partition a run computes: its fingerprint and, readable, what the fingerprint hashes (``described``:
    fingerprint key path → value, stored with the partition's stamp)."""

    sid: str
    fingerprint: dict[str, Any]
    described: dict[str, Any]
    #: the model's configured params and its windows, to recognise a partition stamped before fingerprints recorded
    #: the windows used (:meth:`stamped_before`)
    model: ModelSpec | None = field(default=None, compare=False, repr=False)
    #: the run's other scenarios of the dataset, ``(id, scenario hash)``: which one a conflict holds (:func:`renumbered_hint`)
    others: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    @property
    def frames(self) -> bool:
        """Whether the partition's rows hold frame-level embeddings (a ``frames`` column)."""
        return bool(self.fingerprint["keep_frames"])

    def with_frames(self) -> PartitionSpec:
        return PartitionSpec(self.sid, {**self.fingerprint, "keep_frames": True}, self.described, self.model)

    def stamped_before(self, stamp: Any) -> list[PartitionSpec]:
        """This partition as repeval fingerprinted it before fingerprints recorded the windows used — the params'
        hash took ``chunk_s`` as configured, ``chunk_s`` the value asked — for each ``chunk_s`` the partition's
        ``stamp`` may have been configured with that cuts tracks into this run's windows (a ``chunk_s`` below the
        model's shortest window, raised to it): such a partition holds the rows this run computes, and is completed
        under its own fingerprint. Its stamp's ``described`` names that ``chunk_s``; without it (stamped before it was
        kept), the fingerprint's ``chunk_s`` or none."""
        m = self.model
        old = stamp.get("fingerprint") if isinstance(stamp, dict) else None
        if m is None or m.window_s is None or not isinstance(old, dict) or "chunk_s" not in old:
            return []
        described = stamp.get("described")
        said = described.get("model.params") if isinstance(described, dict) else None
        if isinstance(said, dict):
            asked = [said["chunk_s"]] if "chunk_s" in said else [None]
        else:
            value = old["chunk_s"]
            asked = [None, value] + ([int(value)] if isinstance(value, float) and value.is_integer() else [])
        out = []
        for chunk_s in asked:
            params = m.params if chunk_s is None else {**m.params, "chunk_s": chunk_s}
            if window_s(m.family, params, m.sample_rate_hz) != m.window_s:
                continue
            fp = {**self.fingerprint, "model": {**m.fingerprint, "params": config_hash(params)}}
            out.append(PartitionSpec(self.sid, {**fp, "chunk_s": model_chunk_s(m.family, params)}, self.described))
        return out


def model_rate(fam: Any, params: dict[str, Any]) -> int | None:
    """The sampling rate a model runs at, known without building it: ``params.sample_rate_hz``, else what the family
    declares for these params (:meth:`~repeval.models.base.EmbeddingModel.declared_sizes`), else a class-level
    ``sample_rate_hz``; ``None`` when none says (then the stream decodes at ``run.sample_rate_hz``, and the model's
    actors refuse a rate other than theirs)."""
    try:
        declared = fam.cls.declared_sizes(params)[0]
    except Exception:  # a declaration that needs what is not here (weights' configuration): not known
        declared = None
    rate = params.get("sample_rate_hz") or declared or getattr(fam.cls, "sample_rate_hz", None)
    return int(rate) if rate else None


@dataclass(frozen=True)
class ModelSpec:
    """How a run computes one model's partitions of one dataset."""

    model_id: str
    sample_rate_hz: int
    chunk_s: float | None
    fingerprint: dict[str, Any]
    settings: dict[str, Any]
    #: windows reach the model with the context its frames need across their edges (a frame geometry)
    overlapped: bool = False
    #: the windows its long tracks are cut into (:func:`window_s`), which partitions' fingerprints record
    window_s: float | None = None
    family: Any = None
    #: its params as fingerprinted (:func:`_fingerprinted`: but ``chunk_s`` and params choosing the framework)
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: Config, mcfg: Any) -> ModelSpec:
        fam, params = resolve_model(mcfg)
        sample_rate = int(model_rate(fam, params) or cfg.run.sample_rate_hz)
        fp = model_fingerprint(mcfg)
        overlapped = model_geometry(fam, params) is not None
        raised_chunk_s(cfg, mcfg)
        return cls(
            mcfg.id,
            sample_rate,
            model_chunk_s(fam, params),
            fp,
            model_settings(fam, params),
            overlapped,
            window_s(fam, params, sample_rate),
            fam,
            _fingerprinted(fam, params),
        )

    def partition(self, cfg: Config, exp: ExperimentConfig, ds: Any, sid: str) -> PartitionSpec:
        """The partition of ``ds`` in scenario ``sid``, as this run asks for it: with frames when a task of the run
        reads them there (:meth:`~repeval.config.Config.keeps_frames`)."""
        fp = {
            "model": self.fingerprint,
            **scenario_fingerprint(exp, sid, ds, cfg.run.seed),
            "sample_rate_hz": self.sample_rate_hz,
            "chunk_s": self.window_s,
            "keep_frames": cfg.keeps_frames(ds.name, self.model_id),
            "store_format": STORE_FORMAT,
        }
        if self.overlapped:
            # a track of several windows has the frames of the whole track: a partition computed window by window
            # alone (before repeval overlapped windows) differs on every such track, and is not completed with these
            fp["windows"] = "overlapped"
        described = {"model.params": self.settings}
        if sid != CLEAN:
            scenario = exp.scenarios_for(ds)[sid]
            described["scenario"] = _json(scenario.model_dump(mode="json"))
            if self.chunk_s is not None and track_level_steps(scenario_steps(scenario)):
                # deformed whole, then chunked: a partition computed window by window (before repeval deformed such
                # scenarios whole) differs on every track longer than a window, and is not completed with these rows
                fp["deformed"] = "whole track"
        others = tuple((o, config_hash(sc)) for o, sc in exp.scenarios_for(ds).items() if o != sid)
        return PartitionSpec(sid, fp, described, self, others)


def wanted_masks(cfg: Config, exp: ExperimentConfig, ds: Any, rows: pa.Table, deform_ids: Any) -> dict[str, np.ndarray]:
    """Per scenario of ``exp`` on ``ds`` (``clean`` first): which of ``rows`` the run embeds in it. Deformed: the
    tracks in ``run.deform_splits`` (k folds: ``deform_ids[dataset]``), and the training tracks of scenarios that
    augment the probes' training data (k folds: every track)."""
    run = cfg.run
    ids = rows.column("track_id")
    if deform_ids is not None and ds.name in deform_ids:
        in_deform = pc.is_in(ids, value_set=deform_ids[ds.name])
    else:
        in_deform = pc.is_in(rows.column("split"), value_set=pa.array(list(run.deform_splits), pa.string()))
    deform_mask = pc.fill_null(in_deform, False).to_numpy(zero_copy_only=False)
    augmented = set(exp.augment_for(ds))
    aug_mask = np.zeros(rows.num_rows, bool)
    if augmented and deform_ids is not None and ds.name in deform_ids:
        aug_mask[:] = True
    elif augmented:
        aug_mask = pc.fill_null(pc.equal(rows.column("split"), "train"), False).to_numpy(zero_copy_only=False)
    out = {CLEAN: np.ones(rows.num_rows, bool)}
    for sid in exp.scenarios_for(ds):
        out[sid] = deform_mask | aug_mask if sid in augmented else deform_mask
    return out


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
        hint = renumbered_hint(part, spec)
        if not hint:
            raise
        raise StoreConflict(f"{exc}{hint}") from None


def renumbered_hint(part: Any, spec: PartitionSpec) -> str:
    """What to add to the conflict of a partition holding another of the run's scenarios (``spec.others``): renumbered
    by one inserted before it, and not reused under its new id, which seeds the deformation (``""``: none of them)."""
    stamp = part.stamped()
    fp = stamp.get("fingerprint") if isinstance(stamp, dict) else None
    held = fp.get("scenario") if isinstance(fp, dict) else None
    now = next((o for o, h in spec.others if h == held), None)
    if held is None or now is None:
        return ""
    return (
        f". It holds the scenario this configuration calls {now}: unnamed scenarios take their position's id (D1, D2, "
        "…), so one inserted before them renumbers them, and a renumbered scenario is computed anew under its new id "
        "(the id seeds each track's deformation). Add new scenarios after the unnamed ones to keep their ids and "
        "partitions, or delete the renumbered partitions to compute them under their new ids"
    )


def _accepted(part: Any, spec: PartitionSpec) -> PartitionSpec:
    framed = spec.with_frames()
    try:
        kept = part.check_compatible(spec.fingerprint, spec.described)
    except StoreConflict:
        if spec.frames or not _compatible(part, framed):
            raise
        return framed  # stored with frames, and differing otherwise only as the windowing rule accepts
    return framed if kept else spec


def _compatible(part: Any, spec: PartitionSpec) -> bool:
    try:
        part.check_compatible(spec.fingerprint, spec.described)
    except StoreConflict:
        return False
    return True


def _place(path: str) -> str:
    """A configured path as a source records it: a URI as given, a local path made absolute."""
    return path if "://" in path else str(Path(path).resolve())


def _file_identity(uri: str) -> dict[str, Any]:
    """Size and modification time of one file (a catalog's manifest, a mirdata index): one ``stat``, which changes
    when the file is written again (a set rendered anew, another copy); nothing when it cannot be read."""
    from repeval.datasets.catalog import _filesystem

    try:
        fs, path = _filesystem(uri)
        info = fs.get_file_info(path)
    except (OSError, ValueError, pa.ArrowException):
        return {}
    if info.type != pafs.FileType.File or info.mtime_ns is None:
        return {}
    return {"size": info.size, "modified": iso_time(info.mtime_ns)}


def dataset_source(ds: Any, listed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where a dataset definition takes its audio from, as the store's partitions record it (``sources``): the
    loader, the folder its audio paths start from and, for a catalog (a mirdata data set), the manifest (index: the
    config's ``index_path``, else the one mirdata read) with its size and modification time; and ``audio``, what
    its loader found of the audio files (``listed``: a :class:`~repeval.datasets.base.LoadReport`'s, when it
    checked them): their number, total size and newest modification time — so audio downloaded again into the
    same folder is told from the audio a partition was computed from. Cheap at catalog scale: one ``stat``, none of
    the audio files (the loader's check stats them already)."""
    from repeval.datasets.catalog import _base_dir

    listed = listed or {}
    listing = ds.manifest if ds.type == "catalog" else ds.index_path or listed.get("index")
    root = _base_dir(ds.manifest, ds.dir) if ds.type == "catalog" else ds.dir
    out: dict[str, Any] = {"type": ds.type, "dir": _place(root) if root else None}
    if listing:
        out["manifest" if ds.type == "catalog" else "index"] = _place(listing)
        out.update(_file_identity(listing))
    if listed.get("audio"):
        out["audio"] = dict(listed["audio"])
    return out


def run_sources(definitions: Iterable[tuple[Any, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Dataset name → the sources of its definitions in a run (:func:`dataset_source`; several when tasks define it
    differently — the run checks that their shared track ids name the same audio files), from ``(dataset config,
    its loader's report or None)`` pairs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ds, report in definitions:
        found = out.setdefault(ds.name, [])
        source = dataset_source(ds, getattr(report, "listed", None))
        if source not in found:
            found.append(source)
    return out


def _newest(source: dict[str, Any]) -> str | None:
    audio = source.get("audio")
    return audio.get("newest") if isinstance(audio, dict) else None


def _covered(recorded: list[Any], source: dict[str, Any]) -> bool:
    """Whether rows computed from ``recorded`` sources are of ``source``'s audio as far as can be told: one of them
    names the same place (all but ``audio`` alike) and no audio file ``source``'s loader found is newer than the
    newest those saw (audio written since — downloaded or rendered again — may differ). A count or size alone does
    not tell: another task may list a subset of the same files."""
    place = {k: v for k, v in source.items() if k != "audio"}
    same = [r for r in recorded if isinstance(r, dict) and {k: v for k, v in r.items() if k != "audio"} == place]
    seen = [t for t in map(_newest, same) if t]
    now = _newest(source)
    return bool(same) and (now is None or not seen or now <= max(seen))


def changed_source(part: Any, sources: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The sources ``part`` records when this run's dataset (``sources``) is not among them — the rows it reuses
    may have been computed from other audio under the same track ids: audio elsewhere, or audio written since in
    the same place — else ``None`` (also for a partition that records none: stored before repeval recorded them)."""
    recorded = part.sources()
    if recorded is None or all(_covered(recorded, s) for s in sources):
        return None
    return list(recorded)


def describe_source(source: Any) -> str:
    """One source (:func:`dataset_source`) in words: ``/data/notes (manifest /data/notes/manifest.csv, 1,234 bytes,
    modified 2025-…)``, and the audio files its loader found: ``; 120 audio files, 4,567,890 bytes, the newest
    modified 2025-…``."""
    if not isinstance(source, dict):
        return json.dumps(source, default=str)
    text = str(source.get("dir") or f"{source.get('type', 'the loader')}'s default folder")
    for key in ("manifest", "index"):
        if source.get(key):
            size = f", {source['size']:,} bytes, modified {source['modified']}" if "size" in source else ""
            text += f" ({key} {source[key]}{size})"
    audio = source.get("audio")
    if isinstance(audio, dict) and {"files", "bytes", "newest"} <= set(audio):
        text += f" ({audio['files']:,} audio files, {audio['bytes']:,} bytes, the newest modified {audio['newest']})"
    return text


def source_note(
    store_uri: str, dataset: str, model: str, changed: dict[str, tuple[Any, int]], now: Any, run: bool = True
) -> str:
    """What a run says once per dataset and model whose stored rows were computed from audio elsewhere (or written
    since): ``changed`` maps each such partition's scenario to (its recorded sources, tracks reused). ``run=False``:
    the same without the run's closing words (``repeval plan`` joins its notes, :func:`plan_source_note`)."""
    import shlex

    sids = sorted(changed)
    recorded = changed[sids[0]][0]
    reused = sum(n for _, n in changed.values())
    names = " ".join(shlex.quote(f"{dataset}/{model}/{sid}") for sid in sids)
    said = (
        f"{dataset}/{model} ({', '.join(sids)}) holds {reused:,} track(s) reused as stored, computed "
        f"from the audio of {' and '.join(describe_source(s) for s in recorded)}; dataset {dataset!r} now takes its "
        f"audio from {' and '.join(describe_source(s) for s in now)}. If that is other audio under the same track ids "
        f"(another copy, catalog, rendering or download), delete the partitions to recompute them (`repeval store rm "
        f"{shlex.quote(store_uri)} {names} --yes`); if it is the same audio (moved, copied or downloaded again), nothing to do"
    )
    return f"store: {said}: this run records the new source, and this is not said again" if run else said


def plan_source_note(notes: list[tuple[str, int]]) -> str:
    """``repeval plan``'s one note for the (dataset, model) pairs a run would say :func:`source_note` of: ``notes``
    holds each one's words (``run=False``) and tracks. The plan only reads the store, so it says until a run has
    recorded the new source, after which neither says it."""
    tail = (
        "`repeval run` says so and records the new source (this plan only reads the store), after which neither says it"
    )
    if len(notes) == 1:
        return f"store: {notes[0][0]}: {tail}"
    total = sum(n for _, n in notes)
    head = f"store: {len(notes)} dataset/model pairs reuse {total:,} stored track(s) computed from other audio; {tail}:"
    return "\n".join([head, *(f"  - {said}" for said, _ in notes)])


def partition_state(
    part: Any, spec: PartitionSpec, ids: pa.Array, wanted: np.ndarray
) -> tuple[str, str, np.ndarray | None]:
    """What the embedding stage would do with ``part`` for the wanted tracks (``ids[wanted]``): ``("complete",
    "")`` (nothing), ``("todo", what)`` (embed tracks, or mark it complete) or ``("conflict", the error the stage
    would stop with)``; and which of ``ids`` the partition holds already (``None`` for a conflict: not read)."""
    try:
        accepted_spec(part, spec)
    except StoreConflict as exc:
        return "conflict", str(exc), None
    done = pc.is_in(ids, value_set=part.done_ids()).to_numpy(zero_copy_only=False)
    missing = int((wanted & ~done).sum())
    if missing:
        return "todo", f"{missing:,} of {int(wanted.sum()):,} track(s) to embed", done
    return ("complete", "", done) if part.complete else ("todo", "not marked complete", done)
