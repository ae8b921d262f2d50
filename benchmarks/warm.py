"""Wait for a fresh Ray instance to finish starting, so that timings exclude Ray's own start-up.

``ray.init`` returns before the raylet's prestarted worker processes (one per CPU) have imported
``ray`` and registered. A benchmark that starts timing at once charges that start-up — a second or
two of CPU on each core, shared with whatever is timed — to the first thing it runs. Like the
framework imports that the baselines do before their timings start, it is waited out and printed.
"""

from __future__ import annotations

import time
from typing import Any

import ray


def idle_workers() -> int:
    """Ray worker processes on this machine that are up and idle (process title ``ray::IDLE``)."""
    import psutil  # vendored by Ray (ray/thirdparty_files): importable once ray is imported

    n = 0
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if cmd and cmd[0].startswith("ray::IDLE"):
            n += 1
    return n


def wait_for_ray_workers(timeout_s: float = 30.0) -> float:
    """Block until the local raylet has as many idle workers as CPUs (or ``timeout_s``); returns the wait."""
    want = int(ray.cluster_resources().get("CPU", 1))
    t0 = time.perf_counter()
    while idle_workers() < want and time.perf_counter() - t0 < timeout_s:
        time.sleep(0.1)
    time.sleep(0.5)  # the last worker's title changes as it registers; let it finish settling
    return time.perf_counter() - t0


#: what a decode task imports on its first call (about 2 s of CPU in a fresh worker)
DECODE_MODULES = (
    "ray.data",
    "repeval.pipeline.stages",
    "repeval.pipeline.embedder",
    "repeval.audio",
    "repeval.deformations",
    "repeval.models",
    "audiomentations",
)


def _on_workers(fn, args: tuple, runtime_env: dict | None, n: int | None) -> list:
    """``fn(*args)`` as ``n`` (default: one per CPU) concurrent 1-CPU tasks — one per idle worker — in
    ``runtime_env`` when given; their results."""
    task = ray.remote(num_cpus=1, max_retries=0)(fn)
    if runtime_env:
        task = task.options(runtime_env=runtime_env)
    n = n or max(1, int(ray.cluster_resources().get("CPU", 1)))
    return ray.get([task.remote(*args) for _ in range(n)])


def warm_ray_workers(
    modules: tuple[str, ...] = DECODE_MODULES, runtime_env: dict | None = None, n: int | None = None
) -> list[float]:
    """Import ``modules`` in ``n`` (default: one per CPU) of the local Ray's workers — 1-CPU tasks, after
    :func:`wait_for_ray_workers` — and return each task's import seconds. With ``runtime_env`` (a model's
    process group, see ``EmbedResources.runtime_env``) Ray starts workers of that environment for them,
    the workers the stream's tasks or actors of that group then run in.

    The sequential loops import the audio stack and build their model before their clocks start; this
    does the same for the pipeline's workers, so that both sides time the same work. (An idle worker
    runs the next task: checked while this was written, two tasks after the warm-up on 2 CPUs both
    found the modules imported, two on a fresh Ray neither.)"""
    wait_for_ray_workers()

    def import_modules(names: list[str]) -> float:  # nested: pickled by value (workers cannot import this file)
        import importlib
        import time

        t0 = time.perf_counter()
        for name in names:
            importlib.import_module(name)
        return time.perf_counter() - t0

    return _on_workers(import_modules, (list(modules),), runtime_env, n)


def build_models_in_workers(
    mcfg: Any, keep_frames: bool, threads: int | None, runtime_env: dict | None, n: int
) -> list[float]:
    """Build embedding model ``mcfg`` in ``n`` of the workers that the stream's decode tasks will run in
    (``runtime_env``: the model's process group; ``threads``: the stream's planned threads per model), with
    the call a stream's first task in each would make (``embedder.process_embedder``), and return each
    build's seconds. Call it after :func:`warm_ray_workers`, which has waited for the workers.

    For a model that runs inside the decode tasks: the loop and the model-only reference build their model
    before their clocks start, the pipeline after (once per worker process). This puts the pipeline's builds
    outside its clock as well; the benchmark prints the end-to-end times with every build included."""

    def build(mcfg: Any, keep_frames: bool, threads: int | None) -> float:  # nested: pickled by value
        import time

        from repeval.pipeline import embedder

        t0 = time.perf_counter()
        embedder.process_embedder(mcfg, keep_frames, threads)
        return time.perf_counter() - t0

    return _on_workers(build, (mcfg, keep_frames, threads), runtime_env, n)


def start_ray_data(actor_pool: bool = False) -> float:
    """Run a one-row dataset, so that Ray Data's own helper actors (its stats actor and autoscaling coordinator:
    two processes importing ``ray.data``, ~1.5 s of CPU each) are up before a timed stream; returns the seconds.
    They start with a session's first dataset and serve every later one — Ray Data's start-up, like Ray's.
    ``actor_pool`` maps the row in a one-actor pool too, which brings up the detached ``ActorLocationTracker`` that
    Ray Data starts with a session's first actor pool (one more process; the pool's own actor is gone after it)."""
    import ray.data

    t0 = time.perf_counter()
    ds = ray.data.range(1).map_batches(lambda b: b)
    if actor_pool:

        class Identity:  # nested: pickled by value (workers cannot import this file); a class makes an actor pool
            def __call__(self, batch: Any) -> Any:
                return batch

        ds = ds.map_batches(Identity, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.01)
    ds.materialize()
    return time.perf_counter() - t0
