"""The store commands (repeval store ls / show / rm, the embedding summary): what they list, the partitions they
name, and deleting."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from store_helpers import DIM, PROV, _block, _write
from typer.testing import CliRunner

from repeval.pipeline.assemble import ErrorBlock, errors_table, rows_table
from repeval.store import EmbeddingStore, PartitionWriter, StoreConflict
from repeval.store.layout import ERROR_SCHEMA, DamagedPartFile, embedding_schema


def test_store_cli(tmp_path):
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    part = _write(store, ["a", "b", "c"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    other = store.partition("ds", "m", "D1")
    w = PartitionWriter(other, embedding_schema(DIM, keep_frames=True), 10)
    w.add_table(rows_table(_block(["x"], keep_frames=True), embedding_schema(DIM, keep_frames=True), PROV))
    w.flush()
    runner = CliRunner()
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "ds/m/clean" in res.output and "complete" in res.output and "incomplete" in res.output
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s"), "--json"])
    rows = json.loads(res.output)
    assert {r["partition"]: r["rows"] for r in rows} == {"ds/m/D1": 1, "ds/m/clean": 3}
    assert {r["partition"]: r["frames"] for r in rows} == {"ds/m/D1": True, "ds/m/clean": False}
    res = runner.invoke(app, ["store", "show", "ds/m/clean", "--store", f"file://{tmp_path}/s"])
    assert res.exit_code == 0, res.output
    for text in ("config_hash", "abc123", "embedding: fixed_size_list<element: float>[4]", "decode", "train"):
        assert text in res.output
    res = runner.invoke(app, ["store", "show", "nope", "--store", str(tmp_path / "s")])
    assert res.exit_code != 0 and "dataset/model/scenario" in res.output


def test_store_cli_takes_the_store_either_way_and_names_what_is_missing(tmp_path):
    """`store ls STORE` and `store show STORE PARTITION` (or `--store`); a typo is an error with the closest
    partition, and a store that does not exist is reported, not created."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    runner = CliRunner()
    root = str(tmp_path / "s")
    for args in (["store", "ls", "--store", root], ["store", "ls", root, "--store", root]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "ds/m/clean" in res.output, res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean"])
    assert res.exit_code == 0 and "2 rows in 1 part file;" in res.output, res.output
    res = runner.invoke(app, ["store", "ls", root, "--store", str(tmp_path / "other")])
    assert res.exit_code == 1 and "two store roots given" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/claen"])
    assert res.exit_code == 1 and "no partition ds/m/claen" in res.output and "did you mean ds/m/clean" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "extra"])
    assert res.exit_code == 1 and "[STORE] DATASET/MODEL/SCENARIO" in res.output
    missing = tmp_path / "typo"
    for args in (["store", "ls", str(missing)], ["store", "show", str(missing), "ds/m/clean"]):
        res = runner.invoke(app, args)
        said = " ".join(res.output.split())
        assert (
            res.exit_code == 1
            and f"no embedding store at {missing}: check the path (a configuration's run.store)" in (said)
        ), said  # named once; an absolute path: not "relative to the current directory"
        assert f"embed into it with `repeval embed CONFIG --store {missing}`" in said, said  # not another store
    assert not missing.exists()  # the read-only tools create nothing
    # a file is not a store: said, with what to pass (for a file in a partition, its store)
    (tmp_path / "notes.csv").write_text("track_id\n")
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "notes.csv")])
    assert res.exit_code == 1 and "is a file, not an embedding store directory" in res.output, res.output
    assert "repeval embed" not in res.output and "run.store" in res.output
    part_file = next(p for p in (tmp_path / "s" / "ds" / "m" / "clean").rglob("*.parquet"))
    res = runner.invoke(app, ["store", "ls", str(part_file)])
    assert res.exit_code == 1 and f"not a store directory: pass the store {tmp_path / 's'}" in res.output, res.output


