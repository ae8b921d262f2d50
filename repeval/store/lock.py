"""A run-level lock on an embedding store: one writer at a time, a clear refusal for the second.

The lock is an exclusive ``flock`` on ``<store>/_lock.json``; the file holds the owner's host,
pid, run id and the time it was taken, so a second run refuses with a message naming the owner; the
owner adds the time it let go (``released_at``) when it releases the lock, so the next owner tells a run
that finished or failed (released) from one that was killed holding it.

Why ``flock`` rather than "create with ``O_EXCL`` and check the pid": the kernel releases the
lock when its owner dies, however it dies (``kill -9``, a crashed node on NFSv4, whose lease
expires), so a stale lock cannot exist and no pid check can be fooled by pid reuse or by a
pid from another host or container. The file itself is never deleted (deleting a locked file
lets two processes lock two different inodes); whatever it says about a previous owner is
informative only. :func:`holder` reads it.

Stores on object storage (``s3://``, ``gs://``, ...) — any filesystem but the local one — have no flock: there the
lock is a lease, ``_lease.json`` with an expiry the owner renews while it runs (:mod:`repeval.store.lease`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

log = logging.getLogger(__name__)

LOCK = "_lock.json"


class StoreLocked(RuntimeError):
    """Another live run holds the store's lock."""


def owner_info(run_id: str | None = None) -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id, "acquired_at": time.time()}


def holder(store_root: str | Path) -> dict[str, Any] | None:
    """What the lock file says about its last owner (``None`` when there is none or it is unreadable)."""
    try:
        data = json.loads((Path(store_root) / LOCK).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data else None


def utc(ts: float) -> str:
    """``ts`` (seconds since the epoch) as the store's lock and lease messages give times: UTC, marked so (the holder
    may be on another host, in another time zone)."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def wait_text(command: str | None) -> str:
    """What a writer refused for a store in use is told to do: a run (``command`` None) may take another store; a
    store command (``command``, quoted for a shell) is run again."""
    if command is None:
        return "wait for it to finish or give this run another run.store"
    return f"wait for it to finish, then run `{command}` again"


def alive_here(info: dict[str, Any]) -> bool:
    """Whether the holder ``info`` names is a live process on this host (its pid answers signal 0); ``False`` for one
    on another host or a pid that is gone. A pid taken since by another program reads as alive."""
    pid = info.get("pid")
    if info.get("host") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another run"
    since = info.get("acquired_at")
    when = utc(since) if isinstance(since, int | float) else "?"
    run = f"run '{info['run_id']}'" if info.get("run_id") else "another run"
    return f"{run} (pid {info.get('pid')} on host {info.get('host')}, since {when})"


class StoreLock:
    """``with StoreLock(store, run_id): ...`` — exclusive for the block, released on exit (also on errors).
    ``command``: the store command taking it (``repeval store rm …``, quoted for a shell), which a refusal says to run
    again; a run's refusal says to give it another ``run.store``."""

    def __init__(self, store: Any, run_id: str | None = None, command: str | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.command = command
        self.local = isinstance(store.fs, pafs.LocalFileSystem)
        self.path = Path(store.root) / LOCK
        self._fd: int | None = None
        self._info: dict[str, Any] = {}
        self._lease: Any = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._lease is not None

    def check(self) -> None:
        """Raise :class:`~repeval.store.lease.LeaseLost` when the store is no longer this process' own to write (a
        lease found removed or taken over, or unrenewed so long it is about to expire:
        :meth:`repeval.store.lease.Lease.check`); an ``flock`` is held until released. No storage round trip: the
        store's writes call it through :meth:`repeval.store.EmbeddingStore.check_lock`."""
        if self._lease is not None:
            self._lease.check()

    def acquire(self) -> None:
        if not self.local:  # no flock on object storage: a lease with an expiry (repeval.store.lease)
            from repeval.store.lease import Lease

            if self._lease is not None:
                raise RuntimeError(f"{self.store.uri}'s lease is already held by this StoreLock")
            lease = Lease(self.store, self.run_id, self.command)
            lease.acquire()
            self._lease = lease
            self.store.lock = self
            return
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this StoreLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"store {self.store.uri} is in use by {describe(holder(self.path.parent))}; "
                f"{wait_text(self.command)} (two writers never share a store)"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        previous = holder(self.path.parent)
        if previous and not previous.get("released_at") and previous.get("pid") != os.getpid():
            log.info(
                "store %s: the lock's previous owner %s stopped without releasing it (killed, or its machine went "
                "down); the kernel freed the lock",
                self.store.uri, describe(previous),
            )  # fmt: skip
        os.ftruncate(fd, 0)
        self._info = owner_info(self.run_id)
        os.pwrite(fd, json.dumps(self._info, indent=1).encode(), 0)
        self._fd = fd
        self.store.lock = self

    def release(self) -> None:
        if getattr(self.store, "lock", None) is self:
            self.store.lock = None
        if self._lease is not None:
            lease, self._lease = self._lease, None
            lease.release()
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            try:  # still held: the next owner reads that this one let go, rather than died holding it
                info = {**self._info, "released_at": time.time()}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info, indent=1).encode(), 0)
            except OSError as exc:  # informative only: never keep the lock over it
                log.debug("could not record the release in %s: %s", self.path, exc)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
