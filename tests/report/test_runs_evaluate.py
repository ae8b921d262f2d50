"""``repeval evaluate`` on a run's groups: the ones of its configuration, nothing or part of it trained."""

from __future__ import annotations

import shutil

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from runs_cases import _failure
from typer.testing import CliRunner

from repeval.cli import app
from repeval.report.results import load_run
from repeval.report.runs import run_info
from repeval.tuning.results import FAILED_SCHEMA, typed_table


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