def test_store_show_given_only_the_store_says_to_name_a_partition(tmp_path, monkeypatch):
    """`repeval store show STORE` (the store, no partition) read STORE as the partition of the default store
    `store` and said "no embedding store at store": it now says STORE is a store and how to name a partition."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    monkeypatch.chdir(tmp_path)  # no ./store here
    root = str(tmp_path / "s")
    res = CliRunner().invoke(app, ["store", "show", root])
    said = " ".join(res.output.split())
    assert res.exit_code == 1 and f"{root} is a store, not a partition" in said, said
    assert f"`repeval store show {root} DATASET/MODEL/SCENARIO`); `repeval store ls {root}` lists them" in said
    # a store of no partitions yet (it was read as a partition of `store`: "no embedding store at store")
    EmbeddingStore(str(tmp_path / "empty"))
    res = CliRunner().invoke(app, ["store", "show", "empty"])
    assert res.exit_code == 1 and "empty is a store (no partitions in it yet), not a partition" in res.output, (
        res.output
    )
    # a folder of other things, three deep (no partition files in them), is no store: read as the partition
    (tmp_path / "notes" / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "notes" / "readme.txt").write_text("x")
    assert "is a store" not in CliRunner().invoke(app, ["store", "show", "notes"]).output
    # the default store's partition ds/m/clean, beside a store at ./ds/m/clean: the partition, as before
    for where in ("store", "ds/m/clean"):
        _write(EmbeddingStore(str(tmp_path / where)), ["a"]).finish(
            {"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"}
        )
    res = CliRunner().invoke(app, ["store", "show", "ds/m/clean", "--rows", "0"])
    assert res.exit_code == 0 and f"partition ds/m/clean at {tmp_path / 'store' / 'ds'}" in res.output, res.output


def test_store_show_rows_zero_prints_counts_only_and_negative_is_refused(tmp_path):
    """`store show --rows 0` (and `--rows -1`) printed "Empty DataFrame / Columns: [...] / Index: []" for the rows
    and again for the error records: 0 now prints the counts without rows, a negative number is an error naming
    --rows."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    runner = CliRunner()
    root = str(tmp_path / "s")
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "0"])
    assert res.exit_code == 0, res.output
    assert "2 rows in 1 part file;" in res.output and "1 error record: decode 1" in res.output
    assert "Empty DataFrame" not in res.output and "Index: []" not in res.output
    assert "cannot decode" not in res.output  # no error record printed
    assert not re.search(r"^\d+\s+[ab]\s+train", res.output, re.M)  # no row printed
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "1"])
    assert res.exit_code == 0 and re.search(r"^0\s+a\s+train", res.output, re.M) and "cannot decode" in res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--rows", "-1"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), (res.output, res.exception)
    assert "--rows must be 0 or more" in res.output and "Empty DataFrame" not in res.output


def test_strict_failure_names_each_partition_with_a_store_show_command_that_works(tmp_path, monkeypatch, capsys):
    """``--strict`` with error records in two partitions: the message quoted one record and told the user to run
    ``repeval store show PARTITION --store ...`` with a literal placeholder. It names each partition's command
    (store quoted, ``--errors``: all its records) and records from more than one partition; each command runs and
    lists that partition's records."""
    import shlex
    import types

    import typer

    from repeval import runner
    from repeval.cli import app
    from repeval.cli.common import _strict_check

    root = str(tmp_path / "my store")  # a space: the command must quote it
    store = EmbeddingStore(root)
    _write(store, ["a", "b"]).finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    noisy = store.partition("ds", "m", "D1")
    w = PartitionWriter(noisy, embedding_schema(DIM, False), 10)
    errs = ErrorBlock()
    for tid in ("t1", "t2"):
        errs.add(tid, "test", "D1", "deform", f"{tid} clipped")
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    noisy.finish({"dataset": "ds", "model": "m", "scenario": "D1", "model_version": "1"})
    ds = types.SimpleNamespace(name="ds")
    exp = types.SimpleNamespace(
        datasets=[ds], embedding_models=[types.SimpleNamespace(id="m")], scenarios_for=lambda _ds: ["D1"]
    )
    ctx = types.SimpleNamespace(cfg=types.SimpleNamespace(experiments=[exp]), store=store)
    monkeypatch.setattr(runner, "not_evaluated", lambda _ctx: [])
    with pytest.raises(typer.Exit):
        _strict_check(ctx)
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "PARTITION" not in line and line.startswith(
        "error: --strict: 3 error records in ds/m/clean (1), ds/m/D1 (2)"
    )
    assert "bad in ds/m/clean (decode): cannot decode" in line and "t1 in ds/m/D1 (deform): t1 clipped" in line
    commands = re.findall(r"`(repeval store show [^`]*)`", line)
    assert commands == [f"repeval store show {shlex.quote(root)} ds/m/{sid} --errors" for sid in ("clean", "D1")]
    for command, reasons in zip(commands, (["cannot decode"], ["t1 clipped", "t2 clipped"]), strict=True):
        res = CliRunner().invoke(app, shlex.split(command)[1:])
        assert res.exit_code == 0 and all(r in res.output for r in reasons), res.output


