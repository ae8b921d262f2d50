"""The pipeline's resources, without Ray: CPUs, GPUs and process groups, light models in the decode tasks, block
sizes, and the threads each framework may use in an actor."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest

from repeval.config.embed import EmbeddingModelConfig
from repeval.config.run import ResourcesConfig
from repeval.cpu import MODEL_TUNABLES
from repeval.pipeline.embedder import Embed
from repeval.pipeline.resources import plan_resources


class _CPU:
    uses_gpu = False
    process_group = "default"


class _GPU(_CPU):
    uses_gpu = True


class _TF(_CPU):
    process_group = "tf"
    worker_env: ClassVar[dict[str, str]] = {"EXTRA": "1"}


def test_resources_two_cpus_leave_room_for_decode():
    r = plan_resources(_CPU, ResourcesConfig(), cluster_cpus=2, cluster_gpus=0)
    assert (r.n_actors, r.num_cpus, r.num_gpus, r.threads) == (2, 0.75, 0.0, 1)
    assert r.n_actors * r.num_cpus + r.decode_num_cpus <= 2 and r.decode_num_cpus != r.num_cpus
    kw = r.actor_kwargs(16)
    assert kw["num_cpus"] == 0.75 and "num_gpus" not in kw and "runtime_env" not in kw
    big = plan_resources(_CPU, ResourcesConfig(embed_num_cpus=4), cluster_cpus=32, cluster_gpus=0)
    assert (big.n_actors, big.num_cpus, big.threads) == (7, 4.0, 4) and 32 - 7 * 4 >= big.decode_num_cpus


def test_resources_decode_tasks_fill_the_cpus_the_actors_leave() -> None:
    """On one node decode tasks run at most one per CPU left free by the actor pool: on 2 CPUs four 0.25-CPU tasks
    would fit beside one 1-CPU actor, and each would be a worker process importing the audio stack while the actor
    starts."""
    import ray.data

    two = plan_resources(_CPU, ResourcesConfig(), cluster_cpus=2, cluster_gpus=0)  # 2 actors × 0.75: 0.5 free
    one = plan_resources(_CPU, ResourcesConfig(embed_actors=1), cluster_cpus=2, cluster_gpus=0)  # 1 free
    assert (two.decode_tasks, one.decode_tasks) == (1, 1)
    assert one.n_actors * one.num_cpus + one.decode_num_cpus * 4 <= 2  # what Ray alone would have run at once
    big = plan_resources(_CPU, ResourcesConfig(embed_num_cpus=4), cluster_cpus=32, cluster_gpus=0)
    assert big.decode_tasks == 32 - big.n_actors * 4 == 4
    gpu = plan_resources(_GPU, ResourcesConfig(), cluster_cpus=16, cluster_gpus=2)  # 2 actors × 1 CPU
    assert gpu.decode_tasks == 14
    mine = plan_resources(_CPU, ResourcesConfig(decode_max_tasks=6), cluster_cpus=2, cluster_gpus=0)
    assert mine.decode_tasks == 6
    # a stream of fewer blocks gets a pool of that many tasks (it could not run more); more blocks, the plan's
    assert [mine.decode_kwargs(n_blocks=n)["compute"].size for n in (1, 4, 6, 10, None)] == [1, 4, 6, 6, 6]
    kw = one.decode_kwargs()
    assert kw["num_cpus"] == one.decode_num_cpus
    assert isinstance(kw["compute"], ray.data.TaskPoolStrategy) and kw["compute"].size == 1
    assert "1 at once" in one.describe()
    # counted in the singular when one ("1 embedding actor(s) … (1 thread(s))" read on every run)
    assert one.describe() == "1 embedding actor × 1 CPU (1 thread each); decode tasks × 0.25 CPU, 1 at once"
    with pytest.raises(ValueError, match="decode_max_tasks"):
        ResourcesConfig(decode_max_tasks=0)
    # a cluster of several nodes may grow under the autoscaler: Ray Data sizes the decode pool there
    nodes = {"CPU": 18.0, "node:10.0.0.1": 1.0, "node:10.0.0.2": 1.0, "node:__internal_head__": 1.0}
    multi = plan_resources(_CPU, ResourcesConfig(), cluster_cpus=18, cluster_gpus=0, cluster_resources=nodes)
    assert multi.decode_tasks is None and "compute" not in multi.decode_kwargs()
    assert "compute" not in multi.decode_kwargs(n_blocks=1)
    assert "at once" not in multi.describe()
    pinned = plan_resources(_CPU, ResourcesConfig(decode_max_tasks=3), 18, 0, nodes)
    assert pinned.decode_tasks == 3 and pinned.decode_kwargs()["compute"].size == 3
    one_node = {"CPU": 2.0, "node:10.0.0.1": 1.0, "node:__internal_head__": 1.0}
    assert plan_resources(_CPU, ResourcesConfig(), 2, 0, one_node).decode_tasks == 1
    # nodes sharing an address (several on one machine): Ray sums their node:<address> resource, one each
    one_host = {"CPU": 8.0, "node:192.0.2.2": 2.0, "node:__internal_head__": 1.0}
    assert plan_resources(_CPU, ResourcesConfig(), 8, 0, one_host).decode_tasks is None


def test_resources_gpu_fraction_when_ray_reports_gpus():
    r = plan_resources(_GPU, ResourcesConfig(embed_num_gpus=0.5), cluster_cpus=8, cluster_gpus=2)
    assert r.n_actors == 4 and r.num_gpus == 0.5 and r.n_actors * r.num_cpus <= 8 - r.decode_num_cpus
    assert r.actor_kwargs(8)["num_gpus"] == 0.5
    # no GPU in the cluster, or a CPU-only model: no GPU request
    assert plan_resources(_GPU, ResourcesConfig(), 8, 0).num_gpus == 0
    assert plan_resources(_CPU, ResourcesConfig(), 8, 2).num_gpus == 0


def test_resources_isolated_process_group(monkeypatch):
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("REPEVAL_KEEP_FREED", raising=False)
    r = plan_resources(_TF, ResourcesConfig(), 2, 0)
    env = r.actor_kwargs(4)["runtime_env"]["env_vars"]
    assert env == {
        "REPEVAL_PROCESS_GROUP": "tf",
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "EXTRA": "1",
        "GLIBC_TUNABLES": MODEL_TUNABLES,  # glibc keeps what the model frees (repeval.cpu.model_process_env)
    }


def test_isolated_groups_leave_a_users_allocator_alone(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    env = plan_resources(_TF, ResourcesConfig(), 2, 0).actor_kwargs(4)["runtime_env"]["env_vars"]
    assert "GLIBC_TUNABLES" not in env  # the worker inherits the user's own setting instead
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("REPEVAL_KEEP_FREED", "0")
    env = plan_resources(_TF, ResourcesConfig(), 2, 0).actor_kwargs(4)["runtime_env"]["env_vars"]
    assert "GLIBC_TUNABLES" not in env and env["REPEVAL_PROCESS_GROUP"] == "tf"
    # the default group runs in Ray's shared workers: no environment of its own
    assert "runtime_env" not in plan_resources(_CPU, ResourcesConfig(), 2, 0).actor_kwargs(4)


class _Light(_CPU):
    light = True


def test_light_models_run_inside_the_decode_tasks() -> None:
    """``embed_in_decode: auto`` puts a light model (handcrafted features) in the decode tasks — one task per CPU
    on one node, no actor pool — and keeps every other model, and a light one given an actor pool's settings, in
    actors; ``always`` and ``never`` override it, and a fused model keeps its process group."""
    import ray.data

    from repeval.models import resolve_model

    for mid in ("mfcc-stats", "logmel-stats", "chroma-stats"):
        assert resolve_model(EmbeddingModelConfig(id=mid))[0].cls.light, mid
    assert not resolve_model(EmbeddingModelConfig(id="msd-musicnn"))[0].cls.light

    light = plan_resources(_Light, ResourcesConfig(), cluster_cpus=2, cluster_gpus=0)
    assert (
        light.fused and light.n_actors == 0 and (light.decode_tasks, light.decode_num_cpus, light.threads) == (2, 1, 1)
    )
    kw = light.decode_kwargs()
    assert kw["num_cpus"] == 1 and kw["compute"].size == 2 and "runtime_env" not in kw
    assert "inside the decode tasks" in light.describe() and "2 at once (1 thread each)" in light.describe()
    assert plan_resources(_Light, ResourcesConfig(embed_num_cpus=2), 16, 0).decode_tasks == 8
    assert plan_resources(_Light, ResourcesConfig(decode_max_tasks=3), 16, 0).decode_tasks == 3
    nodes = {"CPU": 18.0, "node:10.0.0.1": 1.0, "node:10.0.0.2": 1.0}
    assert plan_resources(_Light, ResourcesConfig(), 18, 0, nodes).decode_tasks is None  # Ray Data sizes it there
    # an actor pool's settings name an actor pool; a model that is not light never moves under auto
    for res in (ResourcesConfig(embed_actors=1), ResourcesConfig(embed_in_decode="never")):
        assert not plan_resources(_Light, res, 2, 0).fused
    cluster = {"CPU": 4.0, "embed": 2.0}
    assert not plan_resources(_Light, ResourcesConfig(embed_resources={"embed": 1}), 4, 0, cluster).fused
    assert not plan_resources(_CPU, ResourcesConfig(), 2, 0).fused
    # always: any model, with its process group's environment on the tasks
    tf = plan_resources(_TF, ResourcesConfig(embed_in_decode="always"), 2, 0)
    assert tf.fused and tf.decode_kwargs()["runtime_env"]["env_vars"]["REPEVAL_PROCESS_GROUP"] == "tf"
    assert isinstance(tf.decode_kwargs()["compute"], ray.data.TaskPoolStrategy)
    with pytest.raises(ValueError, match="embed_in_decode"):
        ResourcesConfig(embed_in_decode="sometimes")  # type: ignore[arg-type]


def test_blocks_longer_when_the_model_runs_in_the_decode_tasks() -> None:
    """At least four blocks per CPU, at most 64 rows for an actor pool and 256 when the model runs in the decode
    tasks (Ray Data starts the next task tenths of a second after one ends: short fused tasks ran one at a time)."""
    from repeval.pipeline.source import block_slices
    from repeval.pipeline.stream import FUSED_MAX_BLOCK_ROWS, MAX_BLOCK_ROWS, block_rows

    pool, fused = (
        block_slices(2000, block_rows(2000, 2, MAX_BLOCK_ROWS)),
        block_slices(2000, block_rows(2000, 2, FUSED_MAX_BLOCK_ROWS)),
    )
    assert [len(pool), len(fused)] == [32, 8] and {n for _, n in fused} == {250} and {n for _, n in pool} == {62, 63}
    assert block_rows(10, 2, FUSED_MAX_BLOCK_ROWS) == 2  # five blocks of two rows
    assert len(block_slices(100_000, block_rows(100_000, 2, FUSED_MAX_BLOCK_ROWS))) == 391


def test_an_actor_pools_stream_ends_in_half_length_blocks() -> None:
    """The last blocks of a stream into an actor pool are half as long, two per actor (an actor that frees up while
    another embeds the last block waits half as long); a model inside the decode tasks has even blocks."""
    from repeval.pipeline.source import block_slices
    from repeval.pipeline.stream import stream_blocks

    pool = plan_resources(_CPU, ResourcesConfig(), cluster_cpus=2, cluster_gpus=0)
    fused = plan_resources(_CPU, ResourcesConfig(embed_in_decode="always"), cluster_cpus=2, cluster_gpus=0)
    assert pool.n_actors == 2 and stream_blocks(2000, 2, pool, 16, 4000) == (64, 4, 8)
    assert [n for _, n in block_slices(2000, *stream_blocks(2000, 2, pool, 16, 4000))][-5:] == [62, 32, 31, 31, 31]
    assert stream_blocks(2000, 2, fused, 16, 4000) == (250, 0, 1)


def test_the_last_blocks_hold_an_embedding_call_each() -> None:
    """An actor pool bundles a block that gives it fewer chunks than its ``batch_size`` with the next one: the last
    blocks hold enough tracks for one call each (a track gives a chunk or an error record per scenario), or the
    stream has even blocks only when they would be no shorter than the others."""
    from repeval.pipeline.source import block_slices
    from repeval.pipeline.stream import stream_blocks

    pool = plan_resources(_CPU, ResourcesConfig(), cluster_cpus=2, cluster_gpus=0)
    # 2,000 tracks in one scenario, 32 chunks per call: the last four blocks of 32 tracks, not 31
    assert [n for _, n in block_slices(2000, *stream_blocks(2000, 2, pool, 32, 2000))][-5:] == [62, 32, 32, 32, 32]
    # the medley slice's 97 tracks, 113 rows, 15 per call: half-length blocks of 6 tracks would be merged in pairs
    assert [n for _, n in block_slices(97, *stream_blocks(97, 2, pool, 15, 113))] == [13] + [12] * 7
    assert [n for _, n in block_slices(97, *stream_blocks(97, 2, pool, 15, 339))][-4:] == [6] * 4  # three scenarios


def test_threads_limited_in_the_actor(files):
    from threadpoolctl import threadpool_info

    Embed(EmbeddingModelConfig(id="mfcc-stats"), threads=1)
    assert all(i["num_threads"] == 1 for i in threadpool_info())


def test_limit_threads_caps_torch_in_other_threads_too() -> None:
    """Ray Data runs an actor's batches in a worker thread, not the thread that built the model: the cap must
    reach torch's process-wide intra-op setting (threadpoolctl alone caps OpenMP for the calling thread only,
    which made torch report 1 there and keep its default elsewhere). Run in a fresh process without
    OMP_NUM_THREADS, as a Ray worker given ``threads`` would be."""
    import os
    import subprocess
    import sys

    code = (
        "import threading, torch\n"
        "from repeval.pipeline.embedder import limit_threads\n"
        "limit_threads(1)\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(torch.get_num_threads())); t.start(); t.join()\n"
        "print(torch.get_num_threads(), seen[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["1", "1"], out.stdout + out.stderr


FRAMEWORK_THREADS_CODE = """
import json, sys, time
import numpy as np
from repeval.config.embed import EmbeddingModelConfig
from repeval.models import build_model
from repeval.pipeline.embedder import limit_threads
limit_threads(1)  # what an Embed actor given threads=1 does, before and after building its model
model = build_model(EmbeddingModelConfig(id=sys.argv[1], params=json.loads(sys.argv[2])))
limit_threads(1)
if hasattr(model, "_session"):  # onnxruntime (basic-pitch; musicnn's default backend)
    configured = model._session.get_session_options().intra_op_num_threads
