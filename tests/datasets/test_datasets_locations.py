"""Locations a user types — a store, a runs directory, a manifest, its audio paths — that no filesystem here reads: a
Windows path on Linux, a URI of a scheme pyarrow has no filesystem for; and errors naming a URI as it was typed, not
percent-encoded for pyarrow. No Ray."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import typer
import yaml
from dataset_fixtures import catalog_config
from typer.testing import CliRunner

from repeval import cli
from repeval.cli import CliFormatter, _format_warning, app
from repeval.cli.common import cli_path
from repeval.config import ConfigError, parse_config
from repeval.config.loader import check_data_paths
from repeval.datasets import load_dataset
from repeval.uri_text import shown

#: what the error names of a scheme repeval does not read
READS = "it reads a local path, file://, s3://, gs:// (gcs://), abfs:// (Azure) or hdfs://"


def test_a_windows_path_is_refused_with_the_posix_fix(tmp_path, monkeypatch):
    """On Linux ``C:\\data\\store`` was a file name in the current folder (the run made a folder of that name),
    ``D:/runs`` a folder ``D:``, ``\\\\server\\share\\m.csv`` a file name and ``C://data`` a URI of scheme ``c``
    (pyarrow: "Unrecognized filesystem type"), each without a word: each is refused when the file is read, naming the
    fix — unless a file or folder of that name exists."""
    monkeypatch.chdir(tmp_path)
    cfg = catalog_config("\\\\server\\share\\m.csv", store="C:\\data\\store", runs_dir="D:/runs")
    cfg["experiments"][0]["datasets"][0]["dir"] = "C://data"
    with pytest.raises(ConfigError) as said:
        parse_config(cfg)
    for key, text, fix in [
        ("run.store", "C:\\data\\store", "under WSL /mnt/c/data/store"),
        ("run.runs_dir", "D:/runs", "under WSL /mnt/d/runs"),
        ("experiments[0].datasets[0].manifest", "\\\\server\\share\\m.csv", "where this machine mounts that network share"),
        ("experiments[0].datasets[0].dir", "C://data", "under WSL /mnt/c/data"),
    ]:  # fmt: skip
        assert (
            f"{key}: '{text}' is a Windows path, which Linux does not read as one — write it as a POSIX path ("
            in str(said.value)
        ), said.value
        assert fix in str(said.value), said.value
    with pytest.raises(typer.BadParameter, match=r"'C:\\x' is a Windows path"):  # --store, --runs-dir
        cli_path("C:\\x")
    (tmp_path / "D:").mkdir()  # a folder so named: the path is its name
    assert parse_config(catalog_config("m.csv", runs_dir="D:/runs")).run.runs_dir == "D:/runs"


def test_a_windows_drive_as_a_file_uri_or_an_output_path_is_refused_with_the_posix_fix(tmp_path, monkeypatch):
    """``file://C:/data/m.csv`` was read as a URI of host ``C:`` ("cannot be read from here (Unsupported hostname…) —
    check the network"), ``file:///C:/data/m.csv`` as the folder ``/C:`` ("no such file"), and ``--data-home``,
    ``--out``, ``data render``'s output folder, ``table``'s and ``report``'s run directories and ``plugins:`` were not
    checked at all (a file or folder named ``C:\\out`` made here, a run "not found"): each is refused with the same fix
    as the other locations."""
    monkeypatch.chdir(tmp_path)
    cfg = catalog_config("file://C:/data/m.csv")
    cfg["experiments"][0]["datasets"][0]["dir"] = "file:///D:/audio"
    with pytest.raises(ConfigError) as said:
        parse_config(cfg)
    with pytest.raises(ConfigError) as plugin:  # plugins are loaded first, before the experiments are read
        parse_config({**cfg, "plugins": ["C:\\team\\model.py"]})
    for error, key, text, fix in [
        (said, "experiments[0].datasets[0].manifest", "file://C:/data/m.csv", "under WSL /mnt/c/data/m.csv"),
        (said, "experiments[0].datasets[0].dir", "file:///D:/audio", "under WSL /mnt/d/audio"),
        (plugin, "plugins[0]", "C:\\team\\model.py", "under WSL /mnt/c/team/model.py"),
    ]:  # fmt: skip
        assert f"{key}: '{text}' is a Windows path, which Linux does not read as one" in str(error.value), error.value
        assert fix in str(error.value), error.value
    for args in (
        ["data", "download", "tinysol", "--data-home", "C:\\mir"],
        ["data", "check", "cfg.yaml", "--out", "C:\\bad.csv"],
        ["report", "runs/r1", "--out", "D:/report.html"],
        ["schema", "--out", "C:\\schema.json"],
        ["data", "render", "--notes", "1", "C:\\notes"],  # the output folder: it rendered into one so named
        ["table", "runs/r1", "C:\\runs\\r2"],  # run directories: every one read as --runs-dir is
        ["report", "D:/runs/r1"],
        ["models", "--plugin", "C:\\team\\model.py"],  # as plugins: is (it was "no such file: ./C:\\team\\…")
        ["validate-model", "mfcc-stats", "--dummy-weights", "C:\\weights"],
        ["store", "rm", "a/b/c", "--tracks-from", "C:\\ids.txt"],
    ):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 2 and f"'{args[-1]}' is a Windows path" in " ".join(res.output.split()), res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written under such a name


def test_a_scheme_no_filesystem_reads_is_refused_even_without_the_data_check(tmp_path, monkeypatch):
    """A manifest at ``https://`` passed ``repeval validate --skip-data-check`` (and ``plan``/``run`` until the load),
    and ``run.store: ftp://…`` the whole file: the scheme is known without touching data. Each is refused when the file
    is read, naming the schemes repeval reads, in the words of the data check — a folder repeval writes (a store, a
    runs directory) with a folder's fix, not "download the file"."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as said:
        parse_config(catalog_config("https://example.org/m.csv", store="ftp://example.org/store"))
    for key, uri, fix in [
        ("experiments[0].datasets[0].manifest", "https://example.org/m.csv", "download the file and give its path"),
        ("run.store", "ftp://example.org/store", "give a local folder, or a bucket's s3:// or gs:// URI"),
    ]:  # fmt: skip
        scheme = uri.split(":")[0]
        assert f"{key}: {uri}: repeval cannot read {scheme}:// URIs — {READS}; {fix}" in str(said.value), said.value
    with pytest.raises(typer.BadParameter, match=r"repeval cannot read sftp:// URIs .*; give a local folder"):
        cli_path("sftp://example.org/runs")  # --store, --runs-dir
    (path := tmp_path / "c.yaml").write_text(yaml.safe_dump(catalog_config("HTTPS://example.org/m.csv")))
    res = CliRunner().invoke(app, ["validate", str(path), "--skip-data-check", "--skip-model-check"])
    assert res.exit_code == 2, res.output
    assert f"manifest: HTTPS://example.org/m.csv: repeval cannot read HTTPS:// URIs — {READS}" in res.output


