"""A bucket's run pushed several files at a time (:meth:`repeval.rundir.RunLocation.push`): when uploads fail, and
when Ctrl-C comes while it pushes. The bucket is a local folder behind a filesystem that fails or waits on a write
(:func:`repeval.testing.fs.faulty_fs`): no S3 server needed."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from repeval.rundir import COPY_THREADS, RunLocation
from repeval.testing.fs import faulty_fs


def _staged(tmp_path: Path, before_write: Callable[[str], None]) -> tuple[RunLocation, Path]:
    """A run staged at ``tmp_path/staging`` whose remote copy is ``tmp_path/bucket/runs/r1``, with 12 grids' files and
    ``results.parquet`` to push."""
    remote, local = tmp_path / "bucket" / "runs" / "r1", tmp_path / "staging"
    (local / "groups").mkdir(parents=True)
    for i in range(12):
        (local / "groups" / f"g{i:02d}.parquet").write_bytes(b"grid %d" % i)
    (local / "results.parquet").write_bytes(b"results")
    fs = faulty_fs(before_write=before_write)
    return RunLocation("s3://b/runs/r1", fs, str(remote), local, staged=True), remote


def _up(remote: Path) -> list[str]:
    return sorted(p.relative_to(remote).as_posix() for p in remote.rglob("*") if p.is_file())


def test_failed_uploads_leave_the_others_up_results_last_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two grids' files the bucket refuses: the other grids are up, ``results.parquet`` (a complete run's mark) is not,
    the first refusal is raised and a warning counts the files not uploaded (it named one key of the two); the next
    push uploads those and the results."""
    faults = {"g03.parquet", "g07.parquet"}

    def before_write(path: str) -> None:
        if path.rsplit("/", 1)[-1] in faults:
            raise PermissionError(13, "AWS Error ACCESS_DENIED during PutObject operation", path)

    loc, remote = _staged(tmp_path, before_write)
    with caplog.at_level(logging.WARNING, logger="repeval"), pytest.raises(PermissionError) as exc:
        loc.push()
    assert exc.value.filename.endswith("groups/g03.parquet"), exc.value
    assert _up(remote) == [f"groups/g{i:02d}.parquet" for i in range(12) if i not in (3, 7)], _up(remote)
    assert (
        "2 files of run s3://b/runs/r1 were not uploaded (groups/g03.parquet, groups/g07.parquet), nor its "
        "results.parquet, which is uploaded once every other file is up" in caplog.text
    ), caplog.text
    faults.clear()
    assert loc.push() == 3 and len(_up(remote)) == 13, _up(remote)


def test_ctrl_c_while_pushing_stops_the_uploads_not_begun(tmp_path: Path) -> None:
    """Ctrl-C while a run is pushed: the uploads under way end, those not begun are not begun, and ``results.parquet``
    stays out — the push waited for every file (and so did Python's exit: a second Ctrl-C, or a third, could not stop
    uploads to a bucket that does not answer)."""
    main, sent = threading.main_thread().ident, threading.Event()

    def before_write(path: str) -> None:
        if not sent.is_set():  # the first upload: once the push waits on them all, Ctrl-C
            sent.set()
            time.sleep(0.1)
            signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]
        time.sleep(0.3)  # each upload under way then

    loc, remote = _staged(tmp_path, before_write)
    held = signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C as in a terminal, whatever ran before
    try:
        with pytest.raises(KeyboardInterrupt):
            loc.push()
    finally:
        signal.signal(signal.SIGINT, held)
    assert sent.is_set() and len(_up(remote)) <= COPY_THREADS and "results.parquet" not in _up(remote), _up(remote)
