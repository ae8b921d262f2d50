"""A run's context: its configuration, run directory and store, and the names of what it keeps per group."""

from __future__ import annotations

import datetime
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from repeval.config import Config, ExperimentConfig
from repeval.datasets import LoadReport
from repeval.rundir import RunLocation
from repeval.store import EmbeddingStore
from repeval.store.lock import StoreLock
from repeval.store.store import note_store_left_under_tilde
from repeval.words import counted

log = logging.getLogger("repeval.runner")  # the stages' one logger, named as before they left runner.py


@dataclass
class RunContext:
    cfg: Config
    run_id: str
    run_dir: Path
    store: EmbeddingStore
    rows: dict[tuple[int, str], pa.Table] = field(default_factory=dict)
    #: k folds (``split_type: all``): the rows of every fold, each with that fold's splits; ``rows`` holds
    #: fold ``dataset.fold``. Datasets with one split are not here.
    folds: dict[tuple[int, str], dict[int, pa.Table]] = field(default_factory=dict)
    #: where the run directory lives (issue 8): ``run_dir`` is its local working copy
    location: RunLocation | None = None
    #: what each dataset's loader reported (rows dropped and why), filled by :func:`load_rows`
    reports: dict[tuple[int, str], LoadReport] = field(default_factory=dict)
    #: the store's lock when :func:`make_context` took it (``lock=True``); :func:`stage_embed` releases it
    lock: StoreLock | None = None
    #: :func:`training_hash` per experiment index (it expands the experiment's probes: done once, not per group)
    training_hashes: dict[int, str] = field(default_factory=dict)
    #: :func:`~repeval.run.groups.tracks_digest` per rows table (by ``id``, the table kept to tell a reused id)
    tracks_digests: dict[int, tuple[pa.Table, str]] = field(default_factory=dict)
    #: the splits files (their names' stems, ``<task>__<dataset>[__fold<k>]``) that an earlier load saved with other
    #: track ids, splits or labels than this run's (:func:`~repeval.run.groups.note_saved_splits`): an earlier
    #: repeval's group records, which lack the tracks' digest, are told by them that the labels changed
    splits_changed: set[str] = field(default_factory=set)
    #: whether some group record lacks the tracks' digest (:func:`~repeval.run.groups.earlier_records`); ``None``:
    #: not looked yet
    earlier_records: bool | None = None
    #: the configuration's probe grids :func:`~repeval.run.evaluate.stage_evaluate` found not trained yet: its results
    #: lack them, and the run is not complete
    untrained: list[str] = field(default_factory=list)
    #: what the warning naming :attr:`untrained` says trains them (the CLI's command line for this run, and that an
    #: interrupted command stays so); empty: `repeval run` or `repeval train` with the configuration
    untrained_fix: str = ""

    @property
    def tune_storage(self) -> str:
        """Ray Tune's ``storage_path``: the shared URI for remote run directories, else ``run_dir/tune``."""
        return self.location.tune_storage if self.location is not None else str(self.run_dir / "tune")


def make_context(
    cfg: Config, run_id: str | None = None, store: str | None = None, lock: bool = False, read_only: bool = False
) -> RunContext:
    """``run.runs_dir`` may be a path or any pyarrow filesystem URI (see :mod:`repeval.rundir`).

    ``lock=True`` (the commands that embed) takes the store's lock before the run directory is made, so a run
    refused because another one holds the store writes nothing; :func:`stage_embed` releases it. ``read_only`` (the
    stages that only read the store: ``train``, ``evaluate``): a store that does not exist is not created (a wrong
    ``--store`` left an empty folder), and :func:`~repeval.run.train.stage_train` says so."""
    rid = check_run_id(run_id or cfg.run.run_id or time.strftime("run-%Y%m%d-%H%M%S"))
    loc = RunLocation.open(cfg.run.runs_dir, rid)
    if store:  # the run's config.yaml names the store it used (`repeval report` reads its error records there)
        cfg = cfg.model_copy(update={"run": cfg.run.model_copy(update={"store": store})})
    note_store_left_under_tilde(cfg.run.store)
    st = EmbeddingStore(cfg.run.store, create=lock or not read_only, must_exist=False)
    held = None
    if lock:
        held = StoreLock(st, rid)
        held.acquire()  # StoreLocked: refused before the run directory exists
    try:
        run_dir = loc.local
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(config_yaml(cfg))
    except BaseException:
        if held is not None:
            held.release()
        raise
    return RunContext(cfg, rid, run_dir, st, location=loc, lock=held)


