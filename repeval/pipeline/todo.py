"""Planning the embedding stage's streams: for each embedding model, the (dataset, scenario) partitions of the run
that need it and the to-do table of the tracks they still lack — computed with Arrow kernels against the ids already
in the store, never a Python object per catalog row, and spilled past :data:`repeval.datasets.spill.PARTITION_ROWS`
rows. :mod:`repeval.pipeline.embed` runs what is planned here (:mod:`repeval.pipeline.stream`)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.config import Config, ExperimentConfig
from repeval.config.loader import config_hash
from repeval.datasets import spill
from repeval.datasets.audio_paths import same_files
from repeval.datasets.spill import TableSpool
from repeval.deformations import scenario_steps
from repeval.json_keys import json_text
from repeval.models import resolve_model
from repeval.models.provenance import changed_code_note, plugin_code
from repeval.pipeline.partition_conflicts import accepted_spec, exempt_differences
from repeval.pipeline.partitions import (
    CutReused,
    ModelSpec,
    changed_source,
    source_notes,
    wanted_masks,
)
from repeval.pipeline.stages import CLEAN
from repeval.pipeline.summary import EmbedSummary
from repeval.store import EmbeddingStore
from repeval.store.layout import repeval_version
from repeval.store.params import PARAMS_AS_APPLIED, mend_skipped_params
from repeval.store.partition_stamp import NewStamp
from repeval.warn import warn_once
from repeval.words import counted

#: the embedding stage's log lines keep one name, whichever of its modules says them (the CLI prints it)
log = logging.getLogger("repeval.pipeline.embed")


def plan_todo(rows: pa.Table, masks: dict[str, np.ndarray]) -> pa.Table:
    """The rows that need work, with a ``scenarios`` column of indices into ``list(masks)``.

    ``masks[sid]`` is a boolean array over ``rows``: the track is wanted in that scenario and not
    in the store yet. Vectorised: no Python object per row.
    """
    sids = list(masks)
    if not sids:
        return rows.slice(0, 0).append_column("scenarios", pa.array([], pa.list_(pa.int16())))
    mat = np.stack([masks[s] for s in sids], axis=1)
    need = mat.any(axis=1)
    todo = rows.filter(pa.array(need))
    sub = mat[need]
    offsets = np.concatenate([[0], np.cumsum(sub.sum(axis=1))]).astype(np.int32)
    values = np.nonzero(sub)[1].astype(np.int16)  # row-major: each row's scenarios in order
    return todo.append_column("scenarios", pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)))


def todo_rows(todo: pa.Table) -> int:
    """The store rows a to-do table (:func:`plan_todo`) computes: a track's in each of its scenarios."""
    return int(pc.sum(pc.list_value_length(todo.column("scenarios"))).as_py() or 0)


