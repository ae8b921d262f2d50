"""A trial's checkpoint (:mod:`repeval.tuning.trial`): the files it holds, writing it with the trial's last report,
and reading or reusing a whole one.

Everything a trial produces goes into its checkpoint directory — ``probes.pt`` (the selected
checkpoint of each member, as :class:`~repeval.probes.Probe` state dicts) and ``members.json``
(per member: best epoch and criterion, history, failure, the warnings its training and tests gave, and — when the
unit is tested in the trial — test metric rows with bootstrap intervals and confusion matrices), and last
``summary.json`` (the trial's configuration key, its reported metrics, the other files' sizes) —
so results live in the Tune experiment directory and survive ``Tuner.restore``, and a rerun
reuses a whole checkpoint that Tune's state had not recorded yet (:func:`repeval.tuning.trial.resuming`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

# the trial module's logger, as before this module was split from it: the command line's lines name it
log = logging.getLogger("repeval.tuning.trial")

PROBES_FILE = "probes.pt"
MEMBERS_FILE = "members.json"
#: written last into a trial's checkpoint: the trial's key, its reported metrics and the sizes of the other files
SUMMARY_FILE = "summary.json"


#: Ray Train's logger of every checkpoint a trial persists ("Checkpoint successfully created at: …", at INFO): one line
#: per trial in a job's log (``ray job submit`` attaches with ``log_to_driver``), hundreds for a grid — Tune's
#: ``RunConfig(verbose=0)`` quiets only the driver's progress reports, not what a trial's worker logs
TRAIN_STORAGE_LOGGER = "ray.train._internal.storage"


def report_checkpoint(metrics: dict[str, Any], directory: str) -> None:
    """``tune.report(metrics, checkpoint=...)`` of the checkpoint in ``directory``, without Ray Train's line about
    where it went (:data:`TRAIN_STORAGE_LOGGER`; its warnings and errors are kept): the run's summary names the run
    directory, and ``tune/`` under it holds the checkpoints (docs/store.md)."""
    from ray import tune

    logging.getLogger(TRAIN_STORAGE_LOGGER).setLevel(logging.WARNING)
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def trial_key(config: dict[str, Any]) -> str:
    """What identifies a trial's work within an experiment of one fingerprint: its configuration (the unit
    index, and a search space's sampled values)."""
    return json.dumps(config, sort_keys=True, default=str)


def _save_and_report(
    metrics: dict[str, Any],
    reports: list[dict[str, Any]],
    keep: dict[str, Any],
    config: dict[str, Any],
    reported: list[dict[str, Any]] | None = None,
) -> None:
    """Persist the unit's checkpoint and report ``metrics`` with it; ``reported`` (tune mode) is every result
    the trial reported before, which a rerun replays when it reuses this checkpoint (:func:`_reuse_finished`)."""
    import torch

    with tempfile.TemporaryDirectory() as d:
        torch.save(keep, Path(d) / PROBES_FILE)
        (Path(d) / MEMBERS_FILE).write_text(json.dumps(reports))
        files = {f: (Path(d) / f).stat().st_size for f in (PROBES_FILE, MEMBERS_FILE)}
        summary: dict[str, Any] = {"key": trial_key(config), "metrics": metrics, "files": files}
        if reported is not None:
            summary["reported"] = reported
        (Path(d) / SUMMARY_FILE).write_text(json.dumps(summary))
        report_checkpoint(metrics, d)


def read_finished(fs: Any, path: str) -> dict[str, Any] | None:
    """The summary of a trial's persisted checkpoint at ``path`` on pyarrow filesystem ``fs`` if the checkpoint is
    whole (its summary readable, the other files there at their recorded sizes), else ``None``. One this user may not
    read (:func:`repeval.cloud_reach.refused`) or on a bucket out of reach raises: taken as not whole, its experiment
    was deleted as holding none."""
    import pyarrow.fs as pafs

    try:
        with fs.open_input_stream(f"{path}/{SUMMARY_FILE}") as f:
            summary = json.loads(f.read().decode())
        infos = fs.get_file_info([f"{path}/{name}" for name in summary["files"]])
        sizes = {Path(i.path).name: i.size for i in infos if i.type == pafs.FileType.File}
        if sizes != summary["files"] or not isinstance(summary["key"], str):
            return None
        return dict(summary)
    except FileNotFoundError:  # absent (another OSError: refused, or out of reach — not "absent")
        return None
    except (ValueError, KeyError, TypeError):  # cut short or from another version
        return None