def config_yaml(cfg: Config) -> str:
    """A run's ``config.yaml``: the keys the configuration sets (and ``--store``), as validated — it parses back to the
    same configuration. Not every key with its default: a preset's or a search's value written out next to it would
    fix that axis (``jukemir``'s 216 configurations read back as one, ``mir_ref_thesis``'s M1–M5 as an error).

    The keys of a value a parameter takes (``layer_weights: {0: 0.5, 12: 0.5}``, data, kept as YAML read them) are
    written as the run used them: as JSON writes keys, ``0`` became ``'0'``, and the config.yaml ran the model with
    other params (a key ``null`` or ``true`` also under another fingerprint)."""
    return yaml.safe_dump(
        _keys_as_given(cfg.model_dump(mode="json", exclude_unset=True), cfg.model_dump(exclude_unset=True)),
        sort_keys=False,
    )


def _keys_as_given(dumped: Any, given: Any) -> Any:
    """``dumped`` (a JSON dump) with the mapping keys of ``given`` (the same dump in Python: its keys as validated)
    that YAML writes as they are (numbers, booleans, null, dates) in place of their text."""
    if isinstance(dumped, dict) and isinstance(given, dict) and len(dumped) == len(given):
        return {
            k if isinstance(k, int | float | datetime.date) or k is None else d: _keys_as_given(v, gv)
            for (d, v), (k, gv) in zip(dumped.items(), given.items(), strict=True)
        }
    if isinstance(dumped, list) and isinstance(given, list | tuple) and len(dumped) == len(given):
        return [_keys_as_given(v, gv) for v, gv in zip(dumped, given, strict=True)]
    return dumped


def check_run_id(rid: str) -> str:
    """``rid``, or the ``ValueError`` naming the fix when it cannot name a folder under runs_dir."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", rid):  # reliability (issue 9): --run-id names a folder
        raise ValueError(
            f"run id {rid!r}: use letters, digits, '.', '_' and '-' only (it names a folder under runs_dir)"
        )
    return rid


def fold_suffix(fold: int | None) -> str:
    """``__fold<k>`` in the names of what a run keeps per fold of a ``split_type: all`` dataset ("" otherwise)."""
    return "" if fold is None else f"__fold{fold}"


def group_name(exp: ExperimentConfig, dataset: str, model: str, fold: int | None = None) -> str:
    """``<task>__<dataset>__<model>``, and ``__fold<k>`` for fold k of a ``split_type: all`` dataset."""
    return f"{exp.task.name}__{dataset}__{model}{fold_suffix(fold)}"


#: ``--smoke-test``'s PCA target at most: a PCA to more dimensions than its training rows is an error, and a smoke
#: test trains on a few tracks
SMOKE_PCA_DIM = 8


def smoke_test_config(cfg: Config, max_tracks: int = 40, epochs: int = 3, run_id: str | None = None) -> Config:
    """A tiny version of a configuration: few tracks per dataset, one probe configuration, few epochs, one seed, run
    as ``<run_id>-smoke`` (:func:`smoke_run_id` of ``run_id``, else of ``run.run_id``, else of ``run``) and marked
    ``run.smoke_test`` (:func:`is_smoke_test`; written into its run's ``config.yaml``).

    Applied to its own result it changes nothing: a smoke run's ``config.yaml`` (``run.smoke_test: true``) runs as
    that smoke test again, under the same run id. Every stage still runs for real (Ray Data, the store, Ray Tune); CI
    uses it end to end.
    """
    exps = []
    for exp in cfg.experiments:
        datasets = tuple(
            d.model_copy(update={"max_tracks": min(d.max_tracks or max_tracks, max_tracks)}) for d in exp.datasets
        )
        # a preset or search grid becomes its first configuration, as a plain probe under the spec's name
        from repeval.tuning.search import expand_probe

        spec = expand_probe(exp.downstream_models[0], 0, exp.task.effective_type)
        first = spec.points[0].config
        update: dict[str, Any] = {"name": spec.name, "epochs": min(first.epochs, epochs)}
        pca = first.effective_pca_dim
        if pca is not None and pca > SMOKE_PCA_DIM:  # more than a few tracks' training rows give: an error
            update["pca_dim"] = SMOKE_PCA_DIM
            if first.emb_dim_reduction and isinstance(first.emb_shape, int):
                update["emb_shape"] = SMOKE_PCA_DIM
        probe = first.model_copy(update=update)
        exps.append(exp.model_copy(update={"datasets": datasets, "downstream_models": (probe,)}))
    run = cfg.run.model_copy(
        update={"seeds": 1, "run_id": smoke_run_id(run_id or cfg.run.run_id or "run", cfg), "smoke_test": True}
    )
    return cfg.model_copy(update={"experiments": tuple(exps), "run": run})


#: the end of a smoke test's run id (:func:`smoke_test_config`): it keeps the smoke test apart from the full run; it
#: does not mark it (``run.smoke_test`` does: a full run may be named ``x-smoke``)
SMOKE_SUFFIX = "-smoke"


def smoke_run_id(run_id: str, cfg: Config) -> str:
    """The smoke test's run id for ``run_id`` (``--run-id`` or ``run.run_id``) of ``cfg``: ``<run_id>-smoke`` — a
    smoke test never trains into, and replaces the results of, the full run it is a smoke test of — suffixed once: a
    configuration already a smoke test's (``run.smoke_test``: a smoke run's ``config.yaml``) keeps a run id ending in
    ``-smoke``. A full run's may end so too (``x-smoke``): its smoke test is ``x-smoke-smoke``."""
    return run_id if cfg.run.smoke_test and run_id.endswith(SMOKE_SUFFIX) else run_id + SMOKE_SUFFIX


