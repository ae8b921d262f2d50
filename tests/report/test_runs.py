"""``repeval runs``: what it counts, read from real run files (:mod:`repeval.report.runs`)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from runs_cases import _failure
from typer.testing import CliRunner

from repeval.cli import app
from repeval.report.html import _failed_block
from repeval.report.results import load_run
from repeval.report.runs import run_info
from repeval.rundir import join_uri
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def test_runs_counts_failed_trainings_and_failed_test_cells_apart(run_dir, tmp_path):
    """``failed`` summed the rows of failed.parquet: probe trainings that failed *and* test cells (a trained probe,
    seed and test set whose scores were not finite), so one probe that trained but scored NaN on 4 test sets read
    as "failed: 5" next to a single real failed training. ``repeval runs`` (and --json), the train line and the
    report now count them apart; a failed.parquet written before its ``scenario`` column holds trainings only."""
    runs = tmp_path / "runs"
    run = runs / "r"
    shutil.copytree(run_dir, run)
    rows = [_failure("M2", None)] + [_failure("M1", s) for s in ("D1", "D2", "D3", "D4")]
    pq.write_table(typed_table(rows, FAILED_SCHEMA), run / "failed.parquet")
    shutil.copytree(run, runs / "old")  # a run written before the scenario column: every row a training
    pq.write_table(typed_table(rows[:2], FAILED_SCHEMA).drop(["scenario"]), runs / "old" / "failed.parquet")

    listed = {r["run"]: r for r in json.loads(CliRunner().invoke(app, ["runs", str(runs), "--json"]).output)}
    assert (listed["r"]["failed_trainings"], listed["r"]["failed_cells"]) == (1, 4)
    assert (listed["old"]["failed_trainings"], listed["old"]["failed_cells"]) == (2, 0)
    res = CliRunner().invoke(app, ["runs", str(runs)])
    assert res.exit_code == 0, res.output
    assert re.search(r"failed trainings\s+failed cells\s+updated", res.output), res.output
    assert re.search(r"\nr\s+evaluated\s+\S+.*?\s\d+\s+1\s+4\s", res.output), res.output
    assert "failed cells: test cells (a trained probe, seed and test set) whose scores were not finite" in res.output

    block = _failed_block([load_run(run)], "instrument-recognition", "tinysol")
    assert "Failed probe trainings (1) and failed test cells (4)" in block


def test_a_summary_left_from_an_earlier_evaluation_is_detected(run_dir, tmp_path, monkeypatch, caplog):
    """An evaluation stopped (Ctrl-C) after writing results.parquet and before summary.parquet left the summary of
    the previous evaluation beside the new results, and nothing said so. Now the old summary goes before the
    results are written, both files carry the results' hash, and `repeval runs` and the report name a summary that
    is not of the results, with the fix; a finished evaluation clears it."""
    import types

    import pandas as pd
    import pytest

    from repeval import runner
    from repeval.run.status import write_status
    from repeval.tuning import results as tuning_results

    runs = tmp_path / "runs"
    run = runs / "r"
    shutil.copytree(run_dir, run)
    (run / "groups").mkdir()
    res = pq.read_table(run / "results.parquet")
    (run / "results.parquet").unlink()
    for model in ("msd-musicnn", "logmel-stats", "mert-v1-95m-6"):  # one group file per model, as training writes
        pq.write_table(res.filter(res["model"].to_numpy() == model), run / "groups" / f"g-{model}.parquet")
    ctx = types.SimpleNamespace(run_dir=run)
    runner.stage_evaluate(ctx)

    def runs_text() -> str:
        out = CliRunner().invoke(app, ["runs", str(runs)])
        assert out.exit_code == 0, out.output
        return out.output

    assert "summary.parquet" not in runs_text()
    # the grid of one model is trained again (other values), and the next evaluation is stopped between its writes
    group = run / "groups" / "g-logmel-stats.parquet"
    df = pd.read_parquet(group)
    pq.write_table(
        pq.read_table(group).set_column(list(df.columns).index("value"), "value", [df["value"] * 0.5]), group
    )

    def interrupted(table):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tuning_results, "seed_summary", interrupted)
        with pytest.raises(KeyboardInterrupt):
            runner.stage_evaluate(ctx)
    new = pd.read_parquet(run / "results.parquet")
    assert new.loc[new["model"] == "logmel-stats", "value"].sum() == pytest.approx(df["value"].sum() * 0.5)
    # no summary of the earlier results is left to read as this one's
    if (run / "summary.parquet").exists():
        old = pd.read_parquet(run / "summary.parquet")
        cells = new[new["label"].isna()].groupby(["model", "probe", "scenario", "metric"])["value"].mean()
        got = old[old["label"].isna()].set_index(["model", "probe", "scenario", "metric"])["mean"]
        assert not (got - cells.reindex(got.index)).abs().gt(1e-9).any()
    text = runs_text()
    assert (
        "r: summary.parquet is missing: its evaluation stopped after writing results.parquet; rerun `repeval " in text
    )
    caplog.set_level("WARNING", logger="repeval.report.results")
    load_run(run)
    assert "summary.parquet is missing" in caplog.text
    # an old summary that a sync put back (a bucket keeps a file deleted locally) is named as not of these results
    pq.write_table(pq.read_table(run / "results.parquet").replace_schema_metadata(None), run / "summary.parquet")
    assert "r: summary.parquet is not the summary of results.parquet" in runs_text()
    # the fix is the run's own `repeval evaluate` line when status.json records its command line
    write_status(
        run, "evaluate", "interrupted", "stopped by Ctrl-C", resume="repeval evaluate 'my exp.yaml' --run-id r"
    )
    assert "it is stale; rerun `repeval evaluate 'my exp.yaml' --run-id r` (it rewrites both" in runs_text()

    runner.stage_evaluate(ctx)  # the rerun the message asks for
    assert "summary.parquet" not in runs_text()
    summary = pd.read_parquet(run / "summary.parquet")
    assert summary["n_seeds"].max() == 2
    # each footer is read once per run (one request per file on a bucket): results.parquet's rows and key together
    fs = _CountingFS()
    info = run_info(pafs.PyFileSystem(fs), str(run), "r")
    assert info is not None and info["result_rows"] == len(new) and info["summary_stale"] is None
    assert fs.opened.count(str(run / "results.parquet")) == 1, fs.opened
    assert fs.opened.count(str(run / "summary.parquet")) == 1, fs.opened


class _CountingFS(pafs.FileSystemHandler):
    """The local filesystem, read-only, recording every file opened for reading."""

    def __init__(self) -> None:
        self.local, self.opened = pafs.LocalFileSystem(), []

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def get_type_name(self) -> str:
        return "counting"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return self.local.get_file_info(selector)

    def open_input_file(self, path: str) -> object:
        self.opened.append(path)
        return self.local.open_input_file(path)

    def open_input_stream(self, path: str) -> object:
        self.opened.append(path)
        return self.local.open_input_stream(path)

    def _read_only(self, *args: object) -> None:
        raise OSError("read-only")

    create_dir = delete_dir = delete_dir_contents = delete_root_dir_contents = delete_file = move = copy_file = (
        open_output_stream
    ) = open_append_stream = _read_only


def test_a_run_whose_embed_stage_finished_is_not_listed_as_started(tmp_path, monkeypatch):
    """A run directory whose `repeval embed` (or `deform`) had finished was listed as ``started`` by `repeval runs`,
    as if that command were still running or had been killed; it now says ``embedded`` (``deformed``). A command
    still going, or killed hard, still reads ``started``."""
    from repeval.report.runs import list_runs, runs_text
    from repeval.run.status import write_status

    runs = tmp_path / "runs"
    for run_id, command, state in (("e", "embed", "finished"), ("d", "deform", "finished"), ("s", "embed", "started")):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "config.yaml").write_text("experiments: []\n")
        write_status(runs / run_id, command, state)
    assert {i["run"]: i["state"] for i in list_runs(str(runs))} == {"d": "deformed", "e": "embedded", "s": "started"}
    # the runs by their directories: `repeval table RUN`, given the id, looked for ./ID ("no results.parquet in ./e")
    assert f"3 runs in {runs}/; `repeval table {runs}/RUN` / `repeval report {runs}/RUN` show one" in runs_text(
        str(runs)
    )
    monkeypatch.chdir(tmp_path)  # a relative folder: "3 runs — runs;" read as a word said twice
    assert "3 runs in runs/; `repeval table runs/RUN` / `repeval report runs/RUN` show one" in runs_text("runs")
    for run_id in "ds":
        shutil.rmtree(runs / run_id)
    said = runs_text(str(runs))
    # "1 run(s)"; an embedded run has no results to show ("no results.parquet in …")
    assert said.endswith(
        f"1 run in {runs}/; `repeval table {runs}/e` / `repeval report {runs}/e` show it once its test stage has written "
        "results (it has none yet)"
    ), said
    uri = f"file://{runs}?x=1&y=2"  # a URI's query kept, quoted for the shell
    assert f"`repeval table '{join_uri(uri, 'e')}'`" in runs_text(uri)


def test_a_groups_folder_that_cannot_be_listed_is_said_with_its_fix(tmp_path):
    """A run whose groups/ could not be listed for another reason than its permissions (a file in its place) was said
    with pyarrow's error, which repeats the path ("cannot list directory '…/groups'. Detail: [errno 20] Not a
    directory"), and no fix. Now in the system's words, with the fix — one rule with `repeval report`'s for a folder
    it cannot list (``run_files.unlisted``); a symbolic link that loops, with its own fix (not the disk's)."""
    from repeval.report.runs import runs_text

    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "config.yaml").write_text("experiments: []\n")
    (tmp_path / "runs" / "r" / "groups").write_text("")
    (tmp_path / "runs" / "s").mkdir()  # a symbolic link that leads to itself: not the disk's fault, as it said
    (tmp_path / "runs" / "s" / "config.yaml").write_text("experiments: []\n")
    (tmp_path / "runs" / "s" / "groups").symlink_to("groups")
    text = runs_text(str(tmp_path / "runs"))
    assert (
        "r: groups/ cannot be listed (not a directory): its trained grids are not counted; it is a file, not a "
        "folder: move it aside"
    ) in text
    assert (
        "s: groups/ cannot be listed (too many levels of symbolic links): its trained grids are not counted; a "
        "symbolic link on its path leads round in a loop: point it at a folder (`ls -l` shows where it leads)"
    ) in text, text


