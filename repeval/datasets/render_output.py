"""What a render writes beside its audio: the manifest, streamed row by row into a temporary file that becomes
``manifest.<csv|parquet>`` only when the set is whole (:class:`_ManifestWriter`; pyarrow is imported only for
Parquet), and the SoundFont's licence, ``LICENSE-AUDIO.txt`` (:func:`_write_licence`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


class _ManifestWriter:
    """Rows written as they come: a CSV stream, or Parquet in row groups of ``group`` rows, into a temporary file
    that :meth:`close` renames to ``manifest.<fmt>`` only when the set is whole (``commit``)."""

    def __init__(self, out: Path, fields: list[str], fmt: str, group: int = 8192) -> None:
        self.fields, self.fmt, self.group = fields, fmt, group
        self.path = out / f"manifest.{fmt}"
        self.partial = out / f".manifest.{fmt}.partial"
        self.rows: list[dict[str, Any]] = []
        self._fh: Any = None
        self._csv: Any = None
        self._pq: Any = None
        if fmt == "csv":
            self._fh = self.partial.open("w", newline="")
            self._csv = csv.DictWriter(self._fh, fieldnames=fields)
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow(row)
            return
        self.rows.append(row)
        if len(self.rows) >= self.group:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.rows:
            return
        table = pa.table({f: pa.array([r[f] for r in self.rows]) for f in self.fields})  # counts stay integers
        if self._pq is None:
            self._pq = pq.ParquetWriter(self.partial, table.schema)
        self._pq.write_table(table)
        self.rows = []

    def close(self, commit: bool) -> None:
        if self._fh is not None:
            self._fh.close()
        else:
            if commit:
                self._flush()
            if self._pq is not None:
                self._pq.close()
        if commit:
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)


def _write_licence(out: Path) -> None:
    (out / "LICENSE-AUDIO.txt").write_text(
        "Rendered with the TimGM6mb General-MIDI SoundFont shipped in the pretty-midi wheel "
        "(GPL-2.0, Tim Brechbill) using tinysoundfont.\n"
    )
