"""Load a configured dataset for a task: loader → splits → capped rows."""

from __future__ import annotations

import logging
from typing import Any

import pyarrow as pa

from repeval.datasets.base import DATASETS, LoadReport
from repeval.datasets.splits import fill_splits

log = logging.getLogger(__name__)


def loader_name(ds: Any) -> str:
    """catalog datasets use the ``catalog`` loader; others are looked up by name."""
    return "catalog" if ds.type == "catalog" else ds.name


def load_dataset(ds: Any, task: Any) -> tuple[pa.Table, LoadReport]:
    rows, report = DATASETS.get(loader_name(ds))(ds, task)
    rows = fill_splits(rows, tuple(ds.split_ratios), ds.split_seed)
    if ds.max_tracks is not None and rows.num_rows > ds.max_tracks:
        rows = rows.slice(0, ds.max_tracks)
    for line in report.lines():
        log.warning("dataset %s: %s", ds.name, line)
    return rows, report
