"""A pyarrow filesystem over the local disk that can refuse deletes or hold reads and writes, for tests of what the store does
when its storage does not answer as the local disk does (a read-only file, a bucket that refuses a delete, two
processes writing at the same moment): ``pafs.PyFileSystem(Faulty(...))``; and one that counts the requests made of it
(:class:`Counting`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs


class Faulty(pafs.FileSystemHandler):
    """The local filesystem, refusing to delete files whose name is in ``refused`` (``PermissionError``), calling
    ``before_write(path)`` before opening any file for writing and ``before_read(path)`` before opening any file for
    reading."""

    def __init__(
        self,
        refused: set[str] | None = None,
        before_write: Callable[[str], None] | None = None,
        before_read: Callable[[str], None] | None = None,
    ) -> None:
        self.local = pafs.LocalFileSystem()
        self.refused = set(refused or ())
        self.before_write = before_write
        self.before_read = before_read

    def delete_file(self, path: str) -> None:
        if path.rsplit("/", 1)[-1] in self.refused:
            raise PermissionError(13, "Permission denied", path)
        self.local.delete_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        if self.before_write is not None:
            self.before_write(path)
        return self.local.open_output_stream(path, metadata=metadata)

    def get_type_name(self) -> str:
        return "faulty"

    def equals(self, other: Any) -> bool:
        return self is other

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths: list[str]) -> Any:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> Any:
        return self.local.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.local.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise PermissionError("the root's contents are not deleted in a test")

    def move(self, src: str, dest: str) -> None:
        self.local.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.local.copy_file(src, dest)

    def open_input_stream(self, path: str) -> Any:
        if self.before_read is not None:
            self.before_read(path)
        return self.local.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        if self.before_read is not None:
            self.before_read(path)
        return self.local.open_input_file(path)

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.local.open_append_stream(path, metadata=metadata)


def faulty_fs(
    refused: set[str] | None = None,
    before_write: Callable[[str], None] | None = None,
    before_read: Callable[[str], None] | None = None,
) -> pafs.FileSystem:
    """A pyarrow filesystem of :class:`Faulty` (its handler is ``.handler``)."""
    return pafs.PyFileSystem(Faulty(refused, before_write, before_read))


class Counting(Faulty):
    """The local filesystem (or ``base``, a bucket's), refusing nothing, counting the requests made of it by kind
    (``open``: a file opened for reading, ``info``: a file's metadata asked, ``list``: a folder listed) and the files
    opened (``opened``): on object storage each is a round trip."""

    def __init__(self, base: pafs.FileSystem | None = None) -> None:
        super().__init__()
        if base is not None:
            self.local = base
        self.n: Counter[str] = Counter()
        self.opened: Counter[str] = Counter()

    def get_file_info(self, paths: list[str]) -> Any:
        self.n["info"] += len(paths)
        return super().get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> Any:
        self.n["list"] += 1
        return super().get_file_info_selector(selector)

    def open_input_stream(self, path: str) -> Any:
        self.n["open"] += 1
        self.opened[path] += 1
        return super().open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        self.n["open"] += 1
        self.opened[path] += 1
        return super().open_input_file(path)

    def clear(self) -> None:
        self.n.clear()
        self.opened.clear()