@dataclass
class Stream:
    """One model's stream: every (dataset, scenario) partition of every experiment that needs it.

    A partition's routing key is ``dataset<US>scenario`` (US, the unit separator, cannot occur in a name
    read from YAML): decode, deformation seeds and the store see the plain scenario id; the key only keeps
    two datasets' tracks (whose ids may coincide) apart between decode and the writers."""

    mcfg: Any
    sample_rate: int
    chunk_s: float | None
    keys: list[str] = field(default_factory=list)
    sids: dict[str, str] = field(default_factory=dict)
    #: the partition keys whose rows keep frame-level embeddings (:meth:`repeval.config.Config.keeps_frames`)
    frames: set[str] = field(default_factory=set)
    steps: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    parts: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, dict[str, Any]] = field(default_factory=dict)
    planned: dict[str, pa.Array] = field(default_factory=dict)
    #: partition keys whose stored tracks the summary has counted
    examined: set[str] = field(default_factory=set)
    #: ``--retry-errors``/``--retry-model``: the partitions whose error records are deleted as the stream starts
    #: (:meth:`clear_retried`), once every check before the streams passed — planned as deleted, their tracks to do —
    #: each with the track ids of those records, as planning read them
    retried: dict[str, tuple[Any, pa.Array]] = field(default_factory=dict)
    #: the (partition key, track id) of those error records, deleted, in partitions holding rows the model embedded:
    #: it failing on them again is no sign that it fails on every track (:class:`~repeval.pipeline.failing.
    #: FailingModel` leaves them out); in one of none, it is (a model that embeds nothing, retried: stopped as before)
    retrying: set[tuple[str, str]] = field(default_factory=set)
    #: the partitions planned, each with what :meth:`~repeval.store.Partition.stamp` records in it: opened (marked
    #: incomplete, stamped) as the stream starts (:meth:`open_parts`)
    opening: dict[str, tuple[Any, NewStamp]] = field(default_factory=dict)
    #: of the tracks it reuses, those whose stored rows were cut (under ``run.truncated_audio: error``)
    cut: CutReused = field(default_factory=CutReused)
    todo: TableSpool | None = None  # the to-do rows of every (experiment, dataset), spilled past PARTITION_ROWS
    labels: list[str] = field(default_factory=list)
    #: dataset → (its rows' columns, partition key → missing tracks) planned but not yet spooled: the experiments
    #: that share a dataset (whatever their rows: :func:`merge_todo`) merge their masks here, so a track one task
    #: wants clean and another deformed (other scenarios, ``augment``) is decoded once, in one to-do row
    pending: dict[str, tuple[pa.Table, dict[str, np.ndarray]]] = field(default_factory=dict)

    def open_parts(self) -> None:
        """Mark the partitions planned incomplete and stamp them (:attr:`opening`), as the stream starts: not as they
        are planned, or a run stopped before this stream (a model failing the check on the nodes, Ctrl-C, another
        model's stream failing) would leave a complete partition incomplete though nothing in it changed (a retried
        one: its error records as they were), and a new one as an empty, stamped folder."""
        for part, args in self.opening.values():
            part.reopen()  # a partition shared by several tasks (one dataset, other splits) may need more tracks
            part.stamp(*args)
        self.opening.clear()

    def clear_retried(self) -> None:
        """Delete the error records of the partitions :attr:`retried` (their tracks are this stream's to compute):
        not as they are planned, or a run stopped before its streams (a model failing the check on the nodes, Ctrl-C)
        would have deleted them without computing their tracks again."""
        for part, errors in self.retried.values():
            part.clear_errors(errors)  # their ids recorded in the partition until it is complete again
        self.retried.clear()
        for key, part in self.parts.items():  # and those an interrupted retry, or `repeval store rm --track`, left
            retried = part.retried_ids()
            if len(retried) and part.counts()[0]:  # it embeds tracks of it: failing again on those is no sign
                self.retrying.update((key, str(t)) for t in retried.to_pylist())

    def add_todo(self, piece: pa.Table) -> None:
        if self.todo is None:
            self.todo = TableSpool(piece.schema)
        elif piece.schema != self.todo.schema:
            piece = piece.cast(self.todo.schema)
        for batch in piece.to_batches():
            self.todo.write(batch)


def _stream_batch_size(current: Any, other: Any) -> Any:
    """The model config a shared stream runs with when two experiments set the model's ``batch_size``: a set
    value beats none, and of two the smaller (the one that fits the tighter memory) — announced, not silent."""
    a, b = current.batch_size, other.batch_size
    if b is None or a == b:
        return current
    use = b if a is None else min(a, b)
    if a is not None:
        log.warning("%s: experiments set batch_size %d and %d; its one stream uses %d", current.id, a, b, use)
    return current if use == a else current.model_copy(update={"batch_size": use})


