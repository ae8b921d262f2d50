"""A URI as a configuration or a manifest writes it, as pyarrow parses it and as one name of one file:
``file://localhost/p`` is ``file:///p`` (RFC 8089: the local host; pyarrow refused its host), a character a URI's
path cannot hold (a space, a letter beyond ASCII) percent-encoded — as a relative audio path joined to a URI is — and
a ``..`` or ``.`` step written percent-encoded (``%2E%2E``, RFC 3986's same step; between ``%2F``, pyarrow's ``/``)
the step it is; in a message, as the user wrote it (:func:`shown`). And a location no filesystem here reads: a URI of a
scheme pyarrow has no filesystem for (:func:`unread_scheme`), a Windows path on Linux or macOS (:func:`windows_path`)."""

from __future__ import annotations

import functools
import os
import re
import sys
from urllib.parse import quote, unquote_to_bytes

#: a character a URI's path cannot hold as itself (``%`` unless it starts an escape: :func:`encoded`)
NOT_IN_URI = r"[^A-Za-z0-9/._~!$&'()*+,;=:@-]"

#: a whole URI whose path (before its query) :func:`parseable` changes, for Arrow's regular expressions (no lookahead):
#: a character no URI's path holds (``#`` too: it would start a fragment, which names no file to pyarrow), a ``%``
#: that starts no escape, the host ``localhost`` of a ``file://`` URI, or a scheme with an upper-case letter — some rows
#: it selects may be left as they are
UNPARSED = (
    r"^(?i:file://localhost/)|^[a-z0-9+.-]*[A-Z][A-Za-z0-9+.-]*://|"
    r"^[^?]*([^A-Za-z0-9/._~!$&'()*+,;=:@%?-]|%([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$))"
)

_LOCALHOST = re.compile(r"^file://localhost(?=/)", re.IGNORECASE)

#: a step of a URI's path that is ``.`` or ``..``, a dot of it percent-encoded or not
_DOT_STEP = re.compile(r"(?<=/)(?:\.|%2[Ee]){1,2}(?=/|$)")

#: ``/`` percent-encoded, which pyarrow reads as ``/`` in a URI's path (``s3://b/a%2Fb.wav`` is the key ``a/b.wav``)
_SLASH = re.compile(r"%2[Ff]")

#: ... for Arrow's regular expressions: a step of ``.`` or ``..`` in a path or URI, before its query (its ``/``
#: percent-encoded or not)
DOT_STEP = r"(^|/|%2[Ff])(\.|%2[Ee]){1,2}(/|%2[Ff]|$|\?)"


def encoded(text: str, keep: str = "") -> str:
    """``text`` with each character a URI's path cannot hold percent-encoded (``%XX`` kept: written so already; a
    ``%`` that starts no escape is ``%25``) but those of ``keep``."""
    return re.sub(r"%(?![0-9A-Fa-f]{2})", "%25", quote(text, safe="/!$&'()*+,;=:@~%" + keep))


def parseable(uri: str) -> str:
    """``uri`` (``scheme://…``) as pyarrow parses it: its scheme in lower case (``S3://`` is ``s3://``: RFC 3986 reads a
    scheme in either case, pyarrow only in lower case), ``file://localhost/p`` as ``file:///p``, and the characters its
    path cannot hold (:data:`NOT_IN_URI`; ``#`` too: a file's name's, ``C#_major.wav``, as a fragment names no file)
    percent-encoded — its query as written. A path that is not a URI, or a URI that needs none of it, as it is."""
    if "://" not in uri:
        return uri
    body, sep, query = _LOCALHOST.sub("file://", uri).partition("?")
    scheme, rest = body.split("://", 1)
    return f"{scheme.lower()}://{encoded(rest)}{sep}{query}"


def dot_steps(uri: str) -> str:
    """``uri``'s ``.`` and ``..`` steps written percent-encoded (``%2E%2E``; ``/`` as ``%2F``, as pyarrow reads it:
    ``s3://b/%2E%2E%2Fx/a.wav`` climbs out of bucket ``b``) written as the steps they are, before its query; its other
    characters as written."""
    body, sep, query = uri.partition("?")
    body = _SLASH.sub("/", body)
    return _DOT_STEP.sub(lambda m: "." * (len(m.group(0)) - 2 * m.group(0).count("%")), body) + sep + query


#: the locations repeval reads and writes (a manifest, audio, a store, a runs directory): pyarrow's filesystems
#: (hdfs:// needs Java's libjvm)
READ_SCHEMES = "a local path, file://, s3://, gs:// (gcs://), abfs:// (Azure) or hdfs://"

#: schemes pyarrow's filesystems read, known without asking pyarrow (which, for ``s3://``, resolves a bucket's region)
_KNOWN_SCHEMES = frozenset({"file", "local", "mock", "s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs", "hf"})


@functools.lru_cache(maxsize=64)
def _pyarrow_reads(scheme: str) -> bool:
    """Whether a pyarrow filesystem reads URIs of ``scheme`` (lower case): one of :data:`_KNOWN_SCHEMES`, else as
    pyarrow answers for a URI of no data (an unknown scheme is refused before any network)."""
    if scheme in _KNOWN_SCHEMES:
        return True
    import pyarrow.fs as pafs

    try:
        pafs.FileSystem.from_uri(f"{scheme}://repeval-scheme-check/x")
    except Exception as exc:  # only pyarrow's "Unrecognized filesystem type" says no
        return "Unrecognized filesystem type" not in str(exc)
    return True


def unread_scheme(uri: str) -> str | None:
    """The scheme of the URI ``uri`` when no pyarrow filesystem reads it (``https``, ``ftp``), as written; ``None``
    for one read, a Windows drive's ``C://`` (:func:`windows_path`) or a text that is no URI."""
    scheme, sep, _ = uri.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]+", scheme):
        return None
    return None if _pyarrow_reads(scheme.lower()) else scheme


