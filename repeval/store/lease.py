"""A lease on an embedding store that no ``flock`` can guard: one on object storage (``s3://``, ``gs://``) or any
pyarrow filesystem but the local one. :class:`repeval.store.lock.StoreLock` takes it there.

The lease is ``<store>/_lease.json``: the owner's host, pid and run id, when it took the lease, a random token, and
``expires_at`` — :data:`TTL_S` ahead, pushed on every :data:`RENEW_S` by a thread while the owner runs. Another
``run``, ``store rm`` or ``store settle`` refuses while an unexpired lease is there, naming its owner and the time it
runs out; the owner deletes it when it lets go. An owner killed (``kill -9``, its machine gone) leaves its lease to
expire, or ``repeval store unlock STORE --yes`` removes it at once.

An owner writes no more to the store — :meth:`Lease.check`, which the store's writes call
(:meth:`repeval.store.EmbeddingStore.check_lock`), raises :class:`LeaseLost` — once a renewal finds its lease removed
or taken over, or once its own clock (:func:`clock`, which counts a machine's sleep too) says :func:`stop_s` have
passed since its last successful renewal began: :data:`MARGIN_S` before its lease expires, so that a write begun just
before lands before another process may take the store. A renewal never writes a lease its owner no longer holds:
it reads the lease first, and writes only while the token there is its own and :func:`stop_s` have not passed.

Object stores have no "create if absent" or "write if unchanged" that pyarrow exposes, so every step is read, then
write. Taking the lease is read, write, then read again :data:`CONFIRM_S` later: of two processes that found no lease
and wrote theirs within that time, the one whose token is no longer there refuses. What is left (docs/store.md,
"Concurrency and atomicity"): a process stalling between its read and its write for longer than :data:`CONFIRM_S`
(taking the lease) or :data:`MARGIN_S` (a renewal, or a write to the store after its check), and hosts whose clocks
differ by more than :data:`MARGIN_S` — a lease, not a lock, on storage that offers none.
"""

from __future__ import annotations

import json
import logging
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs

from repeval.store.layout import _atomic_write_bytes, read_if_there
from repeval.store.lock import utc

log = logging.getLogger(__name__)

#: the lease file, in the store's root
LEASE = "_lease.json"
#: how long a lease holds without being renewed (an owner killed blocks the store that long, or until unlocked)
TTL_S = 600.0
#: how often the owner pushes its lease's expiry on: a removal or takeover is noticed within that, and an outage of
#: the storage gets about (TTL_S - MARGIN_S) / RENEW_S tries (15) before the owner stops; each costs a read and a
#: write of a small file, nothing next to a run's part files
RENEW_S = 30.0
#: how long before its lease expires an owner whose renewals failed stops writing: longer than a write to the store
#: (a part file, a renewal) takes, and than the owner's clock and the next writer's differ
MARGIN_S = 120.0
#: how long after writing its lease a process reads it back, to find another that wrote its own at the same time
CONFIRM_S = 1.0
#: how long :meth:`Lease.release` waits for a renewal in flight (a read and a write) before it deletes the lease anyway:
#: a renewal stuck on slow storage must not hold up the end of a run, or Ctrl-C
RELEASE_WAIT_S = 5.0


