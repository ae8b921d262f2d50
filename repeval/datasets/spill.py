"""Bounded-memory building blocks for planning catalogs of any size.

A catalog of millions of rows is planned (validated, de-duplicated, split) with memory that does
not grow with its row count:

- :func:`hash64` — a seeded, process-independent 64-bit hash of every string of an Arrow array,
  vectorised with numpy (no Python object per row);
- :class:`Partitions` — record batches hash-partitioned over ``k`` Arrow IPC files, so that each
  partition (all rows of a track id, or of a group) is processed alone; ``k == 1`` keeps them in
  memory, so small tables never touch the disk;
- :class:`TableSpool` — keeps batches in the order written; past :data:`PARTITION_ROWS` rows they go
  to a spill file, read back a batch at a time or as one table memory-mapped from it (its pages
  belong to the page cache, which the kernel reclaims, not to the process heap), as often as
  needed and written to after reading (:class:`~repeval.datasets.missing.MissingTracks` keeps its
  rows in one).

Spill files live under ``$REPEVAL_SPILL_DIR`` (default: the system temp directory) and are
unlinked as soon as they are open, so nothing is left behind after a crash.
"""

from __future__ import annotations

import mmap
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: items per partition (and rows kept in memory before a table is spilled); memory for planning is
#: bounded by about this many rows until :data:`MAX_PARTITIONS` partitions are in use
PARTITION_ROWS = 1 << 17
#: most partitions open at once (files open for writing; 256 × 131,072 rows ≈ 33.5 million items)
MAX_PARTITIONS = 256

_M64 = (1 << 64) - 1
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: the polynomial base of the string hash
_LEN_MIX = np.uint64(0xD6E8FEB86659FD93)
#: strings hashed per numpy step (bounds the scratch memory of :func:`hash64`)
_HASH_CHUNK = 1 << 14
_powers = np.ones(1, dtype=np.uint64)


def spill_root() -> str:
    """Where spill files go: ``$REPEVAL_SPILL_DIR`` or the system temp directory."""
    root = os.environ.get("REPEVAL_SPILL_DIR") or tempfile.gettempdir()
    try:
        os.makedirs(root, exist_ok=True)
    except OSError as exc:
        raise spill_error(exc, root) from exc
    return root


