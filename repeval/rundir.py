"""Where a run directory lives: a local path or any pyarrow filesystem URI (``run.runs_dir`` / ``--runs-dir``).

A run directory ``<runs_dir>/<run_id>`` holds the driver's small files (``config.yaml``,
``splits/``, ``groups/``, ``history/``, ``failed.parquet``, ``results.parquet``) and the Ray Tune
experiments (``tune/``).

- **Local** (a path, or a ``file://`` URI): used in place. On several nodes it must be a path
  shared by all of them (NFS), because Tune trials persist results from the node they ran on.
- **Anything else** (``s3://``, ``gs://``, an S3-compatible server with
  ``?endpoint_override=host:port&scheme=http``, ...):

  - Ray Tune writes straight to ``<runs_dir>/<run_id>/tune`` (its ``storage_path``, a URI with
    the same query), from whichever node runs a trial;
  - the small files live in a local staging directory (:attr:`RunLocation.local`, what the rest
    of repeval reads and writes as ``ctx.run_dir``): :meth:`RunLocation.pull` fills it from the
    remote copy when a run context is made, so a rerun anywhere resumes from what the bucket
    holds, and :meth:`RunLocation.push` uploads what changed — the CLI pushes at the end of
    every stage, also when the stage fails, so finished groups are never lost.

Credentials are the filesystem's usual ones (``AWS_*`` variables, instance roles, application
default credentials), or user info in the URI (``s3://KEY:SECRET@bucket/prefix``).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from repeval.cloud_reach import GCS_SCHEMES, filesystem
from repeval.run.files import copy_hashed, damaged, file_hash, parquet_error
from repeval.run.status import STATUS, command_line
from repeval.words import counted

log = logging.getLogger(__name__)

#: the sub-directory Ray Tune owns (written by Tune itself, never staged)
TUNE_DIR = "tune"
#: the rows each dataset's loader dropped (missing audio, duplicate ids, unusable labels), per ``<task>__<dataset>``
LOAD_REPORT = "load_report.json"
#: ``results.parquet``'s and ``summary.parquet``'s schema metadata key: a hash of the results table, the same in
#: both files when ``summary.parquet`` was computed from that ``results.parquet`` (:func:`summary_mismatch`)
EVALUATION_KEY = b"repeval.evaluation"
#: ``results.parquet``'s schema metadata: the run's ``config.yaml`` as the evaluation that wrote it had it (a later
#: command that failed, with another configuration, rewrites ``config.yaml`` but not the results)
CONFIG_KEY = b"repeval.config"
#: ``results.parquet``'s schema metadata: the probe grids of the configuration its evaluation collected (a JSON list of
#: :func:`grid_name`); the failures in ``failed.parquet`` of other grids are left out of what ``repeval runs`` and the
#: report count, as their ``groups/`` files are left out of the results
GROUPS_KEY = b"repeval.groups"
#: ``results.parquet``'s schema metadata: the probe grids of the configuration that were not trained when it was
#: evaluated (a JSON list of :func:`grid_name`; absent when every one was): the results lack them, and ``repeval runs``
#: says the run is partly trained
UNTRAINED_KEY = b"repeval.untrained"


def grid_name(task: str, dataset: str, model: str, fold: Any = None) -> str:
    """A probe grid's name, ``<task>__<dataset>__<model>[__fold<k>]`` (``groups/<name>.parquet``; NaN: no fold)."""
    return f"{task}__{dataset}__{model}" + ("" if fold is None or fold != fold else f"__fold{int(fold)}")


def first_failures(rows: Iterable[Mapping[str, Any]], grids: set[str]) -> dict[str, str]:
    """Of ``grids``, those whose probe trainings ``failed.parquet``'s ``rows`` record as failed (a row without a
    ``scenario``), each with its first failure: ``probe M1, seed 0: <reason>``, in order of the grids' names."""
    said: dict[str, str] = {}
    for r in rows:
        name = grid_name(r["task"], r["dataset"], r["model"], r.get("fold"))
        if name in grids and r.get("scenario") is None and name not in said:
            said[name] = f"probe {r.get('probe')}, seed {r.get('seed')}: {r.get('reason')}"
    return dict(sorted(said.items()))


