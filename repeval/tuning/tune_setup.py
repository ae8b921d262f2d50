"""How Ray Tune is run by :mod:`repeval.tuning.tuner`: its log lines about a restored experiment's unfinished trials
silenced, its trial actors let into Ray's prestarted workers, and tensorboardX imported for its TensorBoard logger
without its cloud back ends."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

#: the logger of Tune's "Restored on <node> from checkpoint: Checkpoint(…)", which a trial actor says at INFO as it
#: restores an interrupted trial (Ray 2.60's ``Trainable.restore``)
TRAINABLE_LOGGER = "ray.tune.trainable.trainable"


class RestoredLines(logging.Filter):
    """Drop Tune's INFO line of each trial restored from its checkpoint (:data:`TRAINABLE_LOGGER`): a resumed grid's
    job log had one per unfinished trial, with its checkpoint's path — said once for the experiment instead, by the
    driver's "resuming Tune experiment <path>". The logger's other lines (its warnings and errors) pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith("Restored on "))


def quiet_restored_lines() -> None:
    """Install :class:`RestoredLines` on :data:`TRAINABLE_LOGGER` in this process (once)."""
    logger = logging.getLogger(TRAINABLE_LOGGER)
    if not any(isinstance(f, RestoredLines) for f in logger.filters):
        logger.addFilter(RestoredLines())


class RestoresQuietly:
    """A mixin of a Tune trainable whose actors drop Tune's line of each trial they restore (:class:`RestoredLines`):
    the filter goes into the trial actor's process as it restores, before Tune logs the line there — where a job's
    log (``log_to_driver``) picks it up."""

    def restore(self, *args: Any, **kwargs: Any) -> Any:
        quiet_restored_lines()
        return super().restore(*args, **kwargs)  # type: ignore[misc]


def quiet_restores(trainable: Any) -> Any:
    """``trainable`` (a function, as ``tune.with_resources(tune.with_parameters(…))`` returns it: every trainable of
    repeval is one) with :class:`RestoresQuietly` in the ``__mixins__`` that Tune's ``wrap_function`` puts before
    ``FunctionTrainable``, among the classes its actors are made of."""
    mixins = tuple(getattr(trainable, "__mixins__", ()))
    if RestoresQuietly not in mixins:
        trainable.__mixins__ = (RestoresQuietly, *mixins)
    return trainable


@contextlib.contextmanager
def _quiet_missing_metrics() -> Iterator[None]:
    """Silence Tune's "Failed to fetch metrics for N trial(s)" while it restores an experiment: the trials the
    interrupted run had not finished have no result files yet, which is why they run again (repeval reads
    each trial's checkpoint, never those files)."""
    logger = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _plain_trial_actors() -> Iterator[None]:
    """Let Tune's trial actors start in Ray's prestarted idle workers.

    Tune declares every trial actor with ``runtime_env={"env_vars": {"PL_DISABLE_FORK": "1", …}}``
    (``ray.tune.execution.class_cache``; the variable is for PyTorch Lightning, which repeval's trials never
    import). Ray places an actor only in a worker with the same runtime env, and the workers it prestarts have
    none, so every trial actor used to start a fresh Python process (~1 s here, on top of its imports). With
    the variable left out — and nothing else to propagate (AWS credentials, Ray Train settings) — the runtime
    env is empty and a trial actor takes an idle prestarted worker when one is free (measured: 0.45 s against
    1.95 s to start two actors). Restored on exit; a Ray without this module is left alone."""
    try:
        from ray.tune.execution import class_cache

        defaults = class_cache.DEFAULT_ENV_VARS
    except (ImportError, AttributeError):  # another Ray: nothing to adjust
        yield
        return
    saved = dict(defaults)
    defaults.pop("PL_DISABLE_FORK", None)
    try:
        yield
    finally:
        defaults.clear()
        defaults.update(saved)


#: tensorboardX's record writer's optional imports of its ``s3://`` and ``gs://`` event-file writers' back ends (the
#: module its ``import`` statement names -> the package installed, its name in the record writer, and the switch it sets),
#: which Tune's TensorBoard logger never uses: it writes each trial's events under the trial's local directory, and Tune
#: copies them to the experiment's storage itself
TBX_CLOUD_IMPORTS = {
    "boto3": ("boto3", "boto3", "S3_ENABLED"),
    "google.cloud": ("google.cloud.storage", "storage", "GCS_ENABLED"),
}
#: the tensorboardX module that makes those imports
TBX_RECORD_WRITER = "tensorboardX.record_writer"


class _OnFirstUse:
    """A module imported when one of its attributes is first read: a cloud back end of tensorboardX's record writer."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(importlib.import_module(self.name), attr)


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # its parent package is not installed either
        return False


def import_tensorboardx_locally() -> None:
    """Import tensorboardX for Tune's default TensorBoard logger with its cloud back ends (:data:`TBX_CLOUD_IMPORTS`)
    imported on first use instead of at once.

    Tune's ``TBXLoggerCallback`` imports tensorboardX in the driver as a fit starts, before it submits a trial actor,
    and tensorboardX's record writer imports boto3 and google-cloud-storage when they are installed (~370 modules,
    0.2–0.3 s of CPU, then a full collection of the driver's grown heap) — the trial actors waited for it. Only the
    record writer's own two imports are skipped (by the importer's module name: another thread's imports meanwhile are
    not touched), and the installed back ends are given to it as modules imported when first used, so an ``s3://`` or
    ``gs://`` SummaryWriter of anything else in the process works as before. Nothing when tensorboardX is imported
    already (it keeps what it found), or when Tune's default loggers are off (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``);
    without tensorboardX Tune says so."""
    import builtins

    if "tensorboardX" in sys.modules or os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0") == "1":
        return
    real_import = builtins.__import__

    def skipping(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if name in TBX_CLOUD_IMPORTS and not level and (globals or {}).get("__name__") == TBX_RECORD_WRITER:
            raise ImportError(f"{name} is imported on first use", name=name)
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = skipping
    try:
        from tensorboardX import record_writer
    except ImportError:  # not installed: Tune's logger says how to install it
        return
    finally:
        if builtins.__import__ is skipping:
            builtins.__import__ = real_import
    for package, name, switch in TBX_CLOUD_IMPORTS.values():
        if not getattr(record_writer, switch) and _installed(package):
            setattr(record_writer, name, _OnFirstUse(package))
            setattr(record_writer, switch, True)