def test_store_rm_lists_first_deletes_with_yes_and_never_under_a_running_run(tmp_path, monkeypatch):
    from repeval.cli import app
    from repeval.store.lock import StoreLock

    root = str(tmp_path / "s")
    store = EmbeddingStore(root)
    for model, scenario in (("m", "clean"), ("m", "D1"), ("other", "clean")):
        part = store.partition("ds", model, scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds", "model": model, "scenario": scenario})
    runner = CliRunner()
    res = runner.invoke(app, ["store", "rm", root, "ds/m/*"])
    assert res.exit_code == 0 and "2 partitions would be deleted" in res.output, res.output
    assert "ds/m/D1  (complete, 2 rows, 0 error records)" in res.output
    assert "ds/other/clean" not in res.output
    res = runner.invoke(app, ["store", "rm", root, "ds/m/D1"])
    assert "1 partition would be deleted" in res.output and "rerun with --yes to delete it\n" in res.output, res.output
    assert {p.name for p in store.partitions()} == {"ds/m/D1", "ds/m/clean", "ds/other/clean"}  # only listed
    with StoreLock(store, run_id="busy"):  # a run holds the store: rm refuses and deletes nothing
        res = runner.invoke(app, ["store", "rm", root, "ds/m/D1", "--yes"])
    assert res.exit_code == 1 and "in use by run 'busy'" in res.output, res.output
    assert store.partition("ds", "m", "D1").complete
    res = runner.invoke(app, ["store", "rm", "ds/m/D1", "--store", root, "--yes"])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert "; the next run computes it again\n" in res.output, res.output  # not "1 partition … them"
    assert [p.name for p in store.partitions()] == ["ds/m/clean", "ds/other/clean"]
    assert store.partition("ds", "m", "clean").complete
    res = runner.invoke(app, ["store", "rm", root, "ds/x/*"])
    assert res.exit_code == 1 and "no partition of" in res.output and "matches ds/x/*" in res.output, res.output
    monkeypatch.chdir(tmp_path)  # a store root with two slashes, like a partition: given ./-relative it is the root
    EmbeddingStore("q/r")
    res = runner.invoke(app, ["store", "rm", "./q/r", "ds/m/clean"])
    assert res.exit_code == 1 and "no partition ds/m/clean in ./q/r" in res.output, res.output  # the empty store
    res = runner.invoke(app, ["store", "rm", root, "ds/m/D2", "--yes"])
    assert res.exit_code == 1 and "no partition ds/m/D2" in res.output and "did you mean ds/m/clean" in res.output


def test_a_runs_directory_given_as_the_store_is_listed_as_such_and_never_deleted_from(tmp_path):
    """`repeval store ls runs` listed a runs directory's Tune experiments (``<run>/tune/<experiment>``, three deep) as
    incomplete partitions, and `repeval store rm runs '<run>/*/*' --yes` deleted them. Folders holding none of a
    partition's files are now "not a partition", and rm refuses them (and the partitions given with them)."""
    from repeval.cli import app

    runs = tmp_path / "runs"
    experiment = runs / "r1" / "tune" / "groups-2-abc"
    (experiment / "grid_trial_0").mkdir(parents=True)
    (experiment / "experiment_state-2026.json").write_text("{}")
    (experiment / ".validate_storage_marker").write_text("")
    (experiment / "grid_trial_0" / "params.json").write_text("{}")
    store = EmbeddingStore(str(runs))
    part = store.partition("ds", "m", "clean")  # a real partition beside it
    w = PartitionWriter(part, embedding_schema(DIM), 10)
    w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
    w.flush()
    (runs / "ds" / "m" / "empty").mkdir()  # an empty folder, or one with hidden files only, is not refused
    (runs / "ds" / "m" / "empty" / ".DS_Store").write_text("")
    assert [(p.name, p.foreign()) for p in store.partitions()] == [
        ("ds/m/clean", False), ("ds/m/empty", False), ("r1/tune/groups-2-abc", True)
    ]  # fmt: skip
    runner = CliRunner()
    res = runner.invoke(app, ["store", "ls", str(runs)])
    assert res.exit_code == 0, res.output
    assert re.search(r"r1/tune/groups-2-abc\s+not a partition\s+-\s+-", res.output), res.output
    assert "holds no store partition" not in res.output  # it has one
    # the count is of partitions: the Tune experiment is a folder apart (it read "3 partition(s)")
    assert f"2 partitions, 0 complete, 2 rows, 0 error records, 1 folder not a partition — {runs}" in res.output
    for args in (["r1/*/*"], ["ds/m/clean", "r1/tune/groups-2-abc"]):
        res = runner.invoke(app, ["store", "rm", str(runs), *args, "--yes"])
        assert res.exit_code == 1, res.output
        assert "r1/tune/groups-2-abc in " in res.output and "not a store partition" in res.output, res.output
        assert "nothing was deleted" in res.output
    assert (experiment / "experiment_state-2026.json").exists() and part.part_files()
    assert not (runs / "_lock.json").exists()  # refused before taking the lock
    res = runner.invoke(app, ["store", "ls", str(runs / "r1")])
    assert "holds no store partition: its folders three deep hold no part-*.parquet" in res.output, res.output
    res = runner.invoke(app, ["store", "rm", str(runs), "ds/m/empty", "--yes"])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output


def test_store_rm_deletes_a_partition_whose_part_file_is_damaged(tmp_path):
    """A part file cut short stops the run with an error that says to delete it or the partition with the `repeval
    store rm` command it names; that command failed on the same unreadable file (it counted the rows first), and
    `repeval store ls` stopped at it, listing no partition."""
    import shlex

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds"})
    damaged = store.partition("ds", "m", "D1")
    f = damaged.part_files()[0]
    Path(f).write_bytes(Path(f).read_bytes()[:30])
    with pytest.raises(DamagedPartFile) as exc:
        damaged.counts()
    command = shlex.split(re.search(r"`(repeval store rm [^`]*)`", str(exc.value)).group(1))
    runner = CliRunner()
    # `store ls` lists every partition, the damaged one as such with the fix (it stopped the whole listing)
    res = runner.invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output  # a damaged partition is a failure, said after the whole listing
    assert re.search(r"ds/m/D1\s+damaged\s+-\s+-", res.stdout) and re.search(r"ds/m/clean\s+complete\s+2", res.stdout)
    assert res.stderr.startswith("store partition ds/m/D1") and "repeval store rm" in res.stderr
    res = runner.invoke(app, [*command[1:-1]])  # without --yes: listed, not deleted
    assert res.exit_code == 0 and "ds/m/D1  (complete, a part file is not readable Parquet)" in res.output, res.output
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert [p.name for p in store.partitions()] == ["ds/m/clean"]


def _errors_only(store: EmbeddingStore, n: int):
    """A complete partition ``ds/m/noise`` with no rows and ``n`` error records (reasons on two lines)."""
    part = store.partition("ds", "m", "noise")
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    errs = ErrorBlock()
    for i in range(n):
        errs.add(f"t{i}", "test", "noise", "decode", f"DecodeError: bad file {i}\n  at byte {i}")
    w = PartitionWriter(part, embedding_schema(DIM), 4)  # several error files
    w.add_errors(errors_table(errs, ERROR_SCHEMA, PROV))
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": "noise"})
    return part


def test_store_show_errors_lists_only_the_error_records_all_or_the_first_rows(tmp_path):
    """`store show --rows N` printed N rows and N error records, so listing every error record of a partition
    meant asking for as many rows: `--errors` prints only the records, one line each, all of them or the first
    --rows; the plain view says when it printed only the first few."""
    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    _errors_only(store, 7)
    root, runner = str(tmp_path / "s"), CliRunner()
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise", "--errors"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0] == "partition ds/m/noise: 7 error records: decode 7" and lines[1].split() == [
        "track_id", "split", "stage", "reason"
    ]  # fmt: skip
    assert [ln.split()[0] for ln in lines[2:]] == [f"t{i}" for i in range(7)]
    assert lines[2].split(None, 3)[3] == "DecodeError: bad file 0 at byte 0"  # one line per record
    assert "config_hash" not in res.output and "schema" not in res.output  # no manifest, no rows
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise", "--errors", "--rows", "2"])
    assert res.exit_code == 0 and res.output.splitlines()[0].endswith("7 error records (the first 2 shown)")
    assert [ln.split()[0] for ln in res.output.splitlines()[2:]] == ["t0", "t1"], res.output
    res = runner.invoke(app, ["store", "show", root, "ds/m/noise"])
    assert res.exit_code == 0 and "(the first 5; `--errors` lists all 7)" in res.output, res.output
    assert "(no rows: every track has an error record)" in res.output  # complete: not "yet"
    _write(store, ["a"]).finish({"dataset": "ds"})
    res = runner.invoke(app, ["store", "show", root, "ds/m/clean", "--errors", "--rows", "0"])
    assert res.exit_code == 0 and res.output.strip() == "partition ds/m/clean: 1 error record", res.output


