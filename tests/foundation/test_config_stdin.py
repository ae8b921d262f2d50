"""CONFIG ``-``: a command reads its configuration's YAML from standard input (``cat exp.yaml | repeval run -``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from repeval.cli import app

#: one experiment on a catalog of one row (its audio absent), every path relative: from the current directory
RELATIVE = (
    "run: {run_id: r, runs_dir: runs, store: store}\n"
    "experiments:\n- task: {name: t, type: multiclass_classification}\n"
    "  datasets: [{name: d, type: catalog, manifest: m.csv, label_column: label}]\n"
    "  embedding_models: [mfcc-stats]\n  downstream_models: [{type: classifier, hidden_units: []}]\n"
)


def test_config_dash_reads_the_yaml_from_stdin_its_paths_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval validate -` (and every command taking CONFIG) read a file named ``-``: "config file not found". It
    reads the YAML piped in, named ``stdin`` in what it says, its relative paths from the current directory; the run
    directory records the configuration it ran, as of a file."""
    from repeval import ray_utils
    from repeval.config.loader import parse_config
    from repeval.run.context import config_yaml

    def no_ray(*_a: object, **_k: object) -> None:
        raise AssertionError("Ray started for a store that does not exist")

    monkeypatch.setattr(ray_utils, "init_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
    ok = CliRunner().invoke(app, ["validate", "-", "--skip-model-check"], input=RELATIVE)
    assert ok.exit_code == 0 and ok.stdout.startswith("stdin: valid (1 experiment)"), ok.output
    plan = CliRunner().invoke(app, ["plan", "-"], input=RELATIVE)
    assert (
        plan.exit_code == 0
        and f"no embedding store at store yet: nothing is embedded there ({tmp_path / 'store'}" in (plan.stdout)
    ), plan.output
    # `train` stops before Ray (no store yet), its run directory made: the configuration it was given, recorded
    train = CliRunner().invoke(app, ["train", "-"], input=RELATIVE)
    assert train.exit_code == 1 and "no embedding store at" in train.output, train.output
    recorded = (tmp_path / "runs" / "r" / "config.yaml").read_text()
    assert recorded == config_yaml(parse_config(yaml.safe_load(RELATIVE))), recorded  # as a file's would be
    # the command lines it names for this run name that copy (were `repeval embed -`: the YAML to pipe in again); a
    # command takes it
    kept = tmp_path / "runs" / "r" / "config.yaml"
    assert f"run `repeval embed {kept}` (or `repeval run {kept}`) with this configuration" in train.stderr, train.output
    again = CliRunner().invoke(app, ["train", str(kept)])
    assert again.exit_code == 1 and f"`repeval embed {kept}`" in again.stderr and kept.read_text() == recorded, (
        again.output
    )
    # a file named `-`: `./-` (was standard input, as `Path("./-")` is `-`), by its path
    (tmp_path / "-").write_text(RELATIVE)
    named = CliRunner().invoke(app, ["validate", "./-", "--skip-model-check"], input="not: [the file\n")
    assert named.exit_code == 0 and named.stdout.startswith(f"{tmp_path / '-'}: valid (1 experiment)"), named.output
    bad = CliRunner().invoke(app, ["validate", "-"], input="run: {run_id: r\n")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: stdin: not valid YAML at line 2"), bad.output
    # nothing piped in (`cat typo.yaml | repeval validate -`): was "stdin: the file must be a mapping with an
    # 'experiments:' list"
    empty = CliRunner().invoke(app, ["validate", "-"], input="\n")
    assert empty.exit_code == 2 and "standard input, but nothing came in (a command before the pipe failed" in (
        empty.stderr
    ), empty.output


def test_config_dash_in_a_ray_job_is_refused_naming_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `ray job submit` job's standard input is not the submitter's: CONFIG ``-`` there says to give a file."""
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", '{"runtime_env": {}}')
    res = CliRunner().invoke(app, ["validate", "-"], input=RELATIVE)
    assert res.exit_code == 2, res.output
    assert "a `ray job submit` job has no standard input of its own to read it from: put the configuration in a " in (
        res.stderr
    ), res.output


def test_a_config_uri_is_read_from_a_file_uri_and_refused_from_a_bucket_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONFIG `s3://b/exp.yaml` said "s3:/b/exp.yaml: config file not found — check the path" (its `//` lost) and
    `file:///…/exp.yaml` likewise: a `file://` URI is now its local file, a bucket's refused saying where a
    configuration is read from and how to pipe it in."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
    (tmp_path / "my exp.yaml").write_text(RELATIVE)
    uri = (tmp_path / "my exp.yaml").as_uri()
    read = CliRunner().invoke(app, ["validate", uri, "--skip-model-check"])
    assert read.exit_code == 0 and read.stdout.startswith(f"{tmp_path / 'my exp.yaml'}: valid"), read.output
    # piped in by the bucket's own client (was `cat exp.yaml`, a local file's), an S3-compatible server's endpoint
    # given, keys in the URI not
    for given, piped in (
        ("s3://b/exp.yaml", "aws s3 cp s3://b/exp.yaml -"),
        ("s3://K:S@b/e.yaml?endpoint_override=127.0.0.1:9000&scheme=http",
         "aws s3 cp s3://b/e.yaml - --endpoint-url http://127.0.0.1:9000"),
        ("gs://b/exp.yaml", "gcloud storage cat gs://b/exp.yaml"),
    ):  # fmt: skip
        refused = CliRunner().invoke(app, ["data", "check", given], env={"COLUMNS": "400"})
        said = " ".join(refused.stderr.replace("│", " ").split())
        assert (
            refused.exit_code == 2
            and (
                f"Invalid value for CONFIG: {given} is a URI, and a configuration is read from a local file or standard "
                f"input: copy it to this machine and give its path, or pipe it in (`{piped} | repeval data check -`)"
            )
            in said
        ), said
