"""The embedding stage: for each embedding model, stream the tracks that still need work — from every dataset
and experiment of the run that uses the model — through Ray Data and write them into the store, one partition
per (dataset, scenario) (``clean``, D1, ...). One stream per model means one actor pool: the weights are loaded
once per actor for the whole run, not once per dataset (a stream's start-up — worker processes, framework
imports, weights — is seconds on a small machine, paid once per model instead of once per dataset × model).

Only the splits in ``run.deform_splits`` (default: test) are deformed — probes are trained on
clean audio and tested on clean and deformed audio. Each track is decoded once, whatever the
number of scenarios it needs.

Stream: :class:`~repeval.pipeline.source.TodoSource` (blocks of the to-do table, read inside the decode
tasks) → ``DecodeDeform`` tasks (decode block-wise,
chunk to the model's window, deform) → ``Embed`` actor pool (one per model; resources from
:mod:`repeval.pipeline.resources`) → driver: reassemble chunks, write atomic part files. A light
model (handcrafted features) runs inside the decode tasks instead (``DecodeEmbed``; see
``run.resources.embed_in_decode``). Nothing
is materialised; the driver never builds a Python object per catalog row to plan the work (the
to-do set is computed with Arrow kernels against the ids already in the store).

The streams are planned in :mod:`repeval.pipeline.todo`, checked before any starts in
:mod:`repeval.pipeline.preflight` and run in :mod:`repeval.pipeline.stream`; this module runs them in turn."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from repeval.config import Config, ExperimentConfig
from repeval.models import ModelUnavailable, resolve_model
from repeval.models.provenance import plugin_code
from repeval.pipeline import preflight
from repeval.pipeline.failing import ModelFailing, clear_stops, left_out_again, mark_stopped
from repeval.pipeline.partitions import (  # noqa: F401  (model_chunk_s and the fingerprints: imported from here)
    model_chunk_s,
    model_fingerprint,
    run_sources,
    scenario_fingerprint,
)
from repeval.pipeline.resources import stream_resources
from repeval.pipeline.stream import run_pipeline
from repeval.pipeline.summary import EmbedSummary
from repeval.pipeline.todo import (
    Stream,
    has_work,
    plan_dataset,
    plan_todo,
    say_complete,
    say_moved,
    spool_todo,
    todo_rows,
)
from repeval.store import EmbeddingStore
from repeval.words import counted

log = logging.getLogger(__name__)

__all__ = ["EmbedSummary", "embed_experiment", "embed_experiments", "model_chunk_s", "plan_todo", "stream_resources"]


def embed_experiment(
    cfg: Config,
    exp: ExperimentConfig,
    rows_by_dataset: dict[str, pa.Table],
    store: EmbeddingStore,
    deformed_only: bool = False,
    progress: bool | None = None,
    retry_errors: bool = False,
    deform_ids: dict[str, pa.Array] | None = None,
) -> EmbedSummary:
    """Embed what the store lacks for one experiment (see :func:`embed_experiments`)."""
    return embed_experiments(cfg, [(exp, rows_by_dataset, deform_ids)], store, deformed_only, progress, retry_errors)


#: one experiment's work: the experiment, its rows per dataset, and (k folds) the tracks to deform per dataset
Work = tuple[ExperimentConfig, dict[str, pa.Table], dict[str, pa.Array] | None]


def embed_experiments(
    cfg: Config,
    work: Sequence[Work],
    store: EmbeddingStore,
    deformed_only: bool = False,
    progress: bool | None = None,
    retry_errors: bool = False,
    sources: dict[str, list[dict[str, Any]]] | None = None,
    prechecked: bool = False,
    start_ray: Callable[[], None] | None = None,
    retry_models: frozenset[str] = frozenset(),
    summary: EmbedSummary | None = None,
) -> EmbedSummary:
    """Embed what the store lacks for a run's experiments: one stream (one actor pool, weights loaded once per
    actor) per embedding model, however many datasets and experiments use it.

    ``retry_errors`` first deletes the error records of the partitions, so tracks that failed before (a file
    since fixed or replaced) are computed again; ``retry_models`` (``--retry-model``) those of the partitions of the
    models it names only — and either runs a model an earlier run stopped (:mod:`repeval.pipeline.failing`). Tracks in ``run.deform_splits`` are deformed; a work item's
    ``deform_ids[dataset]``, when given, names them instead (k folds: a track in the test split of any fold).
    A partition two experiments share (one dataset, two tasks) is planned once: a track is embedded once.
    ``sources``: where each dataset takes its audio from (:func:`~repeval.pipeline.partitions.run_sources`, with
    what its loader found of the audio files); by default from the configuration alone. ``prechecked``: the caller
    has run the checks that need neither Ray nor the rows (:func:`~repeval.pipeline.preflight.check_store_partitions`,
    which reads every partition's manifest, and :func:`~repeval.pipeline.preflight.check_scenarios_at_model_rates`)
    on the same experiments and ``deformed_only`` — the embed stage does, before Ray starts — so they are not run
    again; called without it, this function runs them itself. ``start_ray``: called once the streams are planned, only
    when one has tracks to embed, before anything that needs Ray (the embed stage starts Ray there: a rerun with
    nothing left to embed never starts it); its time is not the stage's (``wall_s``). Without it, Ray is up already.
    ``summary``: the caller's, filled as the stage goes (the models left out so far: what an attempt stopped midway
    recorded, :func:`repeval.run.embed.stage_embed`); by default a new one.
    """
    summary = summary if summary is not None else EmbedSummary(store_uri=store.uri)
    t0 = time.perf_counter()
    streams: dict[str, Stream] = {}
    uses: dict[str, int] = {}
    for exp, _, _ in work:
        for ds in exp.datasets:
            uses[ds.name] = uses.get(ds.name, 0) + 1
    if not prechecked:
        preflight.check_scenarios_at_model_rates(cfg, [exp for exp, _, _ in work])
        # every conflict, before planning
        preflight.check_store_partitions(cfg, [exp for exp, _, _ in work], store, deformed_only)
    if sources is None:
        sources = run_sources((ds, None) for exp, _, _ in work for ds in exp.datasets)
    moved_from: dict[str, dict[str, dict[str, tuple[Any, int]]]] = {}  # reused rows from audio elsewhere
    for exp, rows_by_dataset, deform_ids in work:
        for ds in exp.datasets:
            plan_dataset(cfg, exp, ds, rows_by_dataset[ds.name], deform_ids, store, streams, summary, deformed_only,
                         retry_errors, moved_from, shared=uses[ds.name] > 1, sources=sources[ds.name],
                         retry_models=retry_models)  # fmt: skip
    say_moved(store.uri, moved_from, sources)  # once per dataset, every model of it in one note
    say_complete(streams, summary)
    cut = summary.cut_reused_warning()
    if cut:  # once per run, before its streams start: said for every partition together
        log.warning("%s", cut)
    # a model an earlier run stopped (it failed on each of its first tracks): left out again, not run — said in the
    # summary now, so an attempt stopped before its streams (a check below, Ctrl-C) records it too
    again = {
        name: why
        for name, st in streams.items()
        if has_work(st) and (why := _left_out_again(cfg, st, retry_errors or st.mcfg.id in retry_models))
    }
    for name, why in again.items():
        summary.models_failed[streams[name].mcfg.id] = why
    working = [st.mcfg for name, st in streams.items() if has_work(st) and name not in again]
    if working and start_ray is not None:
        t_ray = time.perf_counter()
        start_ray()
        t0 += time.perf_counter() - t_ray
    if working:  # every model with tracks to embed, checked where its actors will run before any stream starts
        preflight.check_models_on_nodes(cfg, working)
    run_models = {st.mcfg.id for st in streams.values()}
    for name, st in streams.items():
        if name in again:  # its partitions stay incomplete, its error records as they are
            if run_models - set(again):
                log.error("%s — the run's other embedding models go on", again[name])
            continue
        for dataset, (cols, masks) in st.pending.items():
            spool_todo(st, dataset, cols, masks)
        st.pending.clear()
        st.open_parts()  # marked incomplete and stamped now, not as planned: kept complete if a check stops the run
        clear_stops(st.parts.values())  # every check passed: it runs (a stop of this run records its own)
        st.clear_retried()  # and --retry-errors/--retry-model's error records go (not before: kept if a check stops)
        try:
            _run_stream(cfg, st, store, summary, progress)
        except ModelUnavailable as exc:  # this model is left out (its partitions stay incomplete); the others go on
            st.todo = None
            summary.models_failed[st.mcfg.id] = str(exc)
            if isinstance(exc, ModelFailing):  # a rerun leaves it out again, until it changes or is retried
                mark_stopped(st.parts.values(), exc, plugin_code(*resolve_model(st.mcfg)))
            if run_models - set(summary.models_failed):  # said now, while the others run (if all failed: at the end)
                log.error("%s — left out, the run's other embedding models go on", exc)
    summary.wall_s = time.perf_counter() - t0
    if summary.models_failed and run_models <= set(summary.models_failed):  # none left to train: the run fails
        raise EveryModelFailed(_all_failed(summary.models_failed), summary.models_failed)
    return summary


class EveryModelFailed(ModelUnavailable):
    """Every embedding model of the run failed (:attr:`models`: model id → why): nothing to train."""

    def __init__(self, message: str, models: dict[str, str]) -> None:
        super().__init__(message)
        self.models = dict(models)


def _left_out_again(cfg: Config, st: Stream, retry: bool) -> str | None:
    """Why ``st``'s model is left out again without running (:func:`~repeval.pipeline.failing.left_out_again`)."""
    code = plugin_code(*resolve_model(st.mcfg))
    return left_out_again(st.mcfg, st.parts.values(), code, retry, cfg.run.stop_model_after_failed_tracks)