def test_audio_paths_no_filesystem_reads_stop_the_load_once(tmp_path, monkeypatch):
    """An ``https://`` audio path in a manifest read with ``check_files: false`` became one error record per track at
    decode (pyarrow's "Unrecognized filesystem type"), a ``C:\\music\\a.wav`` one a file not found: the load stops on
    the first, naming its row, the schemes repeval reads and the fix, and ``repeval validate`` finds it in its rows."""
    monkeypatch.chdir(tmp_path)
    Path("a.wav").write_bytes(b"RIFF")
    for cell, said in [
        ("https://example.org/b.wav", f"row 4's audio path https://example.org/b.wav: repeval cannot read https:// "
                                      f"URIs — {READS}; download the files and write their paths"),
        ("C:\\music\\b.wav", "row 4's audio path 'C:\\music\\b.wav' is a Windows path, which Linux does not read as "
                             "one — write it as a POSIX path (where this machine mounts that drive: under WSL "
                             "/mnt/c/music/b.wav)"),
    ]:  # fmt: skip
        Path("m.csv").write_text(f"track_id,audio_path,label\nt0,a.wav,a\nt1,a.wav,b\nt2,{cell},a\n")
        cfg = parse_config(catalog_config("m.csv"))
        with pytest.raises(ValueError) as loaded:
            load_dataset(cfg.experiments[0].datasets[0], cfg.experiments[0].task)
        assert str(loaded.value).startswith(f"catalog m.csv: {said}"), loaded.value
        with pytest.raises(ConfigError) as checked:
            check_data_paths(cfg)
        assert f"experiments[0].datasets[0].audio_column: {said}" in str(checked.value)