def every_training_failed(failed: Mapping[str, str], whose: str = "this", line: str = "`repeval run`") -> str:
    """What to say of the grids of a configuration (``whose``: ``this``, ``its``) trained but without results, every
    training of theirs failed (``failed``: :func:`first_failures`): no probe of them trained, why, and the fix —
    trained again as configured they fail alike, so change what the reason names, then ``line`` trains them."""
    one = len(failed) == 1
    named = "; ".join(f"{g} ({why})" for g, why in list(failed.items())[:5]) + ("; …" if len(failed) > 5 else "")
    it = "it" if one else "them"
    return (
        f"{counted(len(failed), 'probe grid')} of {whose} configuration {'was' if one else 'were'} trained but every "
        f"training failed, no probe of {it} trained: {named} — the results lack {it} (failed.parquet has each "
        f"failure); trained again as configured {'it fails' if one else 'they fail'} alike: change what the reason "
        f"names (the probe's settings in the configuration), then {line} trains {it} again"
    )


def recorded_grids(footer: Any) -> set[str] | None:
    """The grids ``results.parquet``'s evaluation collected (:data:`GROUPS_KEY`) from its footer; ``None`` when it did
    not record them (results written before it, or without a configuration): then every failure counts."""
    grids = _recorded_list(footer, GROUPS_KEY)
    return set(grids) if grids is not None else None


def recorded_untrained(footer: Any) -> list[str]:
    """The grids of the configuration not trained when ``results.parquet`` was evaluated (:data:`UNTRAINED_KEY`), from
    its footer; none when every one was (or the results do not say)."""
    return _recorded_list(footer, UNTRAINED_KEY) or []


def _recorded_list(footer: Any, key: bytes) -> list[str] | None:
    """The JSON list of names under ``key`` in a footer's schema metadata; ``None`` when it is absent or unreadable."""
    import json

    raw = ((footer.metadata or {}) if footer is not None else {}).get(key)
    try:
        names = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def summary_mismatch(
    fs: pafs.FileSystem, path: str, results_footer: Any = None, status: dict[str, Any] | None = None
) -> str | None:
    """Why the run at ``path`` has no ``summary.parquet`` of its ``results.parquet`` — an evaluation stopped (Ctrl-C,
    a crash, an upload cut short) between writing the two — or ``None``: they match, there are no results, or the
    results were written before repeval recorded :data:`EVALUATION_KEY` (then it cannot tell). Reads the footers;
    ``results_footer``: ``results.parquet``'s (``pyarrow.parquet.read_metadata``), when the caller has read it. The
    fix it names is the run's own ``repeval evaluate`` command line (:func:`~repeval.run.status.command_line`) when
    its ``status.json`` (``status``, when the caller has read it) records one."""
    import pyarrow.parquet as pq

    def token(name: str, footer: Any = None) -> bytes | None:
        footer = footer if footer is not None else pq.read_metadata(f"{path}/{name}", filesystem=fs)
        return (footer.metadata or {}).get(EVALUATION_KEY)

    try:
        results = token("results.parquet", results_footer)
    except (OSError, pa.ArrowInvalid):  # missing, or unreadable: said by the caller (repeval runs, the report)
        return None
    if results is None:
        return None

    def fix() -> str:
        return evaluate_fix(fs, path, status)

    try:
        summary = token("summary.parquet")
    except FileNotFoundError:
        return f"summary.parquet is missing: its evaluation stopped after writing results.parquet; {fix()}"
    except PermissionError as exc:  # whole, maybe, and another user's: evaluating again is not the fix
        return f"summary.parquet is unreadable (permission denied): {damaged(exc, '')}"
    except (OSError, pa.ArrowInvalid) as exc:  # cut short, corrupted
        return f"summary.parquet is unreadable ({parquet_error(exc)}); {fix()}"
    if summary != results:
        return (
            "summary.parquet is not the summary of results.parquet (an evaluation stopped between writing the two): "
            f"it is stale; {fix()}"
        )
    return None


