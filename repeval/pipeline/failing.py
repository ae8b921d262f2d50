"""A model that fails on every track it is given: :class:`FailingModel` watches a stream's first tracks and stops the
stream (:class:`ModelFailing`) when its first ``run.stop_model_after_failed_tracks`` tracks (32 by default: null never
stops it) all failed in the model with one reason and none was embedded — a model that raises at each call (a missing
GPU, a broken install, a bug in its ``embed``) wrote one identical error record per track of the whole run, thousands
of them, before the next model started. A model that fails on a few files (the usual case: one error record each) is
never stopped: one embedded track, or failures of different reasons, end the watch; failures to decode or deform a
file are not the model's.

The stop is recorded in the stamp of each partition the model failed in (:func:`mark_stopped`), so a plain rerun leaves
the model out again without running it (:func:`left_out_again`) — its error records do not grow by as many again with
each rerun — until its plugin's files change, the setting is raised past the stop's count (or null), or
``--retry-model`` naming it (or ``--retry-errors``) tries it again; a run of it on other partitions only (another
dataset) runs it."""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable, Iterable
from typing import Any

from repeval.models import ModelUnavailable
from repeval.pipeline.todo import stream_key
from repeval.store.partition_stamp import STOPPED_FAILING
from repeval.words import counted, each_of_first, named

#: the default of ``run.stop_model_after_failed_tracks``: a stream whose first this many tracks all failed in the model,
#: with one reason, none embedded, is stopped
STOP_AFTER_FAILED_TRACKS = 32

#: the setting that says when a model is stopped (named by the messages)
SETTING = "run.stop_model_after_failed_tracks"


class ModelFailing(ModelUnavailable):
    """An embedding model stopped because it failed on each of the first tracks of its stream (the message names the
    model, the reason and the fix); the error records it wrote are kept. ``stop``: what :func:`mark_stopped` records;
    ``keys``: the stream keys (``dataset<US>scenario``) of the partitions the model failed in."""

    def __init__(self, message: str, stop: dict[str, Any] | None = None, keys: Any = ()) -> None:
        super().__init__(message)
        self.stop = stop or {}
        self.keys = frozenset(keys)


def _shape(reason: str) -> str:
    """A reason without its numbers (a shape, a length, a track's own figures): the same fault on other tracks."""
    return re.sub(r"\d+", "#", (reason.strip().splitlines() or [""])[0])


class FailingModel:
    """Watches one model's stream (:meth:`see` each batch the driver gets) for a model that fails on every track."""

    def __init__(self, mcfg: Any, limit: int | None = STOP_AFTER_FAILED_TRACKS, retried: Any = frozenset()) -> None:
        self.mcfg = mcfg
        self.limit = limit  # None: never stopped (``run.stop_model_after_failed_tracks: null``)
        # the (stream key, track id) whose earlier error records --retry-errors/--retry-model deleted in partitions
        # where the model embedded other tracks: its stream gives it those first (often only those) — failing on them
        # again is no sign that it fails on every track, which would stop it and leave it out from then on, its
        # embedded tracks unused
        self.retried = retried
        self.watching = limit is not None
        self.failed: set[str] = set()
        # not counted among :attr:`failed`: the retried tracks failing again, the tracks whose audio failed to decode
        # or deform (the message says both, or "the first N tracks it was given" reads as all it was given); track ids,
        # as :attr:`failed`: a file that failed to decode has a record in each scenario, and is one track
        self.again: set[str] = set()
        self.files: set[str] = set()
        self.keys: set[str] = set()  # the stream keys of the partitions the failures were in
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
        for tid, key, stage, reason in zip(errors.track_id, errors.scenario, errors.stage, errors.reason, strict=True):
            if stage != "embed":  # a file's fault
                self.files.add(str(tid))
                continue
            if (str(key), str(tid)) in self.retried:  # failed before
                self.again.add(str(tid))
                continue
            shape = _shape(str(reason))
            if self._shape is None:
                self._shape, self.reason = shape, str(reason)
            elif shape != self._shape:  # failures of different kinds: the tracks', not one fault of the model
                self.watching = False
                return
            self.failed.add(str(tid))
            self.keys.add(str(key))
        if self.limit is not None and len(self.failed) >= self.limit:
            first = (self.reason.strip().splitlines() or [""])[0]
            stop = {"error": first, "tracks": len(self.failed), "at": time.time()}
            raise ModelFailing(self.message(), stop, self.keys)

    def message(self) -> str:
        """Why the model was stopped, and the fix (what :class:`ModelFailing` says; whether the run's other models go
        on is the caller's to say: a run of one model stops with it)."""
        from repeval.pipeline.embedder import validate_command

        first = (self.reason.strip().splitlines() or [""])[0]
        besides = [f"{counted(len(self.again), 'retried track')} failing again as before"] * bool(self.again) + [
            f"{counted(len(self.files), 'track')} whose audio failed to decode or deform"
        ] * bool(self.files)
        uncounted = f" (not counted: {' and '.join(besides)})" if besides else ""
        return (
            f"embedding model '{self.mcfg.id}' failed on {each_of_first(len(self.failed), 'track')} it was "
            f"given, with the same error, and embedded none{uncounted}: {first} — stopped early (its "
            f"{counted(self.records, 'error record')} so far {'is' if self.records == 1 else 'are'} kept); fix the model (`{validate_command(self.mcfg)}` "
            f"runs it on test audio and shows the traceback), then rerun with {retry_option(self.mcfg.id)} (it and the "
            "tracks it failed on; --retry-errors retries every model's error records); a model that fails only "
            "on some kind of track (the longest: out of memory, a length limit) that the dataset lists first is not "
            f"broken: raise {SETTING} (now {self.limit}), or set it to null never to stop a model"
        )


