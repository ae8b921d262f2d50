"""Dataset contract: a dataset turns into catalog rows for a task.

Rows are an Arrow table with the :data:`ROW_SCHEMA` columns. ``label`` is always a list of
strings (one element for multiclass/key tasks, any number for multilabel; regression targets
are written as decimal strings and parsed by the task encoder). ``split`` is ``train``,
``validation``, ``test`` or null (null rows get a seeded stratified split).

A multilabel data set that annotates only some labels per track (OpenMIC-2018) adds an
:data:`OBSERVED` column: the labels annotated for the track (present or absent), a label missing
from it being unannotated — neither present nor absent. Probes train and metrics score each label
on the tracks that annotate it (``dataset.unannotated: mask``). Without the column every label of
every track is annotated: a label not in ``label`` is absent.

Loaders register with ``@register_dataset("name", info=DatasetInfo(...))``: a loader is a plain
function ``(dataset config, task config) -> (rows, LoadReport)``. ``info`` describes the loader's
kind (mirdata / custom / catalog) and its labels, for ``repeval datasets`` and config checks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from repeval.datasets import missing
from repeval.registry import Registry
from repeval.words import counted

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")

ROW_SCHEMA = pa.schema(
    [
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("audio_path", pa.string(), nullable=False),
        pa.field("label", pa.list_(pa.string())),
        pa.field("split", pa.string()),
        pa.field("group", pa.string()),
    ]
)

#: optional rows column (list of strings): the labels annotated for the track (see the module docstring)
OBSERVED = "observed"
OBSERVED_FIELD = pa.field(OBSERVED, pa.list_(pa.string()))


#: kinds of problems a :class:`LoadReport` records (its list attributes)
#: the dataset keys that shape a single split which a loader may read itself (:attr:`DatasetInfo.split_keys`)
SPLIT_KEYS = ("fold", "split_ratios", "split_seed")

REPORT_KINDS = ("missing_audio", "duplicate_ids", "unlabelled", "unknown_labels", "other")


#: what a :meth:`LoadReport.lines` line calls the problems of each kind: one, several
_KIND_NAMES = {
    "missing_audio": ("missing audio file", "missing audio files"),
    "duplicate_ids": ("duplicate id", "duplicate ids"),
    "unlabelled": ("track with no usable label", "tracks with no usable label"),
    # labels outside dataset.classes, keys that are none, regression targets that are no number or of another count
    "unknown_labels": ("unusable label", "unusable labels"),
    "other": ("other problem", "other problems"),
}


@dataclass
class LoadReport:
    """Problems found while loading that do not stop a run (each names its row or track).

    Lists keep at most :attr:`max_items` examples per kind so that a million-row catalog with
    many bad rows does not hold a Python string per row; :attr:`totals` keeps the true counts.
    Use :meth:`add` to record a problem, and :meth:`add_missing` for a row whose audio file does not exist: it is
    named in ``missing_audio`` for people and kept whole, as data, in :attr:`missing_rows` (every one of them).
    """

    missing_audio: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    #: labels outside the task's vocabulary (``dataset.classes``), invalid keys, non-numeric targets
    unknown_labels: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    #: true number of problems per kind when more than ``max_items`` were found
    totals: dict[str, int] = field(default_factory=dict)
    max_items: int = 10_000
    #: findings that drop no row (a configured key the data left unused): logged and in the report's lines, never
    #: counted as rows not evaluated
    notes: list[str] = field(default_factory=list)
    #: the split keys (:data:`SPLIT_KEYS`) the loader read (:func:`repeval.datasets.load.load_dataset` notes them)
    used_keys: set[str] = field(default_factory=set)
    #: split_type single: ``split_ratios`` drew some track's split (``False`` when the loader gave every track its
    #: split), so a split left empty names them as the fix
    drawn_splits: bool = False
    #: what the loader listed the tracks from, for the store's record of where a partition's audio came from
    #: (:func:`~repeval.pipeline.partitions.dataset_source`): ``index``, the mirdata index it read when the config
    #: names none (mirdata's own); ``audio``, the number, total size and newest modification time of the audio files
    #: it found when checking that each track's file exists (``check_files``; the same ``stat``, no second walk), and a
    #: digest of a sample of their content (``content``: :class:`~repeval.datasets.content.ContentSample`)
    listed: dict[str, Any] = field(default_factory=dict)
    #: every row dropped because its audio file does not exist — track id, audio path, manifest row, cause — as data
    #: (:class:`~repeval.datasets.missing.MissingTracks`: spilled to a file past a few hundred thousand rows), for
    #: ``repeval data check --out``; ``missing_audio`` names the first :attr:`max_items` of them for people
    missing_rows: missing.MissingTracks = field(default_factory=missing.MissingTracks, compare=False, repr=False)

    def add(self, kind: str, item: str) -> None:
        """Record one problem of ``kind`` (one of :data:`REPORT_KINDS`). A ``missing_audio`` item is kept in
        :attr:`missing_rows` as the loader's own words; :meth:`add_missing` keeps its track id and path apart."""
        self._note(kind, item)
        if kind == "missing_audio":
            self.missing_rows.add(item, None, cause=missing.REPORTED)

    def add_missing(
        self, track_id: str, audio_path: str | None, row: str | None = None, cause: str | None = None
    ) -> None:
        """Record a row dropped because its audio file does not exist: ``audio_path`` the file it names (``None``:
        none), ``row`` where it is in a manifest (``row N``), ``cause`` one of
        :data:`~repeval.datasets.missing.CAUSES` (by default: what ``audio_path`` and ``row`` say)."""
        cause = missing.cause_of(audio_path, row, cause)
        self.missing_rows.add(track_id, audio_path, row, cause)
        self._note("missing_audio", missing.message(track_id, audio_path, row, cause))

    def add_missing_batch(self, track_ids: pa.Array, audio_paths: pa.Array, rows: pa.Array, causes: pa.Array) -> None:
        """:meth:`add_missing` for each row of these arrays (a catalog's batch; no Python object per row past the
        :attr:`max_items` named in ``missing_audio``)."""
        n = len(track_ids)
        if not n:
            return
        batch = pa.RecordBatch.from_arrays([track_ids, audio_paths, rows, causes], schema=missing.MISSING_SCHEMA)
        self.missing_rows.add_batch(batch)
        room = max(self.max_items - len(self.missing_audio), 0)
        named = batch.slice(0, room).to_pylist()
        self.missing_audio += [missing.message(r["track_id"], r["audio_path"], r["row"], r["cause"]) for r in named]
        self.totals["missing_audio"] = self.count("missing_audio") + n - len(named)

    def _note(self, kind: str, item: str) -> None:
        """Count one problem of ``kind`` and keep ``item`` while its list has room."""
        if kind not in REPORT_KINDS:
            raise ValueError(f"unknown report kind '{kind}'; valid: {', '.join(REPORT_KINDS)}")
        items: list[str] = getattr(self, kind)
        self.totals[kind] = self.count(kind) + 1
        if len(items) < self.max_items:
            items.append(item)

    def count(self, kind: str) -> int:
        return max(len(getattr(self, kind)), self.totals.get(kind, 0))

    def merge(self, other: LoadReport) -> None:
        self.notes += [n for n in other.notes if n not in self.notes]
        self.used_keys |= other.used_keys
        self.drawn_splits |= other.drawn_splits
        self.listed = self.listed or dict(other.listed)
        for kind in REPORT_KINDS:
            extra = other.count(kind) - len(getattr(other, kind))
            for item in getattr(other, kind):
                self._note(kind, item)
            if extra:
                self.totals[kind] = self.count(kind) + extra
        self.missing_rows.extend(other.missing_rows)

    def lines(self, kinds: tuple[str, ...] | None = None) -> list[str]:
        """One line per kind found (of ``kinds``; by default every kind, then the :attr:`notes`): its count and the
        first examples."""
        out = []
        for kind, (one, many) in _KIND_NAMES.items():
            if kinds is not None and kind not in kinds:
                continue
            items = getattr(self, kind)
            n = self.count(kind)
            if n:
                shown = ", ".join(items[:5]) + (f" … (+{n - 5})" if n > 5 else "")
                out.append(f"{counted(n, one, many)}: {shown}")
        return out if kinds is not None else out + self.notes

    def counts(self) -> dict[str, int]:
        """The number of problems of each kind found (kinds with none left out)."""
        return {kind: self.count(kind) for kind in REPORT_KINDS if self.count(kind)}


