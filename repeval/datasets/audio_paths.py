"""A ``catalog`` manifest's audio paths: resolved against the manifest's folder (or ``dir``; an absolute path or a URI
as written), their ``..`` steps resolved, and checked to exist — ``os.path.isfile`` locally, batched ``get_file_info`` on a pyarrow filesystem — a
file whose name is written in the other Unicode normalization on disk (macOS's NFD) read from the file that exists,
with a note (:class:`AudioPaths`)."""

from __future__ import annotations

import functools
import os
import posixpath
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from repeval.cloud_reach import error_line, filesystem
from repeval.datasets import missing
from repeval.uri_text import (
    DOT_STEP,
    NOT_IN_URI,
    UNPARSED,
    WINDOWS,
    dot_steps,
    encoded,
    parseable,
    scheme_refusal,
    unread_scheme,
    windows_fix,
    windows_unread,
)


def _base_dir(manifest: str, dir_: str | None) -> str:
    """Where a catalog's relative audio paths start: ``dir``, else the manifest's folder — at a URI with the URI's
    query (``?endpoint_override=…``: an S3-compatible server's), which the audio's URIs need as much as the
    manifest's."""
    if dir_:
        return dir_
    if "://" not in manifest:
        return str(Path(manifest).resolve().parent)
    path, sep, query = manifest.partition("?")
    return posixpath.dirname(path) + sep + query


def _normalized(path: str, real: Callable[[str], str] = os.path.realpath) -> str | None:
    """``path`` (a local path or a URI, its query kept after it) with its ``.`` and ``..`` steps resolved:
    ``lists/../a.wav`` is ``a.wav``, one name for one file — ``s3://b/lists/../a.wav`` is ``s3://b/a.wav`` (S3 and
    Google Cloud Storage would read a key ``lists/../a.wav``, which no manifest means). ``None`` for a URI whose ``..``
    steps climb above its bucket or host (``s3://b/../x/a.wav`` is not ``s3://x/a.wav``: another bucket's file). A
    local path (a ``file://`` URI's too) is resolved only where the operating system finds the same file: through a
    symlinked folder ``link/..`` is the link's target's parent, so such a path is opened as written (``real``: the
    folders' ``os.path.realpath``, cached by the caller)."""
    if "://" in path:
        path, sep, query = dot_steps(path).partition("?")  # 's3://b/x/%2E%2E/a.wav': the step '..'
        scheme, rest = path.split("://", 1)
        if scheme.lower() == "file" and rest.startswith("/"):  # the folders as the system finds them: decoded
            local = unquote(rest)
            kept = _normalized(local, real) == local and os.path.normpath(local) != local
            return f"{scheme}://{rest if kept else posixpath.normpath(rest)}{sep}{query}"
        top = rest.split("/", 1)[0]
        norm = posixpath.normpath(rest)
        return f"{scheme}://{norm}{sep}{query}" if norm == top or norm.startswith(top + "/") else None
    norm = os.path.normpath(path)
    folder, name = os.path.split(path)
    if name in ("", ".", ".."):
        return norm if os.path.realpath(norm) == os.path.realpath(path) else path
    return norm if real(os.path.dirname(norm)) == real(folder) else path


def _in_uri(paths: pa.Array, absolute: pa.Array) -> pa.Array:
    """``paths`` with each relative one that holds a character a URI's path cannot (a space, ``?``, ``#``, a letter
    beyond ASCII) percent-encoded — ``%XX`` kept, written so already — for the few rows that do."""
    return _changed(paths, pc.and_not(pc.match_substring_regex(paths, NOT_IN_URI), absolute), encoded)


def _parseable(paths: pa.Array, whole: pa.Array) -> pa.Array:
    """``paths`` with each whole URI pyarrow would not parse as written made one it parses (:func:`parseable`: a space
    percent-encoded, ``file://localhost/`` as ``file:///``) — for the few rows that need it."""
    return _changed(paths, pc.and_(pc.match_substring_regex(paths, UNPARSED), whole), parseable)


def _changed(paths: pa.Array, need: pa.Array, change: Callable[[str], str]) -> pa.Array:
    """``paths`` with ``change`` made to each row ``need`` marks (a few, if any; each row read alone)."""
    at = need.to_numpy(zero_copy_only=False)
    if not at.any():
        return paths
    idx = np.flatnonzero(at)
    return _with_rows(paths, idx, [change(p) for p in paths.take(pa.array(idx)).to_pylist()])


