"""Embedding store: ``<root>/<dataset>/<model>/<scenario>/part-*.parquet`` + ``_manifest.json``.

Readable by plain pyarrow / pandas / duckdb (``pq.read_table(partition_dir)`` skips the
``_errors/`` folder and the ``_*.json`` files, as every Arrow dataset reader does). Every file
is written under a temporary name and renamed into place; a partition is complete only when its
``_manifest.json`` exists, and the manifest is written last. Part files of an unfinished
partition are kept: a rerun reads their track ids and computes only what is missing. The root
may be any pyarrow filesystem URI (``file://``, ``s3://``, ``gs://``, ``mock://``...) or a
``(filesystem, path)`` pair such as a ``SubTreeFileSystem``.

Every row carries its provenance (model version, configuration hash, repeval version, creation
time); the manifest repeats it with the row and error counts.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from repeval import cloud_reach
from repeval.store.layout import _safe, stored_name
from repeval.store.partition import Partition
from repeval.words import counted

if TYPE_CHECKING:
    from repeval.store.lock import StoreLock


def _file_not_store(fs: pafs.FileSystem, path: str, given: str) -> str:
    """What to say of a store root that is a file: the store root to pass instead when the file is in a partition
    (a folder with a manifest, ``STORE/DATASET/MODEL/SCENARIO``), else what a store root is."""
    from repeval.store.partition import MANIFEST

    folder = path
    for _ in range(3):  # a part file, or one in the partition's _errors/ folder
        folder = folder.rsplit("/", 1)[0] if "/" in folder.strip("/") else folder
        if fs.get_file_info(f"{folder}/{MANIFEST}").type == pafs.FileType.File:
            store = folder.rsplit("/", 3)[0]
            return f"{given} is a file of the store partition {folder}, not a store directory: pass the store {store}"
    return (
        f"{given} is a file, not an embedding store directory: pass the store's folder — the run.store of the "
        "configuration (default store), which holds a DATASET/MODEL/SCENARIO folder per partition"
    )


class EmbeddingStore:
    """The store root: a local path, any pyarrow filesystem URI, or ``filesystem=`` plus a path in it."""

    def __init__(
        self, root: str, filesystem: pafs.FileSystem | None = None, create: bool = True, must_exist: bool = True
    ) -> None:
        """``create=False`` (the read-only tools): a root that does not exist is a ``FileNotFoundError`` — unless
        ``must_exist=False`` (a stage that reads the store says so itself: :meth:`exists`)."""
        self.uri = root
        #: the lock this process holds on the store while it writes (:class:`~repeval.store.lock.StoreLock` sets it)
        self.lock: StoreLock | None = None
        self._model_folders: frozenset[str] | None = None  # (:meth:`model_folders`)
        if filesystem is not None:
            self.fs, self.root = filesystem, root.rstrip("/") or "/"
        elif "://" in root:
            self.fs, self.root = cloud_reach.filesystem(root)  # gs://: retried a minute, not 15
        else:
            self.fs, self.root = pafs.LocalFileSystem(), os.path.abspath(root)
        if create:
            try:
                self.fs.create_dir(self.root, recursive=True)
            except OSError as exc:  # S3's clock or token, which its HeadBucket's answer hides
                raise cloud_reach.head_cause(self.fs, self.root, exc) from None
        elif (kind := self._root_type()) == pafs.FileType.File:
            raise FileNotFoundError(_file_not_store(self.fs, self.root, root))  # (what callers catch: no store)
        elif must_exist and kind != pafs.FileType.Directory:
            what = "URI" if "://" in root else "path"
            # where a relative path or a file:// URI is on this machine; a bucket's URI or an absolute path: as given
            local = isinstance(self.fs, pafs.LocalFileSystem) and self.root != (root.rstrip("/") or "/")
            relative = "" if "://" in root or os.path.isabs(root) else ", relative to the current directory"
            raise FileNotFoundError(
                f"no embedding store at {root}{f' ({self.root})' if local else ''}: check the {what} (a configuration's "
                f"run.store{relative}), or embed into it with `repeval embed CONFIG --store {root}`"
            )

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.uri!r})"

    def __getstate__(self) -> dict[str, Any]:
        """A copy sent to another process (a Ray task or actor) holds no lock: the lock, and a lease's renewal
        thread, stay with the process that took them."""
        return {**self.__dict__, "lock": None}

    def check_lock(self) -> None:
        """Before a write: raise :class:`~repeval.store.lease.LeaseLost` when the lock this process took on the store
        was lost (a lease removed or taken over, or unrenewed so long it is about to expire: another process may write).
        Nothing when no lock is held; no storage round trip (it runs before every part file)."""
        if self.lock is not None:
            self.lock.check()

    def exists(self) -> bool:
        """Whether the store's root is a folder (a store made by an embedding stage, or one it may fill). A root this
        user may not read raises (:meth:`_root_type`)."""
        return bool(self._root_type() == pafs.FileType.Directory)

    def _root_type(self) -> pafs.FileType:
        """What the store's root is. A root this user may not read or list (a bucket refusing these credentials,
        another user's folder) is a ``PermissionError`` naming the store, ``access denied`` and the credentials to
        check (:func:`repeval.cloud_reach.refusal`), as a partition's files are said — not pyarrow's error; one out of
        reach is pyarrow's error, which the command's error line names what to check of."""
        try:
            return self.fs.get_file_info(self.root).type
        except OSError as refused:
            exc = cloud_reach.head_cause(self.fs, self.root, refused)  # S3's clock or token, which a HEAD hides
            if not cloud_reach.refused(exc):
                raise exc from None
            import errno

            why, fix = cloud_reach.refusal(exc)
            said = PermissionError(f"embedding store {self.uri.split('?', 1)[0]}: {why} — {fix}")
            said.errno = exc.errno or errno.EACCES  # still a storage error (``repeval.cli.common._storage_hint``)
            raise said from None

    def partition(self, dataset: str, model: str, scenario: str) -> Partition:
        return Partition(
            self, f"{self.root}/{_safe(dataset)}/{_safe(model)}/{_safe(scenario)}", dataset, model, scenario
        )

    def find(self, name: str) -> Partition:
        """The existing partition ``dataset/model/scenario``; a ``FileNotFoundError`` naming the closest ones otherwise
        (a ``ValueError`` for a name that is not ``dataset/model/scenario``)."""
        parts = name.strip("/").split("/")
        if len(parts) != 3:
            raise ValueError(
                f"give a partition as dataset/model/scenario, not {name!r} (`repeval store ls` lists them)"
            )
        part = self.partition(*parts)
        try:
            if self.fs.get_file_info(part.path).type == pafs.FileType.Directory:
                return part
        except OSError as exc:  # in a folder this user may not list: named, with the fix
            from repeval.cloud_reach import refused
            from repeval.store.rewrite import denied

            if not refused(exc):
                raise
            raise denied(self.fs, part.path, part.path, exc) from None
        import difflib

        names = [p.name for p in self.partitions([])]  # the closest of those it may list
        close = difflib.get_close_matches(part.name, names, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(close)}?" if close else f" ({counted(len(names), 'partition')} there)"
        raise FileNotFoundError(f"no partition {part.name} in {self.uri}{hint}")

    def matching(self, pattern: str) -> list[Partition]:
        """The partitions whose ``dataset/model/scenario`` matches the shell-style ``pattern``, given as the
        configuration names them (``my notes/m/clean``) or as stored (``my_notes/m/clean``); sorted by path."""
        import fnmatch

        pattern = pattern.strip("/")
        stored = "/".join(stored_name(p, keep="*?[]!") for p in pattern.split("/"))  # the glob's characters kept
        unlisted: list[tuple[str, OSError]] = []  # another user's folder elsewhere in the store does not stop it
        found = [
            p
            for p in self.partitions(unlisted)
            if fnmatch.fnmatchcase(p.name, pattern) or fnmatch.fnmatchcase(p.name, stored)
        ]
        for folder, exc in unlisted:  # one that may hold a partition it names: said, with the fix
            depth = folder.count("/") + 1
            if any(fnmatch.fnmatchcase(folder, "/".join(p.split("/")[:depth])) for p in (pattern, stored)):
                raise self.unlisted_error(folder, exc, f"{pattern} is not looked for under it") from None
        return found

    def unlisted_error(self, folder: str, exc: OSError, what: str) -> OSError:
        """The error for ``folder`` of the store (relative to its root, as :meth:`partitions` adds it to ``unlisted``)
        that cannot be listed: why, ``what`` that leaves out, and the fix."""
        from repeval.report.run_files import unlisted

        raised = type(exc)(unlisted(f"{self.root}/{folder}", what, exc))
        raised.errno = exc.errno  # still a storage error (``repeval.cli.errors._storage_hint``)
        return raised

    def refuse_foreign(self, parts: list[Partition]) -> None:
        """A ``ValueError`` naming the folders among ``parts`` that are not partitions (:meth:`Partition.foreign`):
        ``store rm`` deletes none of them, nor the partitions given with them."""
        foreign = [p.name for p in parts if p.foreign()]
        if foreign:
            shown = ", ".join(foreign[:3]) + (", …" if len(foreign) > 3 else "")
            raise ValueError(
                f"{shown} in {self.uri}: not a store partition (no part-*.parquet, _stamp.json or _manifest.json in "
                "it) — nothing was deleted; is this the embedding store (run.store, `store` by default)? "
                "`repeval store ls` lists its partitions"
            )

    def partitions(
        self, unlisted: list[tuple[str, OSError]] | None = None, files: list[str] | None = None
    ) -> list[Partition]:
        """Every ``dataset/model/scenario`` folder, complete or not, sorted by path. A folder of the store that cannot
        be listed (another user's) stops the listing — unless ``unlisted`` is given: then the store is listed folder
        by folder and each such folder is added to it (its path relative to the root, its error), the others listed.
        A partition's own folder is listed as a partition (what it holds is read later). ``files``: given, the path
        (relative to the root) of every file of the store is added to it from the same listing (none when the store
        had to be listed folder by folder)."""
        try:
            sel = pafs.FileSelector(self.root, recursive=True, allow_not_found=True)
            infos = self.fs.get_file_info(sel)
        except OSError:
            if unlisted is None:
                raise
            infos = self._walk(unlisted)
        out = []
        for info in infos:
            if files is not None and info.type == pafs.FileType.File:
                files.append(info.path[len(self.root) :].strip("/"))
            if info.type == pafs.FileType.Directory:
                rel = info.path[len(self.root) :].strip("/").split("/")
                if len(rel) == 3 and not any(r.startswith(("_", ".")) for r in rel):
                    out.append(Partition(self, info.path, *rel))
        return sorted(out, key=lambda p: p.path)

    def model_folders(self) -> frozenset[str]:
        """The model folders of the store's datasets (``dataset/MODEL``), listed once for this store object, two levels
        deep (one request for the root, one per dataset folder: not every file of the store, as :meth:`partitions`
        lists it) — what a conflict checks the new model id it names against, for each conflicting partition. A
        dataset folder that cannot be listed is left out, and so is every one when the root cannot be listed."""
        if self._model_folders is None:
            try:
                infos = self._walk([], levels=2)
            except OSError:  # a store the user may not list: none known
                infos = []
            self._model_folders = frozenset(
                i.base_name for i in infos if len(i.path[len(self.root) :].strip("/").split("/")) == 2
            )
        return self._model_folders

    def _walk(self, unlisted: list[tuple[str, OSError]], levels: int = 3) -> list[pafs.FileInfo]:
        """The folders of the store down to its partitions' (``dataset/model/scenario``; ``levels`` deep), listed one
        level at a time; those that cannot be listed are added to ``unlisted`` (the root's own error is raised)."""
        found: list[pafs.FileInfo] = []
        level = [self.root]
        for depth in range(levels):
            deeper = []
            for folder in level:
                try:
                    infos = self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
                except OSError as exc:
                    if depth == 0:
                        raise
                    unlisted.append((folder[len(self.root) :].strip("/"), exc))
                    continue
                dirs = [
                    i for i in infos if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))
                ]
                found += dirs
                deeper += [i.path for i in dirs]
            level = sorted(deeper)
        return found


