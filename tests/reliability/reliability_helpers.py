"""Fixtures shared by the reliability tests: a tiny generated catalog, configs, subprocess runs."""

from __future__ import annotations

import csv
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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


def make_catalog(
    root: Path, per_class: int = 10, seconds: float = 2.0, extra: list[dict[str, str]] | None = None
) -> Path:
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
        or [
            {
                "name": "linear",
                "hidden_units": [],
                "standardize": True,
                "learning_rate": 0.01,
                "batch_size": 8,
                "epochs": 15,
            }
        ],
        "metrics": ["accuracy", "f1_macro"],
    }


def write_config(path: Path, root: Path, experiments: list[dict], run_id: str = "r", **run: Any) -> Path:
    cfg = {
        "run": {"run_id": run_id, "store": str(root / "store"), "runs_dir": str(root / "runs"), "part_rows": 4, **run},
        "experiments": experiments,
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def cli_env(tmp: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The CLI's environment: embedded Ray (no RAY_ADDRESS), auth off, unbuffered output, a short TMPDIR
    (Ray's socket paths under pytest's long tmp paths exceed the 107-byte AF_UNIX limit); made from ``environ``
    (``os.environ`` by default)."""
    env = {k: v for k, v in (os.environ if environ is None else environ).items() if not k.startswith("RAY_ADDRESS")}
    # PYTHONPATH: the checkout's package wins over whatever an (editable) install maps outside it
    pythonpath = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(
        RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1", TMPDIR=str(tmp), RAY_DEDUP_LOGS="1", PYTHONPATH=pythonpath
    )
    return env


class Proc:
    """A ``repeval`` CLI subprocess whose stdout/stderr are drained by threads (lines queued as they come)."""

    def __init__(
        self, args: list[str], cwd: Path, env: dict[str, str] | None = None, environ: dict[str, str] | None = None
    ) -> None:
        """``env``: set on top of :func:`cli_env`'s environment, made from ``environ`` (``os.environ`` by default)."""
        self.tmpdir = Path(tempfile.mkdtemp(prefix="rvrel-"))
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "repeval.cli", *args],
            cwd=cwd,
            env={**cli_env(self.tmpdir, environ), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: the test can clean up Ray's helpers
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.lines: queue.Queue[str] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._drain, args=(self.popen.stdout, self.out, True), daemon=True),
            threading.Thread(target=self._drain, args=(self.popen.stderr, self.err, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _drain(self, stream: Any, into: list[str], queued: bool) -> None:
        for line in stream:
            into.append(line)
            if queued:
                self.lines.put(line)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def poll(self) -> int | None:
        """The exit status once the process has ended, without reaping it (its pid and process group
        stay reserved until :meth:`wait`, so :meth:`reap` can never signal a stranger's group)."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        info = os.waitid(os.P_PID, self.popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def wait_line(self, prefix: str | tuple[str, ...], timeout: float = 900) -> str:
        """Block until a stdout line starting with ``prefix`` (one of them; fails if the process ends first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.poll() is not None and self.lines.empty():
                    raise AssertionError(f"exit {self.poll()} before a line {prefix!r}:\n{self.text()}") from None
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line {prefix!r} in time:\n{self.text()}")

    def wait(self, timeout: float = 900) -> int:
        """Wait for the exit, kill what is left of its process group (Ray's helpers after a kill -9), reap."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        self.reap()
        for t in self._threads:
            t.join(timeout=10)
        assert self.popen.returncode is not None
        return self.popen.returncode

    def reap(self) -> None:
        if self.popen.returncode is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # the leader is not reaped yet: the group is still ours
            except (ProcessLookupError, PermissionError):
                pass
            self.popen.wait(timeout=60)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)[-4000:]

    def descendants_left(self) -> list[str]:
        """The live processes of the command's session but the command itself (its embedded Ray's processes keep
        the session, whatever their parent or process group): ``pid name``."""
        return [
            f"{pid} {name[:80]}" for pid, name in live_processes(lambda stat: stat[3] == self.pid) if pid != self.pid
        ]


def live_processes(select: Any) -> list[tuple[int, str]]:
    """``(pid, command line)`` of the processes not yet ended (zombies excluded) whose ``/proc/PID/stat`` fields after
    the command name (state, ppid, pgrp, session, …) ``select`` accepts."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
        except OSError:
            continue
        fields = [int(f) if f.lstrip("-").isdigit() else f for f in stat]
        if fields[0] != "Z" and select(fields):
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def node_processes(node_id: str) -> set[int]:
    """The live processes of the Ray node ``node_id``: its GCS and raylet (named in their arguments) and the raylet's
    dashboard and runtime-env agents (workers come and go)."""
    daemons = {pid for pid, cmdline in live_processes(lambda stat: True) if node_id in cmdline}
    agents = live_processes(lambda stat: stat[1] in daemons)
    return daemons | {
        pid for pid, cmdline in agents if cmdline.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent"))
    }


def run_cli(args: list[str], tmp: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    p = Proc(args, tmp)
    rc = p.wait(timeout)
    return subprocess.CompletedProcess(p.popen.args, rc, "".join(p.out), "".join(p.err))


def wait_for(predicate: Any, proc: Proc | None = None, timeout: float = 300, poll_s: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fails if ``proc`` exits first (the fault would land after the run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"the run ended (exit {proc.poll()}) before the fault could be injected:\n{proc.text()}"
            )
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


def expected_ids(manifest: Path, models: list[str], scenarios: tuple[str, ...] = ("D1",)) -> dict[str, set[str]]:
    """``tones/<model>/<scenario>`` → the track ids that partition must hold when complete (clean: all; deformed: test)."""
    rows = list(csv.DictReader(manifest.open()))
    out = {}
    for m in models:
        out[f"tones/{m}/clean"] = {r["track_id"] for r in rows}
        for s in scenarios:
            out[f"tones/{m}/{s}"] = {r["track_id"] for r in rows if r["split"] == "test"}
    return out


def check_store(store_root: Path, expected: dict[str, set[str]]) -> dict[str, int]:
    """Invariants that must hold at any moment, even right after a kill -9; returns rows+errors per partition.

    - every visible part file (``part-*``, committed by rename) is a complete, readable Parquet file;
    - no track id appears twice in a partition (rows and error records together);
    - a partition with a manifest (= marked complete) holds exactly its expected ids, and the
      manifest's row and error counts are the real ones.
    """
    from repeval.store import EmbeddingStore

    done = {}
    for part in EmbeddingStore(str(store_root)).partitions():
        # a reader reads the manifest first: once it exists every part file is in place
        m = part.manifest()
        rows = [pq.read_table(f, columns=["track_id"]).column(0).to_pylist() for f in part.part_files()]
        errs = [pq.read_table(f, columns=["track_id"]).column(0).to_pylist() for f in part.error_files()]
        ids = [t for r in rows for t in r]
        err_ids = [t for r in errs for t in r]
        both = ids + err_ids
        assert len(both) == len(set(both)), f"{part.name}: duplicate track ids"
        if m is not None:
            assert set(both) == expected[part.name], (
                f"{part.name} is marked complete but lacks {expected[part.name] - set(both)}"
            )
            assert (m["rows"], m["errors"]) == (len(ids), len(err_ids)), f"{part.name}: manifest counts are wrong"
        done[part.name] = len(both)
    return done


def complete(store_root: Path) -> set[str]:
    from repeval.store import EmbeddingStore

    return {p.name for p in EmbeddingStore(str(store_root)).partitions() if p.complete}


def assert_same_store(a: Path, b: Path) -> int:
    """Both stores hold the same partitions, rows and embeddings, bit for bit; returns the row count."""
    ra, rb = store_rows(a), store_rows(b)
    assert sorted(ra) == sorted(rb)
    n = 0
    for name in ra:
        ia, ea = embeddings_of(ra[name])
        ib, eb = embeddings_of(rb[name])
        assert ia == ib, name
        assert ea.tobytes() == eb.tobytes(), f"{name}: embeddings differ"
        for col in ("n_frames", "n_chunks", "audio_seconds", "deformation_params", "split"):
            assert ra[name].column(col).equals(rb[name].column(col)), f"{name}: {col} differs"
        n += len(ia)
    return n


def as_earlier(recorded: dict) -> dict:
    """A group's record as a repeval before the partitions' writes and the tracks' digest wrote it."""
    older = {k: v for k, v in recorded.items() if k != "tracks"}
    older["partitions"] = {sid: v[:3] for sid, v in recorded["partitions"].items()}
    return older
