"""``repeval runs``: what it counts, read from real run files (:mod:`repeval.report.runs`)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from typer.testing import CliRunner

from repeval.cli import app
from repeval.report.html import _failed_block
from repeval.report.results import load_run
from repeval.report.runs import run_info
from repeval.rundir import join_uri
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def _failure(probe: str, scenario: str | None) -> dict[str, object]:
    return {
        "task": "instrument-recognition", "task_type": "multiclass_classification", "dataset": "tinysol",
        "model": "msd-musicnn", "probe": probe, "seed": 0, "params": "{}", "scenario": scenario,
        "reason": "non-finite loss at epoch 3" if scenario is None else f"test set '{scenario}': non-finite scores",
        "fold": None,
    }  # fmt: skip


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


def test_evaluate_collects_the_groups_of_its_configuration_only(run_dir, tmp_path, caplog):
    """A model removed from the configuration (or a task renamed) left its grid's file in groups/, and `repeval run` /
    `evaluate` put its results — even of a scenario the configuration no longer has — into results.parquet, the
    table and the headline "best"/"most robust". Now they hold the configuration's groups only, and the warnings name
    the files left out and the configuration's grids not trained yet."""
    import types

    import pytest

    from repeval import runner
    from repeval.config import parse_config
    from repeval.report.results import ConfusionKey

    run = tmp_path / "r"
    shutil.copytree(run_dir, run)
    (run / "groups").mkdir()
    res = pq.read_table(run / "results.parquet")
    task, dataset = res["task"][0].as_py(), res["dataset"][0].as_py()
    for model in ("msd-musicnn", "logmel-stats", "mert-v1-95m-6"):
        pq.write_table(
            res.filter(res["model"].to_numpy() == model), run / "groups" / f"{task}__{dataset}__{model}.parquet"
        )
    cfg = parse_config(
        {
            "experiments": [
                {
                    "task": {"name": task, "type": "multiclass_classification"},
                    "datasets": [{"name": dataset, "type": "catalog", "manifest": "m.csv", "label_column": "label"}],
                    "embedding_models": ["msd-musicnn", "logmel-stats", "mfcc-stats"],  # mert-v1 removed, mfcc added
                    "downstream_models": [{"type": "classifier", "hidden_units": []}],
                }
            ]
        }
    )
    # failures of the removed model's grid (one training, one test cell) and of a kept one (one training)
    failures = [{**_failure(p, s), "task": task, "dataset": dataset, "model": m}
                for p, s, m in (("M1", None, "mert-v1-95m-6"), ("M1", "D1", "mert-v1-95m-6"), ("M2", None, "msd-musicnn"))]  # fmt: skip
    pq.write_table(typed_table(failures, FAILED_SCHEMA), run / "failed.parquet")
    assert run_info(pafs.LocalFileSystem(), str(run), "r")["failed_trainings"] == 2  # results of no configuration
    caplog.set_level("WARNING", logger="repeval.runner")
    table = runner.stage_evaluate(types.SimpleNamespace(run_dir=run, cfg=cfg))
    assert sorted(set(table["model"].to_pylist())) == ["logmel-stats", "msd-musicnn"]
    assert set(pq.read_table(run / "results.parquet")["model"].to_pylist()) == {"logmel-stats", "msd-musicnn"}
    said = " ".join(caplog.text.split())
    assert f"1 probe grid in {run / 'groups'} is not of this configuration" in said
    assert f"{task}__{dataset}__mert-v1-95m-6 — left out of results.parquet" in said
    assert f"1 probe grid of this configuration is not trained yet: {task}__{dataset}__mfcc-stats" in said
    # the removed grid's failures stay in failed.parquet, named, and are left out of what `repeval runs` and the
    # report count, like its groups/ file is left out of the results
    assert f"2 failures in {run / 'failed.parquet'} are of a probe grid not of this configuration" in said
    assert f"{task}__{dataset}__mert-v1-95m-6 — left out of the failures `repeval runs` and the report count" in said
    assert pq.read_metadata(run / "failed.parquet").num_rows == 3
    counted = run_info(pafs.LocalFileSystem(), str(run), "r")
    assert counted is not None and (counted["failed_trainings"], counted["failed_cells"]) == (1, 0)
    assert load_run(run).failed["model"].tolist() == ["msd-musicnn"]
    renamed = cfg.model_copy(update={"experiments": (cfg.experiments[0].model_copy(
        update={"task": cfg.experiments[0].task.model_copy(update={"name": "renamed"})}),)})  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"no trained probe grid of this configuration \(3 of another, named"):
        runner.stage_evaluate(types.SimpleNamespace(run_dir=run, cfg=renamed))
    assert set(pq.read_table(run / "results.parquet")["model"].to_pylist()) == {"logmel-stats", "msd-musicnn"}
    # the report draws and pools only the grids of the results: not the removed model's curves or confusion matrices
    before = load_run(run_dir)
    assert "mert-v1-95m-6" in set(before.history["model"]) and any(k.model == "mert-v1-95m-6" for k in before.confusion)
    after = load_run(run)
    assert set(after.history["model"]) == {"logmel-stats", "msd-musicnn"}
    assert {k.model for k in after.confusion} == {"logmel-stats", "msd-musicnn"}
    assert len(after.history) == before.history["model"].isin(["logmel-stats", "msd-musicnn"]).sum()
    kept = next(p for p in sorted((run / "confusion").glob("*.json")) if "__msd-musicnn__" in p.name)
    shutil.copy(kept, kept.with_name(f"{kept.stem}__fold3.json"))  # a fold the results do not hold: not pooled
    key = ConfusionKey.from_filename(kept.name)
    assert key in after.confusion
    assert (load_run(run).confusion[key][1] == after.confusion[key][1]).all()  # not doubled

    # a later command with another configuration (refused, say, for a store conflict) rewrote config.yaml: the report
    # and `repeval runs` still describe the results by the configuration their evaluation recorded
    (run / "config.yaml").write_text("experiments:\n- task: {name: other}\n  embedding_models: [chroma-stats]\n")
    caplog.clear()
    loaded = load_run(run)
    assert [m["id"] for e in loaded.config["experiments"] for m in e["embedding_models"]] == [
        "msd-musicnn", "logmel-stats", "mfcc-stats"
    ]  # fmt: skip
    assert "config.yaml was rewritten by a later command that did not evaluate" in caplog.text
    info = run_info(pafs.LocalFileSystem(), str(run), "r")
    assert info is not None and info["models"] == ["logmel-stats", "mfcc-stats", "msd-musicnn"]
    assert info["tasks"] == [task]


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