def note_store_left_under_tilde(root: str) -> None:
    """Say where the embeddings went when ``root`` (a store under the home folder) has none and ``./~/…`` holds a
    store: before ``~`` was expanded in ``run.store`` (:func:`repeval.config.base._local_path`), ``run.store: ~/x``
    wrote to a folder named ``~`` under the current one, and the same configuration now computes them all again. Said
    for every store root a run or a ``repeval store`` command is given (:func:`repeval.cli.store.open_store`)."""
    home = os.path.expanduser("~").rstrip("/")
    if "://" in root or not home or not (root == home or root.startswith(home + "/")):
        return
    left = "./~" + root[len(home) :]
    if not os.path.isdir(left):
        return
    kept = len(EmbeddingStore(left, create=False).partitions())
    if not kept or EmbeddingStore(root, create=False, must_exist=False).partitions():
        return
    fix = f"`mv '{left}' '{root}'`" if not os.path.lexists(root) else f"move what it holds into {root}"
    logging.getLogger("repeval.store").warning(
        "the store %s has no embeddings, but %s (a folder named '~' here) holds %s — where run.store: ~%s wrote "
        "before '~' was expanded: %s, or point run.store (or --store) at '%s'; else they are computed again",
        root, left, counted(kept, "partition"), root[len(home) :], fix, left,
    )  # fmt: skip
