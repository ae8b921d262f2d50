"""Warnings said once per process (:func:`warn_once`), not once per probe, trial, validation or scenario; and a
probe trial's warnings said again on the driver (:class:`TrialWarnings`, :class:`SaidByTrials`)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator
from typing import Any

_lock = threading.Lock()
#: (logger or warning category, key) of every warning said in this process
_said: set[tuple[str, Hashable]] = set()


def _scope(to: logging.Logger | type[Warning]) -> str:
    return f"log {to.name}" if isinstance(to, logging.Logger) else f"warning {_category_name(to)}"


def warn_once(to: logging.Logger | type[Warning], key: Hashable, message: str, *args: Any, stacklevel: int = 1) -> bool:
    """Say ``message`` the first time this process asks with ``key`` (for ``to``), and nothing after; returns whether
    it said it. ``to``: a logger (``to.warning(message, *args)``) or a warning category (``warnings.warn(message %
    args, to)``). ``stacklevel`` counts from the caller (1: the line that calls this). Thread-safe: of threads asking
    with one key at once, one says it. A trial's :class:`TrialWarnings` notes every ask, said or not."""
    said = (_scope(to), key)
    with _lock:
        repeat = said in _said
        _said.add(said)
    if repeat:  # not said again; a trial's catch still notes it (TrialWarnings: how many probes had it)
        _noted_repeat(to, message % args if args else message)
        return False
    if isinstance(to, logging.Logger):
        to.warning(message, *args, stacklevel=stacklevel + 1)
    else:
        warnings.warn(message % args if args else message, to, stacklevel=stacklevel + 1)
    return True


def reset_warned() -> None:
    """Forget every warning said, so each is said again (tests that check a warning is said once)."""
    with _lock:
        _said.clear()


# ---------------------------------------------------------------------------------------------- a trial's warnings
# A probe trial runs in a Ray worker, whose log the user does not see (Ray's worker output is off unless
# REPEVAL_WORKER_LOGS=1). :class:`TrialWarnings` catches what repeval says there while a unit trains and tests — the
# Python warnings of its categories or code and the records of its loggers at WARNING or above, still said in the
# worker as before — and the trial keeps them in its member reports (``warnings``); on the driver
# :class:`SaidByTrials` says each distinct one once per group, with how many probes/seeds had it.

