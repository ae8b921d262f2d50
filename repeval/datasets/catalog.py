"""The generic ``catalog`` dataset: a CSV or Parquet manifest, local or any pyarrow filesystem URI.

Columns: a track id, an audio path (relative to the manifest's folder, or ``dir`` when given,
or absolute / a URI), one label column (multi-label and regression cells separated by
``label_separator``) and optionally a split and a group column. A multilabel data set that annotates
only some labels per track names the annotated ones in ``annotated_column`` (cells separated by
``label_separator``; a track's labels count as annotated whether listed there or not, an empty cell
annotates every label): with ``unannotated: mask`` the rows carry them in the
:data:`~repeval.datasets.base.OBSERVED` column, as OpenMIC-2018's do.

The manifest is read lazily, in record batches (CSV streaming reader; Parquet row groups or a
``pyarrow.dataset`` directory), reading only the needed columns as strings. Each batch is
validated with Arrow compute kernels and only its usable rows are kept, as Arrow arrays: no
Python object per row is ever built. Memory does not grow with the row count: duplicate ids are
found partition by partition of a hash-partitioned spill of the id column, and past
:data:`~repeval.datasets.spill.PARTITION_ROWS` usable rows the rows table is written to an Arrow
IPC spill file and memory-mapped (``$REPEVAL_SPILL_DIR``, default the temp directory). Problems are reported with row numbers — CSV ``row N`` counts like a
spreadsheet (the header is row 1, so row N is line N of the file unless a quoted cell spans
lines) and Parquet ``row N`` is the 0-based row index:

- duplicate track ids (the first row of an id wins; found in a first pass over the id column),
  missing or empty audio paths, audio files
  that do not exist (skip the check with ``check_files: false``, e.g. for object stores),
- missing labels, labels outside ``dataset.classes`` (dropped from multilabel rows; the row is
  dropped for single-label tasks), invalid keys for key estimation (keys are normalised to
  sharps, ``Db major`` → ``C# major``), non-numeric regression targets, unknown split names.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.datasets import missing
from repeval.datasets.base import SPLITS, DatasetInfo, LabelInfo, LoadReport, register_dataset
from repeval.datasets.encoding import normalize_key
from repeval.datasets.rows import key_classes, row_schema
from repeval.datasets.spill import Partitions, TableSpool, hash64, n_partitions, partition_of

log = logging.getLogger(__name__)

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

#: rows per record batch when streaming a Parquet manifest (CSV batches are blocks of CSV_BLOCK_BYTES)
BATCH_ROWS = 65_536
#: bytes per block of a CSV manifest (the CSV reader's read-ahead holds up to 32 of them)
CSV_BLOCK_BYTES = 1 << 20
_NUMBER_RE = r"^\s*(?:[^=:\s]+\s*[=:]\s*)?[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?\s*$"

INFO = DatasetInfo(
    name="catalog",
    kind="catalog",
    labels=(LabelInfo("<label_column>", "any", "any column of the manifest", "split column, else stratified"),),
    description="CSV/Parquet manifest (local path or pyarrow filesystem URI), read lazily in batches",
)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _is_parquet(path: str) -> bool:
    return path.endswith((".parquet", ".pq", ".parq"))


def read_manifest(uri: str) -> pa.Table:
    """Read a whole manifest into memory (small manifests, tools). Loaders use :func:`iter_manifest`."""
    return pa.Table.from_batches(list(iter_manifest(uri)))


def manifest_columns(uri: str) -> list[str]:
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"catalog manifest not found: {uri} — check dataset.manifest")
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        return list(pads.dataset(path, filesystem=fs, format="parquet").schema.names)
    with fs.open_input_stream(path) as fh:
        reader = pacsv.open_csv(fh, read_options=pacsv.ReadOptions(block_size=1 << 16))
        return list(reader.schema.names)


def manifest_problems(ds: Any, task: Any) -> list[str]:
    """What ``load_catalog`` would refuse, from the manifest's header and first rows only: columns the dataset names
    that the manifest lacks (with the closest column), and a manifest without rows."""
    from repeval.registry import closest

    have = manifest_columns(ds.manifest)
    wanted = {
        "track_id_column": ds.track_id_column,
        "audio_column": ds.audio_column,
        "label_column": ds.label_column or task.label or task.name,
        "split_column": ds.split_column,
        "group_column": ds.group_column,
        "annotated_column": ds.annotated_column,
    }
    out = []
    for key, col in wanted.items():
        if col and col not in have:
            hint = closest(col, have)
            out.append(
                f"{key}: the manifest has no column {col!r}"
                + (f" — did you mean {hint!r}?" if hint else "")
                + f" (its columns: {', '.join(have)})"
            )
    if not out:
        with contextlib.closing(iter_manifest(ds.manifest, [ds.track_id_column], batch_rows=1)) as rows:
            if next(rows, None) is None:
                out.append(f"manifest: {ds.manifest} has a header but no rows — write its rows first")
    return out


def iter_manifest(
    uri: str, columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
) -> Generator[tuple[int, pa.RecordBatch], None, None]:
    """Yield ``(first row index, batch)`` of the manifest, reading ``columns`` as strings."""
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"catalog manifest not found: {uri} — check dataset.manifest")
    start = 0
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        dataset = pads.dataset(path, filesystem=fs, format="parquet")
        cols = columns or list(dataset.schema.names)
        # file by file, batch by batch, nothing read ahead and no row group buffered whole: the dataset scanner
        # read 16 batches and 4 files ahead (peak anonymous memory grew with the manifest: +401 MB at 4,000,000
        # rows) and, even without read-ahead, decoded a row group at a time (+254 MB for pyarrow's default
        # 1 Mi-row groups; this reader: +76 MB)
        for file in dataset.files:
            with fs.open_input_file(file) as fh:
                pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
                for batch in pf.iter_batches(batch_size=batch_rows, columns=cols, use_threads=False):
                    if batch.num_rows == 0:
                        continue
                    batch = pa.RecordBatch.from_arrays(
                        [pc.cast(batch.column(i), pa.string()) for i in range(batch.num_columns)],
                        names=batch.schema.names,
                    )
                    yield start, batch
                    start += batch.num_rows
        return
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in columns or []},
        strings_can_be_null=True,
        **({"include_columns": columns} if columns else {}),
    )
    # pyarrow's streaming CSV reader reads up to 32 blocks ahead of the consumer on its I/O thread, whatever
    # the source (measured on pyarrow 26: ~200 MB beyond the Arrow heap with 8 MiB blocks, ~58 MB with 1 MiB
    # ones): blocks of CSV_BLOCK_BYTES keep that bound small; batches are then ~CSV_BLOCK_BYTES / row bytes
    read = pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)
    with fs.open_input_stream(path) as fh:
        reader = pacsv.open_csv(fh, read_options=read, convert_options=convert)
        for batch in reader:
            if batch.num_rows:
                yield start, batch
                start += batch.num_rows


def _base_dir(manifest: str, dir_: str | None) -> str:
    if dir_:
        return dir_
    return posixpath.dirname(manifest) if "://" in manifest else str(Path(manifest).resolve().parent)


class _FileChecker:
    """Existence checks for audio paths: ``os.path.isfile`` locally, batched ``get_file_info`` remotely."""

    #: schemes whose pyarrow paths are ``bucket/key`` (the URI's netloc is part of the path)
    _BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "az"})

    def __init__(self) -> None:
        self._filesystems: dict[tuple[str, str], pafs.FileSystem] = {}

    def exists(self, paths: list[str]) -> list[bool]:
        out = [False] * len(paths)
        remote: dict[tuple[str, str], list[tuple[int, str]]] = {}
        for i, p in enumerate(paths):
            if "://" not in p:
                out[i] = os.path.isfile(p)
                continue
            u = urlsplit(p)
            fs_path = f"{u.netloc}{u.path}" if u.scheme in self._BUCKET_SCHEMES else u.path
            remote.setdefault((u.scheme, u.netloc), []).append((i, fs_path))
        for key, items in remote.items():
            fs = self._filesystems.get(key)
            if fs is None:  # one filesystem per scheme and host, created once
                fs, _ = pafs.FileSystem.from_uri(paths[items[0][0]])
                self._filesystems[key] = fs
            infos = fs.get_file_info([fs_path for _, fs_path in items])
            for (i, _), info in zip(items, infos, strict=True):
                out[i] = info.type == pafs.FileType.File
        return out


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
        self.base = _base_dir(ds.manifest, ds.dir)
        self.check_files = bool(getattr(ds, "check_files", True))
        classes = key_classes(self.task_type, getattr(ds, "classes", None))
        self.classes = pa.array(sorted(classes), pa.string()) if classes else None
        self.files = _FileChecker()
        self._keys: dict[str, str | None] = {}
        #: the column of each track's annotated labels, read with ``unannotated: mask`` (:func:`masked_column`)
        self.annotated_col = masked_column(ds, task)
        self.schema = row_schema(self.annotated_col is not None)

    def _bad(self, kind: str, ids: pa.Array, rows: np.ndarray, mask: np.ndarray, why: Any) -> None:
        """Report rows in ``mask``; ``why`` is a message or a per-row array of messages."""
        idx = np.flatnonzero(mask)
        if not len(idx):
            return
        id_list = ids.take(pa.array(idx)).to_pylist()
        whys = why.take(pa.array(idx)).to_pylist() if isinstance(why, pa.Array) else [why] * len(idx)
        for tid, r, w in zip(id_list, rows[idx], whys, strict=True):
            self.report.add(kind, f"{tid} ({_rowref(self.fmt, int(r))}{': ' + w if w else ''})")

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

    def _single_labels(self, raw: pa.Array, ids: pa.Array, rows: np.ndarray, ok: np.ndarray) -> pa.Array:
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

    def _list_labels(self, raw: pa.Array, ids: pa.Array, rows: np.ndarray, ok: np.ndarray) -> pa.Array:
        n = len(raw)
        parts = pc.split_pattern(raw.fill_null(""), self.ds.label_separator)
        parent = pc.list_parent_indices(parts).to_numpy()
        values = pc.utf8_trim_whitespace(pc.list_flatten(parts))
        keep = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
        if self.task_type == "regression":
            numeric = pc.match_substring_regex(values, _NUMBER_RE).to_numpy(zero_copy_only=False)
            bad_rows = np.zeros(n, dtype=bool)
            bad_rows[parent[keep & ~numeric]] = True
            self._bad("unknown_labels", ids, rows, ok & bad_rows, f"non-numeric regression target in {self.label_col}")
            ok &= ~bad_rows
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

    def _observed(self, raw: pa.Array, label: pa.ListArray) -> pa.ListArray:
        """Each row's annotated labels: its ``annotated_column`` cell split at ``label_separator`` (labels outside
        ``dataset.classes`` left out) together with its labels, sorted; null (every label annotated) where the cell
        is empty."""
        n = len(raw)
        parts = pc.split_pattern(raw.fill_null(""), self.ds.label_separator)
        parent = pc.list_parent_indices(parts).to_numpy()
        values = pc.utf8_trim_whitespace(pc.list_flatten(parts))
        keep = pc.not_equal(values, "").to_numpy(zero_copy_only=False)
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

    def __call__(self, start: int, batch: pa.RecordBatch, duplicate: np.ndarray) -> pa.RecordBatch | None:
        ds = self.ds
        n = batch.num_rows
        rows = np.arange(start, start + n, dtype=np.int64)
        ids = pc.utf8_trim_whitespace(batch.column(ds.track_id_column))
        ok = pc.fill_null(pc.not_equal(ids, ""), False).to_numpy(zero_copy_only=False).copy()
        self._bad("other", ids, rows, ~ok, "empty track id")
        self._bad("duplicate_ids", ids, rows, ok & duplicate, "")
        ok &= ~duplicate

        raw = batch.column(self.label_col)
        if self.task_type in ("multilabel_classification", "regression"):
            label = self._list_labels(raw, ids, rows, ok)
        else:
            single = self._single_labels(raw, ids, rows, ok)
            label = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), single.fill_null(""))

        paths = pc.utf8_trim_whitespace(batch.column(ds.audio_column))
        no_path = ~pc.fill_null(pc.not_equal(paths, ""), False).to_numpy(zero_copy_only=False)
        self._missing(ids, rows, ok & no_path, None)
        ok &= ~no_path
        paths = paths.fill_null("")
        absolute = pc.or_(pc.starts_with(paths, "/"), pc.match_substring(paths, "://"))
        base = self.base.rstrip("/")
        full = pc.if_else(absolute, paths, pc.binary_join_element_wise(base, paths, "/"))

        split = pa.nulls(n, pa.string())
        if ds.split_column:
            raw_split = pc.utf8_lower(pc.utf8_trim_whitespace(batch.column(ds.split_column)))
            pos = pc.index_in(raw_split, value_set=pa.array(list(SPLIT_ALIASES), pa.string()))
            split = pa.array(list(SPLIT_ALIASES.values()), pa.string()).take(pos)
            given = pc.fill_null(pc.not_equal(raw_split, ""), False).to_numpy(zero_copy_only=False)
            unknown = given & ~pc.is_valid(split).to_numpy(zero_copy_only=False) & ok
            why = pc.binary_join_element_wise(
                "unknown split '", batch.column(ds.split_column), f"', expected {SPLITS}", ""
            )
            self._bad("other", ids, rows, unknown, why)
            ok &= ~unknown
        group = pc.utf8_trim_whitespace(batch.column(ds.group_column)) if ds.group_column else pa.nulls(n, pa.string())

        if self.check_files and ok.any():
            candidates = full.filter(pa.array(ok))
            uniq = pc.unique(candidates)
            exists = self.files.exists(uniq.to_pylist())
            missing = [p for p, e in zip(uniq.to_pylist(), exists, strict=True) if not e]
            if missing:
                gone = pc.fill_null(pc.is_in(full, value_set=pa.array(missing, pa.string())), False)
                gone_np = gone.to_numpy(zero_copy_only=False) & ok
                self._missing(ids, rows, gone_np, full)
                ok &= ~gone_np
        if not ok.any():
            return None
        keep = pa.array(ok)
        columns = [ids, full, label, split, group]
        if self.annotated_col:
            columns.append(self._observed(batch.column(self.annotated_col), label))
        return pa.RecordBatch.from_arrays([c.filter(keep) for c in columns], schema=self.schema)


def masked_column(ds: Any, task: Any) -> str | None:
    """The manifest column of each track's annotated labels when the loader reads it: ``annotated_column`` of a
    multilabel task with ``unannotated: mask`` (with ``absent`` every unannotated pair counts as absent)."""
    if not ds.annotated_column or getattr(ds, "unannotated", "mask") != "mask":
        return None
    return ds.annotated_column if task.effective_type == "multilabel_classification" else None


def estimate_rows(uri: str) -> int:
    """About how many rows a manifest has, without reading it: Parquet metadata, or a CSV's size
    over the mean line length of its first MiB. Sizes the spill partitions of a plan."""
    fs, path = _filesystem(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory or _is_parquet(path):
        return int(pads.dataset(path, filesystem=fs, format="parquet").count_rows())
    with fs.open_input_stream(path) as fh:
        head = fh.read(1 << 20)
    lines = max(head.count(b"\n"), 1)
    return int((info.size or len(head)) / (len(head) / lines)) + 1


_ID_ROWS = pa.schema([("row", pa.int64()), ("id", pa.string())])


def later_duplicates(uri: str, id_column: str) -> np.ndarray:
    """First pass over the id column only: the sorted row numbers of rows whose id appeared on an
    earlier row.

    The first occurrence of an id wins whatever happens to it later (a row that repeats an id is
    ambiguous, so it is reported as a duplicate and never silently replaces the first one).
    Bounded memory: (row, id) pairs are hash-partitioned by id over spill files
    (:class:`~repeval.datasets.spill.Partitions`; in memory for small manifests) and each
    partition is checked alone with a stable sort of its ids; only the duplicates' row numbers
    are kept.
    """
    found: list[np.ndarray] = []
    with Partitions(n_partitions(estimate_rows(uri)), _ID_ROWS) as parts:
        for start, b in iter_manifest(uri, [id_column]):
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
            found.append(t.column("row").to_numpy()[order[1:][same]])
    return np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


def _duplicate_mask(duplicates: np.ndarray, start: int, n: int) -> np.ndarray:
    """Mask of the rows ``start .. start + n - 1`` that are in the sorted ``duplicates``."""
    mask = np.zeros(n, dtype=bool)
    lo, hi = np.searchsorted(duplicates, [start, start + n])
    mask[duplicates[lo:hi] - start] = True
    return mask


@register_dataset("catalog", info=INFO)
def load_catalog(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    if not ds.manifest:
        raise ValueError("a 'catalog' dataset needs 'manifest' (a CSV or Parquet file)")
    label_col = ds.label_column or task.label or task.name
    optional = (ds.split_column, ds.group_column, ds.annotated_column)
    needed = [ds.track_id_column, ds.audio_column, label_col] + [c for c in optional if c]
    needed = list(dict.fromkeys(needed))
    have = manifest_columns(ds.manifest)
    missing_cols = [c for c in needed if c not in have]
    if missing_cols:
        raise ValueError(
            f"catalog manifest {ds.manifest} has no column(s) {missing_cols}; it has {have} "
            f"— set dataset.label_column / track_id_column / audio_column / split_column / group_column / "
            "annotated_column"
        )
    fs, path = _filesystem(ds.manifest)
    fmt = "parquet" if _is_parquet(path) or fs.get_file_info(path).type == pafs.FileType.Directory else "csv"
    report = LoadReport()
    duplicates = later_duplicates(ds.manifest, ds.track_id_column)
    validate = _BatchValidator(ds, task, label_col, fmt, report)
    spool = TableSpool(validate.schema)  # past PARTITION_ROWS rows: an Arrow IPC spill file, memory-mapped
    n_read = 0
    for start, batch in iter_manifest(ds.manifest, needed):
        n_read += batch.num_rows
        out = validate(start, batch, _duplicate_mask(duplicates, start, batch.num_rows))
        if out is not None:
            spool.write(out)
    table = spool.table()
    pa.default_memory_pool().release_unused()  # hand the batches' scratch memory back to the OS
    if table.num_rows == 0:
        why = f" ({'; '.join(report.lines())})" if report.lines() else ""
        raise ValueError(f"catalog {ds.manifest}: no usable rows among {n_read}{why}")
    log.info("catalog %s: %d of %d rows usable", ds.manifest, table.num_rows, n_read)
    return table, report