else:
    configured = model._sess._config.intra_op_parallelism_threads
audio = np.random.default_rng(0).standard_normal(model.sample_rate_hz * 20).astype(np.float32) * 0.1
model.embed(audio)
c0, t0 = time.process_time(), time.perf_counter()
for _ in range(3):
    model.embed(audio)
print(configured, (time.process_time() - c0) / (time.perf_counter() - t0))
"""


@pytest.mark.parametrize(
    ("model_id", "params", "module"),
    [("msd-musicnn", {}, "musicnn"), ("msd-musicnn", {"backend": "tf"}, "musicnn"), ("basic-pitch", {}, "basic_pitch")],
)
def test_limit_threads_caps_tensorflow_and_onnxruntime_pools(model_id: str, params: dict, module: str) -> None:
    """TensorFlow sessions and onnxruntime keep thread pools of their own, one thread per core by default, which
    neither threadpoolctl nor torch reach: two 1-thread embedding actors each ran msd-musicnn at ~1.8 cores and
    basic-pitch at 2.0 on a 2-core machine. Their sessions must take the cap, and a process given one thread
    must not use more than about one core's worth of CPU time while embedding."""
    import importlib.util
    import os
    import subprocess
    import sys

    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (install the `models` extra: EXTRAS=models bash scripts/setup.sh)")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and k != "REPEVAL_MODEL_THREADS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", FRAMEWORK_THREADS_CODE, model_id, json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    configured, cpu_per_wall = out.stdout.split()[-2:]
    assert int(configured) == 1, out.stdout + out.stderr[-2000:]
    assert float(cpu_per_wall) < 1.3, out.stdout + out.stderr[-2000:]