def _say_exempt(current: Any, other: Any) -> None:
    """Warn once that a shared stream runs with ``current``'s values of the params its family leaves out of the store's
    fingerprint where ``other`` (an experiment's model under the same id) sets them otherwise (``repeval validate`` and
    ``plan`` note it: :func:`~repeval.pipeline.partition_conflicts.one_stream_notes`)."""
    if current is other or current.params == other.params:
        return
    fam, params = resolve_model(current)
    for key, used, asked in exempt_differences(fam, params, resolve_model(other)[1]):
        warn_once(
            log,
            ("exempt", current.id, key, json_text(used), json_text(asked)),
            "%s: experiments set params.%s %s and %s; its one stream uses %s, the first's (the embeddings are the "
            "same either way)",
            current.id, key, json_text(used), json_text(asked), json_text(used),
        )  # fmt: skip


KEY_SEP = "\x1f"


def _mend_params(part: Any) -> None:
    """Mend, once, the ``deformation_params`` an earlier repeval wrote in a deformed partition's rows (a step its ``p``
    skipped held values drawn for another track: :mod:`repeval.store.params`), saying how many rows it mended; a store
    that refuses the write is said in a warning, the run going on (the files mended before it stay mended)."""
    if (part.stamped() or {}).get(PARAMS_AS_APPLIED):
        return
    try:
        mended = mend_skipped_params(part)
    except OSError as exc:  # a tidy-up: a store that refuses the write (read-only files, an outage) stops no run
        log.warning(
            "store partition %s: could not mend the deformation_params its rows written by an earlier repeval hold for "
            "a step its p skipped (%s: %s); its rows are used as they are (their embeddings are right) and the next "
            "run tries again — make the partition's files writable (permissions, the storage's connection)",
            part.name, type(exc).__name__, exc,
        )  # fmt: skip
        return
    if mended:
        log.info(
            "store partition %s: the deformation_params of %s written by an earlier repeval said, for a step its p "
            "skipped, values drawn for another track; they now say {\"type\": …, \"should_apply\": false} alone "
            "(the embeddings are unchanged)",
            part.name, counted(mended, "row"),
        )  # fmt: skip


def stream_key(dataset: str, sid: str) -> str:
    return f"{dataset}{KEY_SEP}{sid}"


def _planned_part(streams: dict[str, Stream], key: str, model_id: str) -> Any:
    """The partition ``key`` of model ``model_id`` as a stream planned it already (its stamp planned, not yet written:
    :meth:`~repeval.store.Partition.plan_stamp`), else ``None``. Another experiment on the dataset plans it again, its
    model perhaps computed otherwise under the same id: checked against that stamp, as against a written one."""
    for st in streams.values():
        part = st.parts.get(key)
        if part is not None and part.model == model_id:
            return part
    return None


