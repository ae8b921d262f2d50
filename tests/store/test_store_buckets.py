"""The embedding store and runs in a bucket (a moto S3 server on 127.0.0.1, :func:`repeval.testing.s3.moto_s3`): a
file or folder these credentials may not read is told from a missing one, and a bucket's URI named as given. Other
clouds' refusals: test_cloud_refusals.py; Ray Tune storage and ``gs://`` out of reach: test_tune_buckets.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.fs as pafs
import pytest
from typer.testing import CliRunner

from repeval.cli import app
from repeval.pipeline.assemble import RowBlock, rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import embedding_schema
from repeval.testing.s3 import denied_user as _user_denied

DIM = 4
PROV = {"model": "m", "config_hash": "abc123", "repeval_version": "0.1.0", "created_at": np.datetime64(0, "ms")}


def _complete(store: EmbeddingStore, scenario: str, ids: list[str]) -> None:
    """A complete partition ``ds/m/SCENARIO`` of ``store`` holding a row for each of ``ids`` (real Parquet)."""
    n = len(ids)
    block = RowBlock(
        track_id=np.array(ids), split=np.array(["train"] * n), scenario=np.array([scenario] * n),
        embedding=np.ones((n, DIM), np.float32), n_frames=np.ones(n, np.int32), n_chunks=np.ones(n, np.int32),
        audio_seconds=np.ones(n, np.float32), deformation_params=np.array([""] * n), model_version=np.array(["1"] * n),
    )  # fmt: skip
    part = store.partition("ds", "m", scenario)
    part.stamp({"fp": 1}, {"config_hash": "abc123"})
    w = PartitionWriter(part, embedding_schema(DIM), 10)
    w.add_table(rows_table(block, embedding_schema(DIM), PROV))
    w.flush()
    part.finish({"dataset": "ds", "model": "m", "scenario": scenario})


def test_a_bucket_partition_whose_manifest_or_part_file_may_not_be_read_is_unreadable_not_incomplete(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On S3 a manifest this user may not read (AWS's ACCESS_DENIED: a plain OSError, not a PermissionError) was read
    as missing: `repeval store ls` listed a complete partition as incomplete and a run would have computed it again;
    a part file it may not read was "not a readable Parquet file", to be deleted. As on the local disk, both are now
    unreadable, named, with the bucket's credentials as the fix; the partition is not taken as incomplete."""
    from moto.core.authorization import enable_iam_authentication

    uri = f"s3://repeval/denied{s3['query']}"
    store = EmbeddingStore(uri)
    for scenario in ("clean", "noise", "pitch"):
        _complete(store, scenario, ["a", "b"])
    for k, v in _user_denied(s3, "denied/ds/m/clean/_*", "denied/ds/m/noise/part-*").items():
        monkeypatch.setenv(k, v)  # the user's keys, for this test alone
    with enable_iam_authentication():
        part = EmbeddingStore(uri, create=False).partition("ds", "m", "clean")
        with pytest.raises(PermissionError) as said:
            part.complete  # noqa: B018 (read as missing, it was False: the run computed the partition again)
        ls = CliRunner().invoke(app, ["store", "ls", uri])
        show = CliRunner().invoke(app, ["store", "show", uri, "ds/m/clean"])
        settle = CliRunner().invoke(app, ["store", "settle", uri])
    fix = (
        "this user may not read it: check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
        "AWS_PROFILE, or the instance role) on this machine (on a cluster, every node's) and that they may list and "
        "read the bucket (docs/cluster.md)"
    )
    assert str(said.value) == f"repeval/denied/ds/m/clean/_manifest.json: access denied — {fix}"
    assert ls.exit_code == 1, ls.output
    states = dict(re.findall(r"^(ds/m/\w+)\s+(\w+)", ls.stdout, re.M))
    assert states == {"ds/m/clean": "unreadable", "ds/m/noise": "unreadable", "ds/m/pitch": "complete"}, ls.stdout
    assert ls.stderr.splitlines()[0] == f"store partition ds/m/clean in {uri}: {said.value}", ls.stderr
    assert re.fullmatch(
        rf"store partition ds/m/noise in {re.escape(uri)}: repeval/denied/ds/m/noise/part-\S+\.parquet: access denied "
        f"— {re.escape(fix)}",
        ls.stderr.splitlines()[1],
    ), ls.stderr
    assert show.exit_code == 1 and show.stderr == f"error: {said.value}\n", show.output
    # `store settle` stopped at the first partition it could not read: the others are settled now, that one said
    assert settle.exit_code == 1, settle.output
    assert settle.stderr == (
        f"store partition ds/m/clean in {uri}: repeval/denied/ds/m/clean/_rewrite.json: access denied — {fix}\n"
    ), settle.stderr
    assert settle.stdout == f"nothing to settle: no stopped track removal in 2 partitions of {uri}\n", settle.stdout