def strict_kinds(dataset_type: str, task_type: str) -> tuple[str, ...]:
    """The kinds whose rows ``--strict`` counts as tracks not evaluated: missing audio of any dataset; every row a
    ``catalog`` dropped (the user's own manifest, each row of which is meant to be evaluated: duplicate ids,
    unusable labels, empty ids, unknown splits) — except a multilabel task's unknown labels, dropped from a row
    that is kept. The built-in loaders drop rows by their data set's protocol too (VocalSet's numbered copies,
    MagnaTagATune clips without a top-50 tag): only their missing audio counts."""
    if dataset_type != "catalog":
        return ("missing_audio",)
    if task_type == "multilabel_classification":
        return tuple(k for k in REPORT_KINDS if k != "unknown_labels")
    return REPORT_KINDS


@dataclass(frozen=True)
class LabelInfo:
    """One label a dataset offers, i.e. one task it supports."""

    name: str
    #: multiclass_classification | multilabel_classification | regression | key_estimation
    task_type: str
    description: str = ""
    #: how the split is made for this label ("official ...", "stratified 80/10/10", ...)
    splits: str = "stratified"


@dataclass(frozen=True)
class DatasetInfo:
    """What ``repeval datasets`` shows about a registered loader."""

    name: str
    #: ``mirdata`` (a mirdata data set), ``custom`` (a repeval loader) or ``catalog``
    kind: str
    labels: tuple[LabelInfo, ...] = ()
    description: str = ""
    #: the split keys (:data:`SPLIT_KEYS`) its loader may read itself under ``split_type: single``: ``fold`` picks one
    #: of the data set's official folds or splits (TinySOL, MTG-Jamendo's split-k; ``fold`` is a configuration error
    #: elsewhere), ``split_ratios`` and ``split_seed`` carve a validation split from an official train split
    #: (OpenMIC-2018). The loader reading another is an error of the loader (tests/datasets/test_datasets_contract.py)
    split_keys: frozenset[str] = frozenset()
    #: how many official folds or splits ``fold`` picks from, when the loader declares it for every label
    #: (MTG-Jamendo's split-0..4): a ``fold`` (or under ``split_type: all`` an ``n_folds``) beyond it is a
    #: configuration error. A wired mirdata data set declares its count per label
    #: (:meth:`~repeval.datasets.mirdata_loader.MirdataSpec.official_fold_count`)
    official_fold_count: int | None = None

    def label(self, name: str) -> LabelInfo:
        for lab in self.labels:
            if lab.name == name:
                return lab
        raise ValueError(unknown_label_message(self.name, name, [x.name for x in self.labels]))


