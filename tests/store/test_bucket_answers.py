"""What repeval says of S3's answers that are not about rights — the clock, the session token — as AWS gives them (a
stand-in server answering with AWS's own codes and XML: :func:`repeval.testing.stand_in.stand_in`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from repeval.cli import app
from repeval.testing.s3 import CREDENTIALS
from repeval.testing.stand_in import stand_in

#: S3's answers to a listing or a GetObject refused for the clock or the token: code, status, message (AWS's)
ANSWERS = {
    "RequestTimeTooSkewed": (403, "The difference between the request time and the current time is too large."),
    "ExpiredToken": (400, "The provided token has expired."),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "TokenRefreshRequired": (400, "The provided token must be refreshed."),
}


@pytest.mark.parametrize("code", list(ANSWERS))
def test_an_s3_clock_skew_or_expired_token_names_its_fix(code: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`RequestTimeTooSkewed` and `ExpiredToken` (`InvalidToken`, `TokenRefreshRequired`) were pyarrow's error with
    nothing to check: the error line now says to sync the clock, or to refresh the session credentials (naming the
    environment variables pyarrow reads). A bucket's run is listed first (`repeval table RUN`): the answer's code is
    in pyarrow's error (a HeadObject's answer has no body to tell it by)."""
    status, message = ANSWERS[code]
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>r</RequestId></Error>"

    def aws(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return status, {"Content-Type": "application/xml"}, b"" if method == "HEAD" else xml.encode()

    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    with stand_in(aws) as host:
        res = CliRunner().invoke(app, ["table", f"s3://b/runs/r1?endpoint_override={host}&scheme=http"])
    assert res.exit_code == 1, res.output
    (line,) = res.stderr.splitlines()
    assert code in line or "REQUEST_TIME_TOO_SKEWED" in line, line  # pyarrow's error, then the fix
    if code == "RequestTimeTooSkewed":
        assert "sync it — turn on NTP (`timedatectl set-ntp true`" in line, line
    else:
        assert "refresh them — set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN anew" in line, line


def test_an_expired_token_refused_with_a_403_names_the_token_not_the_rights() -> None:
    """A listing refused 403 for an expired token is a refusal (not a missing folder): its fix was to check what the
    credentials may do; it is now to refresh the session credentials."""
    import pyarrow.fs as pafs

    from repeval.cloud_reach import refusal, refused

    xml = b"<?xml version='1.0'?><Error><Code>ExpiredToken</Code><Message>m</Message><RequestId>r</RequestId></Error>"
    with stand_in(lambda method, path: (403, {"Content-Type": "application/xml"}, xml)) as host:
        fs = pafs.S3FileSystem(
            endpoint_override=host, scheme="http", region="us-east-1", access_key="k", secret_key="s",
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )  # fmt: skip
        with pytest.raises(OSError) as exc:
            fs.get_file_info(pafs.FileSelector("b/runs/r1", allow_not_found=True))
    assert refused(exc.value), exc.value
    why, fix = refusal(exc.value)
    assert why == "access denied" and fix.startswith("the session token has expired or is no longer valid"), fix


@pytest.mark.parametrize("code", ["ExpiredToken", "AccessDenied"])
def test_store_ls_and_runs_whose_head_is_refused_name_the_token_not_the_rights(
    code: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval store ls` and `repeval runs` ask first for the store's or runs directory's HeadObject, whose answer has
    no body: refused for an expired session token they said pyarrow's "UNKNOWN (HTTP status 400) … No response body"
    with nothing to check (for a clock off, "access denied" and the rights to check). One listing after the refused
    HEAD, whose answer names the cause, gives the token's fix; a refusal for the rights is said as before."""
    status = 400 if code == "ExpiredToken" else 403
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>m</Message><RequestId>r</RequestId></Error>"
    asked: list[str] = []

    def aws(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        asked.append(method)
        return status, {"Content-Type": "application/xml"}, b"" if method == "HEAD" else xml.encode()

    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)
    with stand_in(aws) as host:
        for command in (["store", "ls"], ["runs"]):
            asked.clear()
            res = CliRunner().invoke(app, [*command, f"s3://b/x?endpoint_override={host}&scheme=http"])
            assert res.exit_code == 1, res.output
            (line,) = res.stderr.splitlines()
            assert asked == ["HEAD", "GET"], asked  # the HEAD, then one listing
            token = "refresh them — set AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN anew" in line
            assert token == (code == "ExpiredToken"), line
            assert ("check the S3 credentials (AWS_ACCESS_KEY_ID" in line) == (code == "AccessDenied"), line


def test_a_store_whose_head_is_refused_for_the_clock_names_the_clock() -> None:
    """A store's HeadObject (or its bucket's HeadBucket, a run making the store) refused for this machine's clock (S3's
    403 without a body, pyarrow's ACCESS_DENIED) was "access denied" with the rights to check; the listing after it
    says REQUEST_TIME_TOO_SKEWED: the clock's fix."""
    import pyarrow.fs as pafs

    from repeval.cloud_reach import bucket_error
    from repeval.store import EmbeddingStore

    xml = b"<?xml version='1.0'?><Error><Code>RequestTimeTooSkewed</Code><Message>m</Message><RequestId>r</RequestId></Error>"

    def aws(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
        return 403, {"Content-Type": "application/xml"}, b"" if method == "HEAD" else xml

    with stand_in(aws) as host:
        fs = pafs.S3FileSystem(
            endpoint_override=host, scheme="http", region="us-east-1", access_key="k", secret_key="s",
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        )  # fmt: skip
        for create in (False, True):  # `store ls` (a HeadObject of its root), a run's (a HeadBucket, then its root)
            with pytest.raises(OSError) as exc:
                EmbeddingStore("b/store", filesystem=fs, create=create)
            assert "REQUEST_TIME_TOO_SKEWED" in str(exc.value), exc.value
            assert "sync it — turn on NTP (`timedatectl set-ntp true`" in bucket_error(str(exc.value))[1], exc.value
