"""The store under faults: the run lock, readers racing a writer that is killed, unwritable stores, a full disk."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reliability_helpers import (
    FAST_MODEL,
    Proc,
    check_store,
    cli_env,
    complete,
    expected_ids,
    experiment,
    wait_for,
    write_config,
)

from repeval.store import EmbeddingStore
from repeval.store.lock import LOCK, StoreLock, StoreLocked, holder

# ------------------------------------------------------------------------------------------- the lock


def test_second_lock_refuses_naming_the_owner(tmp_path):
    store = EmbeddingStore(str(tmp_path / "store"))
    with StoreLock(store, "first"):
        with pytest.raises(StoreLocked) as info:
            StoreLock(store, "second").acquire()
        msg = str(info.value)
        assert "in use by run 'first'" in msg and f"pid {os.getpid()}" in msg and "another run.store" in msg
        assert re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)", msg), msg  # marked, as every host reads it
    with StoreLock(store, "second") as lock:  # released on exit
        assert lock.held and holder(store.root)["run_id"] == "second"
    assert (tmp_path / "store" / LOCK).exists()  # never deleted (see repeval.store.lock)


def test_a_run_refused_for_a_locked_store_leaves_no_run_directory(fault_catalog, tmp_path):
    """The refusal comes before the run directory is made: no empty run in ``repeval runs``, and a run of the
    holder's own run id does not overwrite its config.yaml or status.json."""
    from typer.testing import CliRunner

    from repeval.cli import app

    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])])
    holding = tmp_path / "runs" / "first"
    holding.mkdir(parents=True)
    (holding / "config.yaml").write_text("the holder's\n")
    with StoreLock(EmbeddingStore(str(tmp_path / "store")), "first"):
        for rid in ("second", "first"):
            res = CliRunner().invoke(app, ["run", str(cfg), "--run-id", rid])
            assert res.exit_code == 1, res.output
            err = res.stderr.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("error: store ") and "is in use by run 'first'" in err[0]
            assert "wait for it to finish or give this run another run.store" in err[0]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["first"]
    assert sorted(p.name for p in holding.iterdir()) == ["config.yaml"]
    assert (holding / "config.yaml").read_text() == "the holder's\n"


OWNER = r"""
import os, sys
from repeval.store import EmbeddingStore
from repeval.store.lock import StoreLock
lock = StoreLock(EmbeddingStore(sys.argv[1]), sys.argv[2])
lock.acquire()
if sys.argv[2] == "killed":
    os._exit(0)  # no release, as under kill -9
lock.release()
"""


