"""The test suite's fixtures started ahead of their tests (``AHEAD``, tests/conftest.py), in a pytest session of their
own: one that ends early (-x, Ctrl-C) starts none of those still queued."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# "a" runs until the session, at its end, waits for it (the main thread in pytest_sessionfinish, in Future.result):
# the fixtures queued behind it are to be cancelled by then
MODULE = r"""
import sys, threading, time
from pathlib import Path

import pytest

STARTED = Path(__file__).parent / "started.txt"


def session_waits_for_it() -> bool:
    frame, names = sys._current_frames().get(threading.main_thread().ident), []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
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


AHEAD = {name: job(name) for name in "abc"}


@pytest.fixture
def a(started_ahead):
    yield from started_ahead("a", AHEAD["a"])


@pytest.fixture
def b(started_ahead):
    yield from started_ahead("b", AHEAD["b"])


@pytest.fixture
def c(started_ahead):
    yield from started_ahead("c", AHEAD["c"])


def test_fails():
    assert False, "stops the session (-x)"


def test_a(a):
    pass


def test_b(b):
    pass


def test_c(c):
    pass
"""


def test_a_session_stopped_early_starts_no_fixture_still_queued(tmp_path: Path) -> None:
    shutil.copy(REPO / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_queue.py").write_text(MODULE)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--rootdir", str(tmp_path)]
    r = subprocess.run([*args, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "1 failed" in r.stdout, r.stdout + r.stderr
    assert (tmp_path / "started.txt").read_text().split() == ["a"]
