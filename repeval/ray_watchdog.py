"""Ends what is left of an embedded Ray once the ``repeval`` process that started it has died.

Run by :func:`repeval.ray_utils.start_ray_watchdog` as ``python -I -S ray_watchdog.py DRIVER_PID TOKEN RECORDS`` with the
read end of a pipe as its stdin whose write end only the driver holds. It waits for the driver to end (end of
file on stdin, or its parent no longer being the driver), then SIGKILLs, until none is left, every process of its
user whose environment has ``REPEVAL_RAY_OWNER=TOKEN``: the driver set that variable only while ``ray.init``
started its embedded Ray, so exactly that Ray's processes (GCS, raylet, agents, workers and what they started)
carry it. A Ray started with ``ray start``, another command's Ray and every other process lack it. A process
that retitles itself (``ray::DashboardAgent``, ``ray::IDLE``) blanks the start of its environment, where Ray's
agents may have the variable (the raylet orders their environment as it likes); so the driver also writes its
Ray's session directory to the pipe, and the ``ray::`` processes with a file open there (their logs) end too.

The value is ``PID-START-RANDOM``: the driver's pid and start time (clock ticks since boot, as in
``/proc/PID/stat``) and 96 random bits. While the driver runs, the watchdog keeps its session directories in
``RECORDS/VALUE`` (``~/.ray/repeval_owners/``; removed when it is done). So, as a backstop, a watchdog first ends
the marked processes whose driver has ended and the ``ray::`` processes of the session directories recorded for
such a driver — what an earlier command's Ray left when that command and its watchdog were both killed
(``pkill -9 -f repeval``) — and never those of a command still running.

Ray 2.60 fate-shares the GCS, raylet, dashboard, monitor and log monitor with the driver (``PR_SET_PDEATHSIG``),
but not the raylet's own children: after a ``kill -9`` of the driver (the OOM killer, a CI timeout) the dashboard
agent and runtime-env agent (200–270 MB resident together on the development VM) notice the raylet's death at
once but then wait a minute on the dead GCS, to report it, before they exit. After a normal exit Ray has shut its
processes down and this finds none.

Standard library only, started without ``site``: it costs the driver a fork and ~15 ms of one core's time.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from collections.abc import Callable

#: the environment variable that marks the embedded Ray's processes (set by ``repeval.ray_utils``)
OWNER_ENV = "REPEVAL_RAY_OWNER"
#: the value :func:`marked_processes` gives a process found by its session directory (the driver writes the
#: directories of its Rays to the pipe)
IN_SESSION = "session"
#: how often the watchdog checks that its parent is still the driver (a fork of the driver holding the pipe open)
PARENT_CHECK_S = 1.0
#: how long it keeps killing the session's processes at most
REAP_FOR_S = 30.0
#: it stops once this long has passed without a marked process: the pipe reads end of file as the driver's exit
#: closes its files, a moment before the kernel SIGKILLs the raylet, which can still start a process (an agent
#: in place of one killed here) in that moment
QUIET_S = 1.0
#: between two scans of ``/proc`` (a scan reads ~300 small files: a few milliseconds)
SCAN_EVERY_S = 0.1


def marked_processes(exclude: set[int], sessions: tuple[bytes, ...] = ()) -> list[tuple[int, str]]:
    """``(pid, value of OWNER_ENV)`` of this user's processes that have it in their environment as they were started
    (zombies have none) and, with :data:`IN_SESSION` for a value, the ``ray::…`` processes with a file open in one of
    the Ray session directories ``sessions``."""
    key = f"\0{OWNER_ENV}=".encode()
    uid = os.getuid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                environ = b"\0" + fh.read()
            at = environ.find(key)
            if at >= 0:
                value = environ[at + len(key) :].split(b"\0", 1)[0]
                found.append((int(entry.name), value.decode(errors="replace")))
            elif sessions and in_session(entry.name, sessions):
                found.append((int(entry.name), IN_SESSION))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def in_session(pid: str, sessions: tuple[bytes, ...]) -> bool:
    """Whether the process ``pid``, retitled ``ray::…`` (which blanks its arguments and the start of its
    environment), holds a file open in one of the session directories ``sessions`` (its logs)."""
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        if not fh.read(5) == b"ray::":  # not a user's `tail -f` of the session's logs
            return False
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}").encode(errors="replace")
        except OSError:
            continue
        if any(target.startswith(s + b"/") for s in sessions):
            return True
    return False


def start_time(pid: int) -> str | None:
    """When the process ``pid`` started (clock ticks since boot: with the pid, who it is); None once it has ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == b"Z" else fields[19].decode()


