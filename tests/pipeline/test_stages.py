"""The pipeline's UDFs and planning, without Ray: chunking, seeded deformation, reassembly, resources."""

from __future__ import annotations

import json
import logging
import re
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest
import soundfile as sf

from repeval.config.embed import EmbeddingModelConfig
from repeval.config.run import ResourcesConfig
from repeval.cpu import MODEL_TUNABLES
from repeval.models import build_model
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.embedder import Embed
from repeval.pipeline.resources import plan_resources
from repeval.pipeline.stages import DecodeDeform, table_to_batch
from repeval.pipeline.todo import plan_todo

SR = 8000
NOISE = [("AddGaussianSNR", {"min_snr_db": 5.0, "max_snr_db": 30.0, "p": 1.0})]
GAIN = [("Gain", {"min_gain_db": -12.0, "max_gain_db": 0.0, "p": 1.0})]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    sf.write(d / "short.wav", (0.3 * rng.standard_normal(int(1.5 * SR))).astype(np.float32), SR)
    sf.write(d / "long.wav", (0.3 * rng.standard_normal(int(23.0 * SR))).astype(np.float32), SR)
    (d / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    return d


def _decode_rows(files, names, wanted, chunk_s=5.0, seed=0, steps=None):
    udf = DecodeDeform(SR, steps if steps is not None else {"D1": NOISE, "D2": GAIN}, seed, chunk_s=chunk_s)
    batch = {
        "track_id": np.array(names),
        "audio_path": np.array([str(files / f"{n}.wav") for n in names]),
        "split": np.array(["test"] * len(names)),
        "scenarios": [np.array(w) for w in wanted],
    }
    return table_to_batch(pa.concat_tables(udf(batch)))


def test_decode_deform_chunks_and_seeds(files):
    out = _decode_rows(files, ["short", "long"], [["clean", "D1"], ["clean", "D1", "D2"]])
    short = out["track_id"] == "short"
    assert list(out["scenario"][short]) == ["clean", "D1"] and set(out["n_chunks"][short]) == {1}
    long_ = out["track_id"] == "long"
    # 23 s in 5 s windows: 4 × 5 s + 3 s; three scenarios each
    assert (out["chunk"][long_] == np.repeat(np.arange(5), 3)).all()
    assert list(out["n_chunks"][long_]) == [0] * 12 + [5] * 3
    assert [len(a) for a in out["audio"][long_ & (out["scenario"] == "clean")]] == [40000] * 4 + [24000]
    # parameters sampled once per (track, scenario) and recorded on every chunk; noise differs per chunk
    for sid in ("D1", "D2"):
        params = set(out["deformation_params"][long_ & (out["scenario"] == sid)])
        assert len(params) == 1 and json.loads(params.pop())[0]["type"] in ("AddGaussianSNR", "Gain")
    clean = out["audio"][long_ & (out["scenario"] == "clean")]
    d2 = out["audio"][long_ & (out["scenario"] == "D2")]
    # the same gain on every chunk
    gains = [float(np.dot(d, c) / np.dot(c, c)) for d, c in zip(d2, clean, strict=True)]
    assert gains[0] < 1 and np.allclose(gains, gains[0], rtol=1e-4)
    d1 = out["audio"][long_ & (out["scenario"] == "D1")]
    assert not np.allclose(d1[0][:1000] - clean[0][:1000], d1[1][:1000] - clean[1][:1000])


def test_decode_deform_is_reproducible_and_seed_dependent(files):
    a = _decode_rows(files, ["long", "short"], [["D1"], ["D1"]])
    b = _decode_rows(files, ["short", "long"], [["D1"], ["D1"]])  # other order, same per-track results
    c = _decode_rows(files, ["long", "short"], [["D1"], ["D1"]], seed=1)
    key = lambda o: {(t, int(ch)): x.tobytes() for t, ch, x in zip(o["track_id"], o["chunk"], o["audio"], strict=True)}  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)
    assert dict(zip(a["track_id"], a["deformation_params"], strict=True)) == dict(
        zip(b["track_id"], b["deformation_params"], strict=True)
    )


