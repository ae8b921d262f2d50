"""Plan (load + split) a catalog manifest of 100,000 and 1,000,000 rows: time and peak memory.

    python benchmarks/bench_catalog_plan.py [--rows 100000 1000000] [--format csv|parquet] [--no-baseline]

The manifest has a track id, an audio path (a few real wav files), one of 50 labels and an
artist group (7 tracks per artist), and no split column, so planning streams the manifest in
batches, validates every row (labels, paths, file existence, duplicate ids) and computes a seeded
group-aware stratified 80/10/10 split. Each size runs in a fresh subprocess so its peak RSS
(``ru_maxrss``) is its own; the baseline is the RSS after importing repeval, before loading.

The baseline does the same work the way a script does it, in memory with pandas (the manifest read
whole — pandas 3 keeps strings in Arrow —, ``duplicated(keep="first")``, one ``os.path.isfile`` per distinct
path, each artist's most common genre, artists shuffled per genre with numpy and cut 80/10/10): each size
prints its time and peak memory and repeval's ratios to them.

Past ``PARTITION_ROWS`` rows, planning spills to Arrow IPC files that the rows table is then
memory-mapped from, so two peaks are printed: the peak RSS (``ru_maxrss``: the heap plus the
file-backed pages of mapped spill files that were read — page cache the kernel can reclaim) and
the peak anonymous memory (``RssAnon``, the heap, sampled every millisecond by a thread), which
is what must not grow with the row count.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import soundfile as sf

N_FILES = 8
N_LABELS = 50


def _rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class AnonPeak:
    """Samples ``RssAnon`` every millisecond in a thread (the kernel keeps no peak of it)."""

    def __init__(self) -> None:
        import threading

        self.peak = _rss_mb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_mb("RssAnon"))

    def __enter__(self) -> AnonPeak:
        sys.setswitchinterval(0.0005)  # let the sampler in between the planner's Python steps
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb("RssAnon"))


def make_manifest(out: Path, n_rows: int, fmt: str) -> Path:
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for i in range(N_FILES):
        t = np.arange(1600) / 16000
        sf.write(audio / f"clip{i}.wav", (0.1 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), 16000)
    idx = pa.array(np.arange(n_rows))
    rng = np.random.default_rng(0)
    table = pa.table(
        {
            "track_id": pc.binary_join_element_wise("trk", pc.cast(idx, pa.string()), ""),
            "audio_path": pc.binary_join_element_wise(
                "audio/clip", pc.cast(pa.array(np.arange(n_rows) % N_FILES), pa.string()), ".wav", ""
            ),
            "genre": pc.binary_join_element_wise(
                "genre", pc.cast(pa.array(rng.integers(0, N_LABELS, n_rows)), pa.string()), ""
            ),
            "artist": pc.binary_join_element_wise("artist", pc.cast(pa.array(np.arange(n_rows) // 7), pa.string()), ""),
        }
    )
    path = out / f"manifest_{n_rows}.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path, row_group_size=65_536)
    else:
        pacsv.write_csv(table, path)
    return path


def child(manifest: str) -> None:
    """Runs in a fresh process: plan the manifest and print a JSON line of measurements."""
    from repeval.config.data import DatasetConfig, TaskConfig
    from repeval.datasets import load_dataset
    from repeval.datasets.splits import split_counts

    ds = DatasetConfig(name="bench", type="catalog", manifest=manifest, label_column="genre", group_column="artist")
    task = TaskConfig(name="genre", type="multiclass_classification")
    baseline = _rss_mb()
    anon_baseline = _rss_mb("RssAnon")
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        rows, report = load_dataset(ds, task)
        seconds = time.perf_counter() - t0
        splits = split_counts(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": rows.num_rows,
                "seconds": seconds,
                "baseline_mb": baseline,
                "peak_mb": peak,
                "anon_baseline_mb": anon_baseline,
                "anon_peak_mb": anon.peak,
                "table_mb": rows.nbytes / 2**20,
                "table_on_heap_mb": pa.total_allocated_bytes() / 2**20,
                "splits": splits,
                "problems": report.lines(),
            }
        )
    )


def baseline_child(manifest: str) -> None:
    """Runs in a fresh process: the same plan in memory with pandas (see the module docstring)."""
    import pandas as pd

    from repeval.datasets.splits import _allocate

    baseline = _rss_mb()
    anon_baseline = _rss_mb("RssAnon")
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        if manifest.endswith(".parquet"):
            df = pd.read_parquet(manifest)
        else:
            df = pd.read_csv(manifest, dtype=str, keep_default_na=False)
        dup = df.duplicated("track_id", keep="first") & (df["track_id"] != "")
        base = os.path.dirname(manifest)
        exists = {p: os.path.isfile(os.path.join(base, p)) for p in df["audio_path"].unique()}
        ok = ~dup & df["audio_path"].map(exists).astype(bool) & (df["genre"] != "")
        df = df[ok]
        # a unit (artist) takes its most common genre, ties to the alphabetically first
        pairs = df.groupby(["artist", "genre"]).size().reset_index(name="n")
        pairs = pairs.sort_values(["artist", "n", "genre"], ascending=[True, False, True]).drop_duplicates("artist")
        rng = np.random.default_rng(0)
        unit_split = {}
        for _, units in pairs.groupby("genre"):
            names = np.sort(units["artist"].to_numpy())
            bounds = np.cumsum(_allocate(len(names), (0.8, 0.1, 0.1)))
            codes = np.searchsorted(bounds, np.arange(len(names)), side="right")
            unit_split.update(zip(names[rng.permutation(len(names))], codes, strict=True))
        names = np.array(["train", "validation", "test"])
        df = df.assign(split=names[df["artist"].map(unit_split).to_numpy(dtype=np.int64)])
        seconds = time.perf_counter() - t0
        splits = df["split"].value_counts().to_dict()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "rows": len(df),
                "seconds": seconds,
                "baseline_mb": baseline,
                "peak_mb": peak,
                "anon_baseline_mb": anon_baseline,
                "anon_peak_mb": anon.peak,
                "splits": {str(k): int(v) for k, v in splits.items()},
            }
        )
    )


def _run_child(flag: str, manifest: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, flag, str(manifest)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--format", choices=["csv", "parquet"], default="csv")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pandas baseline")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.baseline_child:
        baseline_child(args.baseline_child)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            t0 = time.perf_counter()
            manifest = make_manifest(Path(tmp), n, args.format)
            made = time.perf_counter() - t0
            r = _run_child("--child", manifest)
            results[n] = r
            size_mb = manifest.stat().st_size / 2**20
            print(
                f"{n:>9,} rows ({args.format}, {size_mb:6.1f} MB, generated in {made:4.1f} s): planned in "
                f"{r['seconds']:5.2f} s ({n / r['seconds']:,.0f} rows/s) | peak RSS {r['peak_mb']:7.1f} MB "
                f"(baseline after imports {r['baseline_mb']:6.1f} MB, +{r['peak_mb'] - r['baseline_mb']:6.1f} MB) | "
                f"peak anonymous {r['anon_peak_mb']:7.1f} MB (+{r['anon_peak_mb'] - r['anon_baseline_mb']:6.1f} MB) | "
                f"rows table {r['table_mb']:6.1f} MB ({r['table_on_heap_mb']:5.1f} MB of Arrow heap) | "
                f"splits {r['splits']}"
            )
            if r["problems"]:
                print("   problems:", r["problems"])
            if not args.no_baseline:
                b = _run_child("--baseline-child", manifest)
                print(
                    f"{'':>9}   baseline (pandas, in memory): {b['seconds']:5.2f} s | peak RSS {b['peak_mb']:7.1f} MB "
                    f"(+{b['peak_mb'] - b['baseline_mb']:6.1f} MB) | peak anonymous +{b['anon_peak_mb'] - b['anon_baseline_mb']:6.1f} MB"
                    f" | splits {b['splits']}\n"
                    f"{'':>9}   repeval vs baseline: {b['seconds'] / r['seconds']:.2f}x the speed, "
                    f"{(r['peak_mb'] - r['baseline_mb']) / max(b['peak_mb'] - b['baseline_mb'], 1e-9):.2f}x the RSS and "
                    f"{(r['anon_peak_mb'] - r['anon_baseline_mb']) / max(b['anon_peak_mb'] - b['anon_baseline_mb'], 1e-9):.2f}x "
                    "the anonymous memory above each one's imports"
                )
    if len(results) >= 2:
        small, large = min(results), max(results)
        rs, rl = results[small], results[large]
        print(
            f"{large // small}x the rows: {rl['seconds'] / rs['seconds']:.1f}x the time, "
            f"{rl['peak_mb'] / rs['peak_mb']:.2f}x the peak RSS, "
            f"{(rl['peak_mb'] - rl['baseline_mb']) / max(rs['peak_mb'] - rs['baseline_mb'], 1e-9):.1f}x the RSS above "
            f"baseline ({(rl['peak_mb'] - rl['baseline_mb']) * 2**20 / large:.0f} B/row; the planned rows table itself "
            f"is {rl['table_mb'] * 2**20 / large:.0f} B/row, memory-mapped)"
        )
        anon_s = rs["anon_peak_mb"] - rs["anon_baseline_mb"]
        anon_l = rl["anon_peak_mb"] - rl["anon_baseline_mb"]
        print(
            f"peak anonymous memory above baseline: {anon_s:.1f} MB at {small:,} rows, {anon_l:.1f} MB at {large:,} rows "
            f"-> {anon_l / max(anon_s, 1e-9):.2f}x for {large // small}x the rows"
        )


if __name__ == "__main__":
    main()
