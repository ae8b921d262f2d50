"""The embed stage: every experiment's datasets embedded into the store, under the store's lock."""

from __future__ import annotations

import logging

from repeval.pipeline import preflight
from repeval.pipeline.embed import EmbedSummary, embed_experiments
from repeval.run.context import RunContext
from repeval.run.rows import audio_sources, deform_ids, load_rows
from repeval.store.lock import StoreLock

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


def stage_embed(
    ctx: RunContext,
    deformed_only: bool = False,
    progress: bool | None = None,
    retry_errors: bool = False,
    trainable: bool = False,
    retry_models: frozenset[str] = frozenset(),
) -> EmbedSummary:
    """Embed every experiment's datasets into the store; ``trainable`` (``repeval run``, which trains next): first
    stop, once they are loaded, on a split that holds none of its tracks (:func:`check_splits_assigned`), so nothing
    is embedded that the training stage would refuse. ``retry_models`` (``--retry-model``): the embedding models whose
    error records are deleted and whose tracks they name are computed again, a model an earlier run stopped run again
    (:func:`~repeval.pipeline.failing.check_retry_models` first: each an id of the configuration's)."""
    from repeval.pipeline.failing import check_retry_models

    retry_models = check_retry_models(ctx.cfg, retry_models)
    # reliability (issue 9): one writer per store — a second run refuses before Ray starts (and, when the CLI took
    # the lock with the run context, before its run directory is made)
    lock, ctx.lock = ctx.lock, None
    if lock is None:
        lock = StoreLock(ctx.store, ctx.run_id)
        lock.acquire()
    try:
        return _stage_embed(ctx, deformed_only, progress, retry_errors, trainable, retry_models)
    finally:
        lock.release()


def _stage_embed(
    ctx: RunContext,
    deformed_only: bool,
    progress: bool | None,
    retry_errors: bool,
    trainable: bool,
    retry_models: frozenset[str],
) -> EmbedSummary:
    from repeval.config.embed import default_p_warnings, deform_splits_warnings
    from repeval.ray_fit import check_trials_fit
    from repeval.ray_utils import init_ray
    from repeval.run.left_out import record_left_out
    from repeval.run.split_check import check_splits_assigned

    stage = "deform" if deformed_only else "embed"  # `repeval deform` leaves the clean partitions' record as it is
    # this attempt's record, from its start: an earlier attempt's models left out are not this one's (an attempt
    # stopped midway — Ctrl-C, an error — records those it left out until then)
    record_left_out(ctx.run_dir, stage, {})
    for line in default_p_warnings(ctx.cfg.experiments) + deform_splits_warnings(ctx.cfg):
        log.warning(line)
    # before Ray starts and the catalogs load (and only here: embed_experiments is told they ran)
    preflight.check_scenarios_at_model_rates(ctx.cfg, ctx.cfg.experiments)
    preflight.check_store_partitions(ctx.cfg, ctx.cfg.experiments, ctx.store, deformed_only)  # every conflict
    load_rows(ctx)
    if trainable:
        check_splits_assigned(ctx)

    def start_ray() -> None:  # only when there is something to embed: a rerun that has nothing left does not wait
        init_ray()  # for Ray's start-up (20–45 s on a busy machine)
        if trainable:
            check_trials_fit(ctx.cfg.run.resources)  # before embedding, not once it is done (else: before training)

    # one stream per embedding model for the whole run: its actors load the weights once for every dataset
    work = [
        (exp, {ds.name: ctx.rows[(ei, ds.name)] for ds in exp.datasets}, deform_ids(ctx, ei))
        for ei, exp in enumerate(ctx.cfg.experiments)
    ]
    total = EmbedSummary(store_uri=ctx.store.uri)
    try:
        embed_experiments(
            ctx.cfg,
            work,
            ctx.store,
            deformed_only=deformed_only,
            progress=progress,
            retry_errors=retry_errors,
            sources=audio_sources(ctx),
            prechecked=True,
            start_ray=start_ray,
            retry_models=retry_models,
            summary=total,
        )
    finally:  # finished, every model failed, or stopped midway: the record says this attempt's models left out
        record_left_out(ctx.run_dir, stage, total.models_failed)  # the training stage trains the others
    log.debug(total.line())  # the CLI prints it
    return total
