"""Shared fixtures: one session-scoped embedded Ray, the shared data folder, a rendered note set."""

from __future__ import annotations

import contextlib
import inspect
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from repeval.cpu import use_huge_pages

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# the `repeval` commands the tests start stay on the test process' MKL code path (tests/foundation/test_mkl_shim.py
# turns the shim on where it is the subject)
os.environ.setdefault("REPEVAL_MKL_SHIM", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
# as the `repeval` command does before torch is imported: this process and the session's Ray workers put large
# tensors on huge pages
use_huge_pages()
# the tests that press Ctrl-C in a driver they started (os.kill(pid, SIGINT)) need it to react as in a terminal. A test
# run started in the background by a script (`make test &`, `nohup pytest ... &`: a non-interactive shell) has SIGINT
# ignored, and so has every process it starts: Python then installs no KeyboardInterrupt handler, and the driver runs
# on as if the key had not been pressed (seen: killed after 180 s, having said only "Connected to Ray cluster"). A
# handled signal is reset to its default action by exec: the drivers start with Python's KeyboardInterrupt
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_DATA = SHARED / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"../shared/data is missing next to the repository (expected {SHARED_DATA})")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session():
    """One embedded Ray for the whole test session (ray.init costs 8-10 s)."""
    import ray

    from repeval.cpu import ray_process_environment
    from repeval.ray_utils import _kill_monitor, worker_soft_limit

    if not ray.is_initialized():
        with ray_process_environment():  # Ray's processes start with glibc's settings, as in repeval's init_ray
            ray.init(
                address="local",  # its own, as init_ray's: not a `ray start` cluster running on the machine
                num_cpus=2,
                _system_config={"num_workers_soft_limit": worker_soft_limit(2)},  # as repeval's own init_ray
                include_dashboard=False,
                object_store_memory=300 * 1024 * 1024,
                logging_level="WARNING",
                log_to_driver=False,
            )
    yield ray
    # as repeval's own exit does (repeval.ray_utils.stop_monitor_first_at_exit): Ray's shutdown waited a second for
    # the autoscaler monitor it had SIGTERMed after the GCS was gone (1.4 s of teardown, 0.4 s so)
    _kill_monitor()
    ray.shutdown()


@pytest.fixture(scope="session")
def rendered_notes(tmp_path_factory) -> Path:
    """A small rendered TinySOL-like set: 4 instruments × 12 notes (manifest path)."""
    from repeval.testing.configs import render_notes

    return render_notes(tmp_path_factory.mktemp("notes"))


#: the fixtures started ahead of their tests (fixture name -> its coming value and teardown): see _start_ahead
_AHEAD = pytest.StashKey[dict[str, Future]]()
#: options by which a collected test may yet be left out of the run
_SELECTING = ("keyword", "markexpr", "deselect", "lf", "stepwise")


def _start_ahead(config: pytest.Config, item: pytest.Item) -> None:
    """Start each fixture that ``item``'s module lists in its ``AHEAD`` and ``item`` uses, once, in a background
    thread. ``AHEAD`` maps a fixture name to a function that returns the fixture's value, or yields it as a fixture
    does (what follows the ``yield``, its teardown, runs when the fixture ends). Meant for work that is a subprocess of
    its own (a Ray of its own, a batch of ``repeval`` processes): it overlaps the collection and the tests that run
    before its module, on the core they leave idle, instead of adding its wall time.

    The function's one argument is a copy of ``os.environ`` taken here, before any test runs: it gives that to every
    process it starts (``env=``), and a working directory (``cwd=``), and reads neither from this process, whose
    environment and directory the tests running meanwhile change (``monkeypatch.setenv``, ``chdir``)."""
    ahead = config.stash.setdefault(_AHEAD, {})
    for name, make in getattr(getattr(item, "module", None), "AHEAD", {}).items():
        if name in getattr(item, "fixturenames", ()) and name not in ahead:
            ahead[name] = _in_background(make, dict(os.environ))


def pytest_itemcollected(item: pytest.Item) -> None:
    # as soon as it is collected (the collection is one busy core: ~17 s of imports for the whole suite), unless an
    # option may still leave it out
    if not item.config.option.collectonly and not any(getattr(item.config.option, o, None) for o in _SELECTING):
        _start_ahead(item.config, item)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        for item in session.items:
            _start_ahead(session.config, item)


def _setup(make: Callable[[dict[str, str]], Any], environ: dict[str, str]) -> tuple[Any, Iterator[Any] | None]:
    """``make``'s value, and the generator whose next step is its teardown (``None``: it has none)."""
    made = make(environ)
    if inspect.isgenerator(made):
        return next(made), made
    return made, None


#: one at a time, in the order their tests run: each is a Ray start or a batch of processes that keeps both cores busy
#: (several Rays starting at once on 2 cores time out)
_AHEAD_QUEUE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")


def _in_background(make: Callable[[dict[str, str]], Any], environ: dict[str, str]) -> Future:
    return _AHEAD_QUEUE.submit(_setup, make, environ)  # the fixture re-raises what it raised in its test


def pytest_sessionfinish(session: pytest.Session) -> None:
    # a fixture started ahead whose tests did not run (-x, Ctrl-C) ends before the session does, its teardown run: its
    # subprocesses and temporary files go with it; the ones not started yet never start (all cancelled before waiting
    # for the one running: the queue would start the next as soon as it ends)
    ahead = session.config.stash.get(_AHEAD, {}).values()
    for done in ahead:
        done.cancel()
    for done in ahead:
        with contextlib.suppress(BaseException):
            _, teardown = done.result()
            if teardown is not None:
                next(teardown, None)


@pytest.fixture(scope="session")
def started_ahead(request: pytest.FixtureRequest) -> Callable[[str, Callable[[dict[str, str]], Any]], Iterator[Any]]:
    """``yield from started_ahead(name, make)`` in the fixture ``name`` that its module lists in ``AHEAD``: the value
    ``make`` made in the background (made here and now if it was not started), then its teardown."""
    ahead = request.config.stash.get(_AHEAD, {})

    def fixture(name: str, make: Callable[[dict[str, str]], Any]) -> Iterator[Any]:
        done = ahead.get(name)
        value, teardown = _setup(make, dict(os.environ)) if done is None else done.result()
        try:
            yield value
        finally:
            if teardown is not None:
                next(teardown, None)

    return fixture