def test_the_embedding_summary_command_lists_every_error_record(tmp_path):
    """The embedding summary's `repeval store show` commands asked for `--rows N`, printing N rows besides the N
    error records; they now use `--errors` and list exactly the partition's records, as printed."""
    import shlex

    from repeval.cli import app
    from repeval.pipeline.summary import EmbedSummary

    store = EmbeddingStore(str(tmp_path / "my store"))
    _errors_only(store, 7)
    _write(store, ["a", "b"]).finish({"dataset": "ds"})
    summary = EmbedSummary(errors=8, store_uri=store.uri)
    summary.add_failures("ds/m/noise", [f"t{i}" for i in range(7)], ["decode"] * 7, ["bad"] * 7)
    summary.add_failures("ds/m/clean", ["bad"], ["decode"], ["cannot decode"])
    commands = [shlex.split(ln) for ln in summary.failure_lines() if ln.strip().startswith("repeval store show")]
    assert commands == [["repeval", "store", "show", store.uri, p, "--errors"] for p in ("ds/m/clean", "ds/m/noise")]
    res = CliRunner().invoke(app, commands[1][1:])
    assert res.exit_code == 0 and [ln.split()[0] for ln in res.output.splitlines()[2:]] == [f"t{i}" for i in range(7)]
    res = CliRunner().invoke(app, commands[0][1:])
    assert res.exit_code == 0 and [ln.split()[0] for ln in res.output.splitlines()[2:]] == ["bad"], res.output
    assert "train" not in res.output  # the partition's rows are not printed


