"""A model that fails on every track it is given: :class:`FailingModel` watches a stream's first tracks and stops the
stream (:class:`ModelFailing`) when its first :data:`STOP_AFTER_FAILED_TRACKS` tracks all failed in the model with
one reason and none was embedded — a model that raises at each call (a missing GPU, a broken install, a bug in its
``embed``) wrote one identical error record per track of the whole run, thousands of them, before the next model
started. A model that fails on a few files (the usual case: one error record each) is never stopped: one embedded
track, or failures of different reasons, end the watch; failures to decode or deform a file are not the model's."""

from __future__ import annotations

import re
from typing import Any

from repeval.models import ModelUnavailable
from repeval.words import counted

#: a stream whose first this many tracks all failed in the model, with one reason, none embedded, is stopped
STOP_AFTER_FAILED_TRACKS = 32


class ModelFailing(ModelUnavailable):
    """An embedding model stopped because it failed on each of the first tracks of its stream (the message names the
    model, the reason and the fix); the error records it wrote are kept."""


def _shape(reason: str) -> str:
    """A reason without its numbers (a shape, a length, a track's own figures): the same fault on other tracks."""
    return re.sub(r"\d+", "#", (reason.strip().splitlines() or [""])[0])


class FailingModel:
    """Watches one model's stream (:meth:`see` each batch the driver gets) for a model that fails on every track."""

    def __init__(self, mcfg: Any, limit: int | None = None) -> None:
        self.mcfg = mcfg
        self.limit = STOP_AFTER_FAILED_TRACKS if limit is None else limit
        self.watching = True
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
        if len(self.failed) >= self.limit:
            raise ModelFailing(self.message())

    def message(self) -> str:
        """Why the model was stopped, and the fix (what :class:`ModelFailing` says; whether the run's other models go
        on is the caller's to say: a run of one model stops with it)."""
        from repeval.pipeline.embedder import validate_command

        first = (self.reason.strip().splitlines() or [""])[0]
        return (
            f"embedding model '{self.mcfg.id}' failed on each of the first {counted(len(self.failed), 'track')} it was "
            f"given, with the same error, and embedded none: {first} — stopped early (its "
            f"{counted(self.records, 'error record')} so far are kept); fix the model (`{validate_command(self.mcfg)}` "
            "runs it on test audio and shows the traceback), then rerun with --retry-errors"
        )