def spill_error(exc: OSError, root: str | None = None) -> OSError:
    """``exc`` (a failed spill write) as an error that names the spill directory and the fix."""
    where = root or os.environ.get("REPEVAL_SPILL_DIR") or tempfile.gettempdir()
    return OSError(
        f"{exc} — planning a large catalog spills its rows to {where} (about 100 bytes per row, twice over): "
        "free space there or set REPEVAL_SPILL_DIR to a writable directory on a disk with room"
    )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser (uint64 arithmetic wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _power_table(n: int) -> np.ndarray:
    """``_BASE ** i mod 2**64`` for ``i < n``."""
    global _powers
    if len(_powers) < n:
        with np.errstate(over="ignore"):
            _powers = np.cumprod(np.r_[np.uint64(1), np.full(max(n, 2 * len(_powers)) - 1, _BASE)], dtype=np.uint64)
    return _powers


def hash64_reference(value: str, seed: int = 0) -> int:
    """Pure-Python :func:`hash64` of one string (the specification; used by tests)."""
    data = value.encode()
    poly = 0
    for b in data:
        poly = (poly * int(_BASE) + b + 1) & _M64
    seed_mix = int(_splitmix64(np.array([seed & _M64], dtype=np.uint64))[0])
    x = (poly + len(data) * int(_LEN_MIX) + seed_mix) & _M64
    return int(_splitmix64(np.array([x], dtype=np.uint64))[0])


def string_array(values: Any) -> pa.Array:
    """``values`` (an Arrow array or chunked array, or a sequence) as one Arrow string array, nulls kept."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), pa.string())
    if values.type != pa.string():
        values = pc.cast(values, pa.string())
    return values


def hash64(values: Any, seed: int = 0) -> np.ndarray:
    """Seeded 64-bit hash of each string (nulls hash as ``""``): a polynomial over the UTF-8 bytes
    (base :data:`_BASE`, modulo 2**64) mixed with the length and the seed by splitmix64.

    Deterministic across processes and platforms; equal strings always get equal hashes, and
    distinct strings collide with negligible probability (callers never rely on distinctness).
    """
    arr = string_array(values)
    arr = arr.fill_null("") if arr.null_count else arr
    n = len(arr)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    seed_mix = _splitmix64(np.array([seed & _M64], dtype=np.uint64))[0]
    all_offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    for a in range(0, n, _HASH_CHUNK):
        offsets = all_offsets[a : a + _HASH_CHUNK + 1].astype(np.int64)
        m = len(offsets) - 1
        lengths = np.diff(offsets)
        lo = int(offsets[0])
        poly = np.zeros(m, dtype=np.uint64)
        if lengths.any():
            chars = data[lo : int(offsets[-1])].astype(np.uint64) + np.uint64(1)
            ends = offsets[1:] - lo
            exponent = np.repeat(ends, lengths) - np.arange(len(chars)) - 1
            with np.errstate(over="ignore"):
                terms = chars * _power_table(int(lengths.max()))[exponent]
            nonempty = lengths > 0
            poly[nonempty] = np.add.reduceat(terms, (offsets[:-1] - lo)[nonempty])
        with np.errstate(over="ignore"):
            out[a : a + m] = _splitmix64(poly + lengths.astype(np.uint64) * _LEN_MIX + seed_mix)
    return out


def n_partitions(n_items: int, rows_per_partition: int | None = None) -> int:
    """A power of two (at most :data:`MAX_PARTITIONS`) so that partitions hold ≤ ``rows_per_partition``."""
    per = rows_per_partition or PARTITION_ROWS
    k = 1
    while k * per < n_items and k < MAX_PARTITIONS:
        k *= 2
    return k


def partition_of(keys: np.ndarray, k: int) -> np.ndarray:
    """Partition of each 64-bit key: its top ``log2(k)`` bits, so partitions are key ranges in order."""
    if k == 1:
        return np.zeros(len(keys), dtype=np.int64)
    bits = k.bit_length() - 1
    return (keys >> np.uint64(64 - bits)).astype(np.int64)


class Partitions:
    """Record batches spread over ``k`` partitions, in memory when ``k == 1`` and otherwise in one
    Arrow IPC stream file per partition (a temporary directory under :func:`spill_root`).

    Within a partition, rows keep the order in which they were added. Iterate to get each
    partition as a table, in partition order (as often as needed); :meth:`close` removes the files.
    """

    def __init__(self, k: int, schema: pa.Schema) -> None:
        self.k = k
        self.schema = schema
        self._mem: list[pa.RecordBatch] = []
        self._dir: str | None = None
        self._sinks: list[Any] = []
        self._writers: list[Any] = []
        if k > 1:
            root = spill_root()
            try:
                self._dir = tempfile.mkdtemp(prefix="repeval-spill-", dir=root)
            except OSError as exc:
                raise spill_error(exc, root) from exc
            self._sinks = [None] * k
            self._writers = [None] * k

    def _path(self, p: int) -> str:
        assert self._dir is not None
        return os.path.join(self._dir, f"part-{p:05d}.arrow")

    def add(self, batch: pa.RecordBatch, part: np.ndarray | None = None) -> None:
        """Add ``batch``; ``part`` gives each row's partition (ignored when ``k == 1``)."""
        if batch.num_rows == 0:
            return
        if self.k == 1:
            self._mem.append(batch)
            return
        assert part is not None
        try:
            self._add(batch, part)
        except OSError as exc:
            raise spill_error(exc) from exc

    def _add(self, batch: pa.RecordBatch, part: np.ndarray) -> None:
        order = np.argsort(part, kind="stable")
        sorted_part = part[order]
        bounds = np.searchsorted(sorted_part, np.arange(self.k + 1))
        for p in np.flatnonzero(np.diff(bounds)):
            rows = batch.take(pa.array(order[bounds[p] : bounds[p + 1]]))
            if self._writers[p] is None:
                self._sinks[p] = pa.OSFile(self._path(int(p)), "wb")
                self._writers[p] = pa.ipc.new_stream(self._sinks[p], self.schema)
            self._writers[p].write_batch(rows)

    def _finish_writing(self) -> None:
        for p, w in enumerate(self._writers):
            if w is not None:
                w.close()
                self._sinks[p].close()
                self._writers[p] = None

    def __iter__(self) -> Iterator[pa.Table]:
        if self.k == 1:
            yield pa.Table.from_batches(self._mem, schema=self.schema)
            return
        self._finish_writing()
        for p in range(self.k):
            path = self._path(p)
            if not os.path.exists(path):
                yield self.schema.empty_table()
                continue
            with pa.OSFile(path, "rb") as fh:
                yield pa.ipc.open_stream(fh).read_all()

    def close(self) -> None:
        self._mem = []
        self._finish_writing()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Partitions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unlinked_file(prefix: str, root: str | None) -> IO[bytes]:
    """A new file under ``root``, open for reading and writing and already unlinked (its name, with ``(deleted)``,
    stays in ``/proc/self/maps`` while it is mapped); its space is freed when it is closed and no longer mapped."""
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=".arrow", dir=root)
    try:
        os.unlink(path)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "w+b", buffering=0)


