"""The command line a run records as resuming it (``status.json``'s ``resume``, the "… resumes it" hints, ``repeval
runs``) repeats the options it was given that still apply: ``--strict`` always, ``--retry-errors`` until the embedding
stage finished (``--retry-model`` too); a line for another command on the run keeps only the options that command
takes."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from repeval import runner
from repeval.cli import app
from repeval.ray_cluster import job_resubmit
from repeval.run.status import RESUMED_FLAGS, command_line, read_status, write_status
from repeval.testing.configs import one_row_config


def _config(tmp_path: Path) -> Path:
    return one_row_config(tmp_path, "r")


def _stopped(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("embed", ["--strict", "--retry-errors"]),
        ("run", ["--strict", "--retry-errors"]),
        ("deform", ["--retry-errors"]),
        ("embed", ["--retry-model=mfcc-stats"]),
    ],
)
def test_a_stage_stopped_while_embedding_resumes_with_the_options_it_was_given(tmp_path, monkeypatch, command, flags):
    """`repeval embed CONFIG --strict --retry-errors`, interrupted, recorded and said "`repeval embed CONFIG` resumes
    it": followed, the errors it was retrying stayed error records and a dropped row no longer failed the run."""
    cfg = _config(tmp_path)
    monkeypatch.setattr(runner, "stage_embed", _stopped)
    res = CliRunner().invoke(app, [command, str(cfg), *flags])
    assert res.exit_code == 130, res.output
    line = f"repeval {command} {cfg} {' '.join(flags)}"
    assert f"`{line}` resumes it" in res.stderr, res.stderr
    status = read_status(tmp_path / "runs" / "r")
    assert (status["state"], status["resume"]) == ("interrupted", line), status
    assert f"`{line}` resumes it" in status["reason"]


def test_a_run_stopped_after_embedding_resumes_without_retrying_errors_again(tmp_path, monkeypatch):
    """Once the embedding stage finished, its error records were retried: the line that resumes the run keeps
    --strict and leaves out --retry-errors (it would decode the files that failed again once more)."""
    cfg = _config(tmp_path)
    monkeypatch.setattr(
        runner, "stage_embed", lambda ctx, **_: types.SimpleNamespace(text=lambda: "embedded", models_failed={})
    )
    monkeypatch.setattr(runner, "not_evaluated", lambda _ctx: [])
    monkeypatch.setattr(runner, "stage_train", _stopped)
    res = CliRunner().invoke(app, ["run", str(cfg), "--retry-errors", "--strict", "--retry-model", "mfcc-stats"])
    assert res.exit_code == 130, res.output
    status = read_status(tmp_path / "runs" / "r")
    assert status["resume"] == f"repeval run {cfg} --strict", status
    assert f"`repeval run {cfg} --strict` resumes it" in res.stderr, res.stderr

    finished = CliRunner().invoke(app, ["embed", str(cfg), "--retry-errors"])  # its line is kept: without it too
    assert finished.exit_code == 0, finished.output
    status = read_status(tmp_path / "runs" / "r")
    assert (status["state"], status["resume"]) == ("finished", f"repeval embed {cfg}"), status


def test_a_line_for_another_command_keeps_the_options_that_command_takes():
    status = {"resume": "repeval embed c.yaml --run-id r --strict --retry-errors --retry-model=m"}
    assert command_line(status, "run") == "repeval run c.yaml --run-id r --strict --retry-errors --retry-model=m"
    assert command_line(status, "deform") == "repeval deform c.yaml --run-id r --retry-errors --retry-model=m"
    assert command_line(status, "train") == "repeval train c.yaml --run-id r"  # `train --strict`: no such option
    submit = "ray job submit --working-dir . -- python jobs/embed.py c.yaml --run-id r --strict --retry-errors"
    job = {"job": {"submit": submit}}
    assert (
        job_resubmit(job, "evaluate") == "ray job submit --working-dir . -- python jobs/evaluate.py c.yaml --run-id r"
    )
    assert job_resubmit(job, "run") == submit.replace("jobs/embed.py", "jobs/run.py")


def test_the_resumed_options_are_those_each_command_takes():
    """:data:`RESUMED_FLAGS` says which commands take each option: a line naming another command drops the rest."""
    group = typer.main.get_command(app)
    commands = group.commands  # type: ignore[attr-defined]
    for flag, takers in RESUMED_FLAGS.items():
        taking = {name for name in ("run", "embed", "deform", "train", "evaluate")
                  if any(flag in p.opts for p in commands[name].params)}  # fmt: skip
        assert taking == takers, (flag, taking)


def test_an_unfinished_earlier_command_is_named_with_its_own_options(tmp_path):
    """`repeval evaluate` on a run whose `repeval run --strict` was interrupted said "finish it with `repeval run
    CONFIG`", without --strict."""
    cfg = _config(tmp_path)
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    resume = f"repeval run {cfg} --strict"
    write_status(run, "run", "interrupted", f"stopped by Ctrl-C; `{resume}` resumes it", resume)
    res = CliRunner().invoke(app, ["evaluate", str(cfg)])
    assert res.exit_code == 1, res.output
    said = " ".join(res.output.split())
    assert f"this run's `repeval run` was interrupted: finish it with `{resume}`" in said, said
    assert f"train them first — `repeval train {cfg}`, or `{resume}`, which also resumes" in said, said


def test_a_retry_model_that_names_no_model_of_the_configuration_is_refused_with_the_models_there_are(tmp_path):
    """`repeval embed CONFIG --retry-model NAME` retries one embedding model's error records (and a model a run
    stopped); a name that is no model of the configuration (a typo) is refused before the command starts, naming the
    models there are — not a run that retries nothing."""
    cfg = _config(tmp_path)
    res = CliRunner().invoke(app, ["embed", str(cfg), "--retry-model", "mfcc-stat", "--retry-model", "clap"])
    assert res.exit_code == 1, res.output
    said = " ".join(res.stderr.split())
    assert (
        "--retry-model: the configuration has no embedding models 'mfcc-stat', 'clap'; give the id of one of its "
        "embedding models: mfcc-stats"
    ) in said, said
    assert read_status(tmp_path / "runs" / "r") == {}  # not started
    # a configuration without run.run_id: no new run directory is made (it was, holding only config.yaml)
    res = CliRunner().invoke(app, ["run", str(one_row_config(tmp_path)), "--retry-model", "mfcc-stat"])
    assert res.exit_code == 1 and "has no embedding model 'mfcc-stat'" in res.stderr, res.output
    assert not (tmp_path / "runs").exists(), sorted((tmp_path / "runs").iterdir())
