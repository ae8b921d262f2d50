"""A model that fails on every track it is given: :class:`FailingModel` watches a stream's first tracks and stops the
stream (:class:`ModelFailing`) when its first ``run.stop_model_after_failed_tracks`` tracks (32 by default: null never
stops it) all failed in the model with one reason and none was embedded — a model that raises at each call (a missing
GPU, a broken install, a bug in its ``embed``) wrote one identical error record per track of the whole run, thousands
of them, before the next model started. A model that fails on a few files (the usual case: one error record each) is
never stopped: one embedded track, or failures of different reasons, end the watch; failures to decode or deform a
file are not the model's.

The stop is recorded in the stamp of each partition of the stream (:func:`mark_stopped`), so a plain rerun leaves the
model out again without running it (:func:`stopped_before`) — its error records do not grow by as many again with
each rerun — until its plugin's files change, the setting is raised past the stop's count (or null), or
``--retry-errors`` tries it again."""

from __future__ import annotations

import re
import time
from typing import Any

from repeval.models import ModelUnavailable
from repeval.words import counted

#: the default of ``run.stop_model_after_failed_tracks``: a stream whose first this many tracks all failed in the model,
#: with one reason, none embedded, is stopped
STOP_AFTER_FAILED_TRACKS = 32

#: the key of a partition's stamp that records the stop of its model's stream (:func:`mark_stopped`)
STOPPED = "stopped_failing"

#: the setting that says when a model is stopped (named by the messages)
SETTING = "run.stop_model_after_failed_tracks"


class ModelFailing(ModelUnavailable):
    """An embedding model stopped because it failed on each of the first tracks of its stream (the message names the
    model, the reason and the fix); the error records it wrote are kept. ``stop``: what :func:`mark_stopped` records."""

    def __init__(self, message: str, stop: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.stop = stop or {}


def _shape(reason: str) -> str:
    """A reason without its numbers (a shape, a length, a track's own figures): the same fault on other tracks."""
    return re.sub(r"\d+", "#", (reason.strip().splitlines() or [""])[0])


class FailingModel:
    """Watches one model's stream (:meth:`see` each batch the driver gets) for a model that fails on every track."""

    def __init__(self, mcfg: Any, limit: int | None = STOP_AFTER_FAILED_TRACKS) -> None:
        self.mcfg = mcfg
        self.limit = limit  # None: never stopped (``run.stop_model_after_failed_tracks: null``)
        self.watching = limit is not None
        self.failed: set[str] = set()
        self.records = 0
        self.reason = ""
        self._shape: str | None = None

    def see(self, block: Any, errors: Any) -> None:
        """Take one batch's embedded rows (``block``) and error records (``errors``); raise :class:`ModelFailing` when
        the stream's first :attr:`limit` tracks all failed in the model with one reason."""
        if not self.watching:
            return
        if block is not None and len(block):  # the model embeds: its failures are the tracks'
            self.watching = False
            return
        self.records += len(errors)
        for tid, stage, reason in zip(errors.track_id, errors.stage, errors.reason, strict=True):
            if stage != "embed":  # a file that did not decode, a deformation that failed: not the model's fault
                continue
            shape = _shape(str(reason))
            if self._shape is None:
                self._shape, self.reason = shape, str(reason)
            elif shape != self._shape:  # failures of different kinds: the tracks', not one fault of the model
                self.watching = False
                return
            self.failed.add(str(tid))
        if self.limit is not None and len(self.failed) >= self.limit:
            first = (self.reason.strip().splitlines() or [""])[0]
            raise ModelFailing(self.message(), {"error": first, "tracks": len(self.failed), "at": time.time()})

    def message(self) -> str:
        """Why the model was stopped, and the fix (what :class:`ModelFailing` says; whether the run's other models go
        on is the caller's to say: a run of one model stops with it)."""
        from repeval.pipeline.embedder import validate_command

        first = (self.reason.strip().splitlines() or [""])[0]
        return (
            f"embedding model '{self.mcfg.id}' failed on each of the first {counted(len(self.failed), 'track')} it was "
            f"given, with the same error, and embedded none: {first} — stopped early (its "
            f"{counted(self.records, 'error record')} so far are kept); fix the model (`{validate_command(self.mcfg)}` "
            "runs it on test audio and shows the traceback), then rerun with --retry-errors; a model that fails only "
            "on some kind of track (the longest: out of memory, a length limit) that the dataset lists first is not "
            f"broken: raise {SETTING} (now {self.limit}), or set it to null never to stop a model"
        )


def mark_stopped(parts: Any, exc: ModelFailing, code: dict[str, Any] | None) -> None:
    """Record in the stamp of each of a stopped stream's partitions (``parts``) why it was stopped and the model's
    plugin code then (``code``, :func:`~repeval.models.provenance.plugin_code`), for :func:`stopped_before`."""
    for part in parts:
        part.record(STOPPED, {**exc.stop, "model_code": code})


def stopped_before(
    mcfg: Any, parts: Any, code: dict[str, Any] | None, retry_errors: bool, limit: int | None
) -> str | None:
    """Why ``mcfg``'s stream, about to run on ``parts``, is left out again without running: a partition records that
    an earlier run stopped it (:func:`mark_stopped`) and nothing gives a new reason to try it — its plugin's files
    (``code`` now) are as they were, ``retry_errors`` does not ask for it, and the stop's count of failed tracks still
    reaches ``limit`` (``run.stop_model_after_failed_tracks``; ``None``: never stopped, so it runs): run again, it would
    only add as many error records. ``None``: it runs (the records of an earlier stop are cleared: a stop of this run
    records its own)."""
    marked = [part for part in parts if isinstance((part.stamped() or {}).get(STOPPED), dict)]
    why = left_out_again(mcfg, marked, code, retry_errors, limit)
    if why is None:
        for part in marked:
            part.record(STOPPED, None)
    return why


def left_out_again(
    mcfg: Any, parts: Any, code: dict[str, Any] | None, retry_errors: bool, limit: int | None
) -> str | None:
    """:func:`stopped_before`'s reason, read only (`repeval plan` says it, the store as it is)."""
    from repeval.pipeline.embedder import validate_command

    marked = [(part, body[STOPPED]) for part in parts if isinstance(body := part.stamped() or {}, dict)
              and isinstance(body.get(STOPPED), dict)]  # fmt: skip
    if not marked:
        return None
    part, stop = marked[0]
    failed = int(stop.get("tracks") or 0)
    if retry_errors or stop.get("model_code") != code or limit is None or limit > failed:
        return None
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(stop.get("at") or 0)))
    fix = "then rerun with --retry-errors, which tries it and the tracks it failed on again" + (
        " (a plain run after a change to its plugin's files tries it too, without those tracks)" if code else ""
    )
    return (
        f"embedding model '{mcfg.id}' left out again, not run: a run stopped it at {when} (store partition "
        f"{part.name}) when it failed on each of the first {counted(failed, 'track')} it was given, with the same "
        f"error, and embedded none: {stop.get('error', '')} — fix the model (`{validate_command(mcfg)}` runs it on test "
        f"audio and shows the traceback), {fix}; a model that fails only on some kind of track the dataset lists first "
        f"runs again under a higher {SETTING} (now {limit}), or null"
    )
