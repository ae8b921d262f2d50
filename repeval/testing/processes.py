"""Processes a test starts together: several ``python`` processes that each start an embedded Ray (~10 s, mostly
waiting on Ray's own processes) take about the time of one when they run side by side."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def started(*runs: tuple[list[str], dict[str, str]], cwd: Path | None = None) -> Iterator[list[subprocess.Popen[str]]]:
    """Start every ``(cmd, env)`` at once (text pipes for stdout and stderr), in ``cwd`` (``None``: this process'
    working directory); kill what is still running at the end."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for cmd, env in runs:
            procs.append(
                subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            )
        yield procs
    finally:
        for p in procs:  # what a failing test left running
            if p.poll() is None:
                p.kill()
                p.communicate()


def finished(proc: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Wait for ``proc``: what ``subprocess.run(..., capture_output=True, text=True)`` would have returned."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def side_by_side(
    *runs: tuple[list[str], dict[str, str]], timeout: float, cwd: Path | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """``subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)`` of each ``(cmd, env)``, all at once."""
    with started(*runs, cwd=cwd) as procs:
        return [finished(p, timeout) for p in procs]


#: what ``ray.init`` raises when its node has not registered within 30 s (a fixed limit: ray/_private/node.py), as on
#: a busy machine where other Rays start at the same time
RAY_START_TIMED_OUT = "The current node timed out during startup"


def one_by_one(
    *runs: tuple[list[str], dict[str, str]], timeout: float, cwd: Path | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """As :func:`side_by_side`, each ``(cmd, env)`` after the one before: for runs in the background (a module's
    ``ahead_fixture``), where the tests running meanwhile may start a Ray too (several starting at once on 2 cores time
    out). A run whose Ray did not start in time (:data:`RAY_START_TIMED_OUT`) runs once more."""
    return [again_if_ray_timed_out(functools.partial(_alone, run, timeout, cwd)) for run in runs]


def _alone(run: tuple[list[str], dict[str, str]], timeout: float, cwd: Path | None) -> subprocess.CompletedProcess[str]:
    return side_by_side(run, timeout=timeout, cwd=cwd)[0]


def again_if_ray_timed_out(run: Callable[[], subprocess.CompletedProcess[str]]) -> subprocess.CompletedProcess[str]:
    """``run()`` (a process run in the background, as in a module's ``ahead_fixture``), once more if its Ray did not
    start in time: :data:`RAY_START_TIMED_OUT` in what it said (stdout or stderr) as it failed."""
    r = run()
    if r.returncode != 0 and RAY_START_TIMED_OUT in (r.stdout or "") + (r.stderr or ""):
        r = run()
    return r


#: a ``python -c`` script for tests of :func:`again_if_ray_timed_out`'s callers: each start noted in the file
#: ``argv[1]``; the first fails as ``ray.init`` does when its node is slow to start, or (``argv[2]`` "other") as a run
#: fails for any other reason ("something else"); a later start prints "ran"
FAILS_ITS_FIRST_START = r"""
import sys
from pathlib import Path

from repeval.testing.processes import RAY_START_TIMED_OUT

starts = Path(sys.argv[1])
with starts.open("a") as f:
    f.write("start\n")
if len(starts.read_text().split()) == 1:
    sys.exit(f"Exception: {RAY_START_TIMED_OUT}." if sys.argv[2] == "ray" else "Exception: something else")
print("ran")
"""