def test_a_run_copied_without_its_config_is_listed(run_dir, tmp_path):
    """`repeval runs` skipped a run directory without config.yaml (results copied alone, which `repeval table` and
    `report` read); it is listed now, its tasks and models unknown. A folder with none of a run's files is not."""
    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "bare")
    (runs / "bare" / "config.yaml").unlink()
    (runs / "notes").mkdir()
    (runs / "notes" / "todo.txt").write_text("x")
    res = CliRunner().invoke(app, ["runs", str(runs), "--json"])
    assert res.exit_code == 0, res.output
    listed = json.loads(res.output)
    assert [r["run"] for r in listed] == ["bare"]
    assert listed[0]["state"] == "evaluated" and listed[0]["tasks"] == [] and listed[0]["result_rows"] > 0


def test_a_run_whose_driver_was_killed_on_this_host_is_listed_as_stopped_with_its_resume_command(tmp_path):
    """`repeval runs` listed a run whose driver was killed with kill -9 as ``started``, as a running one. The started
    command records its host and process: on that host a run whose process is gone is ``stopped``, with the command
    line that resumes it. A running one stays ``started``, as does one started on another host (it cannot be asked)."""
    import socket
    import subprocess
    import sys

    from repeval.report.runs import list_runs, runs_text
    from repeval.run.status import read_status, restore_status, write_status

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # gone, and reaped
    here = socket.gethostname()
    runs = tmp_path / "runs"
    for run_id, process in (
        ("killed", {"host": here, "pid": dead.pid}),
        ("running", None),  # this process
        ("elsewhere", {"host": here + "-other", "pid": dead.pid}),
        ("earlier", {}),  # recorded by an earlier repeval: no process
    ):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "config.yaml").write_text("experiments: []\n")
        write_status(
            runs / run_id, "train", "started", resume=f"repeval train c.yaml --run-id {run_id}", process=process
        )
    assert read_status(runs / "running")["pid"] == os.getpid()
    infos = {i["run"]: i for i in list_runs(str(runs))}
    assert {r: i["state"] for r, i in infos.items()} == {
        "killed": "stopped (train)", "running": "started", "elsewhere": "started", "earlier": "started",
    }  # fmt: skip
    assert infos["killed"]["reason"] == (
        f"its process {dead.pid} is gone (killed, the machine restarted, or it failed on a full disk, which "
        "kept it from recording why) — `repeval train c.yaml --run-id killed` "
        "resumes it (finished work is kept)"
    )
    assert f"killed: its process {dead.pid} is gone" in runs_text(str(runs))
    # the driver of a `ray job submit` job: submitted again, its command line from the checkout named too
    submit = "ray job submit -- python jobs/train.py c.yaml --run-id killed"
    job = {"id": "raysubmit_1", "submit": submit}
    write_status(runs / "killed", "train", "started", resume="repeval train c.yaml --run-id killed", process={"host": here, "pid": dead.pid}, job=job)  # fmt: skip
    assert {i["run"]: i for i in list_runs(str(runs))}["killed"]["reason"] == (
        f"its process {dead.pid} is gone (killed, the machine restarted, or it failed on a full disk, which "
        "kept it from recording why) — submit the job again to resume it: "
        f"`{submit}`, or run `repeval train c.yaml --run-id killed` from the checkout (finished work is kept)"
    )
    # a step out of order (`evaluate` with nothing trained) on it puts back the state it found: its process too
    restore_status(runs / "killed", read_status(runs / "killed"))
    assert {i["run"]: i["state"] for i in list_runs(str(runs))}["killed"] == "stopped (train)"


