"""The head of an embedding stream: the to-do table as a Ray Data source, one read task per block of rows.

``ray.data.from_arrow`` (what streams used before) puts every block into the object store from the driver
and runs one remote task per block to read its metadata: on 2 CPUs, 1,000,000 to-do rows in 64-row blocks took
89–97 s and +660 MB of driver memory before the first track was decoded. Here each read task carries its rows
as a compressed Arrow IPC message, made only when Ray Data serialises the task (so the driver never holds two
copies), with the block's metadata computed locally; the read fuses with the decode stage, so a block is one
task, as before. Ray Data still puts every read task at the stream's start (~1.3 ms each here), which is why a
stream has at most ``repeval.pipeline.stream.MAX_STREAM_BLOCKS`` blocks: 1,000,000 rows then start decoding
after ~5 s with a few MB of driver memory (``benchmarks/bench_stream_source.py``).

The payload travels inside the task, so a multi-node cluster needs no shared filesystem for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

#: IPC body compression of a block's rows: a 64-row block of typical catalog rows takes 1.8 KB with zstd
#: against 5.9 KB uncompressed (~0.2 ms to write and to read back, in a task that decodes 64 audio files)
PAYLOAD_COMPRESSION = "zstd"


class RowsPayload:
    """A block's read function: returns its slice of the to-do table, and pickles as one compressed IPC message.

    Holding the slice (not bytes) means the driver keeps only the table it already has; the bytes exist in
    the object store once Ray Data has put the read task there."""

    __slots__ = ("table",)

    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        sink = pa.BufferOutputStream()
        opts = pa.ipc.IpcWriteOptions(compression=PAYLOAD_COMPRESSION)
        with pa.ipc.new_stream(sink, self.table.schema, options=opts) as writer:
            writer.write_table(self.table)
        return _from_ipc, (sink.getvalue().to_pybytes(),)

    def __call__(self) -> Iterable[pa.Table]:
        return [self.table]


def _from_ipc(data: bytes) -> RowsPayload:
    return RowsPayload(pa.ipc.open_stream(data).read_all())


def block_slices(n_rows: int, block_rows: int, tail: int = 0, tail_min: int = 1) -> list[tuple[int, int]]:
    """(offset, length) of each block, in order: at most ``block_rows`` rows each, in as few blocks as that allows, as
    even as they go — except the last ``tail`` blocks, about half as long as the others but at least ``tail_min`` rows
    (a block more for every two of them, at most); the lengths of the others, and of the last ones, differ by one row
    at most, the longer first.

    An actor pool's actors take blocks as they free up: a short last block (2,000 rows in blocks of 64: 31 and one of
    16) or the last of even blocks leaves one actor embedding it while the others have nothing left; half-length
    blocks at the end halve that wait. The blocks' lengths change no embedding (a clip's is the same in any batch).
    ``tail`` is left out where a block would have fewer than four rows (the stream is short), and where the last
    blocks, at ``tail_min`` rows, would be no shorter than the others: an actor pool bundles the blocks that give it
    fewer rows than its ``batch_size`` with the next ones, so shorter blocks would reach the actors merged."""
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    count = -(-n_rows // block_rows)
    if count == 0:
        return []
    tail = min(tail, count - 1) if n_rows >= 4 * count else 0
    tail_rows = 0
    while tail:  # the tail's rows: its share at half a block each; the others' blocks within block_rows
        tail_rows = max(n_rows * tail // (2 * count - tail), tail * tail_min)
        if -(-(n_rows - tail_rows) // (count - tail)) <= block_rows:
            break
        count += 1
    if tail and -(-tail_rows // tail) >= (n_rows - tail_rows) // (count - tail):
        return _even(0, n_rows, -(-n_rows // block_rows))  # no shorter blocks at the end
    return _even(0, n_rows - tail_rows, count - tail) + _even(n_rows - tail_rows, tail_rows, tail)


def _even(offset: int, n_rows: int, count: int) -> list[tuple[int, int]]:
    """``n_rows`` from ``offset`` in ``count`` blocks whose lengths differ by one row at most, the longer first."""
    size, longer = divmod(n_rows, count) if count else (0, 0)
    slices = []
    for i in range(count):
        length = size + (i < longer)
        slices.append((offset, length))
        offset += length
    return slices


class TodoSource(Datasource):
    """A Ray Data datasource over a to-do table: one read task (and one output block) per block of at most
    ``block_rows`` rows, the last ``tail`` half as long, at least ``tail_min`` rows (:func:`block_slices`)."""

    def __init__(self, todo: pa.Table, block_rows: int, tail: int = 0, tail_min: int = 1) -> None:
        self.todo = todo
        self.slices = block_slices(todo.num_rows, block_rows, tail, tail_min)

    def get_name(self) -> str:
        return "Todo"

    def estimate_inmemory_data_size(self) -> int:
        return int(self.todo.nbytes)

    def get_read_tasks(  # type: ignore[override]
        self, parallelism: int, per_task_row_limit: int | None = None, **_: Any
    ) -> list[ReadTask]:
        """One read task per block whatever ``parallelism`` asks: the block size is the stream's choice."""
        tasks = []
        for offset, length in self.slices:
            rows = self.todo.slice(offset, length)
            meta = BlockMetadata(num_rows=length, size_bytes=rows.nbytes, input_files=None, exec_stats=None)
            # no schema: pickling one per task costs a third of its put (Ray Data reads it from the first block)
            tasks.append(ReadTask(RowsPayload(rows), meta, per_task_row_limit=per_task_row_limit))
        return tasks

    def read(self, **read_args: Any) -> Any:
        """The dataset of the to-do table's rows, one block per slice. ``read_args`` go to
        ``ray.data.read_datasource`` — give the next stage's ``num_cpus``, ``compute`` and ``runtime_env`` so the read
        fuses into it (one task per block)."""
        import ray.data

        return ray.data.read_datasource(self, override_num_blocks=max(1, len(self.slices)), **read_args)


def read_todo(todo: pa.Table, block_rows: int, tail: int = 0, tail_min: int = 1, **read_args: Any) -> Any:
    """The dataset of ``todo``'s rows in blocks of at most ``block_rows``, the last ``tail`` of them half as long, at
    least ``tail_min`` rows (:func:`block_slices`); ``read_args`` as :meth:`TodoSource.read`."""
    return TodoSource(todo, block_rows, tail, tail_min).read(**read_args)