def evaluate_fix(fs: pafs.FileSystem, path: str, status: dict[str, Any] | None = None) -> str:
    """What writes the run at ``path``'s ``results.parquet`` and ``summary.parquet`` anew from its trained grids
    (``groups/``), nothing trained again: its own ``repeval evaluate`` command line when its ``status.json``
    (``status``, when the caller has read it) records one."""
    line = command_line(json_at(fs, path, STATUS) if status is None else status, "evaluate")
    return f"rerun {f'`{line}`' if line else '`repeval evaluate` on the run'} (it rewrites both from groups/)"


class EarlierStageUnfinished(FileNotFoundError):
    """A command found nothing to do because an earlier stage of the run is unfinished (``repeval evaluate`` without a
    trained grid, ``repeval train`` before the embeddings are computed): a step out of order, not a failure, it leaves
    the run's recorded state as it was (an interrupted ``repeval run`` stays interrupted; a run with none recorded has
    none — :func:`~repeval.run.status.restore_status`). Its message names each command it asks for as ``repeval
    <stage> CONFIG``; the CLI names them as full command lines (:meth:`naming`)."""

    def naming(self, line: Callable[[str], str]) -> EarlierStageUnfinished:
        """This message with each command it names (```repeval train CONFIG```) as the command line ``line(stage)``
        gives — with the run's own ``--run-id``, ``--store`` and ``--runs-dir``: followed literally, ``repeval train
        CONFIG`` would train another run, or into another store."""
        said = str(self)
        for stage in ("embed", "deform", "train", "evaluate", "run"):
            said = said.replace(f"`repeval {stage} CONFIG`", f"`{line(stage)}`")
        return EarlierStageUnfinished(said)


def json_at(fs: pafs.FileSystem, path: str, name: str) -> dict[str, Any]:
    """A small JSON file of the run directory at ``path`` on ``fs`` (a bucket too) — ``status.json`` (its last
    command's state), ``load_report.json`` (the rows its datasets dropped) — ``{}`` when missing or unreadable."""
    return json_read(fs, path, name)[0]


def json_read(fs: pafs.FileSystem, path: str, name: str) -> tuple[dict[str, Any], OSError | None]:
    """:func:`json_at`, and the error when this user may not read the file (another user's, a bucket's key refused:
    :func:`repeval.cloud_reach.refused`) — not missing, what it records unknown —, else ``None``."""
    import json

    from repeval.cloud_reach import refused

    try:
        with fs.open_input_stream(f"{path}/{name}") as fh:
            body = json.loads(fh.read().decode())
    except OSError as exc:
        return {}, exc if refused(exc) else None
    except ValueError:
        return {}, None
    return body if isinstance(body, dict) else {}, None


def is_uri(location: str) -> bool:
    return "://" in str(location)


def filesystem_of(location: str) -> tuple[pafs.FileSystem, str]:
    """``(pyarrow filesystem, path)`` of a local path (made absolute) or a filesystem URI."""
    if is_uri(location):
        fs, path = filesystem(location)
        return fs, path.rstrip("/") or "/"
    return pafs.LocalFileSystem(), os.path.abspath(location)


def join_uri(uri: str, *parts: str) -> str:
    """``join_uri("s3://b/runs?scheme=http", "r1", "tune")`` → ``"s3://b/runs/r1/tune?scheme=http"``."""
    base, sep, query = uri.partition("?")
    tail = "/".join(p.strip("/") for p in parts if p)
    return f"{base.rstrip('/')}/{tail}{sep}{query}"


def folder_of(location: str) -> str:
    """The folder that holds ``location`` (a path as given, or a URI, its query kept), for a command line."""
    if is_uri(location):
        base, sep, query = location.partition("?")
        return base.rstrip("/").rsplit("/", 1)[0] + sep + query
    return os.path.dirname(location.rstrip("/")) or "."


def in_folder(location: str, name: str) -> str:
    """``name`` in the folder ``location`` (a path as given, or a URI, its query kept), for a command line."""
    return join_uri(location, name) if is_uri(location) else os.path.join(location, name)