def test_an_error_shows_a_uri_as_it_was_typed(tmp_path, monkeypatch):
    """A URI written with a space, ``#`` or a letter beyond ASCII is percent-encoded for pyarrow when the file is read
    — and its errors named it so (``my%20folder/C%23%20caf%C3%A9.csv``), not as the user wrote it. They now show
    what was typed; ``/`` and ``?`` written encoded, a query and a local path keep their escapes."""
    monkeypatch.chdir(tmp_path)
    uri = f"file://{tmp_path}/my folder/C# café.csv"
    (path := tmp_path / "c.yaml").write_text(yaml.safe_dump(catalog_config(uri)))
    res = CliRunner().invoke(app, ["validate", str(path), "--skip-model-check"])
    assert res.exit_code == 2, res.output
    assert f"manifest: no such file: {uri} — check dataset.manifest" in res.output, res.output
    Path("m.csv").write_text("track_id,audio_path,label\nt0,a.wav,a\n")  # plan's notes too
    path.write_text(yaml.safe_dump(catalog_config("m.csv")))
    store = f"file://{tmp_path}/my store"
    res = CliRunner().invoke(app, ["plan", str(path), "--store", store])
    assert f"note: no embedding store at {store} yet" in res.output, res.output
    said = logging.LogRecord("repeval.datasets", logging.INFO, "", 0, "catalog %s: 2 rows", (parse_config(
        catalog_config(uri)).experiments[0].datasets[0].manifest,), None)  # fmt: skip
    assert CliFormatter().format(said) == f"catalog {uri}: 2 rows"  # a run's log lines
    warned = _format_warning(f"catalog {said.args[0]}: 1 row dropped", UserWarning, cli.__file__, 1)  # its warnings
    assert warned == f"UserWarning: catalog {uri}: 1 row dropped\n"
    text = "s3://b/a%2Fb%3F%0A%C3.wav?endpoint_override=http%3A%2F%2Fh: no such file: m%20y.wav"
    assert shown(text) == text  # nothing typed differently: as it is
    # a file named '100%41.wav' is written s3://b/100%2541.wav: 's3://b/100%41.wav' is another file, '100A.wav'
    assert shown("s3://b/100%2541.wav, s3://b/50%25%20off.wav") == "s3://b/100%2541.wav, s3://b/50% off.wav"
    # a command to paste into a shell as it is: a space would split it
    res = CliRunner().invoke(app, ["store", "show", f"{store}/none"])
    assert res.exit_code == 1, res.output
    assert f"no embedding store at {store}/none (" in res.output, res.output
    assert f"`repeval embed CONFIG --store file://{tmp_path}/my%20store/none`" in res.output, res.output