def test_a_failed_run_releases_the_lock_and_only_a_killed_owner_is_reported_gone(
    fault_catalog, tmp_path, monkeypatch, caplog
):
    """A run whose embedding model fails to build (``ModelUnavailable``) releases the store's lock and records
    that it did; the next owner used to log "the lock's previous owner … is gone" after every run, failed or
    finished — now only after one that died holding the lock."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.models import ModelUnavailable
    from repeval.run import embed

    def unavailable(*args, **kwargs):
        raise ModelUnavailable("embedding model 'fast' cannot run here: no weights")

    monkeypatch.setattr(embed, "_stage_embed", unavailable)  # as the embedding actor fails, without Ray
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])])
    res = CliRunner().invoke(app, ["run", str(cfg), "--run-id", "failed"])
    assert res.exit_code == 1 and "cannot run here" in res.stderr, res.output
    store = EmbeddingStore(str(tmp_path / "store"))
    last = holder(store.root)
    assert last["run_id"] == "failed" and last["released_at"] >= last["acquired_at"]
    with StoreLock(store, "next") as lock:  # free
        assert lock.held
    for owner in ("released", "killed"):
        subprocess.run([sys.executable, "-c", OWNER, store.root, owner], env=cli_env(tmp_path), check=True)
        caplog.clear()
        with caplog.at_level("INFO", logger="repeval.store.lock"), StoreLock(store, "next"):
            pass
        said = [r.getMessage() for r in caplog.records if "previous owner" in r.getMessage()]
        if owner == "released":
            assert said == []
        else:
            assert len(said) == 1 and "run 'killed'" in said[0] and "stopped without releasing it" in said[0]


HOLDER = r"""
import sys, time
from repeval.store import EmbeddingStore
from repeval.store.lock import StoreLock
lock = StoreLock(EmbeddingStore(sys.argv[1]), "holder")
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_concurrent_run_against_a_locked_store_refuses_then_kill9_frees_it(fault_catalog, tmp_path):
    """A live process holds the store; ``repeval embed`` refuses before Ray starts; after the holder is
    killed with -9 (no chance to clean up) the lock is free at once — a stale lock cannot exist."""
    store = tmp_path / "store"
    env = cli_env(tmp_path)
    holder_proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(store)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder_proc.stdout.readline().strip() == "locked"
        cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])])
        ray_tmp = Path(tempfile.mkdtemp(prefix="rvlock-"))
        res = subprocess.run(
            [sys.executable, "-m", "repeval.cli", "embed", str(cfg)],
            cwd=tmp_path,
            env=cli_env(ray_tmp),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert res.returncode == 1, res.stdout + res.stderr
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: store "), res.stderr
        assert f"is in use by run 'holder' (pid {holder_proc.pid} on host" in err[0]
        assert "Traceback" not in res.stderr
        assert "ray" not in os.listdir(ray_tmp)  # refused before Ray started
        assert not any(store.rglob("part-*.parquet"))
    finally:
        holder_proc.send_signal(signal.SIGKILL)
        holder_proc.wait()
    with StoreLock(EmbeddingStore(str(store)), "next") as lock:
        assert lock.held


# ----------------------------------------------------------------- readers racing a writer killed -9

WRITER = r"""
import sys
import numpy as np, pyarrow as pa
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import embedding_schema
store, n_parts, n_rows, dim = EmbeddingStore(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 512
schema = embedding_schema(dim)
rng = np.random.default_rng(0)
for k in range(n_parts):
    part = store.partition("ds", "m", f"s{k}")
    if part.complete:
        continue
    done = part.done_track_ids()
    w = PartitionWriter(part, schema, part_rows=40)
    for start in range(0, n_rows, 10):
        ids = [f"t{i:04d}" for i in range(start, start + 10) if f"t{i:04d}" not in done]
        if not ids:
            continue
        n = len(ids)
        emb = pa.FixedSizeListArray.from_arrays(pa.array(rng.standard_normal(n * dim).astype("float32")), dim)
        cols = {"track_id": ids, "split": ["train"] * n, "embedding": emb, "n_frames": [1] * n, "n_chunks": [1] * n,
                "audio_seconds": [1.0] * n, "audio_note": [None] * n, "deformation_params": [None] * n, "model": ["m"] * n,
                "model_version": ["1"] * n, "scenario": [f"s{k}"] * n, "config_hash": ["h"] * n,
                "repeval_version": ["0"] * n, "created_at": [None] * n}
        w.add_table(pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema))
        print("batch", flush=True)
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": f"s{k}"})
print("finished", flush=True)
"""


def test_reader_never_sees_a_half_written_partition_as_complete(tmp_path):
    """A writer process fills 6 partitions (400 rows each, 40-row part files) and is killed with -9 at random
    moments, then restarted (it computes only the missing rows, like a rerun). A reader polls all the while:
    every visible part file is complete Parquet, no id is stored twice, and a partition with a manifest holds
    exactly its rows. At the end every partition is complete, with every row once."""
    n_parts, n_rows = 6, 400
    store = tmp_path / "store"
    expected = {f"ds/m/s{k}": {f"t{i:04d}" for i in range(n_rows)} for k in range(n_parts)}
    stop = threading.Event()
    reads: list[int] = []
    failures: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                check_store(store, expected)
                reads.append(1)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    rng = random.Random(0)
    kills = 0
    try:
        for _ in range(8):
            # kill after a random number of written batches (progress, not wall-clock time, decides the moment:
            # 8 rounds x at most 25 batches < the 240 batches of the whole job, so every round is killed mid-way)
            w = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(store), str(n_parts), str(n_rows)],
                env=cli_env(tmp_path),
                stdout=subprocess.PIPE,
                text=True,
            )
            target, seen = rng.randint(3, 25), 0
            while seen < target and (line := w.stdout.readline()):
                seen += line.strip() == "batch"
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
                kills += 1
            w.wait()
            w.stdout.close()
            check_store(store, expected)
        w = subprocess.run(
            [sys.executable, "-c", WRITER, str(store), str(n_parts), str(n_rows)],
            env=cli_env(tmp_path),
            capture_output=True,
            text=True,
        )
        assert w.returncode == 0 and "finished" in w.stdout, w.stderr
    finally:
        stop.set()
        t.join(timeout=60)
    assert not failures, failures[0]
    assert kills == 8 and len(reads) > 0
    assert sum(check_store(store, expected).values()) == n_parts * n_rows
    assert complete(store) == set(expected)


