"""A bucket's refusal told from a missing file by what each cloud's server answers — Google Cloud Storage, Azure,
AWS's S3 (stand-in servers answering as the service does, where moto answers otherwise:
:func:`repeval.testing.stand_in.stand_in`) — and named with that cloud's credentials."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pyarrow.fs as pafs
import pytest

from repeval.store import EmbeddingStore
from repeval.testing.stand_in import stand_in as _stand_in


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
