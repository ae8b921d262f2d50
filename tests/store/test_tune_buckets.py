"""Ray Tune storage and ``gs://`` stores or runs directories in a bucket out of reach or refusing these
credentials: given up on soon (not Google Cloud Storage's own 15 minutes), and never read as empty or not whole
(nothing taken as missing, moved or overwritten)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from repeval.cli import app
from repeval.testing.s3 import denied_user as _user_denied
from repeval.testing.stand_in import stand_in as _stand_in


def _token_from(host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Google credentials whose token the stand-in at ``host`` serves (its ``/token``): google-cloud-cpp sends no
    request without one."""
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({
        "type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r",
        "token_uri": f"http://{host}/token",
    }))  # fmt: skip
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(creds))


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
