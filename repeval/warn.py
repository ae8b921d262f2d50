"""Warnings said once per process (:func:`warn_once`), not once per probe, trial, validation or scenario; a warning
about a test set said once for the test sets that gave it, naming them (:func:`about_test_set`,
:class:`SaidByTestSets`); and a probe trial's warnings said again on the driver (:class:`TrialWarnings`,
:class:`SaidByTrials`)."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Hashable, Iterator
from typing import Any

from repeval.words import counted, named

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


# ------------------------------------------------------------------------------------------ warnings about test sets
# A probe is tested on the clean test set and on each deformation scenario's: what the metrics warn about one (a
# class without example, a label without positive, an interval on few resamples) must say which, without saying a
# warning again for each test set that gives it word for word.

_test_set = threading.local()  # .scope: (the SaidByTestSets collecting, the test set scored) in this thread


class SaidByTestSets:
    """The warnings about the test sets scored inside (:func:`about_test_set`, under :meth:`test_set`), said as it
    ends: each distinct one once, naming the test sets that gave it (``test sets clean, D1: …``), in the order first
    given; one said once per process (:func:`warn_once`) is said once per process and test sets. ``with
    SaidByTestSets() as said:``, then ``with said.test_set("clean"):`` around one test set's metrics. Of one thread
    (a scope is this thread's); says them in the thread that ends it."""

    def __init__(self) -> None:
        #: (logger or category, warn_once key or None, text) → the test sets that gave it
        self.had: dict[tuple[logging.Logger | type[Warning], Hashable, str], list[str]] = {}

    @contextlib.contextmanager
    def test_set(self, name: str) -> Iterator[None]:
        """The warnings :func:`about_test_set` gives inside, in this thread, are about test set ``name``."""
        before = getattr(_test_set, "scope", None)
        _test_set.scope = (self, name)
        try:
            yield
        finally:
            _test_set.scope = before

    def add(self, to: logging.Logger | type[Warning], once: Hashable, text: str, test_set: str) -> None:
        sets = self.had.setdefault((to, once, text), [])
        if test_set not in sets:
            sets.append(test_set)

    def __enter__(self) -> SaidByTestSets:
        return self

    def __exit__(self, *exc: object) -> None:
        for (to, once, text), sets in self.had.items():
            said = f"{named('test set', sets)}: {text}"
            _say(to, None if once is None else (once, tuple(sets)), said, stacklevel=2)
        self.had.clear()


def about_test_set(
    to: logging.Logger | type[Warning], message: str, *, once: Hashable = None, stacklevel: int = 1
) -> None:
    """Warn ``message`` (on logger ``to``, or as a warning of category ``to``; with ``once``, by :func:`warn_once`
    under that key) about the test set being scored: inside a :meth:`SaidByTestSets.test_set` scope of this thread,
    kept to be said once when the :class:`SaidByTestSets` ends, naming every test set that gave it; elsewhere said
    now (``stacklevel`` counting from the caller)."""
    scope = getattr(_test_set, "scope", None)
    if scope is not None:
        said, name = scope
        said.add(to, once, message, name)
    else:
        _say(to, once, message, stacklevel=stacklevel + 1)


def _say(to: logging.Logger | type[Warning], once: Hashable, message: str, *, stacklevel: int) -> None:
    """Say ``message`` (by :func:`warn_once` under key ``once`` unless it is ``None``); ``stacklevel``: from the
    caller."""
    if once is not None:
        warn_once(to, once, "%s", message, stacklevel=stacklevel + 1)
    elif isinstance(to, logging.Logger):
        to.warning("%s", message, stacklevel=stacklevel + 1)
    else:
        warnings.warn(message, to, stacklevel=stacklevel + 1)


# ---------------------------------------------------------------------------------------------- a trial's warnings
# A probe trial runs in a Ray worker, whose log the user does not see (Ray's worker output is off unless
# REPEVAL_WORKER_LOGS=1). :class:`TrialWarnings` catches what repeval says there while a unit trains and tests — the
# Python warnings of its categories or code and the records of its loggers at WARNING or above, still said in the
# worker as before — and the trial keeps them in its member reports (``warnings``), or beside its results when it
# raises or a scheduler stops it (:func:`repeval.tuning.trial.run_caught`); on the driver :class:`SaidByTrials` says
# each distinct one once per batch of groups, with how many probes/seeds (of which groups) had it.

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
    starts and ends (so does every validation, :func:`repeval.probes.losses.criterion_value`)."""
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


#: groups (or probes of a group) a line names before "and N more"
NAMED = 3


def _named(names: list[str], what: str = "") -> str:
    """``a, b, c and 4 more``: the first :data:`NAMED` of ``names`` (``what``: the noun of the rest)."""
    more = f" and {len(names) - NAMED} more{what}" if len(names) > NAMED else ""
    return ", ".join(names[:NAMED]) + more


def _seeds(probe: str, seeds: list[int]) -> str:
    """``lin (seeds 0, 1)``; a seed of several of the probe's configurations (a search space's samples share their
    probe's name) once, with how many: ``tuned (seed 0 ×4)``."""
    times = {s: seeds.count(s) for s in seeds}
    said = [f"{s} ×{n}" if n > 1 else str(s) for s, n in times.items()]
    return f"{probe} ({named('seed', said)})"


class SaidByTrials:
    """On the driver: the warnings of a batch's trials (:class:`TrialWarnings`, from their member reports — of a
    finished trial's checkpoint, or of one that raised or a scheduler stopped, beside it), said once each by
    :meth:`say` — on its logger at its level, or as a warning of its category — saying how many of the probes/seeds
    had it and which. A warning of one group names it first (``<group>, 3 of 4 probes/seeds (lin (seeds 0, 1);
    mlp (seed 0)): …``); one of several groups is said once for them all, with the groups every probe/seed of
    which had it and each other group's own probes/seeds (``5 of 12 probes/seeds in 3 of 4 groups (every probe/seed
    of g1; g2: lin (seeds 0, 1), mlp (seed 0); g3: lin (seed 1)): …``) — a warning about the trials' nodes is
    said once per batch, not once per group."""

    def __init__(self) -> None:
        self.had: dict[Key, dict[str, dict[str, list[int]]]] = {}  # warning → group → probe → seeds
        self.members: dict[str, int] = {}  # group → its probes/seeds (every trial's, warned or not)
        self.left_out: dict[str, int] = {}  # group → warnings its trials did not keep

    def expect(self, group: str) -> None:
        """Name ``group`` (its lines name groups in the order they were expected, then added)."""
        self.members.setdefault(group, 0)

    def add(self, group: str, probe: str, seed: int, rep: dict[str, Any]) -> None:
        """Member (``probe``, ``seed``) of ``group``; ``rep``: its report (``warnings``: what it warned)."""
        self.members[group] = self.members.get(group, 0) + 1
        for w in rep.get("warnings") or []:
            key = (str(w["kind"]), str(w["source"]), int(w["level"]), str(w["message"]))
            self.had.setdefault(key, {}).setdefault(group, {}).setdefault(probe, []).append(seed)

    def add_left_out(self, group: str, n: int) -> None:
        self.expect(group)
        if n:
            self.left_out[group] = self.left_out.get(group, 0) + n

    def _line(self, groups: dict[str, dict[str, list[int]]], text: str) -> str:
        def count(g: str) -> int:
            return sum(len(seeds) for seeds in groups[g].values())

        if len(groups) == 1:
            ((group, probes),) = groups.items()
            n = count(group)
            if n == 1:
                ((probe, (seed,)),) = probes.items()
                return f"{group}, probe {probe} (seed {seed}): {text}"
            which = "; ".join(_seeds(p, s) for p, s in list(probes.items())[:NAMED])
            more = f" and {len(probes) - NAMED} more" if len(probes) > NAMED else ""
            return f"{group}, {n} of {self.members[group]} probes/seeds ({which}{more}): {text}"
        ordered = [g for g in self.members if g in groups]
        every = [g for g in ordered if count(g) == self.members[g]]
        parts = [f"every probe/seed of {_named(every)}"] if every else []
        some = [g for g in ordered if g not in every]
        for g in some[:NAMED]:
            parts.append(f"{g}: {_named([_seeds(p, s) for p, s in groups[g].items()])}")
        if len(some) > NAMED:
            parts.append(f"and {counted(len(some) - NAMED, 'more group')}")
        n, total = sum(count(g) for g in groups), sum(self.members.values())
        of = f"{len(groups)} of {sum(1 for m in self.members.values() if m)} groups"
        return f"{n} of {total} probes/seeds in {of} ({'; '.join(parts)}): {text}"

    def say(self) -> None:
        for (kind, source, level, text), groups in self.had.items():
            line = self._line(groups, text)
            if kind == "log":
                logging.getLogger(source).log(level, "%s", line)
            else:
                warnings.warn(line, _category(source), stacklevel=2)
        if self.left_out:
            names = [g for g in self.members if g in self.left_out]
            logging.getLogger(__name__).warning(
                "%s: %s trials gave %s than the %d distinct ones each keeps; set "
                "REPEVAL_WORKER_LOGS=1 to see them all in the trials' logs",
                _named(names), "its" if len(names) == 1 else "their",
                counted(sum(self.left_out.values()), "more warning"), KEPT_PER_TRIAL,
            )  # fmt: skip
        self.had.clear()
        self.members.clear()
        self.left_out.clear()
