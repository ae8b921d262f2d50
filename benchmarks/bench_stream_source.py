"""The head of an embedding stream at catalog scale: a to-do table of N rows into Ray Data.

    python benchmarks/bench_stream_source.py [--rows 200000 1000000] [--drain-rows 100000]

repeval's stream reads its to-do rows through ``repeval.pipeline.source.TodoSource`` (one read task per
block, the rows carried inside the task, the read fused into the decode task), in blocks of at most 64 rows
and at most ``MAX_STREAM_BLOCKS`` blocks (``repeval.pipeline.stream.block_rows``); it also runs with 64-row
blocks whatever the size, to separate the two changes. The baseline is what the engine did before
session 25 — ``ray.data.from_arrow`` of 64-row slices, read by a ``map_batches(batch_size=64)`` stage. Both feed the same stand-in decode task (it counts its rows), so
the figures are the stream head's own cost: what the driver spends before the first block is decoded.

Each (N, side) runs in a fresh process with its own Ray (2 CPUs, started as repeval starts it; its workers up
and Ray Data's helper actors started before the clock, see ``warm.py``) and prints
the seconds from the to-do table to the first decoded block, the driver's peak anonymous memory
(``RssAnon``, sampled every millisecond) above what it held before building the stream, and what Ray's
object store holds, after the first 20 blocks (by then Ray Data has taken every input block; what the
driver puts lives in the object store, not in the driver's memory). Sizes up to ``--drain-rows`` are also run to the
end (every row counted) and print the total time — that part is Ray Data's per-task cost (~10–20 ms per
task on 2 CPUs), the same on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_catalog_plan import AnonPeak, _rss_mb
from warm import start_ray_data, warm_ray_workers

BLOCK_ROWS = 64
FIRST_BLOCKS = 20


def todo_table(n: int) -> pa.Table:
    """A to-do table as a stream plans it: catalog-like ids and paths, a split, each row's scenario indices."""
    i = np.arange(n)
    ids = pa.array(np.char.add("track-", np.char.zfill(i.astype(str), 9)))
    paths = pa.array(
        np.char.add(
            np.char.add("/data/catalog/audio/", np.char.zfill((i % 1000).astype(str), 3)),
            np.char.add(np.char.add("/track-", np.char.zfill(i.astype(str), 9)), ".mp3"),
        )
    )
    split = pa.array(np.where(i % 10 < 8, "train", np.where(i % 10 < 9, "validation", "test")))
    test = (i % 10 == 9).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(1 + 4 * test)]).astype(np.int32)  # test rows: clean + 4 scenarios
    values = _values(test)
    return pa.table(
        {
            "track_id": ids,
            "audio_path": paths,
            "split": split,
            "scenarios": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int16())),
        }
    )


def _values(test: np.ndarray) -> np.ndarray:
    lengths = 1 + 4 * test
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (np.arange(lengths.sum()) - starts).astype(np.int16)


def count_rows(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The stand-in decode task: one output row per block, holding the block's row count."""
    return {"rows": np.array([len(batch["track_id"])])}


def object_store_use() -> tuple[float, int]:
    """MiB and objects in Ray's object store (the driver's puts live there, outside its own memory)."""
    import re

    import ray
    from ray._private.internal_api import memory_summary

    text = memory_summary(address=ray.get_runtime_context().gcs_address, stats_only=True)
    m = re.search(r"Plasma memory usage (\d+) MiB, (\d+) objects", text)
    return (float(m.group(1)), int(m.group(2))) if m else (float("nan"), 0)


def child(side: str, n: int, drain: bool) -> None:
    from repeval.pipeline.stream import block_rows
    from repeval.ray_utils import init_ray

    init_ray(num_cpus=2)
    # both sides start timing with Ray's workers up, the modules a decode task imports imported and Ray Data's
    # helper actors running (as bench_embed.py does): what is timed is the stream head
    warm_ray_workers(("ray.data", "repeval.pipeline.source"))
    start_ray_data()
    todo = todo_table(n)
    anon0 = _rss_mb("RssAnon")
    with AnonPeak() as peak:
        t0 = time.perf_counter()
        if side.startswith("repeval"):
            from repeval.pipeline.source import read_todo

            rows_per_block = block_rows(n, 2) if side == "repeval" else BLOCK_ROWS
            ds = read_todo(todo, rows_per_block, num_cpus=1).map_batches(count_rows, batch_size=None, num_cpus=1)
        else:
            import ray.data

            blocks = [todo.slice(i, BLOCK_ROWS) for i in range(0, n, BLOCK_ROWS)]
            ds = ray.data.from_arrow(blocks).map_batches(count_rows, batch_size=BLOCK_ROWS, num_cpus=1)
        built = time.perf_counter() - t0
        rows = blocks_seen = 0
        first = None
        plasma = (float("nan"), 0)
        for batch in ds.iter_batches(batch_size=None):
            if first is None:
                first = time.perf_counter() - t0
            rows += int(batch["rows"].sum())
            blocks_seen += len(batch["rows"])
            if blocks_seen == FIRST_BLOCKS:
                plasma = object_store_use()
            if blocks_seen >= FIRST_BLOCKS and not drain:
                break
        total = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "built_s": built,
                "first_s": first,
                "total_s": total,
                "rows": rows,
                "anon_mb": peak.peak - anon0,
                "plasma_mb": plasma[0],
                "plasma_objects": plasma[1],
                "todo_mb": todo.nbytes / 2**20,
                "blocks": -(-n // (block_rows(n, 2) if side == "repeval" else BLOCK_ROWS)),
            }
        )
    )


def run_child(side: str, n: int, drain: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--rows", str(n)] + (["--drain"] if drain else [])
    out = subprocess.run(
        cmd, check=True, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--drain-rows", type=int, default=100_000, help="run sizes up to this to the end")
    parser.add_argument("--child", choices=["repeval", "repeval-64", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows[0], args.drain)
        return
    for n in args.rows:
        drain = n <= args.drain_rows
        sides = {name: run_child(name, n, drain) for name in ("repeval", "repeval-64", "baseline")}
        b = sides["baseline"]
        print(f"{n:>9,} to-do rows ({b['todo_mb']:.1f} MB):")
        for name, label in (("repeval", "repeval"), ("repeval-64", "repeval, 64-row blocks"), ("baseline", "baseline")):
            r = sides[name]
            print(
                f"  {label:<23} {r['blocks']:>6,} blocks: built {r['built_s']:6.2f} s, first block decoded at "
                f"{r['first_s']:6.2f} s, driver peak anonymous +{r['anon_mb']:7.1f} MB, object store "
                f"{r['plasma_mb']:5.0f} MiB in {r['plasma_objects']:,} objects"
                + (f", all {r['rows']:,} rows in {r['total_s']:6.1f} s" if drain else "")
            )
        for name in ("repeval", "repeval-64"):
            r = sides[name]
            print(
                f"  {name} vs baseline: first block {b['first_s'] / r['first_s']:.1f}x sooner, "
                f"{r['anon_mb'] / max(b['anon_mb'], 1e-9):.3f}x the driver memory, "
                f"{r['plasma_mb'] / max(b['plasma_mb'], 1e-9):.2f}x the object store"
                + (f", {b['total_s'] / r['total_s']:.2f}x the speed to the end" if drain else "")
            )
        lost = {name: r["rows"] for name, r in sides.items() if drain and r["rows"] != n}
        if lost:
            raise SystemExit(f"rows lost: {lost} of {n}")


if __name__ == "__main__":
    main()
