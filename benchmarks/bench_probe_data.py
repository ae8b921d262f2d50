"""Load a group's probe data from the embedding store: peak memory and time against reading whole partitions.

    python benchmarks/bench_probe_data.py [--rows 100000 400000] [--dim 512] [--frames 0] [--part-rows 256]

Writes a store of one dataset × model with ``rows`` tracks (80/10/10) in the clean partition and their test
tracks in one deformation scenario, ``part-rows`` rows per Parquet file (the default ``run.part_rows``), mean
embeddings of ``dim`` floats or, with ``--frames N``, 1..2N-1 frames per track (N on average). Then, each in a
fresh subprocess so its peak RSS (``ru_maxrss``) is its own:

- repeval: ``repeval.tuning.data.probe_data`` (track ids first, then the embeddings file by file into per-split
  arrays);
- baseline: the same arrays the way repeval built them before session 35 and a script does — each partition read
  whole (Parquet → one Arrow table → ``combine_chunks`` → one matrix, as ``Partition.embeddings()`` / ``frames()``
  did then), then each split's rows taken from it in track-id order with numpy.

Both produce identical arrays (checked: a digest of every array is compared). Printed per size: seconds, the
peak RSS above the process's RSS before loading, the output's size, and the ratios repeval / baseline.

``--train`` then trains two linear probes (2 epochs; one standardised) on each size's data on an embedded Ray, again each side in a
fresh subprocess, and prints the driver's anonymous memory (``RssAnon``: its heap, sampled every 20 ms) while the
group trains, the object store's use (``/dev/shm``) and the largest heap among Ray's worker processes (a trial's):

- repeval: what ``repeval train`` does — the loaded arrays put into the object store once
  (``repeval.tuning.grid.share``), the driver keeping only read-only views of the stored copy, the trials reading
  that reference;
- baseline: the driver keeps the arrays it loaded and the group's trials get a copy put into the object store
  (repeval before session 35).

``--trial`` trains the same two linear probes (3 epochs) in one process the way a trial does, on read-only arrays
as a trial gets them from the object store, each side a fresh subprocess, and prints the peak heap above the start:

- repeval: one stack; each batch's rows gathered from the raw arrays and standardised as they are used
  (``repeval.probes.inputs.Inputs``);
- baseline: each preprocessing variant's copy of the splits made up front, each probe trained on its copy (what
  repeval's stacks held before session 35, and what a training script does). Test scores are compared: identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from bench_catalog_plan import AnonPeak, _rss_mb

SPLITS = ("train",) * 8 + ("validation", "test")


def build(root: str, n: int, dim: int, frames: int, part_rows: int) -> None:
    from repeval.store import EmbeddingStore, PartitionWriter
    from repeval.store.layout import embedding_schema

    rng = np.random.default_rng(0)
    ids = [f"track-{i:08d}" for i in rng.permutation(n)]  # stored in arrival order, not id order
    splits = [SPLITS[i % 10] for i in range(n)]
    schema = embedding_schema(dim, keep_frames=frames > 0)
    store = EmbeddingStore(root)
    for scenario in ("clean", "noise"):
        writer = PartitionWriter(store.partition("ds", "m", scenario), schema, part_rows)
        for a in range(0, n, part_rows):
            sel = [i for i in range(a, min(n, a + part_rows)) if scenario == "clean" or splits[i] == "test"]
            if not sel:
                continue
            k = len(sel)
            emb = rng.standard_normal(k * dim, np.float32)
            cols = {
                "track_id": pa.array([ids[i] for i in sel]),
                "split": pa.array([splits[i] for i in sel]),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb), dim),
            }
            if frames:
                nf = rng.integers(1, 2 * frames, k).astype(np.int32)
                values = pa.array(rng.standard_normal(int(nf.sum()) * dim, np.float32))
                offsets = pa.array(np.concatenate([[0], np.cumsum(nf)]).astype(np.int32))
                cols["n_frames"] = pa.array(nf)
                cols["frames"] = pa.ListArray.from_arrays(offsets, pa.FixedSizeListArray.from_arrays(values, dim))
            writer.add_table(pa.table([cols.get(f.name, pa.nulls(k, f.type)) for f in schema], schema=schema))
        writer.flush()
    labels = [[f"c{(i // 10) % 10}"] for i in range(n)]  # independent of the split (i % 10)
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"track_id": ids, "split": splits, "label": labels}), f"{root}/rows.parquet")


def baseline(rows: pa.Table, store, aggregation: str) -> dict[str, np.ndarray]:
    """Each partition read whole, then each split's rows taken in track-id order."""
    split_of = dict(zip(rows.column("track_id").to_pylist(), rows.column("split").to_pylist(), strict=True))
    out = {}
    for scenario, wanted in (("clean", ("train", "validation", "test")), ("noise", ("test",))):
        t = store.partition("ds", "m", scenario).read(["track_id", "embedding" if aggregation == "mean" else "frames"])
        ids = t.column("track_id").to_pylist()
        col = t.column(1).combine_chunks()
        if aggregation == "mean":
            dim = col.type.list_size
            mat = pc.list_flatten(col).to_numpy(zero_copy_only=False).reshape(-1, dim)
        else:
            counts = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
            flat = pc.list_flatten(col)
            mat = pc.list_flatten(flat).to_numpy(zero_copy_only=False).reshape(-1, flat.type.list_size)
            starts = np.cumsum(counts) - counts
        for split in wanted:
            m = sorted((i for i, t in enumerate(ids) if split_of.get(t) == split), key=ids.__getitem__)
            if aggregation == "mean":
                out[f"{scenario}/{split}"] = mat[m]
            else:
                c = counts[m]
                within = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                out[f"{scenario}/{split}"] = mat[np.repeat(starts[m], c) + within]
        del mat, col, t
    return out


