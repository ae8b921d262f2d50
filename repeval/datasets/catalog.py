"""The generic ``catalog`` dataset: a CSV or Parquet manifest, local or any pyarrow filesystem URI.

Columns: a track id, an audio path (relative to the manifest's folder, or ``dir`` when given,
or absolute / a URI), one label column (multi-label cells separated by ``label_separator``)
and optionally a split and a group column.
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from repeval.datasets.base import SPLITS, LoadReport, register_dataset, rows_table

log = logging.getLogger(__name__)

SPLIT_ALIASES = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                 "validation": "validation", "dev": "validation", "test": "test", "testing": "test"}


def read_manifest(uri: str) -> pa.Table:
    fs, path = pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"catalog manifest not found: {uri} — check dataset.manifest")
    if path.endswith((".parquet", ".pq")):
        return pq.read_table(path, filesystem=fs)
    with fs.open_input_stream(path) as fh:
        return pacsv.read_csv(fh, convert_options=pacsv.ConvertOptions(strings_can_be_null=True,
                                                                       column_types={}))


def _base_dir(manifest: str, dir_: str | None) -> str:
    if dir_:
        return dir_
    return posixpath.dirname(manifest) if "://" in manifest else str(__import__("pathlib").Path(manifest).resolve().parent)


def _exists(path: str) -> bool:
    if "://" in path:
        fs, p = pafs.FileSystem.from_uri(path)
        return fs.get_file_info(p).type == pafs.FileType.File
    import os

    return os.path.isfile(path)


@register_dataset("catalog")
def load_catalog(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    table = read_manifest(ds.manifest)
    label_col = ds.label_column or task.label or task.name
    needed = [ds.track_id_column, ds.audio_column, label_col] + [c for c in (ds.split_column, ds.group_column) if c]
    missing_cols = [c for c in needed if c not in table.column_names]
    if missing_cols:
        raise ValueError(
            f"catalog manifest {ds.manifest} has no column(s) {missing_cols}; it has {table.column_names} "
            f"— set dataset.label_column / track_id_column / audio_column"
        )
    report = LoadReport()
    base = _base_dir(ds.manifest, ds.dir)
    ids = [str(x) for x in pc.cast(table.column(ds.track_id_column), pa.string()).to_pylist()]
    paths = pc.cast(table.column(ds.audio_column), pa.string()).to_pylist()
    labels = pc.cast(table.column(label_col), pa.string()).to_pylist()
    splits = pc.cast(table.column(ds.split_column), pa.string()).to_pylist() if ds.split_column else [None] * len(ids)
    groups = pc.cast(table.column(ds.group_column), pa.string()).to_pylist() if ds.group_column else [None] * len(ids)
    multilabel = task.effective_type == "multilabel_classification"
    seen: set[str] = set()
    rows = []
    for i, (tid, p, lab, sp, gr) in enumerate(zip(ids, paths, labels, splits, groups, strict=True)):
        row_no = i + 2  # header is line 1
        if tid in seen:
            report.duplicate_ids.append(f"{tid} (row {row_no})")
            continue
        seen.add(tid)
        if lab is None or lab.strip() == "":
            if not multilabel:
                report.unlabelled.append(f"{tid} (row {row_no})")
                continue
            label_list: list[str] = []
        else:
            label_list = [x.strip() for x in lab.split(ds.label_separator)] if multilabel else [lab.strip()]
        if p is None:
            report.missing_audio.append(f"{tid} (row {row_no}: empty path)")
            continue
        full = p if ("://" in p or p.startswith("/")) else posixpath.join(base, p)
        if not _exists(full):
            report.missing_audio.append(f"{tid} (row {row_no}: {full})")
            continue
        split = None
        if sp is not None and sp.strip():
            split = SPLIT_ALIASES.get(sp.strip().lower())
            if split is None:
                report.other.append(f"{tid} (row {row_no}): unknown split '{sp}', expected one of {SPLITS}")
                continue
        rows.append({"track_id": tid, "audio_path": full, "label": label_list, "split": split, "group": gr})
    if not rows:
        raise ValueError(f"catalog {ds.manifest}: no usable rows (" + "; ".join(report.lines()) + ")")
    return rows_table(rows), report
