"""The pipeline's model UDFs: :class:`Embed`, the embedding actor (builds the model once, embeds the chunks that
:class:`~repeval.pipeline.stages.DecodeDeform` emits, means each chunk's frames), and :class:`DecodeEmbed`, a model
run inside the decode tasks (``run.resources.embed_in_decode``; built once per worker process:
:func:`process_embedder`). Like the decode stage they are plain callables, testable without Ray.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from repeval.models.plugins import Plugin
from repeval.models.validate import frames_problem
from repeval.pipeline.stages import DecodeDeform, _object_array, table_to_batch
from repeval.warn import warn_once

#: the log lines of the pipeline's UDFs keep the name they had when one module held them all (the CLI prints it)
log = logging.getLogger("repeval.pipeline.stages")


def limit_threads(threads: int | None) -> None:
    """Cap the threads models use in this process: BLAS/OpenMP (threadpoolctl), torch's intra-op pool, and — for
    frameworks with pools of their own, which default to one thread per core — TensorFlow and onnxruntime:
    ``REPEVAL_MODEL_THREADS`` is read by the families that build such sessions (musicnn, basic-pitch), and
    ``TF_NUM_INTRAOP_THREADS``/``TF_NUM_INTEROP_THREADS`` are set for TensorFlow runtimes that start later in the
    process (essentia's). Call it before the model is built, and again after (torch may be imported by then)."""
    if not threads:
        return
    from repeval.models._common import THREADS_ENV

    for key in (THREADS_ENV, "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[key] = str(int(threads))
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass
    if "torch" in sys.modules:
        # always: threadpoolctl has just capped OpenMP for *this* thread, so torch.get_num_threads() here reads 1
        # while torch's own setting, the one Ray Data's UDF thread uses, can still be the core count
        sys.modules["torch"].set_num_threads(threads)


def plugin_build_failed(model_cfg: Any, exc: Exception) -> Any:
    """The :class:`~repeval.models.ModelUnavailable` that says a plugin model's constructor raised ``exc`` (its one
    line, the fix and the command that shows the traceback); None when the model is not a plugin's."""
    from repeval.models import ModelUnavailable, resolve_model
    from repeval.models.plugins import BUILD_FAILED, first_line, plugin_of

    fam, _ = resolve_model(model_config_for_build(model_cfg))
    origin = plugin_of(fam.name)
    if origin is None:
        return None
    return ModelUnavailable(
        f"embedding model '{model_cfg.id}' {BUILD_FAILED} {this_node()}: its class {fam.cls.__name__} (plugin "
        f"{origin}) raised {first_line(exc)} — fix its params (a weights path?) or its __init__; "
        f"`{validate_command(model_cfg)}` builds it with the traceback"
    )


def validate_command(model_cfg: Any) -> str:
    """``repeval validate-model <type> [--plugin P] [--param k=v …]``: the command that builds ``model_cfg``'s model
    and runs it on test audio, with the traceback of what it raises."""
    from repeval.models import resolve_model
    from repeval.models.plugins import plugin_of

    fam, params = resolve_model(model_config_for_build(model_cfg))
    origin = plugin_of(fam.name)
    args = "".join(f" --param {k}={v}" for k, v in params.items() if k != "chunk_s")
    return f"repeval validate-model {fam.name}{f' --plugin {origin}' if origin else ''}{args}"


def model_config_for_build(model_cfg: Any) -> Any:
    """The model config without the pipeline's own parameters (``chunk_s``)."""
    params = dict(getattr(model_cfg, "params", {}) or {})
    if "chunk_s" not in params or not hasattr(model_cfg, "model_copy"):
        return model_cfg
    params.pop("chunk_s")
    return model_cfg.model_copy(update={"params": params})


#: which chunks an :class:`Embed` keeps the frames of: all (``True``), none (``False``) or those of these scenario keys
KeepFrames = bool | frozenset[str]


class Embed:
    """Actor UDF: builds the model once, embeds a batch of chunks, means each chunk's frames.

    Output per chunk: ``embedding`` (mean of its frames), ``n_frames`` and, with ``keep_frames``,
    ``frames``; the driver combines chunks into one row per track (a frame-weighted mean, i.e.
    the mean over all the track's frames, and the frames concatenated in order). ``keep_frames`` is ``True`` (every
    chunk's frames) or the scenario keys (partitions) whose chunks keep theirs — the others' are empty.
    """

    def __init__(
        self,
        model_cfg: Any,
        keep_frames: KeepFrames = False,
        threads: int | None = None,
        sample_rate_hz: int | None = None,
        plugins: tuple[Plugin, ...] = (),
    ) -> None:
        from repeval.pipeline.stream_watch import mark_loading

        mark_loading(True)  # the stream's watch says this actor loads its model, not that its worker starts
        try:
            self._build(model_cfg, keep_frames, threads, sample_rate_hz, plugins)
        finally:
            mark_loading(False)

    def _build(
        self,
        model_cfg: Any,
        keep_frames: KeepFrames,
        threads: int | None,
        sample_rate_hz: int | None,
        plugins: tuple[Plugin, ...],
    ) -> None:
        from repeval.cpu import keep_freed_memory
        from repeval.models import ModelUnavailable, build_model
        from repeval.models._common import gpu_granted
        from repeval.models.plugins import PluginError, load_plugins
        from repeval.quiet_exit import quiet_exit_requests_in_callbacks

        keep_freed_memory()  # the model's per-call blocks stay in the process (see its docstring)
        quiet_exit_requests_in_callbacks()  # the stream's end ends this actor with SIGTERM (see the module)
        limit_threads(threads)
        t0 = time.perf_counter()
        self.model_id = model_cfg.id
        #: why the model cannot run on this node, said at the first batch (:meth:`__call__`)
        self.unavailable: ModelUnavailable | None = None
        try:
            load_plugins(plugins)  # the configuration's own models: registered in this worker process too
            with gpu_granted(granted_gpu()):  # params.device: auto on the CPU when Ray granted this process no GPU
                self.model = build_model(model_config_for_build(model_cfg), where=this_node())
        except PluginError as exc:  # a plugin this node cannot import: said as the model's unavailability
            self.unavailable = ModelUnavailable(f"embedding model '{model_cfg.id}' cannot run {this_node()}: {exc}")
            return
        except ModelUnavailable as exc:
            # an actor that raises while it starts dies in Ray Data's pool: the job's log got Ray's retry traceback,
            # the worker's and Ray Data's "internal error … open an issue" with theirs, and the driver's own — a
            # first batch that raises it is a UDF error, which reaches the driver as one (run_pipeline names it)
            self.unavailable = exc
            return
        except Exception as exc:
            # a plugin's __init__ that raises (a weights path that is not there): said in one line, as above, not
            # as Ray's pages of actor-death tracebacks; repeval's own models' faults stay tracebacks (bugs)
            self.unavailable = plugin_build_failed(model_cfg, exc)
            if self.unavailable is None:
                raise
            return
        limit_threads(threads)  # the model may have imported torch
        warn_if_granted_gpu_unused(self.model_id, self.model)
        if sample_rate_hz is not None and int(self.model.sample_rate_hz) != int(sample_rate_hz):
            # the stream decodes at the rate planned for the model (its declared_sizes); fed another, the model
            # would hear slowed or sped-up audio
            raise ValueError(
                f"embedding model {model_cfg.id} runs at {self.model.sample_rate_hz} Hz but its stream decodes at "
                f"{sample_rate_hz} Hz: its rate was not known while planning — make the model's configuration "
                "available locally (a hub model: download it first) so that its declared rate is read"
            )
        self.model_version = str(getattr(self.model, "version", "") or "")
        #: whether the model computes only the frames a window keeps when told how many (FrameGeometry.stops)
        self.stops = _stops(model_cfg)
        self.keep_frames = keep_frames
        self.compute_s = 0.0
        log.info("loaded %s in %.1fs", self.model_id, time.perf_counter() - t0)

    def _embed_all(
        self, audios: list[np.ndarray], offsets: list[int], wanted: list[int]
    ) -> list[np.ndarray | Exception]:
        """The frames of each input, the model starting them ``offsets`` samples into it (all 0: it is given no
        offsets — a model whose frame geometry has no ``align`` need not take them) and — a model whose frame
        geometry ``stops`` — computing ``wanted`` of them (negative: all)."""
        t0 = time.perf_counter()
        results: list[np.ndarray | Exception] | None = None
        if getattr(self.model, "batch_invariant", True):
            try:
                results = list(self.model.embed_batch(audios, **self._asks(offsets, wanted)))
                if len(results) != len(audios):
                    raise ValueError(f"embed_batch returned {len(results)} results for {len(audios)} inputs")
            except Exception:
                results = None  # each clip alone, below: one clip's error is its own
        if results is None:  # also a model whose clips' frames depend on the call's others (batch_invariant)
            results = [self._embed_one(a, o, n) for a, o, n in zip(audios, offsets, wanted, strict=True)]
        self.compute_s += time.perf_counter() - t0
        return results

    def _embed_one(self, audio: np.ndarray, offset: int, wanted: int) -> np.ndarray | Exception:
        """One clip's frames, through ``embed_batch`` (a plugin may define it alone), or the error it raised."""
        try:
            return self.model.embed_batch([audio], **self._asks([offset], [wanted]))[0]
        except Exception as exc:
            return exc

    def _asks(self, offsets: list[int], wanted: list[int]) -> dict[str, list[int]]:
        """``embed_batch``'s keywords, given only what the model takes: ``offsets`` when one is not 0, ``n_frames``
        when its frame geometry ``stops`` and one clip needs fewer than all."""
        asks: dict[str, list[int]] = {}
        if any(offsets):
            asks["offsets"] = offsets
        if self.stops and any(n >= 0 for n in wanted):
            asks["n_frames"] = wanted
        return asks

    def __call__(self, batch: dict[str, np.ndarray] | pa.Table) -> dict[str, np.ndarray]:
        if self.unavailable is not None:
            raise self.unavailable
        if isinstance(batch, pa.Table):
            batch = table_to_batch(batch)
        n = len(batch["track_id"])
        dim = self.model.embedding_dim
        emb = np.zeros((n, dim), np.float32)
        n_frames = np.zeros(n, np.int32)
        errors = [str(e) for e in batch["error"]]
        stages = [str(s) for s in batch["stage"]]
        seconds = np.zeros(n, np.float32)
        frames_out: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * n
        # a window with context from its neighbours (DecodeDeform with a frame geometry): the frames that start in it
        skip, keep, context, offset = (
            batch.get(k, np.full(n, d, np.int32)) for k, d in (("skip", 0), ("keep", -1), ("context", 0), ("offset", 0))
        )
        for i in range(n):
            if not errors[i]:
                seconds[i] = (len(batch["audio"][i]) - int(context[i])) / self.model.sample_rate_hz
        # (a window that keeps no frame — past the cut of a model's rows to its rate, ``rows_per_sample``: no model call)
        todo = [i for i in range(n) if not errors[i] and keep[i] != 0]
        audios = [np.asarray(batch["audio"][i], dtype=np.float32) for i in todo]
        # (a window's frames from where the model starts them: those on its context before, then those in it)
        wanted = [int(skip[i]) + int(keep[i]) if keep[i] >= 0 else -1 for i in todo]
        results = self._embed_all(audios, [int(offset[i]) for i in todo], wanted)
        cast = ""  # the dtype of frames the model returned other than float32, cast to it (the store's precision)
        for i, r in zip(todo, results, strict=True):
            if isinstance(r, Exception):
                errors[i], stages[i] = f"{type(r).__name__}: {r}", "embed"
                continue
            if isinstance(r, np.ndarray) and r.dtype != np.float32 and np.issubdtype(r.dtype, np.floating):
                cast = cast or str(r.dtype)
            r = np.asarray(r, dtype=np.float32)
            problem = frames_problem(r, dim)
            if problem:
                errors[i], stages[i] = problem, "embed"
                continue
            if keep[i] >= 0:
                first, count = int(skip[i]), int(keep[i])
                if r.shape[0] < first + count:
                    errors[i], stages[i] = (
                        f"model returned {r.shape[0]} frames for a window with context, whose frames {first} to "
                        f"{first + count - 1} start in the window: its frame_geometry does not match its frames",
                        "embed",
                    )
                    continue
                r = r[first : first + count]
            emb[i] = r.mean(axis=0)
            n_frames[i] = r.shape[0]
            if self.keep_frames is True or (self.keep_frames and str(batch["scenario"][i]) in self.keep_frames):
                frames_out[i] = r
        out = {k: batch[k] for k in ("track_id", "split", "scenario", "chunk", "n_chunks", "deformation_params")}
        if "note" in batch:  # a track decoded from part of its file: its audio_note, on its last chunk
            out["note"] = batch["note"]
        out.update(
            embedding=emb,
            n_frames=n_frames,
            audio_seconds=seconds,
            model_version=np.array([self.model_version] * n),
            error=np.array(errors),
            stage=np.array(stages),
            cast_from=np.array([cast] * n),  # said once per model by the driver (EmbedSummary.note_cast)
        )
        if self.keep_frames:
            out["frames"] = _object_array(frames_out)
        return out


def warn_if_granted_gpu_unused(model_id: str, model: Any) -> None:
    """Warn, once per process, when Ray granted this embedding actor a GPU (``run.resources.use_gpu``: the cluster
    reports GPUs) that its model does not use — torch here is a CPU-only build or sees no device, so the model
    (``params.device: auto``) embeds on the CPU while the GPU stays reserved for the actor. It used to do so without
    a word, the stage's line saying "1 GPU"."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized() or not ray.get_gpu_ids():
        return
    device = str(getattr(model, "device", "cpu"))
    if device.startswith("cuda"):
        return
    from repeval.models._common import cuda_unusable

    why = cuda_unusable() or f"its params.device is {device!r}"
    warn_once(
        log, "granted GPU unused",
        "the embedding actor of %s %s was granted a GPU, but %s: it embeds on the CPU while the GPU stays reserved "
        "for it — install a CUDA build of torch on the GPU nodes (and leave the model's params.device at auto), or set "
        "run.resources.use_gpu: never to embed on CPUs alone",
        model_id, this_node(), why,
    )  # fmt: skip


def granted_gpu() -> bool | None:
    """Whether Ray granted this worker process a GPU (a stream's embedding actor asks for one unless
    ``run.resources.use_gpu`` is ``never`` or the cluster has none); ``None`` outside a Ray worker (a model built by
    the driver, a test, a benchmark: no say)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized() or ray._private.worker.global_worker.mode != ray.WORKER_MODE:
        return None
    return bool(ray.get_gpu_ids())


def this_node() -> str:
    """Where this process runs, as a model's unavailability says it: ``on node <address>`` in a Ray worker (the
    address :func:`repeval.pipeline.preflight.models_on_nodes` names nodes by), else ``here``."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return f"on node {sys.modules['ray'].util.get_node_ip_address()}"
    return "here"


def _stops(model_cfg: Any) -> bool:
    """Whether the model's frame geometry (for its params) ``stops``: it computes only the frames it is asked for."""
    from repeval.models import resolve_model

    fam, params = resolve_model(model_config_for_build(model_cfg))
    return bool(getattr(fam.cls.frame_geometry(params), "stops", False))


#: the model :class:`DecodeEmbed` built in this worker process (key: model config, keep_frames, threads); only the
#: latest is kept, so a process that serves one model's stream after another's does not hold both
_PROCESS_EMBEDDERS: dict[tuple[str, KeepFrames, int | None], Embed] = {}


def process_embedder(
    model_cfg: Any,
    keep_frames: KeepFrames = False,
    threads: int | None = None,
    sample_rate_hz: int | None = None,
    plugins: tuple[Plugin, ...] = (),
) -> Embed:
    """This worker process's :class:`Embed` for (model config, ``keep_frames``, ``threads``): built on first use
    and kept for the process's later tasks; building another model releases it."""
    key = (model_cfg.model_dump_json(), keep_frames, threads)
    if key not in _PROCESS_EMBEDDERS:
        _PROCESS_EMBEDDERS.clear()
        _PROCESS_EMBEDDERS[key] = Embed(model_cfg, keep_frames, threads, sample_rate_hz, plugins)
    return _PROCESS_EMBEDDERS[key]


class DecodeEmbed:
    """Decode task UDF with the model inside (``run.resources.embed_in_decode``): :class:`DecodeDeform`, then
    :class:`Embed` on each batch it emits, ``batch_size`` chunks per call (as an actor's batches: a model's memory
    is bounded by its batch, whatever the task's size) — one stage, no actor pool, no audio through the object
    store.

    The model is built on a worker process's first task and kept for its later ones (a light model costs
    microseconds to build; a full one, under ``embed_in_decode: always``, is loaded once per process and
    released when the process builds another)."""

    def __init__(
        self,
        decode: DecodeDeform,
        model_cfg: Any,
        keep_frames: KeepFrames = False,
        threads: int | None = None,
        batch_size: int | None = None,
        plugins: tuple[Plugin, ...] = (),
    ) -> None:
        self.decode = decode
        self.plugins = plugins
        self.model_cfg = model_cfg
        self.keep_frames = keep_frames
        self.threads = threads
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        embed = process_embedder(
            self.model_cfg, self.keep_frames, self.threads, self.decode.sample_rate_hz, self.plugins
        )
        for table in self.decode(batch):
            step = self.batch_size or table.num_rows
            for start in range(0, table.num_rows, max(step, 1)):
                yield embed(table.slice(start, step))