def test_decode_errors_become_rows(files):
    out = _decode_rows(files, ["bad", "short"], [["clean", "D1"], ["clean"]])
    bad = out["track_id"] == "bad"
    assert list(out["stage"][bad]) == ["decode", "decode"] and all("cannot decode" in e for e in out["error"][bad])
    assert list(out["n_chunks"][bad]) == [1, 1]
    assert list(out["error"][~bad]) == [""]


def test_scenario_indices_as_input(files):
    udf = DecodeDeform(SR, {"D1": NOISE}, 0, chunk_s=None, scenario_ids=["clean", "D1"])
    batch = {
        "track_id": np.array(["short"]),
        "audio_path": np.array([str(files / "short.wav")]),
        "split": np.array(["test"]),
        "scenarios": [np.array([0, 1], np.int16)],
    }
    (out,) = list(udf(batch))
    assert out.column("scenario").to_pylist() == ["clean", "D1"]


def _embed(files, names, wanted, keep_frames=True, chunk_s=5.0):
    cfg = EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR, "chunk_s": chunk_s})
    emb = Embed(cfg, keep_frames=keep_frames, threads=1)
    rows = _decode_rows(files, names, wanted, chunk_s=chunk_s, steps={"D1": NOISE})
    return emb, rows, emb(rows)


def test_embed_and_reassemble_long_track_in_any_order(files):
    emb, rows, out = _embed(files, ["long", "short", "bad"], [["clean"], ["clean", "D1"], ["clean"]])
    assert emb.model_version == "1"
    model = build_model(EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR}))
    clean_chunks = [
        a
        for t, s, a in zip(rows["track_id"], rows["scenario"], rows["audio"], strict=True)
        if t == "long" and s == "clean"
    ]
    expected_frames = np.concatenate([model.embed(a) for a in clean_chunks])

    def assemble(order):
        asm = TrackAssembler(keep_frames=True)
        blocks, errors = [], []
        for i in order:  # one row per batch, in the given order
            b, e = asm.add({k: v[i : i + 1] for k, v in out.items()})
            blocks += [b] if b is not None else []
            errors += list(zip(e.track_id, e.stage, strict=True))
        assert not asm.pending
        return blocks, errors

    n = len(out["track_id"])
    fwd, err_fwd = assemble(range(n))
    rev, err_rev = assemble(reversed(range(n)))
    assert err_fwd == err_rev == [("bad", "decode")]
    get = {}
    for blocks in (fwd, rev):
        for b in blocks:
            for i in range(len(b)):
                get.setdefault((b.track_id[i], b.scenario[i]), []).append(
                    (b.embedding[i].tobytes(), int(b.n_frames[i]), int(b.n_chunks[i]), b.frames[i])
                )
    assert set(get) == {("long", "clean"), ("short", "clean"), ("short", "D1")}
    (e1, nf1, nc1, fr1), (e2, *_rest) = get[("long", "clean")]
    assert e1 == e2  # arrival order does not change a bit
    assert nc1 == 5 and nf1 == len(expected_frames)
    np.testing.assert_array_equal(fr1, expected_frames)
    np.testing.assert_allclose(np.frombuffer(e1, np.float32), expected_frames.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_embed_error_in_one_chunk_fails_the_track(files, monkeypatch):
    emb, rows, _ = _embed(files, ["long"], [["clean"]], keep_frames=False)
    rows["audio"][1] = np.full(100, np.nan, np.float32)
    out = emb(rows)
    asm = TrackAssembler(keep_frames=False)
    block, errors = asm.add(out)
    assert block is None and errors.track_id == ["long"] and errors.stage == ["embed"]


def test_plan_todo_is_vectorised_and_exact():
    rows = pa.table(
        {"track_id": ["a", "b", "c", "d"], "audio_path": ["p"] * 4, "split": ["train", "test", "test", "val"]}
    )
    masks = {"clean": np.array([True, False, True, False]), "D1": np.array([False, True, True, False])}
    todo = plan_todo(rows, masks)
    assert todo.column("track_id").to_pylist() == ["a", "b", "c"]
    assert todo.column("scenarios").to_pylist() == [[0], [1], [0, 1]]
    assert plan_todo(rows, {}).num_rows == 0


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


def test_decode_embed_equals_decode_then_embed(files) -> None:
    """The fused UDF yields what DecodeDeform followed by Embed yields (here in this process), cuts the decoded
    batches at the model's ``batch_size``, and builds the model once per process."""
    from repeval.pipeline import embedder
    from repeval.pipeline.embedder import DecodeEmbed

    names = ["short", "long", "bad"]
    batch = {
        "track_id": np.array(names),
        "audio_path": np.array([str(files / f"{n}.wav") for n in names]),
        "split": np.array(["test"] * len(names)),
        "scenarios": [np.array(["clean", "D1"]) for _ in names],
    }
    mcfg = EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR})  # the model at the stream's rate
    decode = DecodeDeform(SR, {"D1": NOISE}, 3, chunk_s=5.0)
    expected = [Embed(mcfg, threads=1)(t) for t in decode(batch)]
    embedder._PROCESS_EMBEDDERS.clear()
    got = list(DecodeEmbed(decode, mcfg, threads=1, batch_size=3)(batch))
    assert len(embedder._PROCESS_EMBEDDERS) == 1
    built = next(iter(embedder._PROCESS_EMBEDDERS.values()))
    list(DecodeEmbed(decode, mcfg, threads=1)(batch))
    assert list(embedder._PROCESS_EMBEDDERS.values()) == [built]  # the second task reused the built model
    assert embedder.process_embedder(mcfg, threads=1) is built  # what a worker's warm-up builds, the tasks find
    other = EmbeddingModelConfig(id="logmel-stats", params={"sample_rate_hz": SR})
    list(DecodeEmbed(decode, other, threads=1)(batch))
    assert len(embedder._PROCESS_EMBEDDERS) == 1 and built not in embedder._PROCESS_EMBEDDERS.values()  # released
    n = sum(len(b["track_id"]) for b in expected)
    assert n > 3 and all(len(b["track_id"]) <= 3 for b in got) and sum(len(b["track_id"]) for b in got) == n
    for key in ("track_id", "scenario", "chunk", "error", "deformation_params"):
        assert np.concatenate([b[key] for b in got]).tolist() == np.concatenate([b[key] for b in expected]).tolist()
    np.testing.assert_array_equal(
        np.concatenate([b["embedding"] for b in got]), np.concatenate([b["embedding"] for b in expected])
    )


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