#: what every warning that a bootstrap interval rests on few resamples says
#: (:func:`repeval.metrics.compute.few_resamples_message`)
FEW_RESAMPLES = ": its bootstrap interval rests on "


def is_smoke_test(cfg: Config) -> bool:
    """Whether ``cfg`` is a smoke test's: made by :func:`smoke_test_config` (each command given ``--smoke-test``,
    a resumed one too) or read from such a run's ``config.yaml`` — ``run.smoke_test``, not the run id."""
    return cfg.run.smoke_test


class _FewResamples(logging.Filter):
    """Leaves out, and keeps, the warnings that a bootstrap interval rests on few resamples."""

    def __init__(self) -> None:
        super().__init__()
        self.left_out: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if FEW_RESAMPLES in record.getMessage():
            self.left_out.append(record.getMessage())
            return False
        return True


#: ``<where>: <metric>: its bootstrap interval rests on <n> of <total> resamples …`` (the driver's line of a trial's)
_RESTS_ON = re.compile(r"(?:^|: )([^:]+)" + re.escape(FEW_RESAMPLES) + r"(\d+) of (\d+) resamples")


@contextmanager
def intervals_said_once(cfg: Config) -> Iterator[None]:
    """The training's warnings that a bootstrap interval rests on few resamples ("use a larger test set"), one per
    probe grid, metric and test sets, as one line: a full run on a small test set (the Medley-solos-DB slice's 8
    clips) said some twenty alike. They say one thing — the test set is too small for those metrics' intervals — so
    the line says how many, the metrics, and the fewest resamples in full (which grid, probes and test sets): the
    others rest on more. Each is logged at DEBUG (``repeval -v`` says them); one alone is said as it is. A smoke
    test's test sets are a few tracks by design: its line says that its intervals are not meaningful."""
    logger = logging.getLogger("repeval.metrics.compute")  # where the trials' warnings are said on the driver
    quiet = _FewResamples()
    logger.addFilter(quiet)
    try:
        yield
    finally:  # also when the training stops (an error, Ctrl-C): the results it committed carry those intervals
        logger.removeFilter(quiet)
        _say_few_resamples(logger, quiet.left_out, cfg)


def _say_few_resamples(logger: logging.Logger, said: list[str], cfg: Config) -> None:
    """What :func:`intervals_said_once` says of the warnings it kept."""
    if not said:
        return
    if is_smoke_test(cfg):
        log.info(
            "smoke test: its test sets are a few tracks by design, so its bootstrap intervals are not meaningful "
            "(%s that an interval rests on few resamples left unsaid; a full run says them, as one line)",
            counted(len(said), "warning"),
        )
        return
    if len(said) == 1:
        logger.warning("%s", said[0])
        return
    for line in said:
        logger.debug("%s", line)
    found = [(m, line) for line in said if (m := _RESTS_ON.search(line))]
    worst = min(found, key=lambda f: int(f[0].group(2)))[1] if found else said[0]
    metrics = list(dict.fromkeys(m.group(1) for m, _ in found))
    logger.warning(
        "%d warnings that a bootstrap interval rests on fewer than half its resamples, said as one (%s; `repeval -v` "
        "says each); the fewest — %s",
        len(said), f"metrics {', '.join(metrics)}" if metrics else "their metrics", worst,
    )  # fmt: skip
