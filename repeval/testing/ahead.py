"""Test fixtures started ahead of their tests: ``name = ahead_fixture("name", make)`` in a test module, and the test
suite's tests/conftest.py starts ``make`` in the background as soon as a test that uses ``name`` is collected.

Meant for work that is a subprocess of its own (a Ray of its own, a batch of ``repeval`` processes): it overlaps the
collection and the tests that run before its module, on the core they leave idle, instead of adding its wall time."""

from __future__ import annotations

import heapq
import inspect
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import ModuleType
from typing import Any, Literal

import pytest

#: a fixture's work: given a copy of ``os.environ``, its value, or a generator that yields it (what follows the
#: ``yield``, its teardown, runs when the fixture ends)
Make = Callable[[dict[str, str]], Any]
#: the fixtures started ahead of their tests (fixture name -> its coming value and teardown), in the config's stash
STARTED = pytest.StashKey[dict[str, Future]]()
#: the fixtures :func:`ahead_fixture` made (id -> the fixture, its name, its work and whether it goes first)
_MADE: dict[int, tuple[Any, str, Make, bool]] = {}


def setup(make: Make, environ: dict[str, str]) -> tuple[Any, Iterator[Any] | None]:
    """``make``'s value, and the generator whose next step is its teardown (``None``: it has none)."""
    made = make(environ)
    if inspect.isgenerator(made):
        return next(made), made
    return made, None


def ahead_fixture(
    name: str,
    make: Make,
    scope: Literal["session", "package", "module", "class", "function"] = "function",
    uses: tuple[str, ...] = (),
    first: bool = False,
) -> Any:
    """The fixture ``name`` (assign it to a module variable of that name): the value ``make`` made in the background
    (made here and now if it was not started), then its teardown. ``make``'s one argument is a copy of ``os.environ``
    taken before any test runs: it gives that to every process it starts (``env=``), and a working directory
    (``cwd=``), and reads neither from this process, whose environment and directory the tests running meanwhile
    change (``monkeypatch.setenv``, ``chdir``). ``uses``: fixtures set up before it (a check that fails early).
    ``first``: it starts before the fixtures queued and not started yet (:class:`Queue`), as a long run whose tests
    come late does best, so that it is over before the tests queued ahead of it run beside it."""

    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        for other in uses:
            request.getfixturevalue(other)
        done = request.config.stash.get(STARTED, {}).get(name)
        value, teardown = setup(make, dict(os.environ)) if done is None else done.result()
        try:
            yield value
        finally:
            if teardown is not None:
                next(teardown, None)

    made = pytest.fixture(scope=scope, name=name)(fixture)
    _MADE[id(made)] = (made, name, make, first)
    return made


def ahead_of(module: ModuleType | None) -> dict[str, tuple[Make, bool]]:
    """The fixtures ``module`` made with :func:`ahead_fixture`: name -> its work, and whether it goes first."""
    found = {}
    for value in vars(module).values() if module is not None else ():
        made, name, make, first = _MADE.get(id(value), (None, "", None, False))
        if made is value and make is not None:
            found[name] = (make, first)
    return found


class Queue:
    """The fixtures started ahead, one at a time (each is a Ray start or a batch of processes that keeps both cores
    busy; several Rays starting at once on 2 cores time out): in the order they were queued, except that one queued
    with ``first`` starts before those not started yet."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")
        self._waiting: list[tuple[bool, int, Future, Make, dict[str, str]]] = []
        self._count = itertools.count()
        self._lock = threading.Lock()

    def submit(self, make: Make, environ: dict[str, str], first: bool = False) -> Future:
        """The coming value and teardown of ``make`` (:func:`setup`), run with ``environ``; cancel it to skip it."""
        done: Future = Future()
        with self._lock:
            heapq.heappush(self._waiting, (not first, next(self._count), done, make, environ))
        self._pool.submit(self._next)
        return done

    def _next(self) -> None:
        with self._lock:
            _, _, done, make, environ = heapq.heappop(self._waiting)
        if done.set_running_or_notify_cancel():  # not cancelled (the session ended before it started)
            try:
                done.set_result(setup(make, environ))
            except BaseException as e:  # its fixture re-raises it in its test
                done.set_exception(e)
