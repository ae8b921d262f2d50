"""What the catalog loader's tests share: a CSV manifest written from a header and rows."""

from __future__ import annotations

import csv
from pathlib import Path


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path
