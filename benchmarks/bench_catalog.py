"""Read a catalog-scale store partition the way the control plane does: time, CPU time and storage requests.

    python benchmarks/bench_catalog.py [--rows 200000 1000000] [--part-rows 256] [--repeat 3]

Writes one store partition of ``rows`` tracks (16-float embeddings) in part files of ``part-rows`` rows — what a
run writes (``run.part_rows``, default 256: 3,907 files for a million tracks) —, finished as a run finishes it. Then
times, best of ``repeat``, the reads ``repeval plan``, the embedding stage's to-do, ``repeval store ls`` / ``store
show`` and a partition's finish make, each through a filesystem that counts the storage requests (``open``: a file
opened, ``info``: a file's metadata asked, ``list``: a folder listed) — on object storage each is a round trip:

- track ids: ``Partition.done_ids()`` (the to-do of ``repeval run`` and ``repeval plan``);
- counts: ``Partition.counts()``, the row and error counts from the footers (``store ls``);
- show: ``repeval.store.inspect.show_text`` (``store show``: footers, four columns, the first rows);
- finish: ``Partition.finish`` (after a partition's last part file: ids checked for duplicates, rows counted).

Against a script doing the same reads with pyarrow: the partition folder read as a dataset, ``pq.read_table(folder,
columns=[...])`` for the ids (then ``pc.unique``) and for show's columns, ``ds.dataset(folder).count_rows()`` for the
counts — multi-threaded, but it cannot name a part file that is not readable Parquet (repeval's error says which and
what to do) nor read around a stopped track removal's files (``_rewrite.json``), which repeval's reads do. Ratios
are the script's / repeval's (above 1: repeval faster or fewer requests). Each read also prints its peak memory: the
peak RSS over its calls above the RSS before them (Linux's resettable peak, ``/proc/self/clear_refs``). docs/benchmarks.md, session 52, has the
figures of repeval's reads before that session (a dataset built per part file: ``pq.read_table(file)``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from bench_catalog_plan import _rss_mb

from repeval.testing.fs import Counting

DIM = 16
SHOW_COLUMNS = ["track_id", "split", "n_frames", "audio_seconds"]


def build(root: str, n: int, part_rows: int) -> dict[str, Any]:
    """The partition ``ds/m/clean`` of ``n`` rows in files of ``part_rows``, finished; returns its manifest."""
    from repeval.store import EmbeddingStore, PartitionWriter
    from repeval.store.layout import embedding_schema

    rng = np.random.default_rng(0)
    schema = embedding_schema(DIM)
    part = EmbeddingStore(root).partition("ds", "m", "clean")
    part.stamp({"bench": 1}, {"config_hash": "bench"})
    writer = PartitionWriter(part, schema, part_rows)
    ids = pc.binary_join_element_wise("trk", pc.cast(pa.array(np.arange(n)), pa.string()), "")
    splits = pa.array(np.array(["train", "validation", "test"])[np.arange(n) % 3])
    for a in range(0, n, part_rows):
        k = min(part_rows, n - a)
        cols = {
            "track_id": ids[a : a + k],
            "split": splits[a : a + k],
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(k * DIM, np.float32)), DIM),
            "n_frames": pa.array(np.ones(k, np.int32)),
            "n_chunks": pa.array(np.ones(k, np.int32)),
            "audio_seconds": pa.array(np.full(k, 30.0, np.float32)),
        }
        writer.add_table(pa.table([cols.get(f.name, pa.nulls(k, f.type)) for f in schema], schema=schema))
    writer.flush()
    return part.finish({"model": "m"})


def _steps(part: Any, fs: pafs.FileSystem) -> tuple[dict[str, Callable[[], Any]], dict[str, Callable[[], Any] | None]]:
    """repeval's reads of ``part`` and the script's (``None``: no script does it)."""
    from repeval.store.inspect import show_text

    steps = {
        "track ids": lambda: part.done_ids(),
        "counts": lambda: part.counts(),
        "show": lambda: show_text(part),
        "finish": lambda: part.finish({"model": "m"}),
    }
    script: dict[str, Callable[[], Any] | None] = {
        "track ids": lambda: pc.unique(
            pq.read_table(part.path, columns=["track_id"], filesystem=fs).column(0).combine_chunks()
        ),
        "counts": lambda: pads.dataset(part.path, filesystem=fs, format="parquet").count_rows(),
        "show": lambda: pq.read_table(part.path, columns=SHOW_COLUMNS, filesystem=fs),
        "finish": None,
    }
    return steps, script


def _reset_peak() -> float:
    """Reset the process's peak RSS to its RSS now (Linux: ``5`` into ``/proc/self/clear_refs``); the RSS now, MiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_mb("VmRSS")


def measure(fn: Callable[[], Any], handler: Counting, repeat: int) -> tuple[float, float, dict[str, int], Any]:
    """Best wall and CPU seconds of ``repeat`` calls, the requests of one, and its result; ``measure.peak_mib``: the
    peak RSS over the calls above the RSS before them (what the read holds at once)."""
    walls, cpus = [], []
    before = _reset_peak()
    for _ in range(repeat):
        handler.clear()
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    measure.peak_mib = max(_rss_mb("VmHWM") - before, 0.0)  # type: ignore[attr-defined]
    return min(walls), min(cpus), dict(handler.n), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--part-rows", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from repeval.store import EmbeddingStore

    handler = Counting()
    fs = pafs.PyFileSystem(handler)
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            build(tmp, n, args.part_rows)
            part = EmbeddingStore(tmp, filesystem=fs, create=False).partition("ds", "m", "clean")
            n_files = len(part.part_files())
            print(
                f"{n:,} rows in {n_files:,} part files of {args.part_rows} rows (written in {time.perf_counter() - t0:.1f} s)"
            )
            steps, script = _steps(part, fs)
            for name, step in steps.items():
                wall, cpu, req, out = measure(step, handler, args.repeat)
                if (name == "track ids" and len(out) != n) or (name == "counts" and out != (n, 0)):
                    raise SystemExit(f"{name}: repeval read {out!r}, not {n} rows")
                peak = measure.peak_mib  # type: ignore[attr-defined]
                line = (
                    f"  {name:<9} repeval {wall:6.2f} s (CPU {cpu:5.2f} s, peak +{peak:.0f} MiB), "
                    f"{sum(req.values()):6,} requests {req}"
                )
                if script[name] is not None:
                    s_wall, s_cpu, s_req, s_out = measure(script[name], handler, args.repeat)
                    rows = s_out if isinstance(s_out, int) else len(s_out)
                    if rows != n:
                        raise SystemExit(f"{name}: the script read {rows} rows, not {n}")
                    s_peak = measure.peak_mib  # type: ignore[attr-defined]
                    line += (
                        f" | script {s_wall:6.2f} s (CPU {s_cpu:5.2f} s, peak +{s_peak:.0f} MiB), "
                        f"{sum(s_req.values()):6,} requests: "
                        f"{s_wall / wall:.2f}x the time, {sum(s_req.values()) / max(sum(req.values()), 1):.2f}x the "
                        "requests"
                    )
                print(line)


if __name__ == "__main__":
    main()
