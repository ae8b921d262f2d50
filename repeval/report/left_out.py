"""What a run left out of evaluation, for the report: the rows its datasets dropped at load (``load_report.json``), the
test tracks scored on partial audio (:func:`partial_audio_note`) and the error records of its store partitions (a
track that failed to decode, deform or embed has no embedding there, so no probe was trained or tested on it in that
partition).

The error records are read from the run's store (``run.store`` of its ``config.yaml``, resolved from the current
directory when it is a relative path). A store that cannot be read (moved, damaged, no credentials) becomes a note
naming the problem, never a failed report. `repeval runs` counts them for each run too, from its configuration
(:func:`run_error_records`), and says them in a line (:func:`error_records_line`).
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from repeval.report.results import Run, ordered_scenarios
from repeval.run.load_records import LoadRecord, read_records
from repeval.rundir import LOAD_REPORT
from repeval.store.partition import show_errors_command
from repeval.words import counted

log = logging.getLogger(__name__)
e = html.escape

#: error records the report lists (the rest are counted, and named by the ``repeval store show --errors`` commands)
MAX_ERROR_ROWS = 100
ERROR_COLUMNS = ("dataset", "model", "scenario", "track_id", "split", "stage", "reason")


@dataclass
class ErrorRecords:
    """The error records of one run's partitions: the first ``limit`` of them, each partition's count, and what
    could not be read."""

    store: str
    rows: list[dict[str, str]] = field(default_factory=list)
    #: (partition ``dataset/model/scenario``, its error records), for every partition that holds some
    counts: list[tuple[str, int]] = field(default_factory=list)
    #: why some or all of the records could not be read (each names the store or partition)
    problems: list[str] = field(default_factory=list)
    #: the partitions asked for, and those of them whose records could not be read (``dataset/model/scenario``;
    #: with the store read, :attr:`total` is then the count of the others only)
    asked: int = 0
    unread: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(n for _, n in self.counts)

    def not_counted(self) -> str | None:
        """Why no count is known: the store could not be opened, or none of the partitions asked for could be read —
        the store itself was (``None``: counted, in some partitions at least)."""
        if not self.problems or 0 < len(self.unread) < self.asked:
            return None
        if not self.unread:
            return f"the embedding store at {self.store} could not be read: {self.problems[0]}"
        which = "its partition" if self.asked == 1 else f"none of its {self.asked} partitions"
        could = "could not" if self.asked == 1 else "could"
        return f"{which} in the embedding store at {self.store} {could} be read: {self.problems[0]}"


def run_store(run: Run) -> str:
    """The store root the run embedded into (its config's ``run.store``; ``store`` by default)."""
    return store_of(run.config)


def store_of(config: dict[str, Any]) -> str:
    """The store root of a run's ``config.yaml`` (as a mapping): its ``run.store``, ``store`` by default."""
    section = config.get("run")
    store = section.get("store") if isinstance(section, dict) else None
    return str(store) if store else "store"


def configured_scenarios(run: Run) -> dict[tuple[str, str], list[str]]:
    """Per ``(dataset, model)``, the deformation scenarios the run's config tests it under (none when the config
    cannot be read) — a scenario whose every test track failed has no results, only error records. Read from the
    recorded mapping (:func:`repeval.report.results.configured_scenarios`), not by validating it: that imports the
    configuration's plugins (README, "Your own model"), which a report neither needs nor may find."""
    return _scenarios_of(run.config)


def _scenarios_of(config: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    """:func:`configured_scenarios` of a run's ``config.yaml`` as a mapping."""
    from repeval.report.results import configured_scenarios as scenarios_of

    experiments = config.get("experiments")
    out: dict[tuple[str, str], list[str]] = {}
    for exp in experiments if isinstance(experiments, list) else ():
        if not isinstance(exp, dict):
            continue
        models = exp.get("embedding_models", exp.get("features"))
        ids = [_model_id(m) for m in (models if isinstance(models, list) else ())]
        for _, dataset, sid, _ in scenarios_of({"experiments": [exp]}):
            for model in filter(None, ids):
                out.setdefault((dataset, model), []).append(sid)
    return out


def configured_partitions(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The ``(dataset, model, scenario)`` partitions a run's ``config.yaml`` (as a mapping) embeds, ordered as
    :func:`run_partitions` orders them (clean, then the configured scenarios, per dataset and model), without reading
    its results. Read leniently, as :func:`configured_scenarios` reads it."""
    pairs: dict[tuple[str, str], None] = {}
    experiments = config.get("experiments")
    for exp in experiments if isinstance(experiments, list) else ():
        if not isinstance(exp, dict):
            continue
        models = exp.get("embedding_models", exp.get("features"))
        ids = [i for i in map(_model_id, models if isinstance(models, list) else ()) if i]
        datasets = exp.get("datasets")
        for ds in datasets if isinstance(datasets, list) else ():
            if isinstance(ds, dict) and "name" in ds:
                pairs.update(dict.fromkeys((str(ds["name"]), m) for m in ids))
    configured = _scenarios_of(config)
    return [
        (d, m, s)
        for d, m in pairs
        for s in ordered_scenarios(list(dict.fromkeys(["clean", *configured.get((d, m), [])])))
    ]


def _model_id(entry: object) -> str | None:
    """The id an ``embedding_models`` entry as written stores its results under (``EmbeddingModelConfig``'s)."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict):
        found = entry.get("id", entry.get("name", entry.get("type")))
        return str(found) if found else None
    return None


def run_partitions(run: Run) -> list[tuple[str, str, str]]:
    """The ``(dataset, model, scenario)`` partitions the run's results were computed on, and the configured scenarios
    of those datasets and models that have none: clean first, then the scenarios, per dataset and model in order of
    appearance."""
    df = run.results
    configured = configured_scenarios(run)
    out = []
    if df.empty or "dataset" not in df.columns:  # a run without results yet: none computed on any partition
        return []
    for dataset, model in dict.fromkeys(zip(df["dataset"], df["model"], strict=True)):
        scenarios = df[(df["dataset"] == dataset) & (df["model"] == model)]["scenario"].unique()
        scenarios = list(dict.fromkeys([*scenarios, *configured.get((str(dataset), str(model)), [])]))
        out += [(str(dataset), str(model), s) for s in ordered_scenarios(scenarios)]
    return out


def error_records(run: Run, limit: int = MAX_ERROR_ROWS) -> ErrorRecords:
    """The error records of ``run``'s partitions, at most ``limit`` of them read in full (the others counted from
    the Parquet footers)."""
    return store_errors(run_store(run), run_partitions(run), limit)


def store_errors(
    uri: str, partitions: list[tuple[str, str, str]], limit: int = 0, seen: dict[tuple[str, ...], Any] | None = None
) -> ErrorRecords:
    """The error records of ``partitions`` of the store at ``uri`` (:func:`error_records`). ``seen``: with ``limit``
    0, what was read for the runs before this one (filled in): runs that share a store (`repeval runs` of a runs
    directory) open it, or fail to, once and count each of its partitions once — each run waited ~7 s for an
    unreachable S3 store, and read every error file's footer again."""
    found = ErrorRecords(uri, asked=len(partitions))
    seen = seen if seen is not None and limit == 0 else {}
    try:
        store = _once(seen, (uri,), _open_store, uri)
    except Exception as exc:  # a report is written whatever the store's state: this part becomes a note
        where = " (a relative path: run this command from the folder the run was started in)"
        found.problems.append(f"{exc}{where if '://' not in uri and not uri.startswith('/') else ''}")
        return found
    for dataset, model, scenario in partitions:
        try:
            name, head, n = _once(
                seen, (uri, dataset, model, scenario), _head_errors, store, dataset, model, scenario, limit, found
            )
        except Exception as exc:  # as above: a damaged or unreachable partition is named, the report goes on
            found.problems.append(f"{dataset}/{model}/{scenario}: {exc}")
            found.unread.append(f"{dataset}/{model}/{scenario}")
            continue
        if n:
            found.counts.append((name, n))
        for r in head.select(["track_id", "split", "stage", "reason"]).to_pylist():
            found.rows.append({"dataset": dataset, "model": model, "scenario": scenario, **r})
    return found


def run_error_records(cfg: dict[str, Any], seen: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """The error records of the partitions a run's configuration ``cfg`` embeds — tracks that failed to decode,
    deform or embed, not evaluated there — as `repeval runs` records them (its record's ``error_records*`` keys),
    counted as `repeval report` counts them (:func:`store_errors`, from the store's Parquet footers; the partitions
    from ``cfg``, the configuration its results were computed with). A relative store is read from the folder
    `repeval runs` runs in, as by `repeval report`. ``seen``: the stores and partitions read for the runs listed
    before it."""
    found = store_errors(store_of(cfg), configured_partitions(cfg), 0, seen)
    # counted where the store opened and some partition read (the others named: ``error_records_partial``)
    not_counted = found.not_counted()
    errors = None if not_counted else found
    return {
        #: how many (``None``: not known, the store or its partitions could not be read)
        "error_records": None if errors is None else errors.total,
        #: the command that lists them, of the partition with the most (``None``: none)
        "error_records_command": errors_command(errors),
        #: the partitions whose error records could not be read (a file in them cut short, or another user's): the
        #: count is of the others only, said by ``error_records_partial`` (``[]``: every one read, or the store not)
        "error_records_partitions_unread": found.unread,
        "error_records_partial": error_records_partial(errors),
        #: why they are not known: the store, or every one of its partitions, could not be read (``None``: they are)
        "error_records_unread": not_counted,
    }


def errors_command(errors: ErrorRecords | None) -> str | None:
    """`repeval store show --errors` of the partition with the most error records (``None``: none)."""
    if errors is None or not errors.counts:
        return None
    name = max(errors.counts, key=lambda c: c[1])[0]
    return show_errors_command(errors.store, name)


def error_records_partial(errors: ErrorRecords | None) -> str | None:
    """That ``errors`` counts some of the run's partitions only, which could not be read and why, with the fix (the
    first's error names it); ``None``: every partition read (or nothing counted)."""
    if errors is None or not errors.unread:
        return None
    first = next(p for p in errors.problems if p.startswith(f"{errors.unread[0]}: ")).split(": ", 1)[1]
    first = first.removeprefix(f"store partition {errors.unread[0]} in {errors.store}: ")  # named just before
    read = errors.asked - len(errors.unread)
    return (
        f"partial: counted in {read} of {counted(errors.asked, 'partition')}, {', '.join(errors.unread[:3])}"
        + (f" and {counted(len(errors.unread) - 3, 'other')}" if len(errors.unread) > 3 else "")
        + f" could not be read ({'the first: ' if len(errors.unread) > 1 else ''}{first})"  # each one's: the warnings
    )


def error_records_line(info: dict[str, Any]) -> str:
    """The line of `repeval runs` saying a run's error records (``error_records`` of its record,
    :func:`repeval.report.runs.run_info`) and what lists them; with some partitions not read, that the count is of the
    others (``error_records_partial``)."""
    n, command, partial = info["error_records"], info["error_records_command"], info["error_records_partial"]
    if not n:
        return f"{info['run']}: 0 error records in the store; {partial}"
    partial = f"; {partial}" if partial else ""
    if n == 1:
        what = f"a track that failed to decode, deform or embed, not evaluated in its partition (`{command}` lists it)"
    else:
        what = (
            "tracks that failed to decode, deform or embed, not evaluated in their partition (`repeval report` lists "
            f"them; `{command}` lists the partition with the most)"
        )
    return f"{info['run']}: {counted(n, 'error record')} in the store — {what}{partial}"


def _once(seen: dict[tuple[str, ...], Any], key: tuple[str, ...], read: Callable[..., Any], *args: Any) -> Any:
    """``read(*args)``, or what it returned or raised for ``key`` before (kept in ``seen``)."""
    if key not in seen:
        try:
            seen[key] = read(*args)
        except Exception as exc:
            seen[key] = exc
    if isinstance(seen[key], Exception):
        raise seen[key]
    return seen[key]


def _open_store(uri: str) -> Any:
    from repeval.store import EmbeddingStore

    return EmbeddingStore(uri, create=False)


def _head_errors(store: Any, dataset: str, model: str, scenario: str, limit: int, found: ErrorRecords) -> tuple:
    """The partition's name, its first error records (``limit`` less those ``found`` holds) and how many it has."""
    try:
        part = store.partition(dataset, model, scenario)
        head, n = part.head_errors(max(limit - len(found.rows), 0))
    except Exception as exc:
        log.warning("report: error records of %s/%s/%s not read: %s", dataset, model, scenario, exc)
        raise
    return part.name, head, n


def dropped_at_load(run: Run) -> list[LoadRecord]:
    """The records of ``run``'s ``load_report.json`` (:func:`repeval.run.load_records.read_records`: a dataset's loads
    that found the same once, with the tasks that loaded it so — one missing file of a catalog three tasks read is one
    finding, not three) that dropped rows or noted problems, as the run said them; ``[]`` when the file is missing or
    unreadable — one this user may not read (another user's) said in the report's notes and a warning, naming it and
    its permissions: read as none, the rows the run dropped went untold."""
    from repeval.report.run_files import say_unread, unread_files

    path = run.path / LOAD_REPORT
    try:
        body = json.loads(path.read_text())
    except PermissionError as exc:
        say_unread(
            run.unread, unread_files([(path, exc)], "the dataset rows dropped at load are not in the report", "")
        )
        return []
    except (OSError, ValueError):
        return []
    return [r for r in read_records(body) if r.dropped]


def _left_out(run: Run) -> dict[str, str]:
    """The embedding models ``run`` left out (:func:`repeval.run.left_out.left_out_models`) → why; none, said in the
    report's notes and a warning naming the file and its permissions, when this user may not read it (another user's):
    read as none, the models left out went untold."""
    from repeval.report.run_files import say_unread, unread_files
    from repeval.run.left_out import LEFT_OUT, left_out_models

    try:
        return left_out_models(run.path)
    except PermissionError as exc:
        what = "the embedding models the run left out are not in the report"
        say_unread(run.unread, unread_files([(run.path / LEFT_OUT, exc)], what, ""))
        return {}


def models_left_out_block(runs: list[Run]) -> str:
    """The embedding models the runs left out while their others were trained (``models_left_out.json``,
    :mod:`repeval.run.left_out`): each with why and the fix; empty when none was."""
    multi = len(runs) > 1
    items = [
        f"<li>{e(run.run_id + ': ' if multi else '')}<code>{e(model)}</code>: {e(why)}</li>"
        for run in runs
        for model, why in _left_out(run).items()
    ]
    if not items:
        return ""
    return (
        f'<h3>Embedding models left out ({len(items)})</h3><p class="rv-note">no probe was trained or tested on '
        f"them: they are in no table or figure below</p><ul>{''.join(items)}</ul>"
    )


def failed_block(runs: list[Run], task: str, dataset: str) -> str:
    """The probe trainings of ``task`` on ``dataset`` that failed (an exception, a non-finite loss) and why: they
    are in no table or figure of the report — and the test sets a trained probe gave non-finite scores on (only that
    probe's, seed's and scenario's cell is missing)."""
    multi = len(runs) > 1
    rows = []
    tests = 0
    for run in runs:
        f = run.failed
        if f is None or f.empty:
            continue
        for r in f[(f["task"] == task) & (f["dataset"] == dataset)].to_dict("records"):
            fold = "" if pd.isna(r.get("fold")) else str(int(r["fold"]))
            params = r.get("params")  # the configuration (runs before the column: none)
            settings = "" if not isinstance(params, str) or params in ("{}", "") else params
            scenario = r.get("scenario")  # a test set it could not be scored on (runs before the column: none)
            scenario = scenario if isinstance(scenario, str) else ""
            tests += bool(scenario)
            rows.append(
                [*([run.run_id] if multi else []), r["model"], r["probe"], settings, str(r["seed"]), fold, scenario,
                 r["reason"]]
            )  # fmt: skip
    if not rows:
        return ""
    head = [*(["run"] if multi else []), "model", "probe", "settings", "seed", "fold", "test set", "reason"]
    if not tests:  # no column of blanks
        head.pop(-2)
        rows = [r[:-2] + r[-1:] for r in rows]
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    if tests:
        trainings = len(rows) - tests
        title = f"Failed probe trainings ({trainings}) and failed" if trainings else "Failed"
        title += f" test cells ({tests})"
        note = (
            "a row without a test set is a training that raised or diverged: it is in no table or figure below; a row "
            "with one is a trained probe whose scores on that test set were not finite: only that cell is missing"
        )
    else:
        title, note = (
            f"Failed probe trainings ({len(rows)})",
            "these trainings raised or diverged: they are in no table or figure below",
        )
    return (
        f'<h3>{e(title)}</h3><p class="rv-note">{e(note)}</p><div class="rv-scroll"><table class="rv-table">'
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def partial_audio_note(runs: list[Run], task: str, dataset: str) -> str:
    """A note under ``task`` on ``dataset``'s cards when test tracks were scored on embeddings of partial audio (store
    rows with an ``audio_note``: a file cut short, an Ogg file without its end), as the runs' evaluations recorded
    them (:data:`~repeval.run.partial_audio.PARTIAL_KEY`); empty when none did."""
    import pyarrow.parquet as pq

    from repeval.run.partial_audio import partial_text, recorded_partial

    found = []
    for run in runs:
        try:
            entries = recorded_partial(pq.read_schema(run.path / "results.parquet").metadata) or []
        except (OSError, ValueError):
            continue
        prefix = f"{run.run_id}: " if len(runs) > 1 else ""
        found += [
            prefix + partial_text(x, task=False)
            for x in entries
            if (x.get("task"), x.get("dataset")) == (task, dataset)
        ]
    if not found:
        return ""
    return (
        '<p class="rv-note">' + e("; ".join(found)) + " — scored on embeddings of the part of their file that "
        "was decoded (<code>repeval store show</code> lists the partition's noted rows)</p>"
    )