def child(root: str, side: str, aggregation: str) -> None:
    import pyarrow.parquet as pq

    from repeval.store import EmbeddingStore
    from repeval.tuning.data import probe_data

    rows = pq.read_table(f"{root}/rows.parquet")
    store = EmbeddingStore(root, create=False)
    before = _rss_mb()
    t = time.perf_counter()
    if side == "repeval":
        d = probe_data("multiclass_classification", rows, store, "ds", "m", ["noise"], aggregation)
        arrays = {"clean/train": d.x_train, "clean/validation": d.x_val}
        arrays |= {f"{sid}/test": x for sid, (x, _, _) in d.tests.items()}
    else:
        arrays = baseline(rows, store, aggregation)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    digest = hashlib.sha256()
    for k in sorted(arrays):
        digest.update(k.encode() + np.ascontiguousarray(arrays[k]).tobytes())
    out = sum(a.nbytes for a in arrays.values()) / 2**20
    print(json.dumps({"seconds": seconds, "peak": peak - before, "out": out, "digest": digest.hexdigest()}))


def train_child(root: str, side: str, aggregation: str) -> None:
    import shutil
    import threading

    import pyarrow.parquet as pq

    from repeval.config import parse_config
    from repeval.ray_utils import init_ray
    from repeval.store import EmbeddingStore
    from repeval.tuning.data import probe_data
    from repeval.tuning.grid import GroupInput, run_groups

    cfg = parse_config(
        {
            "run": {"seeds": 1, "bootstrap_resamples": 0},
            "experiments": [
                {
                    "task": {"name": "t", "type": "multiclass_classification", "embedding_aggregation": aggregation},
                    "datasets": [{"name": "ds", "type": "catalog", "manifest": "m.csv", "label_column": "y"}],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [
                        {"name": "lin", "type": "linear", "epochs": 2, "batch_size": 1000},
                        {"name": "lin-std", "type": "linear", "epochs": 2, "batch_size": 1000, "standardize": True},
                    ],
                    "metrics": ["accuracy"],
                }
            ],
        }
    )
    rows = pq.read_table(f"{root}/rows.parquet")
    init_ray(object_store_memory=6 * 1024**3)
    shm0, anon0 = shutil.disk_usage("/dev/shm").used / 2**20, _rss_mb("RssAnon")
    data = probe_data("multiclass_classification", rows, EmbeddingStore(root, create=False), "ds", "m", ["noise"],
                      aggregation)  # fmt: skip
    if side == "repeval":
        from repeval.tuning.grid import share

        ref, view = share(data)
        del data
        inp = GroupInput(cfg.experiments[0], "ds", "m", view, "g", ref)
    else:
        inp = GroupInput(cfg.experiments[0], "ds", "m", data, "g")
    peak = {"anon": 0.0, "shm": 0.0, "worker": 0.0}
    done = threading.Event()
    import psutil
    import ray._private.worker as w

    raylet = psutil.Process(int(w._global_node.all_processes["raylet"][0].process.pid))

    def worker_heap() -> float:
        """The largest heap (``RssAnon``) among Ray's worker processes: a trial's."""
        out = 0.0
        for p in raylet.children(recursive=True):
            try:
                with open(f"/proc/{p.pid}/status") as fh:
                    anon = next(int(ln.split()[1]) for ln in fh if ln.startswith("RssAnon:"))
            except (OSError, StopIteration):
                continue
            out = max(out, anon / 1024)
        return out

    def sample() -> None:
        while not done.is_set():
            peak["anon"] = max(peak["anon"], _rss_mb("RssAnon") - anon0)
            peak["shm"] = max(peak["shm"], shutil.disk_usage("/dev/shm").used / 2**20 - shm0)
            peak["worker"] = max(peak["worker"], worker_heap())
            done.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.perf_counter()
    (g,) = run_groups(cfg, [inp], tempfile.mkdtemp(prefix="bench_probe_data_tune_"))
    seconds = time.perf_counter() - t
    end = _rss_mb("RssAnon") - anon0
    done.set()
    th.join()
    acc = [r["value"] for r in g.rows if r["scenario"] == "clean" and r["metric"] == "accuracy" and not r["label"]]
    print(json.dumps({"seconds": seconds, "anon_end": end, "anon_peak": peak["anon"], "shm": peak["shm"],
                      "worker": peak["worker"], "acc": acc[0] if acc else None}))  # fmt: skip


