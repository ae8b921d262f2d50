"""``repeval data check``: find the audio files of a configuration's datasets that a run would turn into error records,
before the run.

The datasets are loaded as a run loads them (:func:`repeval.runner.load_rows`: the same loaders, rows, caps and
missing-file handling); each dataset's audio paths, de-duplicated across its experiments and folds, are checked in
a thread pool (no Ray). What a file is checked with is what the run's decode stage runs on it
(:mod:`repeval.audio.decode`), so a reason here is the reason of the error record the run would write:

- by default, :func:`~repeval.audio.decode._open` — a regular file, not cut short, not zero-filled, not a VBR MP3
  without a Xing header (:mod:`repeval.audio.integrity`), a header libsndfile opens, and audio frames in it (a WAV,
  AIFF or Ogg file of 0 frames, a FLAC with none after its header: :mod:`repeval.audio.empty`); nothing is decoded;
- with ``decode``, also the whole file through :func:`~repeval.audio.decode.iter_blocks` at the file's own rate:
  every check the decode stage makes on samples (data corrupt part-way, no samples, NaN/inf, samples far beyond
  full scale) is made on the file's frames before they are resampled, so the rate does not change what is found,
  and at the file's own rate nothing is resampled (the cheapest full read). A file of a few frames is decoded at
  the lowest rate the dataset's models run at instead, where a run would find it has less than one sample. The files
  a run decodes only in part (:mod:`repeval.audio.partial`: cut short, under ``run.truncated_audio: decode``; an Ogg
  file without its end) are listed with the ``audio_note`` their rows would carry; they are not bad.

``--out`` lists every row to fix (:class:`_OutFile`): each dataset's rows dropped because their audio file does not
exist (reason ``missing: …``, :func:`repeval.datasets.missing.reason`; read from the loads' reports as data — track
id and path apart, every row — never parsed back from their messages), then its bad files with the error record's
reason.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from repeval.audio.decode import _open, error_reason, iter_blocks
from repeval.audio.partial import DECODE_HINT, DEFAULT_TRUNCATED_AUDIO, TruncatedAudio
from repeval.datasets import missing as missing_rows
from repeval.datasets.base import LoadReport
from repeval.datasets.missing import MISSING_SCHEMA, MissingTracks

T = TypeVar("T")
R = TypeVar("R")

#: the bad files each dataset's summary quotes (``--out`` lists them all)
SHOWN = 5

#: files in flight per worker: enough to keep every worker busy, few enough to hold a million rows' check in
#: bounded memory (the results come back in the rows' order)
IN_FLIGHT_PER_WORKER = 4

#: a file of fewer frames than this many samples at the dataset's lowest model rate is decoded at that rate
#: (``decode``): whether it makes at least one sample there is what the run finds
FEW_SAMPLES = 16

#: the columns of ``--out``
OUT_SCHEMA = pa.schema(
    [("dataset", pa.string()), ("track_id", pa.string()), ("audio_path", pa.string()), ("reason", pa.string())]
)

#: rows of ``--out`` written at a time
OUT_BATCH_ROWS = 10_000

#: the exit status of ``repeval data check`` when ``--out`` could not be written (the summary is printed whole)
OUT_ERROR_EXIT = 3


@dataclass
class DatasetCheck:
    """What was found in one dataset's audio."""

    name: str
    #: distinct audio files checked
    checked: int = 0
    #: files a run would turn into error records
    bad: int = 0
    #: rows the loader dropped because their audio file does not exist (``LoadReport.missing_audio``)
    missing: int = 0
    #: the first bad files, in the rows' order: ``(track_id, audio_path, reason)``
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    #: the first missing rows, as the loader named them
    missing_examples: list[str] = field(default_factory=list)
    #: the missing rows the loader recorded (``--out`` lists them: every one, unless a loader only counted some)
    missing_named: int = 0
    #: files a run decodes only in part (``decode``: :mod:`repeval.audio.partial`), and the first ones: ``(track_id,
    #: audio_path, audio_note)``
    partial: int = 0
    partial_examples: list[tuple[str, str, str]] = field(default_factory=list)
    #: of the bad files, those cut short that ``run.truncated_audio: decode`` would embed (their reason names it)
    cut: int = 0
    #: what the loads noted (:attr:`DatasetFiles.notes`)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        partly = f", {self.partial:,} decoded partly" if self.partial else ""
        out = [f"{self.name}: {self.checked:,} files checked, {self.bad:,} bad, {self.missing:,} missing{partly}"]
        # a reason names its file (a DecodeError's does); the track id says which row
        out += [
            f"  bad: {tid}: {reason}" + ("" if path in reason else f" ({path})") for tid, path, reason in self.examples
        ]
        if self.bad > len(self.examples):
            out.append(f"  … and {self.bad - len(self.examples):,} more bad (--out FILE lists them all)")
        if self.cut:
            one = self.cut == 1
            out.append(
                f"  {self.cut:,} of the bad files {'is' if one else 'are'} cut short (WAV, MP3, FLAC): copy or download "
                f"{'it' if one else 'them'} again, or set run.truncated_audio: decode to embed the whole frames "
                f"{'it holds, its row' if one else 'they hold, each row'} noted in audio_note"
            )
        out += [f"  missing: {item}" for item in self.missing_examples]
        if self.missing > len(self.missing_examples):
            lists = (
                "them all"
                if self.missing_named >= self.missing
                else f"the first {self.missing_named:,}: the loader names no more"
            )
            out.append(f"  … and {self.missing - len(self.missing_examples):,} more missing (--out FILE lists {lists})")
        out += [f"  decoded partly: {tid}: {note} ({path})" for tid, path, note in self.partial_examples]
        if self.partial > len(self.partial_examples):
            out.append(f"  … and {self.partial - len(self.partial_examples):,} more decoded partly")
        return out + [f"  note: {note}" for note in self.notes]


