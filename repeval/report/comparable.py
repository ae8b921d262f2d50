"""Which runs' results may be ranked against each other: those scored on the same test set.

A value is measured on a test set; two runs' values of one task and dataset are comparable only when both were
scored on the same tracks with the same labels — not a smoke test's 10 tracks against a full run's 20, nor two
versions of a data set. A run's test set is read from the rows it saved (``splits/<task>__<dataset>[__fold<k>].parquet``,
the rows whose ``split`` is ``test``: :func:`split_digests`, kept in the file's footer when the run wrote it —
:mod:`repeval.run.split_digest`); where a run lacks that file (copied without it, or a
split not recorded), from its results alone: the clean test tracks scored per fold (``n_test``), which tells different
sizes apart but not two sets of one size.

:func:`run_sets` splits a group's runs into sets of runs on the same test set; the report's summary cards and the
tables' best-in-column marks rank within each set, and :func:`differ_note` says why.

Nor are two runs' values of a deformation scenario comparable when the runs define it differently under one name
(``noise_10db`` at 10 dB in one ``config.yaml``, at 20 dB in the other; other steps, or the same in another order):
:func:`keep_apart` gives each definition its own column (``noise_10db (r1)``; runs that define it alike share one,
``noise_10db (r1 + r3)``), which every table, figure and card then shows apart, and :func:`apart_note` explains. The
robustness ranking of runs that do not all define it alike leaves it out; the runs that share a definition are ranked
on it apart (:mod:`repeval.report.summary`). Definitions are compared as configured,
parameter aliases and number types normalised and audiomentations' defaults written out (no ``p`` is ``p: 0.5``).

A scenario only some of the runs tested (one run's configuration has it, another's not) keeps its column, '–' in the
rows of the runs without it, which :func:`lacking_note` explains; :func:`lacking_runs` names those runs, and the
robustness ranking of all the runs leaves it out (:mod:`repeval.report.robustness`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow.fs as pafs

from repeval.report.results import CLEAN, Run, configured_scenarios, ordered_scenarios
from repeval.run.split_digest import file_digest

log = logging.getLogger(__name__)

#: ``(run_id, task, dataset)`` → a digest of the run's test tracks and their labels (over its folds)
SplitDigests = Mapping[tuple[str, str, str], str]

_SPLITS_NAME = re.compile(r"^(?P<task>.+?)__(?P<dataset>.+?)(?:__fold(?P<fold>\d+))?\.parquet$")


def split_digests(runs: Sequence[Run]) -> dict[tuple[str, str, str], str]:
    """Per run and (task, dataset) of its saved splits, a digest of its test set (each fold's, in fold order); a pair
    without a readable test split in every fold's file is left out."""
    out: dict[tuple[str, str, str], str] = {}
    for run in runs:
        for (task, dataset), digest in run_split_digests(pafs.LocalFileSystem(), str(Path(run.path).resolve())).items():
            out[(run.run_id, task, dataset)] = digest
    return out


def run_split_digests(
    fs: pafs.FileSystem, path: str, failures: list[tuple[str, Exception]] | None = None
) -> dict[tuple[str, str], str]:
    """Per (task, dataset) of the saved splits of the run directory ``path`` on ``fs``, the digest of its test set
    (:func:`split_digests`); a split file not read, or ``splits/`` when it cannot be listed (another user's), is
    added with its error to ``failures`` (the report says them when it loads the run: ``results._masked``)."""
    per: dict[tuple[str, str], list[tuple[int, str | None]]] = {}
    folder = f"{path.rstrip('/')}/splits"
    try:
        found = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except OSError as exc:
        if failures is not None:
            failures.append((folder, exc))
        return {}
    for info in sorted(found, key=lambda i: i.base_name):
        m = _SPLITS_NAME.match(info.base_name)
        if m is None or info.type != pafs.FileType.File:
            continue
        fold = int(m["fold"]) if m["fold"] is not None else -1
        per.setdefault((m["task"], m["dataset"]), []).append((fold, file_digest(info.path, fs, failures)))
    return {k: ",".join(str(d) for _, d in sorted(f)) for k, f in per.items() if all(d is not None for _, d in f)}


def digest_label(digests: Mapping[tuple[str, str], str]) -> str | None:
    """A run's test sets in a few characters (``repeval runs``): a digest of its (task, dataset) digests — runs with
    the same label were scored on the same test tracks with the same labels; ``None`` without saved splits."""
    if not digests:
        return None
    text = "\n".join(f"{t}\x1f{d}\x1f{x}" for (t, d), x in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def tracks_tested(df: pd.DataFrame) -> dict[str, int]:
    """Per run of ``df`` (aggregate rows), the test tracks of its evaluations: the most any model scored on clean
    audio (a run without clean rows: in any scenario), summed over the folds (each track is tested in one)."""
    rows = _scored(df)
    per = rows.groupby(["run_id", "task", "_fold"], sort=False)["n_test"].max()
    per = per.groupby(level=["run_id", "task"], sort=False).sum().groupby(level="run_id", sort=False).max()
    return {str(r): int(n) for r, n in per.items()}


def _scored(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that tell a run's test tracks: its clean ones (all of them, a run without any), ``_fold`` -1 without
    folds."""
    clean = df["scenario"] == CLEAN
    rows = df[clean | ~df["run_id"].isin(df.loc[clean, "run_id"])]
    return rows.assign(_fold=rows["fold"].fillna(-1) if "fold" in rows.columns else -1)


def _size_key(df: pd.DataFrame) -> dict[str, tuple[object, ...]]:
    rows = _scored(df)
    per = rows.groupby(["run_id", "task", "dataset", "_fold"], sort=True)["n_test"].max()
    out: dict[str, list[object]] = {}
    for (run, *where), n in per.items():
        out.setdefault(str(run), []).append((*where, int(n)))
    return {r: tuple(v) for r, v in out.items()}


def run_sets(df: pd.DataFrame, test_sets: SplitDigests | None = None) -> list[list[str]]:
    """The runs of ``df`` (the aggregate rows of one table or task/dataset group) in sets of runs scored on the same
    test sets, in the order they appear; one set when all were (a single run included). By the digests of
    ``test_sets`` where every run has one for every (task, dataset) of ``df``, else by the clean tracks scored."""
    runs = list(dict.fromkeys(df["run_id"].astype(str)))
    if len(runs) < 2:
        return [runs]
    pairs = list(dict.fromkeys(zip(df["task"].astype(str), df["dataset"].astype(str), strict=True)))
    digests = {r: tuple((test_sets or {}).get((r, t, d)) for t, d in pairs) for r in runs}
    keys: Mapping[str, tuple[object, ...]]
    if test_sets and all(None not in v for v in digests.values()):
        keys = digests
    else:
        keys = _size_key(df)
    sets: dict[tuple[object, ...], list[str]] = {}
    for r in runs:
        sets.setdefault(keys.get(r, ()), []).append(r)
    return list(sets.values())


def differ_note(df: pd.DataFrame, sets: list[list[str]]) -> str:
    """Why ``df``'s runs are not ranked together: ``the runs' test sets differ (quickstart 20 test tracks,
    quickstart-smoke 10)``, or, where sizes agree, that the tracks or their labels do; empty with one set."""
    if len(sets) < 2:
        return ""
    sizes = tracks_tested(df)
    shown = ", ".join(f"{r} {sizes.get(r, 0)}" + (" test tracks" if i == 0 else "") for i, r in enumerate(sizes))
    what = "other tracks or labels" if len({sizes.get(s[0]) for s in sets}) < len(sets) else shown
    if what != shown:
        what = f"{shown}; {what}"
    return f"the runs' test sets differ ({what})"


def set_label(runs: Sequence[str]) -> str:
    """``quickstart`` or ``r1 + r2``: a set of runs, as the cards name it."""
    return " + ".join(runs)


# ------------------------------------------------------------------ scenarios defined differently by the runs

#: ``(task, dataset, scenario)`` → how a run's configuration defines the scenario: its steps in order, each its
#: transform type and parameters (aliases normalised, numbers as floats: ``p: 1`` is ``p: 1.0``)
Definition = tuple[tuple[str, str], ...]

#: the combined results' ``attrs`` key (:func:`keep_apart`): a scenario column kept apart → ``(scenario, run_id)``
APART_KEY = "repeval_apart_scenarios"


def _canonical(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def _step(step: object) -> tuple[str, str] | None:
    import json

    from repeval.deformations import PARAM_ALIASES

    if not isinstance(step, dict) or "type" not in step:
        return None
    params = step.get("params")
    given = params if isinstance(params, dict) else {}
    named = {PARAM_ALIASES.get(str(k), str(k)): _canonical(v) for k, v in given.items()}
    return str(step["type"]), json.dumps(named, sort_keys=True)


def scenario_definitions(config: Mapping[str, object]) -> dict[tuple[str, str, str], Definition]:
    """Each deformation scenario of a run's ``config.yaml`` (as a mapping) as it is defined, keyed like the results
    (:func:`~repeval.report.results.configured_scenarios`). Read leniently: a scenario whose steps cannot be read is
    left out (its definition unknown)."""
    out: dict[tuple[str, str, str], Definition] = {}
    for task, dataset, sid, sc in configured_scenarios(config):
        if isinstance(sc, dict) and "steps" not in sc and "type" in sc:
            sc = {"steps": [sc]}  # one transform written without the list (as the configuration reads it)
        raw = sc if isinstance(sc, list) else sc.get("steps") if isinstance(sc, dict) else None
        steps = [_step(s) for s in raw] if isinstance(raw, list) else [None]
        if steps and None not in steps:
            out[(task, dataset, sid)] = tuple(s for s in steps if s is not None)
    return out


def differing_scenarios(runs: Sequence[Run]) -> dict[tuple[str, str, str], dict[str, Definition]]:
    """The scenarios of ``runs``' results that two of them define differently (another transform, other settings,
    another order): ``(task, dataset, scenario)`` → each run's definition. A run whose definition is unknown (no
    ``config.yaml``) is not counted."""
    seen: dict[tuple[str, str, str], dict[str, Definition]] = {}
    for run in runs:
        defs = scenario_definitions(run.config)
        scored = run.results[["task", "dataset", "scenario"]].drop_duplicates().itertuples(index=False, name=None)
        for key in scored:
            if key[2] != CLEAN and key in defs:
                seen.setdefault(key, {})[run.run_id] = defs[key]
    return {k: v for k, v in seen.items() if len(set(v.values())) > 1 and len({_effective(d) for d in v.values()}) > 1}


def _effective(definition: Definition) -> Definition:
    """``definition`` with each step's parameters left at their default written out (audiomentations' signature), so
    that ``p: 0.5`` and no ``p`` are one definition; a step of an unknown transform as it is."""
    import inspect
    import json

    from repeval.deformations import waveform_transforms

    try:
        transforms = waveform_transforms()
    except ImportError as exc:  # audiomentations not installed where the report is made: as configured
        log.debug("scenario definitions compared without their defaults: %s", exc)
        return definition
    out = []
    for type_, params in definition:
        cls = transforms.get(type_)
        given = json.loads(params)
        if cls is not None:
            sig = inspect.signature(cls).parameters.values()
            defaults = {x.name: _canonical(x.default) for x in sig if x.default is not inspect.Parameter.empty}
            given = {**defaults, **given}
        out.append((type_, json.dumps(given, sort_keys=True)))
    return tuple(out)


def apart_name(scenario: str, runs: Sequence[str], taken: Collection[str] = ()) -> str:
    """``noise_10db (r1)``, ``noise_10db (r1 + r3)``: the column of a scenario as ``runs`` define it, others defining it
    otherwise — unless a column of that name is ``taken`` (a scenario a run named so itself, or another definition's
    column), then ``noise_10db (r1, definition 2)`` and so on: a name no other column has."""
    label = set_label(runs)
    name = f"{scenario} ({label})"
    k = 1
    while name in taken:
        k += 1
        name = f"{scenario} ({label}, definition {k})"
    return name


def _alike(per_run: Mapping[str, Definition]) -> list[tuple[list[str], Definition]]:
    """The runs of ``per_run`` that define a scenario alike (:func:`_effective`), each set with its first run's
    definition as configured, in the order of their first run."""
    sets: dict[Definition, tuple[list[str], Definition]] = {}
    for run_id, definition in per_run.items():
        sets.setdefault(_effective(definition), ([], definition))[0].append(run_id)
    return list(sets.values())


def keep_apart(df: pd.DataFrame, runs: Sequence[Run]) -> pd.DataFrame:
    """``df`` (the runs' combined results) with each scenario the runs define differently (:func:`differing_scenarios`)
    renamed per definition — one column for the runs that define it alike (:func:`apart_name`) — so that no table
    column, figure or mean over scenarios puts values of different deformations together; each scenario's columns
    side by side. A name no scenario of ``df`` has is chosen (a run may name a scenario ``noise (r1)`` itself), and
    the split is carried, never read back from the names: ``df.attrs[APART_KEY]`` maps a renamed column to its
    scenario and runs (:func:`set_label`), and ``df.attrs[APART_KEY + "_why"]`` each scenario to its columns, their runs
    and definitions, for the notes (:func:`apart_note`). ``df`` itself when the runs agree."""
    differ = differing_scenarios(runs)
    if not differ:
        return df
    apart: dict[str, tuple[str, str]] = {}
    why: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {}
    scenario = df["scenario"].astype(str).copy()
    own = set(scenario)  # every scenario's name, of every task and dataset: a column's name is one of a kind
    for (task, dataset, sid), per_run in differ.items():
        said = why.setdefault(f"{task}\x1f{dataset}\x1f{sid}", {})
        for run_ids, definition in _alike(per_run):
            # another task's or dataset's column of this scenario and these runs keeps its name (one mapping)
            other = {n for n, v in apart.items() if v != (sid, set_label(run_ids))}
            name = apart_name(sid, run_ids, own | other)
            rows = (df["task"] == task) & (df["dataset"] == dataset) & (df["scenario"] == sid)
            scenario[rows & df["run_id"].isin(run_ids)] = name
            apart[name] = (sid, set_label(run_ids))
            said[name] = (tuple(run_ids), _shown(definition))
    # each scenario's columns side by side: the rows of each (task, dataset) in the order of their scenarios' first
    # appearance (a stable sort: within a scenario the rows keep their order, and the runs theirs)
    base = [apart.get(s, (s, ""))[0] for s in scenario]
    pairs = list(zip(df["task"], df["dataset"], strict=True))
    group = {p: i for i, p in enumerate(dict.fromkeys(pairs))}
    first = {(p, b): i for i, (p, b) in reversed(list(enumerate(zip(pairs, base, strict=True))))}
    keys = pd.DataFrame(
        {"_g": [group[p] for p in pairs], "_s": [first[(p, b)] for p, b in zip(pairs, base, strict=True)]}
    )
    order = keys.sort_values(["_g", "_s"], kind="stable").index
    out = df.assign(scenario=scenario).iloc[order].reset_index(drop=True)
    out.attrs[APART_KEY] = apart
    out.attrs[APART_KEY + "_why"] = why
    return out


def _shown(definition: Definition) -> str:
    """``AddGaussianSNR(max_snr_db=10, min_snr_db=10, p=1) → Mp3Compression(…)``."""
    import json

    def params(text: str) -> str:
        return ", ".join(
            f"{k}={json.dumps(v) if not isinstance(v, float) else f'{v:g}'}" for k, v in json.loads(text).items()
        )

    return " → ".join(f"{t}({params(p)})" for t, p in definition)


def apart_scenarios(df: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The columns of ``df`` kept apart by :func:`keep_apart`: renamed scenario → ``(scenario, its runs)``."""
    found = df.attrs.get(APART_KEY) or {}
    present = set(df["scenario"].astype(str)) if "scenario" in df.columns else set()
    return {k: v for k, v in found.items() if k in present}


def apart_runs(df: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """The columns of ``df`` kept apart by :func:`keep_apart`: renamed scenario → the runs that define it so (whose
    values of it compare with each other)."""
    present = apart_scenarios(df)
    why = df.attrs.get(APART_KEY + "_why") or {}
    return {name: tuple(runs) for columns in why.values() for name, (runs, _) in columns.items() if name in present}


def apart_note(df: pd.DataFrame, shown: Collection[str] | None = None) -> str:
    """Why ``df``'s columns of a scenario are per definition: ``noise_10db is defined differently by the runs (r1 + r3:
    AddGaussianSNR(…); r2: …): one column per definition, …, their values not compared`` — each definition with
    the runs that use it, which name its column (the column itself said where its name had to differ); empty when none
    is (``shown``: of those columns, the ones a table shows)."""
    apart = {k: v for k, v in apart_scenarios(df).items() if shown is None or k in shown}
    if not apart:
        return ""
    why = df.attrs.get(APART_KEY + "_why") or {}
    pairs = set(zip(df["task"].astype(str), df["dataset"].astype(str), strict=True))
    parts, shared = [], False
    for key, columns in why.items():
        task, dataset, sid = key.split("\x1f")
        if (task, dataset) in pairs and any(s == sid for s, _ in apart.values()):
            each = [
                f"{set_label(runs)}{'' if name == apart_name(sid, runs) else f' (column {name})'}: {text}"
                for name, (runs, text) in columns.items()
            ]
            shared |= any(len(runs) > 1 for runs, _ in columns.values())
            parts.append(f"{sid} is defined differently by the runs ({'; '.join(each)})")
    how = (
        "one column per definition, shared by the runs that agree on it"
        if shared
        else "one column per run's definition"
    )
    return "; ".join(parts) + f": {how}, their values not compared"


# ------------------------------------------------------------------ scenarios only some of the runs tested


def lacking_runs(rows: pd.DataFrame, scenarios: Sequence[str]) -> dict[str, list[str]]:
    """Of ``scenarios``, those some runs of ``rows`` (one task/dataset's) with deformation results have no result on at
    all — a scenario only some runs configured —, each with those runs in order. A run without any deformed row (clean
    audio only) is not counted: there is no scenario it was compared on. A model's failed cell leaves its run's other
    rows: not a scenario the run lacks."""
    run_ids = rows["run_id"].astype(str)
    deformed = rows["scenario"] != CLEAN
    runs = list(dict.fromkeys(run_ids[deformed]))
    if len(runs) < 2:
        return {}
    has = rows[deformed].assign(run_id=run_ids[deformed]).groupby("scenario", sort=False)["run_id"].agg(set)
    out = {s: [r for r in runs if r not in has.get(s, set())] for s in scenarios}
    return {s: lacking for s, lacking in out.items() if lacking}


def lacking_words(lacking: Mapping[str, Sequence[str]]) -> str:
    """``D2 (no results in r2), D3 (no results in r2 or r3)``: :func:`lacking_runs` in words."""
    return ", ".join(f"{s} (no results in {' or '.join(runs)})" for s, runs in lacking.items())


def lacking_note(df: pd.DataFrame, shown: Collection[str]) -> str:
    """Why a table's column of a deformation scenario (of ``shown``) is empty for a run's rows: ``runs without results
    on a scenario show –: D2 (no results in r2)`` — runs that did not test it, not failed cells; empty when every run
    tested every one. A scenario the runs define differently is one scenario here: a run with results on another
    definition's column (:func:`keep_apart`) tested it — :func:`apart_note` says why its cells there are '–'."""
    base = {k: sid for k, (sid, _) in apart_scenarios(df).items()}
    shown = {base.get(s, s) for s in shown}
    lacking: dict[str, list[str]] = {}
    for _, rows in df.groupby(["task", "dataset"], sort=False):
        rows = rows.assign(scenario=[base.get(s, s) for s in rows["scenario"].astype(str)])
        present = [s for s in ordered_scenarios(rows["scenario"].unique()) if s in shown and s != CLEAN]
        for s, runs in lacking_runs(rows, present).items():
            lacking[s] = list(dict.fromkeys([*lacking.get(s, []), *runs]))
    return f"runs without results on a scenario show –: {lacking_words(lacking)}" if lacking else ""


def lacking_metric_note(df: pd.DataFrame, metrics: Sequence[str]) -> str:
    """Why a metric's columns are empty for a run's rows: ``runs without a metric show – in its columns: f1_micro (not
    computed in r2)`` — a metric only some runs' configurations list; empty when every run of ``df`` (one task/dataset's
    rows) has every one of ``metrics``."""
    run_ids = df["run_id"].astype(str)
    runs = list(dict.fromkeys(run_ids))
    if len(runs) < 2:
        return ""
    has = df.assign(run_id=run_ids).groupby("metric", sort=False)["run_id"].agg(set)
    lacking = {m: [r for r in runs if r not in has.get(m, set())] for m in metrics}
    said = [f"{m} (not computed in {' or '.join(r)})" for m, r in lacking.items() if r]
    return f"runs without a metric show – in its columns: {', '.join(said)}" if said else ""
