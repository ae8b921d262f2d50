"""Shared fixtures: one session-scoped embedded Ray, the shared data folder, a rendered note set."""

from __future__ import annotations

import contextlib
import os
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from repeval.cpu import use_huge_pages
from repeval.testing.ahead import STARTED, ahead_of, setup

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


#: options by which a collected test may yet be left out of the run
_SELECTING = ("keyword", "markexpr", "deselect", "lf", "stepwise")


def _start_ahead(config: pytest.Config, item: pytest.Item) -> None:
    """Start each fixture that ``item``'s module makes with ``ahead_fixture`` (repeval.testing.ahead) and ``item``
    uses, once, in a background thread, with a copy of ``os.environ`` taken here, before any test runs."""
    ahead = config.stash.setdefault(STARTED, {})
    for name, make in ahead_of(getattr(item, "module", None)).items():
        if name in getattr(item, "fixturenames", ()) and name not in ahead:
            ahead[name] = _AHEAD_QUEUE.submit(setup, make, dict(os.environ))  # its fixture re-raises what it raised


def pytest_itemcollected(item: pytest.Item) -> None:
    # as soon as it is collected (the collection is one busy core: ~17 s of imports for the whole suite), unless an
    # option may still leave it out
    if not item.config.option.collectonly and not any(getattr(item.config.option, o, None) for o in _SELECTING):
        _start_ahead(item.config, item)


def pytest_collection_finish(session: pytest.Session) -> None:
    if not session.config.option.collectonly:
        for item in session.items:
            _start_ahead(session.config, item)


#: one at a time, in the order their tests run: each is a Ray start or a batch of processes that keeps both cores busy
#: (several Rays starting at once on 2 cores time out)
_AHEAD_QUEUE = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")


def pytest_sessionfinish(session: pytest.Session) -> None:
    # a fixture started ahead whose tests did not run (-x, Ctrl-C) ends before the session does, its teardown run: its
    # subprocesses and temporary files go with it; the ones not started yet never start (all cancelled before waiting
    # for the one running: the queue would start the next as soon as it ends). Each teardown runs once every running
    # fixture has ended, the last started first, as pytest ends fixtures: the multinode head's teardown stopped the
    # cluster while the worker node queued after it was still joining it (a node start that then outlived the head)
    ahead = session.config.stash.get(STARTED, {}).values()
    for done in ahead:
        done.cancel()
    teardowns = []
    for done in ahead:
        with contextlib.suppress(BaseException):
            teardowns.append(done.result()[1])
    for teardown in reversed(teardowns):
        with contextlib.suppress(BaseException):
            if teardown is not None:
                next(teardown, None)
