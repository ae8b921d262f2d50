"""Run files cut short or corrupted (a copy, a full disk, a bad block) between two commands: the next one does not
stop on pyarrow's error, and redoes no more than the file held (real Parquet files, no Ray)."""

from __future__ import annotations

import os
import types

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from run_files_cases import GRID, _failure, _two_runs

from repeval.run.evaluate import stage_evaluate
from repeval.run.groups import group_trained
from repeval.run.train import _record_failed
from repeval.rundir import EarlierStageUnfinished
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def _cut(path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def test_a_cut_grid_result_is_trained_again_not_an_evaluate_that_fails_every_rerun(tmp_path, caplog):
    """A grid's groups/<grid>.parquet cut short counted as trained, so every `repeval run` skipped its training and
    then stopped in the evaluate stage on "Parquet magic bytes not found": the run could not be finished without
    finding and deleting the file by hand. Now the grid is trained again, said in a warning naming the file, and a
    `repeval evaluate` alone names the command that trains it."""
    run = tmp_path / "r"
    (run / "groups").mkdir(parents=True)
    path = run / "groups" / f"{GRID}.parquet"
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), path)  # any Parquet file, then cut short
    _cut(path)
    ctx = types.SimpleNamespace(run_dir=run)
    caplog.set_level("WARNING", logger="repeval.runner")
    assert group_trained(ctx, GRID, {}) is None  # as if never trained: it is trained and written anew
    assert f"{path} is unreadable (Parquet magic bytes not found" in caplog.text
    assert f"probe grid {GRID} is trained again to write it anew" in caplog.text
    with pytest.raises(EarlierStageUnfinished, match=rf"{GRID}.parquet is unreadable .*`repeval train CONFIG` trains"):
        stage_evaluate(ctx)


def test_a_cut_failed_parquet_is_moved_aside_and_the_trained_grid_committed(tmp_path, caplog):
    """failed.parquet cut short made every grid's commit raise after its training (its failures are merged into the
    file before the grid is marked done), so each rerun trained the grid again and lost it again. Now the file is
    moved aside with a warning and the grid's failures recorded in a new one."""
    run = tmp_path / "r"
    run.mkdir()
    path = run / "failed.parquet"
    pq.write_table(typed_table([_failure("other"), _failure("other")], FAILED_SCHEMA), path)
    _cut(path)
    item = types.SimpleNamespace(exp=types.SimpleNamespace(task=types.SimpleNamespace(name="t")), dataset="d",
                                 model="m", fold=None)  # fmt: skip
    caplog.set_level("WARNING", logger="repeval.runner")
    _record_failed(types.SimpleNamespace(run_dir=run), item, [_failure("m")])
    assert pq.read_table(path).column("model").to_pylist() == ["m"]
    aside = [p.name for p in run.iterdir() if p.name.startswith("failed.parquet.unreadable-")]
    assert len(aside) == 1, sorted(p.name for p in run.iterdir())
    assert f"{path} is unreadable (Parquet magic bytes not found" in caplog.text
    assert f"moved aside to {aside[0]}" in caplog.text


def test_a_cut_failed_parquet_does_not_stop_the_evaluation(tmp_path, caplog):
    """`repeval evaluate` (and `repeval run` with every grid trained) read failed.parquet to name the failures of grids
    not of the configuration: one cut short stopped it with a bare "Parquet magic bytes not found", on every rerun —
    only a grid trained moved it aside. Now the evaluation moves it aside too, said in a warning naming it."""
    from repeval.run.evaluate import _name_other_failures

    run = tmp_path / "r"
    run.mkdir()
    path = run / "failed.parquet"
    pq.write_table(typed_table([_failure("other"), _failure("other")], FAILED_SCHEMA), path)
    _cut(path)
    caplog.set_level("WARNING", logger="repeval.runner")
    _name_other_failures(run, {GRID})
    assert not path.exists() and f"{path} is unreadable (Parquet magic bytes not found" in caplog.text
    assert [p.name.startswith("failed.parquet.unreadable-") for p in run.iterdir()] == [True]


