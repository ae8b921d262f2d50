"""What a run asks of each store partition: the configuration it is computed under (its fingerprint) and the
tracks it must hold. The embedding stage plans its streams from these, and ``repeval plan`` reports with them
what that stage would do — one rule, so a partition the plan calls complete is one the stage leaves alone."""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.deformations import scenario_steps, track_level_steps
from repeval.deformations.files import scenario_files
from repeval.json_keys import json_text
from repeval.models import resolve_model
from repeval.models.param_fingerprints import (
    dataclass_params,
    given_as_text_before,
    mapping_forms,
    member_names,
    member_writings,
)
from repeval.models.param_kinds import as_built
from repeval.pipeline.audio_source import (  # noqa: F401  (imported from here by the stages and the plan)
    changed_source,
    dataset_source,
    describe_source,
    plan_notes,
    plan_source_note,
    run_sources,
    source_notes,
)
from repeval.pipeline.partition_conflicts import accepted_spec
from repeval.pipeline.stages import CLEAN, DEFAULT_CHUNK_S, window_grid
from repeval.store import StoreConflict
from repeval.store.layout import STORE_FORMAT
from repeval.store.partition import CUT
from repeval.warn import warn_once
from repeval.words import counted

log = logging.getLogger(__name__)


#: the most files a scenario's steps read that a partition's stamp lists, each named by a conflict (more: its hash)
DESCRIBED_FILES = 200


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


