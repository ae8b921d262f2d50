"""Validating a ``catalog`` manifest's record batches into rows (:func:`~repeval.datasets.rows.row_schema`) with Arrow
compute kernels: track ids, labels (single, multi-label, keys, regression targets, annotated labels), audio paths
resolved and checked to exist (:mod:`~repeval.datasets.audio_paths`), splits and groups; every row left out is reported in
the :class:`~repeval.datasets.base.LoadReport` with its row number."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets import missing
from repeval.datasets.audio_paths import AudioPaths
from repeval.datasets.base import SPLITS, LoadReport
from repeval.datasets.encoding import normalize_key
from repeval.datasets.manifest import numeric_type
from repeval.datasets.rows import key_classes, row_schema
from repeval.datasets.target_text import COMMA_FIX as COMMA_FIX
from repeval.datasets.target_text import GROUPING as GROUPING
from repeval.datasets.target_text import (
    CommaGroups,
    TargetCounts,
    _decimal_hint,
    _grouped_rows,
    _non_numeric_rows,
    _number_re,
    _odd_parts,
    ambiguous_parts,
    ambiguous_why,
    huge_parts,
    huge_why,
    plain_minus,
    point_decimals,
    thousands_fix,
    typographic_why,
)
from repeval.datasets.target_text import list_text as list_text
from repeval.datasets.target_text import split_cells as split_cells
from repeval.datasets.target_text import target_cells as target_cells
from repeval.datasets.target_text import target_hint as target_hint
from repeval.words import counted

#: what to do with audio paths of a scheme repeval does not read (``https://``)
AUDIO_SCHEME_FIX = (
    "download the files and write their paths (relative to the manifest's folder, or dataset.dir), or put them in a "
    "bucket and write their s3:// or gs:// URIs"
)

SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


def unknown_split(cell: str) -> str:
    """Why a split cell that names no split is refused: the split it is close to, and what a cell may hold."""
    from repeval.registry import did_you_mean

    others = ", ".join(a for a in SPLIT_ALIASES if a not in SPLITS)
    return (
        f"unknown split {cell!r}: a split cell holds {', '.join(SPLITS[:-1])} or {SPLITS[-1]} (also {others}), an "
        f"empty one gets a drawn split{did_you_mean(cell.strip().lower(), list(SPLIT_ALIASES))}"
    )


def target_separator(ds: Any) -> str | None:
    """What a regression task's cells are split at: ``label_separator``, unless it is the ``decimal`` mark (a cell
    is then one target: ``0,31`` with ``decimal: ','``)."""
    return None if ds.label_separator == getattr(ds, "decimal", ".") else ds.label_separator


def _rowref(fmt: str, row: int) -> str:
    return f"row {row + 2}" if fmt == "csv" else f"row {row}"


def _rowrefs(fmt: str, rows: np.ndarray) -> pa.Array:
    """:func:`_rowref` of each of ``rows``, as an Arrow array (no Python string per row)."""
    numbers = pc.cast(pa.array(rows + (2 if fmt == "csv" else 0)), pa.string())
    return pc.binary_join_element_wise("row ", numbers, "")


class _BatchValidator:
    """Turns manifest batches into rows batches (:func:`~repeval.datasets.rows.row_schema`) of usable rows,
    reporting the rest."""

    def __init__(self, ds: Any, task: Any, label_col: str, fmt: str, report: LoadReport) -> None:
        self.ds = ds
        self.label_col = label_col
        self.fmt = fmt
        self.report = report
        self.task_type = task.effective_type
        #: the decimal mark of regression targets (``decimal``)
        self.decimal = getattr(ds, "decimal", ".")
        #: the Arrow type of a Parquet label column of numbers read with ``decimal`` ``,``, which then has no effect
        self.numeric_label: str | None = None
        #: whether a batch's label column was text, read with ``decimal`` (a folder of Parquet files may hold both)
        self.text_label = False
        #: whether a batch's label column was a Parquet list column (:func:`~repeval.datasets.manifest.list_type`):
        #: its items are the labels, split at no separator
        self.list_label = False
        #: the audio paths, resolved against the manifest's folder (or ``dir``) and checked to exist
        self.audio = AudioPaths(ds)
        classes = key_classes(self.task_type, getattr(ds, "classes", None))
        self.classes = pa.array(sorted(classes), pa.string()) if classes else None
        self._keys: dict[str, str | None] = {}
        #: the sorted rows whose id a later row repeats (set by the load, :func:`~repeval.datasets.catalog.later_duplicates`),
        #: and those of them left out, batch by batch
        self.first_rows = np.empty(0, dtype=np.int64)
        self.left_out_firsts: list[np.ndarray] = []
        #: the column of each track's annotated labels, read with ``unannotated: mask`` (:func:`masked_column`)
        self.annotated_col = masked_column(ds, task)
        self.schema = row_schema(self.annotated_col is not None)
        #: rows whose every cell read is empty (a blank line, a spreadsheet's ``,,`` after its last row), skipped
        self.blank_rows = 0
        self.first_blank: int | None = None
        #: a regression task's rows kept, by their number of targets (the load refuses those of another than most's)
        self.target_counts = TargetCounts(report.max_items)
        #: a regression column read with a decimal point split at ',': its cells such as '1,234' (ambiguous when all are)
        self.comma_groups = CommaGroups()

    def blank_note(self) -> str | None:
        """A note of the :attr:`blank_rows` skipped, naming the first; ``None`` when there were none."""
        if not self.blank_rows:
            return None
        n = self.blank_rows
        return (
            f"{counted(n, 'empty row')} skipped (e.g. {_rowref(self.fmt, self.first_blank or 0)}: no track "
            "id, audio path or label — a blank line, or the empty rows a spreadsheet exports after its last one)"
        )

    def _bad(self, kind: str, ids: pa.Array, rows: np.ndarray, mask: np.ndarray, why: Any) -> None:
        """Report rows in ``mask``; ``why`` is a message or a per-row array of messages."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        id_list = ids.take(pa.array(idx)).to_pylist()
        whys = why.take(pa.array(idx)).to_pylist() if isinstance(why, pa.Array) else [why] * len(idx)
        for tid, r, w in zip(id_list, rows[idx], whys, strict=True):
            self.report.add(kind, f"{tid} ({_rowref(self.fmt, int(r))}{': ' + w if w else ''})")

    def _duplicates(
        self, ids: pa.Array, rows: np.ndarray, mask: np.ndarray, first: np.ndarray, kept: np.ndarray
    ) -> None:
        """Report the rows in ``mask`` as repeating the id of the row ``first`` names, saying when that row was left
        out itself (its audio missing, its label unusable: the id has no track though a later row may be usable);
        ``kept``: the batch's rows read."""
        lo, hi = np.searchsorted(self.first_rows, [rows[0], rows[-1] + 1]) if len(rows) else (0, 0)
        if hi > lo:  # this batch's first rows of repeated ids, those left out remembered for the later rows
            at = self.first_rows[lo:hi]
            self.left_out_firsts.append(at[~kept[at - rows[0]]])
        if not mask.any():
            return
        refs = _rowrefs(self.fmt, np.maximum(first, 0))
        gone = np.isin(first, np.concatenate(self.left_out_firsts)) if self.left_out_firsts else np.zeros_like(mask)
        # the first row left out too: the id has no track, though this row may be usable
        fix = pc.if_else(
            pa.array(gone), pc.binary_join_element_wise(", itself left out: correct ", refs, " or delete it", ""), ""
        )
        why = pc.binary_join_element_wise("repeats the id of ", refs, fix, " — only an id's first row is read", "")
        self._bad("duplicate_ids", ids, rows, mask, why)

    def _missing(self, ids: pa.Array, rows: np.ndarray, mask: np.ndarray, paths: pa.Array | None) -> None:
        """Report the rows in ``mask`` as missing their audio: the file each names in ``paths`` does not exist, or
        (``paths`` ``None``) their audio cell is empty."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        take = pa.array(idx)
        refs = _rowrefs(self.fmt, rows[idx])
        path = paths.take(take) if paths is not None else pa.nulls(len(idx), pa.string())
        cause = missing.NOT_FOUND if paths is not None else missing.EMPTY_PATH
        self.report.add_missing_batch(ids.take(take), path, refs, pa.repeat(pa.scalar(cause), len(idx)))

    def _one_each(self, raw: pa.Array, ids: pa.Array, rows: np.ndarray, ok: np.ndarray) -> pa.Array:
        """The label of each list of a Parquet list column read for a single-label task (null where the list is null
        or empty: no label); a list of several labels stops the load, naming the fix."""
        parent, values, keep = split_cells(raw, None)
        counts = np.bincount(parent[keep], minlength=len(raw))
        several = np.flatnonzero((counts > 1) & ok)
        if len(several):
            i = int(several[0])
            raise ValueError(
                f"label_column {self.label_col!r} is a list column and {len(several)} of its rows hold several "
                f"labels (e.g. {ids[i].as_py()} ({_rowref(self.fmt, int(rows[i]))}): {raw[i].as_py()}), but a "
                f"{self.task_type} task takes one label per track — set the task's type: multilabel_classification "
                "if they are its tags, else write one label per row (a list of one, or a column of strings)"
            )
        at = np.full(len(raw), -1, dtype=np.int64)
        at[parent[keep]] = np.flatnonzero(keep)
        return values.take(pa.array(at, mask=at < 0))

    def _single_labels(self, raw: pa.Array, ids: pa.Array, rows: np.ndarray, ok: np.ndarray) -> pa.Array:
        if pa.types.is_list(raw.type):  # a Parquet list column: each list's one label
            raw = self._one_each(raw, ids, rows, ok)
        lab = pc.utf8_trim_whitespace(raw)
        empty = pc.fill_null(pc.equal(lab, ""), True).to_numpy(zero_copy_only=False)
        self._bad("unlabelled", ids, rows, ok & empty, f"empty {self.label_col}")
        ok &= ~empty
        if self.task_type == "key_estimation":
            uniq = pc.unique(lab.filter(pa.array(ok))).to_pylist()
            for u in uniq:
                if u not in self._keys:
                    try:
                        self._keys[u] = normalize_key(u)
                    except ValueError:
                        self._keys[u] = None
            bad_keys = [u for u in uniq if self._keys[u] is None]
            if bad_keys:
                is_bad = pc.fill_null(pc.is_in(lab, value_set=pa.array(bad_keys, pa.string())), False)
                is_bad_np = is_bad.to_numpy(zero_copy_only=False) & ok
                why = pc.binary_join_element_wise("'", lab, "' is not a key (expected e.g. 'C# minor')", "")
                self._bad("unknown_labels", ids, rows, is_bad_np, why)
                ok &= ~is_bad_np
            good = [u for u in uniq if self._keys[u] is not None]
            if good:
                pos = pc.index_in(lab, value_set=pa.array(good, pa.string()))
                lab = pc.coalesce(pa.array([self._keys[u] for u in good], pa.string()).take(pos), lab)
        if self.classes is not None:
            unknown = ~pc.fill_null(pc.is_in(lab, value_set=self.classes), False).to_numpy(zero_copy_only=False) & ok
            why = pc.binary_join_element_wise("label '", lab, "' not in dataset.classes", "")
            self._bad("unknown_labels", ids, rows, unknown, why)
            ok &= ~unknown
        return lab

    def _list_labels(
        self, raw: pa.Array, ids: pa.Array, rows: np.ndarray, ok: np.ndarray, field: pa.Field | None = None
    ) -> pa.Array:
        n = len(raw)
        regression = self.task_type == "regression"
        separator = target_separator(self.ds) if regression else self.ds.label_separator
        if pa.types.is_list(raw.type):  # a Parquet list column: its items, split at nothing (their text for messages)
            self.list_label = True
            parent, values, keep = split_cells(raw, None)
            separator, raw = None, list_text(raw)
            if regression:
                values = plain_minus(values)
        else:
            if regression:
                raw = plain_minus(raw)  # −0.5 (U+2212) is -0.5
            parent, values, keep = split_cells(raw, separator)
        if regression:
            decimal = column_decimal(field, self.decimal)
            if decimal != self.decimal and field is not None:  # a Parquet column of numbers: noted by the load
                self.numeric_label = numeric_type(field)
            elif decimal == self.decimal:
                self.text_label = True
            odd = _odd_parts(values, keep, decimal)
            grouped = _grouped_rows(raw, parent, values, keep, odd, separator, decimal) & ok
            if grouped.any():
                self._bad("unknown_labels", ids, rows, grouped, self._thousands_whys(raw, grouped, decimal))
                ok &= ~grouped
            bad_rows = _non_numeric_rows(parent, odd, n)
            if (ok & bad_rows).any():
                self._non_numeric(raw, ids, rows, ok & bad_rows, parent, values, keep, odd, decimal)
            ok &= ~bad_rows
            values = point_decimals(values, decimal)
        elif self.classes is not None:
            known = pc.fill_null(pc.is_in(values, value_set=self.classes), False).to_numpy(zero_copy_only=False)
            unknown = keep & ~known & ok[parent]
            if unknown.any():
                vals = values.filter(pa.array(unknown)).to_pylist()
                for p, v in zip(parent[unknown], vals, strict=True):
                    self.report.add(
                        "unknown_labels",
                        f"{ids[int(p)].as_py()} ({_rowref(self.fmt, int(rows[p]))}: label '{v}' not in dataset.classes, "
                        "dropped)",
                    )
            keep &= known
        counts = np.bincount(parent[keep], minlength=n)
        if self.task_type == "regression":
            empty = counts == 0
            self._bad("unlabelled", ids, rows, ok & empty, f"empty {self.label_col}")
            ok &= ~empty
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return pa.ListArray.from_arrays(pa.array(offsets), values.filter(pa.array(keep)))

    def _non_numeric(
        self,
        raw: pa.Array,
        ids: pa.Array,
        rows: np.ndarray,
        bad: np.ndarray,
        parent: np.ndarray,
        values: pa.Array,
        keep: np.ndarray,
        odd: np.ndarray,
        decimal: str,
    ) -> None:
        """Report the rows in ``bad``, whose cells hold a part that is no target: one whose numbers are ambiguous
        (``1.234`` with a decimal comma, :func:`~repeval.datasets.target_text.ambiguous_why`) or hold typographic
        characters (:func:`~repeval.datasets.target_text.typographic_why`) each with its own fix, the others with the
        decimal mark's hint (:func:`_decimal_hint`)."""
        either = ambiguous_parts(values, odd, decimal)
        ambiguous = _non_numeric_rows(parent, either, len(raw)) & ~_non_numeric_rows(parent, odd & ~either, len(raw))
        whys = np.full(len(raw), None, dtype=object)
        number = re.compile(_number_re(decimal))
        odd_text = ~pc.fill_null(pc.string_is_ascii(raw), True).to_numpy(zero_copy_only=False)
        for j in np.flatnonzero(huge_parts(values, odd, decimal)):  # 1e999: beyond a float, named alone
            whys[parent[j]] = huge_why(values[int(j)].as_py(), self.label_col)
        for i in np.flatnonzero(bad & (ambiguous | odd_text)):  # the others share one reason, made below
            cell = raw[int(i)].as_py() or ""
            if whys[i] is not None:
                continue
            if ambiguous[i]:
                whys[i] = ambiguous_why(cell, self.label_col, decimal)
            elif not cell.isascii():
                whys[i] = typographic_why(cell, self.label_col, decimal, number)
        rest = bad & np.array([w is None for w in whys], dtype=bool)
        if rest.any():
            hint = _decimal_hint(values, keep & rest[parent], decimal)
            whys[rest] = f"non-numeric regression target in {self.label_col}{hint}"
        self._bad("unknown_labels", ids, rows, bad, pa.array(whys, pa.string()))

    def _thousands_whys(self, raw: pa.Array, grouped: np.ndarray, decimal: str) -> pa.Array:
        """Why each cell of ``raw`` in ``grouped`` (:func:`_grouped_rows`) is refused: the cell, and how to write it."""
        idx = np.flatnonzero(grouped)
        whys = np.full(len(raw), None, dtype=object)
        whys[idx] = [
            f"regression target {c.strip()!r} in {self.label_col} has a thousands separator — "
            f"{thousands_fix(c.strip(), decimal)}"
            for c in raw.take(pa.array(idx)).to_pylist()
        ]
        return pa.array(whys, pa.string())

    def _observed(self, raw: pa.Array, label: pa.ListArray) -> pa.ListArray:
        """Each row's annotated labels: its ``annotated_column`` cell split at ``label_separator`` (labels outside
        ``dataset.classes`` left out) together with its labels, sorted; null (every label annotated) where the cell
        is empty."""
        n = len(raw)
        parent, values, keep = split_cells(raw, self.ds.label_separator)
        given = np.bincount(parent[keep], minlength=n) > 0
        if self.classes is not None:
            keep &= pc.fill_null(pc.is_in(values, value_set=self.classes), False).to_numpy(zero_copy_only=False)
        pairs = pa.table(
            {
                "row": np.concatenate([parent[keep], pc.list_parent_indices(label).to_numpy()]),
                "label": pa.concat_arrays([values.filter(pa.array(keep)), pc.list_flatten(label)]),
            }
        )
        pairs = pairs.group_by(["row", "label"]).aggregate([]).sort_by([("row", "ascending"), ("label", "ascending")])
        offsets = np.concatenate([[0], np.cumsum(np.bincount(pairs.column("row").to_numpy(), minlength=n))])
        return pa.ListArray.from_arrays(
            pa.array(offsets.astype(np.int32)), pairs.column("label").combine_chunks(), mask=pa.array(~given)
        )

    def __call__(self, start: int, batch: pa.RecordBatch, first: np.ndarray) -> pa.RecordBatch | None:
        """The usable rows of ``batch`` (rows ``start`` on), the others reported; ``first``: the row whose id each
        repeats (-1: none), as :func:`~repeval.datasets.catalog.later_duplicates` found it."""
        ds = self.ds
        n = batch.num_rows
        rows = np.arange(start, start + n, dtype=np.int64)
        ids = pc.utf8_trim_whitespace(batch.column(ds.track_id_column))
        ok = pc.fill_null(pc.not_equal(ids, ""), False).to_numpy(zero_copy_only=False).copy()
        blank = _blank_rows(batch, ~ok)
        if blank.any():
            self.blank_rows += int(blank.sum())
            self.first_blank = int(rows[blank][0]) if self.first_blank is None else self.first_blank
        shown = pc.replace_substring_regex(ids.fill_null(""), "^$", "''")  # not None
        self._bad("other", shown, rows, ~ok & ~blank, "empty track id")
        duplicate = ok & (first >= 0)
        ok &= ~duplicate

        raw = batch.column(self.label_col)
        if self.task_type == "regression":
            self.comma_groups.add(raw, start, comma_grouped(batch.schema.field(self.label_col), self.ds))
        if self.task_type in ("multilabel_classification", "regression"):
            label = self._list_labels(raw, ids, rows, ok, batch.schema.field(self.label_col))
        else:
            single = self._single_labels(raw, ids, rows, ok)
            label = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), single.fill_null(""))

        paths = pc.utf8_trim_whitespace(batch.column(ds.audio_column))
        no_path = ~pc.fill_null(pc.not_equal(paths, ""), False).to_numpy(zero_copy_only=False)
        self._missing(ids, rows, ok & no_path, None)
        ok &= ~no_path
        if unread := self.audio.unread(paths.filter(pa.array(ok)), AUDIO_SCHEME_FIX):  # each decode would fail
            at, why = unread
            row = int(rows[np.flatnonzero(ok)[at]])
            raise ValueError(f"catalog {ds.manifest}: {_rowref(self.fmt, row)}'s audio path {why}")
        full, above = self.audio.resolve(paths)
        if (above := above & ok).any():  # '../../x.wav' under s3://b/audio: another bucket's file, never read
            whys = [self.audio.above_why(p) if a else "" for p, a in zip(paths.to_pylist(), above, strict=True)]
            self._bad("other", ids, rows, above, pa.array(whys, pa.string()))
            ok &= ~above

        split = pa.nulls(n, pa.string())
        if ds.split_column:
            raw_split = pc.utf8_lower(pc.utf8_trim_whitespace(batch.column(ds.split_column)))
            pos = pc.index_in(raw_split, value_set=pa.array(list(SPLIT_ALIASES), pa.string()))
            split = pa.array(list(SPLIT_ALIASES.values()), pa.string()).take(pos)
            given = pc.fill_null(pc.not_equal(raw_split, ""), False).to_numpy(zero_copy_only=False)
            unknown = given & ~pc.is_valid(split).to_numpy(zero_copy_only=False) & ok
            if unknown.any():  # each distinct unknown name's reason made once, then taken for its rows
                cells = batch.column(ds.split_column)
                names = pc.unique(cells.filter(pa.array(unknown)))
                whys = pa.array([unknown_split(v) for v in names.to_pylist()], pa.string())
                self._bad("other", ids, rows, unknown, whys.take(pc.index_in(cells, value_set=names)))
            ok &= ~unknown
        group = pc.utf8_trim_whitespace(batch.column(ds.group_column)) if ds.group_column else pa.nulls(n, pa.string())

        full, gone = self.audio.existing(full, ok)
        self._missing(ids, rows, gone, full)
        ok &= ~gone
        self._duplicates(ids, rows, duplicate, first, ok)
        if not ok.any():
            return None
        keep = pa.array(ok)
        if self.task_type == "regression":
            self.target_counts.add(rows[ok], ids.filter(keep), label.filter(keep))
        columns = [ids, full, label, split, group]
        if self.annotated_col:
            columns.append(self._observed(batch.column(self.annotated_col), label))
        return pa.RecordBatch.from_arrays([c.filter(keep) for c in columns], schema=self.schema)


