"""Reaching a manifest or an audio file on a cloud bucket: how long Google Cloud Storage's client retries a request
before it fails — its own default is 15 minutes, deaf to Ctrl-C, so a machine without the network or the
credentials waited that long for a ``gs://`` manifest or audio file before the error: :func:`bounded` gives a URI a
shorter limit unless it sets its own ``retry_limit_seconds`` (a store or runs directory's filesystem: :func:`filesystem`)
— and the first line of the error (:func:`error_line`); what to say and to check when a bucket's client fails
(:func:`bucket_error`); whether an error says the file may not be read rather than that it is missing, on any
filesystem (:func:`refused`), and what to say of it (:func:`refusal`)."""

from __future__ import annotations

import re

import pyarrow.fs as pafs

#: how long a run lets the client retry one request for a manifest or an audio file (``repeval validate`` waits less:
#: :data:`repeval.datasets.manifest_check.REACH_RETRY_SECONDS`)
GCS_RETRY_SECONDS = 60

#: the schemes pyarrow reads with Google Cloud Storage's client
GCS_SCHEMES = ("gs", "gcs")


def bounded(uri: str, seconds: float | None = None) -> str:
    """``uri`` with a Google Cloud Storage client's retries limited to ``seconds`` (default :data:`GCS_RETRY_SECONDS`)
    unless it sets its own ``retry_limit_seconds``; any other URI as it is (S3's client gives up after three tries of
    a few seconds each)."""
    if uri.split("://", 1)[0].lower() not in GCS_SCHEMES:
        return uri
    own = _own_limit(uri)
    limit = own if own is not None else GCS_RETRY_SECONDS if seconds is None else seconds
    _LIMITS.add(limit)
    if own is not None or "retry_limit_seconds=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}retry_limit_seconds={limit:g}"


#: the retry limits in effect of the ``gs://`` locations opened (:func:`bounded`) since :func:`forget_limits` — a
#: few values, not a location each (a run opens every audio file): what :func:`bucket_error` says of an error that
#: does not say which location it is of
_LIMITS: set[float] = set()


def forget_limits() -> None:
    """Forget the ``gs://`` locations opened so far (a command starting: its error is of its own locations)."""
    _LIMITS.clear()


def _own_limit(uri: str) -> float | None:
    """The ``retry_limit_seconds`` ``uri`` sets in its query, ``None`` when it sets none (or none that is a number)."""
    found = re.search(r"[?&]retry_limit_seconds=([^&#]*)", uri)
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def retry_limits(uri: str | None = None) -> list[float]:
    """The retry limits in effect: ``uri``'s (a ``gs://`` URI), else those of the locations opened since
    :func:`forget_limits` (none opened: the default :data:`GCS_RETRY_SECONDS`), fewest seconds first."""
    if uri is not None:
        own = _own_limit(uri)
        return [GCS_RETRY_SECONDS if own is None else own]
    return sorted(_LIMITS) or [GCS_RETRY_SECONDS]


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """``pafs.FileSystem.from_uri`` of ``uri`` :func:`bounded`: a store or runs directory on ``gs://`` gives up after
    :data:`GCS_RETRY_SECONDS` of retries, not the client's 15 minutes."""
    return pafs.FileSystem.from_uri(bounded(uri))


def error_line(exc: BaseException, uri: str | None = None, seconds: float | None = None) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), cut to 300 characters at a word: a
    cloud client's error runs to 800 characters, its message twice — after how long the client retried when it read
    ``uri`` :func:`bounded` by ``seconds``."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    why = why if len(why) <= 300 else why[:300].rsplit(" ", 1)[0] + " …"  # a whole word last
    if uri is None or bounded(uri, seconds) == uri:
        return why
    return f"retried for {GCS_RETRY_SECONDS if seconds is None else seconds:g} s: {why}"


_S3_UNREACHABLE = (
    " — this machine cannot reach the S3 server: check its network (on a cluster, every node's) and the bucket's "
    "name; for an S3-compatible server give the URI ?endpoint_override=http://HOST:PORT&scheme=http (docs/cluster.md)"
)
_S3_REFUSED = (
    " — check the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role; on a "
    "cluster, every node's) and that they may list, read and write the bucket (docs/cluster.md)"
)
_GCS = (
    " — check this machine's network (on a cluster, every node's) and its Google credentials (`gcloud auth "
    "application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or the node's service account) (docs/cluster.md); "
    "repeval lets gs:// retry a request for {seconds} before it fails: ?retry_limit_seconds=N on the URI "
    "sets another limit"
)