def plan_dataset(
    cfg: Config,
    exp: ExperimentConfig,
    ds: Any,
    rows: pa.Table,
    deform_ids: dict[str, pa.Array] | None,
    store: EmbeddingStore,
    streams: dict[str, Stream],
    summary: EmbedSummary,
    deformed_only: bool,
    retry_errors: bool,
    moved_from: dict[str, dict[str, dict[str, tuple[Any, int]]]],
    shared: bool = True,
    sources: list[dict[str, Any]] | None = None,
    retry_models: frozenset[str] = frozenset(),
) -> None:
    """Add one (experiment, dataset)'s missing tracks to each model's stream. ``shared``: another experiment
    of the run uses the dataset too, so the ids planned here are kept for its turn (a track is embedded once);
    otherwise they are not kept (a copy of the wanted ids per scenario: ~12 MB per million tracks). ``sources``:
    where the run's definitions of the dataset take its audio from, recorded in the partitions it computes or
    reuses; reused rows computed from audio elsewhere (not recomputed) are added to ``moved_from`` (dataset → model →
    scenario → (the sources they were computed from, tracks)), which :func:`say_moved` says once per dataset after
    every experiment is planned. ``retry_models`` (``--retry-model``): the models whose partitions' error records are
    deleted, as ``retry_errors`` deletes every partition's."""
    scenarios = exp.scenarios_for(ds)
    ids = rows.column("track_id").combine_chunks()
    wanted_in = wanted_masks(cfg, exp, ds, rows, deform_ids)
    for mcfg in exp.embedding_models:
        spec = ModelSpec.of(cfg, mcfg)
        code = plugin_code(*resolve_model(mcfg))  # a plugin's model: its files' digests, recorded and compared
        sample_rate, chunk_s = spec.sample_rate_hz, spec.chunk_s
        st = streams.setdefault(spec.stream_name(), Stream(mcfg, sample_rate, chunk_s))
        _say_exempt(st.mcfg, mcfg)
        st.mcfg = _stream_batch_size(st.mcfg, mcfg)
        masks: dict[str, np.ndarray] = {}
        moved: dict[str, tuple[Any, int]] = {}  # scenario → (the sources its reused rows were computed from, tracks)
        for sid in ([] if deformed_only else [CLEAN]) + list(scenarios):
            key = stream_key(ds.name, sid)
            part = _planned_part(streams, key, mcfg.id) or store.partition(ds.name, mcfg.id, sid)
            summary.partition_order[part.name] = None  # the configuration's order, which the summary's lists follow
            pspec = accepted_spec(part, spec.partition(cfg, exp, ds, sid))  # stored with frames: completed with them
            fp = pspec.fingerprint
            retry = (retry_errors or mcfg.id in retry_models) and key not in st.parts
            errors = part.error_ids() if retry else None
            if errors is not None and len(errors):  # deleted as the stream starts (Stream.clear_retried), planned so
                st.retried[key] = (part, errors)
                summary.retried += len(errors)
            wanted = wanted_in[sid]
            stored = part.embedded_ids() if key in st.retried else part.done_ids()
            done = pc.is_in(ids, value_set=stored).to_numpy(zero_copy_only=False)
            if key not in st.examined:  # tracks in the store, counted once per partition however many tasks use it
                if sid != CLEAN:
                    _mend_params(part)
                reused = int((wanted & done).sum())  # rows and error records: a rows count leaves the records out
                earlier = 0 if key in st.retried else _count_earlier_errors(part, ids, wanted, summary)
                summary.skipped += reused - earlier
                recorded = changed_source(part, sources) if reused and sources else None
                if recorded is not None:
                    moved[sid] = (recorded, reused)
                if code is not None and (reused or (len(stored) and (wanted & ~done).any())):  # or added beside them
                    _say_changed_code(part, mcfg, code, reused > 0)
                st.examined.add(key)
            if cfg.run.truncated_audio == "error":  # this run's tracks reused from rows a run under decode cut
                n_cut = st.cut.add(part, ids, wanted & done)
                if n_cut:
                    summary.cut_reused[part.name] = n_cut
            if key in st.planned:  # another experiment's share of this partition already holds these tracks
                done |= pc.is_in(ids, value_set=st.planned[key]).to_numpy(zero_copy_only=False)
            missing = wanted & ~done
            if not missing.any() and ((part.complete and key not in st.retried) or key in st.parts):
                if key not in st.parts:  # complete; accepted under a stamp from before WINDOWING_ENTRIES: say so once
                    summary.partitions_already_complete.add(part.name)
                    part.restamp(fp, {"config_hash": config_hash(fp)})
                    if sid in moved:  # reused from another source: said once below, then recorded (not again)
                        part.add_sources(sources or [])
                continue
            if key not in st.parts:
                provenance = (
                    {"config_hash": config_hash(fp), "model_id": mcfg.id, "repeval_version": repeval_version()}
                    | ({"model_code": code} if code else {})
                    | ({PARAMS_AS_APPLIED: True} if sid != CLEAN else {})
                )
                new = NewStamp(fp, provenance, pspec.described, sources)
                part.plan_stamp(new)  # checked by a later plan of it, not written
                st.opening[key] = (part, new)  # written as the stream starts
                st.keys.append(key)
                st.sids[key] = sid
                st.parts[key] = part
                if pspec.frames:
                    st.frames.add(key)
                st.provenance[key] = {
                    "model": mcfg.id,
                    "config_hash": config_hash(fp),
                    "repeval_version": repeval_version(),
                }
                st.info[key] = {
                    "dataset": ds.name,
                    "model": mcfg.id,
                    "scenario": sid,
                    "task": exp.task.name,
                    "sample_rate_hz": sample_rate,
                    "chunk_s": spec.window_s,  # the windows used (a chunk_s below the model's shortest: raised)
                    "keep_frames": pspec.frames,
                }
                if sid != CLEAN:
                    st.steps[key] = scenario_steps(scenarios[sid])
            if shared:
                new_ids = ids.filter(pa.array(missing))
                st.planned[key] = pa.concat_arrays([st.planned[key], new_ids]) if key in st.planned else new_ids
            masks[key] = missing
        if moved:
            moved_from.setdefault(ds.name, {}).setdefault(mcfg.id, {}).update(moved)
        if not masks:  # said once for the run, if other models embed (:func:`say_complete`)
            summary.models_complete[f"{ds.name}/{mcfg.id}"] = None
            continue
        cols = rows.select(["track_id", "audio_path", "split"])  # only the columns a stream reads
        pending = st.pending.get(ds.name)
        if pending is not None and pending[0].column("track_id").equals(cols.column("track_id")):
            for key, m in masks.items():  # the same rows: one to-do row per track for both experiments
                pending[1][key] = pending[1][key] | m if key in pending[1] else m
            continue
        # other rows under the same dataset name (another task's subset, order or cap): one to-do row per track
        st.pending[ds.name] = (cols, masks) if pending is None else merge_todo(*pending, cols, masks)