def test_the_store_rm_command_an_error_names_deletes_a_partition_with_a_space_in_its_name(tmp_path):
    """A dataset named `my notes` is stored as `my_notes/...`; the `repeval store rm` command a conflict names was
    not quoted (the shell split it in two) and `store rm 'my notes/m/clean'` matched nothing, "deleting" 0
    partitions: the command is quoted and rm takes a partition (or pattern) as the configuration names it."""
    import shlex

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1"):
        part = store.partition("my notes", "m", scenario)
        part.stamp({"fp": 1})
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "my notes"})
    with pytest.raises(StoreConflict) as exc:
        store.partition("my notes", "m", "clean").check_compatible({"fp": 2})
    command = shlex.split(re.search(r"`(repeval store rm [^`]*)`", str(exc.value)).group(1))
    assert command == ["repeval", "store", "rm", store.uri, "my notes/m/clean", "--yes"]
    runner = CliRunner()
    res = runner.invoke(app, ["store", "rm", store.uri, "my notes/*/*"])
    assert res.exit_code == 0 and "2 partitions would be deleted" in res.output, res.output
    res = runner.invoke(app, command[1:])
    assert res.exit_code == 0 and "deleted 1 partition from" in res.output, res.output
    assert [p.name for p in store.partitions()] == ["my_notes/m/D1"]


def test_help_texts_show_the_default_store(tmp_path):
    """Typer renders help as rich markup, which ate every "[default: ...]" written into a help text: `store ls|show|rm
    --help` never said the store defaults to `store` (nor `report --help` where --out goes)."""
    from repeval.cli import app

    for args, text in (
        (["store", "ls"], "default: store"),
        (["store", "show"], "default store: store"),
        (["store", "rm"], "default store: store"),
        (["report"], "default: report.html in the first run"),
    ):
        res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert text in " ".join(res.output.replace("│", " ").split()), (args, res.output)
