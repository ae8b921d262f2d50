"""``repeval runs`` on damaged or shared run files: cut short, unreadable, partial audio, a store two runs share."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from runs_cases import _failure
from typer.testing import CliRunner

from repeval.cli import app
from repeval.report.results import load_run
from repeval.report.runs import run_info
from repeval.tuning.results import FAILED_SCHEMA, typed_table


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
