"""What the tests of runs scored on different test sets or scenarios share: the task and data set of their runs, and
a run's saved splits written with given test tracks."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TASK, DATASET = "instrument_recognition", "tinysol"


def _splits(run: Path, tracks: list[str], label: str = "piano") -> None:
    """The run's saved split of TASK on DATASET: ``tracks`` tested, two tracks for training."""
    ids = ["train-a", "train-b", *tracks]
    table = pa.table({"track_id": ids, "label": [[label]] * len(ids),
                      "split": ["train", "train", *["test"] * len(tracks)]})  # fmt: skip
    (run / "splits").mkdir(exist_ok=True)
    pq.write_table(table, run / "splits" / f"{TASK}__{DATASET}.parquet")