def trial_child(root: str, side: str, aggregation: str) -> None:
    from dataclasses import replace

    import pyarrow.parquet as pq

    from repeval.config.probe import ProbeConfig
    from repeval.probes import train_probes
    from repeval.probes.inputs import Preprocess
    from repeval.store import EmbeddingStore
    from repeval.tuning.data import probe_data

    rows = pq.read_table(f"{root}/rows.parquet")
    data = probe_data("multiclass_classification", rows, EmbeddingStore(root, create=False), "ds", "m", ["noise"],
                      aggregation)  # fmt: skip
    for a in (data.x_train, data.x_val, *(x for x, _, _ in data.tests.values())):
        a.flags.writeable = False  # as a trial holds them: views of the object store's copy
    cfgs = [
        ProbeConfig(hidden_units=[], batch_size=1000, epochs=3, patience=10, standardize=st) for st in (False, True)
    ]
    anon0 = _rss_mb("RssAnon")
    with AnonPeak() as peak:
        t = time.perf_counter()
        if side == "repeval":
            results = train_probes([(c, 0) for c in cfgs], data)
        else:
            results = []
            for c in cfgs:
                prep = Preprocess(data.x_train, c.standardize, None)
                copy = replace(
                    data, x_train=prep(data.x_train), x_val=prep(data.x_val),
                    tests={sid: (prep(x), y, ids) for sid, (x, y, ids) in data.tests.items()},
                )  # fmt: skip
                results += train_probes([(c.model_copy(update={"standardize": False}), 0)], copy)
                del copy
        seconds = time.perf_counter() - t
    digest = hashlib.sha256(b"".join(r.test_scores[sid].tobytes() for r in results for sid in sorted(r.test_scores)))
    out = {
        "seconds": seconds,
        "peak": peak.peak - anon0,
        "digest": digest.hexdigest(),
        "x_train": data.x_train.nbytes / 2**20,
    }
    print(json.dumps(out))