def test_a_track_removal_whose_manifest_may_not_be_deleted_stops_before_changing_the_partition(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval store rm … --track` marks a partition incomplete (deletes its manifest) before it removes rows. A
    manifest these S3 credentials may not delete (AWS's ACCESS_DENIED on DeleteObject) was ignored: the rows went, the
    command said "now incomplete", and the partition still counted as complete — `repeval train` trained on it without
    those tracks, and `store ls` called it damaged, "a part file deleted or lost". It stops now, nothing removed."""
    from moto.core.authorization import enable_iam_authentication

    uri = f"s3://repeval/undeletable{s3['query']}"
    _complete(EmbeddingStore(uri), "clean", ["a", "b"])
    for k, v in _user_denied(s3, "undeletable/ds/m/clean/_manifest.json", action="s3:DeleteObject").items():
        monkeypatch.setenv(k, v)
    with enable_iam_authentication():
        rm = CliRunner().invoke(app, ["store", "rm", uri, "ds/m/clean", "--track", "a", "--yes"])
        part = EmbeddingStore(uri, create=False).partition("ds", "m", "clean")
        complete, ids = part.complete, part.done_ids().to_pylist()
    assert rm.exit_code == 1, rm.output
    assert rm.stderr == (
        f"error: store partition ds/m/clean in {uri}: its manifest repeval/undeletable/ds/m/clean/_manifest.json could "
        "not be deleted, to mark the partition incomplete before changing it (access denied) — this user may not "
        "delete it: check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the "
        "instance role) on this machine (on a cluster, every node's) and that they may delete objects in the bucket "
        "(docs/cluster.md); nothing was changed\n"
    ), rm.stderr
    assert complete and sorted(ids) == ["a", "b"]


def test_repeval_runs_does_not_take_a_status_json_it_may_not_read_for_none(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval runs` read a run's ``status.json`` these S3 credentials may not read as none: a run whose training
    failed was listed as "started", its reason untold. Its state is now unreadable, with the credentials to check."""
    from moto.core.authorization import enable_iam_authentication

    failed = {"state": "failed", "command": "train", "reason": "a probe diverged"}
    for name, body in (("config.yaml", "experiments: []\n"), ("status.json", json.dumps(failed))):
        with s3["fs"].open_output_stream(f"repeval/status/runs/r1/{name}") as f:
            f.write(body.encode())
    uri = f"s3://repeval/status/runs{s3['query']}"
    for k, v in _user_denied(s3, "status/runs/r1/status.json").items():
        monkeypatch.setenv(k, v)
    with enable_iam_authentication():
        listed = CliRunner().invoke(app, ["runs", uri])
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^r1 +state unreadable ", listed.stdout, re.M), listed.stdout
    assert (
        "r1: status.json is unreadable (access denied): its last command's state is not known — this user may not read "
        "it: check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) "
        "on this machine (on a cluster, every node's) and that they may list and read the bucket (docs/cluster.md)\n"
    ) in listed.stdout, listed.stdout


def test_repeval_runs_names_a_load_report_or_left_out_models_it_may_not_read(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval runs` read a run's ``load_report.json`` these S3 credentials may not read as none — its dropped rows
    counted 0, silently — and its ``models_left_out.json`` likewise (no model marked left out). Each is now named,
    unreadable, with the credentials to check, as ``status.json`` is; ``--json``'s ``rows_not_evaluated`` is null."""
    from moto.core.authorization import enable_iam_authentication

    load = {"loads": [{"dataset": "cat", "tasks": ["label"], "rows": 3, "problems": {"missing_audio": 2},
                       "lines": ["2 rows without their audio file"], "not_evaluated": 2}]}  # fmt: skip
    left = {"embed": {"clap": "failed to build"}}
    for name, body in (
        ("config.yaml", "experiments: []\n"),
        ("load_report.json", json.dumps(load)),
        ("models_left_out.json", json.dumps(left)),
    ):
        with s3["fs"].open_output_stream(f"repeval/loads/runs/r1/{name}") as f:
            f.write(body.encode())
    uri = f"s3://repeval/loads/runs{s3['query']}"
    allowed = CliRunner().invoke(app, ["runs", uri, "--json"])
    for k, v in _user_denied(s3, "loads/runs/r1/load_report.json", "loads/runs/r1/models_left_out.json").items():
        monkeypatch.setenv(k, v)
    with enable_iam_authentication():
        listed = CliRunner().invoke(app, ["runs", uri])
        as_json = CliRunner().invoke(app, ["runs", uri, "--json"])
    readable = json.loads(allowed.stdout)[0]
    assert (readable["rows_not_evaluated"], readable["models_left_out"]) == (2, left["embed"]), readable
    assert listed.exit_code == 0, listed.output
    fix = (
        "this user may not read it: check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
        "or the instance role) on this machine (on a cluster, every node's) and that they may list and read the bucket "
        "(docs/cluster.md)"
    )
    for line in (
        f"r1: load_report.json is unreadable (access denied): the dataset rows dropped at load are not known — {fix}",
        f"r1: models_left_out.json is unreadable (access denied): the embedding models its last attempt left out are "
        f"not known — {fix}",
    ):
        assert f"{line}\n" in listed.stdout, listed.stdout
    info = json.loads(as_json.stdout)[0]
    assert (info["rows_not_evaluated"], info["models_left_out"]) == (None, {}), info
    assert info["load_report_unreadable"].startswith("load_report.json is unreadable (access denied)"), info


def test_repeval_plan_of_a_store_the_bucket_refuses_names_the_store_and_the_credentials(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`repeval plan` read the store's root through pyarrow alone: a bucket refusing these credentials the listing
    stopped it with pyarrow's words ("When listing objects under key … AWS Error ACCESS_DENIED during ListObjectsV2
    operation …"). It now names the store, "access denied" and the credentials, as the store's other reads do."""
    from moto.core.authorization import enable_iam_authentication

    uri = f"s3://repeval/planned{s3['query']}"
    _complete(EmbeddingStore(uri), "clean", ["a", "b"])
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "m.csv").write_text("track_id,audio_path,label\nt0,a.wav,a\nt1,a.wav,b\n")
    config = {
        "run": {"store": uri},
        "experiments": [{
            "task": {"name": "label", "type": "multiclass_classification"},
            "datasets": [{"name": "cat", "type": "catalog", "manifest": str(tmp_path / "m.csv"), "check_files": False}],
            "embedding_models": ["mfcc-stats"],
            "downstream_models": [{"type": "classifier", "hidden_units": []}],
        }],
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(json.dumps(config))
    for k, v in _user_denied(s3, "planned/*", may_list=False).items():
        monkeypatch.setenv(k, v)
    with enable_iam_authentication():
        planned = CliRunner().invoke(app, ["plan", str(tmp_path / "c.yaml")])
    assert planned.exit_code == 1, planned.output
    assert planned.stderr == (
        "error: embedding store s3://repeval/planned: access denied — this user may not read it: check the S3 "
        "credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) on this machine "
        "(on a cluster, every node's) and that they may list and read the bucket (docs/cluster.md)\n"
    ), planned.stderr


def test_a_bucket_partition_that_may_not_be_listed_names_the_credentials_not_the_disk(s3: dict[str, Any]) -> None:
    """A partition whose prefix these S3 credentials may not list (an IAM policy's ListBucket denied: AWS's
    ACCESS_DENIED, a plain OSError) was unreadable for `repeval store ls` with the fix "check the disk it is on", its
    reason pyarrow's whole error; it is now "access denied", the bucket's credentials to check."""
    from moto.core.authorization import enable_iam_authentication

    from repeval.store.inspect import partition_info

    _complete(EmbeddingStore(f"s3://repeval/unlisted{s3['query']}"), "clean", ["a"])
    keys = _user_denied(s3, may_list=False)
    port = re.search(r"127\.0\.0\.1:(\d+)", s3["query"]).group(1)  # type: ignore[union-attr]
    fs = pafs.S3FileSystem(
        access_key=keys["AWS_ACCESS_KEY_ID"], secret_key=keys["AWS_SECRET_ACCESS_KEY"], region="us-east-1",
        endpoint_override=f"127.0.0.1:{port}", scheme="http",
    )  # fmt: skip
    with enable_iam_authentication():
        info = partition_info(EmbeddingStore("repeval/unlisted", filesystem=fs).partition("ds", "m", "clean"))
    assert info["state"] == "unreadable" and info["damage"] == (
        "store partition ds/m/clean in repeval/unlisted: repeval/unlisted/ds/m/clean cannot be listed (access denied): its rows and error "
        "records are not counted; this user may not read it: check the S3 credentials (AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) on this machine (on a cluster, every node's) and that "
        "they may list and read the bucket (docs/cluster.md)"
    ), info


def test_store_show_of_a_bucket_uri_alone_names_it(s3: dict[str, Any]) -> None:
    """`repeval store show s3://bucket/nope` (a store URI, no partition) read it as a partition of the default store
    and said "no embedding store at store (…)", naming neither the URI nor the fix; a URI with no store is now named,
    and one that is a folder but no store is said to hold no partition, the store to be given."""
    nope = f"s3://repeval/nope{s3['query']}"
    res = CliRunner().invoke(app, ["store", "show", nope])
    assert res.exit_code == 1 and res.stderr == (
        f"error: no embedding store at {nope}: check the URI (a configuration's run.store), or embed "
        f"into it with `repeval embed CONFIG --store {nope}`\n"
    ), res.output
    with s3["fs"].open_output_stream("repeval/notes/readme.txt") as fh:
        fh.write(b"x")
    notes = f"s3://repeval/notes{s3['query']}"
    res = CliRunner().invoke(app, ["store", "show", notes])
    said = " ".join(res.stderr.split())
    assert res.exit_code == 1 and said.startswith(f"error: {notes} holds no store partition"), said


def test_a_bucket_run_without_results_is_named_by_its_uri_not_its_staging_folder(s3: dict[str, Any]) -> None:
    """`repeval table|report` of a bucket's run without results said "no results.parquet in /tmp/repeval-run-r1-…":
    the temporary folder it was staged into, gone when the command ends — and of a bucket's runs directory named its
    runs by their staging paths, to pass again. Each is named by its URI."""
    with s3["fs"].open_output_stream("repeval/staged/runs/r1/status.json") as f:
        f.write(json.dumps({"state": "finished"}).encode())
    runs = "s3://repeval/staged/runs"
    for command in ("table", "report"):
        res = CliRunner().invoke(app, [command, f"{runs}/r1{s3['query']}"])
        assert res.exit_code == 1 and res.stderr.startswith(f"error: no results.parquet in {runs}/r1: pass a run "), (
            res.output
        )
    res = CliRunner().invoke(app, ["table", f"{runs}{s3['query']}"])
    assert res.stderr == (
        f"error: no results.parquet in {runs}: it is a runs directory; pass one of its runs ({runs}/r1); `repeval runs "
        f"{runs}` lists them\n"
    ), res.output


def test_table_and_report_of_a_bucket_run_pull_only_what_they_read(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`repeval table|report` of a bucket's run downloaded every file of it but ``tune/``: each grid's results under
    ``groups/`` (``results.parquet`` holds them), an earlier report and its figures (drawn anew), ``environment.json``
    — none of which they read. They now list and fetch only the files they read; the report still replaces the one in
    the bucket, and a runs directory given as a run is no longer pulled with each run's ``tune/``."""
    import repeval.rundir
    from repeval.testing.fs import Counting
    from repeval.testing.results import FakeExperiment, FakeRunSpec, make_run_dir

    exp = FakeExperiment("instrument_recognition", "multiclass_classification", "tinysol", 3, ("accuracy",))
    spec = FakeRunSpec(run_id="r1", experiments=(exp,), models=("m",), probes=("M1",), seeds=(0,), n_resamples=10)
    run = make_run_dir(tmp_path / "runs", spec, scenarios=("clean",))
    (run / "status.json").write_text(json.dumps({"state": "finished", "command": "run"}))
    read = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file())  # what they read
    unread = {"groups/instrument_recognition__tinysol__m.parquet": b"PAR1", "groups/g2.json": b"{}",
              "plots/old.png": b"png", "report.html": b"old report", "environment.json": b"{}",
              "tune/exp/trial/result.json": b"{}"}  # fmt: skip
    for rel, body in unread.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(body)
    pafs.copy_files(str(run), "repeval/reads/runs/r1", destination_filesystem=s3["fs"])
    handler = Counting(s3["fs"])
    counted = pafs.PyFileSystem(handler)
    real = repeval.rundir.filesystem
    monkeypatch.setattr(repeval.rundir, "filesystem", lambda uri: (counted, real(uri)[1]))
    uri = f"s3://repeval/reads/runs/r1{s3['query']}"

    res = CliRunner().invoke(app, ["table", uri])
    assert res.exit_code == 0 and "accuracy" in res.stdout, res.output
    assert sorted(p.removeprefix("repeval/reads/runs/r1/") for p in handler.opened) == read, handler.opened
    listed = handler.n["list"]
    assert listed == 1 + len({r.split("/")[0] for r in read if "/" in r}), handler.n  # the run, each folder read

    handler.clear()
    res = CliRunner().invoke(app, ["report", uri])
    assert res.exit_code == 0 and res.stdout == "report: s3://repeval/reads/runs/r1/report.html\n", res.output
    assert sorted(p.removeprefix("repeval/reads/runs/r1/") for p in handler.opened) == read, handler.opened
    with s3["fs"].open_input_stream("repeval/reads/runs/r1/report.html") as fh:
        assert fh.read().startswith(b"<!doctype html>")  # the report written anew, in the bucket
    with s3["fs"].open_input_stream("repeval/reads/runs/r1/groups/g2.json") as fh:
        assert fh.read() == b"{}"  # left as it was

    handler.clear()
    res = CliRunner().invoke(app, ["table", f"s3://repeval/reads/runs{s3['query']}"])  # the runs directory
    assert res.exit_code == 1 and "it is a runs directory; pass one of its runs" in res.stderr, res.output
    assert not [p for p in handler.opened if "/tune/" in p or "/groups/" in p], handler.opened


def test_a_bucket_run_is_pulled_several_files_at_a_time(
    s3: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A bucket's run was pulled and pushed one file after another, each a round trip: a run of a few hundred grids
    waited seconds on its ``groups/`` at every command. Files are copied several at a time, each whole (pulled with its
    time), ``results.parquet`` pushed last."""
    import threading
    import time

    import repeval.rundir
    from repeval.rundir import RunLocation
    from repeval.testing.fs import Counting

    bodies = {f"groups/g{i}.parquet": f"grid {i}".encode() * 100 for i in range(12)} | {"config.yaml": b"x: 1\n"}
    for rel, body in bodies.items():
        with s3["fs"].open_output_stream(f"repeval/many/runs/r1/{rel}") as fh:
            fh.write(body)
    at_once, most, lock = [0], [0], threading.Lock()

    written: list[str] = []

    def round_trip() -> None:  # a round trip's wait: how many are waited on together
        with lock:
            at_once[0] += 1
            most[0] = max(most[0], at_once[0])
        time.sleep(0.05)
        with lock:
            at_once[0] -= 1

    class Slow(Counting):
        def open_input_stream(self, path: str) -> Any:
            round_trip()
            return super().open_input_stream(path)

        def open_output_stream(self, path: str, metadata: Any) -> Any:
            round_trip()
            with lock:
                written.append(path.rsplit("/r1/", 1)[1])
            return self.local.open_output_stream(path, metadata=metadata)

    slow = pafs.PyFileSystem(Slow(s3["fs"]))
    real = repeval.rundir.filesystem
    monkeypatch.setattr(repeval.rundir, "filesystem", lambda uri: (slow, real(uri)[1]))
    loc = RunLocation.open(f"s3://repeval/many/runs{s3['query']}", "r1")
    pulled = {p.relative_to(loc.local).as_posix(): p.read_bytes() for p in loc.local.rglob("*") if p.is_file()}
    assert pulled == bodies and most[0] > 1, (sorted(pulled), most)
    remote = s3["fs"].get_file_info("repeval/many/runs/r1/groups/g3.parquet").mtime_ns
    assert (loc.local / "groups" / "g3.parquet").stat().st_mtime_ns == remote
    # pushed likewise, results.parquet once every other file is up (it tells a reader the run is complete)
    most[0] = 0
    for i in range(12, 20):
        (loc.local / "groups" / f"g{i}.parquet").write_bytes(b"new grid")
    (loc.local / "results.parquet").write_bytes(b"results")
    assert loc.push() == 9 and most[0] > 1 and written[-1] == "results.parquet", (written, most)
    with s3["fs"].open_input_stream("repeval/many/runs/r1/groups/g19.parquet") as fh:
        assert fh.read() == b"new grid"
