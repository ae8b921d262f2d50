"""What a trial (:mod:`repeval.tuning.trial`) writes beside its results in the experiment's storage, for when it
leaves no checkpoint: its member reports' warnings so far, and the traceback of an exception its code raised.

A trial's code runs once: when it raises, the attempt Tune starts again (``tuner.TRIAL_RETRIES``, meant for a worker
that died) raises the same error at once instead of training the unit again (:func:`raised_once`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import Iterator
from typing import Any

from repeval.warn import TrialWarnings, warn_once

# the trial module's logger, as before this module was split from it: the command line's lines name it
log = logging.getLogger("repeval.tuning.trial")

#: written beside a trial's results in the experiment's storage when its code raised: that attempt's traceback
RAISED_FILE = "raised.txt"
#: written beside a trial's results in the experiment's storage while its unit trains (before each report of a tune
#: mode trial, which a scheduler may stop there) and when its code raised: its member reports' warnings so far
#: (:func:`repeval.tuning.trial.run_caught`), for the driver to say when the trial leaves no checkpoint
#: (:func:`left_warnings`)
WARNINGS_FILE = "warnings.json"


class _KeptBeside:
    """A trial's warnings so far (:class:`TrialWarnings`, as its ``members`` reports would get them), written to
    :data:`WARNINGS_FILE` in the trial's storage when they changed since the last write. Never raises: a file that
    cannot be written loses the warnings, not the trial."""

    def __init__(self, caught: TrialWarnings, members: int) -> None:
        self.caught, self.members = caught, members
        self.written = ""

    def write(self) -> None:
        reports: list[dict[str, Any]] = [{} for _ in range(self.members)]
        self.caught.into(reports)
        text = json.dumps(reports) if any(reports) else ""
        if text == self.written:
            return
        where = _trial_storage()
        if where is None:
            return
        fs, trial_path = where
        try:
            _put(fs, f"{trial_path}/{WARNINGS_FILE}", text.encode())
        except Exception as err:
            warn_once(log, "trial warnings unwritten", "could not keep a trial's warnings beside it (%s)", err)
            return
        self.written = text


def left_warnings(fs: Any, trial_path: str, members: int) -> list[dict[str, Any]]:
    """The member reports' warnings (``warnings``, ``warnings_left_out``) a trial without a checkpoint — one that
    raised, or that a scheduler stopped — wrote beside its results at ``trial_path`` on pyarrow filesystem ``fs``
    (:func:`repeval.tuning.trial.run_caught`); an empty report per member when it wrote none (or an unreadable one)."""
    try:
        with fs.open_input_stream(f"{trial_path}/{WARNINGS_FILE}") as f:
            reports = json.loads(f.read().decode())
    except (OSError, ValueError, TypeError):  # none: the trial warned nothing, or died before it could say
        reports = None
    if not isinstance(reports, list) or len(reports) != members or not all(isinstance(r, dict) for r in reports):
        return [{} for _ in range(members)]
    return reports


class RaisedBefore(RuntimeError):
    """An earlier attempt of this trial raised; the message is its traceback, so this error ends with the same line
    (the reason the driver records) and Tune's error file shows where it was raised."""


#: exceptions a trial's retry may get past, retried like a worker that died: memory, I/O (the storage unreachable for
#: a moment) and Ray's own (``ray.exceptions.RayError``: the group's embeddings lost with their node); any other is
#: the unit's own and is not retried
RETRIED_ERRORS: tuple[type[BaseException], ...] = (MemoryError, OSError)


def _retried(exc: BaseException) -> bool:
    from ray.exceptions import RayError

    return isinstance(exc, (*RETRIED_ERRORS, RayError))


def _trial_storage() -> tuple[Any, str] | None:
    """``(filesystem, path)`` of this trial's directory in the experiment's storage, which every node and the driver
    see (a retry may start on another node); ``None`` where Ray does not say."""
    from ray import tune

    try:  # a DeveloperAPI of Ray's: tests/tuning/test_grid.py fails if it stops giving the trial's directory
        storage = tune.get_context().get_storage()
        return storage.storage_filesystem, str(storage.trial_fs_path)
    except Exception:  # another Ray, or no Tune session
        return None


def _raised_note() -> tuple[Any, str] | None:
    """``(filesystem, path)`` of this trial's :data:`RAISED_FILE` (:func:`_trial_storage`; ``None``: the trial is
    then retried)."""
    where = _trial_storage()
    return None if where is None else (where[0], f"{where[1]}/{RAISED_FILE}")


@contextlib.contextmanager
def raised_once() -> Iterator[None]:
    """Run a trial's code once. Tune starts a failed trial again (``tuner.TRIAL_RETRIES``) so that one whose worker
    died (kill -9, out of memory, its node lost) is not lost; that retry would also run a trial that raised — a
    bug, bad data, a probe configuration that errors — a second time, to the same end. So the traceback of an
    exception (other than :func:`_retried` ones) is noted beside the trial's results, and the attempt
    Tune starts again raises it at once (:class:`RaisedBefore`) instead of training: the trial is still errored in
    Tune's eyes, recorded as failed with the same reason, and kept failed by a rerun as before."""
    note = _raised_note()
    if note is not None:
        fs, path = note
        try:
            with fs.open_input_stream(path) as f:
                earlier = f.read().decode()
        except OSError:  # none: the first attempt, or its worker died
            earlier = None
        if earlier is not None:
            raise RaisedBefore(earlier)
    try:
        yield
    except Exception as exc:
        if note is not None and not _retried(exc):
            _note_raised(*note, exc)
        raise


def _note_raised(fs: Any, path: str, exc: BaseException) -> None:
    """Note ``exc``'s traceback at ``path`` for :func:`raised_once`. Written under a temporary name and moved into
    place, so a write that fails part-way (a full disk) leaves no partial note for the retry to re-raise as the
    trial's error. Never raises: a note that cannot be written (any error, a filesystem's own included) must not
    replace the trial's error, which is the one to report; the trial is then run again, as before notes."""
    try:
        _put(fs, path, "".join(traceback.format_exception(exc)).encode())
    except Exception as err:
        log.warning("could not note that the trial raised (%s); Tune will run it again", err)


def _put(fs: Any, path: str, data: bytes) -> None:
    """Write ``data`` at ``path`` whole or not at all: under a temporary name, then moved into place (a partial
    temporary file is deleted). Raises what the filesystem raised."""
    tmp = f"{path}.tmp"
    try:
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        with fs.open_output_stream(tmp) as f:
            f.write(data)
        fs.move(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            fs.delete_file(tmp)
        raise
