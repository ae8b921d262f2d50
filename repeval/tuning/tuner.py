"""Run or resume one Ray Tune experiment of the grid driver (:mod:`repeval.tuning.grid`).

An experiment directory left by an interrupted run is resumed with ``Tuner.restore`` when its marker's
fingerprint is the plan's and it was trained on the same data (finished trials are kept, unfinished ones rerun); one
that cannot be resumed whole is moved aside, and the whole trial checkpoints of every experiment of the plan are reused
(:func:`repeval.tuning.trial.resuming`) — the copies moved aside are deleted once no rerun needs them
(:func:`_prune_incomplete`). A trial whose worker died is started once more (:data:`TRIAL_RETRIES`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repeval.tuning.checkpoint import read_finished
from repeval.tuning.tune_setup import (
    _plain_trial_actors,
    _quiet_missing_metrics,
    import_tensorboardx_locally,
    quiet_restores,
)
from repeval.words import counted

# the grid driver's logger, as before this module was split from it: the command line's lines name it
log = logging.getLogger("repeval.tuning.grid")


def sampler(seed: int, name: str, max_concurrent: int | None) -> Any:
    """Tune's variant generator for experiment ``name``, its random draws seeded from the run's ``seed`` and
    the name: a search space samples the same configurations on every run of a configuration (so a rerun
    whose experiment state was lost still finds its finished trials), and different ones per experiment (the
    caller names the group without its fold, so every fold of a k-fold dataset samples the same ones).
    It carries ``max_concurrent`` itself (Tune ignores ``TuneConfig.max_concurrent_trials`` beside it)."""
    from ray.tune.search.basic_variant import BasicVariantGenerator

    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return BasicVariantGenerator(random_state=int.from_bytes(digest[:4], "little"), max_concurrent=max_concurrent or 0)


#: times Tune starts a failed trial again: a trial whose worker died (killed, out of memory, its node lost) would
#: otherwise be recorded as failed and its group committed without it, for good. Tune retries a trial that raised
#: too, but its retry re-raises the first attempt's error at once without training (the unit's code runs once:
#: :func:`repeval.tuning.notes.raised_once`; memory, I/O and Ray's own errors excepted)
TRIAL_RETRIES = 1


def _fit(
    name: str,
    make_trainable: Callable[[dict[str, str]], Any],
    param_space: dict[str, Any],
    tune_config: Any,
    storage_path: str,
    fingerprint: str,
    n_units: int,
    record: dict[str, Any] | None = None,
    data: str | None = None,
    written_ns: Callable[[], int | None] | None = None,
    label: str | None = None,
) -> tuple[list[tuple[dict[str, Any], Any]], bool]:
    """Run (or resume) one Tune experiment; returns ``([(trial config, Result)], restored)``. ``record`` goes into
    the experiment's marker beside its fingerprint: what ``repeval plan`` matches it with
    (:func:`repeval.tuning.reusable.finished_of_groups`, which judges markers as this does).
    ``data``: what the trials train on (:func:`repeval.tuning.units.data_identity`), also in the marker — an
    experiment, or a copy moved aside, whose marker records other data is never resumed nor reused (the fingerprint
    covers the data's shapes only); ``None`` (not known): the fingerprint alone decides, as for a marker written
    before markers recorded it — unless ``written_ns`` (:attr:`repeval.tuning.group.GroupInput.written_ns`, asked
    only then, once) tells a partition embedded anew after that marker (:func:`_rewritten_since`). ``label``: what
    its progress lines name (default ``name``).

    A restored experiment is used only when it accounts for every unit of the grid; one left by a driver
    killed at an unlucky moment (trials without their configuration, units missing) is moved aside and the
    experiment runs afresh. Either way nothing a trial of the same plan finished is trained again: the
    whole checkpoints of the earlier experiments of this plan (:func:`_reusable`) go to ``make_trainable``,
    whose trials report them instead of training (:func:`repeval.tuning.trial.resuming`) — also those Tune
    had not recorded yet when the driver was killed."""
    import os

    from ray import tune

    # Tune's "new output" engine prints a configuration box and result paths even with verbose=0; the legacy
    # reporter honours verbose=0 (repeval prints its own summary; failures are recorded with their reason)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune catches Ctrl-C itself, stops its trials and returns normally: the grid would be collected with the units
    # that happened to finish and committed as trained (the rest lost for good). Without its handler Ctrl-C raises
    # KeyboardInterrupt here: nothing is committed, and the rerun restores the experiment, reusing every trial
    # checkpoint already written (as after a killed driver)
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    # issue 8: storage_path may be a URI (s3://, gs://, ...): file operations go through pyarrow.fs
    from repeval.rundir import TuneStorage

    st = TuneStorage(storage_path)
    path, marker = st.uri(name), f"{name}{MARKER_SUFFIX}"
    rec = _marker(st.read_text(marker))
    stored = rec.get("fingerprint") if isinstance(rec.get("fingerprint"), str) else None
    written = functools.cache(written_ns) if written_ns is not None else None
    rewritten = _rewritten_since(st, marker, rec, data, written)
    same = _same_plan(rec, fingerprint, data, rewritten)
    plan: dict[str, Any] = {"written": written}  # the plan's other markers are told the same way
    made = None  # the copy of the experiment moved aside as incomplete here
    # without its experiment state (a driver killed before Tune first wrote it) a restore runs, finds no trials and
    # is moved aside after seconds of Tune's start: go to the fresh experiment at once (it reuses every checkpoint)
    at, fs = st.for_tune(name)  # what Tune reaches the experiment by (on gs://, a bounded filesystem)
    if same and st.has_experiment_state(name) and _can_restore(st, name):
        log.info("resuming Tune experiment %s", path)
        started = time.time()
        try:
            reused = _reusable(st, name, fingerprint, data, current=True, **plan)
            from repeval.tuning.progress import reusing

            reusing(name, reused)  # the restored experiment's progress callback is its first driver's: told of them
            with _quiet_missing_metrics():
                tuner = tune.Tuner.restore(
                    at,
                    quiet_restores(make_trainable(reused)),
                    storage_filesystem=fs,
                    resume_unfinished=True,
                    resume_errored=False,
                    restart_errored=False,
                )
        except Exception as exc:  # a state file cut short by a kill: rerun it, keep the old one aside
            made = _move_aside(
                st,
                name,
                "incomplete",
                f"could not be restored ({type(exc).__name__}: {exc}); running it again",
                fingerprint,
                data,
            )
        else:
            try:
                pairs = _fit_grid(tuner, path)
            except TrialFilesCut as exc:  # a trial's file a full disk left empty: every restore would stop on it
                pairs, why = [], f"holds a trial file cut short ({exc.cause}); running it again"
            else:
                why = "could not be resumed whole (interrupted mid-write); running it again"
            if pairs and {c.get("unit") for c, _ in pairs} == set(range(n_units)):
                _mark_restored(pairs, started)
                if data is not None and rec.get("data") != data:  # a marker from before it recorded the data
                    st.write_text(marker, json.dumps({**rec, "data": data}))
                _prune_incomplete(st, name, fingerprint, data, **plan)
                return pairs, True
            made = _move_aside(st, name, "incomplete", why, fingerprint, data)
    elif st.exists(name) and stored is not None and not same:  # another configuration's, or data's: never mix
        why = _OTHER_PLAN if stored != fingerprint else _OTHER_DATA
        _move_aside(st, name, "stale", _REWRITTEN if stored == fingerprint and rewritten else why)
    elif st.exists(name):  # no readable marker or no restorable state: a driver killed while starting it
        reason = "has no restorable state or marker (interrupted while starting)"
        made = _move_aside(st, name, "incomplete", reason, *((fingerprint, data) if same else ()))
    held, other = _plan_checkpoints(st, name, fingerprint, data, **plan)
    _prune_incomplete(st, name, fingerprint, data, found=(held, other), keep=made, **plan)
    finished = _merged(held)
    st.write_text(
        marker, json.dumps({"fingerprint": fingerprint, **({"data": data} if data else {}), **(record or {})})
    )
    # end issue 8
    from repeval.tuning.progress import TrialProgress

    # verbose=0 prints nothing: without a terminal, a line a minute of the trials (also of this experiment restored)
    trials = TrialProgress(name, n_units * max(1, tune_config.num_samples), finished, label=label)
    root, root_fs = st.for_tune()  # on gs://, Tune's own reads and writes bounded as repeval's are
    tuner = tune.Tuner(
        quiet_restores(make_trainable(finished)),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=root,
            storage_filesystem=root_fs,
            verbose=0,
            callbacks=[trials],
            failure_config=tune.FailureConfig(max_failures=TRIAL_RETRIES, fail_fast=False),
            # a trial reports one checkpoint (one Tune restores from it reports its results again without it:
            # _reuse_finished), so none needs deleting: no num_to_keep, which made Tune save and sync its experiment
            # state after every trial checkpoint (Ray 2.60's sync_every_n_trial_checkpoints), the driver's work while
            # the other trials train. The state is saved as the fit starts, on Tune's period and at its end; a driver
            # killed between saves leaves one older than trials it finished: the rerun restores it and reports their
            # checkpoints instead of training them (_reusable, resuming)
            checkpoint_config=tune.CheckpointConfig(),
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )
    pairs = _fit_grid(tuner, path)
    _prune_incomplete(st, name, fingerprint, data, **plan)  # the experiment holds what it finished now
    return pairs, False


#: why an experiment of another fingerprint is not resumed (:func:`repeval.tuning.units._fingerprint`: the probes,
#: evaluation settings, test scenarios and the arrays' shapes — a track more or fewer in a split)
_OTHER_PLAN = "was planned for another grid (other probe settings, scenarios or numbers of tracks per split)"
#: why an experiment of the plan's fingerprint is not resumed: its marker records other data
_OTHER_DATA = (
    "was trained on other data (embeddings or labels that differ, in arrays of the same shapes: a partition embedded "
    "anew, say)"
)
#: why an experiment of the plan's fingerprint whose marker an earlier repeval wrote, without the data, is not resumed
_REWRITTEN = (
    "was started by an earlier repeval (its marker does not record the data) before a store partition it trains on was "
    "embedded anew (a row part file written after the marker): its trials are trained again on the new embeddings"
)


class TrialFilesCut(RuntimeError):
    """Ray Tune could not read back a file of a trial of experiment ``path`` — its pickled error, left empty by a
    full disk — and stopped; ``cause``: pyarrow's or pickle's words. The message names the fix: the rerun moves the
    experiment aside and trains anew only the trials without a whole checkpoint (:func:`_fit`)."""

    def __init__(self, path: str, cause: BaseException) -> None:
        self.cause = f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"Ray Tune could not read back a trial's file under {path} ({self.cause}): a file cut short — when the "
            "disk of run.runs_dir is full (`df -h`), free space, then rerun the command: it runs that experiment "
            "again, reusing every trial that finished"
        )


def _fit_grid(tuner: Any, path: str) -> list[tuple[dict[str, Any], Any]]:
    """``tuner.fit()``'s ``(trial config, Result)`` pairs, Ray Tune's Ctrl-C handling off (see :func:`_fit`);
    :class:`TrialFilesCut` when Tune stops on a trial's file cut short (experiment ``path``)."""
    import pickle

    import_tensorboardx_locally()  # before the fit imports it with boto3 and google-cloud-storage, which it never uses
    with _plain_trial_actors():
        try:
            grid = tuner.fit()
        except (EOFError, pickle.UnpicklingError) as exc:  # ResultGrid unpickles each errored trial's error.pkl
            raise TrialFilesCut(path, exc) from exc
        return _trial_results(grid)


def _reusable(
    st: Any,
    name: str,
    fingerprint: str,
    data: str | None = None,
    *,
    current: bool = False,
    say: bool = True,
    written: Callable[[], int | None] | None = None,
) -> dict[str, str]:
    """Trial key → whole checkpoint of this plan (``fingerprint``, ``data``: see :func:`_fit`): under experiment
    ``name`` itself with ``current`` (the caller read its marker), then under every experiment of this plan moved
    aside as incomplete (newest first), so that a run killed again while resuming loses nothing either (``say``: log
    what each holds; ``written``: see :func:`_rewritten_since`)."""
    return _merged(_plan_checkpoints(st, name, fingerprint, data, current=current, say=say, written=written)[0])


#: ``data`` as ``repeval plan`` gives it (:mod:`repeval.tuning.reusable`): the run knows what its trials train on, the
#: plan does not read it — any data a marker records may be the run's (an upper bound), and a marker without data is
#: told by its time, as the run tells it (:func:`_rewritten_since`)
UNREAD_DATA = "(the run's data, not read by the plan)"


def _same_plan(rec: dict[str, Any], fingerprint: str, data: str | None, rewritten: bool = False) -> bool:
    """Whether marker ``rec`` is of this plan: its fingerprint, and its data when both the caller and the marker
    know it (a marker written before markers recorded the data is taken on its fingerprint, as it was then, unless
    ``rewritten``: a partition it trains on was embedded anew after it, :func:`_rewritten_since`; ``data``
    :data:`UNREAD_DATA`: any data the marker records)."""
    if rec.get("fingerprint") != fingerprint:
        return False
    if rec.get("data") is None:
        return data is None or not rewritten
    return data is None or data == UNREAD_DATA or rec.get("data") == data


def _can_restore(st: Any, name: str) -> bool:
    """``tune.Tuner.can_restore`` of experiment ``name`` of Tune storage ``st``; its read refused to this user, or of
    a bucket out of reach, said as the storage's other reads are (:meth:`~repeval.rundir.TuneStorage.unread`), not
    pyarrow's error."""
    from ray import tune

    at, fs = st.for_tune(name)  # what Tune reaches the experiment by (on gs://, a bounded filesystem)
    try:
        return bool(tune.Tuner.can_restore(at, storage_filesystem=fs))
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise st.unread(name, exc) from None


def _rewritten_since(
    st: Any, marker: str, rec: dict[str, Any], data: str | None, written: Callable[[], int | None] | None
) -> bool:
    """Whether marker ``rec`` (file ``marker`` under ``st``), written by an earlier repeval without the data, is older
    than the newest row part file of the store partitions the data is read from (``written``: its write time, in its
    name; :func:`repeval.run.groups.written_after`): the experiment's trials read their data before its marker was
    written, so a partition embedded anew since is not in them. Reads the marker's modification time and asks
    ``written`` (a listing per partition) only for such a marker when this run knows its data; a filesystem without
    file times, or a marker copied without its time, keeps it as it was (missed, never a false change)."""
    if data is None or written is None or rec.get("data") is not None or not isinstance(rec.get("fingerprint"), str):
        return False
    from repeval.run.groups import written_after

    try:
        marked_ns = st.fs.get_file_info(f"{st.base}/{marker}").mtime_ns
    except OSError:
        return False
    return marked_ns is not None and written_after(written(), marked_ns)


def _plan_checkpoints(
    st: Any,
    name: str,
    fingerprint: str,
    data: str | None,
    *,
    current: bool = False,
    say: bool = True,
    written: Callable[[], int | None] | None = None,
) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
    """The experiments of this plan that may hold its finished trials — ``name`` with ``current``, then its copies
    moved aside as incomplete whose marker is this plan's, newest first — each with its whole trial checkpoints (trial
    key → path or URI), and ``name``'s other incomplete copies (another plan's, or without a readable marker; one an
    earlier repeval marked before a partition was embedded anew: ``written``, :func:`_rewritten_since`)."""
    prefix = f"{name}.incomplete-"
    aside = sorted((n for n in st.names() if n.startswith(prefix) and not n.endswith(MARKER_SUFFIX)), reverse=True)
    mine: list[str] = []
    other: list[str] = []
    for n in aside:
        rec = _marker(st.read_text(f"{n}{MARKER_SUFFIX}"))
        rewritten = _rewritten_since(st, f"{n}{MARKER_SUFFIX}", rec, data, written)
        (mine if _same_plan(rec, fingerprint, data, rewritten) else other).append(n)
    dirs = ([name] if current else []) + mine
    return [(d, _finished_checkpoints(st, d, say)) for d in dirs], other


def _merged(held: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
    """Trial key → checkpoint, from the first (newest) experiment of ``held`` that holds the trial whole."""
    out: dict[str, str] = {}
    for _, found in held:
        for key, src in found.items():
            out.setdefault(key, src)
    return out


#: the incomplete copies of an experiment kept that are not of the plan running now (another configuration's, other
#: data's, or without a readable marker): never reused by it — only should the configuration go back — so the newest
#: alone is kept, as of stale copies (:func:`_move_aside`)
KEEP_OTHER_INCOMPLETE = 1


def _prune_incomplete(
    st: Any,
    name: str,
    fingerprint: str,
    data: str | None,
    *,
    found: tuple[list[tuple[str, dict[str, str]]], list[str]] | None = None,
    keep: str | None = None,
    written: Callable[[], int | None] | None = None,
) -> None:
    """Delete the copies of experiment ``name`` moved aside as incomplete that no rerun needs, so they do not pile up
    across reruns. A copy of this plan is there for its whole trial checkpoints (:func:`_reusable`): it is deleted once
    each of them is held whole by a newer experiment of the plan — ``name`` itself (after a fit: a reused checkpoint
    is reported again into it) or a newer copy — so a copy with a trial no newer experiment finished stays; one that
    holds none is deleted too. Of the other copies (:func:`_plan_checkpoints`) the newest
    :data:`KEEP_OTHER_INCOMPLETE` stay. ``found``: :func:`_plan_checkpoints` without ``name`` itself, already read
    (else, ``name`` included, read here); ``keep``: a copy never deleted (the one just moved aside, said kept);
    ``written``: see :func:`_rewritten_since`."""
    prefix = f"{name}.incomplete-"
    if found is None and not any(n.startswith(prefix) for n in st.names()):
        return  # nothing moved aside: not even the experiment's checkpoints are read
    held, other = (
        found
        if found is not None
        else _plan_checkpoints(st, name, fingerprint, data, current=True, say=False, written=written)
    )
    newer: set[str] = set()
    gone = []
    for d, ckpts in held:  # newest first
        if d != name and d != keep and set(ckpts) <= newer:
            gone.append(d)
        newer |= set(ckpts)
    gone += [d for d in other[KEEP_OTHER_INCOMPLETE:] if d != keep]
    for d in gone:  # its marker first: a delete cut short leaves a copy without one (never reused; deleted next time)
        st.delete(f"{d}{MARKER_SUFFIX}")
        st.delete(d)
    if gone:
        log.info(
            "deleted %s of Tune experiment %s no rerun needs (their finished trials are held by a newer "
            "experiment of the plan, or they are of another one): %s",
            counted(len(gone), "copy", "copies"), st.uri(name), ", ".join(gone),
        )  # fmt: skip


def _mark_restored(pairs: list[tuple[dict[str, Any], Any]], started: float) -> None:
    """Flag as ``reused`` the trials of a restored experiment that finished before this run (Tune's state recorded
    them: they did not run again), as :func:`repeval.tuning.checkpoint._reuse_finished` flags those that ran again
    only to report their checkpoint — both are trials an interrupted run finished, counted alike."""
    for _, r in pairs:
        metrics = r.metrics or {}
        if r.error is None and r.checkpoint is not None and float(metrics.get("timestamp", started)) < started:
            metrics["reused"] = True


#: a Tune experiment's repeval marker, beside its directory: ``<name>.repeval.json``
MARKER_SUFFIX = ".repeval.json"


def _finished_checkpoints(st: Any, name: str, say: bool = True) -> dict[str, str]:
    """Trial key → path (or URI) of each whole trial checkpoint under experiment directory ``name``: the work
    its trials finished, whether or not Tune's experiment state recorded it before the driver stopped."""
    import pyarrow.fs as pafs

    out: dict[str, str] = {}
    root = f"{st.base}/{name}"
    try:  # one listing (on an object store, one paginated call): <experiment>/<trial>/checkpoint_NNNNNN
        infos = st.fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return out
    except OSError as exc:  # refused, or out of reach: its trials are not "none finished" (trained again)
        raise st.unread(name, exc) from None
    ckpts = sorted(
        (
            i.path
            for i in infos
            if i.type == pafs.FileType.Directory
            and Path(i.path).name.startswith("checkpoint_")
            and str(Path(i.path).parent.parent) == str(Path(root))
        ),
        reverse=True,  # a trial's newest checkpoint first
    )
    for ck in ckpts:
        rel = ck[len(st.base) + 1 :]
        try:
            summary = read_finished(st.fs, ck)
        except OSError as exc:  # refused, or out of reach: not "not whole" (its experiment deleted as holding none)
            raise st.unread(rel, exc) from None
        if summary is not None:
            out.setdefault(summary["key"], st.uri(rel))
    if out and say:
        log.info(
            "%s holds %s; a trial that must run again reuses its own",
            st.uri(name),
            counted(len(out), "whole trial checkpoint"),
        )
    return out


def _marker(text: str | None) -> dict[str, Any]:
    """A Tune experiment's repeval marker (``{}`` when it is missing or unreadable)."""
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _move_aside(
    st: Any, name: str, tag: str, reason: str, fingerprint: str | None = None, data: str | None = None
) -> str:
    """Rename experiment ``name`` to ``<name>.<tag>-<time>``; with ``fingerprint`` (its plan's, known; ``data``, what
    it was trained on: see :func:`_fit`), a marker next to it says so, so that its finished trials can be reused
    (:func:`_reusable`). An experiment of another plan (``stale``) is never reused: the older stale copies of ``name``
    are deleted, the one just made is kept."""
    dest = stem = f"{name}.{tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while st.exists(dest):  # two moves within a second
        n += 1
        dest = f"{stem}-{n}"
    if fingerprint is not None:
        st.write_text(
            f"{dest}{MARKER_SUFFIX}", json.dumps({"fingerprint": fingerprint, **({"data": data} if data else {})})
        )
    st.move(name, dest)
    dropped = ""
    if tag == "stale":  # of another plan, never reused: only the newest copy is kept, to compare or go back to
        older = sorted(n for n in st.names() if n.startswith(f"{name}.stale-") and n != dest)
        for old in older:
            st.delete(old)
        dropped = f" (the last stale copy only: deleted {', '.join(older)})" if older else " (the last stale copy only)"
    log.warning("Tune experiment %s %s; kept it at %s%s", st.uri(name), reason, st.uri(dest), dropped)
    return dest


def _trial_results(grid: Any) -> list[tuple[dict[str, Any], Any]]:
    """``(trial config, Result)`` for every trial of a ``ResultGrid``.

    ``Result.config`` is read from the trial's last reported metrics, which a trial that failed before its
    first report does not have; the trial's own configuration comes from the experiment analysis, whose
    trials the ResultGrid lists in the same order."""
    results = list(grid)
    trials = getattr(getattr(grid, "_experiment_analysis", None), "trials", None)
    if trials is not None and len(trials) == len(results):
        return [(dict(t.config or {}), r) for t, r in zip(trials, results, strict=True)]
    return [(dict(r.config or {}), r) for r in results]
