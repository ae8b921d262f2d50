"""The engine on a real embedded Ray: chunked long files, frames, all-split deformation, provenance,
bit-identical reruns (also across the model's placement: decode tasks or actor pool), separate
(unfused) stages for actor-pool models and one stage for models in the decode tasks, resume after a
failure injected in a UDF, the decode stage's task cap in a live stream (and at a one-block stream's size),
isolated process groups. (GPU requests on a node that declares a GPU: tests/cluster/test_fake_gpu.py.)"""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import ray.cloudpickle
import soundfile as sf
import yaml
from ray.data._internal.execution.streaming_executor import StreamingExecutor

import repeval.pipeline.stream as stream_mod
from repeval import runner
from repeval.audio import decode
from repeval.config import load_config
from repeval.config.embed import EmbeddingModelConfig
from repeval.models import build_model
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.resources import stream_resources
from repeval.pipeline.stages import DecodeDeform
from repeval.testing.configs import notes_dataset, notes_manifest

# UDFs defined here must reach the Ray workers by value (the tests folder is not importable there)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

LONG_S = 34.0
CHUNK_S = 10.0


def _manifest(rendered_notes: Path, root: Path, n: int, long_file: bool, split: str | None = None) -> Path:
    """The first ``n`` rendered notes (of ``split`` only, when given), plus a long file when asked."""
    rows = [r for r in csv.DictReader(rendered_notes.open()) if split is None or r["split"] == split][:n]
    if long_file:
        sr = 22050
        t = np.arange(int(LONG_S * sr)) / sr
        sf.write(root / "long.wav", (0.3 * np.sin(2 * np.pi * 220 * t * (1 + t / 50))).astype(np.float32), sr)
    extra = [("long", root / "long.wav", "train")] if long_file else []
    return notes_manifest(rendered_notes, root / "manifest.csv", rows, extra)


def _config(root: Path, manifest: Path, store: str, batch_size: int = 16, **run) -> Path:
    cfg = {
        "run": {"run_id": "t", "store": store, "runs_dir": str(root / "runs"), "part_rows": 4, **run},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(manifest)],
                "deformations": [[{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 30, "p": 1}}]],
                "embedding_models": [{"id": "mfcc-stats", "params": {"chunk_s": CHUNK_S}, "batch_size": batch_size}],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    path = root / f"config-{abs(hash(store))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _embed(config: Path):
    return runner.stage_embed(runner.make_context(load_config(config)), progress=False)