def test_streams_decode_at_each_models_declared_rate_and_actors_refuse_another():
    """The stream's rate is the one the model declares (no class sets ``sample_rate_hz`` before it is built: the
    stream fell back to ``run.sample_rate_hz``, feeding 16 kHz models 22.05 kHz audio); an actor whose model runs
    at another rate than its stream's refuses to start."""
    import pytest

    from repeval.models import MODELS
    from repeval.pipeline.partitions import model_rate

    checked = 0
    for name, fam in MODELS.items():
        params = dict(fam.default_params)
        declared = fam.cls.declared_sizes(params)[0]
        if declared is not None:
            assert model_rate(fam, params) == declared, name
            checked += 1
    assert checked >= 15  # every family that declares its rate without weights (the HF ones need their config)
    assert model_rate(MODELS.get("msd-musicnn"), {}) == 16000 and model_rate(MODELS.get("openl3"), {}) == 48000
    assert model_rate(MODELS.get("mfcc-stats"), {"sample_rate_hz": 8000}) == 8000
    with pytest.raises(ValueError, match="runs at 22050 Hz but its stream decodes at 16000 Hz"):
        Embed(EmbeddingModelConfig(id="mfcc-stats"), threads=1, sample_rate_hz=16000)
    assert Embed(EmbeddingModelConfig(id="mfcc-stats"), threads=1, sample_rate_hz=22050).model.sample_rate_hz == 22050


