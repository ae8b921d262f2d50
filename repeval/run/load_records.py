"""What loading a run's datasets found, said once: the run directory's ``load_report.json``.

Several tasks often load one dataset (another label of a catalog, the same one with augmentation), and each load
finds the same missing files, duplicate ids or unusable rows. A :class:`LoadRecord` is what one dataset's load found,
once for every task whose load found the same (the same lines, rows kept and rows ``--strict`` counts): one missing
file of a catalog three tasks read is one record of one row, naming the three tasks, not three. Loads of one dataset
alike (the same definition, label and task type) always find the same, so each has one record; loads of another
definition or label that find the same thing share it too, and those that find other things have their own.

:func:`said_once` is the one place loads are grouped so: the load step (:func:`repeval.run.rows.load_rows`) logs each
record once and writes them, and ``repeval plan`` (its notes), ``--strict``, ``repeval runs`` (its count of rows
dropped at load) and the HTML report (its "Tracks left out of evaluation") read the same records
(:func:`read_records`). ``load_report.json`` holds ``{"loads": [record, ...]}``; a run directory written before
(``{"<task>__<dataset>": entry}``, one entry per task) is read by grouping its entries the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class LoadRecord:
    """What loading ``dataset`` found, for the ``tasks`` whose loads found the same."""

    dataset: str
    #: the tasks that loaded it and found this, in the configuration's order
    tasks: tuple[str, ...]
    #: the rows kept (``None``: not recorded)
    rows: int | None
    #: the problems found per kind (each a row dropped, except ``other`` notes and labels dropped from a multilabel
    #: row that is kept)
    problems: dict[str, int] = field(default_factory=dict)
    #: the rows dropped that ``--strict`` counts as tracks not evaluated
    not_evaluated: int = 0
    #: the log's lines: one per kind of problem (its count and first examples), then the loader's notes
    lines: tuple[str, ...] = ()
    #: how the record is said: the dataset's name, or with its tasks (``tones (a, b)``) when the dataset has other
    #: records — tasks whose loads of it found other things
    name: str = ""

    @property
    def alike(self) -> tuple[str, tuple[str, ...], int | None, int]:
        """What loads said once share: the dataset, the lines, the rows kept and the rows not evaluated."""
        return self.dataset, self.lines, self.rows, self.not_evaluated

    @property
    def dropped(self) -> bool:
        """Whether the load dropped rows or noted problems (the report lists only those)."""
        return bool(self.lines or self.not_evaluated)

    def as_json(self) -> dict[str, Any]:
        """The record as ``load_report.json`` keeps it (its :attr:`name` is derived when it is read)."""
        return {
            "dataset": self.dataset,
            "tasks": list(self.tasks),
            "rows": self.rows,
            "problems": dict(self.problems),
            "not_evaluated": self.not_evaluated,
            "lines": list(self.lines),
        }


def said_once(loads: Iterable[tuple[LoadRecord, T]]) -> list[tuple[LoadRecord, T]]:
    """``loads`` (a record, and what goes with it) as people read them: the loads of a dataset that found the same
    (:attr:`LoadRecord.alike`) made one record with their tasks together and the first load's ``T``, each record
    named (:attr:`LoadRecord.name`) — per dataset in order of appearance, then per finding."""
    groups: dict[str, dict[tuple[Any, ...], tuple[LoadRecord, T]]] = {}
    for record, with_it in loads:
        alike = groups.setdefault(record.dataset, {})
        first = alike.get(record.alike)
        if first is None:
            alike[record.alike] = (record, with_it)
        else:
            tasks = first[0].tasks + tuple(t for t in record.tasks if t not in first[0].tasks)
            alike[record.alike] = (replace(first[0], tasks=tasks), first[1])
    out = []
    for dataset, alike in groups.items():
        for record, with_it in alike.values():
            name = dataset if len(alike) == 1 else f"{dataset} ({', '.join(record.tasks)})"
            out.append((replace(record, name=name), with_it))
    return out


def load_report_json(records: Iterable[LoadRecord]) -> dict[str, Any]:
    """``load_report.json``'s content: ``{"loads": [record, ...]}``."""
    return {"loads": [r.as_json() for r in records]}


def read_records(body: Any) -> list[LoadRecord]:
    """The records of a ``load_report.json``'s content (``body``, parsed), said once (:func:`said_once`): as written
    (``{"loads": [...]}``), or, from a run directory written before, its per-task entries (``{"<task>__<dataset>":
    {"task", "dataset", "rows", "problems", "not_evaluated", "lines"}}``) grouped as the run said them. ``[]`` for
    anything else; an entry that is not an object is skipped."""
    if not isinstance(body, Mapping):
        return []
    loads = body.get("loads")
    entries = loads if isinstance(loads, list) else [d for k, d in body.items() if k != "loads"]
    records = [_record(d) for d in entries if isinstance(d, Mapping)]
    return [r for r, _ in said_once((r, None) for r in records)]


def _record(d: Mapping[str, Any]) -> LoadRecord:
    """One entry of the file as a record: a record as written (``tasks``), or a previous version's per-task entry
    (``task``); fields missing or of another type read as none."""
    tasks = d.get("tasks")
    if not isinstance(tasks, list):
        tasks = [d.get("task")] if d.get("task") is not None else []
    rows = d.get("rows")
    problems = d.get("problems")
    try:
        n = int(d.get("not_evaluated") or 0)
    except (TypeError, ValueError):
        n = 0
    return LoadRecord(
        dataset=str(d.get("dataset")),
        tasks=tuple(map(str, tasks)),
        rows=rows if isinstance(rows, int) else None,
        problems={str(k): v for k, v in problems.items() if isinstance(v, int)} if isinstance(problems, dict) else {},
        not_evaluated=n,
        lines=tuple(map(str, d.get("lines") or ())),
    )
