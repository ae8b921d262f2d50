"""Embedding engine benchmarks; every figure is a ratio measured in this one run.

1. Throughput: the repeval pipeline (Ray Data: decode tasks → embedding actor pool → store) vs a
   single-process sequential loop that decodes, deforms and embeds one file at a time (the way
   mir_ref works), on the same rendered clips with the same model and the same deformation of the
   test split. Ray runs its workers at niceness 15; the baselines run at the same niceness (on a
   machine shared with other work a nice-0 baseline would otherwise win by priority alone). Also the pipeline's wall time vs the model's own compute time on pre-decoded
   batches, run with the same parallelism as the actor pool (what the pipeline would take if
   decoding, transfers and writing cost nothing). Targets: ≥ 1.7× and ≤ 1.15×. ``--track-s 180`` runs it on
   full-length stereo MP3 tracks instead (``--clips`` of them), as a catalog's files are. Both clocks start
   when their side is ready: the loop's process has started, imported the audio stack and built its
   model; Ray has started, its workers have imported the decode tasks' modules, Ray Data's helper
   actors are up and — for a model inside the decode tasks — the model is built in those tasks' workers
   (``warm.py``; until session 13 the workers' start and imports, until session 15 the models' builds
   were inside the pipeline's time). End-to-end times, all of that included on both sides, are printed
   next to them.
2. Memory: peak RSS of the driver plus its Ray worker processes (sampled every 50 ms with psutil;
   the other Ray daemons are printed too) for 20,000 short clips vs 2,000, each run in a fresh
   process with its own Ray. Target: ≤ 1.15×.
3. Deformation cost: embedding work (rows, seconds of audio through the model, wall time) of 4
   scenarios on 80/10/10 splits (test split deformed) vs a clean-only run. Target: ≤ 1.4×
   (mir_ref deformed every split: 5×).
4. Shared streams: a run over 6 datasets (one experiment each, like the thesis' six tasks) and one
   model, embedded as one stream per model (repeval) vs one stream per dataset (the engine before
   it; each stream starts its own actor pool and loads the weights again). No target: the ratio
   is the start-up saved.
5. Allocator (``--only allocator --model msd-musicnn``, or ``pesto``): the model on pre-decoded clips in one
   process, with glibc's default allocator vs as repeval's actors run it (the isolated groups' environment,
   ``repeval.cpu.model_process_env``; freed blocks kept, ``repeval.cpu.keep_freed_memory``). No target.

Usage: ``python benchmarks/bench_embed.py [--quick] [--only throughput,memory,deform,shared,allocator] [--model ID] [--actors N]``
(``RAY_AUTH_MODE=disabled`` is set here). It takes several minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import soundfile as sf
import yaml

MODEL = "mfcc-stats"
SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
DEFORM = [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 30, "p": 1.0}}]
FOUR = [
    [{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -6, "p": 1.0}}],
    [{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 20, "p": 1.0}}],
    [{"type": "LowPassFilter", "params": {"min_cutoff_freq": 2000, "max_cutoff_freq": 4000, "p": 1.0}}],
    [{"type": "Mp3Compression", "params": {"min_bitrate": 32, "max_bitrate": 32, "p": 1.0}}],
]


# --------------------------------------------------------------------------------------- data
def split_of(i: int, n: int) -> str:
    """Exact 80/10/10 by position (a seeded shuffle of positions keeps classes mixed)."""
    r = (i * 7919) % n / n
    return "train" if r < 0.8 else "validation" if r < 0.9 else "test"


def render_clips(out: Path, n: int, clip_s: float) -> Path:
    """``n`` rendered instrument notes at 44.1 kHz (decode resamples them to the model's 22.05 kHz)."""
    from repeval.datasets.render import render_dataset
    from repeval.datasets.render_specs import INSTRUMENTS, RenderSpec

    per = -(-n // len(INSTRUMENTS))
    manifest = render_dataset(
        out, RenderSpec(notes_per_instrument=per, sample_rate_hz=44100, note_s=clip_s - 0.25, tail_s=0.25, seed=7)
    )
    rows = list(csv.DictReader(manifest.open()))[:n]
    return _write_manifest(
        out / "bench.csv", [(r["track_id"], str(out / r["audio_path"]), r["instrument"]) for r in rows]
    )


def render_tracks(out: Path, n: int, track_s: float, fmt: str = "mp3") -> Path:
    """``n`` full-length stereo tracks of ``track_s`` seconds at 44.1 kHz, as a catalog holds them (MP3 by default):
    each channel a seeded sequence of rendered 3-s instrument notes (240 notes rendered, reused in other orders),
    so decoding reads a compressed stereo file, mixes it down and resamples it, and the models see whole songs'
    worth of windows (``chunk_s``)."""
    notes = render_clips(out / "notes", 240, 3.0)  # renders only what an earlier run did not
    pool = [sf.read(r["audio_path"], dtype="float32")[0] for r in csv.DictReader(notes.open())]
    sr, frames = 44100, int(track_s * 44100)
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n):
        path = out / "tracks" / f"t{i:05d}.{fmt}"
        if not path.exists():
            channels = []
            for _ in range(2):
                seq = np.concatenate([pool[j] for j in rng.integers(0, len(pool), frames // len(pool[0]) + 1)])
                channels.append(seq[:frames])
            sf.write(path, 0.7 * np.stack(channels, axis=1), sr)
        rows.append((f"t{i:05d}", str(path), f"k{i % 4}"))
    return _write_manifest(out / "tracks.csv", rows)


def synth_clips(out: Path, n: int, clip_s: float, sr: int = 22050) -> Path:
    """``n`` short numpy-synthesised tones (fast to generate at any count)."""
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(int(clip_s * sr)) / sr
    rows = []
    for i in range(n):
        f0 = 110 * 2 ** (rng.integers(0, 48) / 12)
        y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(len(t))
        p = out / "audio" / f"c{i:06d}.wav"
        sf.write(p, y.astype(np.float32), sr, subtype="PCM_16")
        rows.append((f"c{i:06d}", str(p), f"k{i % 4}"))
    return _write_manifest(out / "bench.csv", rows)


def _write_manifest(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["track_id", "audio_path", "label", "split"])
        for i, (tid, p, lab) in enumerate(rows):
            w.writerow([tid, p, lab, split_of(i, len(rows))])
    return path


def write_config(
    root: Path,
    manifest: Path,
    deformations: list,
    store: str,
    model: str = MODEL,
    actors: int | None = None,
    placement: str = "auto",
) -> Path:
    """A run config over ``manifest`` into a fresh ``store`` (one left by an earlier run in the same
    ``--workdir`` is removed: the pipeline would find every row done and time nothing). ``actors`` sets
    ``run.resources.embed_actors`` (default: the engine's plan, every CPU but the decode share),
    ``placement`` ``run.resources.embed_in_decode``."""
    if Path(store).is_relative_to(root):
        shutil.rmtree(store, ignore_errors=True)
    run: dict = {"run_id": "bench", "store": store, "runs_dir": str(root / "runs"), "part_rows": 512}
    resources: dict = {"embed_in_decode": placement}
    if actors:
        resources["embed_actors"] = actors
    run["resources"] = resources
    cfg = {
        "run": run,
        "experiments": [
            {
                "task": {"name": "label", "type": "multiclass_classification"},
                "datasets": [
                    {
                        "name": "bench",
                        "type": "catalog",
                        "manifest": str(manifest),
                        "label_column": "label",
                        "split_column": "split",
                        "check_files": False,
                    }
                ],
                "deformations": deformations,
                "embedding_models": [model],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    path = root / f"config-{abs(hash(store)) % 10**8}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_repeval(config: Path):
    from repeval import runner
    from repeval.config import load_config

    ctx = runner.make_context(load_config(config))
    t0 = time.perf_counter()
    s = runner.stage_embed(ctx)
    return s, time.perf_counter() - t0


# ------------------------------------------------------------------------------ baselines
#: Ray runs its worker processes at this niceness (Ray's ``worker_niceness``); the baselines run
#: their compute at the same priority, or on a shared machine they would win by priority alone
RAY_WORKER_NICENESS = int(os.environ.get("RAY_worker_niceness", "15"))


def _as_ray_worker() -> None:
    from repeval.pipeline.embedder import limit_threads

    os.nice(max(0, RAY_WORKER_NICENESS - os.nice(0)))
    limit_threads(1)


@contextmanager
def model_process_environment(model_id: str) -> Iterator[dict[str, str]]:
    """While the references start their processes: the environment repeval gives the worker processes of the
    model's process group (:func:`repeval.cpu.model_process_env`, glibc's allocator settings), so that a
    reference runs its model as the pipeline's actors do — both sides alike, like the MKL path and the pages.
    Nothing for a model of the default group (Ray's shared workers, glibc's default)."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.cpu import model_process_env
    from repeval.models.base import resolve_model

    fam, _ = resolve_model(EmbeddingModelConfig(id=model_id))
    extra = model_process_env() if getattr(fam.cls, "process_group", "default") != "default" else {}
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield extra
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def sequential(manifest: Path, model_id: str = MODEL) -> tuple[float, int, float]:
    """Run :func:`_sequential` in a fresh process at the Ray workers' priority (and with the environment of the
    model's worker processes, :func:`model_process_environment`)."""
    with model_process_environment(model_id), mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_sequential, (manifest, model_id))


def _sequential(
    manifest: Path, model_id: str = MODEL, shard: tuple[int, int] = (0, 1), barrier=None
) -> tuple[float, int, float]:
    """mir_ref's way: one process, one file at a time: decode → (deform) → embed → keep. ``shard`` = (i, n):
    every n-th row from the i-th (for :func:`split_loop`); ``barrier`` starts the shards' clocks together.
    Returns (seconds of the loop, rows, seconds to build the model — its framework import and weights)."""
    from repeval.audio import decode
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.cpu import keep_freed_memory
    from repeval.deformations import Scenario, scenario_seed
    from repeval.models import build_model
    from repeval.pipeline.embedder import limit_threads

    limit_threads(1)  # before the build: TensorFlow and onnxruntime size their pools when their sessions start
    keep_freed_memory()  # what an embedding actor does before its build (repeval.pipeline.embedder.Embed)
    t_load = time.perf_counter()
    model = build_model(EmbeddingModelConfig(id=model_id))
    t_load = time.perf_counter() - t_load
    _as_ray_worker()  # after the model's imports: torch's intra-op threads are capped too
    scen = Scenario("D1", [(s["type"], s["params"]) for s in DEFORM])
    rows = list(csv.DictReader(manifest.open()))[shard[0] :: shard[1]]
    out = 0
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    for r in rows:
        audio = decode(r["audio_path"], model.sample_rate_hz)
        model.embed(audio).mean(axis=0)
        out += 1
        if r["split"] == "test":
            deformed, _ = scen(audio, model.sample_rate_hz, scenario_seed(0, r["track_id"], "D1"))
            model.embed(deformed).mean(axis=0)
            out += 1
    return time.perf_counter() - t0, out, t_load


def _split_worker(args: tuple) -> tuple[float, int]:
    manifest, model_id, shard, barrier = args
    return _sequential(manifest, model_id, shard, barrier)[:2]


def split_loop(manifest: Path, workers: int, model_id: str = MODEL) -> tuple[float, int]:
    """The sequential loop with its rows dealt to ``workers`` processes started together: what perfect
    parallelism (no transfers, no scheduling, no start-up after the model is built) gets on this machine —
    the ceiling for any pipeline's speed-up here (on vCPUs that share a physical core, well below ×workers)."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        barrier = mgr.Barrier(workers)
        with model_process_environment(model_id), ctx.Pool(workers) as pool:
            got = pool.map(_split_worker, [(manifest, model_id, (w, workers), barrier) for w in range(workers)])
    return max(t for t, _ in got), sum(n for _, n in got)


def _model_worker(args: tuple) -> float:
    paths, deform_ids, barrier, model_id = args
    from repeval.audio import decode
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.cpu import keep_freed_memory
    from repeval.deformations import Scenario, scenario_seed
    from repeval.models import build_model
    from repeval.pipeline.embedder import limit_threads

    limit_threads(1)
    keep_freed_memory()  # as the actors do
    model = build_model(EmbeddingModelConfig(id=model_id))
    _as_ray_worker()
    scen = Scenario("D1", [(s["type"], s["params"]) for s in DEFORM])
    audios = []
    for tid, p in paths:
        a = decode(p, model.sample_rate_hz)
        audios.append(a)
        if tid in deform_ids:
            audios.append(scen(a, model.sample_rate_hz, scenario_seed(0, tid, "D1"))[0])
    barrier.wait()
    t0 = time.perf_counter()
    for i in range(0, len(audios), 16):
        for f in model.embed_batch(audios[i : i + 16]):
            f.mean(axis=0)
    return time.perf_counter() - t0


def model_only(manifest: Path, workers: int, model_id: str = MODEL) -> float:
    """The model's compute on pre-decoded (and pre-deformed) batches, ``workers`` processes at once."""
    rows = list(csv.DictReader(manifest.open()))
    deform_ids = {r["track_id"] for r in rows if r["split"] == "test"}
    shards = [[(r["track_id"], r["audio_path"]) for r in rows[w::workers]] for w in range(workers)]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as mgr:
        barrier = mgr.Barrier(workers)
        with model_process_environment(model_id), ctx.Pool(workers) as pool:
            times = pool.map(_model_worker, [(s, deform_ids, barrier, model_id) for s in shards])
    return max(times)


# ----------------------------------------------------------------------------- benchmarks
def bench_throughput(
    root: Path,
    n: int,
    clip_s: float,
    model: str = MODEL,
    actors: int | None = None,
    placement: str = "auto",
    track_s: float | None = None,
) -> dict:
    import ray
    from warm import build_models_in_workers, start_ray_data, warm_ray_workers

    from repeval.config import load_config
    from repeval.pipeline.resources import stream_resources
    from repeval.ray_utils import init_ray

    if track_s is None:
        manifest = render_clips(root / "clips", n, clip_s)
        what = f"{n} rendered clips of {clip_s:g} s at 44.1 kHz"
    else:
        manifest = render_tracks(root / "clips", n, track_s)
        what = f"{n} stereo MP3 tracks of {track_s:g} s at 44.1 kHz (rendered notes in sequence)"
    n_test = sum(1 for r in csv.DictReader(manifest.open()) if r["split"] == "test")
    print(f"[throughput] {what} (+ D1 on {n_test} test clips), model {model}")
    with model_process_environment(model) as extra:
        print(
            f"  the model's worker processes, the pipeline's and the references' alike: {extra or 'the default environment'}"
        )
    t_all = time.perf_counter()
    t_seq, rows_seq, t_load = sequential(manifest, model)
    t_seq_all = time.perf_counter() - t_all  # with the process's start, its imports and the model's build
    print(
        f"  sequential loop (1 process, 1 thread, nice {RAY_WORKER_NICENESS} like Ray's workers): {t_seq:7.1f} s"
        f"  {rows_seq / t_seq:6.1f} rows/s; its model load before the loop (not in that time): {t_load:.1f} s"
    )
    cpus = os.cpu_count() or 1
    t_split, rows_split = split_loop(manifest, cpus, model)
    assert rows_split == rows_seq, (rows_split, rows_seq)
    print(
        f"  the same loop split over {cpus} processes (the machine's ceiling): {t_split:7.1f} s"
        f"  → {t_seq / t_split:.2f}× the loop"
    )
    config = write_config(root, manifest, [DEFORM], str(root / f"store-tp-{model}"), model, actors, placement)
    t_all = time.perf_counter()
    init_ray(num_cpus=os.cpu_count(), object_store_memory=400 * 1024**2, log_to_driver=False)
    t_init = time.perf_counter() - t_all
    # like the loop's process start, imports and model build, Ray's start is not in the pipeline's time: its
    # prestarted workers register, then import the decode tasks' modules; both sides' end-to-end times are
    # printed below
    warm = warm_ray_workers()
    cfg = load_config(config)
    mcfg = cfg.experiments[0].embedding_models[0]
    res = stream_resources(mcfg, cfg.run.resources)
    if res.fused and res.runtime_env is not None:  # the decode tasks host the model: workers of its process group
        warm += warm_ray_workers(runtime_env=res.runtime_env, n=res.decode_tasks)
    # an actor pool's actors start in processes of their own inside the pipeline's time (Ray gives an actor a fresh
    # worker process, never one that ran tasks: warming the model group's workers with tasks, as this did until
    # session 23, only left two idle processes beside the pipeline; seen in ray.timeline()) — process start, imports
    # and the model's build count against the pipeline, as they do in a user's run
    t_data = start_ray_data(actor_pool=not res.fused)
    builds: list[float] = []
    if res.fused:  # the model inside the decode tasks: built in their workers before the clock, as the loop's is
        builds = build_models_in_workers(
            mcfg,
            cfg.keeps_frames(cfg.experiments[0].datasets[0].name, mcfg.id),
            res.threads,
            res.runtime_env,
            res.decode_tasks or cpus,
        )
    t_ready = time.perf_counter() - t_all
    s, t_pipe = run_repeval(config)
    t_pipe_all = time.perf_counter() - t_all
    fused = any(op.endswith("MapBatches(DecodeEmbed)") for op in s.operators)  # the model ran inside the decode tasks
    pool = None
    if fused and placement == "auto":
        # the same stream with the model in an actor pool (embed_in_decode: never): what running it in the decode
        # tasks saves, measured in this run
        pool = run_repeval(
            write_config(root, manifest, [DEFORM], str(root / f"store-tp-{model}-pool"), model, actors, "never")
        )
    ray.shutdown()
    steady = t_pipe - s.startup_s
    print(
        f"  Ray's start before the pipeline's clock: ray.init {t_init:.1f} s, then its workers up and warm "
        f"{t_ready - t_init:.1f} s (imports {max(warm):.1f} s per worker; Ray Data's helper actors {t_data:.1f} s"
        + (f"; the model built in {len(builds)} of them, {max(builds):.1f} s each)" if builds else ")")
    )
    print(f"  repeval pipeline:              {t_pipe:7.1f} s  {s.computed / t_pipe:6.1f} rows/s  ({s.line()})")
    print(
        f"    of which start-up (catalog, workers, model load, until the first rows): {s.startup_s:.1f} s;"
        f" streaming after it: {steady:.1f} s"
    )
    print(f"    stages: {' | '.join(s.operators)}; {'; '.join(s.resources.values())}")
    if pool is not None:
        sp, tp = pool
        print(
            f"  the same with the model in an actor pool (embed_in_decode: never): {tp:7.1f} s"
            f" (start-up {sp.startup_s:.1f} s; {'; '.join(sp.resources.values())}) → actor pool / decode tasks"
            f" {tp / t_pipe:.2f}×"
        )
    print(
        f"  end to end, start-up included (the loop: process start, imports, model build; repeval: ray.init, "
        f"workers, the catalog): loop {t_seq_all:.1f} s, pipeline {t_pipe_all:.1f} s → {t_seq_all / t_pipe_all:.2f}×"
    )
    workers = s.model_processes[model]
    t_model = model_only(manifest, workers, model)
    print(f"  model only, pre-decoded, {workers} proc: {t_model:5.1f} s")
    assert s.computed == rows_seq, (s.computed, rows_seq)
    out = {
        "ceiling": t_seq / t_split,
        "speedup": t_seq / t_pipe,
        "speedup_load": (t_seq + t_load) / t_pipe,
        "speedup_end_to_end": t_seq_all / t_pipe_all,
        "speedup_steady": t_seq / steady,
        "vs_model": t_pipe / t_model,
        "vs_model_steady": steady / t_model,
    }
    if fused:
        # a decode task's rows reach the driver when the task ends (Ray Data buffers a task's output into one
        # block): "time to the first rows" is then a whole task's work, not start-up, and the ratios without it
        # would flatter the pipeline
        print("    (model inside the decode tasks: the first rows arrive with the first whole task, so the ratios")
        print("     excluding start-up are not printed)")
        del out["speedup_steady"], out["vs_model_steady"]
    return out


def _rss_sampler(stop: threading.Event, out: dict) -> None:
    import psutil  # vendored by Ray (ray/thirdparty_files); importable once ray is imported

    me = psutil.Process()
    while not stop.is_set():
        drv = me.memory_info().rss
        workers = daemons = 0
        for c in me.children(recursive=True):
            try:
                name, rss = c.name(), c.memory_info().rss
                cmd = " ".join(c.cmdline()[:3])
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if name.startswith("ray::") or "default_worker.py" in cmd:
                workers += rss
            else:
                daemons += rss
        out["driver_workers"] = max(out.get("driver_workers", 0), drv + workers)
        out["all"] = max(out.get("all", 0), drv + workers + daemons)
        out["driver"] = max(out.get("driver", 0), drv)
        stop.wait(0.05)


@contextmanager
def peak_rss() -> Iterator[dict]:
    """Peak RSS in bytes while the block runs: ``driver``, ``driver_workers`` (+ Ray workers), ``all`` (+ daemons)."""
    stop: threading.Event = threading.Event()
    peak: dict = {}
    th = threading.Thread(target=_rss_sampler, args=(stop, peak), daemon=True)
    th.start()
    try:
        yield peak
    finally:
        stop.set()
        th.join()


def memory_child(root: Path, n: int) -> None:
    """Run in a fresh process: embed ``n`` short clips, print peak RSS as JSON."""
    import ray  # noqa: F401  (makes the vendored psutil importable)

    from repeval.ray_utils import init_ray

    manifest = synth_clips(root / f"mem{n}", n, 0.5)
    init_ray(num_cpus=os.cpu_count(), object_store_memory=400 * 1024**2, log_to_driver=False)
    with peak_rss() as peak:
        s, wall = run_repeval(write_config(root, manifest, [], str(root / f"store-mem{n}")))
    print(json.dumps({"n": n, "rows": s.computed, "wall_s": wall, **peak}))


def bench_memory(root: Path, small: int, large: int) -> dict:
    print(f"[memory] peak RSS, {small} vs {large} clips of 0.5 s (fresh process + Ray each)")
    res = {}
    for n in (small, large):
        out = subprocess.run(
            [sys.executable, __file__, "--memory-child", str(n), "--workdir", str(root)], capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(f"memory run for {n} clips failed:\n{out.stderr[-4000:]}")
        line = [x for x in out.stdout.splitlines() if x.startswith("{")][-1]
        res[n] = json.loads(line)
        r = res[n]
        print(
            f"  {n:6d} clips: {r['rows']} rows in {r['wall_s']:.1f} s; peak RSS driver+workers "
            f"{r['driver_workers'] / 2**20:7.0f} MiB (driver {r['driver'] / 2**20:.0f} MiB; with Ray daemons "
            f"{r['all'] / 2**20:.0f} MiB)"
        )
    return {
        "rss_ratio": res[large]["driver_workers"] / res[small]["driver_workers"],
        "rss_ratio_all": res[large]["all"] / res[small]["all"],
    }


def bench_deform(root: Path, n: int) -> dict:
    import ray

    from repeval.ray_utils import init_ray

    manifest = synth_clips(root / "deform", n, 2.0)
    print(f"[deformation cost] {n} clips of 2 s, 80/10/10 splits: clean only vs clean + 4 scenarios on test")
    init_ray(num_cpus=os.cpu_count(), object_store_memory=400 * 1024**2, log_to_driver=False)
    clean, t_clean = run_repeval(write_config(root, manifest, [], str(root / "store-clean")))
    four, t_four = run_repeval(write_config(root, manifest, FOUR, str(root / "store-four")))
    ray.shutdown()
    print(
        f"  clean only:       {clean.computed:6d} rows, {clean.audio_seconds:8.0f} s of audio embedded, {t_clean:6.1f} s"
    )
    print(
        f"  4 scenarios:      {four.computed:6d} rows, {four.audio_seconds:8.0f} s of audio embedded, {t_four:6.1f} s"
        f"  {dict(four.rows_by_scenario)}"
    )
    print(f"  (mir_ref protocol, every split deformed: {5 * n} rows)")
    return {
        "rows_ratio": four.computed / clean.computed,
        "audio_ratio": four.audio_seconds / clean.audio_seconds,
        "wall_ratio": t_four / t_clean,
    }


def bench_shared(root: Path, n_datasets: int, per: int, clip_s: float, model: str) -> dict:
    """A run over ``n_datasets`` datasets (one experiment each, like the thesis' tasks) and one model: one stream
    for the whole run (repeval) vs one stream per dataset (what the engine did before), same clips, same work."""
    from repeval import runner
    from repeval.config import load_config
    from repeval.pipeline.embed import embed_experiments
    from repeval.ray_utils import init_ray

    manifest = render_clips(root / "shared-clips", n_datasets * per, clip_s)
    rows = list(csv.DictReader(manifest.open()))
    experiments = []
    for d in range(n_datasets):
        m = _write_manifest(
            root / f"shared-{d}.csv", [(r["track_id"], r["audio_path"], r["label"]) for r in rows[d::n_datasets]]
        )
        exp = yaml.safe_load(write_config(root, m, [DEFORM], "unused", model).read_text())["experiments"][0]
        exp["task"]["name"] = f"task{d}"
        exp["datasets"][0]["name"] = f"set{d}"
        experiments.append(exp)
    print(
        f"[shared streams] {n_datasets} datasets × {per} rendered clips of {clip_s:g} s (one experiment each), model {model}"
    )
    init_ray(num_cpus=os.cpu_count(), object_store_memory=400 * 1024**2, log_to_driver=False)

    def context(store: str):
        path = root / f"shared-{store}.yaml"
        run = {"run_id": "bench", "store": str(root / store), "runs_dir": str(root / "runs"), "part_rows": 512}
        path.write_text(yaml.safe_dump({"run": run, "experiments": experiments}))
        ctx = runner.make_context(load_config(path))
        runner.load_rows(ctx)
        return ctx

    def work(ctx):
        return [
            (exp, {ds.name: ctx.rows[(ei, ds.name)] for ds in exp.datasets}, None)
            for ei, exp in enumerate(ctx.cfg.experiments)
        ]

    # the baseline first: the second run of a session finds Ray Data's helper actors started, which favours it
    ctx = context("store-per-dataset")
    t0 = time.perf_counter()
    per_ds = [embed_experiments(ctx.cfg, [w], ctx.store) for w in work(ctx)]
    t_per = time.perf_counter() - t0
    ctx = context("store-shared")
    t0 = time.perf_counter()
    shared = embed_experiments(ctx.cfg, work(ctx), ctx.store)
    t_shared = time.perf_counter() - t0
    import ray

    ray.shutdown()
    rows_per = sum(x.computed for x in per_ds)
    assert rows_per == shared.computed, (rows_per, shared.computed)
    start_per = sum(x.startup_s for x in per_ds)
    print(
        f"  one stream per dataset: {t_per:6.1f} s ({len(per_ds)} streams, start-up {start_per:.1f} s in all, {rows_per} rows)"
    )
    print(
        f"  one stream per model:   {t_shared:6.1f} s ({shared.streams} stream, start-up {shared.startup_s:.1f} s, {shared.computed} rows)"
    )
    return {"shared_speedup": t_per / t_shared}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not the targets)")
    ap.add_argument("--only", default="throughput,memory,deform,shared")
    ap.add_argument("--clips", type=int, default=2000)
    ap.add_argument("--clip-s", type=float, default=3.0)
    ap.add_argument(
        "--track-s",
        type=float,
        default=None,
        help="throughput on full-length stereo MP3 tracks of this many seconds (--clips of them) instead of 3-s "
        "mono WAV notes: decoding, mixdown and resampling as a catalog's files need, models fed 30-s windows",
    )
    ap.add_argument("--allocator-clips", type=int, default=400, help="clips of the allocator comparison")
    ap.add_argument("--model", default=MODEL, help=f"embedding model for the throughput part (default {MODEL})")
    ap.add_argument(
        "--actors",
        type=int,
        default=None,
        help="embedding actors of the throughput pipeline (run.resources.embed_actors; default: the engine's plan). "
        "With fewer actors than CPUs, decoding has a core of its own: the case the ≤ 1.15× target describes",
    )
    ap.add_argument(
        "--embed-in-decode",
        default="auto",
        choices=["auto", "always", "never"],
        help="run.resources.embed_in_decode of the throughput pipeline (default auto: light models such as "
        "mfcc-stats run inside the decode tasks, and are also timed in an actor pool for comparison)",
    )
    ap.add_argument(
        "--workdir",
        default=None,
        help="keep the rendered clips and stores here (default: a temporary directory, removed)",
    )
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        memory_child(Path(args.workdir), args.memory_child)
        return
    root = Path(args.workdir or tempfile.mkdtemp(prefix="bench-embed-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        run_all(args, root)
    finally:
        if args.workdir is None:  # rendered clips and stores: ~0.5–1.2 GB per run, never reused
            shutil.rmtree(root, ignore_errors=True)


def bench_allocator(root: Path, n: int, clip_s: float, model: str) -> dict:
    """The model on pre-decoded batches in one process with glibc's default allocator vs as repeval's actors run
    it — started with its process group's environment (:func:`repeval.cpu.model_process_env`, TensorFlow's and
    essentia's groups) or keeping freed blocks (:func:`repeval.cpu.keep_freed_memory`, the default group): two
    runs each, alternating. No target."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.cpu import KEEP_FREED_ENV, model_process_env
    from repeval.models.base import resolve_model

    fam, _ = resolve_model(EmbeddingModelConfig(id=model))
    isolated = getattr(fam.cls, "process_group", "default") != "default"
    manifest = render_clips(root / "alloc-clips", n, clip_s)
    what = (
        f"GLIBC_TUNABLES={model_process_env({})['GLIBC_TUNABLES']} (its process group's environment)"
        if isolated
        else "freed blocks kept (repeval.cpu.keep_freed_memory, as an embedding actor does)"
    )
    print(f"[allocator] {model} on {n} pre-decoded clips of {clip_s:g} s, one process, 16 clips per call: glibc's "
          f"default vs {what}")  # fmt: skip
    saved = {k: os.environ.pop(k, None) for k in ("GLIBC_TUNABLES", KEEP_FREED_ENV)}
    times: dict[str, list[float]] = {"default": [], "repeval": []}
    try:
        for _ in range(2):
            for name in times:
                if name == "default":  # model_only's process: neither the group's environment nor mallopt
                    os.environ[KEEP_FREED_ENV] = "0"
                times[name].append(model_only(manifest, 1, model))
                os.environ.pop(KEEP_FREED_ENV, None)
                print(f"  {name:8s} {times[name][-1]:6.1f} s")
    finally:
        for k, v in saved.items():
            if v is not None:
                os.environ[k] = v
    best = {k: min(v) for k, v in times.items()}
    print(f"  repeval's allocator settings: {best['default'] / best['repeval']:.2f}× faster (best of two each)")
    return {"allocator_speedup": best["default"] / best["repeval"]}


def run_all(args: argparse.Namespace, root: Path) -> None:
    only = set(args.only.split(","))
    n, small, large, n_def = (200, 200, 2000, 200) if args.quick else (args.clips, 2000, 20000, 2000)
    print(f"bench_embed: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, workdir {root}")
    results = {}
    if "throughput" in only:
        results.update(
            bench_throughput(root, n, args.clip_s, args.model, args.actors, args.embed_in_decode, args.track_s)
        )
    if "memory" in only:
        results.update(bench_memory(root, small, large))
    if "deform" in only:
        results.update(bench_deform(root, n_def))
    if "allocator" in only:
        results.update(bench_allocator(root, 100 if args.quick else args.allocator_clips, args.clip_s, args.model))
    if "shared" in only:
        results.update(bench_shared(root, 3 if args.quick else 6, 40 if args.quick else 100, args.clip_s, args.model))
    print("\nratios (one run):")
    targets = {
        "ceiling": ("the loop split over every CPU vs the loop (machine's ceiling)", ">=", 1.7),
        "speedup": ("pipeline vs sequential loop", ">=", 1.7),
        "speedup_load": ("  same, counting the loop's model load too", ">=", 1.7),
        "speedup_steady": ("  same, excluding start-up (time to the first rows)", ">=", 1.7),
        "speedup_end_to_end": ("  same, end to end (process/Ray start and imports included)", ">=", 1.7),
        "vs_model": ("pipeline time / model compute on pre-decoded batches", "<=", 1.15),
        "vs_model_steady": ("  same, excluding start-up", "<=", 1.15),
        "rss_ratio": (f"peak RSS driver+workers {large} / {small} clips", "<=", 1.15),
        "rss_ratio_all": ("  same, with the Ray daemons", "<=", 1.15),
        "rows_ratio": ("embedding rows, 4 scenarios / clean only", "<=", 1.4),
        "audio_ratio": ("audio seconds embedded, 4 scenarios / clean only", "<=", 1.4),
        "wall_ratio": ("wall time, 4 scenarios / clean only", "<=", 1.4),
        "shared_speedup": ("one stream per model vs one per dataset (no target)", ">=", 1.0),
        "allocator_speedup": ("model with repeval's allocator settings vs glibc's default (no target)", ">=", 1.0),
    }
    for key, (what, op, target) in targets.items():
        if key in results:
            v = results[key]
            ok = v >= target if op == ">=" else v <= target
            verdict = (
                ("reachable" if ok else "NOT reachable here") if key == "ceiling" else ("met" if ok else "NOT met")
            )
            print(f"  {what:58s} {v:6.2f}×  (target {op} {target}: {verdict})")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
