"""The store's lease on object storage (any filesystem but the local disk: here the local disk behind a pyarrow
filesystem of its own, :func:`repeval.testing.fs.faulty_fs`): refusals, renewals, a holder that lost it, unlock."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading

import pytest
from reliability_helpers import wait_for
from test_store_faults import _write_rows

from repeval.store import EmbeddingStore
from repeval.store.lease import LeaseLost
from repeval.store.lock import StoreLock, StoreLocked


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
        said = capsys.readouterr().out
        assert f"pid {live.pid}, is still running on this host: stop it (`kill {live.pid}`" in said
        assert said.rstrip().endswith("another program now, run it with --yes --force"), said  # --force alone lists
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


class FakeClock:
    """The lease holder's clock (:data:`repeval.store.lease.clock`), moved on by the test: minutes pass at once."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def test_a_holder_whose_lease_was_removed_stops_writing_with_the_fix(tmp_path, monkeypatch):
    """`store unlock` run while the holder still runs: its renewal finds no lease, and the holder's next part file or
    manifest is refused, naming why and what to do; what it committed before stays; a lock of the local disk (an
    flock) never refuses so."""
    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    monkeypatch.setattr(lease_mod, "RENEW_S", 0.02)
    store = EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs())
    part = store.partition("ds", "m", "clean")
    with StoreLock(store, "held") as lock:
        _write_rows(part, ["a"])
        (tmp_path / "bucket" / lease_mod.LEASE).unlink()  # as `repeval store unlock --yes` does
        wait_for(lambda: lock._lease.lost is not None, timeout=30)
        with pytest.raises(
            LeaseLost,
            match=r"was removed \(`repeval store unlock`\?\).* another process may write .* run it again once the "
            "store is free",
        ):
            _write_rows(part, ["b"])
        with pytest.raises(LeaseLost):
            part.finish({})
    assert sorted(part.done_track_ids()) == ["a"]
    local = EmbeddingStore(str(tmp_path / "local"))
    with StoreLock(local, "held"):
        _write_rows(local.partition("ds", "m", "clean"), ["a"])
        local.partition("ds", "m", "clean").finish({})


def test_a_holder_whose_renewals_fail_stops_writing_before_its_lease_expires_asking_no_storage(tmp_path, monkeypatch):
    """Renewals failing (no renewal here at all): once the holder's own clock says stop_s() = TTL_S - MARGIN_S passed
    since its last renewal began, its next write is refused — while its lease still holds on the storage (a second
    writer is still refused), so nothing it writes lands after another could take the store. The check asks the
    storage nothing: it runs before every part file."""
    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    clock = FakeClock()
    monkeypatch.setattr(lease_mod, "clock", clock)
    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    monkeypatch.setattr(lease_mod, "RENEW_S", 600.0)  # never renewed within the test
    requests: list[str] = []
    fs = faulty_fs(before_write=requests.append, before_read=requests.append)
    store = EmbeddingStore(str(tmp_path / "bucket"), filesystem=fs)
    part = store.partition("ds", "m", "clean")
    with StoreLock(store, "held"):
        clock.advance(lease_mod.stop_s() - 1)
        requests.clear()
        store.check_lock()
        assert requests == []  # no storage round trip
        _write_rows(part, ["a"])  # a second short of it: written
        clock.advance(1)
        requests.clear()
        stop = f"was not renewed for {lease_mod.stop_s():.0f} s .* stops writing {lease_mod.MARGIN_S:.0f} s before"
        with pytest.raises(LeaseLost, match=f"{stop}.* this one stops writing to it"):
            store.check_lock()
        assert requests == []
        with pytest.raises(LeaseLost, match=stop):
            _write_rows(part, ["b"])
        with pytest.raises(LeaseLost):
            part.finish({})
        with pytest.raises(StoreLocked, match="is in use by run 'held'"):  # its lease holds: no other writer yet
            StoreLock(EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs()), "second").acquire()
    assert sorted(part.done_track_ids()) == ["a"]


