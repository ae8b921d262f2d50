"""The store under faults: the run lock, readers racing a writer that is killed, unwritable stores, a full disk."""

from __future__ import annotations

import os
import random
import re
import shlex
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
from repeval.store.lease import LeaseLost
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


def test_a_store_without_flock_is_held_by_a_lease_a_second_writer_refused_naming_the_fix(tmp_path, caplog):
    """On object storage (any filesystem but the local one: here the local disk behind a pyarrow filesystem of its
    own) the lock is a lease: a second writer refuses while it is there, naming its owner, its expiry and `repeval
    store unlock`; released, it is gone; a killed owner's lease, once expired, is taken over."""
    import json
    import time

    from repeval.store.lease import LEASE, TTL_S
    from repeval.testing.fs import faulty_fs

    def store() -> EmbeddingStore:  # every process its own filesystem object on the same storage
        return EmbeddingStore(str(tmp_path / "a bucket"), filesystem=faulty_fs())

    with StoreLock(store(), "first") as first:
        lease = json.loads((tmp_path / "a bucket" / LEASE).read_text())
        assert first.held and lease["run_id"] == "first" and lease["pid"] == os.getpid()
        assert time.time() + TTL_S - 60 < lease["expires_at"] <= time.time() + TTL_S
        with pytest.raises(StoreLocked) as info:
            StoreLock(store(), "second").acquire()
        said = str(info.value)
        assert "is in use by run 'first'" in said and "its lease on the store runs until" in said, said
        stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"  # both times in UTC, marked so
        assert re.search(f"since {stamp}\\): its lease on the store runs until {stamp} ", said), said
        unlock = f"`repeval store unlock {shlex.quote(str(tmp_path / 'a bucket'))} --yes`"  # quoted for a shell
        assert unlock in said and "wait for it to finish" in said, said
    assert not (tmp_path / "a bucket" / LEASE).exists()  # released: removed
    killed = {"host": "gone", "pid": 1, "run_id": "killed", "acquired_at": 0.0, "expires_at": time.time() - 1}
    (tmp_path / "a bucket" / LEASE).write_text(json.dumps(killed))
    with caplog.at_level("INFO", logger="repeval.store.lease"), StoreLock(store(), "third") as third:
        assert third.held and json.loads((tmp_path / "a bucket" / LEASE).read_text())["run_id"] == "third"
    assert "the lease of run 'killed'" in caplog.text and "taken over" in caplog.text


def test_a_lease_file_repeval_did_not_write_is_refused_naming_the_stores_own_unlock(tmp_path):
    from repeval.store.lease import LEASE, LeaseError
    from repeval.testing.fs import faulty_fs

    (tmp_path / "a bucket").mkdir()
    (tmp_path / "a bucket" / LEASE).write_text("not json")
    with pytest.raises(
        LeaseError, match=re.escape(f"`repeval store unlock {shlex.quote(str(tmp_path / 'a bucket'))} --yes`")
    ):
        StoreLock(EmbeddingStore(str(tmp_path / "a bucket"), filesystem=faulty_fs()), "run").acquire()


def test_unlock_refuses_a_lease_whose_holder_runs_on_this_host_unless_forced(tmp_path, capsys):
    """`store unlock --yes` removes the lease of a holder gone (its pid dead here, or on another host) but refuses,
    naming the pid and how to stop it, while the holder's process runs on this host; --force removes it anyway."""
    import json
    import socket
    import time

    from repeval.cli.store import unlock
    from repeval.store.lease import LEASE
    from repeval.testing.fs import faulty_fs

    st = EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs())
    path = tmp_path / "bucket" / LEASE
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:

        def lease(pid: int, host: str = socket.gethostname()) -> None:
            info = {"host": host, "pid": pid, "run_id": "r", "acquired_at": time.time(), "expires_at": time.time() + 60}
            path.write_text(json.dumps(info))

        lease(live.pid)
        unlock(st, yes=False)
        assert f"pid {live.pid}, is still running on this host: stop it (`kill {live.pid}`" in capsys.readouterr().out
        with pytest.raises(
            RuntimeError, match=rf"not removed — its process, pid {live.pid}, is still running .* --force"
        ):
            unlock(st, yes=True)
        assert path.exists()
        unlock(st, yes=True, force=True)
        assert not path.exists() and "removed the lease of run 'r'" in capsys.readouterr().out
        for pid, host in ((dead.pid, socket.gethostname()), (live.pid, "another-host")):  # gone, or not checkable
            lease(pid, host)
            unlock(st, yes=True)
            assert not path.exists()
    finally:
        live.kill()
        live.wait()