def _with_rows(values: pa.Array, idx: np.ndarray, new: Sequence[str | None]) -> pa.Array:
    """``values`` with its rows ``idx`` (sorted) replaced by ``new`` — a ``None`` of ``new`` keeps the row's value."""
    at = np.full(len(values), -1, dtype=np.int64)
    at[idx] = np.arange(len(idx))
    return pc.coalesce(pa.array(new, pa.string()).take(pa.array(at, mask=at < 0)), values)


class _FileChecker:
    """Existence checks for audio paths: ``os.path.isfile`` locally, batched ``get_file_info`` remotely."""

    #: schemes whose pyarrow paths are ``bucket/key`` (the URI's netloc is part of the path)
    _BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "az"})

    def __init__(self) -> None:
        self._filesystems: dict[tuple[str, str, str], pafs.FileSystem] = {}

    def exists(self, paths: list[str]) -> list[bool]:
        out = [False] * len(paths)
        remote: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
        for i, p in enumerate(paths):
            if "://" not in p:
                out[i] = os.path.isfile(p)
                continue
            u = urlsplit(p)  # the path percent-decoded, as pyarrow reads it: 'my%20song.wav' is 'my song.wav'
            fs_path = unquote(f"{u.netloc}{u.path}" if u.scheme in self._BUCKET_SCHEMES else u.path)
            remote.setdefault((u.scheme, u.netloc, u.query), []).append((i, fs_path))  # its server too
        for key, items in remote.items():
            first = paths[items[0][0]]
            try:
                fs = self._filesystems.get(key)
                if fs is None:  # one per scheme, host and query (a server's ?endpoint_override=…); gs:// bounded
                    fs, _ = filesystem(first)
                    self._filesystems[key] = fs
                infos = fs.get_file_info([fs_path for _, fs_path in items])
            except (OSError, ValueError, pa.ArrowException) as exc:  # no network, refused credentials
                raise ValueError(  # its first line said: not again as the root cause
                    f"audio files at {key[0]}://{key[1]} (e.g. {first}) cannot be checked from here "
                    f"({error_line(exc, first)}) — check the URI, the "
                    "network and the credentials, or set check_files: false when only the cluster reaches them"
                ) from None
            for (i, _), info in zip(items, infos, strict=True):
                out[i] = info.type == pafs.FileType.File
        return out