#: distinct warnings a trial keeps; those beyond are counted (``warnings_left_out``), not kept
KEPT_PER_TRIAL = 20
#: characters of a warning's text a trial keeps
KEPT_CHARS = 2000
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: a caught warning: ("log", logger name, level) or ("warning", category's qualified name, 0), and its text
Key = tuple[str, str, int, str]

_active: list[TrialWarnings] = []  # under _lock
_member = threading.local()  # .index: the member whose work this thread does (:func:`member_scope`)
#: while any catch is active: the ``warnings.showwarning`` it wraps, and the handler on repeval's loggers
_installed: list[tuple[Callable[..., None], logging.Handler]] = []


def _category_name(category: type[Warning]) -> str:
    return f"{category.__module__}.{category.__qualname__}"


def _note(key: Key) -> None:
    """Give ``key`` to the catches active in this thread (any thread's when none is: a helper thread's warning)."""
    me = threading.get_ident()
    with _lock:
        to = [c for c in _active if c.thread == me] or list(_active)
    member = getattr(_member, "index", None)
    for c in to:
        c.add(key, member)


def _noted_repeat(to: logging.Logger | type[Warning], message: str) -> None:
    """A :func:`warn_once` warning not said again in this process: still noted for the trial that raised it."""
    if _active:
        if isinstance(to, logging.Logger):
            _note(("log", to.name, logging.WARNING, message))
        else:
            _note(("warning", _category_name(to), 0, message))


def is_ours(category: type[Warning], filename: str) -> bool:
    """A warning of one of repeval's categories, or given by repeval's code."""
    return category.__module__.split(".")[0] == "repeval" or os.path.abspath(filename).startswith(_PACKAGE_DIR)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if _active:
            try:
                _note(("log", record.name, record.levelno, record.getMessage()))
            except Exception:  # a record that cannot be formatted: the worker's own handlers say why
                pass


def _showwarning(show: Callable[..., None]) -> Callable[..., None]:
    def showwarning(message: Any, category: type[Warning], filename: str, lineno: int, *args: Any) -> None:
        show(message, category, filename, lineno, *args)  # said in the worker as before
        if _active and is_ours(category, filename):
            _note(("warning", _category_name(category), 0, str(message)))

    showwarning.wraps = show  # type: ignore[attr-defined]
    return showwarning


def _forget_shown() -> None:
    """Forget which warnings Python has shown (its filters' "default" action shows one text once per code line): the
    same warning of the next member or trial is shown, and caught, again. ``catch_warnings`` forgets them as it
    starts and ends (so does every validation, :func:`repeval.probes.train.criterion_value`)."""
    with warnings.catch_warnings():
        pass


class TrialWarnings:
    """What repeval warns while a trial's unit trains and tests (see the section's comment): ``with
    TrialWarnings() as caught:`` around the work of a unit, :func:`member_scope` around one member's, then
    :meth:`into` the unit's member reports. A warning in a member's scope is that member's, any other the whole
    unit's. Thread-safe: a warning goes to the catch of the thread that gave it (a helper thread's to every catch
    active). It keeps :data:`KEPT_PER_TRIAL` distinct warnings and counts the rest."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        #: each warning kept → the members that had it (``None``: the whole unit)
        self.kept: dict[Key, set[int] | None] = {}
        self.left_out = 0
        self._lock = threading.Lock()

    def add(self, key: Key, member: int | None) -> None:
        kind, source, level, text = key
        key = (kind, source, level, text if len(text) <= KEPT_CHARS else text[: KEPT_CHARS - 1] + "…")
        with self._lock:
            if key not in self.kept:
                if len(self.kept) >= KEPT_PER_TRIAL:
                    self.left_out += 1
                    return
                self.kept[key] = set()
            had = self.kept[key]
            if had is not None:
                if member is None:
                    self.kept[key] = None
                else:
                    had.add(member)

    def __enter__(self) -> TrialWarnings:
        with _lock:
            if not _active:
                handler = _Handler(logging.WARNING)
                _installed.append((warnings.showwarning, handler))
                warnings.showwarning = _showwarning(warnings.showwarning)
                logging.getLogger("repeval").addHandler(handler)
            _active.append(self)
        _forget_shown()
        return self

    def __exit__(self, *exc: object) -> None:
        with _lock:
            _active.remove(self)
            if not _active:
                show, handler = _installed.pop()
                logging.getLogger("repeval").removeHandler(handler)
                ours = getattr(warnings.showwarning, "wraps", None) is show  # unless something replaced it since
                if ours:
                    warnings.showwarning = show

    def into(self, reports: list[dict[str, Any]]) -> None:
        """Each member's report gets its warnings (``warnings``: the whole unit's and its own) and the number of
        warnings the trial did not keep (``warnings_left_out``)."""
        with self._lock:
            for i, rep in enumerate(reports):
                had = [
                    {"kind": kind, "source": source, "level": level, "message": text}
                    for (kind, source, level, text), members in self.kept.items()
                    if members is None or i in members
                ]
                if had:
                    rep["warnings"] = had
                if self.left_out:
                    rep["warnings_left_out"] = self.left_out


@contextlib.contextmanager
def member_scope(index: int) -> Iterator[None]:
    """The warnings this thread gives inside are member ``index``'s (:class:`TrialWarnings`)."""
    before = getattr(_member, "index", None)
    _member.index = index
    _forget_shown()
    try:
        yield
    finally:
        _member.index = before


def _category(name: str) -> type[Warning]:
    """The warning category named ``name`` (module and qualified name), or ``UserWarning`` when none is."""
    module, _, qualname = name.rpartition(".")
    try:
        found: Any = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


class SaidByTrials:
    """On the driver: the warnings of a group's trials (:class:`TrialWarnings`, from their member reports), said
    once each by :meth:`say` — on its logger at its level, or as a warning of its category — saying how many of the
    group's probes/seeds had it and which."""

    def __init__(self) -> None:
        self.had: dict[Key, dict[str, list[int]]] = {}  # warning → probe → seeds
        self.members = 0
        self.left_out = 0

    def add(self, probe: str, seed: int, rep: dict[str, Any]) -> None:
        self.members += 1
        for w in rep.get("warnings") or []:
            key = (str(w["kind"]), str(w["source"]), int(w["level"]), str(w["message"]))
            self.had.setdefault(key, {}).setdefault(probe, []).append(seed)

    def add_left_out(self, n: int) -> None:
        self.left_out += n

    def say(self, group: str) -> None:
        for (kind, source, level, text), probes in self.had.items():
            n = sum(len(seeds) for seeds in probes.values())
            if n == 1:
                ((probe, (seed,)),) = probes.items()
                line = f"{group}, probe {probe} (seed {seed}): {text}"
            else:
                which = [f"{p} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})" for p, s in probes.items()]
                more = f" and {len(which) - 3} more" if len(which) > 3 else ""
                line = f"{group}, {n} of {self.members} probes/seeds ({'; '.join(which[:3])}{more}): {text}"
            if kind == "log":
                logging.getLogger(source).log(level, "%s", line)
            else:
                warnings.warn(line, _category(source), stacklevel=2)
        if self.left_out:
            logging.getLogger(__name__).warning(
                "%s: its trials gave %d more warning(s) than the %d distinct ones each keeps; set "
                "REPEVAL_WORKER_LOGS=1 to see them all in the trials' logs",
                group, self.left_out, KEPT_PER_TRIAL,
            )  # fmt: skip
        self.had.clear()
        self.left_out = 0