def test_of_two_writers_taking_a_lease_at_the_same_moment_one_refuses(tmp_path):
    """Both read no lease, then both write theirs (held at a barrier until both have read): the one whose lease was
    overwritten finds so when it reads it back, and refuses."""
    from repeval.store.lease import LEASE
    from repeval.testing.fs import faulty_fs

    both_read = threading.Barrier(2, timeout=30)

    def hold(path: str) -> None:
        if LEASE in path.rsplit("/", 1)[-1]:
            both_read.wait()

    outcome: dict[str, str] = {}
    locks = {n: StoreLock(EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs(before_write=hold)), n)
             for n in ("a", "b")}  # fmt: skip

    def take(name: str) -> None:
        try:
            locks[name].acquire()
            outcome[name] = "held"
        except StoreLocked as exc:
            outcome[name] = str(exc)

    threads = [threading.Thread(target=take, args=(n,)) for n in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for lock in locks.values():  # released once both are done: a lease let go early would let the other through
        lock.release()
    assert sorted(v == "held" for v in outcome.values()) == [False, True], outcome
    refused = next(v for v in outcome.values() if v != "held")
    assert "it took the store at the same moment as this one" in refused, refused


def test_a_held_lease_is_renewed_and_a_taken_over_one_is_noticed_and_left_alone(tmp_path, monkeypatch, caplog):
    """The renewal thread pushes the lease's expiry on; a renewal that cannot write warns naming the expiry the
    storage still holds; a lease another process wrote over this one's (it expired, or `store unlock` then another
    run) is noticed at the next renewal, which stops, and the holder writes no more to the store; released, it leaves
    the other's lease in place."""
    import json
    import logging

    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    monkeypatch.setattr(lease_mod, "RENEW_S", 0.02)
    monkeypatch.setattr(lease_mod, "TTL_S", 30.0)
    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    path = tmp_path / "bucket" / lease_mod.LEASE
    failing = threading.Event()

    def refuse(p: str) -> None:
        if failing.is_set() and lease_mod.LEASE in p.rsplit("/", 1)[-1]:
            raise OSError("the bucket did not answer")

    def read() -> dict:
        return json.loads(path.read_text())

    lock = StoreLock(EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs(before_write=refuse)), "held")
    with caplog.at_level(logging.WARNING, logger="repeval.store.lease"):
        lock.acquire()
        try:
            first = read()
            wait_for(lambda: read()["expires_at"] > first["expires_at"], timeout=30)
            renewed = read()
            assert renewed["token"] == first["token"] and renewed["renewed_at"] > first["renewed_at"]

            failing.set()  # renewals fail: the lease on the storage keeps its expiry, and the warning names it
            wait_for(lambda: "could not renew" in caplog.text, timeout=30)
            on_storage = read()["expires_at"]
            assert lock._lease._info["expires_at"] == on_storage
            assert f"it runs until {lease_mod.utc(on_storage)}" in caplog.text, caplog.text

            # another process took the store over (still failing: a renewal that read this lease just before cannot
            # write it back over the taker's)
            taker = {**read(), "token": "other", "run_id": "taker", "expires_at": on_storage + 60}
            (tmp_path / "taker.json").write_text(json.dumps(taker))
            os.replace(tmp_path / "taker.json", path)
            wait_for(
                lambda: "this process' lease on the store was taken over by run 'taker'" in caplog.text, timeout=30
            )
            failing.clear()
            lock._lease._thread.join(timeout=30)
            assert not lock._lease._thread.is_alive()  # stopped renewing: never writes over the taker's lease
            assert read() == taker
            # and stops writing to the store, before its next part file or manifest: the taker's store now
            part = lock.store.partition("ds", "m", "clean")
            files = sorted(p.name for p in (tmp_path / "bucket").rglob("*"))
            for write in (lambda: _write_rows(part, ["a"]), lambda: part.finish({})):
                with pytest.raises(LeaseLost, match=r"taken over by run 'taker'.* this one stops writing to it"):
                    write()
            assert sorted(p.name for p in (tmp_path / "bucket").rglob("*")) == files
        finally:
            lock.release()
    assert read() == taker and not lock.held  # the taker's lease is not deleted with this one's release