def test_a_file_read_back_cut_short_is_an_error_naming_the_fix_not_a_bare_aborted(capsys):
    """An EOFError out of a command — pickle reading an empty file a full disk left (Ray Tune's trial error.pkl) —
    reached Typer, which took it for Ctrl-D at a prompt and printed only "Aborted.", exit status 1."""
    import pickle

    import typer

    from repeval.cli.errors import _guard

    with pytest.raises(typer.Exit) as stopped:
        _guard(lambda: pickle.loads(b""))
    assert stopped.value.exit_code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: a file ended early as it was read back (EOFError: Ran out of input) — when the disk")
    assert "free space and rerun the command (finished work is kept)" in err
    with pytest.raises(typer.Exit):  # a bare EOFError (a library's own): its words are none, not "EOFError: "
        _guard(lambda: (_ for _ in ()).throw(EOFError()))
    assert "(EOFError: no more input) — when the disk" in capsys.readouterr().err


def test_a_file_read_back_cut_short_is_recorded_for_repeval_runs_with_its_fix():
    """status.json recorded only pickle's "Ran out of input" of a command stopped on a file cut short, where the
    terminal named the likely cause (a full disk) and the fix: `repeval runs` showed no fix."""
    from repeval.cli.errors import _reason

    assert _reason(EOFError("Ran out of input")) == (
        "a file ended early as it was read back (EOFError: Ran out of input) — when the disk of run.store or "
        "run.runs_dir is full (`df -h`), free space and rerun the command (finished work is kept)"
    )


def test_a_storage_failure_recorded_for_repeval_runs_names_what_to_check(tmp_path):
    """A command that failed on a full disk recorded in status.json only "[Errno 28] No space left on device": the
    fix the terminal said (free space) was not in what `repeval runs` shows. And when the full disk kept it from
    recording anything, `repeval runs` blamed a kill or a restart only."""
    import errno
    import socket

    from repeval.cli.errors import _reason
    from repeval.report.runs import run_info
    from repeval.run.status import write_status

    full = OSError(errno.ENOSPC, "No space left on device")
    assert _reason(full) == (
        "[Errno 28] No space left on device — check that run.store and run.runs_dir are writable directories with "
        "free space"
    )
    assert _reason(ValueError("bad label")) == "bad label"
    run = tmp_path / "r"
    run.mkdir()
    gone = {"host": socket.gethostname(), "pid": 2**22 + 1}  # above pid_max's default: no such process
    write_status(run, "run", "started", resume="repeval run c.yaml", process=gone)
    assert (
        "or it failed on a full disk, which kept it from recording why"
        in run_info(pafs.LocalFileSystem(), str(run), "r")["reason"]
    )


def test_probes_and_splits_files_cut_short_are_said_with_what_writes_them_anew(tmp_path):
    """A probes/ file cut short was a warning with pyarrow's error only ("its probes' validation record is
    unreadable (...)"), a split file's too: neither named what to do. Now each names the file, what the report
    leaves out, and what writes it anew; the rest of the run's validation record is still read."""
    from repeval.report.results import load_run

    first, _ = _two_runs(tmp_path)
    probe_files = sorted((first / "probes").glob("*.parquet"))
    split = first / "splits" / "instrument_recognition__tinysol__fold0.parquet"
    split.parent.mkdir()
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), split)
    for path in (probe_files[0], split):
        _cut(path)
    run = load_run(first)
    assert run.unread == [
        f"{split} is unreadable (Parquet magic bytes not found in footer. Either the file is corrupted or this is not "
        "a parquet file.): its test tracks are not known: its results are ranked with another run's when both scored "
        "as many test tracks in each fold, not checked to be the same tracks and labels, and described as if every "
        "label were annotated (which labels each track annotates is not known); cut short or corrupted; the next "
        "`repeval run` on the run writes the splits anew",
        f"{probe_files[0]} is unreadable (Parquet magic bytes not found in footer. Either the file is corrupted or "
        "this is not a parquet file.): the probes of its grid are chosen on clean test, not on their validation "
        "criterion; cut short or corrupted; it is written when its probe grid is trained: delete that grid's file "
        "under groups/ and rerun `repeval run`",
    ], run.unread
    assert (run.validation is not None) == (len(probe_files) > 1)  # the other files read
