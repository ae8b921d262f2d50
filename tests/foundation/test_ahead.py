"""The test suite's fixtures started ahead of their tests (``ahead_fixture``, repeval/testing/ahead.py, started by
tests/conftest.py), in a pytest session of their own: one that ends early (-x, Ctrl-C) starts none of those still
queued; a background run whose Ray did not start in time runs once more."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from repeval.testing.processes import FAILS_ITS_FIRST_START, one_by_one

REPO = Path(__file__).resolve().parents[2]

# "a" runs until the session, at its end, waits for it (the main thread in pytest_sessionfinish, in Future.result):
# the fixtures queued behind it are to be cancelled by then
JOBS = r"""
import sys, threading, time
from pathlib import Path

from repeval.testing.ahead import ahead_fixture

STARTED = Path(__file__).parent / "started.txt"


def main_thread_in() -> list[str]:  # the functions the main thread is in, innermost first
    frame, names = sys._current_frames().get(threading.main_thread().ident), []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return names


def session_waits_for_it() -> bool:
    names = main_thread_in()
    return any(a == "result" and b == "pytest_sessionfinish" for a, b in zip(names, names[1:]))


def job(name):
    def make(environ):
        with STARTED.open("a") as f:
            f.write(name + "\n")
        deadline = time.monotonic() + 120
        while name == "a" and not session_waits_for_it() and time.monotonic() < deadline:
            time.sleep(0.01)
        return name

    return make
"""
MODULE = (
    JOBS
    + r"""

a, b, c = (ahead_fixture(name, job(name)) for name in "abc")


def test_fails():
    assert False, "stops the session (-x)"


def test_a(a):
    pass


def test_b(b):
    pass


def test_c(c):
    pass
"""
)


def session(tmp_path: Path, module: str, *options: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """A pytest session of the test suite's conftest.py on ``module``: what it said, and what its jobs noted."""
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_queue.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "pytest", "-q", *options, "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    r = subprocess.run([*args, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return r, (tmp_path / "started.txt").read_text().split()


def test_a_session_stopped_early_starts_no_fixture_still_queued(tmp_path: Path) -> None:
    r, started = session(tmp_path, MODULE, "-x")
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout + r.stderr
    assert started == ["a"]


# "b" is still running when the session, stopped by -x, ends: it needs what "a" made until it ends (as the multinode
# worker node joining the head started before it)
TEARDOWN_ORDER = (
    JOBS
    + r"""

def made_a(environ):
    yield "a"
    with STARTED.open("a") as f:
        f.write("a-torn-down\n")


def made_b(environ):  # running until the session, at its end, waits for it
    deadline = time.monotonic() + 120
    while not session_waits_for_it() and time.monotonic() < deadline:
        time.sleep(0.01)
    with STARTED.open("a") as f:
        f.write("b-ended\n")


a, b = ahead_fixture("a", made_a), ahead_fixture("b", made_b)


def test_fails():
    assert False, "stops the session (-x)"


def test_b(a, b):
    pass
"""
)


def test_a_fixture_started_ahead_is_torn_down_after_those_started_after_it_end(tmp_path: Path) -> None:
    r, started = session(tmp_path, TEARDOWN_ORDER, "-x")
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout + r.stderr
    assert started == ["b-ended", "a-torn-down"]


def test_a_background_run_whose_ray_start_timed_out_runs_once_more(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ray, other = tmp_path / "ray.txt", tmp_path / "other.txt"
    runs = [([sys.executable, "-c", FAILS_ITS_FIRST_START, str(path), path.stem], env) for path in (ray, other)]
    again, failed = one_by_one(*runs, timeout=60)
    assert again.returncode == 0 and again.stdout == "ran\n", again.stderr
    assert failed.returncode == 1 and "something else" in failed.stderr
    assert len(ray.read_text().split()) == 2 and len(other.read_text().split()) == 1