@pytest.mark.parametrize("how", ["unlocked", "expired"])
def test_a_holder_whose_lease_was_removed_or_expired_stops_writing_with_the_fix(tmp_path, monkeypatch, how):
    """`store unlock` run while the holder still runs (its renewal finds no lease), or renewals that failed until the
    lease expired: the holder's next part file or manifest is refused, naming why and what to do; what it committed
    before stays; a lock of the local disk (an flock) never refuses so."""
    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    monkeypatch.setattr(lease_mod, "RENEW_S", 0.02 if how == "unlocked" else 600.0)
    monkeypatch.setattr(lease_mod, "TTL_S", 600.0 if how == "unlocked" else 0.05)
    store = EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs())
    part = store.partition("ds", "m", "clean")
    with StoreLock(store, "held") as lock:
        if how == "unlocked":
            _write_rows(part, ["a"])
            (tmp_path / "bucket" / lease_mod.LEASE).unlink()  # as `repeval store unlock --yes` does
            wait_for(lambda: lock._lease.lost is not None, timeout=30)
            why = r"was removed \(`repeval store unlock`\?\)"
        else:
            wait_for(lambda: lease_mod.time.time() > lock._lease._info["expires_at"], timeout=30)
            why = r"expired at .* without being renewed \(its renewals failed"
        with pytest.raises(
            LeaseLost, match=f"{why}.* another process may write .* run it again once the store is free"
        ):
            _write_rows(part, ["b"])
        with pytest.raises(LeaseLost):
            part.finish({})
    assert sorted(part.done_track_ids()) == (["a"] if how == "unlocked" else [])
    local = EmbeddingStore(str(tmp_path / "local"))
    with StoreLock(local, "held"):
        _write_rows(local.partition("ds", "m", "clean"), ["a"])
        local.partition("ds", "m", "clean").finish({})


def test_a_renewal_failing_in_any_way_is_tried_again_and_release_does_not_wait_on_a_stuck_one(
    tmp_path, monkeypatch, caplog
):
    """A renewal that fails with any exception (not only an outage's OSError) warns with it and the next renewal
    pushes the expiry on; a renewal stuck on the storage holds ``release`` up no longer than RELEASE_WAIT_S, and the
    lease it writes once it ends is deleted too."""
    import json
    import logging

    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    monkeypatch.setattr(lease_mod, "RENEW_S", 0.02)
    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    monkeypatch.setattr(lease_mod, "RELEASE_WAIT_S", 0.05)
    path = tmp_path / "bucket" / lease_mod.LEASE
    failures: list[Exception] = []
    stuck, in_write, unstick = threading.Event(), threading.Event(), threading.Event()

    def write(p: str) -> None:
        if lease_mod.LEASE not in p.rsplit("/", 1)[-1]:
            return
        if failures:
            raise failures.pop()
        if stuck.is_set():
            in_write.set()
            unstick.wait(60)

    lock = StoreLock(EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs(before_write=write)), "held")
    with caplog.at_level(logging.WARNING, logger="repeval.store.lease"):
        lock.acquire()
        lease = lock._lease
        first = json.loads(path.read_text())
        failures += [RuntimeError("the storage client failed")] * 2  # the next two renewals fail
        wait_for(lambda: not failures and json.loads(path.read_text())["expires_at"] > first["expires_at"], timeout=30)
        assert lease._thread.is_alive()
        assert "could not renew this process' lease (RuntimeError: the storage client failed)" in caplog.text

        stuck.set()  # the next renewal's write hangs
        wait_for(in_write.is_set, timeout=30)
        released = threading.Thread(target=lock.release)
        released.start()
        released.join(timeout=30)
        assert not released.is_alive() and lease._thread.is_alive()  # let go without the stuck renewal
        assert "has not answered" in caplog.text and not path.exists()
        unstick.set()
        lease._thread.join(timeout=30)
    assert not lease._thread.is_alive() and not path.exists()  # the lease the late renewal wrote: deleted


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