def open_finished(src: str, storage: Any = None) -> tuple[Any, str, dict[str, Any]] | None:
    """``(filesystem, path, summary)`` of the whole trial checkpoint at ``src`` (a path or a filesystem URI). A summary
    this user may not read, or on a bucket out of reach, raises — as Ray Tune storage ``storage`` (a
    :class:`~repeval.rundir.TuneStorage` that ``src`` is under) says it (:meth:`~repeval.rundir.TuneStorage.unread`),
    naming the checkpoint and the credentials to check, when it is given; else pyarrow's error."""
    from repeval.rundir import filesystem_of

    try:
        fs, path = filesystem_of(src)
    except (OSError, ValueError):
        return None
    try:
        summary = read_finished(fs, path)
    except OSError as exc:
        if storage is None:
            raise
        rel = src.split("?", 1)[0].removeprefix(storage.uri("").split("?", 1)[0])
        raise storage.unread(rel.strip("/"), exc) from None
    return None if summary is None else (fs, path, summary)


def _reuse_finished(config: dict[str, Any], finished: dict[str, str] | None, *, judged: bool = False) -> bool:
    """Report the persisted checkpoint of this trial's work from an interrupted run, if ``finished`` (trial key
    → checkpoint path or URI, found by the driver) has a whole one: the unit is not trained again.

    The results the interrupted trial reported before its last are reported again first, in order, so the
    rerun's Tune records (and a scheduler that judges every report, ``judged``) see the same iterations as
    the first run did: ASHA compares each of them at its own rung and may stop the trial on the way, as it
    could have the first time. With ``judged``, a checkpoint that does not record them (written before they
    were kept) is trained again rather than judged on its final result at its first iteration.

    A trial Tune restored from its own checkpoint (its state saved between the trial's last report and its end, then
    the driver killed; or its worker died there) reports its results again without it: Tune holds that checkpoint as
    the trial's, and reporting it once more wrote a second copy beside it (``checkpoint_000001``)."""
    import pyarrow.fs as pafs
    from ray import tune

    from repeval.rundir import filesystem_of

    key = trial_key(config)
    own = tune.get_checkpoint()
    if own is not None:
        try:
            summary = read_finished(own.filesystem, own.path)
        except OSError:
            summary = None
        if summary is not None and summary["key"] == key:
            return _report_again(summary, None, judged)
    src = (finished or {}).get(key)
    if src is None:
        return False
    local = pafs.LocalFileSystem()
    with tempfile.TemporaryDirectory() as d:  # a copy: Tune may persist this report to the very same path
        summary = None
        try:
            fs, path = filesystem_of(src)
            pafs.copy_files(path, d, source_filesystem=fs, destination_filesystem=local)
            summary = read_finished(local, d)  # the copy is checked, not the source: one read of it
        except (OSError, ValueError):
            pass
        if summary is None or summary["key"] != key:
            log.warning("the checkpoint of an interrupted trial at %s is no longer whole; training the unit again", src)
            return False
        return _report_again(summary, d, judged)


def _report_again(summary: dict[str, Any], directory: str | None, judged: bool) -> bool:
    """Report what a whole trial checkpoint's ``summary`` records — the results before its last, then its last — with
    the checkpoint in ``directory`` (``None``: Tune holds it as the trial's already); ``False`` (nothing reported)
    when ``judged`` and the summary does not record the results before its last (see :func:`_reuse_finished`)."""
    from ray import tune

    reported = summary.get("reported")
    if not isinstance(reported, list) or not all(isinstance(r, dict) for r in reported):
        if judged:
            return False
        reported = []
    for rec in reported:  # Tune numbers them 1, 2, ... as it did; a scheduler may stop the trial here
        tune.report(rec)
    first = summary["metrics"]  # what the interrupted run's trial reported; it trained for train_seconds
    metrics = {
        **first,
        "train_seconds": 0.0,
        "reused_train_seconds": first.get("train_seconds", 0.0),
        "reused": True,
    }
    if directory is None:
        tune.report(metrics)
    else:
        report_checkpoint(metrics, directory)
    return True