#: what an S3 error says of a request these credentials may not make (a key they may not read, keys S3 does not know
#: or a secret that signs otherwise): AWS answers a HeadObject it refuses — a key these credentials may not read, keys
#: it does not know or sign otherwise, and a missing key to a user who may not list the bucket (moto answers that one
#: 404) — with a 403 without a body, which pyarrow says as ``ACCESS_DENIED … No response body``; a GetObject or a
#: listing, with the reason's code in its body, which pyarrow says by the AWS SDK's name: ``ACCESS_DENIED``,
#: ``INVALID_ACCESS_KEY_ID``, ``SIGNATURE_DOES_NOT_MATCH``, else ``UNKNOWN (HTTP status 403)``; S3's own code
#: (``InvalidAccessKeyId``) is in what an S3-compatible server says
_S3_DENIED_MARKS = (
    "ACCESS_DENIED", "AccessDenied", "INVALID_ACCESS_KEY_ID", "InvalidAccessKeyId", "SIGNATURE_DOES_NOT_MATCH",
    "SignatureDoesNotMatch", "HTTP status 403",
)  # fmt: skip

#: what an object store's client says of a request this user may not make, when pyarrow raises a plain ``OSError``:
#: S3's (:data:`_S3_DENIED_MARKS`), an S3-compatible server's 403 without a body, Azure's
#: AuthorizationPermissionMismatch — by what the error says, not by the filesystem's type (google-cloud-cpp's
#: PERMISSION_DENIED comes as a ``PermissionError``, errno 13)
_DENIED_MARKS = (
    *_S3_DENIED_MARKS, "PERMISSION_DENIED", "AuthorizationPermissionMismatch", "AuthorizationFailure", "status code 403",
    "403 Forbidden",
)  # fmt: skip

#: S3 refusing a request for its time or its token, not its rights — what pyarrow says (S3's code in a listing's or a
#: GetObject's answer; a HeadObject's has no body: ``ACCESS_DENIED``, ``UNKNOWN (HTTP status 400)``) and the fix:
#: ``REQUEST_TIME_TOO_SKEWED`` (403: this machine's clock 15 minutes off), ``ExpiredToken`` (400, pyarrow: "Unable to
#: parse ExceptionName: ExpiredToken Message: The provided token has expired."), ``InvalidToken``,
#: ``TokenRefreshRequired``
_S3_TIME_OR_TOKEN = (
    (("REQUEST_TIME_TOO_SKEWED", "RequestTimeTooSkewed"),
     "this machine's clock is more than 15 minutes off the S3 server's (each request is signed with the time): sync "
     "it — turn on NTP (`timedatectl set-ntp true`, chrony or ntpd); on a cluster, every node's"),
    (("ExpiredToken", "InvalidToken", "TokenRefreshRequired"),
     "the session token has expired or is no longer valid (temporary credentials: an assumed role, SSO, STS): refresh "
     "them — set "
     "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN anew, or `aws sso login` for AWS_PROFILE's; on a "
     "cluster, every node's (docs/cluster.md)"),
)  # fmt: skip


def _time_or_token(text: str) -> str | None:
    """The fix when S3's error ``text`` refuses a request for this machine's clock or an expired session token
    (:data:`_S3_TIME_OR_TOKEN`), else ``None``."""
    return next((fix for marks, fix in _S3_TIME_OR_TOKEN if any(m in text for m in marks)), None)


def head_cause(fs: pafs.FileSystem, path: str, exc: OSError) -> OSError:
    """``exc``, or — when it is S3's answer to a HeadObject of ``path`` on ``fs`` (or to a HeadBucket of its bucket,
    which making a folder asks first) without a body: ``ACCESS_DENIED`` or ``UNKNOWN (HTTP status 400)`` … ``No
    response body``, S3's answer to a HEAD refused for this machine's clock or an expired session token as for the
    rights, pyarrow's error keeping none of its headers — the error of one listing under ``path``, whose answer has
    S3's code in its body, when that names the clock or the token (:data:`_S3_TIME_OR_TOKEN`). A command whose first
    request is a HEAD (`repeval store ls`, `repeval runs`, a run making its store) names the fix, as one whose first
    request is a listing does."""
    text = _unquoted(exc)
    head = "during HeadObject operation" in text or "during HeadBucket operation" in text
    if "AWS Error" not in text or not head or "No response body" not in text:
        return exc
    try:
        fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    except OSError as again:
        if _time_or_token(_unquoted(again)) is not None:
            return again
    return exc