@dataclass
class CheckReport:
    """What ``repeval data check`` found: each dataset's :class:`DatasetCheck`, and whether ``--out`` was written."""

    datasets: list[DatasetCheck]
    #: ``--out``, or ``None``
    out: Path | None = None
    #: why ``out`` could not be written (naming the path and the fix), or ``None``
    out_error: str | None = None

    def lines(self) -> list[str]:
        """Each dataset's summary, then where ``--out`` wrote the list of its bad and missing files."""
        out = [line for found in self.datasets for line in found.lines()]
        if self.out is not None and self.out_error is None:
            out.append(f"bad and missing files: {self.out}")
        return out

    @property
    def exit_code(self) -> int:
        """:data:`OUT_ERROR_EXIT` when ``--out`` could not be written, else 1 when a file is bad or missing, else 0."""
        if self.out_error is not None:
            return OUT_ERROR_EXIT
        return int(any(found.bad or found.missing for found in self.datasets))


@dataclass
class DatasetFiles:
    """One dataset's audio to check: its distinct files and what its loads reported missing."""

    name: str
    #: ``track_id``, ``audio_path``: one row per distinct audio path, the first row naming it
    rows: pa.Table
    #: the rows its loads dropped for missing audio, each once (``LoadReport.missing_rows`` of every load, united)
    missing: MissingTracks
    #: how many rows its loads dropped for missing audio (the most any load of it counted, or ``missing``'s length)
    n_missing: int
    #: the lowest rate (Hz) its embedding models decode it at
    lowest_rate_hz: int
    #: the first :data:`SHOWN` missing rows as the loader named them (``LoadReport.missing_audio``), for the summary
    missing_examples: list[str] = field(default_factory=list)
    #: what its loads noted besides (``LoadReport.notes``: a key the data left unused, paths that differ in case)
    notes: list[str] = field(default_factory=list)


def check_file(
    path: str,
    lowest_rate_hz: int | None = None,
    truncated: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
    notes: list[str] | None = None,
) -> str | None:
    """``None`` when the run's decode stage would read the file at ``path``, else the reason of the error record it
    would write. ``lowest_rate_hz`` ``None``: the checks made where a file opens (:func:`_open`, header only); else
    also the whole file decoded (:func:`iter_blocks`: at its own rate, or at ``lowest_rate_hz`` when it has only a few
    frames), a file decoded only in part appending the ``audio_note`` its rows would carry to ``notes``.
    ``truncated``: ``run.truncated_audio``."""
    try:
        with _open(path, truncated) as f:
            rate_hz, frames = f.samplerate, f.frames
        if lowest_rate_hz is not None:
            few = rate_hz <= 0 or frames * lowest_rate_hz < FEW_SAMPLES * rate_hz
            for _ in iter_blocks(path, lowest_rate_hz if few else rate_hz, None, truncated, notes):
                pass
    except Exception as exc:  # every failure is a finding, as it is an error record in a run
        return error_reason(exc)
    return None


def _unique_paths(tables: list[pa.Table]) -> pa.Table:
    """``track_id`` and ``audio_path`` of ``tables``, one row per distinct audio path (its first row), in order."""
    rows = pa.concat_tables([t.select(["track_id", "audio_path"]) for t in tables]).combine_chunks()
    paths = rows.column("audio_path")
    distinct = pc.unique(paths)
    if len(distinct) == rows.num_rows:
        return rows
    first = pc.index_in(distinct, value_set=paths)  # where each distinct path first occurs
    return rows.take(pc.take(first, pc.sort_indices(first)))


