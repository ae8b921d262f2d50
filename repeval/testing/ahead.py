"""Test fixtures started ahead of their tests: ``name = ahead_fixture("name", make)`` in a test module, and the test
suite's tests/conftest.py starts ``make`` in the background as soon as a test that uses ``name`` is collected.

Meant for work that is a subprocess of its own (a Ray of its own, a batch of ``repeval`` processes): it overlaps the
collection and the tests that run before its module, on the core they leave idle, instead of adding its wall time."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import ModuleType
from typing import Any, Literal

import pytest

#: a fixture's work: given a copy of ``os.environ``, its value, or a generator that yields it (what follows the
#: ``yield``, its teardown, runs when the fixture ends)
Make = Callable[[dict[str, str]], Any]
#: the fixtures started ahead of their tests (fixture name -> its coming value and teardown), in the config's stash
STARTED = pytest.StashKey[dict[str, Future]]()
#: the fixtures :func:`ahead_fixture` made (id -> the fixture, its name and its work)
_MADE: dict[int, tuple[Any, str, Make]] = {}


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
) -> Any:
    """The fixture ``name`` (assign it to a module variable of that name): the value ``make`` made in the background
    (made here and now if it was not started), then its teardown. ``make``'s one argument is a copy of ``os.environ``
    taken before any test runs: it gives that to every process it starts (``env=``), and a working directory
    (``cwd=``), and reads neither from this process, whose environment and directory the tests running meanwhile
    change (``monkeypatch.setenv``, ``chdir``). ``uses``: fixtures set up before it (a check that fails early)."""

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
    _MADE[id(made)] = (made, name, make)
    return made


def ahead_of(module: ModuleType | None) -> dict[str, Make]:
    """The fixtures ``module`` made with :func:`ahead_fixture`: name -> its work."""
    found = {}
    for value in vars(module).values() if module is not None else ():
        made, name, make = _MADE.get(id(value), (None, "", None))
        if made is value and make is not None:
            found[name] = make
    return found
