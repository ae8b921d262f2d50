"""Configuration files: YAML errors, data paths, and what `repeval validate` checks of the data and warns of."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from config_cases import base

from repeval.config import ConfigError, load_config, parse_config
from repeval.plan import make_plan


def test_yaml_errors_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("experiments: [\n  - task: {name: x\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(p)
    with pytest.raises(ConfigError, match="config file not found") as missing:
        load_config(tmp_path / "nope.yaml")
    # the path once ("error: configs/x.yml: config file not found: configs/x.yml — …" said it twice)
    assert str(missing.value) == f"{tmp_path / 'nope.yaml'}: config file not found — check the path", missing.value
    with pytest.raises(ConfigError) as near:  # quickstart.yml for quickstart.yaml: the file beside it is named
        load_config(tmp_path / "bad.yml")
    assert str(near.value) == f"{tmp_path / 'bad.yml'}: config file not found — did you mean {p}?", near.value


def test_a_data_path_written_from_the_config_file_or_with_a_variable_says_so(tmp_path, monkeypatch):
    """Relative data paths start from the current directory: one that exists beside the config file (the config run
    from another folder) is named with where it is — and with no way to write or fetch it (it said "or write the
    manifest first (`repeval data render DIR` …)" of a user's own catalog); one with ``$HOME`` is refused when the
    file is read, saying variables are not expanded (nothing to write or fetch there either)."""
    from repeval.config.loader import check_data_paths

    (tmp_path / "proj" / "data").mkdir(parents=True)
    (tmp_path / "proj" / "data" / "m.csv").write_text("track_id,audio_path,instrument\na,a.wav,x\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    for value, said in [
        ("data/m.csv", f"not the config file's folder, where it is ({tmp_path / 'proj' / 'data' / 'm.csv'}): run "
                       f"repeval from {tmp_path / 'proj'}"),
        ("$PROJ/data/m.csv", "environment variables are not expanded in paths: write the path out in full"),
        ("nowhere/m.csv", f"fix the path (relative paths start from {tmp_path / 'elsewhere'})"),
    ]:  # fmt: skip
        d = base()
        d["experiments"][0]["datasets"][0]["manifest"] = value
        cfg = tmp_path / "proj" / "c.yaml"
        cfg.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError) as info:
            check_data_paths(load_config(cfg), str(cfg))
        assert said in str(info.value), str(info.value)
        assert ("repeval data render" in str(info.value)) == (value == "nowhere/m.csv"), str(info.value)
    monkeypatch.chdir(tmp_path / "proj")  # from the config's folder the same file is found
    d["experiments"][0]["datasets"][0]["manifest"] = "data/m.csv"
    cfg.write_text(yaml.safe_dump(d))
    check_data_paths(load_config(cfg), str(cfg))


def test_a_home_folder_in_a_path_is_expanded():
    """``~`` in a path passed the data check (which expanded it), but the loaders and the store took it as a folder
    named ``~`` (``run.store: ~/repeval-store`` made ``./~/repeval-store``): it is expanded when the file is read."""
    d = base()
    d["run"] = {"store": "~/repeval-store", "runs_dir": "~/runs"}
    d["experiments"][0]["datasets"][0].update(manifest="~/data/m.csv", dir="~/data")
    cfg = parse_config(d)
    assert (cfg.run.store, cfg.run.runs_dir) == (str(Path.home() / "repeval-store"), str(Path.home() / "runs"))
    ds = cfg.experiments[0].datasets[0]
    assert (ds.manifest, ds.dir) == (str(Path.home() / "data" / "m.csv"), str(Path.home() / "data"))
    d["run"]["store"] = "s3://bucket/~x"  # a URI as written
    assert parse_config(d).run.store == "s3://bucket/~x"


def test_a_missing_rendered_manifest_names_the_render_command_that_writes_it(tmp_path, monkeypatch):
    """A shipped config run before its data was rendered (``configs/aggregation.yaml``: ``data/mixtures/manifest.csv``)
    said "`repeval data render DIR` renders the quickstart's notes; `--kind mixtures` …" — the user worked out DIR
    and the kind. It now names the command for that folder and the task's type; a manifest the renderer does not
    write (another label column or file name) keeps the general hint."""
    from repeval.config.loader import check_data_paths

    monkeypatch.chdir(tmp_path)
    cases = [
        ("multilabel_classification", "instruments", "data/mixtures/manifest.csv",
         "write it first: `repeval data render data/mixtures --kind mixtures` renders instrument mixtures"),
        ("key_estimation", "key", "data/keys/manifest.parquet",
         "`repeval data render data/keys --kind keys --format parquet` renders chord progressions"),
        ("multiclass_classification", "instrument", "data/quickstart/manifest.csv",
         "`repeval data render data/quickstart` renders the quickstart's notes"),
        ("multiclass_classification", "genre", "data/mine/manifest.csv", "`repeval data render DIR` renders"),
        ("multiclass_classification", "instrument", "data/mine/tracks.csv", "`repeval data render DIR` renders"),
    ]  # fmt: skip
    for task_type, column, manifest, said in cases:
        d = base()
        d["experiments"][0]["task"]["type"] = task_type
        d["experiments"][0]["deformations"] = []
        d["experiments"][0]["datasets"][0].update(manifest=manifest, label_column=column)
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(d))
        with pytest.raises(ConfigError) as info:
            check_data_paths(load_config(cfg), str(cfg))
        assert said in str(info.value), str(info.value)


def test_a_directory_given_as_config_says_so(tmp_path):
    """`repeval validate some_directory/` said "config file not found"; it now says the path is a directory and
    names the YAML files in it."""
    from typer.testing import CliRunner

    from repeval.cli import app

    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty is a directory; give a YAML config file$"):
        load_config(tmp_path / "empty")
    for name in ("b.yaml", "a.yml", "notes.txt"):
        (tmp_path / name).write_text("experiments: []\n")
    r = CliRunner().invoke(app, ["validate", f"{tmp_path}/"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    out = " ".join(r.output.split())
    assert f"{tmp_path} is a directory; give a YAML config file in it: a.yml, b.yaml" in out, out
    assert "not found" not in out


def test_yaml_is_loaded_safely(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("experiments: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_validate_checks_that_a_k_fold_catalog_can_rotate_its_split_column(tmp_path, monkeypatch):
    """split_type: all with a split_column: every row filled is an error of `repeval validate` (the load would stop:
    the folds cannot rotate), some rows filled a warning, and a manifest not read (--skip-data-check) a warning that
    it depends on the column's cells."""
    from typer.testing import CliRunner

    from repeval.cli import app

    monkeypatch.chdir(tmp_path)
    d = base()
    d["experiments"][0]["datasets"][0].update(split_column="split", split_type="all", check_files=False)
    Path("c.yaml").write_text(yaml.safe_dump(d))
    rows = ["track_id,audio_path,instrument,split", "a,a.wav,x,train", "b,b.wav,y,test"]
    Path("m.csv").write_text("\n".join(rows) + "\n")
    validate = ["validate", "--skip-model-check", "c.yaml"]
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 2, res.output
    assert "datasets[0].split_column: split_type is all, but every row" in res.output
    assert "drop split_column" in res.output and "split_type: single" in res.output
    res = CliRunner().invoke(app, ["validate", "--skip-data-check", *validate[1:]])
    assert res.exit_code == 0 and "warning:" in res.output
    assert "if every row of column 'split' has a split the run stops at the load" in res.output
    Path("m.csv").write_text("\n".join([*rows, "c,c.wav,x,", "d,d.wav,y, "]) + "\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 0, res.output
    assert "warning: experiments[0].datasets[0].split_column: 2 of 4 rows" in res.output
    Path("m.csv").write_text("\n".join([rows[0], "c,c.wav,x,", "d,d.wav,y,"]) + "\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    # a spreadsheet's empty rows after the last track (and a blank line) are no rows without a split
    Path("m.csv").write_text("\n".join(rows) + "\n\n,,,\n,,,\n")
    res = CliRunner().invoke(app, validate)
    assert res.exit_code == 2 and "split_type is all, but every row" in res.output, res.output


def test_validate_warns_of_a_deformation_step_without_p(tmp_path, monkeypatch):
    """Every audiomentations transform defaults to p 0.5: ``{type: Mp3Compression, params: {min_bitrate: 32,
    max_bitrate: 32}}`` compressed about half of the test tracks and scored the others clean under the scenario's
    name, and nothing said so — a robustness table's Δ measured half a deformation. `repeval validate` warns of each
    such step once (a scenario the experiments share, through a YAML anchor, too), and says nothing of a step with p."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config.embed import default_p_warnings

    monkeypatch.chdir(tmp_path)
    d = base()
    mp3 = {"name": "mp3", "steps": [{"type": "Mp3Compression", "params": {"min_bitrate": 32, "max_bitrate": 32}}]}
    d["experiments"][0]["deformations"] = [[{"type": "Gain", "params": {"p": 1}}, {"type": "Clip"}], mp3]
    d["experiments"].append({**d["experiments"][0], "task": {"name": "other", "type": "multiclass_classification"}})
    # another data set's own 'D1', another step without p where the first D1 has Clip: said too, not taken for it
    other = {**d["experiments"][0]["datasets"][0], "name": "other"}
    d["experiments"].append({**d["experiments"][0], "datasets": [other], "deformations": [[{"type": "Gain"}] * 2]})
    Path("c.yaml").write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "--skip-data-check", "c.yaml"])
    assert res.exit_code == 0, res.output
    warned = [line for line in res.output.splitlines() if "no p" in line]
    assert warned == [
        "warning: experiments[0].deformations[0].steps[1]: scenario 'D1' gives Clip no p — audiomentations' default "
        "p 0.5 deforms only about 50% of the tracks, the others scored as they are under 'D1': write p: 1 to deform "
        "every track (or p: 0.5 to keep it so)",
        "warning: experiments[0].deformations[1].steps[0]: scenario 'mp3' gives Mp3Compression no p — "
        "audiomentations' default p 0.5 deforms only about 50% of the tracks, the others scored as they are under "
        "'mp3': write p: 1 to deform every track (or p: 0.5 to keep it so)",
        *(
            f"warning: experiments[2].deformations[0].steps[{i}]: scenario 'D1' gives Gain no p — audiomentations' "
            "default p 0.5 deforms only about 50% of the tracks, the others scored as they are under 'D1': write p: 1 "
            "to deform every track (or p: 0.5 to keep it so)"
            for i in (0, 1)
        ),
    ], res.output
    # the experiment's scenarios, which a data set's own deformations replace: not run, not warned of
    d["experiments"][2]["datasets"] = [{**other, "deformations": [[{"type": "Gain", "params": {"p": 1}}]]}]
    assert not [w for w in default_p_warnings(parse_config(d).experiments) if "experiments[2]" in w]


def test_plan_says_the_warnings_validate_says_once_each():
    """A step without p and ``run.deform_splits`` deforming tracks no probe reads were said by `repeval validate` and
    the embed stage alone: a user who planned the run saw the cost of ``deform_splits`` nowhere. The plan says them
    too, as validate does, each once."""
    from repeval.config.embed import default_p_warnings, deform_splits_warnings

    d = base()
    d["run"] = {"deform_splits": ["validation", "test"]}
    d["experiments"][0]["deformations"].append({"name": "mp3", "steps": [{"type": "Mp3Compression"}]})
    cfg = parse_config(d)
    said = default_p_warnings(cfg.experiments) + deform_splits_warnings(cfg)
    assert len(said) == 2 and "'mp3' gives Mp3Compression no p" in said[0] and "deform_splits" in said[1], said
    text = make_plan(cfg).text().splitlines()
    assert [line for line in text if line.startswith("warning: ")] == [f"warning: {w}" for w in said], text


def test_validate_warns_when_deform_splits_deforms_tracks_no_probe_reads(tmp_path, monkeypatch):
    """``run.deform_splits: [train, validation, test]`` embedded every split under every scenario — 8 times the rows
    of [test] on the Medley-solos-DB slice — and changed no result: probes train and are chosen on clean audio (plus
    the training tracks of the scenarios ``augment`` lists). Nothing said so; `repeval validate` now warns, naming
    what no probe reads."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config.embed import deform_splits_warnings

    monkeypatch.chdir(tmp_path)
    d = base()
    d["run"] = {"deform_splits": ["train", "validation", "test"]}
    Path("c.yaml").write_text(yaml.safe_dump(d))
    res = CliRunner().invoke(app, ["validate", "--skip-model-check", "--skip-data-check", "c.yaml"])
    assert res.exit_code == 0, res.output
    assert (
        "warning: run.deform_splits: ['train', 'validation', 'test'] deforms the validation tracks and the training "
        "tracks under D1 into the store, where no probe reads them"
    ) in res.output, res.output
    d["experiments"][0]["augment"] = ["D1"]  # its deformed training tracks are trained on: only validation is unread
    assert "deforms the validation tracks into the store" in deform_splits_warnings(parse_config(d))[0]
    d["run"]["deform_splits"] = ["train", "test"]
    assert deform_splits_warnings(parse_config(d)) == []
    d["run"]["deform_splits"] = ["test"]
    del d["experiments"][0]["augment"]
    assert deform_splits_warnings(parse_config(d)) == []