@dataclass
class RunLocation:
    """One run directory: where it lives (``uri``, ``fs``, ``path``) and its local working copy (``local``)."""

    uri: str
    fs: pafs.FileSystem
    path: str
    local: Path
    staged: bool
    _synced: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    #: each file's sha256 as last pulled or pushed: a file written anew with the same bytes (a resumed run's
    #: evaluation rewriting its results) is not uploaded again
    _hashes: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, runs_dir: str, run_id: str, pull: bool = True) -> RunLocation:
        """The location of ``<runs_dir>/<run_id>``; remote ones are staged locally (and pulled unless ``pull=False``)."""
        if not is_uri(runs_dir):
            local = Path(runs_dir).resolve() / run_id
            return cls(str(local), pafs.LocalFileSystem(), str(local), local, staged=False)
        uri = join_uri(runs_dir, run_id)
        fs, path = filesystem(uri)
        path = path.rstrip("/")
        if isinstance(fs, pafs.LocalFileSystem):
            return cls(uri, fs, path, Path(path), staged=False)
        local = Path(tempfile.mkdtemp(prefix=f"repeval-run-{run_id}-"))
        atexit.register(shutil.rmtree, local, True)
        loc = cls(uri, fs, path, local, staged=True)
        _STAGED[local.resolve()] = loc.display
        if pull:
            loc.pull()
        return loc

    @property
    def display(self) -> str:
        """What to show the user: the URI (without its query) or the local path."""
        return self.uri.partition("?")[0] if self.staged else str(self.local)

    @property
    def tune_storage(self) -> str:
        """Ray Tune's ``storage_path``: a URI for remote run directories, else the local ``tune/`` path."""
        return join_uri(self.uri, TUNE_DIR) if self.staged else str(self.local / TUNE_DIR)

    def file(self, relpath: str) -> str:
        """Where a file of the run directory lives (a URI or a local path), for messages."""
        return join_uri(self.uri, relpath).partition("?")[0] if self.staged else str(self.local / relpath)

    def reach(self, relpath: str = "") -> str:
        """The run directory, or a file of it, as a command or pyarrow reaches it: a bucket's URI with its query (an
        S3-compatible store's ``?endpoint_override=…``, which :attr:`display` and :meth:`file` drop), or a local path."""
        if self.staged:
            return join_uri(self.uri, relpath) if relpath else self.uri
        return str(self.local / relpath) if relpath else str(self.local)

    # --- staging ------------------------------------------------------------------------------

    def _remote_files(
        self, sub: str = "", skip: Callable[[str], bool] | None = None, skipped: list[str] | None = None
    ) -> list[tuple[str, pafs.FileInfo]]:
        """(relative path, info) of every remote file except under ``tune/`` (which can be large) and those ``skip``
        takes (given each file's path in the run, and each folder's ending in ``/``: a folder it takes is not listed);
        the paths left out (``tune/``'s too) are put in ``skipped``."""
        out: list[tuple[str, pafs.FileInfo]] = []
        base = f"{self.path}/{sub}".rstrip("/")
        for info in self.fs.get_file_info(pafs.FileSelector(base, allow_not_found=True)):
            rel = info.path[len(self.path) :].strip("/")
            is_dir = info.type == pafs.FileType.Directory
            if rel == TUNE_DIR or (skip is not None and skip(f"{rel}/" if is_dir else rel)):
                if skipped is not None:
                    skipped.append(f"{rel}/" if is_dir else rel)
            elif is_dir:
                out.extend(self._remote_files(rel, skip, skipped))
            elif info.type == pafs.FileType.File:
                out.append((rel, info))
        return out

    def _local_files(self) -> dict[str, tuple[int, int]]:
        out = {}
        for root, dirs, files in os.walk(self.local):
            if Path(root) == self.local and TUNE_DIR in dirs:
                dirs.remove(TUNE_DIR)
            for name in files:
                if name.endswith(".tmp"):
                    continue  # a file being written (committed by a rename)
                p = Path(root) / name
                st = p.stat()
                out[p.relative_to(self.local).as_posix()] = (st.st_size, st.st_mtime_ns)
        return out

    def pull(
        self,
        refused: dict[str, tuple[str, str, str]] | None = None,
        skip: Callable[[str], bool] | None = None,
        skipped: list[str] | None = None,
    ) -> int:
        """Replace the staging directory with the remote run directory's files (not ``tune/``); returns the count.
        Each pulled file keeps the remote copy's modification time when the filesystem reports one (an object's
        upload time on a bucket): what tells an earlier repeval's group record from a partition embedded anew after
        it (:func:`repeval.run.groups.recorded_inputs`), which the pull's own time would hide. ``refused`` (a reader:
        `repeval table|report`): a file this user may not read is left out, its path → (its URI, why, the fix) put
        there. ``skip`` (a reader's): the files and folders it takes — given each file's path in the run, each
        folder's ending in ``/`` — are neither listed nor pulled (:meth:`_remote_files`), their paths put in
        ``skipped``."""
        from repeval.cloud_reach import refusal

        if not self.staged:
            return 0
        for child in self.local.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        self._hashes.clear()
        n = 0
        for rel, info, digest, exc in self._fetched(self._remote_files(skip=skip, skipped=skipped)):
            if exc is not None:
                if refused is None:  # a command going on with the run: it stops, naming the file, not pyarrow's key
                    why, fix = refusal(exc)
                    raise PermissionError(
                        f"{self.file(rel)} is unreadable ({why}): a file of run {self.display}, which this command "
                        f"copies here to go on with the run, so it stops before changing anything — {fix}"
                    ) from None
                refused[rel] = (self.file(rel), *refusal(exc))
                continue
            self._hashes[rel] = digest
            if info.mtime_ns is not None:
                os.utime(self.local / rel, ns=(info.mtime_ns, info.mtime_ns))
            n += 1
        self._synced = self._local_files()
        if n:
            log.info("pulled %s of %s into %s", counted(n, "file"), self.display, self.local)
        return n

    def _fetched(self, files: list[tuple[str, pafs.FileInfo]]) -> list[tuple[str, pafs.FileInfo, str, OSError | None]]:
        """Each of ``files`` (path in the run, info) copied from the remote run directory into the staging one,
        :data:`COPY_THREADS` at a time (on a bucket each is a round trip): (path, info, its sha256, ``None``), or
        (path, info, ``""``, the error) for a file this user may not read (left out); another error raises, the
        copies not begun cancelled."""
        from concurrent.futures import ThreadPoolExecutor

        from repeval.cloud_reach import refused

        def fetch(item: tuple[str, pafs.FileInfo]) -> tuple[str, pafs.FileInfo, str, OSError | None]:
            rel, info = item
            dest = self.local / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with self.fs.open_input_stream(f"{self.path}/{rel}") as src, open(dest, "wb") as out:
                    return rel, info, copy_hashed(src, out), None
            except OSError as exc:
                if not refused(exc):
                    raise
                dest.unlink(missing_ok=True)
                return rel, info, "", exc

        if len(files) < 2:
            return [fetch(f) for f in files]
        pool = ThreadPoolExecutor(min(COPY_THREADS, len(files)), thread_name_prefix="repeval-pull")
        try:
            return list(pool.map(fetch, files))
        finally:
            pool.shutdown(cancel_futures=True)

    def push(self) -> int:
        """Upload the staged files that are new or changed since the last pull/push; returns the count."""
        if not self.staged:
            return 0
        now = self._local_files()
        changed = sorted(rel for rel, sig in now.items() if self._synced.get(rel) != sig)
        for rel in [r for r in changed if r in self._hashes and self._synced[r][0] == now[r][0]]:
            if file_hash(self.local / rel) == self._hashes[rel]:  # written anew with the bytes it had: not uploaded
                changed.remove(rel)
                self._synced[rel] = now[rel]
        for parent in dict.fromkeys(f"{self.path}/{rel}".rsplit("/", 1)[0] for rel in changed):
            self.fs.create_dir(parent, recursive=True)
        # results.parquet last, once every other file is up: it is what tells a reader that the run is complete
        last = [rel for rel in changed if rel == "results.parquet"]
        held = ", nor its results.parquet, which is uploaded once every other file is up" if last else ""
        self._uploaded([rel for rel in changed if rel != "results.parquet"], now, held)
        self._uploaded(last, now)
        if changed:
            log.info("pushed %s to %s", counted(len(changed), "file"), self.display)
        return len(changed)

    def _uploaded(self, rels: list[str], now: dict[str, tuple[int, int]], held: str = "") -> None:
        """Upload the staged files ``rels`` (paths in the run; ``now``: their size and time), :data:`COPY_THREADS` at
        a time; each one uploaded is recorded as pushed, and the first error, if any, raised once the others are
        up (a stage that failed still pushes all it can: finished groups are never lost), after a warning naming the
        files not uploaded and ``held`` (what is then not uploaded) unless the error says it all (one file, none held). Ctrl-C (or another error) stops it: the uploads
        under way end, those not begun are not begun."""
        from concurrent.futures import ThreadPoolExecutor

        def upload(rel: str) -> str:
            with open(self.local / rel, "rb") as src, self.fs.open_output_stream(f"{self.path}/{rel}") as out:
                return copy_hashed(src, out)

        if not rels:
            return
        failed: list[tuple[str, OSError]] = []
        pool = ThreadPoolExecutor(min(COPY_THREADS, len(rels)), thread_name_prefix="repeval-push")
        try:
            for rel, done in [(rel, pool.submit(upload, rel)) for rel in rels]:
                try:
                    self._hashes[rel] = done.result()
                except OSError as exc:
                    failed.append((rel, exc))
                    continue
                self._synced[rel] = now[rel]
        finally:  # Python's exit, too, would wait for every upload queued
            pool.shutdown(cancel_futures=True)
        if len(failed) > 1 or (failed and held):  # one file alone, nothing held back: its error says it all
            left = [rel for rel, _ in failed[:5]] + (["…"] if len(failed) > 5 else [])
            log.warning(
                "%s of run %s %s not uploaded (%s)%s; %s error follows",
                counted(len(failed), "file"),
                self.display,
                "was" if len(failed) == 1 else "were",
                ", ".join(left),
                held,
                "its" if len(failed) == 1 else "the first one's",
            )
        if failed:
            raise failed[0][1]