def _say_changed_code(part: Any, mcfg: Any, code: dict[str, Any], reused: bool) -> None:
    """Warn, once per model, when a partition whose rows a run reuses was embedded with another version of the
    plugin file that defines the model or of a file it names (README, "Your own model": its ``model_code``) — the
    fingerprint holds its ``embedding_version`` and params, not their content — then record the files as they are
    now, so that it is said once. ``reused``: the run reuses some of the partition's rows; else it reuses none (it
    was said they "are reused" all the same) and adds rows beside them."""
    recorded = (part.stamped() or {}).get("model_code")
    if not isinstance(recorded, dict) or recorded == code:
        return
    note = changed_code_note(part, mcfg.id, resolve_model(mcfg)[0], code, "embed", reused)
    if note is not None:
        warn_once(log, ("model_code", mcfg.id), "%s", note)
    part.record("model_code", code)  # (or what an earlier repeval did not record: the files the model names)


def say_moved(store_uri: str, moved_from: dict[str, dict[str, dict[str, tuple[Any, int]]]],
              sources: dict[str, list[dict[str, Any]]]) -> None:  # fmt: skip
    """Say, once per dataset (:func:`~repeval.pipeline.partitions.source_notes`: one note for all its models, not one
    each), the reused rows :func:`plan_dataset` found computed from audio elsewhere; ``sources``: where each dataset
    takes its audio from now."""
    for dataset, changed in moved_from.items():
        for note in source_notes(store_uri, dataset, changed, sources[dataset]):
            key = json.dumps([changed, sources[dataset]], sort_keys=True, default=str)
            warn_once(log, ("source", store_uri, dataset, key), "%s", note)


