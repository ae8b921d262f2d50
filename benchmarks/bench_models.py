"""CPU throughput of every runnable embedding model: seconds of audio embedded per second.

Each model embeds the same ~30 s of music (a recording from ../shared/data when present, else
noise), resampled to its rate, after one warm-up call; the best of ``--repeats`` timings is
reported with the load time. Models of an isolated process group (``tf``, ``essentia``) are
timed in a fresh process with that group's environment, exactly as the pipeline runs them.
``--dummy-weights DIR`` also times CLMR, MULE, NeuralFP and MERT-v1-95M (as a base-size
HuBERT at 24 kHz) when their weights are absent, on randomly initialised weights of the same
architecture and size (same cost; the tiny transformers and trivial Essentia graphs used by
the tests are not timed, their cost says nothing). Ratios are measured in one run on one machine; compare
rows, not runs.

    python benchmarks/bench_models.py [--models crepe-tiny basic-pitch] [--dummy-weights /tmp/w]

Engine overhead (``--engine-overhead``, on by default; ``--only overhead`` runs nothing else):
the cost of running a model through repeval's embedding engine relative to calling it directly,
for a few representative models (``--overhead-models``, default mfcc-stats, crepe-tiny,
msd-musicnn), each on the same ``--overhead-clips`` rendered instrument notes (``repeval data
render``'s SoundFont, 44.1 kHz, ``--overhead-clip-s`` s each, decoded to the model's rate):

* direct: a fresh process (with the model's process-group environment, at the niceness of Ray's
  workers) builds the model, then decodes each file and calls ``model.embed`` on it, one after
  another; ``direct_s`` = model load + that loop; its peak RSS is the process's ``ru_maxrss``.
* engine: a fresh process starts embedded Ray (``ray_init_s``, reported apart) and runs the
  embed stage (``runner.stage_embed``, as ``repeval embed``) into an empty Parquet store;
  ``engine_s`` is that stage's wall time: catalog load, decode tasks, embedding-actor start-up
  and model load, embedding, reassembly and Parquet writes (``startup_s`` is the part until the
  first embedded block reached the driver: worker start-up and model load, but at this size also
  much of the compute, as an actor returns rows 16 clips at a time). Peak RSS is the driver plus
  its Ray worker processes, idle pre-started ones included (Ray's daemons apart).
* ``overhead`` = engine_s / direct_s; ``overhead_init`` also counts ``ray.init``. Both include
  fixed costs that do not grow with the data set (Ray and actor start-up), so they shrink with
  more or longer clips. On 2 cores the engine runs decode tasks and its actors in parallel on both
  cores while the direct loop is one process (its library may still use several intra-op
  threads), so a ratio < 1 is parallelism, not a cheaper model. One cold pass each, no warm-up.
  The default size (24 clips of 10 s, 3 models) takes ~2-3 minutes on 2 cores; skip it with
  ``--no-engine-overhead``.

    python benchmarks/bench_models.py --only overhead [--overhead-clips 48 --overhead-clip-s 30]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench_models")
SHARED_AUDIO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "librosa_examples" / "audio"
CLIP_S = 30.0
#: engine overhead: a handcrafted model, a PyTorch one and a TensorFlow one (own process group)
OVERHEAD_MODELS = ["mfcc-stats", "crepe-tiny", "msd-musicnn"]


def load_clip(rate: int) -> tuple[np.ndarray, str]:
    """~30 s of mono audio at ``rate``: a shared recording if available, else seeded noise."""
    import soxr

    for path in sorted(SHARED_AUDIO.glob("*.ogg")):
        try:
            import soundfile as sf

            audio, sr = sf.read(path, dtype="float32", always_2d=True)
        except Exception:  # an undecodable file: try the next one
            continue
        if len(audio) >= CLIP_S * sr:
            mono = audio[: int(CLIP_S * sr)].mean(axis=1)
            return np.asarray(soxr.resample(mono, sr, rate), dtype=np.float32), path.name
    return (0.1 * np.random.default_rng(0).standard_normal(int(CLIP_S * rate))).astype(np.float32), "noise"


def time_model(model_id: str, params: dict[str, Any], repeats: int) -> dict[str, Any]:
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.models import build_model

    row: dict[str, Any] = {"model": model_id}
    started = time.perf_counter()
    model = build_model(EmbeddingModelConfig(id=model_id, params=params))
    row["load_s"] = round(time.perf_counter() - started, 2)
    audio, source = load_clip(model.sample_rate_hz)
    model.embed(audio[: model.sample_rate_hz])  # warm-up: lazy kernels, thread pools
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = model.embed(audio)
        best = min(best, time.perf_counter() - t0)
    row.update(
        audio=source,
        frames=int(out.shape[0]),
        dim=int(out.shape[1]),
        embed_s=round(best, 2),
        audio_s_per_s=round(len(audio) / model.sample_rate_hz / best, 1),
    )
    return row


def _child(flag: str, payload: dict[str, Any], group: str = "default") -> list[dict[str, Any]]:
    """Run this script with ``flag payload`` in a fresh process of ``group``'s environment; its JSON rows."""
    env = dict(os.environ)
    if group != "default":
        from repeval.models._common import PROCESS_GROUP_ENV
        from repeval.models.validate import PROCESS_GROUP_VAR

        env.update({**PROCESS_GROUP_ENV[group], PROCESS_GROUP_VAR: group})
    cmd = [sys.executable, __file__, flag, json.dumps(payload)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 and not rows:
        log.error("%s child (%s) failed: %s", flag, group, proc.stderr[-1500:])
    return rows


def _in_group(
    model_ids: list[str], params: dict[str, dict[str, Any]], group: str, repeats: int
) -> list[dict[str, Any]]:
    return _child("--worker", {"models": model_ids, "params": params, "repeats": repeats}, group)


def run(model_ids: list[str] | None, dummy_weights: Path | None, repeats: int) -> list[dict[str, Any]]:
    from repeval.models import MODELS
    from repeval.models.dummies import COST_DUMMIES

    rows: list[dict[str, Any]] = []
    groups: dict[str, list[str]] = {}
    params: dict[str, dict[str, Any]] = {}
    for name in model_ids or MODELS.names():
        fam = MODELS.get(name)
        p = dict(fam.default_params)
        if dummy_weights is not None and name in COST_DUMMIES and fam.cls.availability(p):
            try:
                dummy_weights.mkdir(parents=True, exist_ok=True)
                p.update(COST_DUMMIES[name](dummy_weights))
            except Exception as exc:  # no stand-in possible here (e.g. tensorflow absent)
                log.warning("%s: no stand-in weights (%s)", name, exc)
        reason = fam.cls.availability(p)
        if reason:
            rows.append({"model": name, "skipped": reason})
            continue
        params[name] = p
        groups.setdefault(fam.cls.process_group, []).append(name)
    for group, names in groups.items():
        if group == "default":
            for name in names:
                try:
                    rows.append(time_model(name, params[name], repeats))
                except Exception as exc:
                    rows.append({"model": name, "error": repr(exc)[:200]})
        else:
            rows.extend(_in_group(names, {n: params[n] for n in names}, group, repeats))
    return rows


# ------------------------------------------------------------------------ engine overhead
def _bench_embed() -> Any:
    """``bench_embed`` (clip rendering, config, pipeline run, RSS sampler) from this folder."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import bench_embed

    return bench_embed


def direct_child(model_id: str, manifest: str) -> dict[str, Any]:
    """Build the model, then decode and embed every clip one after another in this process."""
    from repeval.audio import decode
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.models import build_model

    be = _bench_embed()
    os.nice(max(0, be.RAY_WORKER_NICENESS - os.nice(0)))  # Ray's workers' priority (see bench_embed)
    with open(manifest, newline="") as fh:
        paths = [r["audio_path"] for r in csv.DictReader(fh)]
    t0 = time.perf_counter()
    model = build_model(EmbeddingModelConfig(id=model_id))
    t1 = time.perf_counter()
    audio_s = 0.0
    for path in paths:
        audio = decode(path, model.sample_rate_hz)
        model.embed(audio).mean(axis=0)
        audio_s += len(audio) / model.sample_rate_hz
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"rows": len(paths), "audio_s": audio_s, "load_s": t1 - t0, "loop_s": t2 - t1, "rss": rss}


def engine_child(model_id: str, manifest: str, root: str) -> dict[str, Any]:
    """Start embedded Ray, run the embed stage on the clips into a fresh store, shut Ray down."""
    import ray

    from repeval.ray_utils import init_ray

    be = _bench_embed()
    work = Path(root) / f"engine-{model_id}"
    shutil.rmtree(work, ignore_errors=True)  # a fresh store: nothing to resume
    work.mkdir(parents=True)
    config = be.write_config(work, Path(manifest), [], str(work / "store"), model=model_id)
    t0 = time.perf_counter()
    init_ray(num_cpus=os.cpu_count(), object_store_memory=400 * 1024**2, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    with be.peak_rss() as peak:
        s, wall = be.run_repeval(config)
    ray.shutdown()
    return {
        "rows": s.computed,
        "errors": s.errors,
        "ray_init_s": ray_init_s,
        "engine_s": wall,
        "startup_s": s.startup_s,
        "plan": s.resources.get(model_id, ""),
        "rss": peak.get("driver_workers", 0),
        "rss_all": peak.get("all", 0),
    }


def engine_overhead(models: list[str], n: int, clip_s: float, workdir: Path | None) -> list[dict[str, Any]]:
    from repeval.models import MODELS

    root = workdir or Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    root.mkdir(parents=True, exist_ok=True)
    manifest = str(_bench_embed().render_clips(root / "clips", n, clip_s))
    log.info("engine overhead: %d rendered clips of %g s in %s", n, clip_s, root)
    rows: list[dict[str, Any]] = []
    for name in models:
        fam = MODELS.get(name)
        reason = fam.cls.availability(dict(fam.default_params))
        if reason:
            rows.append({"model": name, "skipped": reason})
            continue
        direct = _child("--overhead-direct", {"model": name, "manifest": manifest}, fam.cls.process_group)
        engine = _child("--overhead-engine", {"model": name, "manifest": manifest, "root": str(root)})
        if not direct or not engine:
            rows.append({"model": name, "error": ("engine" if direct else "direct") + " run failed (see log)"})
            continue
        d, e = direct[-1], engine[-1]
        direct_s = d["load_s"] + d["loop_s"]
        rows.append(
            {
                "model": name,
                "clips": f"{d['rows']}/{e['rows']}" + (f" ({e['errors']} errors)" if e["errors"] else ""),
                "audio_s": round(d["audio_s"]),
                "direct_s": round(direct_s, 1),
                "load_s": round(d["load_s"], 1),
                "engine_s": round(e["engine_s"], 1),
                "startup_s": round(e["startup_s"], 1),
                "ray_init_s": round(e["ray_init_s"], 1),
                "overhead": round(e["engine_s"] / direct_s, 2),
                "overhead_init": round((e["engine_s"] + e["ray_init_s"]) / direct_s, 2),
                "rss_direct_mib": round(d["rss"] / 2**20),
                "rss_engine_mib": round(e["rss"] / 2**20),
                "plan": e["plan"],
            }
        )
    return rows


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    lines = [" | ".join(cols)]
    for r in rows:
        if "skipped" in r or "error" in r:
            lines.append(f"{r['model']} | {'skipped: ' + r['skipped'] if 'skipped' in r else 'error: ' + r['error']}")
        else:
            lines.append(" | ".join(str(r.get(c, "")) for c in cols))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", help="model ids (default: every registered family)")
    parser.add_argument("--dummy-weights", type=Path, help="directory for stand-in weights of weightless families")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--only", choices=["throughput", "overhead"], help="run one part only")
    parser.add_argument(
        "--engine-overhead",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time the engine against direct model calls (see above)",
    )
    parser.add_argument("--overhead-models", nargs="+", default=OVERHEAD_MODELS)
    parser.add_argument("--overhead-clips", type=int, default=24)
    parser.add_argument("--overhead-clip-s", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, help="for the overhead clips and stores (default: a temp dir)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--overhead-direct", help=argparse.SUPPRESS)
    parser.add_argument("--overhead-engine", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.overhead_direct or args.overhead_engine:  # one side of the engine-overhead comparison
        data = json.loads(args.overhead_direct or args.overhead_engine)
        if args.overhead_direct:
            out = direct_child(data["model"], data["manifest"])
        else:
            out = engine_child(data["model"], data["manifest"], data["root"])
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    if args.worker:  # inside an isolated process group
        data = json.loads(args.worker)
        for name in data["models"]:
            try:
                row = time_model(name, data["params"][name], data["repeats"])
            except Exception as exc:
                row = {"model": name, "error": repr(exc)[:200]}
            sys.stdout.write(json.dumps(row) + "\n")
            sys.stdout.flush()
        return 0
    rows = [] if args.only == "overhead" else run(args.models, args.dummy_weights, args.repeats)
    over: list[dict[str, Any]] = []
    if args.only == "overhead" or (args.only is None and args.engine_overhead):
        over = engine_overhead(args.overhead_models, args.overhead_clips, args.overhead_clip_s, args.workdir)
    if args.json:
        every = rows + [{"part": "engine_overhead", **r} for r in over]
        sys.stdout.write("\n".join(json.dumps(r) for r in every) + "\n")
        return 0
    if rows:
        sys.stdout.write(_table(rows, ["model", "dim", "frames", "load_s", "embed_s", "audio_s_per_s", "audio"]))
    if over:
        sys.stdout.write(
            f"\nengine overhead: {args.overhead_clips} rendered clips of {args.overhead_clip_s:g} s, one cold pass each;"
            " seconds, peak RSS in MiB (engine: driver + Ray workers)\n"
        )
        cols = ["model", "clips", "audio_s", "direct_s", "load_s", "engine_s", "startup_s", "ray_init_s"]
        sys.stdout.write(_table(over, [*cols, "overhead", "overhead_init", "rss_direct_mib", "rss_engine_mib", "plan"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