def run(root: str, side: str, aggregation: str, flag: str = "--child") -> dict:
    r = subprocess.run(
        [sys.executable, __file__, flag, root, side, aggregation], capture_output=True, text=True, check=False
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--frames", type=int, default=0, help="mean frames per track (0: mean embeddings)")
    ap.add_argument("--part-rows", type=int, default=256)
    ap.add_argument("--train", action="store_true", help="also: memory while one group trains (embedded Ray)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--trial", action="store_true", help="also: a trial's memory while its stack trains (in process)")
    ap.add_argument("--train-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--trial-child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.train_child:
        train_child(*args.train_child)
        return
    if args.trial_child:
        trial_child(*args.trial_child)
        return
    aggregation = "attention" if args.frames else "mean"
    for n in args.rows:
        with tempfile.TemporaryDirectory(prefix="bench_probe_data_") as root:
            t = time.perf_counter()
            build(root, n, args.dim, args.frames, args.part_rows)
            print(f"{n:,} tracks × {args.dim} ({aggregation}{f', {args.frames} frames each on average' if args.frames else ''}), "
                  f"{args.part_rows} rows per file: store written in {time.perf_counter() - t:.1f} s", flush=True)  # fmt: skip
            ours, base = run(root, "repeval", aggregation), run(root, "baseline", aggregation)
            same = "identical arrays" if ours["digest"] == base["digest"] else "ARRAYS DIFFER"
            for name, r in (("repeval", ours), ("baseline", base)):
                print(f"  {name:<8} {r['seconds']:7.2f} s  peak +{r['peak']:8.1f} MiB  ({r['peak'] / r['out']:.2f}× "
                      f"the output's {r['out']:.1f} MiB)")  # fmt: skip
            print(f"  repeval / baseline: time {ours['seconds'] / base['seconds']:.2f}×, peak memory "
                  f"{ours['peak'] / base['peak']:.2f}× — {same}", flush=True)  # fmt: skip
            if args.trial:
                ours, base = (run(root, side, aggregation, "--trial-child") for side in ("repeval", "baseline"))
                same = "identical test scores" if ours["digest"] == base["digest"] else "TEST SCORES DIFFER"
                print(f"  a trial's stack (a plain and a standardised linear probe, 3 epochs; training split "
                      f"{ours['x_train']:.0f} MiB, read-only):")  # fmt: skip
                for name, r in (("repeval", ours), ("baseline", base)):
                    print(f"  {name:<8} {r['seconds']:7.2f} s  peak heap +{r['peak']:8.1f} MiB "
                          f"({r['peak'] / r['x_train']:.2f}× the training split)")  # fmt: skip
                print(f"  repeval / baseline: time {ours['seconds'] / base['seconds']:.2f}×, peak heap "
                      f"{ours['peak'] / base['peak']:.2f}× — {same}", flush=True)  # fmt: skip
            if not args.train:
                continue
            ours, base = (
                run(root, "repeval", aggregation, "--train-child"),
                run(root, "baseline", aggregation, "--train-child"),
            )
            print(f"  while one group trains (two linear probes, one standardised, 2 epochs; training split "
                  f"{0.8 * n * args.dim * 4 * max(1, args.frames) / 2**20:.0f} MiB):")  # fmt: skip
            for name, r in (("repeval", ours), ("baseline", base)):
                print(f"  {name:<8} {r['seconds']:7.2f} s  driver heap +{r['anon_end']:8.1f} MiB at the end "
                      f"(peak +{r['anon_peak']:.1f})  object store +{r['shm']:8.1f} MiB  largest trial heap "
                      f"{r['worker']:8.1f} MiB  test acc {r['acc']}")  # fmt: skip
            total = [r["anon_end"] + r["shm"] for r in (ours, base)]
            print(f"  repeval / baseline: driver heap + object store {total[0]:.0f} / {total[1]:.0f} MiB = "
                  f"{total[0] / total[1]:.2f}×", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