def scenario_fingerprint(
    exp: ExperimentConfig, sid: str, ds: Any, run_seed: int, files: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The scenario's hash and the run's seed, and — when a step reads files (``sounds_path``, ``ir_path``) — a hash
    of what they hold (:func:`~repeval.deformations.files.scenario_files`): a noise or impulse response file replaced
    under the same path is a conflict, not rows deformed with the old one completed with the new. A scenario reading
    no files has the fingerprint it had before files joined it. ``files``: the scenario's, when the caller has them."""
    if sid == CLEAN:
        return {"scenario": CLEAN}
    scen = exp.scenarios_for(ds)[sid]
    out = {"scenario": config_hash(scen), "seed": run_seed}
    if files is None:
        files = scenario_files(scenario_steps(scen))
    if files:
        out["files"] = config_hash(files)
    return out


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
    """The params a partition's fingerprint hashes: :func:`_as_written`, an ``Enum`` member as its name however it is
    written (:func:`~repeval.models.param_fingerprints.member_names`: ``mode: GREEN`` and ``mode: green``, its value, build
    the same model and share their partitions)."""
    return member_names(fam.cls, _as_written(fam, params))


def _as_written(fam: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The params as the configuration writes them: :func:`_without_window`, less those choosing how, not what, the
    family computes (its ``fingerprint_exempt``: musicnn's ``backend``) — what the fingerprint hashed before an
    ``Enum`` member was hashed as its name (:meth:`PartitionSpec.stamped_before`)."""
    exempt = set(getattr(fam.cls, "fingerprint_exempt", ()))
    return {k: v for k, v in _without_window(params).items() if k not in exempt}


def _json(value: Any) -> Any:
    """``value`` as plain JSON (what a stamp can hold; a key that is not a string as its text, to read)."""
    return json.loads(json_text(value, sort_keys=True))


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
    #: the run's other scenarios of the dataset, ``(id, scenario)``: which one a conflict holds (:func:`renumbered_hint`,
    #: which hashes them — hashed here, every partition hashed every scenario: 125,000 hashes for 500 partitions)
    others: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)
    #: the embedding model ids of the run's configuration: a new id a conflict names is none of them
    taken: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def frames(self) -> bool:
        """Whether the partition's rows hold frame-level embeddings (a ``frames`` column)."""
        return bool(self.fingerprint["keep_frames"])

    def with_frames(self) -> PartitionSpec:
        framed = {**self.fingerprint, "keep_frames": True}
        return PartitionSpec(self.sid, framed, self.described, self.model, self.others, self.taken)

    def stamped_before(self, stamp: Any) -> list[PartitionSpec]:
        """This partition as repeval fingerprinted it before fingerprints recorded the windows used — the params'
        hash took ``chunk_s`` as configured, ``chunk_s`` the value asked — for each ``chunk_s`` the partition's
        ``stamp`` may have been configured with that cuts tracks into this run's windows (a ``chunk_s`` below the
        model's shortest window, raised to it): such a partition holds the rows this run computes, and is completed
        under its own fingerprint. Its stamp's ``described`` names that ``chunk_s``; without it (stamped before it was
        kept), the fingerprint's ``chunk_s`` or none. And, with an ``Enum`` param, this partition as repeval
        fingerprinted it before members were hashed by name — its params hashed as the stamp's configuration wrote
        them (:attr:`ModelSpec.earlier`, the one whose hash the stamp holds): the same model's rows."""
        m = self.model
        if m is None:
            return []
        old = stamp.get("fingerprint") if isinstance(stamp, dict) else None
        held = old.get("model") if isinstance(old, dict) else None
        held = held.get("params") if isinstance(held, dict) else None
        out = []
        for params in m.earlier:
            if held is None or config_hash(params) == held:
                fp = {**self.fingerprint, "model": {**self.fingerprint["model"], "params": config_hash(params)}}
                out.append(PartitionSpec(self.sid, fp, self.described))
        if m.window_s is None or not isinstance(old, dict) or "chunk_s" not in old:
            return out
        described = stamp.get("described")
        said = described.get("model.params") if isinstance(described, dict) else None
        if isinstance(said, dict):
            asked = [said["chunk_s"]] if "chunk_s" in said else [None]
        else:
            value = old["chunk_s"]
            asked = [None, value] + ([int(value)] if isinstance(value, float) and value.is_integer() else [])
        for chunk_s, written in itertools.product(asked, (m.params, *m.earlier)):
            params = written if chunk_s is None else {**written, "chunk_s": chunk_s}
            if window_s(m.family, params, m.sample_rate_hz) != m.window_s:
                continue
            if written is not m.params and config_hash(params) != held:
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
    #: its params as fingerprinted before an ``Enum`` member was hashed by its name, where that differs from
    #: ``params``: as written (:func:`_as_written`), and each other writing of its members
    #: (:func:`~repeval.models.param_fingerprints.member_writings`: by value, mixed; :meth:`PartitionSpec.stamped_before`)
    earlier: tuple[dict[str, Any], ...] = ()
    #: the params whose ``Enum`` members repeval gave the model as text before it built them as members
    #: (:func:`~repeval.models.param_fingerprints.given_as_text_before`; a dataclass it gave as the mapping), and the
    #: writings it hashed then (:func:`~repeval.models.param_fingerprints.mapping_forms` too): never reused (the model
    #: may read the text otherwise), named by a conflict with a partition stamped under one of them
    as_text: tuple[str, ...] = ()
    text_writings: tuple[dict[str, Any], ...] = ()
    #: of those, the params holding a dataclass it gave the model as the mapping written, each with its class' name and
    #: whether the param holds many (``looks: list[Look]``)
    as_mapping: tuple[tuple[str, str, bool], ...] = ()

    def stream_name(self) -> str:
        """The embedding stream that computes this model's partitions (:func:`~repeval.pipeline.todo.plan_dataset`):
        one per model id computed alike, whatever the datasets and experiments that list it."""
        fp = {"model": self.model_id, **self.fingerprint, "sample_rate_hz": self.sample_rate_hz}
        return config_hash({**fp, "chunk_s": self.chunk_s})

    @classmethod
    def of(cls, cfg: Config, mcfg: Any) -> ModelSpec:
        fam, params = resolve_model(mcfg)
        sample_rate = int(model_rate(fam, params) or cfg.run.sample_rate_hz)
        fp = model_fingerprint(mcfg)
        written = _as_written(fam, params)
        built = as_built(fam.cls, written)  # (once: a dataclass param's __post_init__ runs each time)
        hashed = member_names(fam.cls, written, built)
        writings = [p for p in (written, *member_writings(fam.cls, written, built=built)) if p != hashed]
        # Reused only where the model was built alike then: an Enum alone was built as its member before its member
        # was hashed by name (by its value too), so a partition stamped under any writing of it holds this model's
        # rows. A member given as text before (a list's item, beside another kind, a mapping's value) is not: a
        # plugin may read 'GREEN' otherwise than Color.GREEN, and such rows are not the model's as it is built now.
        # (An Enum alone was given as text too before repeval checked it, commit 85382a1: a partition stamped then
        # under its name's hash cannot be told from one stamped since, and is reused; by its value's, it is too.)
        as_text = given_as_text_before(fam.cls, written, built)
        earlier = [] if as_text else writings
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
            hashed,
            tuple(p for i, p in enumerate(earlier) if p not in earlier[:i]),
            tuple(as_text),
            tuple(writings + mapping_forms(fam.cls, written, built=built)) if as_text else (),
            dataclass_params(fam.cls, written, built) if as_text else (),
        )

    def partition(self, cfg: Config, exp: ExperimentConfig, ds: Any, sid: str) -> PartitionSpec:
        """The partition of ``ds`` in scenario ``sid``, as this run asks for it: with frames when a task of the run
        reads them there (:meth:`~repeval.config.Config.keeps_frames`)."""
        scenario = None if sid == CLEAN else exp.scenarios_for(ds)[sid]
        files = {} if scenario is None else scenario_files(scenario_steps(scenario))  # listed once, read once
        fp = {
            "model": self.fingerprint,
            **scenario_fingerprint(exp, sid, ds, cfg.run.seed, files),
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
        if scenario is not None:
            described["scenario"] = _json(scenario.model_dump(mode="json"))
            if 0 < sum(map(len, files.values())) <= DESCRIBED_FILES:  # a conflict names the file that changed
                described["files"] = files
            if self.chunk_s is not None and track_level_steps(scenario_steps(scenario)):
                # deformed whole, then chunked: a partition computed window by window (before repeval deformed such
                # scenarios whole) differs on every track longer than a window, and is not completed with these rows
                fp["deformed"] = "whole track"
        others = tuple((o, sc) for o, sc in exp.scenarios_for(ds).items() if o != sid)
        return PartitionSpec(sid, fp, described, self, others, cfg.embedding_model_ids())


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


class StoredIds:
    """A partition's stored track ids — those with a row (:meth:`embedded`), those of its error records
    (:meth:`failed`) —, each read once, when first asked: :func:`partition_state` and :func:`error_tracks` both need
    them, and reading a catalog's partition's part files takes seconds."""

    def __init__(self, part: Any) -> None:
        self.part = part
        self._embedded: pa.Array | None = None
        self._failed: pa.Array | None = None

    def embedded(self) -> pa.Array:
        """:meth:`~repeval.store.partition_files.PartitionFiles.embedded_ids`."""
        if self._embedded is None:
            self._embedded = self.part.embedded_ids()
        return self._embedded

    def failed(self) -> pa.Array:
        """:meth:`~repeval.store.partition_files.PartitionFiles.error_ids`."""
        if self._failed is None:
            self._failed = self.part.error_ids()
        return self._failed

    def done(self) -> pa.Array:
        """The ids with a row or an error record (as :meth:`~repeval.store.partition_files.PartitionFiles.done_ids`)."""
        return pc.unique(pa.concat_arrays([self.embedded(), self.failed()]))


def partition_state(
    part: Any,
    spec: PartitionSpec,
    ids: pa.Array,
    wanted: np.ndarray,
    retry_errors: bool = False,
    stored: StoredIds | None = None,
) -> tuple[str, str, np.ndarray | None]:
    """What the embedding stage would do with ``part`` for the wanted tracks (``ids[wanted]``): ``("complete",
    "")`` (nothing), ``("todo", what)`` (embed tracks, or mark it complete) or ``("conflict", the error the stage
    would stop with)``; and which of ``ids`` the partition holds already (``None`` for a conflict: not read).
    ``retry_errors``: as the stage under ``--retry-errors`` does — it deletes the partition's error records first
    (:meth:`~repeval.store.partition.Partition.clear_errors`), so their tracks are to embed and a partition that had
    any is completed again. ``stored``: the partition's ids, when the caller reads them for :func:`error_tracks` too."""
    try:
        accepted_spec(part, spec)
    except StoreConflict as exc:
        return "conflict", str(exc), None
    stored = stored or StoredIds(part)
    errors = len(stored.failed()) if retry_errors else 0
    held = stored.embedded() if errors else stored.done()
    done = pc.is_in(ids, value_set=held).to_numpy(zero_copy_only=False)
    missing = int((wanted & ~done).sum())
    if missing:
        return "todo", f"{missing:,} of {counted(int(wanted.sum()), 'track')} to embed", done
    if errors:
        return "todo", f"{counted(errors, 'error record')} deleted (--retry-errors), none of this run's tracks", done
    return ("complete", "", done) if part.complete else ("todo", "not marked complete", done)


def error_tracks(
    part: Any, ids: pa.Array, wanted: np.ndarray, stored: StoredIds | None = None
) -> tuple[int, list[str]]:
    """``part``'s error records — what ``--retry-errors`` deletes — and the wanted tracks (``ids[wanted]``) they
    name that the partition holds no row of: what it computes again. ``(0, [])`` without error records (their track
    ids read, nothing else). ``stored``: the partition's ids, when the caller has them."""
    stored = stored or StoredIds(part)
    errors = stored.failed()
    records = len(errors)
    if not records:
        return 0, []
    failed = pc.is_in(ids, value_set=pc.unique(errors)).to_numpy(zero_copy_only=False)
    embedded = pc.is_in(ids, value_set=stored.embedded()).to_numpy(zero_copy_only=False)
    return records, ids.filter(pa.array(wanted & failed & ~embedded)).to_pylist()


@dataclass
class CutReused:
    """Of the stored rows a run under ``run.truncated_audio: error`` reuses, those embedded from a file cut short (by a
    run under ``decode``): per partition name, the tracks of the run's rows with one — the union over the experiments
    that use the partition, so a track limit, a smoke test or a catalog that shrank counts only the tracks the run
    takes. Cheap: a partition whose manifest counts no cut row (:meth:`~repeval.store.partition.Partition.noted_rows`)
    is not read further; one that does has only its part files holding a note read, two columns of them
    (:meth:`~repeval.store.partition.Partition.cut_ids`). The embedding stage warns of them, ``repeval plan`` notes
    them (:func:`~repeval.pipeline.summary.cut_reused_note`)."""

    tracks: dict[str, set[str]] = field(default_factory=dict)

    def add(self, part: Any, ids: pa.Array, reused: np.ndarray) -> int:
        """Count the tracks ``ids[reused]`` (held by ``part``, reused as stored) whose rows there were cut; returns the
        partition's count so far."""
        if reused.any() and part.noted_rows()[CUT]:
            cut = pc.is_in(ids, value_set=part.cut_ids()).to_numpy(zero_copy_only=False)
            found = ids.filter(pa.array(reused & cut)).to_pylist()
            if found:
                self.tracks.setdefault(part.name, set()).update(found)
        return len(self.tracks.get(part.name, ()))

    def counts(self) -> dict[str, int]:
        """Partition name → tracks counted, in the order the partitions were first counted."""
        return {name: len(tracks) for name, tracks in self.tracks.items()}