def retry_option(model_id: str) -> str:
    """The option that runs a stopped model ``model_id`` again and computes its failed tracks again, leaving the other
    models' error records as they are (``--retry-errors`` retries every model's)."""
    return f"--retry-model {shlex.quote(model_id)}"


def retry_alone(partitions: Iterable[str], code: Callable[[str], str] = lambda text: f"`{text}`") -> str:
    """``, or `--retry-model a`, `--retry-model b` those of one model alone``: the options that retry the error records
    of each model of ``partitions`` (names ``dataset/model/scenario``) alone, each quoted by ``code`` (Markdown's
    backticks; the report's ``<code>``); ``""`` for none."""
    models = partition_models(partitions)
    if not models:
        return ""
    options = ", ".join(code(retry_option(m)) for m in models)
    return f", or {options} those of {'that' if len(models) == 1 else 'one'} model alone"


def partition_models(partitions: Iterable[str]) -> list[str]:
    """The models of ``partitions`` (names ``dataset/model/scenario``), sorted, each once."""
    return sorted({name.split("/")[1] for name in partitions if name.count("/") == 2})


def check_retry_models(cfg: Any, names: Any) -> frozenset[str]:
    """``--retry-model``'s ``names``, each the id of an embedding model of ``cfg``'s experiments; else a
    :class:`ValueError` naming the unknown ones and the models there are."""
    known = cfg.embedding_model_ids()
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if unknown:
        raise ValueError(
            f"--retry-model: the configuration has no {named('embedding model', [repr(n) for n in unknown])}; give "
            f"the id of one of its embedding models: {', '.join(known)}"
        )
    return frozenset(names)


def mark_stopped(parts: Any, exc: ModelFailing, code: dict[str, Any] | None) -> None:
    """Record in the stamp of each of a stopped stream's partitions (``parts``) that the model failed in
    (:attr:`ModelFailing.keys`) why it was stopped and the model's plugin code then (``code``,
    :func:`~repeval.models.provenance.plugin_code`), for :func:`left_out_again`. Not in the stream's other partitions:
    another dataset it was not given a track of yet (listed after the one it failed on) may be one it embeds — a run
    of the model on it alone runs it, and the record names a partition that holds the failures."""
    for part in parts:
        if stream_key(part.dataset, part.scenario) in exc.keys:
            part.record(STOPPED_FAILING, {**exc.stop, "model_code": code})


def left_out_again(mcfg: Any, parts: Any, code: dict[str, Any] | None, retry: bool, limit: int | None) -> str | None:
    """Why ``mcfg``'s stream, about to run on ``parts``, is left out again without running: a partition records that
    an earlier run stopped it (:func:`mark_stopped`) and nothing gives a new reason to try it — its plugin's files
    (``code`` now) are as they were, ``retry`` (``--retry-errors``, or ``--retry-model`` naming it) does not ask for
    it, and the stop's count of failed tracks still reaches ``limit`` (``run.stop_model_after_failed_tracks``;
    ``None``: never stopped, so it runs): run again, it would only add as many error records. ``None``: it runs.
    Read only (`repeval plan` says it, the store as it is): the stream that runs clears the stops first
    (:func:`clear_stops`), once every check before the streams passed — not before, or a run stopped by another
    model's check would leave no stop recorded, and the next plain run would try the model again."""
    return _again(mcfg, _stops(parts), code, retry, limit)


def clear_stops(parts: Any) -> None:
    """Clear the stops recorded in ``parts`` (:func:`mark_stopped`) as their model's stream starts again: a stop of
    this run records its own."""
    for part, _ in _stops(parts):
        part.record(STOPPED_FAILING, None)


def _stops(parts: Any) -> list[tuple[Any, dict[str, Any]]]:
    """The partitions of ``parts`` whose stamp records a stop of their model (:func:`mark_stopped`), each with it (one
    unreadable is said in a warning and taken as none: :meth:`~repeval.store.partition_stamp.PartitionStamp.
    stopped_failing`)."""
    found = [(part, part.stopped_failing()) for part in parts]
    return [(part, stop) for part, stop in found if stop is not None]


def _again(
    mcfg: Any,
    marked: list[tuple[Any, dict[str, Any]]],
    code: dict[str, Any] | None,
    retry: bool,
    limit: int | None,
) -> str | None:
    """Why the model is left out again, from the stops recorded in its partitions (``marked``); ``None``: it runs."""
    from repeval.pipeline.embedder import validate_command

    if not marked:
        return None
    part, stop = marked[0]
    failed = int(stop["tracks"])
    if retry or stop.get("model_code") != code or limit is None or limit > failed:
        return None
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(stop["at"])))
    fix = (
        f"then rerun with {retry_option(mcfg.id)}, which tries it and the tracks it failed on again, the other models' "
        "error records left as they are (--retry-errors retries every model's)"
    ) + ("; a plain run after a change to its plugin's files tries it too, without those tracks" if code else "")
    return (
        f"embedding model '{mcfg.id}' left out again, not run: a run stopped it at {when} (store partition "
        f"{part.name}) when it failed on {each_of_first(failed, 'track')} it was given, with the same "
        f"error, and embedded none: {stop['error']} — fix the model (`{validate_command(mcfg)}` runs it on test "
        f"audio and shows the traceback), {fix}; a model that fails only on some kind of track the dataset lists first "
        f"runs again under a {SETTING} above {failed} (now {limit}), or null"
    )
