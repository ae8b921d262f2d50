"""Reaching a manifest or an audio file on a cloud bucket: how long Google Cloud Storage's client retries a request
before it fails — its own default is 15 minutes, deaf to Ctrl-C, so a machine without the network or the
credentials waited that long for a ``gs://`` manifest or audio file before the error: :func:`bounded` gives a URI a
shorter limit unless it sets its own ``retry_limit_seconds`` — and the first line of the error (:func:`error_line`)."""

from __future__ import annotations

#: how long a run lets the client retry one request for a manifest or an audio file (``repeval validate`` waits less:
#: :data:`repeval.datasets.manifest_check.REACH_RETRY_SECONDS`)
GCS_RETRY_SECONDS = 60

#: the schemes pyarrow reads with Google Cloud Storage's client
GCS_SCHEMES = ("gs", "gcs")


def bounded(uri: str, seconds: float | None = None) -> str:
    """``uri`` with a Google Cloud Storage client's retries limited to ``seconds`` (default :data:`GCS_RETRY_SECONDS`)
    unless it sets its own ``retry_limit_seconds``; any other URI as it is (S3's client gives up after three tries of
    a few seconds each)."""
    if uri.split("://", 1)[0].lower() not in GCS_SCHEMES or "retry_limit_seconds=" in uri:
        return uri
    limit = GCS_RETRY_SECONDS if seconds is None else seconds
    return f"{uri}{'&' if '?' in uri else '?'}retry_limit_seconds={limit:g}"


def error_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when it has none), cut to 300 characters at a word: a
    cloud client's error runs to 800 characters, its message twice."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return why if len(why) <= 300 else why[:300].rsplit(" ", 1)[0] + " …"  # a whole word last
