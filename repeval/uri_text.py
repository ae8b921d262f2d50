"""A URI as a configuration or a manifest writes it, as pyarrow parses it and as one name of one file:
``file://localhost/p`` is ``file:///p`` (RFC 8089: the local host; pyarrow refused its host), a character a URI's
path cannot hold (a space, a letter beyond ASCII) percent-encoded — as a relative audio path joined to a URI is — and
a ``..`` or ``.`` step written percent-encoded (``%2E%2E``, RFC 3986's same step; between ``%2F``, pyarrow's ``/``)
the step it is."""

from __future__ import annotations

import re
from urllib.parse import quote

#: a character a URI's path cannot hold as itself (``%`` unless it starts an escape: :func:`encoded`)
NOT_IN_URI = r"[^A-Za-z0-9/._~!$&'()*+,;=:@-]"

#: a whole URI whose path (before its query) :func:`parseable` changes, for Arrow's regular expressions (no lookahead):
#: a character no URI's path holds (``#`` too: it would start a fragment, which names no file to pyarrow), a ``%``
#: that starts no escape, or the host ``localhost`` of a ``file://`` URI — some rows it selects may be left as they are
UNPARSED = r"^(?i:file://localhost/)|^[^?]*([^A-Za-z0-9/._~!$&'()*+,;=:@%?-]|%([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$))"

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
    """``uri`` (``scheme://…``) as pyarrow parses it: ``file://localhost/p`` as ``file:///p``, and the characters its
    path cannot hold (:data:`NOT_IN_URI`; ``#`` too: a file's name's, ``C#_major.wav``, as a fragment names no file)
    percent-encoded — its query as written. A path that is not a URI, or a URI that needs neither, as it is."""
    if "://" not in uri:
        return uri
    body, sep, query = _LOCALHOST.sub("file://", uri).partition("?")
    scheme, rest = body.split("://", 1)
    return f"{scheme}://{encoded(rest)}{sep}{query}"


def dot_steps(uri: str) -> str:
    """``uri``'s ``.`` and ``..`` steps written percent-encoded (``%2E%2E``; ``/`` as ``%2F``, as pyarrow reads it:
    ``s3://b/%2E%2E%2Fx/a.wav`` climbs out of bucket ``b``) written as the steps they are, before its query; its other
    characters as written."""
    body, sep, query = uri.partition("?")
    body = _SLASH.sub("/", body)
    return _DOT_STEP.sub(lambda m: "." * (len(m.group(0)) - 2 * m.group(0).count("%")), body) + sep + query
