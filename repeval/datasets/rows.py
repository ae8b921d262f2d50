"""Collect catalog rows track by track (mirdata and custom loaders), reporting unusable tracks.

Data sets read through Python objects (mirdata tracks, metadata files) hold at most a few
hundred thousand tracks; the million-row path is the vectorised ``catalog`` loader.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from repeval.datasets.base import OBSERVED_FIELD, ROW_SCHEMA, SPLITS, LoadReport
from repeval.datasets.content import ContentSample
from repeval.datasets.labels import finalize_label


def iso_time(ns: int) -> str:
    """A modification time (ns since the epoch) as the store's sources record it: ISO 8601, UTC, microseconds."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat(timespec="microseconds")


def key_classes(task_type: str, classes: Iterable[str] | None) -> frozenset[str] | None:
    """``dataset.classes`` as the labels are compared with it: a key task's classes normalised like its labels
    (``Db major`` → ``C# major``), so classes written with flats keep their tracks."""
    if not classes:
        return None
    if task_type != "key_estimation":
        return frozenset(classes)
    from repeval.datasets.encoding import normalize_key

    try:
        return frozenset(normalize_key(c) for c in classes)
    except ValueError as exc:
        raise ValueError(f"dataset.classes of a key_estimation task: {exc}") from None


def row_schema(masked: bool) -> pa.Schema:
    """The rows' schema: :data:`~repeval.datasets.base.ROW_SCHEMA`, and with ``masked`` (a multilabel data set that
    annotates only some labels per track) the :data:`~repeval.datasets.base.OBSERVED` column."""
    return ROW_SCHEMA.append(OBSERVED_FIELD) if masked else ROW_SCHEMA


class RowCollector:
    """Validates and accumulates rows: duplicate ids, missing audio and bad labels are reported. With ``masked``
    (a multilabel data set that annotates only some labels per track) each row also carries its annotated labels,
    in the :data:`~repeval.datasets.base.OBSERVED` column."""

    def __init__(
        self,
        task_type: str,
        report: LoadReport,
        classes: Iterable[str] | None = None,
        check_files: bool = True,
        masked: bool = False,
    ) -> None:
        self.task_type = task_type
        self.report = report
        self.classes = key_classes(task_type, classes)
        self.check_files = check_files
        self.masked = masked
        self._seen: set[str] = set()
        self._cols: dict[str, list[Any]] = {f.name: [] for f in ROW_SCHEMA}
        self._observed: list[list[str]] = []
        self._files = self._bytes = self._newest_ns = 0  # the audio files found: what the store records of them
        self._content = ContentSample()

    def _found(self, path: str, track_id: str) -> bool:
        """Whether ``path`` is a file (one ``stat``, as ``os.path.isfile``), counting its size and time (and it in
        the sample of the audio's content, :class:`~repeval.datasets.content.ContentSample`)."""
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return False
        if not stat.S_ISREG(st.st_mode):
            return False
        self._files += 1
        self._bytes += st.st_size
        self._newest_ns = max(self._newest_ns, st.st_mtime_ns)
        self._content.add(track_id, path, st.st_size)
        return True

    def add(
        self,
        track_id: str,
        audio_path: str | None,
        label: Any,
        split: str | None = None,
        group: str | None = None,
        observed: Iterable[str] | None = None,
    ) -> bool:
        """Add a track; returns False (and reports why) when it is not usable. ``observed`` (with ``masked``): the
        labels annotated for the track; its present labels count as annotated whether listed there or not."""
        tid = str(track_id)
        if tid in self._seen:
            self.report.add("duplicate_ids", tid)
            return False
        self._seen.add(tid)
        if not audio_path:
            self.report.add_missing(tid, None)
            return False
        audio_path = str(audio_path)
        if self.check_files and "://" not in audio_path and not self._found(audio_path, tid):
            self.report.add_missing(tid, audio_path)
            return False
        labels, problem, message = finalize_label(self.task_type, label, self.classes)
        if problem is not None:
            self.report.add(problem, f"{tid} ({message})")
        if labels is None:
            return False
        if split is not None and split not in SPLITS:
            raise ValueError(f"internal: split '{split}' for {tid} is not one of {SPLITS}")
        for name, value in (
            ("track_id", tid),
            ("audio_path", audio_path),
            ("label", labels),
            ("split", split),
            ("group", None if group is None else str(group)),
        ):
            self._cols[name].append(value)
        if self.masked:
            annotated = {str(x) for x in observed or ()} | set(labels)
            self._observed.append(sorted(x for x in annotated if self.classes is None or x in self.classes))
        return True

    def __len__(self) -> int:
        return len(self._cols["track_id"])

    def table(self) -> pa.Table:
        """The rows collected; the audio files found are noted in the report's ``listed`` (``audio``): their number,
        total size, newest time and a digest of a sample of their content (:class:`ContentSample`)."""
        if self._files:
            self.report.listed["audio"] = {
                "files": self._files,
                "bytes": self._bytes,
                "newest": iso_time(self._newest_ns),
                "content": self._content.digest(),
            }
        rows = pa.table(
            {f.name: pa.array(self._cols[f.name], f.type) for f in ROW_SCHEMA},
            schema=ROW_SCHEMA,
        )
        if self.masked:
            rows = rows.append_column(OBSERVED_FIELD, pa.array(self._observed, OBSERVED_FIELD.type))
        return rows


def require_rows(rows: pa.Table, dataset: str, report: LoadReport, hint: str = "") -> pa.Table:
    if rows.num_rows == 0:
        problems = "; ".join(report.lines()) or "nothing found"
        raise ValueError(f"dataset '{dataset}': no usable tracks ({problems}){' — ' + hint if hint else ''}")
    return rows
