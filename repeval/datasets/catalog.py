"""The generic ``catalog`` dataset: a CSV (tab-separated when named ``.tsv``/``.tab``; another separator, such as a
spreadsheet export's ``;``, set as ``delimiter``) or Parquet manifest, local or any pyarrow filesystem URI (one written
as JSON, a spreadsheet workbook — ``.xlsx``, ``.xls``, ``.ods`` — or text in another encoding than UTF-8 — a UTF-16
export, a Windows-1252 row — is refused, naming its conversion). A CSV may start with a byte-order mark, end its
lines with CRLF, and quote cells that hold line breaks (a title, a tag list over two lines: read whole); blank lines
and rows of empty cells (a spreadsheet's ``;;`` after its last row) are skipped with a note.

Columns, each named by a key of the dataset: a track id (``track_id_column``, default ``track_id``), an audio path
(``audio_column``, default ``audio_path``; relative to the manifest's folder, or ``dir`` when given — its ``..`` steps
resolved where the system finds the same file (not through a symlinked folder), a manifest or ``dir`` URI's query
passed on, a row climbing out of its bucket left out — or absolute / a URI, its ``..`` steps resolved alike; a file whose name is written in the other Unicode
normalization — NFC in the manifest, NFD as macOS writes names, or the reverse — is read with a note; missing files
found under other letter case, relative to the current directory or with ``/`` for a Windows ``\\`` are noted with the
fix), one label column (``label_column``, default the task's ``label``, else its ``name``; labels written in several
cases or Unicode normalizations, ``Rock`` and ``rock``, noted; multi-label and regression cells separated by
``label_separator``, default ``,``; regression targets written with ``decimal`` as their decimal mark,
``.`` or ``,`` — with ``decimal: ','``, ``0,31`` (quoted between commas: ``"0,31"``) is kept as ``0.31``
and a cell is one target unless ``label_separator`` is another character; a Parquet column of numbers is read as it
is, and a number with a thousands separator, ``1.234,5``, is refused, as is ``1.234`` with ``decimal: ','`` — 1234
with a thousands separator or 1.234 with a decimal point — naming both, and a column whose every target cell is
``1,234`` with ``decimal: '.'`` (or that and whole numbers below 1,000, ``523``, or that in most cells and
one number in the others, ``5.5``) — also the targets 1 and 234 — naming
the three, and one beyond a 64-bit float (``1e999``); the minus sign U+2212 is read as ``-``, other
typographic characters — a dash, full-width digits — are refused naming the cell in ASCII) and optionally a split
column (``split_column``: ``train``, ``validation`` or ``val``/``valid``/``dev``, ``test``, in any case; its empty
cells, or every track
without it, get a seeded split by ``split_ratios``, default 0.8/0.1/0.1, stratified by label, a regression target's
plain) and a group column (``group_column``: an artist or album kept within one split). Other columns are ignored. A
Parquet label column may hold a list per row (``list<string>``, a pandas column of lists; ``large_list``,
``large_string`` and dictionary-encoded items too), split at nothing: a multilabel task's tags as they are (a null or
empty list: no tags, as an empty cell), a single-label task's one label (a list of several stops the load), a regression
task's targets (``list<double>``); the track id, audio, split and group columns are refused as lists. A
multilabel data set that annotates only some labels per track names the annotated ones in ``annotated_column``
(cells separated by ``label_separator``; a track's labels count as annotated whether listed there or not, an empty
cell annotates every label): with ``unannotated: mask`` the rows carry them in the
:data:`~repeval.datasets.base.OBSERVED` column, as OpenMIC-2018's do.

The manifest is read lazily, in record batches (CSV streaming reader; Parquet row groups or a
``pyarrow.dataset`` directory), reading only the needed columns as strings. Each batch is
validated with Arrow compute kernels and only its usable rows are kept, as Arrow arrays: no
Python object per row is ever built. Memory does not grow with the row count: duplicate ids are
found partition by partition of a hash-partitioned spill of the id column, and past
:data:`~repeval.datasets.spill.PARTITION_ROWS` usable rows the rows table is written to an Arrow
IPC spill file and memory-mapped (``$REPEVAL_SPILL_DIR``, default the temp directory). Problems are reported with row numbers — CSV ``row N`` counts like a
spreadsheet (the header is row 1, a blank line is a row, so row N is line N of the file unless a quoted cell spans
lines: then one row per record, as a spreadsheet shows it) and Parquet ``row N`` is the 0-based row index:

- duplicate track ids (the first row of an id wins; found in a first pass over the id column),
  missing or empty audio paths, audio files
  that do not exist (skip the check with ``check_files: false``, e.g. for object stores),
- missing labels, labels outside ``dataset.classes`` (dropped from multilabel rows; the row is
  dropped for single-label tasks), invalid keys for key estimation (keys are normalised to
  sharps, ``Db major`` → ``C# major``), non-numeric regression targets (and ones with a thousands separator; and
  a row with another number of targets than most rows have), unknown split names; a CSV row with
  another number of cells than the header stops the load, named with its fix
  (:class:`~repeval.datasets.manifest.ManifestRowError`).

The manifest is read by :mod:`repeval.datasets.manifest` and its batches validated by
:mod:`repeval.datasets.manifest_rows` (its audio paths by :mod:`repeval.datasets.audio_paths`); this module finds the duplicate ids and assembles the rows.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from repeval.datasets import missing
from repeval.datasets.audio_paths import _base_dir
from repeval.datasets.base import DatasetInfo, LabelInfo, LoadReport, register_dataset
from repeval.datasets.manifest import BATCH_ROWS as BATCH_ROWS
from repeval.datasets.manifest import CSV_BLOCK_BYTES as CSV_BLOCK_BYTES
from repeval.datasets.manifest import _filesystem as _filesystem
from repeval.datasets.manifest import _is_parquet as _is_parquet
from repeval.datasets.manifest import estimate_rows as estimate_rows
from repeval.datasets.manifest import iter_manifest as iter_manifest
from repeval.datasets.manifest import manifest_columns as manifest_columns
from repeval.datasets.manifest import manifest_format, one_value_problem
from repeval.datasets.manifest import read_manifest as read_manifest
from repeval.datasets.manifest_check import (
    RUN_FIX,
    column_problems,
    label_fix,
    matched_columns,
    one_column_problem,
    reach_problem,
    read_columns,
)
from repeval.datasets.manifest_check import manifest_problems as manifest_problems
from repeval.datasets.manifest_rows import COMMA_FIX, _rowref, target_separator
from repeval.datasets.manifest_rows import SPLIT_ALIASES as SPLIT_ALIASES
from repeval.datasets.manifest_rows import _BatchValidator as _BatchValidator
from repeval.datasets.manifest_rows import masked_column as masked_column
from repeval.datasets.spill import Partitions, TableSpool, hash64, n_partitions, partition_of
from repeval.datasets.target_text import COMMA_GROUPED, TargetCounts
from repeval.words import counted

log = logging.getLogger(__name__)

INFO = DatasetInfo(
    name="catalog",
    kind="catalog",
    labels=(LabelInfo("<label_column>", "any", "any column of the manifest", "split column, else stratified"),),
    description="CSV/Parquet manifest (local path or pyarrow filesystem URI), read lazily in batches",
)


_ID_ROWS = pa.schema([("row", pa.int64()), ("id", pa.string())])


def later_duplicates(uri: str, id_column: str, delimiter: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """First pass over the id column only: the sorted row numbers of rows whose id appeared on an
    earlier row, and for each the row of that id's first occurrence (which the report names).

    The first occurrence of an id wins whatever happens to it later (a row that repeats an id is
    ambiguous, so it is reported as a duplicate and never silently replaces the first one).
    Bounded memory: (row, id) pairs are hash-partitioned by id over spill files
    (:class:`~repeval.datasets.spill.Partitions`; in memory for small manifests) and each
    partition is checked alone with a stable sort of its ids; only the duplicates' row numbers
    (and their first rows') are kept.
    """
    found: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    with Partitions(n_partitions(estimate_rows(uri)), _ID_ROWS) as parts:
        for start, b in iter_manifest(uri, [id_column], delimiter=delimiter):
            ids = pc.utf8_trim_whitespace(b.column(0))
            valid = pc.fill_null(pc.not_equal(ids, ""), False)
            rows = pa.array(np.arange(start, start + b.num_rows, dtype=np.int64)).filter(valid)
            ids = ids.filter(valid)
            batch = pa.record_batch([rows, ids], schema=_ID_ROWS)
            parts.add(batch, partition_of(hash64(ids), parts.k))
        for t in parts:
            n = t.num_rows
            if n < 2:
                continue
            ids = t.column("id").combine_chunks()
            order = pc.sort_indices(ids).to_numpy()  # stable: equal ids stay in row order
            sorted_ids = ids.take(pa.array(order))
            same = pc.equal(sorted_ids.slice(1), sorted_ids.slice(0, n - 1)).to_numpy(zero_copy_only=False)
            if not same.any():
                continue
            # each sorted position's first of its id: the last position before it that starts a new id
            starts = np.concatenate([[True], ~same])
            run_start = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
            rows = t.column("row").to_numpy()
            found.append(rows[order[1:][same]])
            firsts.append(rows[order[run_start[1:][same]]])
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    dups, first = np.concatenate(found), np.concatenate(firsts)
    by_row = np.argsort(dups, kind="stable")
    return dups[by_row], first[by_row]


def _first_rows(duplicates: tuple[np.ndarray, np.ndarray], start: int, n: int) -> np.ndarray:
    """Of the rows ``start .. start + n - 1``, the row whose id each repeats (:func:`later_duplicates`), -1 where it
    repeats none."""
    dups, first = duplicates
    out = np.full(n, -1, dtype=np.int64)
    lo, hi = np.searchsorted(dups, [start, start + n])
    out[dups[lo:hi] - start] = first[lo:hi]
    return out


@register_dataset("catalog", info=INFO)
def load_catalog(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    if not ds.manifest:
        raise ValueError("a 'catalog' dataset needs 'manifest' (a CSV or Parquet file)")
    if "://" in ds.manifest and (unreached := reach_problem(ds.manifest, fix=RUN_FIX)):
        raise ValueError(f"catalog {unreached}")  # gs://: within a minute, not the client's 15 minutes of retries
    have = manifest_columns(ds.manifest, ds.delimiter)
    ds = matched_columns(ds, have, task)  # ' Audio File ' in the header is audio_column 'Audio File'
    label_col = ds.label_column or task.label or task.name
    needed = read_columns(ds, task)
    absent = any(c not in have for c in needed)
    if absent and (one := one_column_problem(ds, have)):
        raise ValueError(f"catalog {one}")
    if absent:  # as repeval validate names them: with the closest header cell
        raise ValueError(f"catalog {ds.manifest}: {'; '.join(column_problems(ds, task, have))}")
    if one := one_value_problem(ds):
        raise ValueError(f"catalog {ds.manifest}: {one}")
    fmt = manifest_format(ds.manifest)
    report = LoadReport()
    duplicates = later_duplicates(ds.manifest, ds.track_id_column, ds.delimiter)
    validate = _BatchValidator(ds, task, label_col, fmt, report)
    validate.first_rows = np.unique(duplicates[1])
    spool = TableSpool(validate.schema)  # past PARTITION_ROWS rows: an Arrow IPC spill file, memory-mapped
    n_read = 0
    for start, batch in iter_manifest(ds.manifest, needed, delimiter=ds.delimiter):
        n_read += batch.num_rows
        out = validate(start, batch, _first_rows(duplicates, start, batch.num_rows))
        if out is not None:
            spool.write(out)
    table = spool.table()
    if why := validate.comma_groups.why(label_col, lambda row: _rowref(fmt, row)):  # every target cell '1,234'
        raise ValueError(f"catalog {ds.manifest}: {why}")
    if getattr(task, "effective_type", None) == "regression" and table.num_rows:
        separator = target_separator(ds) if not validate.list_label else ", "
        table = _same_target_count(table, report, label_col, separator, fmt, validate.target_counts)
    report.notes += [n for n in (validate.blank_note(), validate.audio.normalization_note()) if n]
    pa.default_memory_pool().release_unused()  # hand the batches' scratch memory back to the OS
    if ds.check_files and report.count("missing_audio") and (hint := missing.case_hint(report.missing_rows)):
        report.notes.append(hint)
    if (
        ds.check_files
        and report.count("missing_audio")
        and (hint := missing.relative_hint(report.missing_rows, validate.audio.base))
    ):
        report.notes.append(hint)
    if table.num_rows == 0:
        why = f" ({'; '.join(report.lines())})" if report.lines() else ""
        raise ValueError(
            f"catalog {ds.manifest}: no usable rows among {n_read}{why} — {_no_rows_fix(ds, task, report)}"
        )
    split_at = not validate.list_label  # a Parquet list column's items are the labels: nothing split at a separator
    if (
        split_at
        and getattr(task, "effective_type", None) == "multilabel_classification"
        and (note := _separator_note(table.column("label"), label_col, ds.label_separator))
    ):
        report.notes.append(note)
    if (
        split_at
        and getattr(task, "effective_type", None) == "regression"
        and (note := _decimal_comma_note(table.column("label"), label_col, target_separator(ds)))
    ):
        report.notes.append(note)
    if getattr(task, "effective_type", None) in ("multiclass_classification", "multilabel_classification") and (
        note := _case_note(table.column("label"), label_col)
    ):
        report.notes.append(note)
    if validate.numeric_label is not None:
        # in a folder of Parquet files whose column is numbers in some, text in others, decimal still reads the text
        fix = (
            f"; the files where it is text are read with it (keep decimal {ds.decimal!r})"
            if validate.text_label
            else " — remove decimal"
        )
        report.notes.append(
            f"decimal {ds.decimal!r} has no effect on label_column {label_col!r}: a Parquet column of numbers "
            f"({validate.numeric_label}), read as they are{fix}"
        )
    log.info("catalog %s: %s of %s usable", ds.manifest, f"{table.num_rows:,}", counted(n_read, "row"))
    return table, report


def _no_rows_fix(ds: Any, task: Any, report: LoadReport) -> str:
    """What to correct when a catalog kept no row: the keys behind the kinds of problem its rows had."""
    counts = report.counts()
    fixes = []
    if "missing_audio" in counts:
        fixes.append(
            f"check audio_column {ds.audio_column!r} and where its relative paths start "
            f"({_base_dir(ds.manifest, ds.dir)}: dataset.dir, else the manifest's folder)"
        )
    if {"unlabelled", "unknown_labels"} & set(counts):
        fixes.append(label_fix(ds, task))
    # the other problems a catalog reports of its rows: an empty track id, an unknown split
    if any("empty track id" in item for item in report.other):
        fixes.append(f"write a track id in each row of track_id_column {ds.track_id_column!r}")
    if any("climbs out of bucket" in item for item in report.other):
        fixes.append(f"correct the '..' steps of audio_column {ds.audio_column!r}")
    if any("unknown split" in item for item in report.other):
        fixes.append(f"check split_column {ds.split_column!r}: train, validation or test")
    return " and ".join(fixes) if fixes else "check the manifest's rows"


#: characters a tag list is often joined with, looked for by :func:`_separator_note`
SEPARATORS = (",", ";", "|", "/", "+")
#: of those, the ones tag names hardly hold (``AC/DC``, ``drum+bass`` and a description ``string orchestra, F# minor``
#: do hold ``/``, ``+`` and ``,``): looked for where other cells split at ``label_separator`` too
MIXED = (";", "|")


def _separator_note(labels: pa.ChunkedArray, column: str, separator: str) -> str | None:
    """A note when no multilabel cell was split at ``separator`` (every track has one tag) while tags hold another
    usual separator — ``label_separator`` left at its default ``,`` for ``piano;voice`` cells, which became one tag
    each — naming the one most of them hold and the fix; or, when cells were split, tags that hold a separator no tag
    name holds (:data:`MIXED`: ``jazz; blues`` beside ``rock,pop``, one tag); ``None`` otherwise."""
    split = pc.max(pc.list_value_length(labels)).as_py() != 1
    tags = pc.unique(pc.list_flatten(labels)).to_pylist()
    # where some cells split, only the characters no tag name holds: a manifest joined from several sources
    usual = [sep for sep in (MIXED if split else SEPARATORS) if sep not in separator]
    holding = {sep: [t for t in tags if sep in t] for sep in usual}
    sep, found = max(holding.items(), key=lambda kv: len(kv[1]), default=(None, []))
    if not found:
        return None
    if split:
        seps = [s for s in usual if holding[s]]
        some = sorted({t for s in seps for t in holding[s]})
        which = " or ".join(repr(s) for s in seps)
        return (
            f"{len(some)} of the {len(tags)} tags of {column} {'holds' if len(some) == 1 else 'hold'} {which} (e.g. "
            f"{', '.join(repr(holding[s][0]) for s in seps)}), which label_separator {separator!r} does not split: if "
            f"some cells separate their tags by {which}, write them with {separator!r} (one separator for the whole "
            "column)"
        )
    return (
        f"every track has one tag of {column} split at label_separator {separator!r}, but {len(found)} of its "
        f"{len(tags)} tags {'holds' if len(found) == 1 else 'hold'} {sep!r} (e.g. {found[0]!r}): if {sep!r} separates the tags, set label_separator: "
        f"{sep!r}"
    )


def _case_note(labels: pa.ChunkedArray, column: str) -> str | None:
    """A note when labels differ from one another only in letter case, the spaces between their words or their Unicode
    normalization (``Rock``, ``rock``; ``hip  hop`` beside ``Hip Hop``; ``Café`` composed beside ``Café`` decomposed, as
    a macOS export writes it: a catalog joined from several sources) — read as different classes, the tracks of one
    genre split between them — naming them (a name written in both normalizations with its code points) and the fix;
    ``None`` otherwise."""
    tags = pc.unique(pc.list_flatten(labels))
    if len(tags) < 2:
        return None
    keys = pc.replace_substring_regex(pc.utf8_lower(pc.utf8_normalize(tags, form="NFC")), r"\s+", " ")
    if len(pc.unique(keys)) == len(tags):  # most catalogs: no two alike
        return None
    groups: dict[str, list[str]] = {}
    for key, tag in zip(keys.to_pylist(), tags.to_pylist(), strict=True):
        groups.setdefault(key, []).append(tag)
    alike = [sorted(g) for g in groups.values() if len(g) > 1]

    def shown(group: list[str]) -> str:
        forms = len({unicodedata.normalize("NFC", t) for t in group}) < len(group)  # the same text, other code points
        return ", ".join(
            "'" + t.encode("ascii", "backslashreplace").decode() + "'" if forms else repr(t) for t in group
        )

    n = sum(len(g) for g in alike)
    listed = "; ".join(shown(g) for g in alike[:3]) + (" …" if len(alike) > 3 else "")
    return (
        f"{n} labels of {column} differ only in letter case, spaces or Unicode normalization ({listed}): each is read "
        "as a class of its own, its tracks apart from the others' — if they name one class, write it one way in the "
        f"manifest (e.g. {unicodedata.normalize('NFC', alike[0][-1])!r}; a case that tells classes apart, 'C' major "
        "beside 'c' minor, is read as it is)"
    )


def _decimal_comma_note(targets: pa.ChunkedArray, column: str, separator: str | None) -> str | None:
    """A note when a regression column split at ``separator`` ``,`` gave every track two targets, each a whole number
    before one of digits after — ``0,31`` read as the targets 0 and 31, its comma a decimal mark (a spreadsheet
    exported with ``;`` between columns, ``delimiter: ';'``) — naming the fix (:data:`COMMA_FIX`); ``None``
    otherwise."""
    lengths = pc.list_value_length(targets)
    if separator != "," or len(targets) == 0 or pc.min(lengths).as_py() != 2 or pc.max(lengths).as_py() != 2:
        return None
    values = pc.list_flatten(targets)
    whole, fraction = values.take(np.arange(0, len(values), 2)), values.take(np.arange(1, len(values), 2))
    if not (
        pc.all(pc.match_substring_regex(whole, r"^[-+]?\d+$")).as_py()
        and pc.all(pc.match_substring_regex(fraction, r"^\d+$")).as_py()
    ):
        return None
    cell = ",".join(targets[0].as_py())
    return (
        f"every track has two targets in {column}, split at label_separator ',', each a whole number (e.g. {cell!r}: "
        f"{cell.replace(',', ' and ')}): if ',' is its decimal mark, {COMMA_FIX} — each cell is then one target "
        f"({cell.replace(',', '.')})"
    )


def _same_target_count(
    table: pa.Table, report: LoadReport, column: str, separator: str | None, fmt: str, counts: TargetCounts
) -> pa.Table:
    """``table`` without the regression rows whose number of targets is not the one most rows have, each reported
    (``unknown_labels``, by row and track id, the first :attr:`~repeval.datasets.base.LoadReport.max_items` of them
    named: :class:`~repeval.datasets.target_text.TargetCounts`) — ``"1,234"`` split at ``label_separator`` ``,`` into
    two targets where every other row has one: kept, it stopped the run at its probes, after the embedding, with
    "regression targets have different lengths"."""
    most = counts.most()
    if most is None:
        return table
    total = sum(counts.rows.values())
    named, n_odd = counts.others(most)
    for row, tid, cell in named:
        text = (separator or "").join(cell)
        grouped = separator == "," and re.fullmatch(COMMA_GROUPED, text)
        hint = (
            f"; if {text!r} is one number with a thousands separator, write it {text.replace(',', '')!r} (in a "
            "spreadsheet, a number format without a 1000 separator)"
            if grouped
            else ""
        )
        many = counts.rows[most]
        report.add(
            "unknown_labels",
            f"{tid} ({_rowref(fmt, row)}: {counted(len(cell), 'regression target')} in {column}, "
            f"{text!r}, where {many} of its {total} rows {'has' if many == 1 else 'have'} {most} — every row needs "
            f"as many{hint})",
        )
    if n_odd > len(named):
        report.totals["unknown_labels"] = report.count("unknown_labels") + n_odd - len(named)
    same = pc.equal(pc.list_value_length(table.column("label")), most)
    if report.duplicate_ids:  # a repeated id's first row dropped here: its later rows' lines say so too
        _first_left_out(report, set(table.column("track_id").filter(pc.invert(same)).to_pylist()))
    return table.filter(same)


#: the end of a duplicate id's line (:meth:`~repeval.datasets.manifest_rows._BatchValidator._duplicates`)
_FIRST_READ = " — only an id's first row is read)"


def _first_left_out(report: LoadReport, dropped: set[str]) -> None:
    """The duplicate-id lines of the ids in ``dropped`` (their first row left out after the rows were read: another
    number of regression targets) saying that row was left out itself, with the fix, as the lines of a first row left
    out while reading do."""
    for i, item in enumerate(report.duplicate_ids):
        head, sep, ref = item.rpartition(": repeats the id of ")
        if sep and ref.endswith(_FIRST_READ) and "," not in ref and head.rpartition(" (")[0] in dropped:
            ref = ref.removesuffix(_FIRST_READ)
            report.duplicate_ids[i] = f"{head}{sep}{ref}, itself left out: correct {ref} or delete it{_FIRST_READ}"
