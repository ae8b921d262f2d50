"""One model's Ray Data stream, run by the driver: the to-do table read in blocks
(:class:`~repeval.pipeline.source.TodoSource`) → ``DecodeDeform`` tasks → ``Embed`` actor pool (or ``DecodeEmbed``
tasks for a model that runs inside the decode tasks) → the driver, which reassembles each track from its chunks
(:mod:`repeval.pipeline.assemble`) and writes atomic part files; a broken-off stream is stopped and its actors
released. The block and batch sizes here were tuned on the benchmarks (docs/benchmarks.md)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import sys
import time
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.config import Config
from repeval.models import resolve_model
from repeval.models.plugins import plugins_of
from repeval.pipeline.assemble import TrackAssembler, errors_table, rows_table
from repeval.pipeline.embedder import DecodeEmbed, Embed, KeepFrames
from repeval.pipeline.failing import FailingModel, ModelFailing
from repeval.pipeline.partitions import model_geometry
from repeval.pipeline.preflight import unavailable_in_stream
from repeval.pipeline.resources import EmbedResources
from repeval.pipeline.stages import MAX_BATCH_SAMPLES, DecodeDeform
from repeval.pipeline.stream_watch import ClusterLost, StreamWatch, embed_actors, gcs_answers
from repeval.pipeline.summary import EmbedSummary, Progress
from repeval.pipeline.todo import Stream, todo_rows
from repeval.store import PartitionWriter
from repeval.store.layout import ERROR_SCHEMA, embedding_schema

#: the embedding stage's log lines keep one name, whichever of its modules says them (the CLI prints it)
log = logging.getLogger("repeval.pipeline.embed")

#: input rows per Ray Data block: one decode task (and batch) each; small blocks keep the actors fed early
#: and evenly, large ones amortise Ray's per-task and per-batch costs (2,000 clips of 3 s, mfcc-stats, 2 CPUs:
#: 32 rows and embedding batches of 16: 16.5 s; 64 and 32: 15.0 s; 128 and 32: 14.5 s but the first rows
#: 0.7 s later). A decode task's output is cut at ``MAX_BATCH_SAMPLES`` whatever the block size
#: (:data:`STREAM_BLOCK_BYTES`).
MAX_BLOCK_ROWS = 64
#: the same when a light model runs inside the decode tasks (nothing goes to an actor, so nothing waits for the
#: first block): Ray Data notices a finished task on a 0.1 s tick and starts the next one a few tenths of a second
#: later, so tasks must last longer than that (2,000 clips of 3 s, mfcc-stats, 2 CPUs, execution only: 64-row
#: tasks of ~0.25 s ran about one at a time, 9.1–9.3 s; 250-row tasks of ~1 s, 7.4 s)
FUSED_MAX_BLOCK_ROWS = 256
#: at most this many blocks per stream: each costs the driver ~2 ms to hand to Ray Data before the first task
#: starts (a put of its read task and Ray Data's bookkeeping; 2 CPUs: 10,000 blocks, 19 s) and a few KB while the
#: stream runs, so a catalog of millions gets larger blocks instead (1,000,000 tracks: 245 rows each, a task of
#: tens of seconds against Ray Data's ~15 ms per task), still dozens per CPU on a large cluster
MAX_STREAM_BLOCKS = 4096
#: half-length blocks at the end of an actor pool's stream, per actor (:func:`~repeval.pipeline.source.block_slices`):
#: the actors take blocks as they free up, so the last block leaves the others idle while one embeds it. Simulated
#: (2,000 clips of which 10% deformed, 2 actors, 2 blocks in flight each, the actors' speeds 0–5% apart): the actors
#: ended 0.1–0.6 s apart on average, against 0.1–1.0 s with even blocks only and 0.9–1.9 s with 31 blocks of 64 and
#: one of 16 (the stream 0.2–0.9 s shorter)
TAIL_BLOCKS_PER_ACTOR = 2
#: chunks per embedding call when the model config does not set ``batch_size`` (fewer in a short stream)
DEFAULT_EMBED_BATCH = 32
#: Ray Data's target block size while a stream runs (``DataContext.target_max_block_size``, 128 MiB by default): a
#: decode task's output batches (``MAX_BATCH_SAMPLES`` float32 samples each) are each a block of their own, so an
#: embedding actor gets at most ~4 M samples of audio per call. Ray Data otherwise buffers a task's batches into one
#: block of up to 128 MiB — six 3-minute tracks at 16 kHz, ~13 s of MusiCNN per actor call, nothing written until
#: it ends and the last calls on one actor while the other idles (40 such tracks, 2 CPUs: 87.7 s against the
#: model's 54.4 s; short clips fill a block with fewer samples than this and are unchanged)
STREAM_BLOCK_BYTES = MAX_BATCH_SAMPLES * 4


def block_rows(n_rows: int, n_cpus: float, max_rows: int = MAX_BLOCK_ROWS) -> int:
    """Rows per Ray Data block (one decode task each): at most ``max_rows``, and at least four blocks per CPU, so
    the last tasks do not leave CPUs idle — but never more than ``MAX_STREAM_BLOCKS`` blocks (larger blocks then)."""
    size = max(1, min(max_rows, math.ceil(n_rows / max(4 * n_cpus, 1))))
    return max(size, math.ceil(n_rows / MAX_STREAM_BLOCKS))


def stream_blocks(
    n_rows: int, n_cpus: float, res: EmbedResources, batch_size: int, n_expected: int
) -> tuple[int, int, int]:
    """A stream's rows per block (:func:`block_rows`), then ``tail`` and ``tail_min`` of
    :func:`~repeval.pipeline.source.block_slices`: :data:`TAIL_BLOCKS_PER_ACTOR` half-length blocks per embedding
    actor at the end (none when the model runs in the decode tasks), each of tracks enough for one embedding call of
    ``batch_size`` chunks — an actor pool bundles a block of fewer chunks with the next one. A track gives a chunk or
    an error record in each of its scenarios: the ``n_rows`` tracks give ``n_expected`` or more."""
    rows = block_rows(n_rows, n_cpus, FUSED_MAX_BLOCK_ROWS if res.fused else MAX_BLOCK_ROWS)
    if res.fused:
        return rows, 0, 1
    return rows, TAIL_BLOCKS_PER_ACTOR * res.n_actors, max(1, math.ceil(batch_size * n_rows / max(n_expected, n_rows)))


def stream_settings(ds: Any, progress: bool | None) -> Any:
    """``ds`` with a stream's Ray Data settings, on its own context (the copy of ``DataContext.get_current()`` Ray
    Data took when the dataset was made, shared by the datasets derived from it — the process' context, which a
    user's own Ray Data work in the same process reads, is left as it is): progress bars (``progress``; by default
    on a terminal only — without one, :class:`~repeval.pipeline.summary.Progress` logs a line a minute instead) and blocks of at most
    :data:`STREAM_BLOCK_BYTES` (each decode batch a block of its own)."""
    ctx = ds.context
    ctx.enable_progress_bars = bool(
        progress if progress is not None else (ctx.enable_progress_bars and sys.stderr.isatty())
    )
    if ctx.target_max_block_size is None or ctx.target_max_block_size > STREAM_BLOCK_BYTES:
        ctx.target_max_block_size = STREAM_BLOCK_BYTES
    return ds


def run_pipeline(
    cfg: Config,
    st: Stream,
    todo: pa.Table,
    res: EmbedResources,
    summary: EmbedSummary,
    progress: bool | None,
    label: str,
) -> dict[str, str]:
    from repeval.pipeline.source import TodoSource
    from repeval.ray_utils import cluster_cpus, prompt_stream_limits

    prompt_stream_limits()  # parallel tasks from the stream's start, not 1–2 s into it
    if os.environ.get("REPEVAL_RAY_DATA_LOG_LEVEL"):  # set by the CLI (ray.data resets its level on import)
        logging.getLogger("ray.data").setLevel(os.environ["REPEVAL_RAY_DATA_LOG_LEVEL"])

    run = cfg.run
    mcfg, parts, provenance, sids = st.mcfg, st.parts, st.provenance, st.sids
    n_expected = todo_rows(todo)
    if res.fused:  # the model runs in the decode tasks, in calls of batch_size chunks like an actor's
        batch_size = mcfg.batch_size or DEFAULT_EMBED_BATCH
    else:  # a short stream gets smaller batches: about four per actor, or the last batches leave actors idle
        batch_size = mcfg.batch_size or max(1, min(DEFAULT_EMBED_BATCH, math.ceil(n_expected / (4 * res.n_actors))))
    summary.resources[mcfg.id] = f"{res.describe()}; {batch_size} chunks per embedding call"
    n_cpus = cluster_cpus()
    summary.model_processes[mcfg.id] = res.n_actors or res.decode_tasks or max(1, int(n_cpus))
    inp = todo.select(["track_id", "audio_path", "split", "scenarios"])
    src = TodoSource(inp, *stream_blocks(inp.num_rows, n_cpus, res, batch_size, n_expected))
    # the read runs with the decode stage's arguments, so it fuses into it: one task per block
    decode_kw = res.decode_kwargs(n_blocks=len(src.slices))
    ds: Any = stream_settings(src.read(**decode_kw), progress)
    decode = DecodeDeform(
        st.sample_rate,
        st.steps,
        run.seed,
        chunk_s=st.chunk_s,
        scenario_ids=st.keys,
        seed_ids=sids,
        whole_track_max_s=run.deform_whole_track_max_s,
        geometry=model_geometry(*resolve_model(mcfg)),
        truncated_audio=run.truncated_audio,
    )
    # the models keep the frames of these partitions' chunks only: all (True) or none (False) when so, the setting
    # a worker's model is built under by repeval before this stream (a benchmark's warm-up) and kept for it
    keep = frozenset(st.frames)
    frames: KeepFrames = bool(keep) if keep in (frozenset(), frozenset(st.keys)) else keep
    bar = Progress(n_expected, f"write {label}", progress)
    assembler = TrackAssembler(bool(frames))
    writers: dict[str, PartitionWriter] = {}
    versions: dict[str, str] = {}
    summary.tracks += todo.num_rows

    def writer(key: str, dim: int) -> PartitionWriter:
        if key not in writers:
            writers[key] = PartitionWriter(parts[key], embedding_schema(dim, key in keep), run.part_rows)
        return writers[key]

    summary.streams += 1
    t_start = time.perf_counter()
    first = True
    actors: dict[str, Any] = {}
    waits = stream_watch(bar, label, res, str(run.resources.use_gpu))
    # a model failing on every track: stopped (failing again on the tracks --retry-errors/--retry-model retries: not)
    watch = FailingModel(mcfg, run.stop_model_after_failed_tracks, st.retrying)
    pool = None if res.fused else res.packed_pool(mcfg.id, run.resources.pool_wait_s, run.resources.pool_stall_s)
    held = HeldFailureLines()  # last before the try: made before a failed pool (a GCS error), it held for good
    try:  # (the pool's placement group is removed once the stream ends: the finally below)
        # a callable instance runs as stateless tasks; the Embed class runs as an actor pool. One batch per block
        # (batch_size=None): a batch size would make Ray Data bundle blocks into tasks and keep the read unfused
        if res.fused:  # decoded and embedded in the same task (a light model, or run.resources.embed_in_decode: always)
            fused = DecodeEmbed(decode, mcfg, frames, res.threads, batch_size, plugins_of(cfg.plugins))
            ds = ds.map_batches(fused, batch_size=None, **decode_kw)
        else:
            ds = ds.map_batches(decode, batch_size=None, **decode_kw)
            ds = ds.map_batches(
                Embed,
                fn_constructor_args=(mcfg, frames, res.threads, st.sample_rate, plugins_of(cfg.plugins)),
                batch_format="pyarrow",
                **res.actor_kwargs(batch_size, pool),
            )
        if pool is not None:  # a packed pool whose node died and cannot be placed again stops the stream (never a hang)
            pool.watch(lambda: halt_stream(ds, pool.error))
        # says what the stream waits for when no rows come for a minute; stops it once the cluster's GCS is gone
        waits.start(lambda exc: halt_stream(ds, exc, wake=True))
        for batch in ds.iter_batches(batch_format="numpy", batch_size=None):
            if first:
                summary.startup_s += time.perf_counter() - t_start
                first = False
            if pool is not None:
                pool.beat()
            for a in _embed_actors(ds):  # an actor restarted or added since the last batch
                actors.setdefault(a._actor_id.hex(), a)
            block, errors = assembler.add(batch)
            cast = summary.note_cast(mcfg.id, batch)
            if cast:  # once per model, in the log as it happens (the summary says it again at the end)
                log.info("%s", cast)
            now = np.datetime64(int(time.time() * 1000), "ms")
            if len(errors):
                err_keys = np.array(errors.scenario)
                for key in np.unique(err_keys):
                    key = str(key)
                    sub = _take_errors(errors, np.flatnonzero(err_keys == key), sids[key])
                    w = writer(key, batch["embedding"].shape[1])
                    w.add_errors(errors_table(sub, ERROR_SCHEMA, {**provenance[key], "created_at": now}))
                    summary.add_failures(parts[key].name, sub.track_id, sub.stage, sub.reason)
                summary.errors += len(errors)
                summary.errors_by_stage.update(errors.stage)
            if block is not None:
                for key in np.unique(block.scenario):
                    key = str(key)
                    sub = block.take(np.flatnonzero(block.scenario == key))
                    sub = dataclasses.replace(sub, scenario=np.full(len(sub), sids[key], dtype=object))
                    w = writer(key, sub.embedding.shape[1])
                    w.add_table(rows_table(sub, w.schema, {**provenance[key], "created_at": now}))
                    versions.setdefault(key, str(sub.model_version[0]))
                    summary.rows_by_scenario[sids[key]] += len(sub)
                    summary.partial += int((sub.audio_note != "").sum())  # decoded from part of their file
                summary.computed += len(block)
                summary.audio_seconds += float(block.audio_seconds.sum())
            bar.update((len(block) if block is not None else 0) + len(errors))
            watch.see(block, errors)
        if waits.gone is not None:  # the stream was stopped, not finished
            raise waits.lost()
        if pool is not None and pool.error is not None:
            raise pool.error
        summary.operators = _operators(ds)
        if os.environ.get("REPEVAL_DATA_STATS") == "1":  # Ray Data's per-operator timing breakdown
            log.warning("%s", ds.stats())
    except BaseException as exc:
        waits.stop()  # before the teardown (up to STREAM_STOP_S): no line of a stream already broken off
        if waits.gone is not None:  # nothing to release on a cluster whose GCS is gone: each request of it would wait
            held.release(drop=True)  # (Ray Data's lines of the stream it stopped) until Ray ended the process
            raise waits.lost() from (None if isinstance(exc, ClusterLost) else exc)
        for a in _embed_actors(ds):  # those still in the pool, if Ray Data has not released them yet
            actors.setdefault(a._actor_id.hex(), a)
        _stop_stream(ds, exc)
        _release_actors(actors)
        _kill_stray_embed_actors()  # a stream that failed before its first batch: its actors were never seen
        unavailable = None if isinstance(exc, ModelFailing) else unavailable_in_stream(exc)
        held.release(drop=unavailable is not None or isinstance(exc, ModelFailing))
        if unavailable is not None:  # a node checked only as its actors started: repeval's error, not Ray's
            raise unavailable from None
        raise
    finally:
        waits.stop()
        if pool is not None:
            pool.close(remove=waits.gone is None)
        held.release()
        # everything finished so far is kept, even when the stream fails part-way
        summary.abandoned += assembler.abandon()
        try:  # a flush refused (the store's lease lost: LeaseLost) or failing (a full disk) still closes the bar
            for w in writers.values():
                w.flush()
        finally:
            bar.close()
            summary.stream_s += time.perf_counter() - t_start
    return versions


def stream_watch(bar: Progress, label: str, res: EmbedResources, use_gpu: str = "auto") -> StreamWatch:
    """The watch that says what a stream waits for (:class:`~repeval.pipeline.stream_watch.StreamWatch`), its actors
    taking their GPU under ``run.resources.use_gpu`` = ``use_gpu``."""
    from repeval.pipeline.resources import _actor

    keys = {"CPU": "run.resources.embed_num_cpus", "GPU": "run.resources.embed_num_gpus"}
    keys.update({k: f"run.resources.embed_resources.{k}" for k in res.resources})
    always = use_gpu == "always" and res.num_gpus > 0
    return StreamWatch(bar, label, res.n_actors, _actor(res) if res.n_actors else {}, keys, always)


class HeldFailureLines(logging.Filter):
    """Ray Data's ERROR lines announcing that a stream fails on a UDF's error ("An exception was raised from a task
    of operator …", "Exception occurred in user code, with the abbreviated stack trace below …"), held back while
    the stream runs (from its loggers and its log file alike) and said by :meth:`release` — unless the error is one
    repeval says itself, in one line (a model that cannot run on a node: :func:`unavailable_in_stream`)."""

    LOGGERS = ("ray.data._internal.execution.streaming_executor_state", "ray.data.exceptions")
    MESSAGES = ("An exception was raised from a task of operator", "Exception occurred in user code")

    def __init__(self) -> None:
        super().__init__()
        self.held: list[logging.LogRecord] = []
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith(self.MESSAGES):
            self.held.append(record)
            return False
        return True

    def release(self, drop: bool = False) -> None:
        """Stop holding lines back; log those held (``drop``: forget them). Once done, does nothing."""
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)
        held, self.held = self.held, []
        for record in [] if drop else held:
            logging.getLogger(record.name).handle(record)


def _embed_actors(ds: Any) -> list[Any]:
    """Handles of the stream's embedding actors (running and starting), read from Ray Data's executor.

    Private in Ray 2.60 (pinned); :func:`_release_actors` needs them because Ray Data releases a failed
    stream's actors by dropping its handles, and the exception's traceback keeps those alive for as long
    as the caller holds it (a notebook, a retry loop): the idle actors would keep their CPUs and the
    next stream would wait for them forever. Returns ``[]`` when the layout is not as expected.
    """
    executor = getattr(ds, "_current_executor", None)
    topology = getattr(executor, "_topology", None) or {}
    found = []
    for op in list(topology):
        pool = getattr(op, "_actor_pool", None)
        if pool is not None:
            found += list(getattr(pool, "_running_actors", {}))
            found += list(getattr(pool, "_pending_actors", {}).values())
    return found


#: how long a broken-off stream's scheduling thread is waited for (Ray Data itself waits 2 s)
STREAM_STOP_S = 30.0


def _stop_stream(ds: Any, exc: BaseException) -> None:
    """Stop a broken-off stream's executor (Ctrl-C, SIGTERM, a write error) and wait for its scheduling thread.

    Ray Data stops the executor when the loop over its batches ends, but waits only 2 s for the thread's current
    scheduling step: on a loaded machine (a Ctrl-C reaches Ray's workers too) a step outlasted that, the command
    printed "interrupted", and at exit ``ray.shutdown`` pulled Ray out from under the thread, which printed a
    ``RaySystemError`` traceback (CI, 2 cores). The thread ends after its step; nothing else is waited for.
    Private in Ray 2.60 (pinned), like :func:`_embed_actors`; best effort."""
    try:
        # already shut down by Ray Data's iterator, normally
        if halt_stream(ds, exc) and ds._current_executor.is_alive():
            ds._current_executor.join(timeout=STREAM_STOP_S)
    except Exception as err:  # the original error is what the caller needs
        log.debug("could not stop the broken-off stream's executor: %s", err)


def halt_stream(ds: Any, exc: BaseException | None, wake: bool = False) -> bool:
    """Stop a running stream from another thread (a packed pool's watch:
    :class:`~repeval.pipeline.placement.PackedPool`): its loop over the batches then ends, and the caller raises
    ``exc``. ``wake``: the loop raises ``exc`` at once, without waiting for the executor's scheduling thread to end
    it — which a GCS gone holds in a request of it (Ray Data's look at the draining nodes) until Ray ends the
    process (:class:`~repeval.pipeline.stream_watch.ClusterLost`) —, and shuts the executor down itself, with Ray
    Data's usage record (an actor created: a request of the GCS gone) turned off. ``True`` once stopped; ``False`` while the stream
    has not started. Private in Ray 2.60 (pinned), like :func:`_stop_stream`."""
    executor = getattr(ds, "_current_executor", None)
    if executor is None:
        return False
    if wake and isinstance(exc, Exception):
        output = getattr(executor, "_output_node", None)
        if output is None:  # not started yet
            return False
        # the stream's loop shuts the executor down as it raises: not here, where its lock would be held while a
        # request of the GCS gone waits until Ray ends the process — Ray Data's record of the stream's usage (in an
        # actor it creates) is made then, unless turned off (RAY_DATA_USAGE_DISABLED, read at each record)
        os.environ["RAY_DATA_USAGE_DISABLED"] = "1"
        output[1].mark_finished(exc)
        return True
    executor.shutdown(force=True, exception=exc)
    return True


def _release_actors(actors: dict[str, Any]) -> None:
    """Kill a failed stream's embedding actors now (see :func:`_embed_actors`)."""
    import ray

    for actor in actors.values():
        try:
            ray.kill(actor, no_restart=True)
        except Exception as exc:  # best effort: the original error is what the caller needs
            log.debug("could not kill an embedding actor of the failed stream: %s", exc)


def _kill_stray_embed_actors() -> None:
    """Kill this job's embedding actors still alive once a stream failed: Ray Data releases a failed stream's actors
    by dropping its handles, but those of a stream that failed before its first batch (a model whose constructor
    raised: :class:`Embed` says so at its first batch) were never seen by :func:`_embed_actors`, and outlived the
    stream holding their CPUs — the next model's stream, or the probes' trials, then waited for them forever. Streams
    run one at a time, so any left in this job are a failed stream's. Private in Ray 2.60 (pinned), like
    :func:`_embed_actors`; best effort. (The public ways do not reach them: ``ray.util.state.list_actors`` asks the
    dashboard, which repeval's Ray runs without, and ``ray.kill`` takes a handle, which Ray Data never gave out.)
    Nothing once the cluster's GCS no longer answers (Ray died under the run: :func:`gcs_answers`): the query of its
    actors would wait for it until Ray ends the process, before the run says what happened."""
    import ray

    try:
        from ray._raylet import ActorID

        if not gcs_answers():
            return
        for actor_id in embed_actors():
            worker: Any = ray._private.worker.global_worker
            worker.core_worker.kill_actor(ActorID.from_hex(actor_id), True)
    except Exception as exc:  # the stream's own error is what the caller needs
        log.debug("could not kill the failed stream's embedding actors: %s", exc)


def _take_errors(errors: Any, idx: np.ndarray, sid: str) -> Any:
    """The error records at ``idx``, under their plain scenario id."""
    from repeval.pipeline.assemble import ErrorBlock

    out = ErrorBlock()
    for i in idx:
        out.add(errors.track_id[i], errors.split[i], sid, errors.stage[i], errors.reason[i])
    return out


def _operators(ds: Any) -> list[str]:
    """Operator names of the executed plan, e.g. ``['MapBatches(DecodeDeform)', 'MapBatches(Embed)']``."""
    try:
        text = ds.stats()
    except Exception:
        return []
    return re.findall(r"^Operator \d+ (.+?): ", text, flags=re.M)