def test_evaluate_with_nothing_trained_keeps_an_interrupted_runs_state(tmp_path):
    """`repeval evaluate` on a run whose `repeval run` was stopped (Ctrl-C) before a grid was trained recorded
    "failed (evaluate)" in status.json, and `repeval runs` no longer said the run was interrupted nor how to resume it.
    Now a command that finds an earlier stage unfinished puts back the state it found, and its error says to finish
    the interrupted command; a run with no state recorded is left with none (a step out of order, not a failure)."""
    from repeval.report.runs import list_runs
    from repeval.run.status import read_status, write_status
    from repeval.testing.configs import one_row_config

    cfg = one_row_config(tmp_path)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    write_status(run, "run", "interrupted", "stopped by Ctrl-C; rerun it to resume (finished work is kept)")
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "r"])
    assert res.exit_code == 1, res.output
    said = " ".join(res.output.split())
    assert (
        "no trained probe grid" in said
        and f"this run's `repeval run` was interrupted: finish it with `repeval run {cfg} --run-id r`" in said
    )
    assert read_status(run)["state"] == "interrupted" and read_status(run)["command"] == "run"
    (info,) = list_runs(str(tmp_path / "runs"))
    assert info["state"] == "interrupted (run)" and "rerun it to resume" in info["reason"]

    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "fresh"])
    assert res.exit_code == 1 and "finish it" not in res.output, res.output
    assert read_status(tmp_path / "runs" / "fresh") == {}