class AudioPaths:
    """The audio paths of a catalog ``ds``'s rows, batch by batch: :meth:`resolve` joins them to :attr:`base`,
    :meth:`existing` finds the files that do not exist (``check_files``), counting the rows read from a file named in
    the other Unicode normalization (:meth:`normalization_note`)."""

    def __init__(self, ds: Any) -> None:
        #: where relative paths start: ``dir``, else the manifest's folder
        self.base = _base_dir(ds.manifest, ds.dir)
        self.check_files = bool(getattr(ds, "check_files", True))
        self.files = _FileChecker()
        #: ``os.path.realpath`` of the folders of local paths with ``..`` steps, once per folder (rows share a few)
        self._real = functools.lru_cache(maxsize=4096)(os.path.realpath)
        #: rows whose audio file exists under another Unicode normalization of its name (read from it), and one such
        #: (manifest path, file) pair
        self.renormalized = 0
        self.renormalized_example: tuple[str, str] | None = None

    def resolve(self, paths: pa.Array) -> tuple[pa.Array, np.ndarray]:
        """``paths`` (trimmed) joined to :attr:`base` with their ``.`` and ``..`` steps resolved (:func:`_normalized`;
        an absolute local path's and a URI's too) and the query of a base URI after them (a null path: ``base/``).
        With them, which rows' ``..`` steps climb above their bucket (a URI's, else a base URI's; their path as written
        joined)."""
        paths = paths.fill_null("")
        whole = pc.match_substring(paths, "://")
        absolute = pc.or_(pc.starts_with(paths, "/"), whole)
        paths = _parseable(paths, whole)  # 's3://b/my song.wav', as a relative path joined to a URI is read
        root, sep, query = self.base.partition("?") if "://" in self.base else (self.base, "", "")
        if "://" in root:  # a file's name joined into a URI: percent-encoded ('my song.wav': pyarrow parses no space)
            paths = _in_uri(paths, absolute)
        joined = pc.if_else(absolute, paths, pc.binary_join_element_wise(root.rstrip("/"), paths, "/"))
        steps = pc.match_substring_regex(joined, DOT_STEP).to_numpy(zero_copy_only=False)
        above = np.zeros(len(joined), dtype=bool)
        if steps.any():  # '../audio/a.wav': a few rows, if any
            idx = np.flatnonzero(steps)
            fixed = [_normalized(p, self._real) for p in joined.take(pa.array(idx)).to_pylist()]
            above[idx] = [f is None for f in fixed]
            joined = _with_rows(joined, idx, fixed)
        if query:
            joined = pc.if_else(absolute, joined, pc.binary_join_element_wise(joined, sep + query, ""))
        return joined, above

    def unread(self, paths: pa.Array, fix: str) -> tuple[int, str] | None:
        """The first of ``paths`` that no filesystem here reads — a whole URI of a scheme no pyarrow filesystem reads
        (``https://``), or on Linux or macOS a Windows path (``C:\\music\\a.wav``; unless such a file exists:
        :func:`~repeval.uri_text.windows_unread`) — with what to say of it (``fix``: of a scheme); ``None`` when there
        is none. Each track's decode would fail alike. One check per distinct scheme."""
        schemes = pc.struct_field(pc.extract_regex(paths, r"^(?P<s>[A-Za-z][A-Za-z0-9+.-]+)://"), "s")
        unread = [s for s in pc.unique(schemes.drop_null()).to_pylist() if unread_scheme(f"{s}://") is not None]
        at = pc.index(pc.is_in(schemes, pa.array(unread, pa.string())), True).as_py() if unread else -1
        windows = pc.match_substring_regex(paths, WINDOWS).to_numpy(zero_copy_only=False)
        base = "" if "://" in self.base else self.base  # (relative to a URI: a local file of that name)
        for row in np.flatnonzero(windows[: at if at >= 0 else None]):  # a few rows, unless such files exist
            if windows_unread(path := paths[int(row)].as_py(), base):
                return int(row), windows_fix(path)
        if at < 0:
            return None
        return at, scheme_refusal(paths[at].as_py(), schemes[at].as_py(), fix)

    def above_why(self, path: str) -> str:
        """Why a row whose audio path ``path`` (as written) climbs above its bucket (its own, a URI's; else that of
        :attr:`base`) is left out, with the fix."""
        if "://" in path:
            u = urlsplit(path)
            return f"audio path {path!r} climbs out of its bucket {u.scheme}://{u.netloc} — correct its '..' steps"
        u = urlsplit(self.base)
        return (
            f"audio path {path!r} climbs out of bucket {u.scheme}://{u.netloc} (where relative paths start: {self.base}, dataset.dir, else "
            "the manifest's folder) — correct its '..' steps, or write a file of another bucket as its whole URI "
            "(s3://BUCKET/KEY)"
        )

    def existing(self, full: pa.Array, ok: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        """``full`` (:meth:`resolve`) with each file named in the other Unicode normalization than on disk written as
        on disk, and which of the rows in ``ok`` name a file that does not exist (none without ``check_files``)."""
        gone = np.zeros(len(full), dtype=bool)
        if not self.check_files or not ok.any():
            return full, gone
        uniq = pc.unique(full.filter(pa.array(ok))).to_pylist()
        absent = [p for p, e in zip(uniq, self.files.exists(uniq), strict=True) if not e]
        if absent and (renamed := missing.other_normalization(absent)):
            # the file's name in another Unicode normalization (macOS's NFD): read from the file that exists
            pos = pc.index_in(full, value_set=pa.array(list(renamed), pa.string()))
            self.renormalized += int(pc.sum(pc.is_valid(pos).filter(pa.array(ok))).as_py() or 0)
            self.renormalized_example = self.renormalized_example or next(iter(renamed.items()))
            full = pc.coalesce(pa.array(list(renamed.values()), pa.string()).take(pos), full)
            absent = [p for p in absent if p not in renamed]
        if absent:
            gone = pc.fill_null(pc.is_in(full, value_set=pa.array(absent, pa.string())), False)
            gone = gone.to_numpy(zero_copy_only=False) & ok
        return full, gone

    def normalization_note(self) -> str | None:
        """A note of the :attr:`renormalized` rows, naming one; ``None`` when there were none."""
        if not self.renormalized_example:
            return None
        path, file = (p.rsplit("/", 1)[-1] for p in self.renormalized_example)
        form = "decomposed, NFD, as macOS writes names" if unicodedata.is_normalized("NFD", file) else "composed, NFC"
        path, file = (name.encode("ascii", "backslashreplace").decode() for name in (path, file))
        n = self.renormalized
        return (
            f"{n} audio path{'s name files' if n > 1 else ' names a file'} whose name{'s are' if n > 1 else ' is'} "
            f"written in another Unicode normalization on disk (e.g. '{path}' is '{file}': {form}): read from "
            f"{'those files' if n > 1 else 'that file'}"
        )


def _uri_key(uri: str) -> str:
    """A remote URI as one object's name: its scheme in lower case (``gcs://`` is ``gs://``), its ``.`` and ``..``
    steps resolved, its query (another server's: ``?endpoint_override=…``) kept."""
    body, sep, query = uri.partition("?")
    scheme, rest = body.split("://", 1)
    scheme = "gs" if scheme.lower() == "gcs" else scheme.lower()
    return f"{scheme}://{posixpath.normpath(unquote(rest))}{sep}{query}"  # 'my%20song.wav' is 'my song.wav' to pyarrow


class _FileKeys:
    """One name per audio file (:func:`same_files`): a local path's folder resolved through its symlinks, once per
    folder; a remote URI's :func:`_uri_key`."""

    def __init__(self) -> None:
        self._real = functools.lru_cache(maxsize=4096)(os.path.realpath)

    def key(self, path: str) -> str:
        """The file's name with its folder resolved: ``link/../b.wav`` as the system opens it (the link's target's
        parent's ``b.wav``), a ``file://`` URI as its local path."""
        if "://" in path:
            scheme, rest = parseable(path).split("://", 1)  # file://localhost/d is file:///d
            if scheme.lower() != "file" or not rest.startswith("/") or "?" in rest:
                return _uri_key(path)
            path = unquote(rest)
        folder, name = os.path.split(path)
        if name in ("", ".", ".."):
            return os.path.realpath(path)
        return os.path.join(self._real(folder or "."), name)

    def keys(self, paths: pa.Array) -> pa.Array:
        """:meth:`key` of each of ``paths`` (no null): a plain local path's by Arrow kernels, its folder resolved once
        per distinct folder; a URI's or one ending in ``/``, ``.`` or ``..`` one by one."""
        odd = pc.match_substring_regex(paths, r"://|(^|/)\.{0,2}$").to_numpy(zero_copy_only=False)
        parts = pc.extract_regex(paths, r"^(?P<folder>.*/)?(?P<name>[^/]*)$")
        folder, name = pc.struct_field(parts, "folder"), pc.struct_field(parts, "name")
        folders = pc.unique(folder)
        real = pa.array([self._real(f or ".").rstrip("/") for f in folders.to_pylist()], pa.string())
        out = pc.binary_join_element_wise(real.take(pc.index_in(folder, value_set=folders)), name, "/")
        if odd.any():
            idx = np.flatnonzero(odd)
            out = _with_rows(out, idx, [self.key(p) for p in paths.take(pa.array(idx)).to_pylist()])
        return out


def _identity(key: str) -> tuple[int, int] | str:
    """The file a local :meth:`_FileKeys.key` names as the system finds it (device and inode: through a symlinked
    file, or a hard link); a URI's key, or a file that is not there, as it is."""
    if "://" in key:
        return key
    try:
        st = os.stat(key)
    except OSError:
        return key
    return st.st_dev, st.st_ino


def same_files(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each pair of audio paths ``a[i]``, ``b[i]`` names one file, as the system opens it: the same text, else
    the same real path of a local file (``x/../b.wav`` and ``b.wav``; through a symlinked folder; ``file:///d/b.wav``
    and ``/d/b.wav``), the same file (a symlinked file, a hard link) or the same object (``s3://b/x/../a.wav`` and
    ``s3://b/a.wav``). Only the pairs whose text differs are looked at: their folders' ``os.path.realpath`` once per
    folder, then one ``stat`` of each file of the pairs still apart — not a ``stat`` per row. A null is no file."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    same = np.array(pc.fill_null(pc.equal(a, b), False).to_numpy(zero_copy_only=False), dtype=bool)
    both = pc.and_(pc.is_valid(a), pc.is_valid(b)).to_numpy(zero_copy_only=False)
    at = np.flatnonzero(~same & both)
    if not len(at):
        return same
    names = _FileKeys()
    ka, kb = names.keys(a.take(pa.array(at))), names.keys(b.take(pa.array(at)))
    same[at] = pc.equal(ka, kb).to_numpy(zero_copy_only=False)
    apart = np.flatnonzero(~same[at])
    for i, x, y in zip(at[apart], ka.take(apart).to_pylist(), kb.take(apart).to_pylist(), strict=True):
        same[i] = _identity(x) == _identity(y)
    return same