# ------------------------------------------------------------------------------ a damaged part file


def _write_rows(part, ids: list[str], config_hash: str = "h", part_rows: int = 4) -> None:
    """Embedding rows for ``ids`` (4-d zeros) in part files of ``part_rows`` rows; the partition stays incomplete."""
    import numpy as np
    import pyarrow as pa

    from repeval.store import PartitionWriter
    from repeval.store.layout import embedding_schema

    schema, n = embedding_schema(4), len(ids)
    cols = {"track_id": ids, "split": ["train"] * n, "n_frames": [1] * n, "n_chunks": [1] * n,
            "audio_seconds": [1.0] * n, "audio_note": [None] * n, "deformation_params": [None] * n, "model": ["m"] * n,
            "model_version": ["1"] * n, "scenario": ["clean"] * n, "config_hash": [config_hash] * n,
            "repeval_version": ["0"] * n, "created_at": [None] * n,
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * 4, np.float32)), 4)}  # fmt: skip
    table = pa.table({f.name: pa.array(cols[f.name], f.type) for f in schema}, schema=schema)
    w = PartitionWriter(part, schema, part_rows=part_rows)
    for start in range(0, n, part_rows):
        w.add_table(table.slice(start, part_rows))
    w.flush()


def test_a_damaged_part_file_is_named_with_the_fix(tmp_path):
    """A part file cut short by hand (or by a copy that stopped) in a complete partition: planning a run, ``store ls``
    and ``store show`` refuse with one line naming the file and the fix (they raised pyarrow's error, which does
    not say which partition or what to do; ``store ls`` did not even name the file); once it is deleted, its tracks
    are missing again, the others kept."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.store.layout import DamagedPartFile

    store = EmbeddingStore(str(tmp_path / "store"))
    part = store.partition("ds", "m", "clean")
    _write_rows(part, [f"t{i}" for i in range(8)])  # two part files
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean"})
    first, second = part.part_files()
    data = Path(second).read_bytes()
    Path(second).write_bytes(data[: len(data) // 2])
    fix = f"`repeval store rm {store.uri} ds/m/clean --yes`"
    for read in (part.done_ids, part.counts):
        with pytest.raises(DamagedPartFile) as exc:
            read()
        assert second in str(exc.value) and "delete that file" in str(exc.value) and fix in str(exc.value)
    for args in (["store", "ls", store.uri], ["store", "show", store.uri, "ds/m/clean"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and second in err[0] and fix in err[0], res.stderr
    Path(second).unlink()  # the fix: the next run computes these tracks again
    assert set(part.done_ids().to_pylist()) == set(pq.read_table(first).column("track_id").to_pylist())


def test_rows_of_a_partition_whose_stamp_was_deleted_are_not_mixed_with_another_configurations(tmp_path):
    """An unfinished partition whose ``_stamp.json`` was deleted by hand (no manifest either): a run of another
    configuration added its rows to the old ones and marked the partition complete — two configurations silently
    mixed. The rows' ``config_hash`` now decides: another configuration is refused naming the fix, the same one
    resumes (and stamps the partition again)."""
    from repeval.config.loader import config_hash
    from repeval.store import StoreConflict

    store = EmbeddingStore(str(tmp_path / "store"))
    part = store.partition("ds", "m", "clean")
    old, new = {"model": {"n_mels": 64}}, {"model": {"n_mels": 32}}
    part.stamp(old)
    _write_rows(part, ["t0", "t1"], config_hash(old))
    Path(part.path, "_stamp.json").unlink()
    with pytest.raises(StoreConflict, match=r"has no _stamp.json or _manifest.json .* another configuration") as exc:
        part.check_compatible(new)
    assert f"`repeval store rm {store.uri} ds/m/clean --yes`" in str(exc.value)
    assert part.check_compatible(old) is False  # the configuration its rows were computed with


# ------------------------------------------------------------------------------ unwritable store


@pytest.mark.parametrize("where", ["store_is_a_file", "store_under_a_file", "runs_dir_under_a_file"])
def test_unwritable_store_fails_with_one_clear_line(fault_catalog, tmp_path, where):
    """The CLI in this process (the failure comes before Ray starts; a ``repeval`` process costs seconds of imports:
    the locked-store test above checks that a real process says such a refusal in one line)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file where a directory should be\n")
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])])
    args = ["embed", str(cfg)]
    if where == "store_is_a_file":
        args += ["--store", str(blocker)]
    elif where == "store_under_a_file":
        args += ["--store", str(blocker / "store")]
    else:
        args += ["--runs-dir", str(blocker / "runs")]
    res = CliRunner().invoke(app, args)
    err = res.stderr.strip().splitlines()
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (res.output, res.exc_info)
    assert len(err) == 1 and err[0].startswith("error: ") and str(blocker) in err[0], res.stderr
    assert "writable" in err[0] and "Traceback" not in res.stderr
    assert blocker.read_text().startswith("a regular file")


