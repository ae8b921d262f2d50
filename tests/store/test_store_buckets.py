"""The embedding store in a bucket (a moto S3 server on 127.0.0.1, :func:`repeval.testing.s3.moto_s3`) and on
``gs://``: a file this user may not read is told from a missing one, and a server out of reach is given up on soon."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
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
from repeval.testing.s3 import moto_s3
from repeval.testing.stand_in import stand_in as _stand_in

DIM = 4
PROV = {"model": "m", "config_hash": "abc123", "repeval_version": "0.1.0", "created_at": np.datetime64(0, "ms")}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server with a bucket ``repeval`` (:func:`~repeval.testing.s3.moto_s3`)."""
    with moto_s3() as bucket:
        yield bucket


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


def _token_from(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Google credentials whose token the stand-in at ``host`` serves (its ``/token``): google-cloud-cpp sends no
    request without one."""
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({
        "type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r",
        "token_uri": f"http://{host}/token",
    }))  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))


def test_a_gs_manifest_the_bucket_refuses_names_the_google_credentials_not_the_file_owner() -> None:
    """google-cloud-cpp's PERMISSION_DENIED comes from pyarrow as a ``PermissionError`` (errno 13), as the local disk's
    does: a ``gs://`` manifest this user may not read said "permission denied — … check its owner and permissions
    (`ls -l`)", a local file's fix. It is "access denied" now, the Google credentials to check. (The GCS JSON API
    stood in for: the manifest refused, no object found else.)"""
    import datetime as dt

    def gcs(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        code = 403 if "_manifest.json" in path else 200 if "/o?" in path else 404
        body = json.dumps({"error": {"code": code, "message": "anon may not"}} if code != 200 else {}).encode()
        return code, {"Content-Type": "application/json"}, body

    with _stand_in(gcs) as host:
        fs = pafs.GcsFileSystem(
            anonymous=True, endpoint_override=host, scheme="http", retry_time_limit=dt.timedelta(seconds=1)
        )
        part = EmbeddingStore("bkt/store", filesystem=fs, create=False, must_exist=False).partition("ds", "m", "clean")
        with pytest.raises(PermissionError) as said:
            part.complete  # noqa: B018
    assert str(said.value) == (
        "bkt/store/ds/m/clean: access denied — this user may not read it: check the Google credentials "
        "(GOOGLE_APPLICATION_CREDENTIALS, or the node's service account) on this machine (on a cluster, every node's) "
        "and that they may list and read the bucket (docs/cluster.md)"
    )


def test_an_azure_refusal_is_access_denied_naming_the_azure_credentials() -> None:
    """Azure's AuthorizationPermissionMismatch (a plain OSError, "Azure Error: [AuthorizationPermissionMismatch] 403
    Forbidden", the blob's URL quoted) was refused, its fix "the storage's credentials"; the Azure credentials are
    named now. (Azure's blob API stood in for, refusing every request.)"""
    import base64

    from repeval.cloud_reach import refusal, refused

    def azure(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        denied = {"x-ms-error-code": "AuthorizationPermissionMismatch"}  # a HEAD: no XML type (the SDK aborts)
        if method == "HEAD":
            return 403, denied, b""
        body = b"<?xml version='1.0'?><Error><Code>AuthorizationPermissionMismatch</Code></Error>"
        return 403, {**denied, "Content-Type": "application/xml"}, body

    with _stand_in(azure) as host:
        fs = pafs.AzureFileSystem(
            account_name="acct", account_key=base64.b64encode(b"k" * 32).decode(), blob_storage_authority=host,
            dfs_storage_authority=host, blob_storage_scheme="http", dfs_storage_scheme="http",
        )  # fmt: skip
        with pytest.raises(OSError) as raised:
            fs.open_input_stream("box/store/ds/m/clean/_manifest.json")
    assert refused(raised.value) and refusal(raised.value) == (
        "access denied",
        "this user may not read it: check the Azure credentials (the account key or SAS token, or the node's managed "
        "identity) on this machine (on a cluster, every node's) and that they may list and read the bucket "
        "(docs/cluster.md)",
    ), raised.value


def test_an_s3_refusal_is_told_from_a_missing_file_by_what_aws_answers_not_moto() -> None:
    """moto answers some refused reads 404 where AWS answers 403 (a missing key to a user who may not list the
    bucket), so the tests against moto do not show what pyarrow says of AWS's own answers. Served as AWS serves them —
    a HeadObject refused: 403 without a body, whatever the reason; a GetObject or a listing: 403 with the reason's code
    in its body — each read is refused (``access denied``, the S3 credentials to check) and a missing key (404) is
    missing, not refused. Keys AWS does not know or a secret that signs otherwise (``InvalidAccessKeyId``,
    ``SignatureDoesNotMatch``) were not taken for a refusal in a listing: pyarrow names them by the AWS SDK's error
    (``INVALID_ACCESS_KEY_ID``), which no mark matched, so a partition's folder these keys may not list was pyarrow's
    error with nothing to check."""
    from repeval.cloud_reach import bucket_error, refusal, refused

    def body(code: str) -> bytes:
        return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message><RequestId>r</RequestId></Error>".encode()

    said: dict[str, Any] = {}

    def aws(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        if said["code"] is None:  # the key is missing (to a user who may list the bucket): 404, and an empty listing
            empty = b"<?xml version='1.0'?><ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>"
            return (404, {}, b"") if method == "HEAD" else (200, {"Content-Type": "application/xml"}, empty)
        return 403, {"Content-Type": "application/xml"}, b"" if method == "HEAD" else body(said["code"])

    s3_fix = "check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role)"
    with _stand_in(aws) as host:
        fs = pafs.S3FileSystem(
            endpoint_override=host, scheme="http", region="us-east-1", access_key="k", secret_key="s",
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )  # fmt: skip
        reads: dict[str, Callable[[], Any]] = {
            "open": lambda: fs.open_input_stream("b/ds/m/clean/_manifest.json").read(),
            "info": lambda: fs.get_file_info("b/ds/m/clean/_manifest.json"),
            "list": lambda: fs.get_file_info(pafs.FileSelector("b/ds/m/clean", allow_not_found=True)),
        }
        for code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
            said["code"] = code
            for op, read in reads.items():
                with pytest.raises(OSError) as exc:
                    read()
                assert refused(exc.value), (code, op, exc.value)
                why, fix = refusal(exc.value)
                assert why == "access denied" and s3_fix in fix, (code, op, fix)
                assert bucket_error(str(exc.value))[1].startswith(" — check the S3 credentials"), (code, op, exc.value)
        said["code"] = None
        with pytest.raises(FileNotFoundError):
            reads["open"]()
        assert reads["info"]().type == pafs.FileType.NotFound
        assert reads["list"]() == []


def test_a_moto_server_of_its_own_process_is_not_the_tests_moto(s3: dict[str, Any]) -> None:
    """The S3 end-to-end run started ahead (tests/cluster/test_s3_run.py) runs beside other tests; its moto server
    ran in this process, whose moto state they share: a test's ``enable_iam_authentication`` denied the run's every
    request (the run failed, depending on which tests ran meanwhile) and its bucket was theirs. In a process of its
    own, neither: nor are its credentials put in the environment, which those tests change."""
    from moto.core.authorization import enable_iam_authentication

    env = dict(os.environ)
    with moto_s3(own_process=True) as apart:
        assert dict(os.environ) == env
        with enable_iam_authentication():  # as a test of this module does meanwhile
            with apart["fs"].open_output_stream("repeval/apart/x") as f:
                f.write(b"x")
            assert apart["fs"].get_file_info("repeval/apart/x").size == 1
        assert s3["fs"].get_file_info("repeval/apart/x").type == pafs.FileType.NotFound
    with pytest.raises(OSError):  # stopped with it
        apart["fs"].get_file_info("repeval/apart/x")


def test_a_moto_server_of_its_own_process_ends_with_the_session_that_started_it() -> None:
    """A test session killed with SIGKILL (a CI job's timeout) left the moto server of its own process running for
    ever: it ends with its parent."""
    script = (
        "from repeval.testing.s3 import moto_s3\n"
        "with moto_s3(own_process=True) as bucket:\n"
        "    print(bucket['query'], flush=True)\n"
        "    input()\n"
    )
    session = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert session.stdout is not None
        query = session.stdout.readline()
    finally:
        session.kill()
        session.wait()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", query).group(1))  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while _listening(port):
        assert time.monotonic() < deadline, f"the moto server on port {port} outlived the session that started it"
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


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


def test_a_gs_store_or_runs_directory_out_of_reach_is_given_up_on_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``gs://`` store or runs directory on a machine without the network (or the credentials) used Google Cloud
    Storage's own 15 minutes of retries, deaf to Ctrl-C, before `repeval store ls` (or a run) said so — a catalog's
    manifest was bounded to a minute. Stores and runs directories are bounded alike now (a second here), and the
    error says how long it retried and how to change it."""
    from repeval.rundir import RunLocation, TuneStorage

    monkeypatch.setattr("repeval.cloud_reach.GCS_RETRY_SECONDS", 1)
    query = "?endpoint_override=127.0.0.1:1&scheme=http"
    res = CliRunner().invoke(app, ["store", "ls", f"gs://repeval/store{query}"])
    assert res.exit_code == 1, res.output
    (line,) = res.output.splitlines()
    assert line.startswith("error: google::cloud::Status(UNAVAILABLE: Retry policy exhausted"), line
    assert line.endswith(
        "repeval lets gs:// retry a request for 1 s before it fails: ?retry_limit_seconds=N on the URI sets another limit"
    ), line
    with pytest.raises(OSError, match="UNAVAILABLE"):
        RunLocation.open(f"gs://repeval/runs{query}", "r1")
    with pytest.raises(OSError, match="UNAVAILABLE"):
        TuneStorage(f"gs://repeval/runs/r1/tune{query}").exists("exp")


def test_a_gs_error_says_the_retry_limit_the_uri_sets() -> None:
    """A ``gs://`` location out of reach whose URI sets its own ``retry_limit_seconds`` was said to have been retried
    "for 60 s" (repeval's default) whatever it set; the error says the limit in effect now — the command's (`repeval
    store ls`), and Ray Tune storage's — and the default where the URI sets none."""
    from repeval.cloud_reach import bucket_error
    from repeval.rundir import TuneStorage

    query = "?endpoint_override=127.0.0.1:1&scheme=http&retry_limit_seconds=1.5"
    res = CliRunner().invoke(app, ["store", "ls", f"gs://repeval/store{query}"])
    assert res.exit_code == 1, res.output
    (line,) = res.output.splitlines()
    assert line.endswith("repeval lets gs:// retry a request for 1.5 s before it fails: ?retry_limit_seconds=N on "
                         "the URI sets another limit"), line  # fmt: skip
    with pytest.raises(OSError) as tune:
        TuneStorage(f"gs://repeval/runs/r1/tune{query}").read_text("exp.repeval.json")
    assert "retry a request for 1.5 s before it fails" in str(tune.value), tune.value
    text = "google::cloud::Status(UNAVAILABLE: Retry policy exhausted, with a last message of x)"
    assert "retry a request for 60 s before" in bucket_error(text, "gs://b/store")[1]


def test_ray_tune_gives_up_on_a_gs_runs_directory_out_of_reach_soon_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Ray Tune was given a ``gs://`` runs directory's URI (``RunConfig(storage_path)``, ``Tuner.can_restore``,
    ``Tuner.restore``) and opened it with Google Cloud Storage's own 15 minutes of retries, deaf to Ctrl-C: a bucket
    gone out of reach after repeval had read an experiment's marker held the train stage that long. Tune is given the
    bounded filesystem now (a second here), and the error is the one line that says so. (The GCS JSON API stood in
    for: a token, the marker of a resumable experiment and its listing served, every other request failing 503.)"""
    from repeval.cloud_reach import bucket_error, forget_limits
    from repeval.tuning.tuner import _fit

    def gcs(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        item = {"bucket": "bkt", "size": "2", "updated": "2026-01-01T00:00:00Z"}
        if path.startswith("/token"):
            body: dict[str, Any] = {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}
        elif path.endswith("%2Fexp.repeval.json?alt=media"):
            body = {"fingerprint": "fp"}
        elif "/o?prefix=runs%2Fr1%2Ftune%2Fexp%2F&" in path:
            body = {"items": [{**item, "name": "runs/r1/tune/exp/experiment_state-x.json"}]}
        else:
            body = {"error": {"code": 503, "message": "out of reach"}}
        return 503 if "error" in body else 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    monkeypatch.setattr("repeval.cloud_reach.GCS_RETRY_SECONDS", 1)
    forget_limits()  # as a command starts: its error says the limits of the locations it opened
    raised: list[BaseException] = []

    def fit() -> None:
        try:
            _fit(
                "exp",
                lambda finished: None,
                {},
                None,
                f"gs://bkt/runs/r1/tune?endpoint_override={host}&scheme=http",
                "fp",
                1,
            )
        except BaseException as exc:  # handed to the test's thread
            raised.append(exc)

    with _stand_in(gcs) as host:
        _token_from(host, tmp_path, monkeypatch)
        worker = threading.Thread(target=fit, daemon=True)
        worker.start()
        worker.join(120)  # a deadline for a hang (Tune's own retries: 15 minutes), not a timing
        assert not worker.is_alive(), "Ray Tune still retrying the gs:// runs directory"
    (exc,) = raised
    said, fix = bucket_error(str(exc))
    # Tune's read of the experiment said as the storage's other reads are (TuneStorage.unread): what to check, once
    assert isinstance(exc, OSError) and said.startswith(
        "Ray Tune storage gs://bkt/runs/r1/tune/exp could not be read (google::cloud::Status(UNAVAILABLE: Retry policy "
        "exhausted"
    ), exc
    assert "\n" not in said and fix == "", fix
    assert (
        said.count(
            "repeval lets gs:// retry a request for 1 s before it fails: ?retry_limit_seconds=N on the URI sets another "
            "limit; stopped: nothing there was taken as missing"
        )
        == 1
    ), said


def test_ray_tune_storage_the_bucket_refuses_is_not_read_as_empty(s3: dict[str, Any], monkeypatch) -> None:
    """Ray Tune's storage read a marker or a listing these S3 credentials may not read (AWS's ACCESS_DENIED, a plain
    OSError) as none: the run took an experiment whose trials are there for another plan's and trained them again,
    moving it aside. A refusal is now an error naming the credentials and that nothing was changed (a missing marker
    is still none: test_storage_uris.py)."""
    from moto.core.authorization import enable_iam_authentication

    from repeval.rundir import TuneStorage
    from repeval.tuning.checkpoint import open_finished
    from repeval.tuning.tuner import _finished_checkpoints

    uri = f"s3://repeval/refused/tune{s3['query']}"
    TuneStorage(uri).write_text("exp.repeval.json", '{"fingerprint": "a"}')
    with s3["fs"].open_output_stream("repeval/refused/tune/exp/t0/checkpoint_000000/summary.json") as f:
        f.write(b"{}")
    for k, v in _user_denied(s3, "refused/tune/*", may_list=False).items():
        monkeypatch.setenv(k, v)
    st = TuneStorage(uri)
    fix = (
        "access denied — this user may not read it: check the S3 credentials (AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role) on this machine (on a cluster, every node's) and "
        "that they may list and read the bucket (docs/cluster.md); stopped: nothing there was taken as missing, moved "
        "or overwritten — run again once it can be read"
    )
    with enable_iam_authentication():
        with pytest.raises(PermissionError) as marker:
            st.read_text("exp.repeval.json")
        with pytest.raises(PermissionError) as listing:
            st.names()
        with pytest.raises(PermissionError) as checkpoints:
            _finished_checkpoints(st, "exp")
    assert str(marker.value) == f"Ray Tune storage s3://repeval/refused/tune/exp.repeval.json: {fix}"
    assert str(listing.value) == f"Ray Tune storage s3://repeval/refused/tune: {fix}"
    assert str(checkpoints.value) == f"Ray Tune storage s3://repeval/refused/tune/exp: {fix}"
    # a user that may list the experiment but not read its trials' summaries: they were "not whole", trained again,
    # and the copy moved aside that held them deleted as holding none
    for k, v in _user_denied(s3, "refused/tune/exp/*/summary.json").items():
        monkeypatch.setenv(k, v)
    st = TuneStorage(uri)
    ckpt = "exp/t0/checkpoint_000000"
    with enable_iam_authentication():
        with pytest.raises(PermissionError) as summary:
            _finished_checkpoints(st, "exp")
        # what `repeval plan` reads of them too — a probe's files, a checkpoint's summary: pyarrow's error, raw
        with pytest.raises(PermissionError) as exists:
            st.exists(f"{ckpt}/summary.json")
        with pytest.raises(PermissionError) as opened:
            open_finished(st.uri(ckpt), st)
    assert str(summary.value) == f"Ray Tune storage s3://repeval/refused/tune/{ckpt}: {fix}"
    assert str(exists.value) == f"Ray Tune storage s3://repeval/refused/tune/{ckpt}/summary.json: {fix}"
    assert str(opened.value) == f"Ray Tune storage s3://repeval/refused/tune/{ckpt}: {fix}"


def test_ray_tune_storage_out_of_reach_is_not_read_as_empty() -> None:
    """A ``gs://`` Tune storage the machine cannot reach read as holding nothing (the run then trained every trial
    again); it is now an error naming what to check, once (not again by the command's own error line)."""
    from repeval.cloud_reach import bucket_error
    from repeval.rundir import TuneStorage

    st = TuneStorage("gs://bkt/tune?endpoint_override=127.0.0.1:9&scheme=http&retry_limit_seconds=1")
    with pytest.raises(OSError) as said:
        st.read_text("exp.repeval.json")
    text = str(said.value)
    assert text.startswith("Ray Tune storage gs://bkt/tune/exp.repeval.json could not be read (google::cloud::"), text
    assert "GOOGLE_APPLICATION_CREDENTIALS" in text and "error_info" not in text, text
    assert text.endswith(
        "stopped: nothing there was taken as missing, moved or overwritten — run again once it can be read"
    )
    assert bucket_error(text) == (text, "")


def test_an_s3_tune_storage_out_of_reach_names_its_fix_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The error of an ``s3://`` Tune storage out of reach already says what to check (:meth:`TuneStorage.unread`); the
    command's error line said it again after it, the AWS client's words being in the text (the SDK's own error as
    pyarrow raises it, with no network involved: its three tries take seconds)."""
    import typer

    from repeval.cli.errors import _guard
    from repeval.rundir import TuneStorage

    st = TuneStorage("s3://bkt/tune?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1")
    aws = OSError(
        "When reading information for key 'tune/exp.repeval.json' in bucket 'bkt': AWS Error NETWORK_CONNECTION during "
        "HeadObject operation: curlCode: 7, Could not connect to server"
    )

    def read() -> None:
        raise st.unread("exp.repeval.json", aws)

    with pytest.raises(typer.Exit):
        _guard(read)
    said = capsys.readouterr().err
    assert said.startswith("error: Ray Tune storage s3://bkt/tune/exp.repeval.json could not be read (When reading "), (
        said
    )
    assert said.count("this machine cannot reach the S3 server") == 1, said
    assert said.endswith(
        "; stopped: nothing there was taken as missing, moved or overwritten — run again once it can be read\n"
    )


def test_a_trial_checkpoint_on_a_bucket_out_of_reach_is_not_read_as_not_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trial checkpoint's summary that a ``gs://`` bucket gone out of reach did not serve (after the experiment's
    listing had) was "not whole": the experiment held no finished trial — its trials trained again, a copy moved aside
    deleted as holding none. It stops now, naming the checkpoint and what to check. (The GCS JSON API stood in for: a
    token, the listing of one trial checkpoint, every other request failing 503.)"""
    from repeval.rundir import TuneStorage
    from repeval.tuning.tuner import _finished_checkpoints

    def gcs(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        item = {"bucket": "bkt", "size": "2", "updated": "2026-01-01T00:00:00Z"}
        ckpt = "tune/exp/t0/checkpoint_000000/"
        if path.startswith("/token"):
            body: dict[str, Any] = {"access_token": "t", "expires_in": 3600, "token_type": "Bearer"}
        elif "/o?prefix=tune%2Fexp%2F&" in path:
            body = {"items": [{**item, "name": ckpt}, {**item, "name": f"{ckpt}summary.json"}]}
        else:
            body = {"error": {"code": 503, "message": "out of reach"}}
        return 503 if "error" in body else 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    with _stand_in(gcs) as host:
        _token_from(host, tmp_path, monkeypatch)
        st = TuneStorage(f"gs://bkt/tune?endpoint_override={host}&scheme=http&retry_limit_seconds=1")
        with pytest.raises(OSError) as said:
            _finished_checkpoints(st, "exp")
    text = str(said.value)
    assert text.startswith(
        "Ray Tune storage gs://bkt/tune/exp/t0/checkpoint_000000 could not be read (google::cloud::Status(UNAVAILABLE: "
    ), text
    assert "GOOGLE_APPLICATION_CREDENTIALS" in text and text.endswith("run again once it can be read"), text


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