def test_a_scenario_is_checked_at_each_models_rate_before_the_store_is_touched(tmp_path):
    """A low-pass at 9–10 kHz validates at 44.1 kHz; a 16 kHz model's stream deformed every test track with it — a
    filter above the Nyquist frequency, which did nothing. The run now fails while planning, naming the scenario,
    the step, the model and the rate, before any partition of the store is stamped."""
    from repeval.config import parse_config
    from repeval.pipeline.embed import embed_experiments
    from repeval.store import EmbeddingStore

    (tmp_path / "m.csv").write_text("track_id,audio_path,instrument,split\na,a.wav,x,test\n")
    lowpass = {"type": "LowPassFilter", "params": {"min_cutoff_freq": 9000, "max_cutoff_freq": 10000}}
    exp = {
        "task": {"name": "instrument_classification", "type": "multiclass_classification"},
        "datasets": [{"name": "notes", "type": "catalog", "manifest": str(tmp_path / "m.csv"), "label_column": "x"}],
        "deformations": [[{"type": "Gain", "params": {}}], {"name": "lp", "steps": [lowpass]}],
        "embedding_models": [{"id": "mfcc-stats", "params": {"sample_rate_hz": 16000}}],
        "downstream_models": [{"type": "classifier", "hidden_units": []}],
    }
    cfg = parse_config({"experiments": [exp]})
    rows = pa.table({"track_id": ["a"], "audio_path": [str(tmp_path / "a.wav")], "split": ["test"]})
    store = EmbeddingStore(str(tmp_path / "store"))
    with pytest.raises(
        ValueError,
        match=r"^deformation scenario 'lp', step 1: LowPassFilter.*max_cutoff_freq is 10000 Hz, at or above the "
        r"Nyquist frequency \(8000 Hz\) .*\(embedding model mfcc-stats hears audio at 16000 Hz\)$",
    ):
        embed_experiments(cfg, [(cfg.experiments[0], {"notes": rows}, None)], store)
    assert not list((tmp_path / "store").rglob("_stamp.json"))


def test_the_summary_line_says_what_it_counts_and_when_there_was_nothing_to_embed():
    """The stage's summary said "embedded 480 tracks" for 120 tracks embedded by 2 models in 2 scenarios (tracks ×
    models), and "embedded 0 tracks → 0 rows … 0.0 rows/s" when the store held everything. It now counts rows, says
    what its track count is, and says plainly when there was nothing to do. Its scenarios follow the configuration's
    order (clean first, as tables and the report have them), not their names' ("[D1 240, clean 240]"), nor the order
    their rows came in; so do the partitions its other lines list."""
    from collections import Counter

    from repeval.pipeline.summary import EmbedSummary

    two = EmbedSummary(tracks=240, computed=480, streams=2, wall_s=10.0, rows_by_scenario=Counter(D1=240, clean=240))
    line = two.line()
    assert line.startswith("embedded 480 rows [clean 240, D1 240] from 240 tracks×models (2 models), 0 rows already "
                           "in store, 0 errors, in 10.0s"), line  # fmt: skip
    assert "48.0 rows/s" in line
    order = dict.fromkeys(f"d/{m}/{s}" for m in ("m2", "m1") for s in ("clean", "noise_10db", "mp3_32kbps"))
    three = EmbedSummary(tracks=80, computed=640, wall_s=1.0, partition_order=order, store_uri="s",
                         rows_by_scenario=Counter(mp3_32kbps=80, clean=480, noise_10db=80))  # fmt: skip
    assert three.line().startswith("embedded 640 rows [clean 480, noise_10db 80, mp3_32kbps 80] from 80 tracks")
    three.cut_reused.update({"d/m1/clean": 1, "d/m2/mp3_32kbps": 2, "d/m2/clean": 3})
    assert "reuses — d/m2/clean: 3; d/m2/mp3_32kbps: 2; d/m1/clean: 1. " in (three.cut_reused_warning() or "")
    three.add_failures("d/m1/noise_10db", ["a"], ["decode"], ["bad"])
    three.add_failures("d/m2/mp3_32kbps", ["b"], ["decode"], ["bad"])
    three.earlier_errors.update({"x/m/clean": 1, "d/m1/clean": 1})  # one not planned (in no test): after, by name
    shown = [line.split()[-2] for line in three.failure_lines() if line.startswith("  repeval store show")]
    assert shown == ["d/m2/mp3_32kbps", "d/m1/noise_10db", "d/m1/clean", "x/m/clean"], three.failure_lines()
    one = EmbedSummary(tracks=120, computed=120, streams=1, skipped=3, wall_s=1.0)
    assert one.line().startswith("embedded 120 rows from 120 tracks, 3 rows already in store"), one.line()
    idle = EmbedSummary(skipped=96, partitions_already_complete={"d/m/clean", "d/m/D1"})
    assert idle.line() == "nothing to embed: 2 partitions already complete (96 rows already in store)"
    # one of each, said in the singular ("embedded 1 rows from 1 tracks"); counts said in the plural otherwise
    single = EmbedSummary(tracks=1, computed=1, skipped=1, errors=1, retried=1, streams=1, wall_s=1.0)
    assert single.line().startswith(
        "embedded 1 row from 1 track, 1 row already in store, 1 error (retried 1 earlier error record), in 1.0s"
    ), single.line()
    assert EmbedSummary(skipped=1, partitions_already_complete={"d/m/clean"}).line() == (
        "nothing to embed: 1 partition already complete (1 row already in store)"
    )
    single.earlier_errors.update({"d/m/clean": 1})
    assert single.failure_lines()[0] == (  # --retry-model, which retries that model's records alone, was not named
        "1 error record of earlier runs kept for this run's tracks, in 1 partition (not computed again, not evaluated; "
        "`--retry-errors` computes them again, or `--retry-model m` those of that model alone):"
    )
    assert "or `--retry-model m`, `--retry-model m1` those of one model alone):" in three.failure_lines()[-3]
    idle.partitions_completed.append("/s/d/m2/clean")  # held every track, not yet marked complete
    assert idle.line().endswith("; 1 marked complete") and "rows/s" not in idle.line()


