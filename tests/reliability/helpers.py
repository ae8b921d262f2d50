"""Fixtures shared by the reliability tests: a tiny generated catalog, configs, subprocess runs."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from repeval.testing.badaudio import write_good

REPO = Path(__file__).resolve().parents[2]

#: two pitch classes; the probe separates them easily
CLASSES = {"low": 220.0, "high": 880.0}

#: a deliberately slow model (long FFT, tiny hop: ~0.1 s of CPU per second of audio) so that a run
#: spends several seconds embedding and a fault can land in the middle of it
SLOW_MODEL = {
    "id": "mfcc-slow",
    "type": "mfcc-stats",
    "params": {"sample_rate_hz": 8000, "n_fft": 4096, "hop_length": 16, "n_mels": 32, "n_mfcc": 10},
    "batch_size": 2,
}
FAST_MODEL = {
    "id": "mfcc-fast",
    "type": "mfcc-stats",
    "params": {"sample_rate_hz": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 20, "n_mfcc": 8},
}


def make_catalog(root: Path, per_class: int = 10, seconds: float = 2.0, extra: list[dict[str, str]] | None = None) -> Path:
    """``per_class`` tone files per class with a fixed split column (60/20/20); returns the manifest."""
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, freq in CLASSES.items():
        for i in range(per_class):
            split = "train" if i < 0.6 * per_class else "validation" if i < 0.8 * per_class else "test"
            tid = f"{label}-{i:03d}"
            write_good(audio / f"{tid}.wav", seconds, freq * (1 + 0.01 * i), seed=i)
            rows.append({"track_id": tid, "audio_path": f"audio/{tid}.wav", "label": label, "split": split})
    rows += extra or []
    manifest = root / "manifest.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["track_id", "audio_path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return manifest


def experiment(manifest: Path, models: list[Any], probes: list[dict[str, Any]] | None = None, **dataset: Any) -> dict:
    return {
        "task": {"name": "pitch", "type": "multiclass_classification"},
        "datasets": [
            {
                "name": "tones",
                "type": "catalog",
                "manifest": str(manifest),
                "label_column": "label",
                "split_column": "split",
                **dataset,
            }
        ],
        "deformations": [[{"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -3, "p": 1}}]],
        "embedding_models": models,
        "downstream_models": probes
        or [{"name": "linear", "hidden_units": [], "standardize": True, "learning_rate": 0.01, "batch_size": 8, "epochs": 15}],
        "metrics": ["accuracy", "f1_macro"],
    }


def write_config(path: Path, root: Path, experiments: list[dict], run_id: str = "r", **run: Any) -> Path:
    cfg = {
        "run": {"run_id": run_id, "store": str(root / "store"), "runs_dir": str(root / "runs"), "part_rows": 4, **run},
        "experiments": experiments,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_ADDRESS")}
    # PYTHONPATH: the checkout's package wins over whatever an (editable) install maps outside it
    pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", TMPDIR=str(tmp), RAY_DEDUP_LOGS="1", PYTHONPATH=pythonpath)
    return env


def start_cli(args: list[str], tmp: Path, cwd: Path | None = None) -> subprocess.Popen:
    """``python -m repeval.cli ARGS`` in its own session (so the test can clean up its process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "repeval.cli", *args],
        cwd=cwd or tmp,
        env=cli_env(tmp),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_cli(args: list[str], tmp: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    p = start_cli(args, tmp)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        reap(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def reap(p: subprocess.Popen) -> None:
    """Kill what is left of the process group this test started (Ray's helpers after a kill -9)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if p.poll() is None:
        p.wait(timeout=30)


def wait_for(predicate: Any, proc: subprocess.Popen | None = None, timeout: float = 300, poll_s: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fails if ``proc`` exits first (the fault would land after the run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before the fault could be injected")
        time.sleep(poll_s)
    raise AssertionError("timed out waiting for the fault point")


def store_rows(store_root: Path) -> dict[str, pa.Table]:
    """Every partition's rows sorted by track id (``dataset/model/scenario`` → table)."""
    from repeval.store import EmbeddingStore

    out = {}
    for part in EmbeddingStore(str(store_root)).partitions():
        t = part.read() if part.part_files() else None
        if t is not None:
            out[part.name] = t.sort_by("track_id")
    return out


def embeddings_of(table: pa.Table) -> tuple[list[str], np.ndarray]:
    emb = table.column("embedding").combine_chunks()
    mat = emb.values.to_numpy(zero_copy_only=False).reshape(len(emb), -1)
    return table.column("track_id").to_pylist(), mat


def results_of(run_dir: Path) -> list[tuple]:
    t = pq.read_table(run_dir / "results.parquet").to_pandas()
    keys = ["model", "probe", "seed", "scenario", "metric", "label"]
    t = t.sort_values(keys, na_position="first")
    return [(*(r[k] for k in keys), r["value"]) for _, r in t.iterrows()]
