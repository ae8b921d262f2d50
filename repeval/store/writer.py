"""Writing a partition's rows and error records: :class:`PartitionWriter` buffers them and flushes atomic part files."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from repeval.store.layout import ERROR_SCHEMA, ERRORS_DIR, write_table_atomic

if TYPE_CHECKING:
    from repeval.store.partition import Partition


def _testing_pause() -> None:
    """Fault-injection aid, unset in normal use: ``REPEVAL_TESTING_PART_PAUSE_S`` seconds of sleep after each
    committed part file, so a test can kill the driver between two commits however fast the machine is."""
    pause = os.environ.get("REPEVAL_TESTING_PART_PAUSE_S")
    if pause:
        time.sleep(float(pause))


class PartitionWriter:
    """Buffers rows for one partition (Arrow tables or dicts) and flushes them as atomic part files."""

    def __init__(self, partition: Partition, schema: pa.Schema, part_rows: int) -> None:
        self.partition = partition
        self.schema = schema
        self.part_rows = part_rows
        self._tables: list[pa.Table] = []
        self._n = 0
        self._errors: list[pa.Table] = []
        self._n_errors = 0
        self.written = 0
        self.error_count = 0

    def add_table(self, table: pa.Table) -> None:
        if table.num_rows:
            self._tables.append(table.select(self.schema.names).cast(self.schema))
            self._n += table.num_rows
            if self._n >= self.part_rows:
                self._flush_rows()

    def add(self, row: dict[str, Any]) -> None:
        self.add_table(pa.Table.from_pylist([row], schema=self.schema))

    def add_errors(self, table: pa.Table) -> None:
        if table.num_rows:
            self._errors.append(table.select(ERROR_SCHEMA.names).cast(ERROR_SCHEMA))
            self._n_errors += table.num_rows
            if self._n_errors >= self.part_rows:
                self._flush_errors()

    def add_error(self, row: dict[str, Any]) -> None:
        full = {"config_hash": None, "created_at": None, **row}
        self.add_errors(pa.Table.from_pylist([full], schema=ERROR_SCHEMA))

    def _flush_rows(self) -> None:
        if self._tables:
            self.partition.store.check_lock()
            write_table_atomic(self.partition.fs, self.partition.path, pa.concat_tables(self._tables))
            self.written += self._n
            self._tables, self._n = [], 0
            _testing_pause()

    def _flush_errors(self) -> None:
        if self._errors:
            self.partition.store.check_lock()
            path = f"{self.partition.path}/{ERRORS_DIR}"
            write_table_atomic(self.partition.fs, path, pa.concat_tables(self._errors))
            self.error_count += self._n_errors
            self._errors, self._n_errors = [], 0

    def flush(self) -> None:
        self._flush_rows()
        self._flush_errors()