def _all_failed(failed: dict[str, str]) -> str:
    """The error of a run whose every embedding model failed: each model's reason and fix (one line)."""
    if len(failed) == 1:
        return next(iter(failed.values()))
    return f"all {len(failed)} embedding models of the run failed, nothing to train — " + "; ".join(failed.values())


def _run_stream(cfg: Config, st: Stream, store: EmbeddingStore, summary: EmbedSummary, progress: bool | None) -> None:
    """Run one model's stream (if it has tracks to embed), then mark its partitions complete."""
    mcfg = st.mcfg
    versions: dict[str, str] = {}
    if st.todo is not None:
        todo = st.todo.table()
        st.todo = None
        res = stream_resources(mcfg, cfg.run.resources)
        datasets = sorted({st.info[k]["dataset"] for k in st.keys})
        label = f"{datasets[0]}/{mcfg.id}" if len(datasets) == 1 else f"{mcfg.id} ({len(datasets)} datasets)"
        per = f" ({', '.join(st.labels)})" if len(st.labels) > 1 else ""  # one dataset: its label says it already
        rows = todo_rows(todo)
        rows_said = f", {counted(rows, 'row')} in all scenarios" if rows != todo.num_rows else ""
        log.info("%s: %s to embed%s%s; %s", label, counted(todo.num_rows, "track"), per, rows_said, res.describe())
        versions = run_pipeline(cfg, st, todo, res, summary, progress, label)
    for key, part in st.parts.items():
        info = dict(st.info[key])
        version = versions.get(key) or _stored_version(part)
        if version:
            info["model_version"] = version
        part.finish(info)
        summary.partitions_completed.append(part.path)


def _stored_version(part: Any) -> str | None:
    import pyarrow.parquet as pq

    m = part.manifest() or {}
    if m.get("model_version"):
        return str(m["model_version"])
    for f in part.part_files()[:1]:
        col = pq.read_table(f, columns=["model_version"], filesystem=part.fs).column(0)
        if len(col):
            return col[0].as_py()
    return None