#: the files :class:`RunLocation` copies to or from a bucket at once (each a round trip: a run of a few hundred
#: grids' ``groups/`` files took seconds one at a time)
COPY_THREADS = 8

#: each staging directory of this process → the URI of the run directory it is a copy of (without its query)
_STAGED: dict[Path, str] = {}


def staged_from(local: Path) -> str | None:
    """The URI of the remote run directory ``local`` is the staging copy of (:meth:`RunLocation.open`), ``None`` for a
    run directory used in place: what to name a run by to the user, rather than its temporary folder."""
    return _STAGED.get(Path(local).resolve())


class TuneStorage:
    """Ray Tune's ``storage_path`` — a local path or a URI — with the few file operations done around Tune.

    ``uri(name)`` is what ``tune.Tuner.restore`` / ``can_restore`` take; markers and moves go through
    pyarrow.fs, so the same code serves a local directory and a bucket.
    """

    def __init__(self, storage_path: str) -> None:
        self.storage_path = str(storage_path)
        if is_uri(self.storage_path):
            self.fs, base = filesystem(self.storage_path)
            self.base = base.rstrip("/")
        else:
            self.fs, self.base = pafs.LocalFileSystem(), str(Path(self.storage_path).resolve())

    def uri(self, name: str) -> str:
        return join_uri(self.storage_path, name) if is_uri(self.storage_path) else f"{self.base}/{name}"

    def for_tune(self, name: str = "") -> tuple[str, pafs.FileSystem | None]:
        """What Ray Tune is given for the storage root (``RunConfig``'s ``storage_path``, ``storage_filesystem``), or
        for experiment ``name`` (``Tuner.restore`` / ``can_restore``'s ``path``, ``storage_filesystem``): on ``gs://``
        this storage's filesystem, bounded (:func:`repeval.cloud_reach.filesystem`), and its path — given the URI,
        Tune opened it with Google Cloud Storage's own 15 minutes of retries; elsewhere the URI or local path alone,
        as always."""
        if not is_uri(self.storage_path) or self.storage_path.split("://", 1)[0].lower() not in GCS_SCHEMES:
            return (self.uri(name) if name else self.storage_path), None
        return (f"{self.base}/{name}" if name else self.base), self.fs

    def exists(self, name: str) -> bool:
        """Whether file or folder ``name`` is there; one this user may not read, or a bucket out of reach, raises
        (:meth:`unread`) — read as missing, a plan counted the probes it names as gone."""
        try:
            return self.fs.get_file_info(f"{self.base}/{name}").type != pafs.FileType.NotFound
        except OSError as exc:
            raise self.unread(name, exc) from None

    def read_text(self, name: str) -> str | None:
        """The text of file ``name``; ``None`` when it is not there. One this user may not read (a bucket's access
        denied) or a bucket out of reach raises (:meth:`unread`): read as missing, a run trained again — and moved
        aside — an experiment whose results are there."""
        try:
            with self.fs.open_input_stream(f"{self.base}/{name}") as f:
                return f.read().decode()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self.unread(name, exc) from None

    def write_text(self, name: str, text: str) -> None:
        """Write a small file whole: locally under a temporary name, then renamed (a driver killed mid-write
        leaves the old file or none, never an empty one); an object store's put is already all or nothing."""
        self.fs.create_dir(self.base, recursive=True)
        dest = f"{self.base}/{name}"
        local = isinstance(self.fs, pafs.LocalFileSystem)
        target = f"{self.base}/.{name}.tmp" if local else dest
        with self.fs.open_output_stream(target) as f:
            f.write(text.encode())
        if local:
            self.fs.move(target, dest)

    def names(self, under: str = "") -> list[str]:
        """Names of the files and directories directly under the storage root, or under its ``under`` directory
        (one listing; none when it does not exist)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(f"{self.base}/{under}".rstrip("/"), allow_not_found=True))
        except FileNotFoundError:
            return []
        except OSError as exc:  # refused or out of reach: not "none there" (:meth:`read_text`)
            raise self.unread(under, exc) from None
        return [i.path.rstrip("/").rsplit("/", 1)[-1] for i in infos]

    def unread(self, name: str, exc: OSError) -> OSError:
        """The error for file or folder ``name`` (``""``: the storage root) that could not be read (``exc``): this
        user may not read it — a ``PermissionError`` naming the credentials or permissions to check
        (:func:`repeval.cloud_reach.refusal`) — or the bucket is out of reach (what to check:
        :func:`repeval.cloud_reach.bucket_error`); either says that the run stopped before changing anything there."""
        import errno

        from repeval.cloud_reach import bucket_error, error_line, refusal, refused

        where = self.uri(name).split("?", 1)[0] if name else self.storage_path.split("?", 1)[0]
        kept = "stopped: nothing there was taken as missing, moved or overwritten — run again once it can be read"
        if refused(exc):
            why, fix = refusal(exc)
            denied = PermissionError(f"Ray Tune storage {where}: {why} — {fix}; {kept}")
            denied.errno = exc.errno or errno.EACCES  # still a storage error (``repeval.cli.errors._storage_hint``)
            return denied
        text, check = bucket_error(str(exc).strip(), self.storage_path)
        said = OSError(f"Ray Tune storage {where} could not be read ({error_line(OSError(text))}){check}; {kept}")
        said.errno = exc.errno
        return said

    def has_experiment_state(self, name: str) -> bool:
        """Whether the Tune experiment ``name`` holds an ``experiment_state-*.json`` (what ``Tuner.restore`` resumes
        its trials from; ``Tuner.can_restore`` looks only for the tuner's own file, written first): one listing."""
        return any(n.startswith("experiment_state-") and n.endswith(".json") for n in self.names(name))

    def delete(self, name: str) -> None:
        """Delete a file or directory (and everything under it); nothing when it does not exist."""
        path = f"{self.base}/{name}"
        info = self.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(path)

    def move(self, name: str, new_name: str) -> None:
        """Rename a file or directory (on object stores a copy, then a delete)."""
        src, dst = f"{self.base}/{name}", f"{self.base}/{new_name}"
        if isinstance(self.fs, pafs.LocalFileSystem):
            self.fs.move(src, dst)
            return
        info = self.fs.get_file_info(src)
        if info.type == pafs.FileType.Directory:
            pafs.copy_files(src, dst, source_filesystem=self.fs, destination_filesystem=self.fs)
            self.fs.delete_dir(src)
        else:
            self.fs.copy_file(src, dst)
            self.fs.delete_file(src)