def _blank_rows(batch: pa.RecordBatch, among: np.ndarray) -> np.ndarray:
    """Of the rows of ``batch`` in ``among`` (those without a track id: usually none), those whose every cell is empty
    (null, or only whitespace)."""
    blank = among.copy()
    if not blank.any():
        return blank
    idx = np.flatnonzero(blank)
    for column in batch.columns:
        cells = column.take(pa.array(idx))
        cells = pc.utf8_trim_whitespace(list_text(cells) if pa.types.is_list(cells.type) else cells)
        blank[idx] &= ~pc.fill_null(pc.not_equal(cells, ""), False).to_numpy(zero_copy_only=False)
    return blank


def column_decimal(field: pa.Field | None, decimal: str) -> str:
    """The decimal mark of a regression label column read from ``field``: ``.`` for a Parquet column of numbers
    (:func:`~repeval.datasets.manifest.numeric_type`, written with a point whatever ``decimal`` says), else
    ``decimal``."""
    return "." if field is not None and numeric_type(field) is not None else decimal


def comma_grouped(field: pa.Field, ds: Any) -> bool:
    """Whether a regression label column read from ``field`` may hold numbers such as ``1,234`` split into several
    targets (:class:`~repeval.datasets.target_text.CommaGroups`): a text column (not a Parquet list or one of numbers)
    split at ``label_separator`` ``,`` with a decimal point."""
    return (
        target_separator(ds) == ","
        and column_decimal(field, getattr(ds, "decimal", ".")) == "."
        and (not pa.types.is_list(field.type))
    )


def masked_column(ds: Any, task: Any) -> str | None:
    """The manifest column of each track's annotated labels when the loader reads it: ``annotated_column`` of a
    multilabel task with ``unannotated: mask`` (with ``absent`` every unannotated pair counts as absent)."""
    if not ds.annotated_column or getattr(ds, "unannotated", "mask") != "mask":
        return None
    return ds.annotated_column if task.effective_type == "multilabel_classification" else None
