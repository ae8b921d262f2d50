"""The training stage's progress where stderr is no terminal (a log file, ``nohup``, ``ray job submit``'s logs): Tune
runs with ``verbose=0`` and prints nothing, so :class:`TrialProgress` logs a line a minute of a Tune experiment's trials
(:class:`~repeval.pipeline.summary.Progress`, ``unit="trial"``)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from ray import tune

from repeval.pipeline.summary import Progress, elapsed
from repeval.tuning.checkpoint import trial_key
from repeval.words import counted

#: the states of a trial that will not run again in this fit: finished, stopped by a scheduler, or failed for good
ENDED = ("TERMINATED", "ERROR")


#: experiment name → the trial keys a restored experiment's fit reuses (:func:`reusing`), which its callback, unpickled
#: from the experiment as its first driver made it, reads as it starts
_REUSED: dict[str, frozenset[str]] = {}


def reusing(name: str, keys: Collection[str]) -> None:
    """Tell the progress callback of experiment ``name``, about to be restored, the trials its fit reuses."""
    _REUSED[name] = frozenset(keys)


#: a batch's grid names longer than this together are shortened in its progress lines (the first, and how many more)
NAMES_SAID = 120


def experiment_label(grids: list[str]) -> str:
    """What a Tune experiment trains, as its progress lines say it: its probe grid, or a batch's grids (``3 probe grids
    (a, b, c)``; their names shortened past :data:`NAMES_SAID` characters) — not the batch's experiment name
    (``groups-3-0aa910ac2b25``), which names none of them."""
    if len(grids) == 1:
        return grids[0]
    names = ", ".join(grids)
    if len(names) > NAMES_SAID:
        names = f"{grids[0]} and {len(grids) - 1:,} more"
    return f"{counted(len(grids), 'probe grid')} ({names})"


class TrialProgress(tune.Callback):
    """Trials ended of the ``total`` of experiment ``name``. The trials an interrupted run finished count as done from
    the start — those the fit reuses (``reused``: trial keys, :func:`~repeval.tuning.checkpoint.trial_key`), which
    report their checkpoint at once, and those a restored experiment holds ended already — so they do not inflate the
    rate, which counts from the first trial that ends after them (a trial takes as long as its training). ``label``:
    what the lines name (:func:`experiment_label`; default ``name``)."""

    def __init__(
        self,
        name: str,
        total: int,
        reused: Collection[str],
        clock: Callable[[], float] | None = None,
        label: str | None = None,
    ) -> None:
        self.name, self.total, self.reused, self.clock = name, total, frozenset(reused), clock
        self.label = label or name
        self.bar: Progress | None = None
        self.counted: set[str] = set()

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        # every fit starts counting anew: a restored experiment's callback is the one its first driver pickled
        self.bar, self.counted = None, set()
        self.reused = _REUSED.pop(self.name, self.reused)

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        if self.bar is None:
            done = set(self.reused) | {trial_key(t.config) for t in trials if t.status in ENDED}
            self.counted = done
            clock = self.clock or time.monotonic
            self.bar = Progress(self.total, f"train {self.label}", unit="trial", clock=clock, bar=False, done=len(done))
        self._waiting(trials)

    def _waiting(self, trials: list[Any]) -> None:
        """After a minute without a trial ending (or starting), what the trials do: a line a minute at most, progress
        lines included (:meth:`Progress.quiet_for`) — ``train g: starting, 2 running, 6 pending (3 min)``."""
        assert self.bar is not None
        now = self.bar.clock()
        quiet = self.bar.quiet_for(now)
        if quiet is None:
            return
        states = Counter(t.status for t in trials)
        running, pending = states["RUNNING"], states["PENDING"]
        took = elapsed(math.floor(quiet))
        doing = f"{running:,} running, {pending:,} pending"
        if pending and not running:  # none can start: the cluster lacks what a trial asks for, for now
            doing += " (waiting for the CPUs or GPUs a trial asks for: other work holds them, or a node is starting)"
        if self.bar.rows_at is None:
            line = f"train {self.label}: starting, {doing} ({took})"
        else:
            done = f"{self.bar.done:,} of {counted(self.total, 'trial')} ended"
            line = f"train {self.label}: no trial ended for {took} ({done}), {doing}"
        self.bar.waiting(now, line)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._ended(trial)

    def _ended(self, trial: Any) -> None:
        key = trial_key(trial.config)
        if self.bar is not None and key not in self.counted:
            self.counted.add(key)
            self.bar.update(1)