def unknown_label_message(dataset: str, name: str, choices: list[str] | set[str], task: str | None = None) -> str:
    from repeval.registry import closest

    hint = closest(name, list(choices))
    msg = f"dataset '{dataset}' has no label '{name}'" + (f" for task '{task}'" if task else "")
    if hint:
        msg += f" — did you mean '{hint}'?"
    return msg + f" Its labels: {', '.join(sorted(choices))} (set task.label to one of them)"


#: a loader: (dataset config, task config) -> (rows table with ROW_SCHEMA, report)
Loader = Callable[[Any, Any], tuple[pa.Table, LoadReport]]

DATASETS: Registry[Loader] = Registry("dataset")

#: loader name -> description (kind, labels); every loader registered with ``info`` has one
DATASET_INFO: dict[str, DatasetInfo] = {}


def register_dataset(name: str, info: DatasetInfo | None = None) -> Callable[[Loader], Loader]:
    """Register a loader under ``name``; ``info`` describes it for listings and config checks."""
    register = DATASETS.register(name)

    def decorator(fn: Loader) -> Loader:
        register(fn)
        DATASET_INFO[name] = info if info is not None else DatasetInfo(name=name, kind="custom")
        return fn

    return decorator


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"split": None, "group": None, **r} for r in rows],
        schema=ROW_SCHEMA,
    )