def test_a_renewal_never_writes_a_lease_lapsed_by_the_holders_clock(tmp_path, monkeypatch, caplog):
    """A renewal that succeeds starts the holder's count again; once renewals failed for a whole TTL, the storage
    answering again and the lease there still the holder's, the renewal writes nothing: read-then-write is not atomic,
    and another process may take the expired lease between the read and the write, which the write would undo. The
    holder says once that its lease lapsed and stops writing."""
    import json
    import logging

    from repeval.store import lease as lease_mod
    from repeval.testing.fs import faulty_fs

    clock = FakeClock()
    monkeypatch.setattr(lease_mod, "clock", clock)
    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    monkeypatch.setattr(lease_mod, "RENEW_S", 0.02)
    path = tmp_path / "bucket" / lease_mod.LEASE
    failing, lapsed = threading.Event(), threading.Event()
    written_after_lapse: list[str] = []

    def storage(p: str) -> None:
        if lease_mod.LEASE not in p.rsplit("/", 1)[-1]:
            return
        if failing.is_set():
            raise OSError("the bucket did not answer")

    def write(p: str) -> None:
        if lapsed.is_set() and lease_mod.LEASE in p.rsplit("/", 1)[-1]:
            written_after_lapse.append(p)
        storage(p)

    store = EmbeddingStore(str(tmp_path / "bucket"), filesystem=faulty_fs(before_write=write, before_read=storage))
    with caplog.at_level(logging.WARNING, logger="repeval.store.lease"), StoreLock(store, "held") as lock:
        first = json.loads(path.read_text())
        clock.advance(lease_mod.stop_s() - 1)
        wait_for(lambda: json.loads(path.read_text())["renewed_at"] > first["renewed_at"], timeout=30)
        clock.advance(2)  # a second past STOP_S since the lease was taken, two since its renewal
        store.check_lock()

        failing.set()  # reads and writes of the lease fail: no renewal between its read and its write from here
        wait_for(lambda: "could not renew" in caplog.text, timeout=30)
        stale = path.read_text()
        clock.advance(lease_mod.TTL_S)  # a whole TTL unrenewed: to another process, the lease has expired
        lapsed.set()
        failing.clear()  # the storage answers again, the holder's token still there
        wait_for(lambda: lock._lease.lost is not None or written_after_lapse, timeout=30)
        assert written_after_lapse == []
        lock._lease._thread.join(timeout=30)
        assert not lock._lease._thread.is_alive()
        assert path.read_text() == stale  # not pushed on
        with pytest.raises(LeaseLost, match=r"was not renewed for \d+ s .* another process may write"):
            store.check_lock()
    assert caplog.text.count("was not renewed for") == 1, caplog.text


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


def test_a_run_writes_through_the_store_object_it_locked(fault_catalog, tmp_path):
    """The run's store (what its embedding stage writes through) carries the lock the run took: its part files,
    stamps and manifests check it (`EmbeddingStore.check_lock`); released, the store carries none."""
    from reliability_helpers import FAST_MODEL, experiment, write_config

    from repeval.config.loader import load_config
    from repeval.run.context import make_context

    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])]))
    ctx = make_context(cfg, "r", lock=True)
    assert ctx.lock is not None and ctx.lock.held and ctx.store.lock is ctx.lock
    ctx.lock.release()
    assert ctx.store.lock is None


@pytest.mark.parametrize("where", ["local", "object storage"])
def test_a_locked_store_sent_to_another_process_holds_no_lock(tmp_path, monkeypatch, where):
    """A store a writer holds pickles (for a Ray task or actor) without its lock: a lease's renewal thread cannot be
    pickled, and the copy does not hold what the writer holds."""
    import pickle

    import repeval.store.lease as lease_mod
    from repeval.testing.fs import faulty_fs

    monkeypatch.setattr(lease_mod, "CONFIRM_S", 0.0)
    fs = faulty_fs() if where == "object storage" else None
    store = EmbeddingStore(str(tmp_path / "store"), filesystem=fs)
    lock = StoreLock(store, "r1")
    lock.acquire()
    try:
        assert store.lock is lock
        copy = pickle.loads(pickle.dumps(store))
        assert copy.lock is None and copy.root == store.root
        copy.check_lock()  # a copy never raises for the writer's lock
    finally:
        lock.release()