def test_evaluate_on_a_partly_trained_run_keeps_it_unfinished(run_dir, tmp_path, caplog):
    """`repeval evaluate` on a run whose `repeval run` was interrupted with some of its grids trained recorded the run
    "evaluated", as if it were complete. It still evaluates the grids trained, but an interrupted run stays
    interrupted, and `repeval runs` names the grids its results lack and the command that finishes it; a run whose
    last command finished reads "partly trained" until an evaluation has every grid."""
    from repeval.report.runs import list_runs
    from repeval.run.status import read_status, write_status

    runs = tmp_path / "runs"
    run = runs / "r"
    shutil.copytree(run_dir, run)
    (run / "results.parquet").unlink()
    (run / "groups").mkdir()
    res = pq.read_table(run_dir / "results.parquet")
    task, dataset = res["task"][0].as_py(), res["dataset"][0].as_py()

    def trained(model: str) -> None:
        rows = res.filter((res["task"].to_numpy() == task) & (res["model"].to_numpy() == model))
        pq.write_table(rows, run / "groups" / f"{task}__{dataset}__{model}.parquet")

    trained("msd-musicnn")
    trained("logmel-stats")
    (tmp_path / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(
        f"run: {{runs_dir: {runs}, store: {tmp_path / 'store'}}}\n"
        f"experiments:\n- task: {{name: {task}, type: multiclass_classification}}\n"
        f"  datasets: [{{name: {dataset}, type: catalog, manifest: {tmp_path / 'm.csv'}, label_column: label}}]\n"
        "  embedding_models: [msd-musicnn, logmel-stats, mert-v1-95m-6]\n"
        "  downstream_models: [{name: M1, hidden_units: []}, {name: M2, hidden_units: [128]},\n"
        "                      {name: M5, hidden_units: [infer, infer]}]\n"  # the probes of run_dir's history
    )
    untrained = f"{task}__{dataset}__mert-v1-95m-6"
    write_status(run, "run", "interrupted", "stopped by Ctrl-C; rerun it to resume (finished work is kept)")
    caplog.set_level("WARNING")
    out = CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "r"])
    assert out.exit_code == 0, out.output
    assert set(pq.read_table(run / "results.parquet")["model"].to_pylist()) == {"logmel-stats", "msd-musicnn"}
    # said once, in one line: the grids, that the run stays interrupted, and the line that resumes it (a second
    # warning said the run's state and command again after the grids' own "`repeval run` … trains them")
    said = " ".join(caplog.text.split())
    assert (
        f"1 probe grid of this configuration is not trained yet: {untrained} — the results lack them; this run's "
        f"`repeval run` was interrupted: the run stays unfinished until `repeval run {cfg} --run-id r` finishes it and "
        "trains them" in said
    ), said
    assert [r.levelname for r in caplog.records] == ["WARNING"] and said.count("interrupted") == 1, said
    from repeval.cli.resume import _untrained_fix

    embed_failed = _untrained_fix({"command": "embed", "state": "failed"}, "evaluate", lambda c: f"repeval {c} c.yaml")
    assert embed_failed.endswith("until `repeval embed c.yaml` finishes it; then `repeval train c.yaml` trains them")
    assert (read_status(run)["command"], read_status(run)["state"]) == ("run", "interrupted")
    (info,) = list_runs(str(runs))
    assert (info["state"], info["grids_untrained"]) == ("interrupted (run)", [untrained])
    listed = " ".join(CliRunner().invoke(app, ["runs", str(runs)]).output.split())
    assert (
        f"r: its results lack 1 probe grid of its configuration, not trained when it was evaluated ({untrained})"
        in listed
    )
    # status.json recorded by hand, as a repeval before it kept the command line: the run's options are not known
    assert (
        "`repeval run CONFIG` with the run's configuration (and --run-id, --store, --runs-dir as it had them) trains "
        "them and evaluates again" in listed
    )

    # recorded with its command line, as `repeval run` records an interruption: the line saying it stopped names the
    # command that resumes it; the grids' line named it again, "(finished work is kept)" and all
    resume = f"repeval run {cfg} --run-id r"
    write_status(run, "run", "interrupted", f"stopped by Ctrl-C; `{resume}` resumes it (finished work is kept)", resume)
    listed = " ".join(CliRunner().invoke(app, ["runs", str(runs)]).output.split())
    assert listed.count(f"`{resume}`") == 1 and listed.count("finished work is kept") == 1, listed
    assert f"({untrained}): resuming it as said above trains them and evaluates again" in listed, listed

    write_status(run, "run", "finished")  # a finished command, then a grid added to the configuration
    caplog.clear()
    assert CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "r"]).exit_code == 0
    said = " ".join(caplog.text.split())  # the line that trains them is this run's, not "`repeval run` with …"
    assert f"not trained yet: {untrained} — the results lack them; `repeval run {cfg} --run-id r` trains them" in said
    assert (read_status(run)["command"], read_status(run)["state"]) == ("evaluate", "finished")
    (info,) = list_runs(str(runs))
    assert (info["state"], info["grids_untrained"]) == ("partly trained", [untrained])
    # it said `repeval run CONFIG`, which without --run-id trains a new run: now the run's own command line, with the
    # configuration it was given (not its copy in the run directory) and its run id
    assert info["trains_untrained"] == f"repeval run {cfg} --run-id r"
    listed = " ".join(CliRunner().invoke(app, ["runs", str(runs)]).output.split())
    assert f"`repeval run {cfg} --run-id r` trains them and evaluates again (finished work is kept)" in listed
    # evaluated by a `ray job submit` job: the job that trains them is submitted again (the run's `run`, as a job)
    submit = f"ray job submit --working-dir . -- python jobs/evaluate.py {cfg} --run-id r"
    job = {"id": "raysubmit_1", "submit": submit}
    write_status(run, "evaluate", "finished", resume=f"repeval evaluate {cfg} --run-id r", job=job)
    listed = " ".join(CliRunner().invoke(app, ["runs", str(runs)]).output.split())
    assert (
        f"submitting the job again, `ray job submit --working-dir . -- python jobs/run.py {cfg} --run-id r`, or "
        f"running `repeval run {cfg} --run-id r` from the checkout trains them and evaluates again" in listed
    ), listed

    trained("mert-v1-95m-6")  # every grid trained: evaluated whole
    assert CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "r"]).exit_code == 0
    (info,) = list_runs(str(runs))
    assert (info["state"], info["grids_untrained"]) == ("evaluated", [])
    assert "lack" not in CliRunner().invoke(app, ["runs", str(runs)]).output


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