def test_the_summary_line_gives_its_figures_a_size_at_any_scale():
    """A run of a few short clips printed "0 s of audio per second" (and "0.0 rows/s", "0.0s start-up"): its figures,
    rounded to fixed decimals, said nothing. Below 1 they now keep two significant digits; above, as before."""
    from repeval.pipeline.summary import EmbedSummary

    tiny = EmbedSummary(tracks=1, computed=1, audio_seconds=0.25, wall_s=40.0, startup_s=0.04)
    assert tiny.line().endswith(
        "in 40.0s (0.04s start-up) — 0.025 rows/s, 0.0063 s of audio per second after start-up"
    ), tiny.line()
    big = EmbedSummary(tracks=9, computed=900, audio_seconds=27_000.0, wall_s=12.5, startup_s=3.0)
    assert big.line().endswith("in 12.5s (3.0s start-up) — 94.7 rows/s, 2842 s of audio per second after start-up")


def test_a_model_that_cannot_run_is_said_at_the_first_batch_and_named_by_the_driver(files, tmp_path):
    """An embedding actor whose model cannot run where it starts (a node that joined after the run checked the
    models) raised as it started: the actor died in Ray Data's pool, and the job's log got Ray's tracebacks and no
    repeval error. The actor now starts and says it at its first batch, which reaches the driver as Ray's error
    with the worker's traceback as text; the driver makes repeval's error of it, with the fix for a cluster."""
    from repeval.models import ModelUnavailable
    from repeval.pipeline.embedder import this_node
    from repeval.pipeline.preflight import unavailable_in_stream

    missing = tmp_path / "nowhere.pt"
    cfg = EmbeddingModelConfig(id="clmr-x", type="clmr-v2", params={"checkpoint": str(missing)})
    emb = Embed(cfg, threads=1)  # without Ray "here"; with Ray (the suite's) "on node <address>"
    rows = _decode_rows(files, ["short"], [["clean"]])
    said_where = re.escape(f"'clmr-x' cannot run {this_node()}: weights file {missing} not found")
    with pytest.raises(ModelUnavailable, match=said_where) as e:
        emb(rows)
    said = str(e.value)
    carried = RuntimeError(  # what a RayTaskError(UserCodeException) says: the worker's traceback
        'ray::MapWorker(MapBatches(Embed)).submit() (pid=1, ip=10.0.1.7)\n  File "embedder.py", line 1, in '
        f"__call__\n    raise self.unavailable\nrepeval.models.base.ModelUnavailable: {said}\n\nThe above exception "
        "was the direct cause of the following exception:\n\nray.exceptions.UserCodeException: UDF failed"
    )
    for exc in (carried, e.value):
        found = unavailable_in_stream(exc)
        assert isinstance(found, ModelUnavailable) and str(found).startswith(said + " — "), found
        assert "a node that joins later" in str(found) and "docs/cluster.md" in str(found)
    assert unavailable_in_stream(RuntimeError("UDF failed: ValueError: something else")) is None