def test_runs_given_a_run_directory_lists_that_run_and_names_the_runs_directory(run_dir, tmp_path):
    """``repeval runs runs/quickstart`` (a run directory, where a runs directory is expected) printed
    ``runs/quickstart: no runs``. It lists that run alone now (in --json too) and names the command that lists the
    runs beside it; a folder with no run in it says what a run directory holds and what writes one."""
    runs = tmp_path / "my runs"
    shutil.copytree(run_dir, runs / "demo")
    cli = CliRunner()
    out = cli.invoke(app, ["runs", str(runs / "demo")])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[1].split()[:2] == ["demo", "evaluated"]
    assert (
        lines[-1]
        == f"{runs / 'demo'} is a run directory, listed alone; `repeval runs '{runs}'` lists the runs beside it"
    )
    listed = json.loads(cli.invoke(app, ["runs", str(runs / "demo"), "--json"]).output)
    assert [i["run"] for i in listed] == ["demo"]
    assert listed == json.loads(cli.invoke(app, ["runs", str(runs), "--json"]).output)  # as its runs directory has it
    empty = tmp_path / "empty"
    empty.mkdir()
    out = cli.invoke(app, ["runs", str(empty)])
    assert (
        out.output.startswith(f"{empty}: no runs (no folder in it holds a run's config.yaml")
        and "--runs-dir" in out.output
    )


def test_runs_takes_one_runs_directory_named_twice_alike(tmp_path, monkeypatch):
    # `repeval runs runs/ --runs-dir runs` (a shell completes the folder with its `/`) was refused as "two runs
    # directories given" of one folder; two folders are still refused, naming both
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    for given in (["runs/", "--runs-dir", "runs"], ["./runs", "--runs-dir", str(tmp_path / "runs")]):
        res = CliRunner().invoke(app, ["runs", *given])
        assert res.exit_code == 0 and res.output.startswith(f"{given[0]}: no runs (no folder in it"), res.output
    res = CliRunner().invoke(app, ["runs", "runs", "--runs-dir", "other"])
    assert res.exit_code == 1 and "two runs directories given (runs and --runs-dir other): give one" in res.output