def test_a_home_folder_or_a_variable_in_an_audio_path_is_noted(tmp_path, monkeypatch):
    """A manifest's ``~/music/a.wav`` or ``$MUSIC/a.wav`` is read as written (a folder named ``~`` under the manifest's
    folder, as no shell reads the manifest), and the rows were missing without a word on why: a note names the fix
    when the file exists with them expanded."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUSIC", str(tmp_path / "home" / "music"))
    (tmp_path / "home" / "music").mkdir(parents=True)
    Path("home/music/b.wav").write_bytes(b"RIFF")
    Path("a.wav").write_bytes(b"RIFF")
    cfg = parse_config(catalog_config("m.csv"))
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    for cell in ("~/music/b.wav", "$MUSIC/b.wav"):
        Path("m.csv").write_text(f"track_id,audio_path,label\nt0,a.wav,a\nt1,{cell},b\n")
        _, report = load_dataset(ds, cfg.experiments[0].task)
        assert report.count("missing_audio") == 1
        head = cell.split("/")[0]
        assert (
            f"the missing audio file exists with {head} expanded (e.g. {cell}): a manifest's audio paths are read as "
            "written, not by a shell — write them out in full, or relative to the manifest's folder" in report.notes
        ), report.notes


def test_a_drive_written_as_a_uri_or_a_new_drive_folder_is_refused_naming_both_fixes(tmp_path, monkeypatch):
    """With a folder named ``C:`` here, ``run.store: C://store`` (or an audio path ``C://a.wav`` beside one) passed as
    that folder's — and was then read as a URI of scheme ``c``, pyarrow's "Unrecognized filesystem type": it is refused
    as a Windows path. The error names the ``./D:`` a new folder so named is written as; and of a manifest's rows the
    first such path is named, not a later row's ``https://``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "C:").mkdir()
    Path("C:/a.wav").write_bytes(b"RIFF")
    with pytest.raises(ConfigError) as said:
        parse_config(catalog_config("m.csv", store="C://store", runs_dir="D:"))
    for said_of in [
        "run.store: 'C://store' is a Windows path, which Linux does not read as one — write it as a POSIX path (where "
        "this machine mounts that drive: under WSL /mnt/c/store), or ./C:/store for a folder named 'C:'",
        "run.runs_dir: 'D:' is a Windows path, which Linux does not read as one — write it as a POSIX path (where this "
        "machine mounts that drive: under WSL /mnt/d), or ./D: for a folder named 'D:'",
    ]:
        assert said_of in str(said.value), said.value
    cfg = parse_config(catalog_config("m.csv", store="./D:", runs_dir="C:/runs"))  # the folders' names
    assert (cfg.run.store, cfg.run.runs_dir) == ("./D:", "C:/runs")
    ds, task = cfg.experiments[0].datasets[0], cfg.experiments[0].task
    for cells, row, path in [
        ("C:/a.wav,C://a.wav", 3, "C://a.wav"),
        ("E:\\b.wav,https://example.org/b.wav", 2, "E:\\b.wav"),
    ]:  # fmt: skip
        first, second = cells.split(",")
        Path("m.csv").write_text(f"track_id,audio_path,label\nt0,{first},a\nt1,{second},b\nt2,https://h/c.wav,a\n")
        with pytest.raises(ValueError) as loaded:
            load_dataset(ds, task)
        assert f"row {row}'s audio path '{path}' is a Windows path" in str(loaded.value), loaded.value


def test_a_scheme_written_in_upper_case_is_read(tmp_path, monkeypatch):
    """``FILE:///…/m.csv``, ``S3://b/store``: RFC 3986 reads a scheme in either case, pyarrow only in lower case — such
    a manifest was "cannot read FILE:// URIs — it reads … file://", such a store or audio path pyarrow's "Unrecognized
    filesystem type". They are read in lower case."""
    monkeypatch.chdir(tmp_path)
    Path("a.wav").write_bytes(b"RIFF")
    Path("m.csv").write_text(f"track_id,audio_path,label\nt0,a.wav,a\nt1,FILE://{tmp_path}/a.wav,b\n")
    cfg = parse_config(catalog_config(f"File://{tmp_path}/m.csv", store="S3://b/store", runs_dir="GS://b/runs"))
    assert (cfg.run.store, cfg.run.runs_dir) == ("s3://b/store", "gs://b/runs")
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    check_data_paths(cfg)
    catalog, report = load_dataset(ds, cfg.experiments[0].task)
    assert report.count("missing_audio") == 0, report.notes
    assert catalog.column("audio_path").to_pylist() == [f"file://{tmp_path}/a.wav"] * 2