class TableSpool:
    """Record batches of one schema, kept in the order written: in memory up to ``max_rows`` rows (default
    :data:`PARTITION_ROWS`), beyond that all of them in a spill file under :func:`spill_root` that is unlinked as it
    is created (nothing is left behind, even after a crash). Read back as often as needed, and written to after
    reading: a batch at a time (:meth:`batches`: memory bounded by a batch) or as one table (:meth:`table`:
    memory-mapped from the spill file, zero-copy, its pages the page cache's, which the kernel reclaims, not the
    process heap's)."""

    def __init__(self, schema: pa.Schema, max_rows: int | None = None, prefix: str = "repeval-table-") -> None:
        self.schema = schema
        self.max_rows = PARTITION_ROWS if max_rows is None else max_rows
        self.prefix = prefix
        self._reset()

    def _reset(self) -> None:
        self.num_rows = 0
        self._mem: list[pa.RecordBatch] = []
        self._file: IO[bytes] | None = None
        self._spans: list[tuple[int, int]] = []  # (offset, bytes) of each spilled batch, in order
        self._end = 0

    @property
    def spilled(self) -> bool:
        """Whether the batches are in the spill file."""
        return self._file is not None

    def write(self, batch: pa.RecordBatch) -> None:
        """``batch`` (of :attr:`schema`) after those written before."""
        if batch.num_rows == 0:
            return
        self.num_rows += batch.num_rows
        if self._file is None and self.num_rows <= self.max_rows:
            self._mem.append(batch)
            return
        root = spill_root() if self._file is None else None
        try:
            if self._file is None:
                self._file = _unlinked_file(self.prefix, root)
                for b in self._mem:
                    self._append(b)
                self._mem = []
            self._append(batch)
        except OSError as exc:
            raise spill_error(exc, root) from exc

    def _append(self, batch: pa.RecordBatch) -> None:
        assert self._file is not None
        data = memoryview(batch.serialize())  # an IPC message: its size a multiple of 8, so batches stay aligned
        fd = self._file.fileno()
        done = 0
        while done < len(data):
            done += os.pwrite(fd, data[done:], self._end + done)
        self._spans.append((self._end, len(data)))
        self._end += len(data)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The batches in the order written, one at a time (as often as needed)."""
        if self._file is None:
            yield from list(self._mem)
            return
        fd = self._file.fileno()
        for offset, size in list(self._spans):
            yield pa.ipc.read_record_batch(pa.py_buffer(os.pread(fd, size, offset)), self.schema)

    def table(self) -> pa.Table:
        """Every batch as one table: memory-mapped from the spill file once spilled (as often as needed)."""
        if self._file is None:
            return pa.Table.from_batches(self._mem, schema=self.schema)
        try:
            mapped = pa.py_buffer(mmap.mmap(self._file.fileno(), self._end, access=mmap.ACCESS_READ))
        except OSError as exc:
            raise spill_error(exc) from exc
        batches = [pa.ipc.read_record_batch(mapped.slice(offset, size), self.schema) for offset, size in self._spans]
        return pa.Table.from_batches(batches, schema=self.schema)

    def close(self) -> None:
        """Drop the batches and the spill file (a table read from it keeps its pages until it is dropped too)."""
        if self._file is not None:
            self._file.close()
        self._reset()


def codes_array(n: int, fill: int = -1) -> np.ndarray:
    """An int8 array of ``n`` codes set to ``fill``: in memory up to :data:`PARTITION_ROWS`, else a
    memory-mapped temporary file (unlinked at once; its pages are the kernel's to write back)."""
    if n <= PARTITION_ROWS:
        return np.full(n, fill, dtype=np.int8)
    root = spill_root()
    try:
        fd, path = tempfile.mkstemp(prefix="repeval-codes-", dir=root)
        os.close(fd)
        try:
            out = np.memmap(path, dtype=np.int8, mode="w+", shape=(n,))
        finally:
            os.unlink(path)
        out[:] = fill
    except OSError as exc:
        raise spill_error(exc, root) from exc
    return out