def test_a_cuda_device_torch_cannot_use_is_a_model_that_cannot_run_there(files, tmp_path):
    """``params.device: cuda`` where torch sees no GPU (this machine's CPU build of torch): torch's "Torch not compiled
    with CUDA enabled" killed the embedding actor as it started, Ray's tracebacks in the job's log. Now the run's
    model check on each node and the actor both say it as a model that cannot run there, naming the fix."""
    import torch

    from repeval.models import ModelUnavailable
    from repeval.models.dummies import dummy_params
    from repeval.pipeline.embedder import this_node
    from repeval.pipeline.preflight import unavailable_here

    params = {**dummy_params("clmr-v2", tmp_path), "device": "cuda"}
    cfg = EmbeddingModelConfig(id="clmr-gpu", type="clmr-v2", params=params)
    if torch.cuda.is_available():  # torch here has a GPU: the model is built on it
        assert unavailable_here([cfg]) == {} and str(build_model(cfg).device) == "cuda"
        return
    why = f"torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None else "sees no CUDA device"
    fix = "set params.device: auto (the GPU where torch sees one, else the CPU), or install a CUDA build of torch"
    said = unavailable_here([cfg]).get("clmr-gpu", "")  # the run's check on each node, before anything is embedded
    assert why in said and said.startswith("params.device is 'cuda', but torch") and fix in said, said
    emb = Embed(cfg, threads=1)  # an actor on a node that joined later: said at its first batch
    with pytest.raises(ModelUnavailable, match=re.escape(f"'clmr-gpu' cannot run {this_node()}: params.device")) as e:
        emb(_decode_rows(files, ["short"], [["clean"]]))
    assert why in str(e.value) and fix in str(e.value), e.value
    auto = EmbeddingModelConfig(id="clmr-auto", type="clmr-v2", params={**params, "device": "auto"})
    assert unavailable_here([auto]) == {} and str(build_model(auto).device) == "cpu"


def test_ray_datas_failure_lines_are_held_back_and_said_unless_repeval_says_the_error():
    """Ray Data announces a failing UDF in two ERROR lines ("… with the abbreviated stack trace below" — for a model
    that cannot run on a node, repeval's own one-line error followed, no trace): held while the stream runs, said
    when the failure is another, dropped when repeval says it. Other lines pass."""
    import logging

    from repeval.pipeline.stream import HeldFailureLines

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    loggers = [logging.getLogger(name) for name in HeldFailureLines.LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        for drop in (False, True):
            seen.clear()
            held = HeldFailureLines()
            loggers[0].error('An exception was raised from a task of operator "MapBatches(Embed)". Dataset …')
            loggers[1].error("Exception occurred in user code, with the abbreviated stack trace below. …")
            loggers[1].error("Exception occurred in Ray Data or Ray Core internal code. …")
            assert seen == ["Exception occurred in Ray Data or Ray Core internal code. …"]
            held.release(drop=drop)
            held.release()  # the stream's `finally`: nothing more
            assert len(seen) == (1 if drop else 3), seen
            loggers[0].error("An exception was raised from a task of operator after the stream")
            assert seen[-1] == "An exception was raised from a task of operator after the stream"
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def test_tracks_in_flight_when_the_stream_stops_are_said_one_or_several(files, caplog):
    """A stream that stops with a track's chunks half arrived drops it, logged: "1 track in flight …: they are
    recomputed" read wrong for one."""
    _, _, out = _embed(files, ["long"], [["clean", "D1"]], keep_frames=False)
    first = np.flatnonzero(np.asarray(out["chunk"]) == 0)  # the first of each scenario's 5 chunks
    caplog.set_level(logging.INFO, logger="repeval.pipeline.assemble")
    for n, said in (
        (1, "1 track in flight when the stream stopped: it is"),
        (2, "2 tracks in flight when the stream stopped: they are"),
    ):
        asm = TrackAssembler(keep_frames=False)
        asm.add({k: v[first[:n]] for k, v in out.items()})
        caplog.clear()
        assert asm.abandon() == n
        assert caplog.messages == [f"{said} recomputed on the next run"]