def test_validate_reads_every_row_of_a_manifest_for_audio_paths_no_filesystem_reads(tmp_path, monkeypatch):
    """``repeval validate`` checked the audio paths of the manifest's first batch alone (a CSV's first 64 KiB, a
    Parquet file's first 65,536 rows): a Windows path in a later row passed it and stopped the run's load. Every row is
    read now, a batch at a time — CSV and Parquet alike."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.chdir(tmp_path)
    Path("a.wav").write_bytes(b"RIFF")
    n = 70_000  # past one Parquet batch (65,536 rows) and many CSV blocks
    ids, paths = [f"t{i}" for i in range(n)], ["a.wav"] * n
    paths[-1] = "C:\\music\\z.wav"
    rows = pa.table({"track_id": ids, "audio_path": paths, "label": ["a", "b"] * (n // 2)})
    pq.write_table(rows, "m.parquet")
    Path("m.csv").write_text(
        "track_id,audio_path,label\n" + "".join(f"{i},{p},a\n" for i, p in zip(ids, paths, strict=True))
    )
    for manifest, row in (("m.csv", f"row {n + 1}"), ("m.parquet", f"row {n - 1}")):  # (a CSV's header is its row 1)
        with pytest.raises(ConfigError) as checked:
            check_data_paths(parse_config(catalog_config(manifest)))
        assert f"audio_column: {row}'s audio path 'C:\\music\\z.wav' is a Windows path" in str(checked.value), (
            checked.value
        )


def test_a_run_directory_given_is_read_as_runs_dir_is_and_a_missing_one_names_repeval_runs(tmp_path, monkeypatch):
    """``repeval table|report RUN``: a quoted ``'~/runs/r1'`` was looked for as ``./~/runs/r1`` (``--runs-dir`` expands
    it), and a run directory that does not exist named no way to find the right one. It is read as ``--runs-dir`` is,
    and a missing one names ``repeval runs`` of its folder; an output path (``--out``) is read alike."""
    home = tmp_path / "home"
    (home / "runs" / "r0").mkdir(parents=True)
    (home / "runs" / "r0" / "config.yaml").write_text("experiments: []\n")  # a run there: r1 a mistyped run id
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    usual = "pass a run directory such as runs/<run_id> whose `repeval run` finished its test stage"
    for command in ("table", "report"):
        res = CliRunner().invoke(app, [command, "~/runs/r1"])
        assert res.exit_code == 1, res.output
        assert res.stderr == (
            f"error: no results.parquet in {home}/runs/r1 (the directory does not exist): {usual}; `repeval runs "
            f"{home}/runs` lists the runs there\n"
        ), res.stderr
    # a folder holding no run (the home folder): `repeval runs` of it would say "no runs" — not named
    res = CliRunner().invoke(app, ["table", "~/r1"])
    assert res.stderr == (
        f"error: no results.parquet in {home}/r1 (the directory does not exist): {usual}; `repeval runs DIR` lists the "
        "runs of a runs directory\n"
    ), res.stderr
    res = CliRunner().invoke(app, ["schema", "--out", "~/schema.json"])  # an output path: read alike
    assert res.exit_code == 0 and (home / "schema.json").is_file(), res.output
    res = CliRunner().invoke(app, ["table", "$NO_SUCH_VARIABLE/r1"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "Invalid value for RUN: '$NO_SUCH_VARIABLE/r1': environment variables" in said, said
    for option in ("--plugin", "--tracks-from"):  # files read: alike (a plugin was "no such file: ./$NO_SUCH…")
        args = ["models", "--plugin", "m.py", "--plugin"] if option == "--plugin" else ["store", "rm", "a/b/c", option]
        res = CliRunner().invoke(app, [*args, "$NO_SUCH_VARIABLE/x"])
        said = " ".join(res.output.replace("│", "").split())  # (without the box rich draws around it)
        assert res.exit_code == 2 and f"Invalid value for '{option}': '$NO_SUCH_VARIABLE/x'" in said, said
        assert "environment variables are not expanded" in said, said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


def test_a_config_path_is_read_as_the_other_paths_given_on_the_command_line(tmp_path, monkeypatch):
    """A command's CONFIG was read as written: a quoted ``'~/c.yaml'`` (which the shell did not expand) was "config
    file not found", a Windows path "not found — check the path" without the fix. It is read as ``--runs-dir`` is."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "c.yaml").write_text(yaml.safe_dump(catalog_config("https://example.org/m.csv")))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["validate", "~/c.yaml", "--skip-data-check", "--skip-model-check"])
    assert res.exit_code == 2 and "manifest: https://example.org/m.csv: repeval cannot read" in res.output, res.output
    res = CliRunner().invoke(app, ["plan", "C:\\exp\\c.yaml"])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "Invalid value for CONFIG: 'C:\\exp\\c.yaml' is a Windows path" in said, said