#: what to do with a location of a scheme repeval does not read (:func:`scheme_refusal`)
SCHEME_FIX = "download the file and give its path, or put it in a bucket and give its s3:// or gs:// URI"


def scheme_refusal(uri: str, scheme: str, fix: str = SCHEME_FIX) -> str:
    """What to say of ``uri``, of a ``scheme`` no pyarrow filesystem reads: the schemes repeval reads, then ``fix``."""
    return f"{uri}: repeval cannot read {scheme}:// URIs — it reads {READ_SCHEMES}; {fix}"


#: a Windows path: a drive letter (``C:\data``, ``D:/runs``, ``C:`` alone, ``C://data``) or a network share
#: (``\\server\share``, ``//server/share`` is a POSIX path)
WINDOWS = r"^(?:[A-Za-z]:(?:[\\/]|$)|\\\\)"

#: a ``file://`` URI of a Windows drive: ``file:///C:/data`` (RFC 8089's), ``file://C:/data`` (the drive as its host)
_FILE_DRIVE = re.compile(r"^file:///?(?=[A-Za-z]:(?:[\\/]|$))", re.IGNORECASE)


def _drive(text: str) -> str:
    """``text`` without the ``file://`` (or ``file:///``) before a Windows drive: ``C:/data`` of ``file:///C:/data``."""
    return _FILE_DRIVE.sub("", text, count=1)


def windows_path(text: str) -> bool:
    """Whether ``text`` is written as a Windows path (:data:`WINDOWS`), or a ``file://`` URI of a drive
    (``file:///C:/data``, ``file://C:/data``): on Linux or macOS a relative file name (``C:\\data`` a file of that name
    in the current folder; ``C://data`` a URI of scheme ``c``; ``file:///C:/data`` the folder ``/C:/data``, and
    ``file://C:/data`` a URI of host ``C:``, which pyarrow refuses)."""
    return bool(re.match(WINDOWS, _drive(text)))


def windows_unread(text: str, base: str = "") -> bool:
    """Whether ``text`` is a Windows path (:func:`windows_path`) this system does not read as one — on Linux or macOS
    — unless a file or folder so named exists (relative to the local folder ``base``), or one named as its first step
    (``D:`` of ``D:/runs``): the path is then its name. A drive's ``C://data`` always: repeval reads it as a URI."""
    if os.name == "nt" or not windows_path(text):
        return False
    if _FILE_DRIVE.match(text):  # file:///C:/x unless /C:/x is there; file://C:/x (a host C:) always
        return not text.lower().startswith("file:///") or not os.path.lexists(text[7:])
    return "://" in text or not any(os.path.lexists(os.path.join(base, p)) for p in (text, text.split("/", 1)[0]))


def windows_fix(text: str) -> str:
    """What to say of ``text``, a Windows path (:func:`windows_path`) given on a system that is not Windows: the POSIX
    path where this machine mounts it, or (of a drive's) how to name a folder ``C:``."""
    drive = _drive(text)  # file:///C:/data: the drive's path
    system = {"darwin": "macOS"}.get(sys.platform, sys.platform.capitalize())
    said = f"'{text}' is a Windows path, which {system} does not read as one — write it as a POSIX path"
    if drive.startswith("\\\\"):
        return f"{said} (where this machine mounts that network share)"
    rest = drive[2:].replace("\\", "/").strip("/")
    mounted, local = (f"{top}/{rest}".rstrip("/") for top in (f"/mnt/{drive[0].lower()}", f"./{drive[:2]}"))
    where = f"where this machine mounts that drive: under WSL {mounted}"
    return f"{said} ({where}), or {local} for a folder named '{drive[:2]}'"


#: a URI in a message: its scheme, then its path up to its query, a space or a quote
_URI_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]+://)([^\s'\"?]*)")

#: a run of percent-escapes
_ESCAPES = re.compile(r"(?:%[0-9A-Fa-f]{2})+")

#: two hex digits: after a ``%``, an escape
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")


def _decoded(escapes: re.Match[str]) -> str:
    """A run of percent-escapes as the characters :func:`encoded` wrote so (a space, ``#``, ``%``, a letter beyond
    ASCII); ``/`` and ``?`` (which mean another path or a query as themselves), a ``%`` before two hex digits (``%41``
    would be read as ``A``), a control character, and bytes that are not UTF-8 kept escaped."""
    try:
        text = unquote_to_bytes(escapes.group(0)).decode("utf-8")
    except UnicodeDecodeError:
        return escapes.group(0)
    after = text + escapes.string[escapes.end() : escapes.end() + 2]  # what follows each character, as shown

    def kept(at: int, c: str) -> bool:
        return not c.isprintable() or c in "/?" or (c == "%" and _HEX2.match(after, at + 1) is not None)

    return "".join(quote(c, safe="") if kept(at, c) else c for at, c in enumerate(text))


def shown(text: str) -> str:
    """``text`` (a message) with the path of each URI in it as the user wrote it: the percent-escapes
    :func:`parseable` added for pyarrow (``s3://b/my%20folder/m.csv``, ``C%23_major.wav``, ``caf%C3%A9``) shown as the
    characters they stand for — a URI written with them shown alike, the same file; its query as it is, and a command
    in backticks (`repeval embed CONFIG --store s3://b/my%20store`): pasted into a shell, a space would split it."""
    if "%" not in text:
        return text
    parts = text.split("`")
    parts[::2] = (_URI_IN_TEXT.sub(lambda m: m.group(1) + _ESCAPES.sub(_decoded, m.group(2)), p) for p in parts[::2])
    return "`".join(parts)