def owner_ended(owner: str) -> bool:
    """Whether the driver named by a value of ``OWNER_ENV`` (``PID-START-RANDOM``) has ended; a value not of
    that form is nobody's to judge."""
    pid, _, rest = owner.partition("-")
    started = rest.partition("-")[0]
    return pid.isdigit() and started.isdigit() and start_time(int(pid)) != started


def reap(
    selects: Callable[[str], bool], exclude: set[int], sessions: tuple[bytes, ...] = (), quiet_s: float = QUIET_S
) -> int:
    """SIGKILL the marked processes whose value ``selects`` (and those of ``sessions``) until no scan has found one for ``quiet_s`` (or
    ``REAP_FOR_S`` have passed); returns how many it killed."""
    killed: set[int] = set()
    start = quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet_s and time.monotonic() - start < REAP_FOR_S:
        for pid, owner in marked_processes(exclude, sessions):
            if not selects(owner):
                continue
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                quiet_since = time.monotonic()
            except OSError:
                pass
        time.sleep(SCAN_EVERY_S)
    return len(killed)


def wait_for_driver(driver: int, record: str | None = None, fd: int = 0) -> list[bytes]:
    """Return once the driver has ended: ``fd`` (the pipe) reads end of file, or this process' parent changed; returns
    the lines the driver wrote to the pipe meanwhile (the session directories of the Rays it started), also kept in
    the file ``record`` as they come."""
    received = b""
    while True:
        alive = os.getppid() == driver
        ready, _, _ = select.select([fd], [], [], PARENT_CHECK_S if alive else 0)
        data = os.read(fd, 4096) if ready else b""
        if not data and (ready or not alive):  # what the driver wrote is read to the end either way
            break
        received += data
        if record:
            try:
                os.makedirs(os.path.dirname(record), mode=0o700, exist_ok=True)
                with open(record, "wb") as fh:
                    fh.write(received)
            except OSError:
                pass
    return [line for line in received.split(b"\n") if line.startswith(b"/")]


def backstop(records: str | None, token: str, exclude: set[int]) -> None:
    """End what earlier commands' Rays left when a command and its watchdog were both killed: the marked processes
    whose owner has ended, and the ``ray::`` processes of the session directories its watchdog recorded."""
    reap(lambda owner: owner != token and owner_ended(owner), exclude, quiet_s=SCAN_EVERY_S)
    if not records or not os.path.isdir(records):
        return
    for name in os.listdir(records):
        if name == token or not owner_ended(name):
            continue
        path = os.path.join(records, name)
        try:
            with open(path, "rb") as fh:
                sessions = tuple(line for line in fh.read().split(b"\n") if line.startswith(b"/"))
            if sessions:
                reap(lambda owner: owner == IN_SESSION, exclude, sessions, quiet_s=SCAN_EVERY_S)
            os.unlink(path)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    driver, token = int(argv[1]), argv[2]
    records = argv[3] if len(argv) > 3 else None
    record = os.path.join(records, token) if records else None
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):  # a terminal's Ctrl-C, its closing: the driver's
        signal.signal(sig, signal.SIG_IGN)
    exclude = {os.getpid(), driver}
    backstop(records, token, exclude)
    sessions = tuple(wait_for_driver(driver, record))
    reap(lambda owner: owner in (token, IN_SESSION), exclude, sessions)
    if record and os.path.exists(record):
        os.unlink(record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