# ------------------------------------------------------------------------------------- disk full


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs (a real file system that fills up); skipped where mounting is not permitted."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip()}): the disk-full test needs CAP_SYS_ADMIN")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_fails_clearly_marks_nothing_complete_wrongly_and_resumes(
    ray_session, fault_catalog, small_tmpfs, tmp_path
):
    """Both runs are the CLI in this process on the session's Ray (the driver is the store's only writer: the disk
    fills up under it wherever it runs; a ``repeval`` process would start a Ray of its own, ~10 s each)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    store = small_tmpfs / "store"
    filler = small_tmpfs / "filler"
    # leave room for the lock, the stamps and a few part files, not for the whole partition
    filler.write_bytes(b"\0" * (256 - 28) * 1024)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])], store=str(store))
    expected = expected_ids(fault_catalog, [FAST_MODEL["id"]])

    res = CliRunner().invoke(app, ["embed", str(cfg)])
    last = res.stderr.strip().splitlines()[-1]
    assert res.exit_code == 1, res.output[-3000:]
    assert last.startswith("error: ") and "No space left on device" in last and "free space" in last, res.stderr[-3000:]
    assert isinstance(res.exception, SystemExit), res.exc_info  # the CLI's exit, not an exception it let through
    assert "Traceback" not in res.stderr
    stored = check_store(store, expected)  # no partition marked complete that is not; every part file whole
    print("stored before the disk filled up:", stored, "complete:", complete(store))
    assert 0 < sum(stored.values()) and complete(store) != set(expected)  # it filled up mid-way

    filler.unlink()  # free the space and rerun: only the missing rows are computed
    res = CliRunner().invoke(app, ["embed", str(cfg)])
    assert res.exit_code == 0, res.output[-3000:]
    assert f"{sum(stored.values())} rows already in store" in res.stdout
    assert complete(store) == set(expected)
    assert sum(check_store(store, expected).values()) == sum(len(v) for v in expected.values())


def test_wait_for_reports_a_process_that_ended(tmp_path):
    """The fault-injection helper must fail loudly if the run ends before the fault point (no silent pass)."""
    p = Proc(["--help"], tmp_path)
    with pytest.raises(AssertionError, match="before the fault could be injected"):
        wait_for(lambda: False, p, timeout=120)
    p.wait()


def test_a_model_the_nodes_cannot_run_stops_the_run_before_any_model_embeds(ray_session, fault_catalog, tmp_path):
    """Every model with tracks to embed is checked on the Ray nodes its actors may use before any stream starts:
    a model listed after one that runs (here its weights are missing) used to fail only when its own actors
    started, after the first model had embedded its partitions; now the run stops first, with the reason and the
    fix, and the store holds nothing."""
    from typer.testing import CliRunner

    from repeval.cli import app

    missing = {"id": "clmr-missing", "type": "clmr-v2", "params": {"checkpoint": str(tmp_path / "none.pt")}}
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL, missing])])
    res = CliRunner().invoke(app, ["run", str(cfg), "--run-id", "unavailable"])
    assert res.exit_code == 1, res.output[-3000:]
    said = " ".join(res.stderr.split())
    assert "embedding model 'clmr-missing' cannot run here" in said and "none.pt not found" in said, said[-2000:]
    parts = EmbeddingStore(str(tmp_path / "store")).partitions()
    assert [(p.model, p.scenario) for p in parts if p.complete or p.part_files()] == []
