"""Which probe stands for a model: the one with the best validation criterion, as the protocol has it.

A grid trained with ``select: all`` (the thesis M1–M5) tests every probe; picking "the best probe per model" by its
clean *test* value is selection on the test set — optimistic. The protocol (Jukemir, MULE) chooses by validation,
then tests once. A run directory's ``probes/<group>.parquet`` holds each probe's ``best_criterion`` per seed (and
fold) — the validation value it was selected on — and ``config.yaml`` names its ``save_criterion``
(:func:`repeval.tasks.resolve_criterion` gives the default and its direction); runs since the column exists record each
probe's ``criterion`` there (a preset's depends on the task type). :func:`load_validation` reads them into
one frame, :func:`choose_probes` picks per model the probe with the best mean validation criterion, but only when
all of the model's probes were selected on the same criterion and direction; otherwise (or without the files: older
runs) it falls back to the clean-test choice and says why.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from repeval.report.run_files import RETRAIN_FIX, listed, say_unread, short_why, unread_files
from repeval.rundir import grid_name
from repeval.tasks import TASK_TYPES, resolve_criterion
from repeval.words import counted

log = logging.getLogger(__name__)

#: one row per selected probe configuration, seed and fold
VALIDATION_COLUMNS = ("run_id", "task", "dataset", "model", "probe", "seed", "fold", "criterion", "mode", "value")
NO_RECORD = "the run directory has no validation record (probes/*.parquet)"
CRITERIA_DIFFER = "validation criteria differ"
#: a column of the rows of tested probes whose record could not be read: which file (or ``probes/``) and why
UNREAD = "unread"


def _spec_criteria(config: dict[str, Any]) -> dict[tuple[str, str], str | None]:
    """``(task, probe spec) → save_criterion`` (``None``: the task's default) from a run's ``config.yaml``."""
    out: dict[tuple[str, str], str | None] = {}
    for exp in config.get("experiments") or []:
        if not isinstance(exp, dict) or not isinstance(exp.get("task"), dict):
            continue
        task = str(exp["task"].get("name"))
        for i, p in enumerate(exp.get("downstream_models") or exp.get("probes") or []):
            if isinstance(p, dict):
                name = p.get("name") or p.get("preset") or f"M{i + 1}"
                crit = p.get("save_criterion")
                out[(task, str(name))] = str(crit) if crit else None
    return out


def load_validation(
    run_dir: Path, run_id: str, config: dict[str, Any], results: pd.DataFrame, notes: list[str] | None = None
) -> pd.DataFrame | None:
    """The validation criterion of every selected probe of a run, named as in its results (``None``: no record). A
    file of ``probes/`` not read (cut short, another user's — or the folder) is left out, said in ``notes`` with the
    fix: its grids' probes are chosen on clean test, each with a row saying so (:func:`_unread_rows`)."""
    what = "the probes of {its} grid{s} are chosen on clean test, not on their validation criterion"
    read: list[pd.DataFrame] = []
    failures: list[tuple[Path, BaseException]] = []
    folder: list[tuple[Path, OSError]] = []
    for f in listed(Path(run_dir) / "probes", ".parquet", what.format(its="the run's", s="s"), notes, folder):
        try:
            read.append(pd.read_parquet(f))
        except (OSError, pa.ArrowInvalid) as exc:
            failures.append((f, exc))
    if failures:
        say_unread(notes, unread_files(failures, what, RETRAIN_FIX))
    unread = _unread_rows(run_id, results, folder + failures)
    if not read:
        return unread
    probes = pd.concat(read, ignore_index=True)
    if "fold" not in probes.columns:
        probes["fold"] = None
    probes = probes[probes["selected"].fillna(False).astype(bool)]
    specs = _spec_criteria(config)
    tested = set(zip(results["task"], results["dataset"], results["model"], results["probe"], strict=True))
    rows = []
    for r in probes.itertuples(index=False):
        # select: all reports each configuration under its own name; select: best under the spec's name
        probe = r.probe if (r.task, r.dataset, r.model, r.probe) in tested else r.spec
        try:
            params = json.loads(r.params) if r.params else {}
        except ValueError:
            params = {}
        key = (str(r.task), str(r.spec))
        criterion = mode = None
        recorded = getattr(r, "criterion", None)  # the probe's own record (runs before it: from the config)
        if isinstance(recorded, str) and recorded and r.task_type in TASK_TYPES:
            criterion, mode = resolve_criterion(recorded, r.task_type)
        elif (params.get("save_criterion") or key in specs) and r.task_type in TASK_TYPES:
            criterion, mode = resolve_criterion(params.get("save_criterion") or specs.get(key), r.task_type)
        value = float(r.best_criterion) if r.best_criterion is not None else np.nan
        fold = -1 if r.fold is None or pd.isna(r.fold) else int(r.fold)
        rows.append((run_id, r.task, r.dataset, r.model, probe, int(r.seed), fold, criterion, mode, value))
    frame = pd.DataFrame(rows, columns=list(VALIDATION_COLUMNS))
    if unread is None:
        return frame
    have = set(zip(frame["task"], frame["dataset"], frame["model"], frame["probe"], strict=True))
    keep = [
        k not in have for k in zip(unread["task"], unread["dataset"], unread["model"], unread["probe"], strict=True)
    ]
    return pd.concat([frame, unread[keep]], ignore_index=True)


def _unread_rows(run_id: str, results: pd.DataFrame, failures: list[tuple[Path, BaseException]]) -> pd.DataFrame | None:
    """A row per tested probe of the run, when some of ``probes/`` (``failures``: files, or the folder itself) could
    not be read, its :data:`UNREAD` column saying which and why — its grid's file (``probes/<grid>.parquet``), else
    the first not read: a probe whose record is not among those read is chosen on clean test for that reason, not
    for having none (``None``: all read)."""
    if not failures:
        return None
    why = {path.name: f"{path}: {short_why(exc)}" for path, exc in failures}
    more = f" and {counted(len(failures) - 1, 'other file')}" if len(failures) > 1 else ""
    first = f"{failures[0][0]}{more}: {short_why(failures[0][1])}"
    folds = results["fold"] if "fold" in results.columns else pd.Series(None, index=results.index)
    rows = []
    for t, d, m, p, f in dict.fromkeys(
        zip(results["task"], results["dataset"], results["model"], results["probe"], folds, strict=True)
    ):
        where = why.get(f"{grid_name(str(t), str(d), str(m), None if pd.isna(f) else f)}.parquet", first)
        rows.append(
            (run_id, t, d, m, p, -1, -1, None, None, np.nan, f"its validation record could not be read ({where})")
        )
    frame = pd.DataFrame(rows, columns=[*VALIDATION_COLUMNS, UNREAD])
    return frame.drop_duplicates(["task", "dataset", "model", "probe"], ignore_index=True)


def combine_validation(runs: Sequence[Any], *, prefix_models: bool = False) -> pd.DataFrame | None:
    """The runs' validation frames in one (``prefix_models``: models named ``<run_id>/<model>``, as the report's
    figures name them); ``None`` when no run has one."""
    frames = [r.validation for r in runs if getattr(r, "validation", None) is not None]
    if not frames:
        return None
    df = pd.concat(frames, ignore_index=True)
    return df.assign(model=df["run_id"] + "/" + df["model"]) if prefix_models else df


def split_run(key: str, run_ids: Iterable[str]) -> tuple[str, str]:
    """``(run_id, model)`` of a model key ``<run_id>/<model>`` of several runs' figures and cards: the longest of
    ``run_ids`` it starts with — a run shown as ``demo@laptop/runs`` (two runs of one id) has a '/' of its own, and a
    model id may have one too (``m-a-p/MERT-v1-95M``); the first '/' when none does."""
    found = max((r for r in run_ids if key.startswith(f"{r}/")), key=len, default=None)
    if found is None:
        run, _, model = key.partition("/")
        return run, model
    return found, key[len(found) + 1 :]


@dataclass
class ProbeChoice:
    """The probe chosen per model key, and on what."""

    metric: str
    probes: dict[tuple[str, ...], str] = field(default_factory=dict)
    #: key → the validation criterion it was chosen on
    on_validation: dict[tuple[str, ...], str] = field(default_factory=dict)
    #: key → why it was chosen on the clean test set instead
    on_test: dict[tuple[str, ...], str] = field(default_factory=dict)

    @property
    def per_model(self) -> dict[str, str]:
        """Per model (each key's first part), its chosen probe."""
        return {k[0]: p for k, p in self.probes.items()}

    def rule(self, key: tuple[str, ...] | None = None) -> str:
        """How ``key``'s probe (every key's: ``None``) was chosen, e.g. ``chosen on validation val_accuracy``."""
        keys = list(self.probes) if key is None else [key]
        crits = " / ".join(dict.fromkeys(self.on_validation[k] for k in keys if k in self.on_validation))
        reasons = "; ".join(dict.fromkeys(self.on_test[k] for k in keys if k in self.on_test))
        val = f"chosen on validation {crits}" if crits else ""
        test = f"chosen on clean test {self.metric}, a test-set choice: {reasons}" if reasons else ""
        if val and test:
            return f"{val}; for {self._names(self.on_test)} {test}"
        return val or test

    def caption(self) -> str:
        """The table caption's account of the rule, each rule said once, e.g. ``per model the probe chosen on
        validation: the best mean val_accuracy over seeds (and folds), then tested once``."""
        crits = " / ".join(dict.fromkeys(self.on_validation.values()))
        reasons = "; ".join(dict.fromkeys(self.on_test.values()))
        val = f"chosen on validation: the best mean {crits} over seeds (and folds), then tested once"
        test = f"chosen on clean test, a test-set choice: the best mean {self.metric} — {reasons}"
        if not self.on_test:
            return f"per model the probe {val}"
        if not self.on_validation:
            return f"per model the probe {test}"
        return f"per model the probe {val}; for {self._names(self.on_test)} the probe {test}"

    @staticmethod
    def _names(keys: dict[tuple[str, ...], str]) -> str:
        return ", ".join("/".join(k) for k in keys)


def _test_choice(means: pd.Series, higher: bool) -> str:
    order = sorted(means.index, key=_natural)
    return str((means.reindex(order) * (1.0 if higher else -1.0)).idxmax())


def _natural(text: str) -> tuple[object, ...]:
    from repeval.report.results import natural_key

    return natural_key(text)


def choose_probes(
    clean: pd.DataFrame, keys: list[str], metric: str, higher: bool, validation: pd.DataFrame | None
) -> ProbeChoice:
    """Per ``keys`` group of ``clean`` (one task and dataset, rows of ``metric``), the probe with the best mean
    validation criterion; the best clean-test mean of ``metric`` where that cannot be told (first listed when tied)."""
    choice = ProbeChoice(metric)
    if clean.empty:
        return choice
    task, dataset = str(clean["task"].iloc[0]), str(clean["dataset"].iloc[0])
    val = None
    if validation is not None:
        val = validation[(validation["task"] == task) & (validation["dataset"] == dataset)]
        val = val.assign(**{k: val[k].astype(str) for k in keys}, probe=val["probe"].astype(str))
    means = clean.groupby([*keys, "probe"], sort=False)["value"].mean()
    for key_raw, grp in means.groupby(level=list(range(len(keys))), sort=False):
        key = tuple(str(k) for k in (key_raw if isinstance(key_raw, tuple) else (key_raw,)))
        test_means = grp.droplevel(list(range(len(keys)))).rename(index=str)
        probes = list(test_means.index)
        reason = NO_RECORD
        if val is not None:
            mask = val["probe"].isin(probes)
            for k, v in zip(keys, key, strict=True):
                mask &= val[k] == v
            mine = val[mask]
            crit = {
                (None if pd.isna(c) else str(c), None if pd.isna(m) else str(m))  # a probe without a record: NaN
                for c, m in zip(mine["criterion"], mine["mode"], strict=True)
            }
            per = mine.groupby("probe")["value"].mean()
            missing = [p for p in probes if not np.isfinite(per.get(p, np.nan))]
            unread = mine[UNREAD].dropna() if UNREAD in mine.columns else ()
            if len(unread):
                reason = "; ".join(dict.fromkeys(unread))
            elif mine.empty:
                reason = "no validation record of its probes"
            elif any(c is None or m is None for c, m in crit):
                reason = "the run's config does not name its probes' validation criterion"
            elif len(crit) > 1:
                reason = CRITERIA_DIFFER + " (" + ", ".join(sorted(str(c) for c, _ in crit)) + ")"
            elif missing:
                reason = "no validation value for " + ", ".join(missing)
            else:
                ((name, mode),) = crit
                choice.probes[key] = _test_choice(per.reindex(probes), mode == "max")
                choice.on_validation[key] = str(name)
                continue
        choice.probes[key] = _test_choice(test_means, higher)
        choice.on_test[key] = reason
    return choice