@pytest.fixture(scope="module")
def two_runs(ray_session, rendered_notes, tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    manifest = _manifest(rendered_notes, root, 10, long_file=True)
    kw = {"keep_frames": True, "deform_splits": ["train", "validation", "test"]}
    a = _embed(_config(root, manifest, str(root / "store-a"), **kw))  # mfcc-stats is light: in the decode tasks
    b = _embed(_config(root, manifest, f"file://{root}/store-b", resources={"embed_in_decode": "never"}, **kw))
    return root, a, b


def test_all_splits_deformed_frames_and_long_file(two_runs):
    root, summary, _ = two_runs
    assert summary.errors == 0 and summary.tracks == 11 and summary.computed == 22
    assert summary.rows_by_scenario == {"clean": 11, "D1": 11}
    clean = pq.read_table(root / "store-a" / "notes" / "mfcc-stats" / "clean").to_pandas().set_index("track_id")
    d1 = pq.read_table(root / "store-a" / "notes" / "mfcc-stats" / "D1").to_pandas().set_index("track_id")
    assert set(d1["split"]) == set(clean["split"]) and len(set(d1["split"])) > 1  # every split deformed
    params = json.loads(d1.loc["long", "deformation_params"])
    assert params[0]["type"] == "AddGaussianSNR" and params[0]["should_apply"] and params[0]["noise_std"] > 0
    assert clean["deformation_params"].isna().all()
    # the long file was embedded in three windows of about 10 s, each with the audio its frames need across the
    # window's edges: its frames are those of the whole track (window by window alone, 62 of its 65 frames came)
    model = build_model(EmbeddingModelConfig(id="mfcc-stats"))
    expected = model.embed(decode(str(root / "long.wav"), model.sample_rate_hz))
    row = clean.loc["long"]
    assert row["n_chunks"] == 3 and row["n_frames"] == len(expected)
    # (not bit-equal: the actor runs single-threaded BLAS, this process multi-threaded)
    np.testing.assert_allclose(np.stack(row["frames"]), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(row["embedding"], expected.mean(axis=0), rtol=1e-5, atol=1e-5)
    assert abs(row["audio_seconds"] - LONG_S) < 0.01
    assert (clean.drop(index="long")["n_chunks"] == 1).all()


def test_provenance_in_manifest_and_rows(two_runs):
    root, _, _ = two_runs
    from repeval.store import EmbeddingStore

    part = EmbeddingStore(str(root / "store-a")).partition("notes", "mfcc-stats", "D1")
    m = part.manifest()
    assert m["rows"] == 11 and m["errors"] == 0 and m["model_version"] == "1" and m["chunk_s"] == CHUNK_S
    assert m["fingerprint"]["model"]["family"] == "mfcc-stats" and m["keep_frames"] is True
    t = part.read(["config_hash", "model_version", "repeval_version", "model", "scenario"]).to_pylist()
    assert {r["config_hash"] for r in t} == {m["config_hash"]}
    assert {(r["model"], r["scenario"], r["model_version"]) for r in t} == {("mfcc-stats", "D1", "1")}


def test_reruns_are_bit_identical(two_runs):
    """A rerun — here also with the model moved from the decode tasks to an actor pool — writes the same bits."""
    root, _, _ = two_runs
    for sid in ("clean", "D1"):
        a = pq.read_table(root / "store-a" / "notes" / "mfcc-stats" / sid).sort_by("track_id")
        b = pq.read_table(root / "store-b" / "notes" / "mfcc-stats" / sid).sort_by("track_id")
        for col in ("track_id", "embedding", "frames", "n_frames", "deformation_params", "config_hash"):
            assert a.column(col).equals(b.column(col)), (sid, col)


def test_decode_and_embed_are_separate_stages(two_runs):
    _, fused, pool = two_runs
    # the to-do rows are read inside the decode tasks (one task per block); decode and embed stay apart
    assert pool.operators == ["ReadTodo->MapBatches(DecodeDeform)", "MapBatches(Embed)"]
    assert "2 embedding actors" in pool.resources["mfcc-stats"] and pool.model_processes["mfcc-stats"] == 2
    # a light model under embed_in_decode: auto runs inside the decode tasks: one stage, no actor pool, one task
    # per CPU (the session's Ray has 2)
    assert fused.operators == ["ReadTodo->MapBatches(DecodeEmbed)"]
    assert "inside the decode tasks" in fused.resources["mfcc-stats"] and fused.model_processes["mfcc-stats"] == 2
    # the streams ran with their resource limits re-read promptly at the start (repeval.ray_utils)
    from ray.data._internal.execution.resource_manager import ResourceManager

    assert getattr(ResourceManager.get_global_limits, "_repeval_prompt", False)


class FailingDecode(DecodeDeform):
    """Raises on the batch holding ``victim`` once some rows are in ``store_dir`` (a mid-stream crash)."""

    victim = "victim"
    store_dir = ""

    def __call__(self, batch):
        if self.victim in set(map(str, batch["track_id"])):
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not any(
                f.startswith("part-") for _, _, fs in os.walk(self.store_dir) for f in fs
            ):
                time.sleep(0.2)
            raise RuntimeError("injected failure")
        yield from super().__call__(batch)


def test_resume_after_failure_injected_in_a_udf(ray_session, rendered_notes, tmp_path, monkeypatch):
    manifest = _manifest(rendered_notes, tmp_path, 24, long_file=False)
    ids = [r["track_id"] for r in csv.DictReader(manifest.open())]
    # small embedding batches: finished rows reach the driver while the failing task waits
    config = _config(tmp_path, manifest, str(tmp_path / "store"), batch_size=2, part_rows=2)
    part_dir = tmp_path / "store" / "notes" / "mfcc-stats" / "clean"
    cls = type("Failing", (FailingDecode,), {"victim": ids[-1], "store_dir": str(part_dir)})
    monkeypatch.setattr(stream_mod, "DecodeDeform", cls)
    with pytest.raises(Exception, match="injected failure") as failed:
        _embed(config)
    # the error is still referenced (as in a notebook): the failed stream's actors must not keep their CPUs,
    # or the rerun below waits for them forever
    deadline = time.monotonic() + 60
    while ray_session.available_resources().get("CPU", 0) < ray_session.cluster_resources()["CPU"]:
        assert time.monotonic() < deadline, f"CPUs still held after the failure: {ray_session.available_resources()}"
        time.sleep(0.2)
    assert failed.value is not None
    first = pq.read_table(part_dir).column("track_id").to_pylist()
    assert 0 < len(first) < len(ids) and not (part_dir / "_manifest.json").exists()

    monkeypatch.setattr(stream_mod, "DecodeDeform", DecodeDeform)
    n_test = sum(1 for r in csv.DictReader(manifest.open()) if r["split"] == "test")
    d1_first = pq.read_table(part_dir.parent / "D1").num_rows if (part_dir.parent / "D1").exists() else 0
    again = _embed(config)
    assert again.skipped == len(first) + d1_first
    assert again.computed == len(ids) - len(first) + n_test - d1_first  # only what was missing
    final = pq.read_table(part_dir).column("track_id").to_pylist()
    assert sorted(final) == sorted(ids)  # exactly one row per track
    d1 = pq.read_table(part_dir.parent / "D1").column("track_id").to_pylist()
    assert len(d1) == len(set(d1)) == n_test
    assert (part_dir / "_manifest.json").exists()


class InterruptedAssembler(TrackAssembler):
    """Ctrl-C lands while the driver handles the stream's first batch."""

    def add(self, batch):
        raise KeyboardInterrupt


def test_ctrl_c_waits_for_the_streams_scheduling_thread(ray_session, rendered_notes, tmp_path, monkeypatch):
    """Ray Data waits 2 s for the stream's scheduling thread when the loop breaks off; a scheduling step that
    outlasted that (CI, 2 cores, Ctrl-C reaching the workers too) left the thread running into the exit's
    ``ray.shutdown``, and it printed a traceback after "interrupted". Here the step in flight lasts 3 s."""
    step = StreamingExecutor._scheduling_loop_step

    def slow_step(self, topology):
        more = step(self, topology)
        if self._shutdown:
            time.sleep(3)
        return more

    monkeypatch.setattr(StreamingExecutor, "_scheduling_loop_step", slow_step)
    monkeypatch.setattr(stream_mod, "TrackAssembler", InterruptedAssembler)
    manifest = _manifest(rendered_notes, tmp_path, 8, long_file=False)
    with pytest.raises(KeyboardInterrupt):
        _embed(_config(tmp_path, manifest, str(tmp_path / "store"), batch_size=2, part_rows=2))
    running = [t.name for t in threading.enumerate() if isinstance(t, StreamingExecutor) and t.is_alive()]
    assert running == []


class TimedDecode(DecodeDeform):
    """Holds each decode task 0.4 s longer and records when it ran, so concurrent tasks overlap visibly."""

    trace_dir = ""

    def __call__(self, batch):
        t0 = time.time()
        yield from super().__call__(batch)
        time.sleep(0.4)
        Path(self.trace_dir, f"{os.getpid()}-{t0:.6f}.json").write_text(json.dumps([t0, time.time()]))


def _most_at_once(trace_dir: Path) -> tuple[int, int]:
    """(the most decode tasks that ran at the same time, how many ran)."""
    spans = [json.loads(f.read_text()) for f in trace_dir.glob("*.json")]
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most, len(spans)


def test_a_model_with_weights_inside_the_decode_tasks(ray_session, rendered_notes, tmp_path):
    """``embed_in_decode: always`` runs a torch model (CLMR's architecture, random weights) inside the decode
    tasks, one stage, and writes the embeddings its actor pool writes (to float rounding)."""
    from repeval.models.dummies import dummy_params

    manifest = _manifest(rendered_notes, tmp_path, 8, long_file=False)
    clmr = {"id": "clmr-v2", "params": dummy_params("clmr-v2", tmp_path / "w"), "batch_size": 4}
    out = {}
    for placement in ("always", "never"):
        # the actor pool of one actor: each actor builds the model, and 8 tracks need no more
        pool = {"embed_actors": 1} if placement == "never" else {}
        path = _config(
            tmp_path, manifest, str(tmp_path / f"store-{placement}"), resources={"embed_in_decode": placement, **pool}
        )
        cfg = yaml.safe_load(path.read_text())
        cfg["experiments"][0]["embedding_models"] = [clmr]
        path.write_text(yaml.safe_dump(cfg))
        summary = _embed(path)
        assert summary.errors == 0 and summary.computed == 8 + 2, (placement, summary.line())
        out[placement] = (summary, pq.read_table(tmp_path / f"store-{placement}" / "notes" / "clmr-v2" / "clean"))
    fused, pool = out["always"][0], out["never"][0]
    assert fused.operators == ["ReadTodo->MapBatches(DecodeEmbed)"]
    assert pool.operators == ["ReadTodo->MapBatches(DecodeDeform)", "MapBatches(Embed)"]
    a, b = (out[k][1].sort_by("track_id") for k in ("always", "never"))
    assert a.column("track_id").equals(b.column("track_id")) and a.num_rows == 8
    # not bit-equal: the embedding calls' batches are composed differently (a decode task's own rows vs Ray
    # Data's batches across blocks), and a torch model's rounding depends on its batch size (measured: 1.5e-8
    # absolute on values of about 0.04)
    ea, eb = (np.stack(t.column("embedding").to_numpy(zero_copy_only=False)) for t in (a, b))
    assert np.abs(ea).max() > 1e-3
    np.testing.assert_allclose(ea, eb, rtol=1e-5, atol=1e-6)


def test_decode_tasks_capped_in_a_live_stream(ray_session, rendered_notes, tmp_path, monkeypatch):
    """On one node the decode stage runs one task per CPU the actor pool leaves free (here one actor of 1 CPU on
    2 CPUs: one task; Ray alone would run four 0.25-CPU tasks in that CPU), and ``decode_max_tasks`` sets it."""
    from repeval.config.run import ResourcesConfig
    from repeval.models import resolve_model
    from repeval.pipeline.resources import plan_resources

    assert ray_session.cluster_resources()["CPU"] == 2
    fam, _ = resolve_model(EmbeddingModelConfig(id="mfcc-stats"))
    res = plan_resources(fam.cls, ResourcesConfig(embed_actors=1), 2, 0, ray_session.cluster_resources())
    assert (res.n_actors, res.decode_tasks) == (1, 1)
    manifest = _manifest(rendered_notes, tmp_path, 24, long_file=False)
    seen = {}
    for name, extra in (("default", {}), ("three", {"decode_max_tasks": 3})):
        trace = tmp_path / f"trace-{name}"
        trace.mkdir()
        monkeypatch.setattr(stream_mod, "DecodeDeform", type("Timed", (TimedDecode,), {"trace_dir": str(trace)}))
        config = _config(tmp_path, manifest, str(tmp_path / f"store-{name}"), resources={"embed_actors": 1, **extra})
        summary = _embed(config)
        assert summary.errors == 0 and summary.computed > 0
        seen[name] = _most_at_once(trace)
    (most, n), (most3, n3) = seen["default"], seen["three"]
    assert n >= 4 and n3 >= 4, seen  # enough tasks that Ray could have run several at once
    assert most == 1, seen
    assert 2 <= most3 <= 3, seen  # the observation does see concurrent tasks where the cap allows them


def test_a_one_block_stream_runs_its_decode_pool_without_ray_datas_concurrency_warning(
    ray_session, rendered_notes, tmp_path
):
    """A stream of fewer blocks than decode slots (here one train track: one row, one block; mfcc-stats in the decode
    tasks, two at once on 2 CPUs) gets a pool of that many tasks, so Ray Data does not warn that the operator "can
    launch at most 1 task(s), which is less than the concurrency limit" (what a one-file ``--retry-errors`` printed)."""
    import warnings

    manifest = _manifest(rendered_notes, tmp_path, 1, long_file=False, split="train")
    config = _config(tmp_path, manifest, str(tmp_path / "store"))
    cfg = load_config(config)
    res = stream_resources(cfg.experiments[0].embedding_models[0], cfg.run.resources)
    assert res.fused and res.decode_tasks == 2  # what a one-block stream used to ask Ray Data for
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        summary = _embed(config)
    assert (summary.computed, summary.errors) == (1, 0)
    assert not [str(w.message) for w in seen if "concurrent tasks" in str(w.message)]


def _refaults() -> int:
    """Page faults of a 40 MiB block written a second time, allocated from a new thread (a model framework's
    intra-op thread): glibc maps such a block afresh by default; with the isolated groups' tunables it is kept."""
    import ctypes
    import resource
    import threading

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    out: list[int] = []

    def run() -> None:
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = libc.malloc(40 * 2**20)
            ctypes.memset(block, 1, 40 * 2**20)
            libc.free(block)
            out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out[-1]


class Probe:
    def __call__(self, batch):
        n = len(batch["id"])
        return {
            "id": batch["id"],
            "pid": np.full(n, os.getpid()),
            "group": np.array([os.environ.get("REPEVAL_PROCESS_GROUP", "")] * n),
            "legacy": np.array([os.environ.get("TF_USE_LEGACY_KERAS", "")] * n),
            "refaults": np.full(n, _refaults()),
        }


def _probe(kwargs: dict, tasks: bool = False) -> list[dict]:
    import pyarrow as pa
    import ray.data

    ds = ray.data.from_arrow([pa.table({"id": list(range(i, i + 4))}) for i in range(0, 16, 4)])
    if tasks:
        return ds.map_batches(Probe(), batch_size=4, num_cpus=kwargs["num_cpus"]).take_all()
    return ds.map_batches(Probe, **kwargs).take_all()


def test_process_groups_get_their_own_worker_processes(ray_session):
    from repeval.config.run import ResourcesConfig
    from repeval.pipeline.resources import plan_resources

    class Default:
        process_group = "default"

    class TF:
        process_group = "tf"

    d = _probe(plan_resources(Default, ResourcesConfig(), 2, 0).actor_kwargs(4))
    t = _probe(plan_resources(TF, ResourcesConfig(), 2, 0).actor_kwargs(4))
    after = _probe({"num_cpus": 0.25}, tasks=True)
    d_pids, t_pids, a_pids = ({r["pid"] for r in rows} for rows in (d, t, after))
    assert {r["group"] for r in t} == {"tf"} and {r["legacy"] for r in t} == {"1"}
    assert {r["group"] for r in d} == {""} and {r["legacy"] for r in d} == {""}
    # the isolated group's processes started with glibc keeping freed blocks (repeval.cpu.model_process_env), and
    # so did Ray's shared workers (the embedded Ray's environment, repeval.cpu.ray_process_env; glibc's default
    # faults every page again: tests/foundation/test_allocator.py): a 40 MiB block (10,240 pages) written again
    # faults no page in either
    assert max(r["refaults"] for r in t + d) < 100, (t, d)
    assert not (t_pids & d_pids) and not (t_pids & a_pids)
    assert os.getpid() not in t_pids


def test_a_complete_one_window_partition_stamped_before_whole_track_deformation_is_restamped_once(
    ray_session, rendered_notes, tmp_path
):
    """A complete partition of a track-level scenario (AddGaussianSNR) stamped before ``deformed: whole track`` joined
    the fingerprint, its rows all one window: the next run accepts it (nothing recomputed) and writes the new
    fingerprint into its stamp and manifest, so later runs need not read every row's ``n_chunks`` again."""
    from repeval.store import EmbeddingStore

    manifest = _manifest(rendered_notes, tmp_path, 3, long_file=False)
    config = _config(tmp_path, manifest, str(tmp_path / "store"), deform_splits=["train", "validation", "test"])
    assert _embed(config).rows_by_scenario == {"clean": 3, "D1": 3}
    part = EmbeddingStore(str(tmp_path / "store")).partition("notes", "mfcc-stats", "D1")
    now = part.manifest()["fingerprint"]
    assert now["deformed"] == "whole track"
    for name in ("_stamp.json", "_manifest.json"):  # as a run before the whole-track path stamped it
        path = Path(part.path) / name
        body = json.loads(path.read_text())
        body["fingerprint"] = {k: v for k, v in now.items() if k != "deformed"}
        path.write_text(json.dumps(body))
    rows = part.read(["track_id", "embedding"])
    again = _embed(config)
    assert again.computed == 0 and again.skipped == 6
    for name in ("_stamp.json", "_manifest.json"):
        assert json.loads((Path(part.path) / name).read_text())["fingerprint"] == now, name
    assert part.manifest()["rows"] == 3 and part.read(["track_id", "embedding"]).equals(rows)


def test_a_chunk_s_raised_to_the_same_windows_shares_the_partition_and_one_of_other_windows_does_not(
    ray_session, rendered_notes, tmp_path
):
    """mfcc-stats at 16 kHz cuts long tracks into windows of at least 2.56 s (its frame grid; twice what a frame
    reads): ``chunk_s: 1`` is raised to them, so a run with ``chunk_s: 2.56`` computes the same rows and reuses the
    partition (both fingerprints record the window used; they recorded the chunk_s asked, and the second run was
    refused), also one stamped that way before; ``chunk_s: 3`` cuts other windows and is refused, naming them."""
    from repeval.config.loader import config_hash
    from repeval.models import resolve_model
    from repeval.store import EmbeddingStore, StoreConflict

    manifest = _manifest(rendered_notes, tmp_path, 2, long_file=True)
    base = yaml.safe_load(_config(tmp_path, manifest, str(tmp_path / "store")).read_text())

    def config(chunk_s: float) -> Path:
        params = {"sample_rate_hz": 16000, "chunk_s": chunk_s}
        base["experiments"][0]["embedding_models"][0]["params"] = params
        path = tmp_path / f"chunk-{chunk_s}.yaml"
        path.write_text(yaml.safe_dump(base))
        return path

    first = _embed(config(1))
    assert first.computed == 3 and first.rows_by_scenario["clean"] == 3
    part = EmbeddingStore(str(tmp_path / "store")).partition("notes", "mfcc-stats", "clean")
    stamped = part.manifest()
    assert (
        stamped["fingerprint"]["chunk_s"] == stamped["chunk_s"] == 2.56
        and max(part.read(["n_chunks"])["n_chunks"].to_pylist()) == 13
    )
    again = _embed(config(2.56))
    assert again.computed == 0 and again.skipped == 3
    with pytest.raises(StoreConflict, match=r"chunk_s: stored 2\.56, now 3\.0"):
        _embed(config(3))
    # stamped as repeval did before: the params' hash with chunk_s 1 in it, chunk_s 1.0
    old = dict(resolve_model(EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": 16000, "chunk_s": 1}))[1])
    for name in ("_stamp.json", "_manifest.json"):
        path = Path(part.path) / name
        body = json.loads(path.read_text())
        fp = body["fingerprint"]
        body["fingerprint"] = {**fp, "model": {**fp["model"], "params": config_hash(old)}, "chunk_s": 1.0}
        body["described"]["model.params"]["chunk_s"] = 1
        path.write_text(json.dumps(body))
    before = part.manifest()
    again = _embed(config(2.56))
    assert again.computed == 0 and again.skipped == 3 and part.manifest() == before