def test_runs_and_the_report_say_which_test_sets_were_scored_on_partial_audio(run_dir, tmp_path):
    """An evaluation records the test tracks scored on rows embedded from partial audio (``audio_note``) in
    ``results.parquet``'s metadata: ``repeval runs`` names them from the footer, the report notes them under their
    task and dataset (and nowhere else); results evaluated before the record say nothing."""
    from repeval.report.left_out import partial_audio_note
    from repeval.run.partial_audio import PARTIAL_KEY

    runs = tmp_path / "runs"
    shutil.copytree(run_dir, runs / "r")
    shutil.copytree(run_dir, runs / "old")
    entries = [
        {"task": "instrument-recognition", "dataset": "tinysol", "model": "msd-musicnn", "scenario": "clean",
         "tracks": 3, "cut": 2, "ogg": 1},
        {"task": "instrument-recognition", "dataset": "tinysol", "model": "msd-musicnn", "scenario": "D1",
         "tracks": 1, "cut": 0, "ogg": 1},
    ]  # fmt: skip
    res = pq.read_table(runs / "r" / "results.parquet")
    meta = {**(res.schema.metadata or {}), PARTIAL_KEY: json.dumps(entries).encode()}
    pq.write_table(res.replace_schema_metadata(meta), runs / "r" / "results.parquet")

    listed = {r["run"]: r for r in json.loads(CliRunner().invoke(app, ["runs", str(runs), "--json"]).output)}
    assert (listed["r"]["partial_audio"], listed["old"]["partial_audio"]) == (entries, [])
    out = CliRunner().invoke(app, ["runs", str(runs)]).output
    said = [line for line in out.splitlines() if "partial audio" in line]
    assert said == [
        "r: 3 test tracks of instrument-recognition on tinysol embedded from partial audio (audio_note) in scenario "
        "clean, model msd-musicnn: 2 cut short, 1 Ogg without its end; 1 test track of instrument-recognition on "
        "tinysol embedded from partial audio (audio_note) in scenario D1, model msd-musicnn: 1 Ogg without its end "
        "(`repeval report` notes them per task)"
    ], out

    note = partial_audio_note([load_run(runs / "r")], "instrument-recognition", "tinysol")
    assert note.startswith(
        '<p class="rv-note">3 test tracks embedded from partial audio (audio_note) in scenario clean'
    )
    assert "1 test track embedded from partial audio (audio_note) in scenario D1, model msd-musicnn: 1 Ogg" in note
    assert partial_audio_note([load_run(runs / "r")], "other-task", "tinysol") == ""
    assert partial_audio_note([load_run(runs / "old")], "instrument-recognition", "tinysol") == ""