def merge_todo(
    a: pa.Table, a_masks: dict[str, np.ndarray], b: pa.Table, b_masks: dict[str, np.ndarray]
) -> tuple[pa.Table, dict[str, np.ndarray]]:
    """Two experiments' planned rows of one dataset as one set: a track in both (same id, same audio file) is one
    row wanting the union of its scenarios — decoded once — and ``b``'s other tracks follow ``a``'s rows. A track
    whose audio file differs between the two keeps a row of its own. Arrow kernels, no Python object per row."""
    at = pc.index_in(b.column("track_id").combine_chunks(), value_set=a.column("track_id").combine_chunks())
    pos = pc.fill_null(at, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    found = pos >= 0
    if found.any():  # the same file too (a name shared by two definitions of a dataset keeps both files)
        a_paths = a.column("audio_path").take(pa.array(pos[found]))
        found[found] = same_files(a_paths, b.column("audio_path").combine_chunks().filter(pa.array(found)))
    rest = ~found
    if b.schema != a.schema:
        b = b.cast(a.schema)
    merged = pa.concat_tables([a, b.filter(pa.array(rest))]) if rest.any() else a
    n_a, n_rest = a.num_rows, int(rest.sum())
    masks: dict[str, np.ndarray] = {}
    for key in {**a_masks, **b_masks}:
        m = np.zeros(n_a + n_rest, bool)
        if key in a_masks:
            m[:n_a] = a_masks[key]
        if key in b_masks:
            mb = b_masks[key]
            m[pos[found & mb]] = True  # duplicates set the same flag: no read-modify-write race
            m[n_a:] = mb[rest]
        masks[key] = m
    return merged, masks


def spool_todo(st: Stream, dataset: str, cols: pa.Table, masks: dict[str, np.ndarray]) -> None:
    """Write a dataset's planned to-do rows into the stream's spool, :data:`spill.PARTITION_ROWS` rows at a time (a
    catalog's to-do is not held), each row's scenario indices shifted to the stream's partition keys."""
    local = np.array([st.keys.index(k) for k in masks], np.int16)
    n_todo = 0
    step = spill.PARTITION_ROWS
    for start in range(0, cols.num_rows, step):
        todo = plan_todo(cols.slice(start, step), {k: m[start : start + step] for k, m in masks.items()})
        if not todo.num_rows:
            continue
        col = todo.column("scenarios").combine_chunks()
        values = local[col.values.to_numpy(zero_copy_only=False)] if len(col.values) else np.zeros(0, np.int16)
        shifted = pa.ListArray.from_arrays(col.offsets, pa.array(values, pa.int16()))
        st.add_todo(todo.set_column(todo.schema.get_field_index("scenarios"), "scenarios", shifted))
        n_todo += todo.num_rows
    if n_todo:
        st.labels.append(f"{dataset} {n_todo:,}")


def say_complete(streams: dict[str, Stream], summary: EmbedSummary) -> None:
    """Log, in one line, the (dataset, model) pairs whose partitions were all complete, when other pairs have tracks to
    embed (each says how many as its stream starts); when none has, the summary's "nothing to embed" line says it all.
    A pair another experiment planned tracks of (a task that wants more of the dataset) is not complete."""
    planned = {f"{i['dataset']}/{i['model']}" for st in streams.values() for i in st.info.values()}
    complete = [name for name in summary.models_complete if name not in planned]
    if complete and any(has_work(st) for st in streams.values()):
        log.info("%s: all partitions complete, nothing to embed", ", ".join(complete))


def has_work(st: Stream) -> bool:
    return any(bool(m.any()) for _, masks in st.pending.values() for m in masks.values())


def _count_earlier_errors(part: Any, ids: pa.Array, wanted: np.ndarray, summary: EmbedSummary) -> int:
    """Count the tracks of ``ids`` this run wants (``wanted``) that hold an error record from an earlier run of
    ``part`` (they are not computed again, nor evaluated); return how many."""
    failed = part.error_ids()
    if not len(failed):
        return 0
    n = int((wanted & pc.is_in(ids, value_set=failed).to_numpy(zero_copy_only=False)).sum())
    if n:
        summary.earlier_errors[part.name] += n
    return n