def _select(cfg: Any, dataset: str | None) -> Any:
    """``cfg`` with only the dataset named ``dataset`` in each experiment (``None``: ``cfg``); ``ValueError`` listing
    the valid names when no experiment has it."""
    if dataset is None:
        return cfg
    names = list(dict.fromkeys(ds.name for exp in cfg.experiments for ds in exp.datasets))
    if dataset not in names:
        raise ValueError(f"--dataset {dataset!r}: the configuration has no such dataset; valid: {', '.join(names)}")
    kept = []
    for exp in cfg.experiments:
        mine = tuple(ds for ds in exp.datasets if ds.name == dataset)
        if mine:
            kept.append(exp.model_copy(update={"datasets": mine}))
    return cfg.model_copy(update={"experiments": tuple(kept)})


def dataset_files(cfg: Any, dataset: str | None = None) -> list[DatasetFiles]:
    """Every dataset of ``cfg`` (or only ``dataset``), loaded as a run loads it, in the configuration's order."""
    from repeval.models import resolve_model
    from repeval.pipeline.partitions import model_rate
    from repeval.runner import RunContext, fold_rows, load_rows

    cfg = _select(cfg, dataset)
    # loading rows reads the datasets only: no run directory, no store
    ctx = RunContext(cfg, "data-check", Path("/nonexistent"), cast(Any, None))
    load_rows(ctx, save=False)
    tables: dict[str, list[pa.Table]] = {}
    reports: dict[str, dict[int, LoadReport]] = {}  # each dataset's distinct reports (experiments may share one)
    rates: dict[str, set[int]] = {}
    for ei, exp in enumerate(cfg.experiments):
        exp_rates = {int(model_rate(*resolve_model(m)) or cfg.run.sample_rate_hz) for m in exp.embedding_models}
        for ds in exp.datasets:
            tables.setdefault(ds.name, []).extend(fold_rows(ctx, ei, ds.name).values())
            found = ctx.reports[(ei, ds.name)]
            reports.setdefault(ds.name, {})[id(found)] = found
            rates.setdefault(ds.name, set()).update(exp_rates)
    out = []
    for name, parts in tables.items():
        loads = list(reports[name].values())
        missing = missing_rows.union(r.missing_rows for r in loads)
        out.append(
            DatasetFiles(
                name,
                _unique_paths(parts),
                missing,
                max([len(missing)] + [r.count("missing_audio") for r in loads]),
                min(rates[name] or {int(cfg.run.sample_rate_hz)}),
                list(dict.fromkeys(item for r in loads for item in r.missing_audio[:SHOWN]))[:SHOWN],
                list(dict.fromkeys(note for r in loads for note in r.notes)),
            )
        )
    return out