def _cut(path) -> None:
    """Cut ``path`` to half its size, as a copy or a full disk leaves it."""
    os.truncate(path, path.stat().st_size // 2)


def test_run_files_cut_short_are_named_with_their_fix_not_a_crash(run_dir, tmp_path, caplog):
    """A run file cut short (a copy, a full disk) made `repeval runs` fail for every run under the directory with
    pyarrow's "Parquet magic bytes not found" and no path (summary.parquet, results.parquet, failed.parquet), and the
    report stop on a cut history or config.yaml (a YAML error naming no file) and on a cut results.parquet without
    the fix. Now the runs are listed, the file is named with what writes it anew, and the report leaves out what it
    cannot read, saying so."""
    import pytest
    import yaml

    from repeval.run.status import write_status
    from repeval.rundir import CONFIG_KEY, EVALUATION_KEY

    runs = tmp_path / "runs"
    run = runs / "r"
    shutil.copytree(run_dir, run)
    shutil.copytree(run_dir, runs / "ok")  # listed whatever the other run holds
    write_status(run, "run", "finished", resume="repeval run c.yaml --run-id r")
    evaluate = "`repeval evaluate c.yaml --run-id r`"
    res = pq.read_table(run / "results.parquet")
    config = (run / "config.yaml").read_text()
    mark = {EVALUATION_KEY: b"h", CONFIG_KEY: config.encode()}  # as an evaluation writes them
    pq.write_table(res.replace_schema_metadata(mark), run / "results.parquet")
    pq.write_table(res.replace_schema_metadata(mark), run / "summary.parquet")
    pq.write_table(typed_table([_failure("M2", None)], FAILED_SCHEMA), run / "failed.parquet")
    for name in ("summary.parquet", "failed.parquet", "history.parquet"):
        _cut(run / name)
    (run / "config.yaml").write_text(config[: config.index("experiments:") + 5])  # cut inside a key: not YAML

    def listed() -> str:
        out = CliRunner().invoke(app, ["runs", str(runs)])
        assert out.exit_code == 0, out.output
        assert re.search(r"\nok\s+evaluated\s", out.output), out.output
        return out.output

    text = listed()
    assert "r: summary.parquet is unreadable (Parquet magic bytes not found in footer." in text
    assert f"{evaluate} (it rewrites both from groups/)" in text
    assert re.search(r"\nr\s+evaluated\s+.*\s\?\s+\?\s", text), text
    assert "r: failed.parquet is unreadable (cut short or corrupted): its failures are not known (?)" in text
    info = run_info(pafs.LocalFileSystem(), str(run), "r")
    assert (info["failed_trainings"], info["failed_cells"], info["results_unreadable"]) == (None, None, None)

    caplog.set_level("WARNING", logger="repeval.report.results")
    loaded = load_run(run)  # the report: what it can read, the rest named
    assert len(loaded.results) == res.num_rows and loaded.history is None and loaded.failed is None
    assert loaded.config == yaml.safe_load(config)  # the configuration the evaluation recorded
    for said in ("history.parquet is unreadable", "its training curves are left out", "failed.parquet is unreadable",
                 "config.yaml is unreadable (cut short or corrupted); the report uses the configuration results"):  # fmt: skip
        assert said in caplog.text

    _cut(run / "results.parquet")
    text = listed()
    assert re.search(r"\nr\s+results unreadable\s+.*\s-\s+\?\s+\?\s", text), text
    assert "r: results.parquet is unreadable (Parquet magic bytes not found in footer." in text
    assert f"cut short or corrupted; rerun {evaluate}" in text
    assert run_info(pafs.LocalFileSystem(), str(run), "r")["result_rows"] is None
    with pytest.raises(ValueError, match=r"results.parquet is unreadable \(Parquet magic bytes .*\): cut short or "
                       r"corrupted; rerun `repeval evaluate c.yaml --run-id r`"):  # fmt: skip
        load_run(run)


def test_a_summary_whose_read_fails_without_a_message_is_said(tmp_path):
    """A storage error with no message (an ``OSError()`` raised by a filesystem) when the summary's footer is read
    stopped `repeval runs` with an IndexError (the message's first line); it names the error's type instead."""
    import pyarrow as pa

    from repeval.rundir import EVALUATION_KEY, summary_mismatch
    from repeval.testing.fs import faulty_fs

    table = pa.table({"value": [1.0]}).replace_schema_metadata({EVALUATION_KEY: b"h"})
    for name in ("results.parquet", "summary.parquet"):
        pq.write_table(table, tmp_path / name)

    def refuse(path: str) -> None:
        if path.endswith("summary.parquet"):
            raise OSError()

    said = summary_mismatch(faulty_fs(before_read=refuse), str(tmp_path))
    assert (
        said
        == "summary.parquet is unreadable (OSError); rerun `repeval evaluate` on the run (it rewrites both from groups/)"
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


def test_runs_sharing_a_store_open_it_and_count_each_partition_once(run_dir, tmp_path, monkeypatch):
    """`repeval runs` counting error records opened each run's store and read every error file's footer again for
    each run: 25 runs sharing a store took 0.5 s of CPU instead of 0.06, and an unreachable S3 store held each run
    ~7 s. Runs that share a store open it, or fail to, once and count each of its partitions once."""
    import numpy as np
    import yaml

    from repeval.pipeline.assemble import ErrorBlock, errors_table
    from repeval.store import EmbeddingStore, Partition, PartitionWriter
    from repeval.store.layout import ERROR_SCHEMA, embedding_schema

    store = EmbeddingStore(str(tmp_path / "store"))
    part = store.partition("tinysol", "msd-musicnn", "clean")
    part.stamp({"fp": 1}, {"config_hash": "abc"})
    writer = PartitionWriter(part, embedding_schema(4), 10)
    errs = ErrorBlock()
    for t in ("a", "b"):
        errs.add(t, "test", "clean", "decode", "cannot decode")
    made = np.datetime64(1_700_000_000_000, "ms")
    prov = {"model": "msd-musicnn", "config_hash": "abc", "repeval_version": "0", "created_at": made}
    writer.add_errors(errors_table(errs, ERROR_SCHEMA, prov))
    writer.flush()
    one = EmbeddingStore(str(tmp_path / "one")).partition("tinysol", "msd-musicnn", "clean")
    one.stamp({"fp": 1}, {"config_hash": "abc"})
    writer = PartitionWriter(one, embedding_schema(4), 10)
    errs = ErrorBlock()
    errs.add("c", "test", "clean", "decode", "cannot decode")
    writer.add_errors(errors_table(errs, ERROR_SCHEMA, prov))
    writer.flush()
    runs = tmp_path / "runs"
    for name, at in (("r1", "store"), ("r2", "store"), ("r3", "gone"), ("r4", "one")):
        shutil.copytree(run_dir, runs / name)
        cfg = yaml.safe_load((runs / name / "config.yaml").read_text())
        cfg["run"]["store"] = str(tmp_path / at)
        (runs / name / "config.yaml").write_text(yaml.safe_dump(cfg))
    opened: list[str] = []
    counted: list[str] = []
    real_init, real_head = EmbeddingStore.__init__, Partition.head_errors
    monkeypatch.setattr(EmbeddingStore, "__init__", lambda s, uri, **kw: opened.append(uri) or real_init(s, uri, **kw))
    monkeypatch.setattr(Partition, "head_errors", lambda s, limit: counted.append(str(s.path)) or real_head(s, limit))

    listed = {r["run"]: r for r in json.loads(CliRunner().invoke(app, ["runs", str(runs), "--json"]).output)}
    assert [listed[r]["error_records"] for r in ("r1", "r2", "r3", "r4")] == [2, 2, None, 1], listed
    assert sorted(opened) == sorted(str(tmp_path / s) for s in ("store", "gone", "one")), opened
    assert len(counted) == len(set(counted)) == 12, counted  # 2 datasets x 3 models, clean, of 2 stores: each once
    # one error record is one track, in its partition (it said "1 error record in the store — tracks that failed")
    said = CliRunner().invoke(app, ["runs", str(runs)]).output
    assert re.search(r"r4: 1 error record in the store — a track that failed to decode, deform or embed, not "
                     r"evaluated in its partition \(`repeval store show \S+ tinysol/msd-musicnn/clean --errors` "
                     r"lists it\)", " ".join(said.split())), said  # fmt: skip
    # a store it cannot read is said, not left silent (no line read as no error record)
    assert listed["r3"]["error_records_unread"].startswith(f"the embedding store at {tmp_path / 'gone'} could not be")
    assert f"r3: error records not counted — the embedding store at {tmp_path / 'gone'} could not be read: " in (
        " ".join(said.split())
    ), said


def test_runs_says_an_error_count_is_partial_and_names_the_partition_it_could_not_read(run_dir, tmp_path):
    """A store whose partitions read but one (an error file cut short) gave `repeval runs` the others' count as if it
    were the run's: the count is said to be partial, naming the partition not read, in the table's lines and --json."""
    import numpy as np
    import yaml

    from repeval.pipeline.assemble import ErrorBlock, errors_table
    from repeval.store import EmbeddingStore, PartitionWriter
    from repeval.store.layout import ERROR_SCHEMA, embedding_schema

    store = EmbeddingStore(str(tmp_path / "store"))
    made = np.datetime64(1_700_000_000_000, "ms")
    prov = {"model": "msd-musicnn", "config_hash": "abc", "repeval_version": "0", "created_at": made}
    for model, tracks in (("msd-musicnn", ("a", "b")), ("logmel-stats", ("c",))):
        part = store.partition("tinysol", model, "clean")
        part.stamp({"fp": 1}, {"config_hash": "abc"})
        writer = PartitionWriter(part, embedding_schema(4), 10)
        errs = ErrorBlock()
        for t in tracks:
            errs.add(t, "test", "clean", "decode", "cannot decode")
        writer.add_errors(errors_table(errs, ERROR_SCHEMA, {**prov, "model": model}))
        writer.flush()
    (cut,) = store.partition("tinysol", "logmel-stats", "clean").error_files()
    _cut(Path(cut))
    run = tmp_path / "runs" / "r1"
    shutil.copytree(run_dir, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["run"]["store"] = str(tmp_path / "store")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))

    (info,) = json.loads(CliRunner().invoke(app, ["runs", str(tmp_path / "runs"), "--json"]).output)
    assert info["error_records"] == 2 and info["error_records_unread"] is None, info
    assert info["error_records_partitions_unread"] == ["tinysol/logmel-stats/clean"], info
    assert info["error_records_partial"].startswith(
        "partial: counted in 5 of 6 partitions, tinysol/logmel-stats/clean could not be read ("
    ), info
    said = " ".join(CliRunner().invoke(app, ["runs", str(tmp_path / "runs")]).output.split())
    assert re.search(
        r"r1: 2 error records in the store — [^\n]* lists the partition with the most\); partial: counted in 5 of 6 "
        r"partitions, tinysol/logmel-stats/clean could not be read \(\S+ is not a readable Parquet file",
        said,
    ), said
    # none in the partitions read: said too, not left silent (a user reads no line as no error record)
    shutil.rmtree(tmp_path / "store" / "tinysol" / "msd-musicnn")
    said = " ".join(CliRunner().invoke(app, ["runs", str(tmp_path / "runs")]).output.split())
    assert "r1: 0 error records in the store; partial: counted in 5 of 6 partitions, tinysol/logmel-stats" in said, said
    # two not read, each for its own reason: the reason given is said to be the first's (the warnings give each)
    (tmp_path / "store" / "tinysol" / "msd-musicnn" / "clean").mkdir(parents=True)
    (tmp_path / "store" / "tinysol" / "msd-musicnn" / "clean" / "_errors").write_text("not a folder")
    said = " ".join(CliRunner().invoke(app, ["runs", str(tmp_path / "runs")]).output.split())
    assert "partial: counted in 4 of 6 partitions, tinysol/" in said and "could not be read (the first: " in said, said
    # none of them read (each one's error folder a file): not counted, and the partitions said, not the store, unread
    from repeval.report.left_out import run_partitions

    for dataset, model, scenario in run_partitions(load_run(str(run))):
        part = tmp_path / "store" / dataset / model / scenario
        shutil.rmtree(part / "_errors", ignore_errors=True)
        part.mkdir(parents=True, exist_ok=True)
        (part / "_errors").write_text("not a folder")
    (info,) = json.loads(CliRunner().invoke(app, ["runs", str(tmp_path / "runs"), "--json"]).output)
    assert info["error_records"] is None and info["error_records_partial"] is None, info
    assert len(info["error_records_partitions_unread"]) == 6, info
    said = " ".join(CliRunner().invoke(app, ["runs", str(tmp_path / "runs")]).output.split())
    assert (
        f"r1: error records not counted — none of its 6 partitions in the embedding store at {tmp_path / 'store'} "
        "could be read: tinysol/"
    ) in said, said
    # in the system's words with its fix (it was "[Errno 20] Cannot list directory '…'. Detail: …", no fix)
    assert "/_errors cannot be listed (not a directory): its error records are not read; it is a file, not a folder: " \
        "move it aside" in said, said  # fmt: skip
    assert "Errno" not in said, said