#: each bucket client's mark in its errors (pyarrow's words), and the credentials a refusal of it says to check
_CREDENTIALS = (
    ("AWS Error", "the S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance role)"),
    ("google::cloud", "the Google credentials (GOOGLE_APPLICATION_CREDENTIALS, or the node's service account)"),
    ("Azure Error", "the Azure credentials (the account key or SAS token, or the node's managed identity)"),
)  # fmt: skip


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` says this user may not read (or list) the file: a ``PermissionError`` (the local disk,
    ``gs://``), or any pyarrow filesystem's error saying so in its own words (:data:`_DENIED_MARKS`) — not that the
    file is missing, nor a path that happens to hold those words (what the error quotes is not read)."""
    if isinstance(exc, PermissionError):
        return True
    if not isinstance(exc, OSError) or isinstance(exc, FileNotFoundError):
        return False
    return any(mark in _unquoted(exc) for mark in _DENIED_MARKS)


def _unquoted(exc: BaseException) -> str:
    """``exc``'s message without what it quotes: the paths, keys and buckets it names (a folder named AccessDenied)."""
    return re.sub(r"'[^']*'", "''", str(exc))


def refusal(exc: BaseException, deleting: bool = False) -> tuple[str, str]:
    """``(why, fix)`` of a file or folder this user may not read (``deleting``: delete), for the error ``exc``
    :func:`refused` said so of: on the local disk ``permission denied`` and its owner and permissions (a delete's: its
    folder's); on a bucket ``access denied`` and the credentials this machine uses for it."""
    from repeval.run.files import may_not_read

    text = _unquoted(exc)
    creds = next((c for mark, c in _CREDENTIALS if mark in text), None)
    cause = _time_or_token(text) if "AWS Error" in text else None
    if cause is not None:  # refused (a 403), but for this machine's clock or its session token
        return "access denied", cause
    if creds is None and isinstance(exc, PermissionError):
        if deleting:
            return (
                "permission denied",
                "this user may not delete it: check the owner and permissions of its folder (`ls -ld`)",
            )
        return "permission denied", may_not_read()
    may, what = ("delete", "delete objects in") if deleting else ("read", "list and read")
    return "access denied", (
        f"this user may not {may} it: check {creds or 'the storage credentials'} on this machine (on a cluster, every "
        f"node's) and that they may {what} the bucket (docs/cluster.md)"
    )


def bucket_error(text: str, uri: str | None = None) -> tuple[str, str]:
    """``(what to say, what to check)`` for pyarrow's error ``text`` when it is a bucket's (``s3://``, ``gs://``):
    "AWS Error NETWORK_CONNECTION …" or google-cloud-cpp's "Status(UNAVAILABLE: Retry policy exhausted …" named no
    fix — and the latter ran to 800 characters, its message twice (``error_info``), cut here. Other text: unchanged,
    nothing to check — nor when ``text`` says it already (an error repeval wrote round the client's). The ``gs://``
    retry limit said is the one in effect: ``uri``'s (its own ``retry_limit_seconds`` or repeval's), else that of the
    ``gs://`` locations opened (:func:`retry_limits`)."""
    said, check = _bucket_error(text, uri)
    return (said, "") if check and check in text else (said, check)


def _bucket_error(text: str, uri: str | None) -> tuple[str, str]:
    if "AWS Error" in text:
        if any(mark in text for mark in ("NETWORK_CONNECTION", "Could not resolve", "Could not connect")):
            return text, _S3_UNREACHABLE
        fix = _time_or_token(text)
        if fix is not None:
            return text, f" — {fix}"
        if any(mark in text for mark in _S3_DENIED_MARKS):
            return text, _S3_REFUSED
        return text, ""
    if text.startswith("google::cloud::Status("):
        return text.split(" error_info=", 1)[0].rstrip() + ")", _GCS.format(seconds=_said_limits(retry_limits(uri)))
    return text, ""


def _said_limits(limits: list[float]) -> str:
    """``60 s``; ``1 s or 60 s`` (locations of different limits, the error naming none of them)."""
    return " or ".join(f"{s:g} s" for s in limits) + (" (as its URI sets)" if len(limits) > 1 else "")