def _boot_clock() -> float:
    """Seconds on a clock that never steps back and, on Linux, counts the time the machine slept (``CLOCK_BOOTTIME``;
    ``time.monotonic`` elsewhere): a lease expires on the storage while its owner's laptop or VM is suspended too."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


#: the owner's clock for how long ago its last renewal began (a test injects its own)
clock: Callable[[], float] = _boot_clock if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic


def stop_s() -> float:
    """How long after its last successful renewal began an owner stops writing: :data:`MARGIN_S` before its lease
    expires."""
    return TTL_S - MARGIN_S


class LeaseError(RuntimeError):
    """A lease file that cannot be read as one (not JSON, not this module's)."""


class LeaseLost(RuntimeError):
    """This process' lease on a store was removed, taken over or let expire: it writes no more to the store."""


def unlock_command(uri: str) -> str:
    """The ``repeval store unlock`` command that removes the lease of the store ``uri``, quoted for a shell."""
    return f"repeval store unlock {shlex.quote(uri)} --yes"


def read_lease(fs: pafs.FileSystem, root: str, uri: str) -> dict[str, Any] | None:
    """The lease of the store ``uri`` at ``root`` of ``fs`` (``None`` when there is none); one that is not a lease
    raises :class:`LeaseError`, naming ``repeval store unlock``."""
    path = f"{root}/{LEASE}"
    raw = read_if_there(fs, path)
    if raw is None:
        return None
    try:
        info = json.loads(raw.decode())
    except ValueError:
        info = None
    if not isinstance(info, dict) or not isinstance(info.get("expires_at"), int | float):
        raise LeaseError(
            f"{path} is not a lease repeval wrote (no expires_at): if no run writes to the store, remove it with "
            f"`{unlock_command(uri)}`"
        )
    return info


def busy_message(uri: str, info: dict[str, Any], command: str | None = None) -> str:
    """The refusal for a store whose lease ``info`` has not expired, of a run or of the store command ``command``
    (:func:`repeval.store.lock.wait_text`)."""
    from repeval.store.lock import describe, wait_text

    return (
        f"store {uri} is in use by {describe(info)}: its lease on the store runs until {utc(info['expires_at'])} "
        f"(renewed every {RENEW_S:.0f} s while it runs) — {wait_text(command)}; "
        f"if that process is gone (killed, its machine down), remove its lease with `{unlock_command(uri)}` "
        "(it also expires by itself then)"
    )


class Lease:
    """The lease of ``store`` for ``run_id``: :meth:`acquire` (raising ``StoreLocked`` while another holds it),
    renewed by a thread until :meth:`release`."""

    def __init__(self, store: Any, run_id: str | None, command: str | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.command = command
        self.token = uuid.uuid4().hex
        self._info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: why the lease is no longer this process' own — found by the renewal thread, or by :meth:`check` on the
        #: clock (:meth:`check` raises it)
        self.lost: str | None = None
        #: :func:`clock` as the last write of the lease that succeeded began (its expiry is TTL_S after that)
        self._written_clock = 0.0

    def _write(self) -> None:
        """Write the lease, expiring :data:`TTL_S` from now; ``_info`` keeps what the storage holds (a write that
        fails leaves the expiry the last one written, which the warnings name)."""
        began, now = clock(), time.time()
        info = {**self._info, "renewed_at": now, "expires_at": now + TTL_S}
        _atomic_write_bytes(self.store.fs, f"{self.store.root}/{LEASE}", json.dumps(info, indent=1).encode())
        self._info, self._written_clock = info, began

    def _lapsed(self) -> str | None:
        """Why the lease may no longer be this process' own by its clock alone — :func:`stop_s` passed since its last
        successful renewal began — else ``None``. No storage round trip."""
        unrenewed_s = clock() - self._written_clock
        if unrenewed_s < stop_s():
            return None
        return (
            f"was not renewed for {unrenewed_s:.0f} s (its renewals failed or did not answer: the storage unreachable?) "
            f"— it expires at {utc(self._info.get('expires_at', 0))}, and this process stops writing {MARGIN_S:.0f} s "
            "before, so that nothing it writes lands after another process could take the store"
        )

    def acquire(self) -> None:
        from repeval.store.lock import StoreLocked, describe, owner_info

        fs, root = self.store.fs, self.store.root
        current = read_lease(fs, root, self.store.uri)
        if current is not None and current["expires_at"] > time.time():
            raise StoreLocked(busy_message(self.store.uri, current, self.command))
        if current is not None:
            log.info(
                "store %s: the lease of %s expired at %s without being released (killed, or its machine went down): "
                "taken over",
                self.store.uri, describe(current), utc(current["expires_at"]),
            )  # fmt: skip
        self._info = {**owner_info(self.run_id), "token": self.token}
        fs.create_dir(root, recursive=True)
        self._write()
        try:
            time.sleep(CONFIRM_S)
            back = read_lease(fs, root, self.store.uri)
        except BaseException:  # stopped (Ctrl-C) or the storage failed: not left to block the store for TTL_S
            self._drop_own()
            raise
        if back is None or back.get("token") != self.token:
            raise StoreLocked(
                busy_message(self.store.uri, back, self.command) + " — it took the store at the same moment as this one"
                if back is not None
                else f"store {self.store.uri}: the lease this process wrote was removed at once (`repeval store "
                "unlock`?); run again"
            )
        self._thread = threading.Thread(target=self._renew, name="repeval-store-lease", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_S) and self.lost is None:
            try:
                current = read_lease(self.store.fs, self.store.root, self.store.uri)
                if current is None or current.get("token") != self.token:
                    from repeval.store.lock import describe

                    self._lose(
                        "was removed (`repeval store unlock`?)"
                        if current is None
                        else f"was taken over by {describe(current)}"
                    )
                    return
                if self._stop.is_set():  # released while this renewal read: not written back
                    return
                # its own token there, but read-then-write is not atomic: once its expiry is near by this process'
                # clock another may take the lease between the read and the write, and the write would undo that
                if (lapsed := self._lapsed()) is not None:
                    self._lose(lapsed)
                    return
                self._write()
                if self._stop.is_set():  # released while this write was in flight: the lease it wrote is let go too
                    self._drop_own()
                    return
            except Exception as exc:  # a passing outage, or any other failure: tried again at the next renewal
                log.warning(
                    "store %s: could not renew this process' lease (%s: %s); it runs until %s",
                    self.store.uri, type(exc).__name__, exc, utc(self._info.get("expires_at", 0)),
                    exc_info=not isinstance(exc, OSError | LeaseError),  # not an outage: where it came from
                )  # fmt: skip

    def _lose(self, why: str) -> None:
        """The renewal thread found the lease no longer this process' own (``why``): logged as it is found (the next
        write may be long after), and :meth:`check` raises it."""
        if self.lost is None:
            self.lost = why
            log.error("%s", self._lost_text())

    def check(self) -> None:
        """Raise :class:`LeaseLost` once another process may write to the store: the renewal thread found this lease
        removed or taken over, or :func:`stop_s` have passed since its last successful renewal began (its renewals
        failing: it stops :data:`MARGIN_S` before the lease expires). Reads no storage (what the thread found, and the
        clock): cheap enough for every write."""
        if self.lost is None and self._thread is not None and (lapsed := self._lapsed()) is not None:
            self.lost = lapsed  # raised below, not logged too
        if self.lost is not None:
            raise LeaseLost(self._lost_text())

    def _lost_text(self) -> str:
        return (
            f"store {self.store.uri}: this process' lease on the store {self.lost} — another process may write to the "
            "store, so this one stops writing to it (what it wrote before is kept): run it again once the store is "
            "free; it goes on from what is stored"
        )

    def release(self) -> None:
        """Stop renewing and delete the lease, if it is still this process' own. A renewal in flight is waited for
        :data:`RELEASE_WAIT_S` at most (one stuck on slow storage deletes the lease it writes when it ends)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(RELEASE_WAIT_S)
            if self._thread.is_alive():
                log.warning(
                    "store %s: a renewal of this process' lease has not answered for %.0f s (slow storage?): the lease "
                    "is let go without it",
                    self.store.uri, RELEASE_WAIT_S,
                )  # fmt: skip
        self._drop_own()

    def _drop_own(self) -> None:
        """Delete the lease if it is this process' own (never another's that took it over)."""
        try:
            current = read_lease(self.store.fs, self.store.root, self.store.uri)
            if current is not None and current.get("token") == self.token:
                self.store.fs.delete_file(f"{self.store.root}/{LEASE}")
        except (OSError, LeaseError) as exc:  # it expires by itself
            log.warning(
                "store %s: could not remove this process' lease (%s); it expires at %s",
                self.store.uri, exc, utc(self._info.get("expires_at", 0)),
            )  # fmt: skip