def _in_order(check: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[tuple[T, R]]:
    """``(item, check(item))`` for each of ``items``, in their order, checked by ``workers`` threads with at most
    :data:`IN_FLIGHT_PER_WORKER` × ``workers`` items in flight (a million rows never become a million futures)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="repeval-check")
    pending: deque[tuple[T, Future[R]]] = deque()
    try:
        for item in items:
            if len(pending) >= IN_FLIGHT_PER_WORKER * workers:
                first, fut = pending.popleft()
                yield first, fut.result()
            pending.append((item, pool.submit(check, item)))
        while pending:
            first, fut = pending.popleft()
            yield first, fut.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an interrupt: the files being read finish, no others start


def _tracks(rows: pa.Table) -> Iterator[tuple[str, str]]:
    """``(track_id, audio_path)`` of each row, a batch at a time."""
    for batch in rows.to_batches(max_chunksize=OUT_BATCH_ROWS):
        yield from zip(batch.column("track_id").to_pylist(), batch.column("audio_path").to_pylist(), strict=True)


def _missing_out_rows(name: str, found: MissingTracks) -> Iterator[tuple[str, str, str, str]]:
    """``--out`` rows ``(dataset, track_id, audio_path, reason)`` of the rows dropped for missing audio, a batch at a
    time (``audio_path`` empty when the row names none)."""
    for batch in found.batches():
        columns = [batch.column(n).to_pylist() for n in MISSING_SCHEMA.names]
        for tid, path, row, cause in zip(*columns, strict=True):
            yield name, tid, path or "", missing_rows.reason(tid, path, row, cause)


def _out_error(path: Path, exc: OSError, removed: bool) -> str:
    """Why ``--out`` ``path`` was not written (``exc``), with the fix; ``removed``: what it held was deleted."""
    why = str(exc) if exc.strerror is None else f"{exc.strerror}: {exc.filename or path}"
    return (
        f"--out {path}: could not write it ({why}){'; the incomplete file was removed' if removed else ''} — choose "
        "a path you can write to (its folders are created), or make room or fix that folder's permissions, and rerun "
        "the check; the summary above is complete"
    )


class _OutFile:
    """``--out``: every bad or missing file as a row of :data:`OUT_SCHEMA`, written :data:`OUT_BATCH_ROWS` at a time
    (``.csv`` or ``.parquet``); the folders it is in are created."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[tuple[str, str, str, str]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            self.writer: Any = pq.ParquetWriter(str(path), OUT_SCHEMA)
        else:
            import pyarrow.csv as pacsv

            self.writer = pacsv.CSVWriter(str(path), OUT_SCHEMA)

    def add(self, row: tuple[str, str, str, str]) -> None:
        self.rows.append(row)
        if len(self.rows) >= OUT_BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            columns = list(zip(*self.rows, strict=True))
            self.writer.write_table(pa.table([pa.array(c, pa.string()) for c in columns], schema=OUT_SCHEMA))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()

    def abandon(self) -> bool:
        """Stop writing after a failed write: close what can be closed and delete the incomplete file (not what a
        symlink or device ``--out`` names); whether it was deleted."""
        self.rows = []
        try:
            self.writer.close()
        except OSError:
            pass
        if self.path.is_symlink() or not self.path.is_file():
            return False
        self.path.unlink()
        return True


def out_format(path: Path) -> str:
    """``csv`` or ``parquet`` from ``--out``'s extension; ``ValueError`` naming the fix otherwise."""
    kind = path.suffix.lower().lstrip(".")
    if kind not in ("csv", "parquet"):
        raise ValueError(f"--out {path}: name a .csv or .parquet file")
    return kind


def check_datasets(
    datasets: list[DatasetFiles],
    decode: bool = False,
    workers: int | None = None,
    out: Path | None = None,
    progress: bool | None = None,
    truncated_audio: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO,
) -> CheckReport:
    """Check every file of ``datasets`` (:func:`check_file`, under ``truncated_audio``; ``decode``: the whole file too,
    counting the files decoded only in part) with ``workers``
    threads (default: one per CPU); ``out``: every missing row (:func:`repeval.datasets.missing.reason`) and bad file
    as a row there
    (:class:`_OutFile`) — when it cannot be written, the check goes on and its report says why
    (:attr:`CheckReport.out_error`); ``progress``: a bar on stderr (default: when it is a terminal)."""
    from repeval.pipeline.summary import Progress

    workers = workers or os.cpu_count() or 1
    report = CheckReport([], out)
    writer = None
    if out is not None:
        out_format(out)
        try:
            writer = _OutFile(out)
        except OSError as exc:
            report.out_error = _out_error(out, exc, removed=False)

    def write(row: tuple[str, str, str, str]) -> None:
        nonlocal writer
        if writer is None:
            return
        try:
            writer.add(row)
        except OSError as exc:  # a full disk: the check goes on, the file is dropped
            report.out_error = _out_error(writer.path, exc, removed=writer.abandon())
            writer = None

    bar = Progress(sum(d.rows.num_rows for d in datasets), "checking audio", enabled=progress, unit="file")
    try:
        for d in datasets:
            found = DatasetCheck(
                d.name,
                missing=d.n_missing,
                missing_examples=d.missing_examples,
                missing_named=len(d.missing),
                notes=d.notes,
            )
            for row in _missing_out_rows(d.name, d.missing) if writer is not None else ():
                write(row)
                if writer is None:  # it could not be written: the rest need not be read
                    break
            rate = d.lowest_rate_hz if decode else None

            def one(track: tuple[str, str], rate: int | None = rate) -> tuple[str | None, list[str]]:
                notes: list[str] = []
                return check_file(track[1], rate, truncated_audio, notes), notes

            for (tid, path), (reason, notes) in _in_order(one, _tracks(d.rows), workers):
                found.checked += 1
                bar.update(1)
                if reason is None and notes:
                    found.partial += 1
                    if len(found.partial_examples) < SHOWN:
                        found.partial_examples.append((tid, path, notes[-1]))
                if reason is None:
                    continue
                found.bad += 1
                found.cut += DECODE_HINT in reason
                if len(found.examples) < SHOWN:
                    found.examples.append((tid, path, reason))
                write((d.name, tid, path, reason))
            report.datasets.append(found)
    finally:
        bar.close()
        if writer is not None:
            try:
                writer.close()
            except OSError as exc:
                report.out_error = _out_error(writer.path, exc, removed=writer.abandon())
    return report
